//! Logging in: tunnel, resume, show and logoff; wrong passwords, the legacy form, login limits.

use crate::fixtures::*;
use gatehouse_tests::gatehouse::{assert_no_secrets, probe, probe_login, PORT};
use gatehouse_tests::{ping, require_root, ss_kill, tcp_transfer, NodeOptions, Openconnect, Role};
use std::time::Duration;

#[test]
fn login_tunnel_traffic_resume_show_and_logoff() {
    if !require_root("login_tunnel_traffic_resume_show_and_logoff") {
        return;
    }
    let (topo, node) = setup("e2ea", 0, &NodeOptions::default());
    // Password login by the real client, cookie printed (--authenticate), then the tunnel.
    let auth = Openconnect::builder(&topo, topo.gw_outside_ip(), PORT, &node.pin)
        .authenticate(CONNECT)
        .unwrap();
    assert_eq!(auth.exit_code, Some(0), "{}", auth.log);
    let mut oc = Openconnect::builder(&topo, topo.gw_outside_ip(), PORT, &node.pin)
        .cookie(&auth.cookie)
        .spawn()
        .unwrap();
    let ip = oc.wait_event("connect", CONNECT).expect("openconnect connected");
    assert!(ip.starts_with("10.200.128."), "inner address {ip} from the pool");
    let p = ping(&topo, Role::Client, topo.lan_ip(), 5, Duration::from_millis(100)).unwrap();
    assert!(p.all_received(), "{}", p.output);
    let moved = tcp_transfer(&topo, 4 << 20).unwrap();
    assert_eq!(moved, 4 << 20);
    assert_eq!(node.metric("gatehouse_logins_total", &["result=\"ok\""]), 1.0);

    // The headend view: one session, its ssl tunnel, non-zero counters.
    let text = node.ctl(&["show", "vpn-sessiondb", "detail"]).unwrap();
    for want in [
        "Username     : test",
        &format!("Assigned IP  : {ip}"),
        "SSL-Tunnel",
        "Idle TO Left",
        "Inactivity   : 0h:00m:00s",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let j = sessions_json(&node);
    let s = &j["sessions"][0];
    let index = s["index"].as_u64().unwrap();
    assert_eq!(s["assigned_ip"], ip.as_str());
    assert!(s["bytes_rx"].as_u64().unwrap() > 4 << 20, "{s}");
    assert!(s["bytes_tx"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["tunnels"][0]["id"], format!("{index}.1"));
    assert!(s["tunnels"][0]["bytes_rx"].as_u64().unwrap() > 0);

    // Break the TCP connection under the client: it resumes with its cookie.
    let killed = ss_kill(&topo, Role::Gw, PORT).unwrap();
    assert!(killed >= 1, "ss -K killed nothing");
    let again = oc.wait_event("reconnect", CONNECT).expect("openconnect resumed");
    assert_eq!(again, ip, "same inner address after resume");
    let p = ping(&topo, Role::Client, topo.lan_ip(), 3, Duration::from_millis(100)).unwrap();
    assert!(p.all_received(), "{}", p.output);
    assert_eq!(node.metric("gatehouse_resumes_total", &[]), 1.0);
    assert_eq!(node.metric("gatehouse_logins_total", &["result=\"ok\""]), 1.0, "no second login");
    let j = sessions_json(&node);
    let s = &j["sessions"][0];
    assert_eq!(s["index"].as_u64(), Some(index), "same session index");
    assert_eq!(s["assigned_ip"], ip.as_str());
    assert_eq!(s["tunnels"].as_array().map(Vec::len), Some(1));
    assert_eq!(s["tunnels"][0]["id"], format!("{index}.2"), "new tunnel id");
    assert_eq!(s["inactive"], false);
    assert_eq!(s["inactivity_s"], 0, "inactivity reset");
    assert_eq!(s["resumes"], 1);
    assert!(s["bytes_rx"].as_u64().unwrap() > 4 << 20, "counters of the first tunnel kept: {s}");

    // Logoff: the client is told and exits; the cookie is refused from then on.
    let out =
        node.ctl(&["vpn-sessiondb", "logoff", "index", &index.to_string(), "noconfirm"]).unwrap();
    assert!(out.contains("logged off : 1"), "{out}");
    let code = oc.wait_exit(Duration::from_secs(10)).expect("openconnect exits after logoff");
    assert_ne!(code, 0);
    assert!(oc.log().contains("Administrator Reset"), "DISCONNECT reason shown by the client");
    let webvpn = auth.cookie.rsplit("webvpn=").next().unwrap().trim_end_matches(';').to_string();
    assert_eq!(probe(&topo, &["connect", &webvpn]).unwrap(), "status HTTP/1.1 401 Unauthorized");
    assert!(node.ctl(&["show", "vpn-sessiondb"]).unwrap().contains("no active sessions"));
    assert_eq!(node.metric("gatehouse_sessions_ended_total", &["reason=\"admin_logoff\""]), 1.0);
    assert_no_secrets(&node, &[&webvpn, gatehouse_tests::gatehouse::PASSWORD]);
}

#[test]
fn wrong_password_is_refused_counted_logged_without_it_and_slowed_down() {
    if !require_root("wrong_password_is_refused_counted_logged_without_it_and_slowed_down") {
        return;
    }
    let (topo, node) = setup("e2ef", 5, &NodeOptions::default());
    // The real client: the form comes back with an error, and with --non-inter it gives up.
    let mut oc = Openconnect::builder(&topo, topo.gw_outside_ip(), PORT, &node.pin)
        .password("test", "not-the-password-1")
        .spawn()
        .unwrap();
    let code = oc.wait_exit(Duration::from_secs(20)).expect("openconnect gave up");
    assert_ne!(code, 0, "a wrong password must not log in");
    assert_eq!(oc.count_event("connect"), 0);
    assert_eq!(node.metric("gatehouse_logins_total", &["result=\"failed\""]), 1.0);
    // Three failures are tolerated per user and source (test config); beyond that each
    // attempt is held back before the password is even checked.
    for k in 2..=5 {
        let r = probe(&topo, &["login", "test", &format!("not-the-password-{k}")]).unwrap();
        assert!(r.starts_with("refused"), "{r}");
    }
    assert_eq!(node.metric("gatehouse_logins_total", &["result=\"failed\""]), 5.0);
    assert_eq!(
        node.metric("gatehouse_logins_total", &["result=\"throttled\""]),
        1.0,
        "the 5th try"
    );
    // The right password still works (slowed, not locked out) and resets the user's counter.
    let cookie = probe_login(&topo).unwrap();
    assert_eq!(node.metric("gatehouse_logins_total", &["result=\"throttled\""]), 2.0);
    assert_eq!(node.metric("gatehouse_logins_total", &["result=\"ok\""]), 1.0);
    let log = node.log();
    assert!(log.contains("login failed: wrong username or password"), "failure logged");
    assert!(log.contains("login slowed down after repeated failures"), "throttling logged");
    let secrets: Vec<String> = (1..=5).map(|k| format!("not-the-password-{k}")).collect();
    let mut refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    refs.push(&cookie);
    refs.push(gatehouse_tests::gatehouse::PASSWORD);
    assert_no_secrets(&node, &refs);
}

#[test]
fn legacy_form_flow_logs_in_too() {
    if !require_root("legacy_form_flow_logs_in_too") {
        return;
    }
    let (topo, node) = setup("e2eg", 6, &NodeOptions::default());
    let mut oc = Openconnect::builder(&topo, topo.gw_outside_ip(), PORT, &node.pin)
        .arg("--no-xmlpost")
        .spawn()
        .unwrap();
    let ip = oc.wait_event("connect", CONNECT).expect("legacy flow connected");
    assert!(ip.starts_with("10.206.128."), "{ip}");
    let p = ping(&topo, Role::Client, topo.lan_ip(), 3, Duration::from_millis(100)).unwrap();
    assert!(p.all_received(), "{}", p.output);
    assert_eq!(node.metric("gatehouse_logins_total", &["result=\"ok\""]), 1.0);
}

#[test]
fn simultaneous_logins_log_off_the_oldest_session() {
    if !require_root("simultaneous_logins_log_off_the_oldest_session") {
        return;
    }
    let opts = NodeOptions { policy: vec!["simultaneous_logins = 1".into()], ..Default::default() };
    let (topo, node) = setup("e2ej", 9, &opts);
    let mut first =
        Openconnect::builder(&topo, topo.gw_outside_ip(), PORT, &node.pin).spawn().unwrap();
    first.wait_event("connect", CONNECT).expect("first connected");
    let mut second = Openconnect::builder(&topo, topo.gw_outside_ip(), PORT, &node.pin)
        .tun_name("ghtun1")
        .spawn()
        .unwrap();
    second.wait_event("connect", CONNECT).expect("second connected");
    let code = first.wait_exit(Duration::from_secs(10)).expect("the first session is logged off");
    assert_ne!(code, 0);
    assert!(first.log().contains("Simultaneous logins exceeded"), "reason shown by the client");
    assert!(second.is_running());
    assert_eq!(
        node.metric("gatehouse_sessions_ended_total", &["reason=\"simultaneous_logins\""]),
        1.0
    );
    let j = sessions_json(&node);
    assert_eq!(j["sessions"].as_array().map(Vec::len), Some(1), "{j}");
}
