//! The CONNECT answer: the X-CSTP headers, the session timeout left, MTU negotiation.

use crate::fixtures::*;
use gatehouse_core::tunnel::connect::{connect_headers, negotiate_mtu, ClientMtu};
use gatehouse_core::*;
use std::net::Ipv4Addr;
use std::time::Duration;

fn sample_session() -> (ParentSession, GroupPolicy) {
    let mut p = GroupPolicy::with_defaults("staff", "pool");
    p.dns = vec![Ipv4Addr::new(10, 99, 0, 53)];
    p.default_domain = Some("corp.example".into());
    p.split_include = vec![(Ipv4Addr::new(192, 168, 10, 0), 24)];
    p.max_connect_time = Some(Duration::from_secs(3600));
    let s = ParentSession {
        index: 1436,
        user: "alice".into(),
        tunnel_group: "tg".into(),
        group_policy: "staff".into(),
        address: ADDR,
        token_hash: TokenHash([1; 32]),
        login_time: UnixMillis(1_000_000),
        inactive_since: None,
        timers: p.session_timers(),
        client_version: "Open AnyConnect VPN Agent v9.01-3".into(),
        public_ip: "198.51.100.7".into(),
        tunnels: Vec::new(),
        next_tunnel: 2,
        counters: Counters::default(),
        resumes: 0,
        slot: None,
    };
    (s, p)
}

#[test]
fn connect_headers_are_the_same_text_as_before() {
    let (s, p) = sample_session();
    let client = ClientMtu { mtu: Some("1399"), base_mtu: Some(" 1400 ") };
    let mtu = negotiate_mtu(client, MTU);
    assert_eq!(mtu, 1399);
    let h = connect_headers(UnixMillis(1_060_500), &s, Some(&p), 24, mtu, client);
    let text: Vec<String> = h.iter().map(|(n, v)| format!("{n}: {v}")).collect();
    assert_eq!(
        text,
        [
            "X-CSTP-Version: 1",
            "X-CSTP-Server-Name: Gatehouse",
            "X-CSTP-DPD: 30",
            "X-CSTP-Default-Domain: corp.example",
            "X-CSTP-Address: 10.99.0.2",
            "X-CSTP-Netmask: 255.255.255.0",
            "X-CSTP-DNS: 10.99.0.53",
            "X-CSTP-Split-Include: 192.168.10.0/255.255.255.0",
            "X-CSTP-Keepalive: 20",
            "X-CSTP-Idle-Timeout: 1800",
            "X-CSTP-Disconnected-Timeout: 1800",
            "X-CSTP-Session-Timeout: 3600",
            "X-CSTP-Session-Timeout-Remaining: 3539",
            "X-CSTP-Rekey-Method: none",
            "X-CSTP-Base-MTU: 1400",
            "X-CSTP-MTU: 1399",
        ]
    );
}

#[test]
fn connect_headers_without_a_policy_or_limits() {
    let (mut s, _) = sample_session();
    s.timers.max_connect_time = None;
    s.timers.idle_timeout = None;
    let h = connect_headers(UnixMillis(0), &s, None, 32, MTU, ClientMtu::default());
    let text: Vec<String> = h.iter().map(|(n, v)| format!("{n}: {v}")).collect();
    assert_eq!(
        text,
        [
            "X-CSTP-Version: 1",
            "X-CSTP-Server-Name: Gatehouse",
            "X-CSTP-Address: 10.99.0.2",
            "X-CSTP-Netmask: 255.255.255.255",
            "X-CSTP-Idle-Timeout: none",
            "X-CSTP-Disconnected-Timeout: 1800",
            "X-CSTP-Session-Timeout: none",
            "X-CSTP-Rekey-Method: none",
            "X-CSTP-Base-MTU: 1500",
            "X-CSTP-MTU: 1406",
        ]
    );
}

#[test]
fn session_timeout_remaining_counts_from_now() {
    let (s, p) = sample_session();
    let remaining = |now: u64| {
        connect_headers(UnixMillis(now), &s, Some(&p), 24, MTU, ClientMtu::default())
            .into_iter()
            .find(|(n, _)| *n == "X-CSTP-Session-Timeout-Remaining")
            .map(|(_, v)| v)
    };
    assert_eq!(remaining(1_000_000).as_deref(), Some("3600"));
    assert_eq!(remaining(1_000_000 + 1_800_000).as_deref(), Some("1800"));
    assert_eq!(remaining(1_000_000 + 4_000_000).as_deref(), Some("0"), "past the deadline");
}

#[test]
fn client_mtu_caps_ours_and_nonsense_is_ignored() {
    let m = |v: &str| negotiate_mtu(ClientMtu { mtu: Some(v), base_mtu: None }, MTU);
    assert_eq!(m("1300"), 1300);
    assert_eq!(m("9000"), MTU);
    assert_eq!(m("575"), MTU);
    assert_eq!(m("big"), MTU);
    assert_eq!(negotiate_mtu(ClientMtu::default(), MTU), MTU);
}
