//! What `apply` answers. Inside the state machine each command has its own reply type
//! (`Result<LoggedIn, Rejection>` for a login, …); [`Outcome`] is the one envelope those replies
//! travel in through the Raft log's client responses and forwarded writes, and [`Proposal`]
//! turns an envelope back into the reply of the command that was proposed, so a proposer
//! never matches arms its command cannot produce.

use super::command::{
    AttachTunnel, Depart, DetachTunnel, EndSessions, Expire, Heartbeat, NewSession, NodeDown,
    RaftStops, SlotChange,
};
use super::Command;
use crate::session::TunnelId;
use crate::slot::SlotRefusal;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// Why `apply` refused a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// No live session has this token (never issued, or its session ended).
    UnknownToken,
    /// The pool has no free address.
    PoolExhausted,
    /// No such session.
    NoSuchSession,
    /// No such tunnel.
    NoSuchTunnel,
    /// The session's timer has not expired at the command's time.
    NotExpired,
    /// The group policy forbids reconnecting with the cookie.
    ReconnectNotAllowed,
    /// The node sent a heartbeat within the grace period.
    NodeAlive,
    /// A slot command or a slot-fenced write was refused.
    Slot(SlotRefusal),
    /// A datagram tunnel needs the session's ssl tunnel first (DESIGN.md §2.2).
    NoSslTunnel,
    /// Another member departed and has not come back yet ([`crate::leaving`]).
    MemberAway,
}

impl Rejection {
    /// Text for a client refusal or a log line.
    pub fn text(self) -> &'static str {
        match self {
            Rejection::UnknownToken => "Cookie is not acceptable",
            Rejection::PoolExhausted => "No address available",
            Rejection::NoSuchSession => "No such session",
            Rejection::NoSuchTunnel => "No such tunnel",
            Rejection::NotExpired => "Session timer has not expired",
            Rejection::ReconnectNotAllowed => "Reconnect not allowed by group policy",
            Rejection::NodeAlive => "Node is alive",
            Rejection::NoSslTunnel => "Datagram tunnel without an ssl tunnel",
            Rejection::MemberAway => "Another member left and is not back yet",
            Rejection::Slot(SlotRefusal::NoSuchSlot) => "No such slot",
            Rejection::Slot(SlotRefusal::StaleEpoch) => "Slot moved to another node",
            Rejection::Slot(SlotRefusal::Held) => "Slot lease still held",
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

impl std::error::Error for Rejection {}

/// A session was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedIn {
    /// Its index.
    pub index: u64,
    /// Its inner address.
    pub address: Ipv4Addr,
    /// Older sessions of the same user ended by `simultaneous_logins`.
    pub evicted: Vec<u64>,
}

/// A tunnel was attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// The tunnel id.
    pub tunnel: TunnelId,
    /// The session's inner address.
    pub address: Ipv4Addr,
    /// The session's user.
    pub user: String,
    /// Earlier tunnels replaced by this one (the client can hold only one ssl tunnel).
    pub replaced: Vec<TunnelId>,
    /// Whether this was a resume (not the first tunnel of the session).
    pub resumed: bool,
}

/// A tunnel was detached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detached {
    /// Whether the session is now inactive.
    pub inactive: bool,
}

/// What `apply` did: the envelope of every command's reply.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Outcome {
    /// Nothing (blank or membership entries).
    #[default]
    Nothing,
    /// A session was created.
    LoggedIn {
        /// Its index.
        index: u64,
        /// Its inner address.
        address: Ipv4Addr,
        /// Older sessions of the same user ended by `simultaneous_logins`.
        evicted: Vec<u64>,
    },
    /// A tunnel was attached.
    Attached {
        /// The tunnel id.
        tunnel: TunnelId,
        /// The session's inner address.
        address: Ipv4Addr,
        /// The session's user.
        user: String,
        /// Earlier ssl tunnels replaced by this one (the client can hold only one).
        replaced: Vec<TunnelId>,
        /// Whether this was a resume (not the first tunnel of the session).
        resumed: bool,
    },
    /// A tunnel was detached.
    Detached {
        /// Whether the session is now inactive.
        inactive: bool,
    },
    /// A heartbeat was recorded.
    Alive,
    /// A slot command was applied; the slot's epoch now.
    Slot {
        /// Epoch.
        epoch: u64,
    },
    /// A member's turn to leave was granted, or a leaving leader's stop recorded.
    Departed,
    /// A node was declared down; these tunnels were detached.
    NodeDown {
        /// Detached tunnels.
        detached: Vec<TunnelId>,
    },
    /// Sessions ended.
    Ended {
        /// Indices that were live and are now gone.
        indices: Vec<u64>,
    },
    /// The command was refused; the state is unchanged.
    Rejected(Rejection),
}

/// An outcome that is not one its command can produce: a replica of another version, or a
/// batch whose replies came back out of order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the session database answered {got} to a {command} command")]
pub struct OutcomeMismatch {
    /// The command's kind.
    pub command: &'static str,
    /// The outcome's kind.
    pub got: &'static str,
}

impl Outcome {
    fn kind(&self) -> &'static str {
        match self {
            Outcome::Nothing => "Nothing",
            Outcome::LoggedIn { .. } => "LoggedIn",
            Outcome::Attached { .. } => "Attached",
            Outcome::Detached { .. } => "Detached",
            Outcome::Alive => "Alive",
            Outcome::Slot { .. } => "Slot",
            Outcome::Departed => "Departed",
            Outcome::NodeDown { .. } => "NodeDown",
            Outcome::Ended { .. } => "Ended",
            Outcome::Rejected(_) => "Rejected",
        }
    }
}

