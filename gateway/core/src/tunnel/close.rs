//! How a tunnel ends, the orders that end it from outside, and what the session db must hear
//! afterwards. Shared by every tunnel kind.

use crate::session::{Counters, EndReason};
use std::time::Duration;

/// How long a closed tunnel that carried nothing waits before it detaches: a client that
/// reconnects at once (a reconnect storm, a flapping link) replaces it with its own attach,
/// and the detach is then skipped.
pub const DETACH_GRACE: Duration = Duration::from_millis(500);

/// Why a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelEnd {
    /// TLS closed or failed.
    Closed,
    /// Gateway DPD declared the peer dead.
    DeadPeer,
    /// No data for the idle timeout.
    Idle,
    /// Client sent DISCONNECT 0xb0: the user logged out.
    UserLogout,
    /// Client sent an empty DISCONNECT (or TERMINATE): temporary, keep the session.
    ClientTemporary,
    /// The session ended (logoff, eviction, timer).
    SessionEnded,
    /// A newer tunnel took over.
    Replaced,
    /// The client sent a malformed frame.
    Protocol,
    /// The node is stopping.
    Stopping,
}

impl TunnelEnd {
    /// The reason as logged (`ssl tunnel down reason=...`).
    pub fn text(self) -> &'static str {
        match self {
            TunnelEnd::Closed => "connection closed",
            TunnelEnd::DeadPeer => "dead peer detected",
            TunnelEnd::Idle => "idle timeout",
            TunnelEnd::UserLogout => "user logout",
            TunnelEnd::ClientTemporary => "client disconnect (temporary)",
            TunnelEnd::SessionEnded => "session ended",
            TunnelEnd::Replaced => "replaced by a newer tunnel",
            TunnelEnd::Protocol => "protocol error",
            TunnelEnd::Stopping => "node stopping",
        }
    }
}

/// How the node stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Operator stop: the client is told to leave (CSTP TERMINATE).
    Terminate,
    /// Restart: close without a word, so the client reconnects and resumes.
    Restart,
}

/// An order from the control plane to a running tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelOrder {
    /// Its session ended: tell the client why and close.
    SessionEnded(EndReason),
    /// A newer tunnel of the same session took over: close quietly.
    Replaced,
    /// The node is stopping.
    Stop(StopMode),
}

/// What the session db must hear once a tunnel closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterClose {
    /// The user logged out: end the session (which removes its tunnels).
    EndSession,
    /// The session is gone already: nothing to detach.
    Nothing,
    /// Detach the tunnel now, handing in its counters; the session stays and, without an ssl
    /// tunnel, becomes inactive.
    DetachNow(Counters),
    /// It carried nothing: after [`DETACH_GRACE`] the tunnel reports
    /// `DetachIfRecorded`, and the driver detaches it only if the db still records it.
    DetachAfterGrace,
}

impl AfterClose {
    /// The decision for a tunnel that ended with `end` having carried `counters`.
    pub fn decide(end: TunnelEnd, counters: Counters) -> AfterClose {
        match end {
            TunnelEnd::UserLogout => AfterClose::EndSession,
            TunnelEnd::SessionEnded => AfterClose::Nothing,
            TunnelEnd::Stopping => AfterClose::DetachNow(counters),
            _ if counters != Counters::default() => AfterClose::DetachNow(counters),
            _ => AfterClose::DetachAfterGrace,
        }
    }
}
