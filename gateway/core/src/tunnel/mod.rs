//! Tunnels: the rules of one transport attached to a parent session, as pure state machines.
//!
//! - [`timers`]: the one timer table of a tunnel ([`TimerTable`] indexed by [`TunnelTimer`]) and
//!   the DPD/idle rules of DESIGN.md §2 ([`Liveness`]) that every tunnel kind shares — CSTP
//!   today, a datagram tunnel (DTLS, QUIC) beside it later.
//! - [`close`]: why a tunnel ends, the orders the control plane gives a running tunnel, and
//!   what the session db must hear after a close.
//! - [`cstp`]: [`CstpTunnel`], the `ssl` tunnel: CSTP frames in, frames and packets out.
//! - [`connect`]: the `X-CSTP-*` headers of the `CONNECT` answer.
//! - [`ip`]: the two IPv4 header facts the tunnel rules need.

pub mod close;
pub mod connect;
pub mod cstp;
pub mod ip;
pub mod timers;

pub use close::{AfterClose, StopMode, TunnelEnd, TunnelOrder, DETACH_GRACE};
pub use cstp::{CstpConfig, CstpTunnel};
pub use timers::{
    Liveness, LivenessAction, TimerTable, Transmit, TunnelEvent, TunnelTimer, TunnelTimers,
    TunnelTimersConfig,
};
