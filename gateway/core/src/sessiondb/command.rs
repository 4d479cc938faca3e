//! The replicated commands: what a node proposes and every replica applies. Each command
//! carries its proposer's timestamp (`at`), so `apply` never reads a clock.

use crate::policy::SessionTimers;
use crate::pool::PoolRange;
use crate::session::{Counters, EndReason, TokenHash, TunnelId, TunnelKind};
use crate::slot::SlotCommand;
use crate::time::UnixMillis;
use serde::{Deserialize, Serialize};

/// The slot a write is about, and the epoch its proposer believes current (fencing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRef {
    /// Slot id.
    pub id: u32,
    /// Epoch the proposer owns it under.
    pub epoch: u64,
}

/// A login that passed authentication: create a parent session with an address lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSession {
    /// Proposer's timestamp.
    pub at: UnixMillis,
    /// Username.
    pub user: String,
    /// Tunnel group.
    pub tunnel_group: String,
    /// Group policy name.
    pub group_policy: String,
    /// Timers from the policy.
    pub timers: SessionTimers,
    /// The pool to lease the inner address from.
    pub pool: PoolRange,
    /// SHA-256 of the new token.
    pub token_hash: TokenHash,
    /// Client type and version.
    pub client_version: String,
    /// Client public address.
    pub public_ip: String,
    /// The slot the client connected to (its pool slice is used); `None` = a node address.
    #[serde(default)]
    pub slot: Option<SlotRef>,
}

/// A client presented its token on a new tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachTunnel {
    /// Proposer's timestamp.
    pub at: UnixMillis,
    /// SHA-256 of the presented token.
    pub token_hash: TokenHash,
    /// Transport.
    pub kind: TunnelKind,
    /// Node terminating it.
    pub node: u64,
    /// Client public address.
    pub public_ip: String,
    /// Client source port.
    pub src_port: u16,
    /// Gateway port.
    pub dst_port: u16,
    /// The slot the client reconnected to, with the proposer's epoch.
    #[serde(default)]
    pub slot: Option<SlotRef>,
}

/// A tunnel went away (DPD, idle timeout, TCP loss, replaced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachTunnel {
    /// Proposer's timestamp.
    pub at: UnixMillis,
    /// The tunnel.
    pub id: TunnelId,
    /// Its final counters.
    pub counters: Counters,
}

/// End sessions (user logout, admin logoff).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndSessions {
    /// Proposer's timestamp.
    pub at: UnixMillis,
    /// Sessions to end; unknown ones are ignored.
    pub indices: Vec<u64>,
    /// Why.
    pub reason: EndReason,
}

/// A node is alive (sent periodically by every node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Proposer's timestamp.
    pub at: UnixMillis,
    /// The node.
    pub node: u64,
    /// The node is stopping and waits for its turn to leave ([`crate::leaving`]); `false`
    /// from a node that (re)started also ends its last departure.
    #[serde(default)]
    pub leaving: bool,
}

/// The Raft leader `node` is leaving and stops Raft once this commits: `successor` (then the
/// other members) calls the election as soon as the others will vote ([`crate::leaving`])
/// rather than waiting for an election timeout, so no other slot's lease lapses meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftStops {
    /// Proposer's timestamp.
    pub at: UnixMillis,
    /// The leader.
    pub node: u64,
    /// The follower whose log the leader saw furthest along (it can win the election).
    #[serde(default)]
    pub successor: Option<u64>,
}

/// A stopping member takes its turn to leave the cluster ([`crate::leaving`]): granted to one
/// member at a time, refused while another member that departed has not come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Depart {
    /// Proposer's timestamp.
    pub at: UnixMillis,
    /// The node.
    pub node: u64,
}

/// The leader saw no heartbeat from `node` commit for its `node_down_after`: its tunnels are
/// gone, so their sessions become inactive. Refused if a heartbeat committed since the leader
/// judged (the count moved past `seen_heartbeats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDown {
    /// Proposer's timestamp.
    pub at: UnixMillis,
    /// The silent node.
    pub node: u64,
    /// The member's committed heartbeat count the leader judged silent.
    pub seen_heartbeats: u64,
}

/// Slot ownership: define, renew, assign, release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotChange {
    /// Proposer's timestamp.
    pub at: UnixMillis,
    /// The slot command.
    pub cmd: SlotCommand,
}

/// End a session whose timer has expired; refused if it has not (it may have resumed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expire {
    /// Proposer's timestamp.
    pub at: UnixMillis,
    /// The session.
    pub index: u64,
}

/// A replicated command. (Each variant's JSON is `{"Variant": {fields}}`, the form the Raft
/// logs on disk already hold.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Create a parent session.
    Login(NewSession),
    /// Attach a tunnel (first connect or resume).
    Attach(AttachTunnel),
    /// Detach a tunnel.
    Detach(DetachTunnel),
    /// End sessions (user logout, admin logoff).
    End(EndSessions),
    /// A node is alive.
    Heartbeat(Heartbeat),
    /// A silent node is declared down.
    NodeDown(NodeDown),
    /// Slot ownership.
    Slot(SlotChange),
    /// A session timer expired.
    Expire(Expire),
    /// A stopping member's turn to leave.
    Depart(Depart),
    /// The leaving Raft leader stops Raft.
    RaftStops(RaftStops),
}

impl Command {
    /// The proposer's timestamp.
    pub fn at(&self) -> UnixMillis {
        match self {
            Command::Login(c) => c.at,
            Command::Attach(c) => c.at,
            Command::Detach(c) => c.at,
            Command::End(c) => c.at,
            Command::Heartbeat(c) => c.at,
            Command::NodeDown(c) => c.at,
            Command::Slot(c) => c.at,
            Command::Expire(c) => c.at,
            Command::Depart(c) => c.at,
            Command::RaftStops(c) => c.at,
        }
    }
}

macro_rules! into_command {
    ($($t:ident => $v:ident),* $(,)?) => {
        $(impl From<$t> for Command {
            fn from(c: $t) -> Command {
                Command::$v(c)
            }
        })*
    };
}

into_command!(
    NewSession => Login,
    AttachTunnel => Attach,
    DetachTunnel => Detach,
    EndSessions => End,
    Heartbeat => Heartbeat,
    NodeDown => NodeDown,
    SlotChange => Slot,
    Expire => Expire,
    Depart => Depart,
    RaftStops => RaftStops,
);
