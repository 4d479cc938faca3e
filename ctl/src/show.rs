//! `show vpn-sessiondb [detail]` as plain text, in the reference headend's layout
//! (`show vpn-sessiondb anyconnect`): two columns of `Key : value`, then with `detail` one
//! block for the AnyConnect-Parent and one per tunnel.

use super::time;
use gatehouse_proto::admin as pb;
use std::fmt::Write;

/// The headend's wording for an empty listing.
pub const NO_SESSIONS: &str = "INFO: There are presently no active sessions";

/// The license line of every AnyConnect session on the reference headend.
const LICENSE: &str = "AnyConnect Premium";

/// Tunnel labels in the order the `Protocol` line lists them.
const KINDS: [&str; 3] = ["SSL-Tunnel", "DTLS-Tunnel", "QUIC-Tunnel"];

/// `AnyConnect-Parent SSL-Tunnel ...`: the parent plus each tunnel kind present.
pub fn protocol(s: &pb::Session) -> String {
    let mut p = String::from("AnyConnect-Parent");
    for k in KINDS.iter().filter(|k| s.tunnels.iter().any(|t| t.kind == **k)) {
        p.push(' ');
        p.push_str(k);
    }
    for t in &s.tunnels {
        // A kind this build does not know still shows, once.
        if !KINDS.contains(&t.kind.as_str()) && !p.split(' ').any(|w| w == t.kind) {
            p.push(' ');
            p.push_str(&t.kind);
        }
    }
    p
}

/// Seconds since login, against the answering node's clock.
pub fn duration_s(s: &pb::Session, now_unix_ms: u64) -> u64 {
    now_unix_ms.saturating_sub(s.login_time_unix_ms) / 1000
}

/// Seconds without an ssl tunnel; 0 while active.
pub fn inactivity_s(s: &pb::Session, now_unix_ms: u64) -> u64 {
    s.inactive_since_unix_ms.map(|t| now_unix_ms.saturating_sub(t) / 1000).unwrap_or(0)
}

fn kv(out: &mut String, indent: &str, k: &str, v: impl std::fmt::Display) {
    let _ = writeln!(out, "{indent}{k:<13}: {v}");
}

fn pair(
    out: &mut String,
    indent: &str,
    k1: &str,
    v1: impl std::fmt::Display,
    k2: &str,
    v2: impl std::fmt::Display,
) {
    let _ = writeln!(out, "{indent}{k1:<13}: {:<22} {k2:<13}: {v2}", v1.to_string());
}

fn minutes(secs: u64) -> String {
    format!("{} Minutes", secs / 60)
}

fn idle_time_out(s: &pb::Session) -> String {
    if s.idle_timeout_s == 0 {
        "none".into()
    } else {
        minutes(s.idle_timeout_s)
    }
}

fn idle_to_left(s: &pb::Session, left: Option<u64>) -> String {
    match left {
        _ if s.idle_timeout_s == 0 => "none".into(),
        Some(l) => minutes(l),
        // Idle time is known only on the node running the tunnel.
        None => "N/A".into(),
    }
}

/// The whole listing: header, then each session; [`NO_SESSIONS`] when there is none.
pub fn render(reply: &pb::ShowSessionsReply, detail: bool) -> String {
    if reply.sessions.is_empty() {
        return format!("{NO_SESSIONS}\n");
    }
    let mut out = String::from(if detail {
        "Session Type: AnyConnect Detailed\n"
    } else {
        "Session Type: AnyConnect\n"
    });
    for s in &reply.sessions {
        out.push('\n');
        render_session(&mut out, s, reply.now_unix_ms, detail);
    }
    out
}

