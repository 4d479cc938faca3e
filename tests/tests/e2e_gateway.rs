//! End to end, one node: the real openconnect client in a client namespace, a Gatehouse node
//! in the gateway namespace with a real tun device, a lan host behind it. Needs root;
//! fails under CI=true when it cannot run.
#![allow(clippy::unwrap_used)]

use gatehouse_tests::gatehouse::{assert_no_secrets, probe, probe_login, PORT};
use gatehouse_tests::{
    default_pool, ping, require_root, ss_kill, tcp_transfer, GatewayNode, NodeOptions, Openconnect,
    Role, Topology,
};
use std::time::Duration;

const CONNECT: Duration = Duration::from_secs(20);

fn setup(tag: &str, k: u8, opts: &NodeOptions) -> (Topology, GatewayNode) {
    let topo = Topology::new(tag, k, &default_pool(k)).expect("topology");
    let node = GatewayNode::start(&topo, opts).expect("gatehouse node");
    (topo, node)
}

fn sessions_json(node: &GatewayNode) -> serde_json::Value {
    let out = node.ctl(&["--json", "show", "vpn-sessiondb", "detail"]).unwrap();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
}

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

fn healthy(topo: &Topology, oc: &mut Openconnect, what: &str) {
    let p = ping(topo, Role::Client, topo.lan_ip(), 3, Duration::from_millis(50)).unwrap();
    assert!(p.all_received(), "healthy session lost traffic after {what}: {}", p.output);
    assert!(oc.is_running(), "healthy openconnect exited after {what}");
    assert_eq!(oc.count_event("reconnect"), 0, "healthy session had to reconnect after {what}");
}

fn frame_hex(header: [u8; 8], payload: &[u8]) -> String {
    header.iter().chain(payload).map(|b| format!("{b:02x}")).collect()
}

