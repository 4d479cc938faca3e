//! Gatehouse's sans-IO core: parent sessions, tunnels, timers, address pools and the
//! session-db state machine. Nothing here reads a clock, opens a socket or spawns a task:
//! the node drives it with `now` and carries out the actions it returns (STYLE.md "Shape").
#![warn(missing_docs)]

pub mod cluster_time;
pub mod health;
pub mod leaving;
pub mod placement;
pub mod policy;
pub mod pool;
pub mod session;
pub mod sessiondb;
pub mod slot;
pub mod slot_agent;
pub mod time;
pub mod tunnel;

pub use policy::{GroupPolicy, SessionTimers};
pub use pool::PoolRange;
pub use session::{
    Counters, EndReason, ParentSession, TokenHash, TunnelId, TunnelKind, TunnelRecord,
};
pub use sessiondb::{
    AttachTunnel, Attached, Command, Depart, DetachTunnel, Detached, EndSessions, Ended, Endings,
    Expire, Heartbeat, LoggedIn, Member, NewSession, NodeDown, Outcome, OutcomeMismatch, Proposal,
    RaftStops, Rejection, SessionDb, SlotChange, SlotRef,
};
pub use slot::{Slot, SlotCommand, SlotRefusal, SlotSpec, SlotTable};
pub use time::{MonoMillis, UnixMillis};
pub use tunnel::{
    AfterClose, CstpConfig, CstpTunnel, Liveness, StopMode, TimerTable, TunnelEnd, TunnelEvent,
    TunnelOrder, TunnelTimer, TunnelTimers, TunnelTimersConfig,
};