/// One session.
pub fn render_session(out: &mut String, s: &pb::Session, now_unix_ms: u64, detail: bool) {
    pair(out, "", "Username", &s.username, "Index", s.index);
    pair(out, "", "Assigned IP", &s.assigned_ip, "Public IP", &s.public_ip);
    kv(out, "", "Protocol", protocol(s));
    kv(out, "", "License", LICENSE);
    pair(out, "", "Bytes Tx", s.bytes_tx, "Bytes Rx", s.bytes_rx);
    if detail {
        pair(out, "", "Pkts Tx", s.pkts_tx, "Pkts Rx", s.pkts_rx);
    }
    pair(out, "", "Group Policy", &s.group_policy, "Tunnel Group", &s.tunnel_group);
    kv(out, "", "Login Time", time::login_time(s.login_time_unix_ms));
    kv(out, "", "Duration", time::duration(duration_s(s, now_unix_ms)));
    kv(out, "", "Inactivity", time::duration(inactivity_s(s, now_unix_ms)));
    if let Some(slot) = s.slot {
        // Clustered: where the session lives (its slot) and which node holds its tunnel.
        let node = s.tunnels.first().map_or_else(|| "-".to_string(), |t| t.node.to_string());
        pair(out, "", "Slot", slot, "Node", node);
    }
    if !detail {
        return;
    }
    out.push('\n');
    let _ = writeln!(out, "AnyConnect-Parent Tunnels: 1");
    for k in KINDS {
        let n = s.tunnels.iter().filter(|t| t.kind == k).count();
        if n > 0 || k == "SSL-Tunnel" {
            let _ = writeln!(out, "{k} Tunnels: {n}");
        }
    }
    out.push('\n');
    let ind = "  ";
    let _ = writeln!(out, "AnyConnect-Parent:");
    kv(out, ind, "Tunnel ID", s.index);
    kv(out, ind, "Public IP", &s.public_ip);
    // The parent lives as long as its longest-lived tunnel.
    let parent_left = s.tunnels.iter().filter_map(|t| t.idle_left_s).max();
    pair(out, ind, "Idle Time Out", idle_time_out(s), "Idle TO Left", idle_to_left(s, parent_left));
    kv(out, ind, "Client Ver", &s.client_version);
    for t in &s.tunnels {
        out.push('\n');
        let _ = writeln!(out, "{}:", t.kind);
        kv(out, ind, "Tunnel ID", &t.id);
        pair(out, ind, "Assigned IP", &s.assigned_ip, "Public IP", &t.public_ip);
        pair(out, ind, "Src Port", t.src_port, "Dst Port", t.dst_port);
        pair(
            out,
            ind,
            "Idle Time Out",
            idle_time_out(s),
            "Idle TO Left",
            idle_to_left(s, t.idle_left_s),
        );
        kv(out, ind, "Client Ver", &s.client_version);
        pair(out, ind, "Bytes Tx", t.bytes_tx, "Bytes Rx", t.bytes_rx);
        pair(out, ind, "Pkts Tx", t.pkts_tx, "Pkts Rx", t.pkts_rx);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// 2025-03-04 14:02:11 UTC.
    pub(crate) const LOGIN: u64 = 1_741_096_931_000;

    /// alice, session 1436, one ssl tunnel 1436.2, 5 min 12 s after login.
    pub(crate) fn reply() -> pb::ShowSessionsReply {
        pb::ShowSessionsReply {
            now_unix_ms: LOGIN + 312_000,
            node_id: 1,
            sessions: vec![pb::Session {
                index: 1436,
                username: "alice".into(),
                assigned_ip: "10.99.0.2".into(),
                public_ip: "203.0.113.5".into(),
                tunnel_group: "default".into(),
                group_policy: "engineering".into(),
                login_time_unix_ms: LOGIN,
                inactive_since_unix_ms: None,
                client_version: "Open AnyConnect VPN Agent v9.12".into(),
                idle_timeout_s: 1800,
                disconnected_timeout_s: 1800,
                max_connect_time_s: 0,
                resumes: 1,
                bytes_tx: 15_360,
                bytes_rx: 4_096,
                pkts_tx: 20,
                pkts_rx: 12,
                slot: None,
                tunnels: vec![pb::Tunnel {
                    id: "1436.2".into(),
                    kind: "SSL-Tunnel".into(),
                    node: 1,
                    public_ip: "203.0.113.5".into(),
                    src_port: 51234,
                    dst_port: 443,
                    started_unix_ms: LOGIN + 60_000,
                    bytes_tx: 7_680,
                    bytes_rx: 2_048,
                    pkts_tx: 10,
                    pkts_rx: 6,
                    idle_left_s: Some(1_750),
                }],
            }],
        }
    }

    #[test]
    fn summary_layout_of_one_session() {
        let want = "\
Session Type: AnyConnect

Username     : alice                  Index        : 1436
Assigned IP  : 10.99.0.2              Public IP    : 203.0.113.5
Protocol     : AnyConnect-Parent SSL-Tunnel
License      : AnyConnect Premium
Bytes Tx     : 15360                  Bytes Rx     : 4096
Group Policy : engineering            Tunnel Group : default
Login Time   : 14:02:11 UTC Tue Mar 4 2025
Duration     : 0h:05m:12s
Inactivity   : 0h:00m:00s
";
        assert_eq!(render(&reply(), false), want);
    }

    #[test]
    fn detail_layout_of_one_session_with_a_tunnel() {
        let want = "\
Session Type: AnyConnect Detailed

Username     : alice                  Index        : 1436
Assigned IP  : 10.99.0.2              Public IP    : 203.0.113.5
Protocol     : AnyConnect-Parent SSL-Tunnel
License      : AnyConnect Premium
Bytes Tx     : 15360                  Bytes Rx     : 4096
Pkts Tx      : 20                     Pkts Rx      : 12
Group Policy : engineering            Tunnel Group : default
Login Time   : 14:02:11 UTC Tue Mar 4 2025
Duration     : 0h:05m:12s
Inactivity   : 0h:00m:00s

AnyConnect-Parent Tunnels: 1
SSL-Tunnel Tunnels: 1

AnyConnect-Parent:
  Tunnel ID    : 1436
  Public IP    : 203.0.113.5
  Idle Time Out: 30 Minutes             Idle TO Left : 29 Minutes
  Client Ver   : Open AnyConnect VPN Agent v9.12

SSL-Tunnel:
  Tunnel ID    : 1436.2
  Assigned IP  : 10.99.0.2              Public IP    : 203.0.113.5
  Src Port     : 51234                  Dst Port     : 443
  Idle Time Out: 30 Minutes             Idle TO Left : 29 Minutes
  Client Ver   : Open AnyConnect VPN Agent v9.12
  Bytes Tx     : 7680                   Bytes Rx     : 2048
  Pkts Tx      : 10                     Pkts Rx      : 6
";
        assert_eq!(render(&reply(), true), want);
    }

    #[test]
    fn inactive_session_shows_time_since_its_tunnel_dropped() {
        let mut r = reply();
        let s = &mut r.sessions[0];
        s.tunnels.clear();
        s.inactive_since_unix_ms = Some(LOGIN + 200_000);
        let out = render(&r, true);
        assert!(out.contains("Protocol     : AnyConnect-Parent\n"), "{out}");
        assert!(out.contains("Inactivity   : 0h:01m:52s\n"), "{out}");
        assert!(out.contains("SSL-Tunnel Tunnels: 0\n"), "{out}");
        assert!(out.contains("Idle TO Left : N/A\n"), "{out}");
    }

    #[test]
    fn empty_listing_uses_the_headend_wording() {
        let r = pb::ShowSessionsReply { sessions: vec![], now_unix_ms: 0, node_id: 1 };
        assert_eq!(render(&r, false), "INFO: There are presently no active sessions\n");
    }

    #[test]
    fn protocol_lists_each_kind_once_in_headend_order() {
        let mut s = reply().sessions.remove(0);
        let mut dtls = s.tunnels[0].clone();
        dtls.kind = "DTLS-Tunnel".into();
        s.tunnels.insert(0, dtls);
        s.tunnels.push(s.tunnels[1].clone());
        assert_eq!(protocol(&s), "AnyConnect-Parent SSL-Tunnel DTLS-Tunnel");
    }
}