#[test]
fn bad_input_closes_one_tunnel_with_a_reason_and_a_healthy_session_keeps_working() {
    if !require_root(
        "bad_input_closes_one_tunnel_with_a_reason_and_a_healthy_session_keeps_working",
    ) {
        return;
    }
    let opts =
        NodeOptions { policy: vec!["simultaneous_logins = 100".into()], ..Default::default() };
    let (topo, node) = setup("e2eb", 1, &opts);
    let mut oc =
        Openconnect::builder(&topo, topo.gw_outside_ip(), PORT, &node.pin).spawn().unwrap();
    oc.wait_event("connect", CONNECT).expect("healthy client connected");
    healthy(&topo, &mut oc, "connect");
    let bad = |stage: &str, reason: &str| {
        node.metric(
            "gatehouse_bad_input_total",
            &[&format!("stage=\"{stage}\""), &format!("reason=\"{reason}\"")],
        )
    };
    let hexs = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();

    // Garbage instead of HTTP.
    let r = probe(&topo, &["raw", &hexs("\x01\x02garbage, not http\r\n\r\n")]).unwrap();
    assert_eq!(r, "status HTTP/1.1 400 Bad Request");
    assert_eq!(bad("http", "malformed"), 1.0);
    healthy(&topo, &mut oc, "garbage");

    // Oversized headers.
    let big = format!("GET / HTTP/1.1\r\nHost: gw\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    let r = probe(&topo, &["raw", &hexs(&big)]).unwrap();
    assert_eq!(r, "status HTTP/1.1 431 Request Header Fields Too Large");
    assert_eq!(bad("http", "head_too_large"), 1.0);

    // Plain HTTP on the TLS port.
    let r = probe(&topo, &["plaintext"]).unwrap();
    assert!(r.starts_with("closed"), "{r}");
    assert_eq!(bad("tls", "handshake"), 1.0);

    // Slow-loris: silent after the TLS handshake, and silent before it.
    let r = probe(&topo, &["silent"]).unwrap();
    assert!(r.starts_with("closed") && r.ends_with("408 Request Timeout"), "{r}");
    let secs: f64 = r.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(secs < 10.0, "request timeout (3 s) not enforced: {r}");
    assert_eq!(bad("http", "timeout"), 1.0);
    let r = probe(&topo, &["silent-tcp"]).unwrap();
    assert!(r.starts_with("closed"), "{r}");
    assert_eq!(bad("tls", "timeout"), 1.0);
    healthy(&topo, &mut oc, "slow-loris");

    // Wrong and truncated cookies.
    let wrong = "A".repeat(43);
    assert_eq!(probe(&topo, &["connect", &wrong]).unwrap(), "status HTTP/1.1 401 Unauthorized");
    assert_eq!(bad("cookie", "unknown_session"), 1.0);
    let cookie = probe_login(&topo).unwrap();
    assert_eq!(
        probe(&topo, &["connect", &cookie[..20]]).unwrap(),
        "status HTTP/1.1 401 Unauthorized"
    );
    assert_eq!(bad("cookie", "cookie_malformed"), 1.0);

    // A cookie of an ended session: the user logs out (DISCONNECT 0xb0), then reuses it.
    let mut bye = vec![0xb0];
    bye.extend_from_slice(b"User logout");
    let r = probe(
        &topo,
        &["frame", &cookie, &frame_hex([b'S', b'T', b'F', 1, 0, bye.len() as u8, 5, 0], &bye)],
    )
    .unwrap();
    assert_eq!(r, "closed");
    let r = probe(&topo, &["connect", &cookie]).unwrap();
    assert_eq!(r, "status HTTP/1.1 401 Unauthorized", "ended session's cookie must be refused");
    assert_eq!(bad("cookie", "unknown_session"), 2.0);
    healthy(&topo, &mut oc, "bad cookies");

    // Malformed CSTP frames, each on its own session: DISCONNECT with a reason.
    let cases: [(&str, String, &str, &str); 3] = [
        (
            "bad magic",
            frame_hex(*b"XXXX\0\0\0\0", &[]),
            "frame disconnect bad frame magic",
            "bad_magic",
        ),
        (
            "length beyond the MTU",
            frame_hex([b'S', b'T', b'F', 1, 0x20, 0x00, 0, 0], &[]),
            "frame disconnect frame length 8192 beyond the MTU 1399",
            "too_long",
        ),
        (
            "unknown type",
            frame_hex([b'S', b'T', b'F', 1, 0, 0, 0x42, 0], &[]),
            "frame disconnect unknown frame type 66",
            "unknown_type",
        ),
    ];
    for (what, hex, want, reason) in cases {
        let c = probe_login(&topo).unwrap();
        let r = probe(&topo, &["frame", &c, &hex]).unwrap();
        assert_eq!(r, want, "{what}");
        assert_eq!(bad("cstp", reason), 1.0, "{what}");
        healthy(&topo, &mut oc, what);
    }

    // A frame split across two TLS records is reassembled (the stream is the unit, not the
    // record); half a frame that never completes is refused after the request timeout.
    let c = probe_login(&topo).unwrap();
    assert_eq!(probe(&topo, &["split", &c]).unwrap(), "frame DpdResp len=11");
    let c2 = probe_login(&topo).unwrap();
    assert_eq!(probe(&topo, &["truncated", &c2]).unwrap(), "frame disconnect truncated frame");
    assert_eq!(bad("cstp", "truncated"), 1.0);
    healthy(&topo, &mut oc, "split and truncated frames");
    assert_no_secrets(&node, &[&cookie, &c, &c2, gatehouse_tests::gatehouse::PASSWORD]);
}

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
fn node_restart_keeps_the_session_and_the_client_resumes_with_the_same_address() {
    if !require_root("node_restart_keeps_the_session_and_the_client_resumes_with_the_same_address")
    {
        return;
    }
    let (topo, mut node) = setup("e2ee", 4, &NodeOptions::default());
    let mut oc =
        Openconnect::builder(&topo, topo.gw_outside_ip(), PORT, &node.pin).spawn().unwrap();
    let ip = oc.wait_event("connect", CONNECT).expect("connected");
    node.crash_and_restart().unwrap();
    let again =
        oc.wait_event("reconnect", Duration::from_secs(45)).expect("resumed after the restart");
    assert_eq!(again, ip, "same address after a node restart");
    let p = ping(&topo, Role::Client, topo.lan_ip(), 3, Duration::from_millis(100)).unwrap();
    assert!(p.all_received(), "{}", p.output);
    // Counters restart with the process: this run saw a resume and no login.
    assert_eq!(node.metric("gatehouse_logins_total", &["result=\"ok\""]), 0.0, "no second login");
    assert_eq!(node.metric("gatehouse_resumes_total", &[]), 1.0);
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

#[test]
fn nat_mode_masquerades_the_pool_on_the_inside_interface() {
    if !require_root("nat_mode_masquerades_the_pool_on_the_inside_interface") {
        return;
    }
    let topo = Topology::new("e2ek", 0, &default_pool(0)).expect("topology");
    // The lan has no route back to the pool: only NAT can make replies come back.
    topo.run(Role::Lan, ["ip", "route", "del", topo.pool_cidr()]).unwrap();
    let opts = NodeOptions {
        node: vec![
            "mode = \"nat\"".into(),
            format!("nat_interface = \"{}\"", gatehouse_tests::topology::LAN_IF),
        ],
        ..Default::default()
    };
    let node = GatewayNode::start(&topo, &opts).expect("gatehouse node in NAT mode");
    let mut oc =
        Openconnect::builder(&topo, topo.gw_outside_ip(), PORT, &node.pin).spawn().unwrap();
    oc.wait_event("connect", CONNECT).expect("connected");
    let p = ping(&topo, Role::Client, topo.lan_ip(), 3, Duration::from_millis(100)).unwrap();
    assert!(p.all_received(), "{}", p.output);
    let rules = topo.run(Role::Gw, ["iptables", "-t", "nat", "-S", "POSTROUTING"]).unwrap();
    assert!(rules.contains("MASQUERADE") && rules.contains(topo.pool_cidr()), "{rules}");
}

#[test]
fn node_stop_sends_terminate_and_the_client_leaves() {
    if !require_root("node_stop_sends_terminate_and_the_client_leaves") {
        return;
    }
    let (topo, mut node) = setup("e2el", 1, &NodeOptions::default());
    let mut oc =
        Openconnect::builder(&topo, topo.gw_outside_ip(), PORT, &node.pin).spawn().unwrap();
    oc.wait_event("connect", CONNECT).expect("connected");
    node.signal("TERM").unwrap();
    assert_eq!(node.wait_exit(Duration::from_secs(10)), Some(0), "clean stop");
    let code = oc.wait_exit(Duration::from_secs(10)).expect("client leaves on TERMINATE");
    assert_ne!(code, 0);
    assert!(oc.log().contains("terminat"), "client saw the server terminate:\n{}", oc.log());
}
