//! Group policy: the per-group settings a parent session is created under (DESIGN.md §1).

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Group policy, with the reference headend's defaults (Cisco ASA `group-policy` attributes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPolicy {
    /// Policy name, as referenced by tunnel groups.
    pub name: String,
    /// Name of the address pool sessions get their inner address from.
    pub address_pool: String,
    /// DNS servers pushed to the client (`X-CSTP-DNS`).
    pub dns: Vec<Ipv4Addr>,
    /// Default domain pushed to the client (`X-CSTP-Default-Domain`).
    pub default_domain: Option<String>,
    /// Split-include routes (`X-CSTP-Split-Include`); empty = tunnel all.
    pub split_include: Vec<(Ipv4Addr, u8)>,
    /// The gateway probes a silent tunnel after this long (`dpd_interval_gateway`).
    pub dpd_interval_gateway: Option<Duration>,
    /// DPD interval told to the client (`X-CSTP-DPD`).
    pub dpd_interval_client: Option<Duration>,
    /// Keepalive interval told to the client (`X-CSTP-Keepalive`).
    pub keepalive: Option<Duration>,
    /// A tunnel without data for this long is torn down (`vpn-idle-timeout`).
    pub idle_timeout: Option<Duration>,
    /// An inactive session (no ssl tunnel) is deleted after this long.
    pub disconnected_timeout: Option<Duration>,
    /// A session ends this long after login, whatever happens (`vpn-session-timeout`).
    pub max_connect_time: Option<Duration>,
    /// At most this many sessions per user; a new login logs off the oldest beyond it.
    pub simultaneous_logins: u32,
    /// Whether the client may reconnect with its cookie (`auto-reconnect`).
    pub auto_reconnect: bool,
    /// `reconnect-after-resume` or `disconnect-on-suspend` (AnyConnect profile wording).
    pub auto_reconnect_behavior: String,
}

impl GroupPolicy {
    /// The reference defaults: DPD 30 s both sides, keepalive 20 s, idle timeout 30 min,
    /// disconnected timeout = idle timeout, no max connect time, 3 simultaneous logins.
    pub fn with_defaults(name: &str, address_pool: &str) -> Self {
        let idle = Duration::from_secs(30 * 60);
        GroupPolicy {
            name: name.to_string(),
            address_pool: address_pool.to_string(),
            dns: Vec::new(),
            default_domain: None,
            split_include: Vec::new(),
            dpd_interval_gateway: Some(Duration::from_secs(30)),
            dpd_interval_client: Some(Duration::from_secs(30)),
            keepalive: Some(Duration::from_secs(20)),
            idle_timeout: Some(idle),
            disconnected_timeout: Some(idle),
            max_connect_time: None,
            simultaneous_logins: 3,
            auto_reconnect: true,
            auto_reconnect_behavior: "reconnect-after-resume".to_string(),
        }
    }

    /// The timers a session is created with; they are copied into the replicated record so
    /// that a policy change does not move the deadlines of existing sessions.
    pub fn session_timers(&self) -> SessionTimers {
        SessionTimers {
            idle_timeout: self.idle_timeout,
            disconnected_timeout: self.disconnected_timeout.or(self.idle_timeout),
            max_connect_time: self.max_connect_time,
            simultaneous_logins: self.simultaneous_logins,
            auto_reconnect: self.auto_reconnect,
        }
    }
}

/// The session-level timers that are replicated with each parent session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionTimers {
    /// Per-tunnel idle timeout (shown as `Idle Time Out`).
    pub idle_timeout: Option<Duration>,
    /// How long the session survives without an ssl tunnel.
    pub disconnected_timeout: Option<Duration>,
    /// Absolute session lifetime from login.
    pub max_connect_time: Option<Duration>,
    /// Per-user session limit applied at login.
    pub simultaneous_logins: u32,
    /// Whether the cookie may resume the session on a new tunnel.
    pub auto_reconnect: bool,
}
