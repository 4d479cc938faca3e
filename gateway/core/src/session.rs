//! The parent session record and its tunnels, as replicated (DESIGN.md §1, §4).

use crate::policy::SessionTimers;
use crate::time::UnixMillis;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;

/// SHA-256 of a session token. The token itself is never stored or replicated.
/// Serialized as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl Serialize for TokenHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut hex = String::with_capacity(64);
        for b in self.0 {
            hex.push_str(&format!("{b:02x}"));
        }
        s.serialize_str(&hex)
    }
}

impl<'de> Deserialize<'de> for TokenHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let hex = String::deserialize(d)?;
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return Err(serde::de::Error::custom("token hash must be 64 hex digits"));
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let txt = std::str::from_utf8(pair).map_err(serde::de::Error::custom)?;
            out[i] = u8::from_str_radix(txt, 16).map_err(serde::de::Error::custom)?;
        }
        Ok(TokenHash(out))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash prefix is enough to correlate; never print the whole thing.
        write!(f, "TokenHash({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

/// The kind of transport attached to a parent session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TunnelKind {
    /// TLS/CSTP: control channel and fallback data path.
    Ssl,
    /// DTLS datagrams.
    Dtls,
    /// QUIC datagrams (native client).
    Quic,
}

impl TunnelKind {
    /// The headend's protocol label (`SSL-Tunnel`, `DTLS-Tunnel`, `QUIC-Tunnel`).
    pub fn label(self) -> &'static str {
        match self {
            TunnelKind::Ssl => "SSL-Tunnel",
            TunnelKind::Dtls => "DTLS-Tunnel",
            TunnelKind::Quic => "QUIC-Tunnel",
        }
    }
}

/// `index.n`: tunnel ids grow for the life of the session; a reconnect makes new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TunnelId {
    /// The parent session's index.
    pub index: u64,
    /// Per-session sequence number, starting at 1.
    pub n: u32,
}

impl fmt::Display for TunnelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.index, self.n)
    }
}

/// One tunnel attached to a parent session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelRecord {
    /// Its id.
    pub id: TunnelId,
    /// Its transport.
    pub kind: TunnelKind,
    /// The node terminating it.
    pub node: u64,
    /// Client address and port as seen by the gateway.
    pub public_ip: String,
    /// Client source port.
    pub src_port: u16,
    /// Gateway port.
    pub dst_port: u16,
    /// When it was attached.
    pub started: UnixMillis,
}

/// Traffic counters, checkpointed into the replicated record when a tunnel detaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counters {
    /// Bytes sent to the client.
    pub bytes_tx: u64,
    /// Bytes received from the client.
    pub bytes_rx: u64,
    /// Packets sent to the client.
    pub pkts_tx: u64,
    /// Packets received from the client.
    pub pkts_rx: u64,
}

impl Counters {
    /// Component-wise sum.
    pub fn plus(self, o: Counters) -> Counters {
        Counters {
            bytes_tx: self.bytes_tx.saturating_add(o.bytes_tx),
            bytes_rx: self.bytes_rx.saturating_add(o.bytes_rx),
            pkts_tx: self.pkts_tx.saturating_add(o.pkts_tx),
            pkts_rx: self.pkts_rx.saturating_add(o.pkts_rx),
        }
    }
}

/// Why a parent session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndReason {
    /// The client sent CSTP DISCONNECT with reason 0xb0.
    UserRequested,
    /// `vpn-sessiondb logoff`.
    AdminLogoff,
    /// The disconnected timer expired while the session was inactive.
    DisconnectedTimeout,
    /// `max_connect_time` reached.
    MaxConnectTime,
    /// A newer login of the same user exceeded `simultaneous_logins`.
    SimultaneousLogins,
}

impl EndReason {
    /// The reason text sent to a client and shown to operators.
    pub fn text(self) -> &'static str {
        match self {
            EndReason::UserRequested => "User Requested",
            EndReason::AdminLogoff => "Administrator Reset",
            EndReason::DisconnectedTimeout => "Idle Timeout",
            EndReason::MaxConnectTime => "Max time exceeded",
            EndReason::SimultaneousLogins => "Simultaneous logins exceeded",
        }
    }
}

/// A parent session: survives the loss of every tunnel until a timer or a logoff ends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentSession {
    /// Cluster-unique index (`Index`).
    pub index: u64,
    /// Username.
    pub user: String,
    /// Tunnel group logged in through.
    pub tunnel_group: String,
    /// Group policy applied.
    pub group_policy: String,
    /// Inner address.
    pub address: Ipv4Addr,
    /// SHA-256 of the session token.
    pub token_hash: TokenHash,
    /// Login time.
    pub login_time: UnixMillis,
    /// `Some(t)` while the session has no ssl tunnel: inactive since `t`.
    pub inactive_since: Option<UnixMillis>,
    /// Timers copied from the policy at login.
    pub timers: SessionTimers,
    /// Client type and version (`Client Ver`).
    pub client_version: String,
    /// Last public address of the client.
    pub public_ip: String,
    /// Attached tunnels.
    pub tunnels: Vec<TunnelRecord>,
    /// Next tunnel sequence number.
    pub next_tunnel: u32,
    /// Counters of tunnels that have detached.
    pub counters: Counters,
    /// Number of resumes: ssl tunnels attached after the session's first one.
    pub resumes: u32,
    /// The slot hosting the session (`None`: logged in on a node address).
    #[serde(default)]
    pub slot: Option<u32>,
}

impl ParentSession {
    /// Whether an ssl tunnel is attached (the definition of "active").
    pub fn has_ssl(&self) -> bool {
        self.tunnels.iter().any(|t| t.kind == TunnelKind::Ssl)
    }

    /// When the disconnected timer fires, if it is running.
    pub fn disconnected_deadline(&self) -> Option<UnixMillis> {
        let since = self.inactive_since?;
        Some(since.plus(self.timers.disconnected_timeout?))
    }

    /// When max connect time ends the session, if limited.
    pub fn max_connect_deadline(&self) -> Option<UnixMillis> {
        Some(self.login_time.plus(self.timers.max_connect_time?))
    }

    /// The earliest session-ending deadline and which rule it is.
    pub fn next_deadline(&self) -> Option<(UnixMillis, EndReason)> {
        let d = self.disconnected_deadline().map(|t| (t, EndReason::DisconnectedTimeout));
        let m = self.max_connect_deadline().map(|t| (t, EndReason::MaxConnectTime));
        match (d, m) {
            (Some(a), Some(b)) => Some(if b.0 <= a.0 { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// Which rule ends the session at `now`, if any.
    pub fn expired_at(&self, now: UnixMillis) -> Option<EndReason> {
        self.next_deadline().filter(|(t, _)| *t <= now).map(|(_, r)| r)
    }
}
