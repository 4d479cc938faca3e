//! Checks the harness itself against the reference headend (ocserv), so that a failing Gatehouse
//! end-to-end test points at the gateway, not at the harness. Not part of the normal run:
//!
//! `cargo test -p gatehouse-tests --test harness_selfcheck -- --ignored --nocapture`
//! (root, with `WITH_OCSERV=1 scripts/install-deps.sh`).

use std::time::Duration;

use gatehouse_tests::{
    default_pool, ping, require_root, ss_kill, tcp_transfer, tcp_transfer_with, Direction, Ocserv,
    OcservConfig, Openconnect, Role, Signal, Topology,
};

#[test]
#[ignore = "needs root and ocserv; checks the harness, not Gatehouse"]
fn harness_works_against_ocserv() {
    if !require_root("harness_works_against_ocserv") {
        return;
    }
    let k = 9;
    let topo = Topology::new("self", k, &default_pool(k)).expect("topology");
    // Declared after `topo`, so dropped before it.
    let server = Ocserv::start(&topo, &OcservConfig::default()).expect("ocserv starts");

    // Without the tunnel there is no route from the client to the lan.
    let before = ping(&topo, Role::Client, topo.lan_ip(), 1, Duration::from_millis(200)).unwrap();
    assert_eq!(before.received, 0, "lan reachable without a tunnel: {}", before.output);

    let mut oc = Openconnect::builder(&topo, topo.gw_outside_ip(), server.port(), server.pin())
        .reconnect_timeout(30)
        .spawn()
        .expect("spawn openconnect");
    let ip = oc.wait_event("connect", Duration::from_secs(20)).expect("openconnect connects");
    eprintln!("connected with {ip}; events {:?}", oc.events());
    assert_eq!(oc.tun_addr().map(|a| a.to_string()), Some(ip.clone()));
    let pool_prefix = format!("10.{}.128.", 200 + u16::from(k));
    assert!(ip.starts_with(&pool_prefix), "address {ip} not from the pool");

    let p = ping(&topo, Role::Client, topo.lan_ip(), 5, Duration::from_millis(50)).unwrap();
    assert!(p.all_received(), "ping through the tunnel: {}", p.output);

    let bytes = 4 << 20;
    let got = tcp_transfer(&topo, bytes).expect("tcp transfer");
    assert_eq!(got, bytes, "TCP bytes received");
    let got = tcp_transfer_with(&topo, 1 << 20, Direction::Download, Duration::from_secs(30))
        .expect("download");
    assert_eq!(got, 1 << 20, "TCP bytes downloaded");
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", oc.pid())).unwrap();
    assert_eq!(comm.trim(), "openconnect", "pid() is not openconnect's");

    // Break the TLS connection from the server side: openconnect must reconnect with the same
    // cookie and get the same address.
    let killed = ss_kill(&topo, Role::Gw, server.port()).expect("ss -K");
    assert!(killed >= 1, "no established connection on port {} to kill", server.port());
    let again = oc.wait_event("reconnect", Duration::from_secs(30)).expect("reconnected");
    assert_eq!(again, ip, "address after reconnect");
    assert_eq!(oc.count_event("attempt-reconnect"), 1, "events {:?}", oc.events());
    let p = ping(&topo, Role::Client, topo.lan_ip(), 5, Duration::from_millis(50)).unwrap();
    assert!(p.all_received(), "ping after reconnect: {}", p.output);

    // Two-phase login: --authenticate, then --cookie-on-stdin on a second tun.
    let auth = Openconnect::builder(&topo, topo.gw_outside_ip(), server.port(), server.pin())
        .authenticate(Duration::from_secs(20))
        .expect("authenticate");
    assert_eq!(auth.exit_code, Some(0), "log:\n{}", auth.log);
    assert!(!auth.cookie.is_empty(), "no COOKIE in:\n{}", auth.log);
    assert_eq!(auth.fingerprint, server.pin());
    let mut oc2 = Openconnect::builder(&topo, topo.gw_outside_ip(), server.port(), server.pin())
        .cookie(&auth.cookie)
        .tun_name("ghtun1")
        .routes(&[])
        .spawn()
        .expect("spawn with cookie");
    let ip2 = oc2.wait_event("connect", Duration::from_secs(20)).expect("cookie login connects");
    assert_ne!(ip2, ip, "two sessions share an address");

    // SIGSTOP/SIGCONT reach the process; SIGINT logs off with exit code 0.
    oc2.send_signal(Signal::Stop).unwrap();
    oc2.send_signal(Signal::Cont).unwrap();
    oc2.send_signal(Signal::Int).unwrap();
    assert_eq!(oc2.wait_exit(Duration::from_secs(10)), Some(0), "log:\n{}", oc2.log());
    assert_eq!(oc2.count_event("disconnect"), 1);
    assert!(oc.is_running());
    assert!(oc.log().contains("CSTP connected"), "log lacks the CSTP line");
    eprintln!("openconnect log tail:\n{}", gatehouse_tests::openconnect::tail(&oc.log(), 15));
}