/// A command with a reply type of its own: what a node proposes to the session db.
pub trait Proposal: Into<Command> {
    /// What `apply` answers when it accepts the command.
    type Reply;
    /// The command's kind, for errors.
    const KIND: &'static str;
    /// Decode the reply from its envelope: the reply, or the refusal.
    fn reply(outcome: Outcome) -> Result<Result<Self::Reply, Rejection>, OutcomeMismatch> {
        match outcome {
            Outcome::Rejected(r) => Ok(Err(r)),
            o => Self::accepted(o).map(Ok),
        }
    }
    /// The reply inside an outcome that is not a refusal.
    fn accepted(outcome: Outcome) -> Result<Self::Reply, OutcomeMismatch>;
}

fn mismatch<T>(command: &'static str, o: &Outcome) -> Result<T, OutcomeMismatch> {
    Err(OutcomeMismatch { command, got: o.kind() })
}

impl Proposal for NewSession {
    type Reply = LoggedIn;
    const KIND: &'static str = "Login";
    fn accepted(o: Outcome) -> Result<LoggedIn, OutcomeMismatch> {
        match o {
            Outcome::LoggedIn { index, address, evicted } => {
                Ok(LoggedIn { index, address, evicted })
            }
            o => mismatch(Self::KIND, &o),
        }
    }
}

impl Proposal for AttachTunnel {
    type Reply = Attached;
    const KIND: &'static str = "Attach";
    fn accepted(o: Outcome) -> Result<Attached, OutcomeMismatch> {
        match o {
            Outcome::Attached { tunnel, address, user, replaced, resumed } => {
                Ok(Attached { tunnel, address, user, replaced, resumed })
            }
            o => mismatch(Self::KIND, &o),
        }
    }
}

impl Proposal for DetachTunnel {
    type Reply = Detached;
    const KIND: &'static str = "Detach";
    fn accepted(o: Outcome) -> Result<Detached, OutcomeMismatch> {
        match o {
            Outcome::Detached { inactive } => Ok(Detached { inactive }),
            o => mismatch(Self::KIND, &o),
        }
    }
}

impl Proposal for EndSessions {
    /// The indices that were live and are now gone.
    type Reply = Vec<u64>;
    const KIND: &'static str = "End";
    fn accepted(o: Outcome) -> Result<Vec<u64>, OutcomeMismatch> {
        match o {
            Outcome::Ended { indices } => Ok(indices),
            o => mismatch(Self::KIND, &o),
        }
    }
}

impl Proposal for Expire {
    type Reply = ();
    const KIND: &'static str = "Expire";
    fn accepted(o: Outcome) -> Result<(), OutcomeMismatch> {
        match o {
            Outcome::Ended { .. } => Ok(()),
            o => mismatch(Self::KIND, &o),
        }
    }
}

impl Proposal for Heartbeat {
    type Reply = ();
    const KIND: &'static str = "Heartbeat";
    fn accepted(o: Outcome) -> Result<(), OutcomeMismatch> {
        match o {
            Outcome::Alive => Ok(()),
            o => mismatch(Self::KIND, &o),
        }
    }
}

impl Proposal for Depart {
    type Reply = ();
    const KIND: &'static str = "Depart";
    fn accepted(o: Outcome) -> Result<(), OutcomeMismatch> {
        match o {
            Outcome::Departed => Ok(()),
            o => mismatch(Self::KIND, &o),
        }
    }
}

impl Proposal for RaftStops {
    type Reply = ();
    const KIND: &'static str = "RaftStops";
    fn accepted(o: Outcome) -> Result<(), OutcomeMismatch> {
        match o {
            Outcome::Departed => Ok(()),
            o => mismatch(Self::KIND, &o),
        }
    }
}

impl Proposal for NodeDown {
    /// The tunnels that were detached.
    type Reply = Vec<TunnelId>;
    const KIND: &'static str = "NodeDown";
    fn accepted(o: Outcome) -> Result<Vec<TunnelId>, OutcomeMismatch> {
        match o {
            Outcome::NodeDown { detached } => Ok(detached),
            o => mismatch(Self::KIND, &o),
        }
    }
}

impl Proposal for SlotChange {
    /// The slot's epoch after the command.
    type Reply = u64;
    const KIND: &'static str = "Slot";
    fn accepted(o: Outcome) -> Result<u64, OutcomeMismatch> {
        match o {
            Outcome::Slot { epoch } => Ok(epoch),
            o => mismatch(Self::KIND, &o),
        }
    }
}

impl From<Result<LoggedIn, Rejection>> for Outcome {
    fn from(r: Result<LoggedIn, Rejection>) -> Outcome {
        match r {
            Ok(LoggedIn { index, address, evicted }) => {
                Outcome::LoggedIn { index, address, evicted }
            }
            Err(r) => Outcome::Rejected(r),
        }
    }
}

impl From<Result<Attached, Rejection>> for Outcome {
    fn from(r: Result<Attached, Rejection>) -> Outcome {
        match r {
            Ok(Attached { tunnel, address, user, replaced, resumed }) => {
                Outcome::Attached { tunnel, address, user, replaced, resumed }
            }
            Err(r) => Outcome::Rejected(r),
        }
    }
}

impl From<Result<Detached, Rejection>> for Outcome {
    fn from(r: Result<Detached, Rejection>) -> Outcome {
        match r {
            Ok(Detached { inactive }) => Outcome::Detached { inactive },
            Err(r) => Outcome::Rejected(r),
        }
    }
}
