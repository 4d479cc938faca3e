//! `--json`: the admin API's answers as JSON with stable field names, for scripts. The
//! structs mirror the proto with the derived values the plain listing shows (protocol,
//! duration, inactivity), so a script never recomputes them.

use super::show;
use gatehouse_proto::admin as pb;
use serde::Serialize;

/// `show vpn-sessiondb --json`.
#[derive(Debug, Serialize)]
pub struct SessionsJson {
    /// The node that answered.
    pub node_id: u64,
    /// Its wall clock when it answered; durations are relative to it.
    pub now_unix_ms: u64,
    /// Sessions in index order.
    pub sessions: Vec<SessionJson>,
}

/// One session.
#[derive(Debug, Serialize)]
pub struct SessionJson {
    /// `Index`.
    pub index: u64,
    /// `Username`.
    pub username: String,
    /// `Assigned IP`.
    pub assigned_ip: String,
    /// `Public IP`.
    pub public_ip: String,
    /// `Protocol`: `AnyConnect-Parent SSL-Tunnel ...`.
    pub protocol: String,
    /// Session totals.
    pub bytes_tx: u64,
    /// Session totals.
    pub bytes_rx: u64,
    /// Session totals.
    pub pkts_tx: u64,
    /// Session totals.
    pub pkts_rx: u64,
    /// Login time.
    pub login_time_unix_ms: u64,
    /// `Duration`, seconds.
    pub duration_s: u64,
    /// `Inactivity`, seconds; 0 while active.
    pub inactivity_s: u64,
    /// No ssl tunnel attached.
    pub inactive: bool,
    /// `Tunnel Group`.
    pub tunnel_group: String,
    /// `Group Policy`.
    pub group_policy: String,
    /// `Client Ver`.
    pub client_version: String,
    /// Tunnel attaches after the first.
    pub resumes: u32,
    /// The slot hosting the session.
    pub slot: Option<u32>,
    /// Attached tunnels.
    pub tunnels: Vec<TunnelJson>,
}

/// One tunnel.
#[derive(Debug, Serialize)]
pub struct TunnelJson {
    /// `Tunnel ID` (`1436.2`).
    pub id: String,
    /// `SSL-Tunnel`, `DTLS-Tunnel`, `QUIC-Tunnel`.
    pub kind: String,
    /// The node running it.
    pub node: u64,
    /// Client address.
    pub public_ip: String,
    /// Client port.
    pub src_port: u32,
    /// Gateway port.
    pub dst_port: u32,
    /// Live counters (0 when read from another node).
    pub bytes_tx: u64,
    /// Live counters.
    pub bytes_rx: u64,
    /// Live counters.
    pub pkts_tx: u64,
    /// Live counters.
    pub pkts_rx: u64,
    /// `Idle Time Out`, seconds; 0 = none.
    pub idle_timeout_s: u64,
    /// `Idle TO Left`, seconds; null when unknown (no idle timeout, or another node's tunnel).
    pub idle_left_s: Option<u64>,
}

/// `vpn-sessiondb logoff --json`.
#[derive(Debug, Serialize)]
pub struct LogoffJson {
    /// The selector in the headend's words (`name "bob"`).
    pub selector: String,
    /// How many sessions ended.
    pub logged_off: usize,
    /// Their indices.
    pub indices: Vec<u64>,
}

impl From<&pb::ShowSessionsReply> for SessionsJson {
    fn from(r: &pb::ShowSessionsReply) -> Self {
        let now = r.now_unix_ms;
        let sessions = r
            .sessions
            .iter()
            .map(|s| SessionJson {
                index: s.index,
                username: s.username.clone(),
                assigned_ip: s.assigned_ip.clone(),
                public_ip: s.public_ip.clone(),
                protocol: show::protocol(s),
                bytes_tx: s.bytes_tx,
                bytes_rx: s.bytes_rx,
                pkts_tx: s.pkts_tx,
                pkts_rx: s.pkts_rx,
                login_time_unix_ms: s.login_time_unix_ms,
                duration_s: show::duration_s(s, now),
                inactivity_s: show::inactivity_s(s, now),
                inactive: s.inactive_since_unix_ms.is_some(),
                tunnel_group: s.tunnel_group.clone(),
                group_policy: s.group_policy.clone(),
                client_version: s.client_version.clone(),
                resumes: s.resumes,
                slot: s.slot,
                tunnels: s
                    .tunnels
                    .iter()
                    .map(|t| TunnelJson {
                        id: t.id.clone(),
                        kind: t.kind.clone(),
                        node: t.node,
                        public_ip: t.public_ip.clone(),
                        src_port: t.src_port,
                        dst_port: t.dst_port,
                        bytes_tx: t.bytes_tx,
                        bytes_rx: t.bytes_rx,
                        pkts_tx: t.pkts_tx,
                        pkts_rx: t.pkts_rx,
                        idle_timeout_s: s.idle_timeout_s,
                        idle_left_s: t.idle_left_s,
                    })
                    .collect(),
            })
            .collect();
        SessionsJson { node_id: r.node_id, now_unix_ms: now, sessions }
    }
}

/// Pretty JSON of a serializable answer.
pub fn to_string<T: Serialize>(v: &T) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::show::tests::reply;

    fn keys(v: &serde_json::Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    }

    #[test]
    fn field_names_are_stable() {
        let v = serde_json::to_value(SessionsJson::from(&reply())).unwrap();
        assert_eq!(keys(&v), ["node_id", "now_unix_ms", "sessions"]);
        let s = &v["sessions"][0];
        assert_eq!(
            keys(s),
            [
                "assigned_ip",
                "bytes_rx",
                "bytes_tx",
                "client_version",
                "duration_s",
                "group_policy",
                "inactive",
                "inactivity_s",
                "index",
                "login_time_unix_ms",
                "pkts_rx",
                "pkts_tx",
                "protocol",
                "public_ip",
                "resumes",
                "slot",
                "tunnel_group",
                "tunnels",
                "username",
            ]
        );
        assert_eq!(
            keys(&s["tunnels"][0]),
            [
                "bytes_rx",
                "bytes_tx",
                "dst_port",
                "id",
                "idle_left_s",
                "idle_timeout_s",
                "kind",
                "node",
                "pkts_rx",
                "pkts_tx",
                "public_ip",
                "src_port",
            ]
        );
    }

    #[test]
    fn values_carry_the_derived_columns() {
        let v = serde_json::to_value(SessionsJson::from(&reply())).unwrap();
        let s = &v["sessions"][0];
        assert_eq!(s["index"], 1436);
        assert_eq!(s["protocol"], "AnyConnect-Parent SSL-Tunnel");
        assert_eq!(s["duration_s"], 312);
        assert_eq!(s["inactivity_s"], 0);
        assert_eq!(s["inactive"], false);
        assert_eq!(s["tunnels"][0]["id"], "1436.2");
        assert_eq!(s["tunnels"][0]["idle_timeout_s"], 1800);
        assert_eq!(s["tunnels"][0]["idle_left_s"], 1750);
        let mut r = reply();
        r.sessions[0].tunnels[0].idle_left_s = None;
        r.sessions[0].inactive_since_unix_ms = Some(r.now_unix_ms - 42_000);
        let v = serde_json::to_value(SessionsJson::from(&r)).unwrap();
        assert_eq!(v["sessions"][0]["inactive"], true);
        assert_eq!(v["sessions"][0]["inactivity_s"], 42);
        assert!(v["sessions"][0]["tunnels"][0]["idle_left_s"].is_null());
    }
}
