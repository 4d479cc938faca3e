//! Session and tunnel timers: the disconnected timer, DPD, the idle timeout, max connect time.

use crate::fixtures::*;
use gatehouse_tests::gatehouse::{assert_no_secrets, probe, probe_login, PORT};
use gatehouse_tests::{ping, require_root, NodeOptions, Openconnect, Role};
use std::time::Duration;

#[test]
fn disconnected_timer_expiry_deletes_the_session_and_frees_its_address() {
    if !require_root("disconnected_timer_expiry_deletes_the_session_and_frees_its_address") {
        return;
    }
    let opts =
        NodeOptions { policy: vec!["disconnected_timeout = \"3s\"".into()], ..Default::default() };
    let (topo, node) = setup("e2ec", 2, &opts);
    let cookie = probe_login(&topo).unwrap();
    // Attach once so the session has been active, then let the tunnel drop.
    let mut oc = Openconnect::builder(&topo, topo.gw_outside_ip(), PORT, &node.pin)
        .cookie(&cookie)
        .spawn()
        .unwrap();
    oc.wait_event("connect", CONNECT).expect("connected with the cookie");
    // Gauges follow the applied state within a tenth of a second.
    let leased = gatehouse_tests::clock::poll_until(
        Duration::from_secs(5),
        Duration::from_millis(100),
        || (node.metric("gatehouse_address_leases", &[]) == 1.0).then_some(()),
    );
    assert!(leased.is_some(), "one address leased");
    oc.send_signal(gatehouse_tests::Signal::Kill).unwrap();
    // Inactive now; 3 s later the disconnected timer deletes the session.
    let gone = gatehouse_tests::clock::poll_until(
        Duration::from_secs(15),
        Duration::from_millis(200),
        || {
            (node.metric("gatehouse_sessions_ended_total", &["reason=\"disconnected_timeout\""])
                == 1.0)
                .then_some(())
        },
    );
    assert!(gone.is_some(), "disconnected timer did not end the session");
    assert_eq!(probe(&topo, &["connect", &cookie]).unwrap(), "status HTTP/1.1 401 Unauthorized");
    let freed = gatehouse_tests::clock::poll_until(
        Duration::from_secs(5),
        Duration::from_millis(200),
        || (node.metric("gatehouse_address_leases", &[]) == 0.0).then_some(()),
    );
    assert!(freed.is_some(), "address lease not released");
    assert_no_secrets(&node, &[&cookie]);
}

#[test]
fn frozen_client_loses_its_tunnel_to_dpd_but_keeps_its_session() {
    if !require_root("frozen_client_loses_its_tunnel_to_dpd_but_keeps_its_session") {
        return;
    }
    let opts = NodeOptions {
        policy: vec!["dpd_interval_gateway = \"2s\"".into(), "dpd_interval_client = \"2s\"".into()],
        ..Default::default()
    };
    let (topo, node) = setup("e2ed", 3, &opts);
    let mut oc =
        Openconnect::builder(&topo, topo.gw_outside_ip(), PORT, &node.pin).spawn().unwrap();
    let ip = oc.wait_event("connect", CONNECT).expect("connected");
    oc.send_signal(gatehouse_tests::Signal::Stop).unwrap();
    let torn = gatehouse_tests::clock::poll_until(
        Duration::from_secs(20),
        Duration::from_millis(200),
        || (node.metric("gatehouse_dpd_teardowns_total", &[]) == 1.0).then_some(()),
    );
    assert!(torn.is_some(), "gateway DPD did not tear the tunnel down");
    let inactive = gatehouse_tests::clock::poll_until(
        Duration::from_secs(5),
        Duration::from_millis(200),
        || (node.metric("gatehouse_sessions_inactive", &[]) == 1.0).then_some(()),
    );
    assert!(inactive.is_some(), "session should be kept, inactive");
    assert_eq!(node.metric("gatehouse_address_leases", &[]), 1.0);
    oc.send_signal(gatehouse_tests::Signal::Cont).unwrap();
    let again = oc.wait_event("reconnect", Duration::from_secs(40)).expect("resumed after SIGCONT");
    assert_eq!(again, ip, "same address after the freeze");
    let p = ping(&topo, Role::Client, topo.lan_ip(), 3, Duration::from_millis(100)).unwrap();
    assert!(p.all_received(), "{}", p.output);
    assert_eq!(node.metric("gatehouse_logins_total", &["result=\"ok\""]), 1.0, "no second login");
    assert_eq!(node.metric("gatehouse_resumes_total", &[]), 1.0);
}

#[test]
fn idle_timeout_closes_the_tunnel_and_keeps_the_session() {
    if !require_root("idle_timeout_closes_the_tunnel_and_keeps_the_session") {
        return;
    }
    let opts = NodeOptions {
        policy: vec!["idle_timeout = \"3s\"".into(), "disconnected_timeout = \"10m\"".into()],
        ..Default::default()
    };
    let (topo, node) = setup("e2eh", 7, &opts);
    let mut oc =
        Openconnect::builder(&topo, topo.gw_outside_ip(), PORT, &node.pin).spawn().unwrap();
    oc.wait_event("connect", CONNECT).expect("connected");
    // No data: keepalives and DPD are control frames and do not count.
    let code = oc.wait_exit(Duration::from_secs(20)).expect("client told to leave");
    assert_ne!(code, 0);
    assert!(oc.log().contains("Idle Timeout"), "DISCONNECT reason shown by the client");
    assert_eq!(node.metric("gatehouse_idle_teardowns_total", &[]), 1.0);
    // The tunnel carried no data: its detach waits half a second for a reconnect.
    let inactive = gatehouse_tests::clock::poll_until(
        Duration::from_secs(5),
        Duration::from_millis(100),
        || (sessions_json(&node)["sessions"][0]["inactive"] == true).then_some(()),
    );
    assert!(inactive.is_some(), "the session stays, inactive: {}", sessions_json(&node));
}

#[test]
fn max_connect_time_ends_the_session() {
    if !require_root("max_connect_time_ends_the_session") {
        return;
    }
    let opts =
        NodeOptions { policy: vec!["max_connect_time = \"4s\"".into()], ..Default::default() };
    let (topo, node) = setup("e2ei", 8, &opts);
    let mut oc =
        Openconnect::builder(&topo, topo.gw_outside_ip(), PORT, &node.pin).spawn().unwrap();
    oc.wait_event("connect", CONNECT).expect("connected");
    assert!(oc.log().contains("X-CSTP-Session-Timeout: 4"), "session timeout announced");
    let code = oc.wait_exit(Duration::from_secs(20)).expect("client told to leave");
    assert_ne!(code, 0);
    assert!(oc.log().contains("Max time exceeded"), "DISCONNECT reason shown by the client");
    assert_eq!(
        node.metric("gatehouse_sessions_ended_total", &["reason=\"max_connect_time\""]),
        1.0
    );
    assert!(node.ctl(&["show", "vpn-sessiondb"]).unwrap().contains("no active sessions"));
}
