//! Bad input: each kind closes one connection with a reason, and a healthy session keeps working.

use crate::fixtures::*;
use gatehouse_tests::gatehouse::{assert_no_secrets, probe, probe_login, PORT};
use gatehouse_tests::{ping, require_root, NodeOptions, Openconnect, Role, Topology};
use std::time::Duration;

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
