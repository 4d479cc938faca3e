//! The CSTP tunnel's rules on a virtual clock: no sockets, no sleeps, no root.
#![allow(clippy::unwrap_used)]

use bytes::BytesMut;
use gatehouse_core::tunnel::connect::{connect_headers, negotiate_mtu, ClientMtu};
use gatehouse_core::tunnel::cstp::{BadInput, Event, Transmit};
use gatehouse_core::*;
use gatehouse_proto::cstp::{self, FrameError, FrameType};
use std::net::Ipv4Addr;
use std::time::Duration;

const ADDR: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const MTU: u16 = 1406;
const LIMIT: u64 = 10_000;

fn ms(t: u64) -> MonoMillis {
    MonoMillis(t)
}

fn tunnel_with(dpd: Option<u64>, idle: Option<u64>) -> CstpTunnel {
    let cfg = CstpConfig {
        address: ADDR,
        mtu: MTU,
        timers: TunnelTimersConfig {
            dpd: dpd.map(Duration::from_secs),
            idle_timeout: idle.map(Duration::from_secs),
        },
        partial_frame_limit: Duration::from_millis(LIMIT),
    };
    CstpTunnel::new(ms(0), cfg, BytesMut::new())
}

fn tunnel() -> CstpTunnel {
    tunnel_with(None, None)
}

fn frame(kind: FrameType, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    cstp::encode_into(kind, payload, &mut v).unwrap();
    v
}

fn ipv4_from(src: Ipv4Addr, body: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&[10, 0, 0, 1]);
    p.extend_from_slice(body);
    p
}

/// Every pending transmit, decoded: (type, payload, flush).
fn sent(t: &mut CstpTunnel) -> Vec<(FrameType, Vec<u8>, bool)> {
    let mut out = Vec::new();
    while let Some(Transmit { frame, flush }) = t.poll_transmit() {
        let (f, used) = cstp::decode(&frame, 65535).unwrap().unwrap();
        assert_eq!(used, frame.len(), "one whole frame per transmit");
        out.push((f.kind, f.payload.to_vec(), flush));
    }
    out
}

fn events(t: &mut CstpTunnel) -> Vec<Event> {
    std::iter::from_fn(|| t.poll_event()).collect()
}

fn disconnect(reason: &str) -> (FrameType, Vec<u8>, bool) {
    (FrameType::Disconnect, cstp::disconnect_payload(reason), true)
}

fn closed(end: TunnelEnd, after: AfterClose) -> Event {
    Event::Closed { end, after }
}

fn assert_refused(wire: &[u8], error: FrameError, reason: &str) {
    let mut t = tunnel();
    t.handle_frame(ms(5), wire);
    assert_eq!(sent(&mut t), vec![disconnect(reason)]);
    assert_eq!(
        events(&mut t),
        vec![
            Event::BadInput(BadInput::Frame(error.clone())),
            closed(TunnelEnd::Protocol, AfterClose::DetachAfterGrace),
        ]
    );
    assert_eq!(BadInput::Frame(error.clone()).reason(), error.reason());
    assert_eq!(t.is_closed(), Some(TunnelEnd::Protocol));
}

#[test]
fn bad_magic_disconnects_with_a_protocol_error() {
    assert_refused(b"GET / HTTP/1.1\r\n", FrameError::BadMagic(*b"GET "), "bad frame magic");
}

#[test]
fn nonzero_reserved_byte_disconnects_with_a_protocol_error() {
    let mut wire = frame(FrameType::Keepalive, b"");
    wire[7] = 2;
    assert_refused(&wire, FrameError::NonZeroReserved(2), "nonzero reserved byte");
}

#[test]
fn unknown_type_disconnects_with_a_protocol_error() {
    let wire = [b'S', b'T', b'F', 1, 0, 0, 0x06, 0];
    assert_refused(&wire, FrameError::UnknownType(6), "unknown frame type 6");
}

#[test]
fn length_beyond_the_mtu_disconnects_before_the_payload_arrives() {
    let hdr = cstp::encode_header(FrameType::Data, MTU + 1);
    assert_refused(
        &hdr,
        FrameError::TooLong { len: 1407, max: 1406 },
        "frame length 1407 beyond the MTU 1406",
    );
}

#[test]
fn frame_split_across_reads_is_delivered_once_complete() {
    let pkt = ipv4_from(ADDR, b"hello");
    let wire = frame(FrameType::Data, &pkt);
    let mut t = tunnel();
    for (i, b) in wire[..wire.len() - 1].iter().enumerate() {
        t.handle_frame(ms(i as u64), &[*b]);
        assert_eq!(events(&mut t), vec![], "nothing before the last byte");
    }
    t.handle_frame(ms(50), &wire[wire.len() - 1..]);
    assert_eq!(events(&mut t), vec![Event::TunPacket(pkt.clone().into())]);
    assert_eq!(t.stats().pkts_rx, 1);
    assert_eq!(t.stats().bytes_rx, pkt.len() as u64);
}

#[test]
fn several_frames_in_one_read_are_all_handled_in_order() {
    let a = ipv4_from(ADDR, b"a");
    let b = ipv4_from(ADDR, b"bb");
    let mut wire = frame(FrameType::Data, &a);
    wire.extend(frame(FrameType::Keepalive, b""));
    wire.extend(frame(FrameType::DpdReq, b"x"));
    wire.extend(frame(FrameType::Data, &b));
    wire.extend_from_slice(b"STF"); // the start of the next one
    let mut t = tunnel();
    t.handle_frame(ms(1), &wire);
    assert_eq!(events(&mut t), vec![Event::TunPacket(a.into()), Event::TunPacket(b.into())]);
    assert_eq!(sent(&mut t), vec![(FrameType::DpdResp, b"x".to_vec(), false)]);
    assert_eq!(t.is_closed(), None);
}

#[test]
fn dpd_request_is_echoed_with_its_payload() {
    // openconnect's MTU probe: a DPD-REQ padded to the MTU, answered byte for byte.
    let probe: Vec<u8> = (0..1400u32).map(|i| i as u8).collect();
    let mut t = tunnel();
    t.handle_frame(ms(1), &frame(FrameType::DpdReq, &probe));
    assert_eq!(sent(&mut t), vec![(FrameType::DpdResp, probe, false)]);
    assert_eq!(events(&mut t), vec![]);
}

#[test]
fn data_from_another_source_is_dropped_counted_and_the_tunnel_stays() {
    let spoofed = ipv4_from(Ipv4Addr::new(10, 99, 0, 3), b"evil");
    let good = ipv4_from(ADDR, b"ok");
    let mut t = tunnel();
    t.handle_frame(ms(1), &frame(FrameType::Data, &spoofed));
    t.handle_frame(ms(2), &frame(FrameType::Data, b"\x60not ipv4"));
    t.handle_frame(ms(3), &frame(FrameType::Data, &good));
    assert_eq!(
        events(&mut t),
        vec![
            Event::BadInput(BadInput::SpoofedSource),
            Event::BadInput(BadInput::SpoofedSource),
            Event::TunPacket(good.into()),
        ]
    );
    assert_eq!(BadInput::SpoofedSource.stage(), "cstp");
    assert_eq!(BadInput::SpoofedSource.reason(), "spoofed_source");
    assert_eq!(t.stats().spoofed_source, 2);
    assert_eq!(t.stats().pkts_rx, 3, "received packets are counted, dropped or not");
    assert_eq!(t.is_closed(), None);
    assert_eq!(sent(&mut t), vec![]);
}

#[test]
fn compressed_frame_is_refused() {
    let mut t = tunnel();
    t.handle_frame(ms(1), &frame(FrameType::Compressed, b"zz"));
    assert_eq!(sent(&mut t), vec![disconnect("compression was not negotiated")]);
    assert_eq!(
        events(&mut t),
        vec![
            Event::BadInput(BadInput::CompressionNotNegotiated),
            closed(TunnelEnd::Protocol, AfterClose::DetachAfterGrace),
        ]
    );
    assert_eq!(BadInput::CompressionNotNegotiated.reason(), "compression_not_negotiated");
}

#[test]
fn a_partial_frame_times_out_at_its_start_plus_the_limit_not_before() {
    let wire = frame(FrameType::Keepalive, b"");
    let mut t = tunnel();
    t.handle_frame(ms(1_000), &wire[..3]);
    assert_eq!(t.poll_timeout(), Some((ms(1_000 + LIMIT), TunnelTimer::PartialFrame)));
    // More bytes that still do not complete it do not move the deadline.
    t.handle_frame(ms(4_000), &wire[3..5]);
    assert_eq!(t.poll_timeout(), Some((ms(1_000 + LIMIT), TunnelTimer::PartialFrame)));
    t.handle_timeout(ms(1_000 + LIMIT - 1));
    assert_eq!(t.is_closed(), None, "not before the deadline");
    assert_eq!(sent(&mut t), vec![]);
    t.handle_timeout(ms(1_000 + LIMIT));
    assert_eq!(sent(&mut t), vec![disconnect("truncated frame")]);
    assert_eq!(
        events(&mut t),
        vec![
            Event::BadInput(BadInput::Truncated),
            closed(TunnelEnd::Protocol, AfterClose::DetachAfterGrace),
        ]
    );
    assert_eq!(BadInput::Truncated.reason(), "truncated");
}

#[test]
fn a_completed_frame_cancels_the_partial_frame_deadline() {
    let wire = frame(FrameType::Keepalive, b"");
    let mut t = tunnel();
    t.handle_frame(ms(1_000), &wire[..3]);
    t.handle_frame(ms(2_000), &wire[3..]);
    assert_eq!(t.poll_timeout(), None);
    t.handle_timeout(ms(1_000 + LIMIT));
    assert_eq!(t.is_closed(), None);
    // A new partial frame starts its own deadline.
    t.handle_frame(ms(20_000), &wire[..1]);
    assert_eq!(t.poll_timeout(), Some((ms(20_000 + LIMIT), TunnelTimer::PartialFrame)));
}

#[test]
fn a_tunnel_that_carried_nothing_detaches_only_after_the_grace() {
    let mut t = tunnel();
    t.handle_tls_closed(ms(7_000));
    assert_eq!(events(&mut t), vec![closed(TunnelEnd::Closed, AfterClose::DetachAfterGrace)]);
    assert_eq!(t.poll_timeout(), Some((ms(7_500), TunnelTimer::DetachGrace)));
    t.handle_timeout(ms(7_499));
    assert_eq!(events(&mut t), vec![]);
    t.handle_timeout(ms(7_500));
    assert_eq!(events(&mut t), vec![Event::DetachIfRecorded]);
    t.handle_timeout(ms(7_600));
    assert_eq!(events(&mut t), vec![], "asked once");
    assert_eq!(t.poll_timeout(), None);
}

#[test]
fn a_tunnel_that_carried_data_detaches_at_once_with_its_counters() {
    let mut t = tunnel();
    t.handle_tun_packet(ms(1), &[0x45; 100]);
    t.handle_frame(ms(2), &frame(FrameType::Disconnect, b""));
    let counters = Counters { bytes_tx: 100, bytes_rx: 0, pkts_tx: 1, pkts_rx: 0 };
    assert_eq!(
        events(&mut t),
        vec![closed(TunnelEnd::ClientTemporary, AfterClose::DetachNow(counters))]
    );
    assert_eq!(t.poll_timeout(), None, "no grace");
}

#[test]
fn user_logout_ends_the_session() {
    let mut t = tunnel();
    t.handle_frame(ms(1), &frame(FrameType::Disconnect, b"\xb0User Requested"));
    assert_eq!(events(&mut t), vec![closed(TunnelEnd::UserLogout, AfterClose::EndSession)]);
    assert_eq!(sent(&mut t), vec![], "the client said goodbye; no answer");
}

#[test]
fn client_terminate_is_a_temporary_disconnect() {
    let mut t = tunnel();
    t.handle_frame(ms(1), &frame(FrameType::Terminate, b""));
    assert_eq!(t.is_closed(), Some(TunnelEnd::ClientTemporary));
}

#[test]
fn frames_after_a_close_are_ignored() {
    let mut wire = frame(FrameType::Disconnect, b"");
    wire.extend(frame(FrameType::Data, &ipv4_from(ADDR, b"late")));
    let mut t = tunnel();
    t.handle_frame(ms(1), &wire);
    t.handle_tun_packet(ms(2), b"late");
    assert_eq!(
        events(&mut t),
        vec![closed(TunnelEnd::ClientTemporary, AfterClose::DetachAfterGrace)]
    );
    assert_eq!(sent(&mut t), vec![]);
}

#[test]
fn idle_timeout_disconnects_after_no_data_either_way() {
    let mut t = tunnel_with(None, Some(60));
    t.handle_frame(ms(30_000), &frame(FrameType::Keepalive, b""));
    assert_eq!(t.poll_timeout(), Some((ms(60_000), TunnelTimer::Idle)), "keepalive is not data");
    t.handle_tun_packet(ms(50_000), &[0x45; 20]);
    assert_eq!(sent(&mut t).len(), 1);
    assert_eq!(t.idle_left(ms(100_000)), Some(Duration::from_secs(10)));
    t.handle_timeout(ms(109_999));
    assert_eq!(t.is_closed(), None);
    t.handle_timeout(ms(110_000));
    assert_eq!(sent(&mut t), vec![disconnect("Idle Timeout")]);
    let counters = Counters { bytes_tx: 20, pkts_tx: 1, ..Counters::default() };
    assert_eq!(events(&mut t), vec![closed(TunnelEnd::Idle, AfterClose::DetachNow(counters))]);
}

#[test]
fn datagram_data_keeps_the_ssl_tunnel_from_idling() {
    let mut t = tunnel_with(None, Some(60));
    t.handle_datagram_data(ms(50_000));
    t.handle_timeout(ms(60_000));
    assert_eq!(t.is_closed(), None);
    assert_eq!(t.poll_timeout(), Some((ms(110_000), TunnelTimer::Idle)));
}

#[test]
fn dead_peer_after_twice_dpd_with_probes_at_dpd_and_one_and_a_half() {
    let mut t = tunnel_with(Some(30), None);
    assert_eq!(t.poll_timeout(), Some((ms(30_000), TunnelTimer::DpdProbe)));
    t.handle_timeout(ms(29_999));
    assert_eq!(sent(&mut t), vec![]);
    t.handle_timeout(ms(30_000));
    assert_eq!(sent(&mut t), vec![(FrameType::DpdReq, vec![], false)]);
    t.handle_timeout(ms(30_000));
    assert_eq!(sent(&mut t), vec![], "handle_timeout twice is harmless");
    assert_eq!(t.poll_timeout(), Some((ms(45_000), TunnelTimer::DpdProbe)));
    t.handle_timeout(ms(45_000));
    assert_eq!(sent(&mut t), vec![(FrameType::DpdReq, vec![], false)]);
    // The third probe and death fall due together; death wins.
    assert_eq!(t.poll_timeout().map(|(at, _)| at), Some(ms(60_000)));
    t.handle_timeout(ms(60_000));
    assert_eq!(sent(&mut t), vec![], "nobody listens to a dead peer: no DISCONNECT");
    assert_eq!(events(&mut t), vec![closed(TunnelEnd::DeadPeer, AfterClose::DetachAfterGrace)]);
    assert_eq!(t.stats().dpd_probes, 2);
}

#[test]
fn a_dpd_answer_keeps_the_peer_alive() {
    let mut t = tunnel_with(Some(10), None);
    t.handle_timeout(ms(10_000));
    assert_eq!(sent(&mut t).len(), 1);
    t.handle_frame(ms(11_000), &frame(FrameType::DpdResp, b""));
    t.handle_timeout(ms(20_000));
    assert_eq!(t.is_closed(), None);
    assert_eq!(t.poll_timeout(), Some((ms(21_000), TunnelTimer::DpdProbe)));
}

#[test]
fn session_ended_tells_the_client_why_and_leaves_the_db_alone() {
    let mut t = tunnel();
    t.handle_tun_packet(ms(1), &[0x45; 20]);
    sent(&mut t);
    t.handle_order(ms(2), TunnelOrder::SessionEnded(EndReason::AdminLogoff));
    assert_eq!(sent(&mut t), vec![disconnect("Administrator Reset")]);
    assert_eq!(events(&mut t), vec![closed(TunnelEnd::SessionEnded, AfterClose::Nothing)]);
}

#[test]
fn a_replaced_tunnel_closes_quietly_and_hands_in_its_counters() {
    let mut t = tunnel();
    t.handle_frame(ms(1), &frame(FrameType::Data, &ipv4_from(ADDR, b"")));
    events(&mut t);
    t.handle_order(ms(2), TunnelOrder::Replaced);
    assert_eq!(sent(&mut t), vec![]);
    let counters = Counters { bytes_rx: 20, pkts_rx: 1, ..Counters::default() };
    assert_eq!(events(&mut t), vec![closed(TunnelEnd::Replaced, AfterClose::DetachNow(counters))]);
}

#[test]
fn a_replaced_tunnel_that_carried_nothing_waits_for_the_grace() {
    let mut t = tunnel();
    t.handle_order(ms(2), TunnelOrder::Replaced);
    assert_eq!(events(&mut t), vec![closed(TunnelEnd::Replaced, AfterClose::DetachAfterGrace)]);
}

#[test]
fn stopping_to_terminate_sends_terminate_and_detaches_at_once() {
    let mut t = tunnel();
    t.handle_order(ms(2), TunnelOrder::Stop(StopMode::Terminate));
    assert_eq!(sent(&mut t), vec![(FrameType::Terminate, vec![], true)]);
    assert_eq!(
        events(&mut t),
        vec![closed(TunnelEnd::Stopping, AfterClose::DetachNow(Counters::default()))]
    );
}

#[test]
fn stopping_to_restart_closes_quietly_and_detaches_at_once() {
    let mut t = tunnel();
    t.handle_order(ms(2), TunnelOrder::Stop(StopMode::Restart));
    assert_eq!(sent(&mut t), vec![]);
    assert_eq!(
        events(&mut t),
        vec![closed(TunnelEnd::Stopping, AfterClose::DetachNow(Counters::default()))]
    );
    t.handle_order(ms(3), TunnelOrder::SessionEnded(EndReason::AdminLogoff));
    assert_eq!(sent(&mut t), vec![], "a closed tunnel takes no more orders");
}

#[test]
fn tun_packets_are_framed_as_data() {
    let mut t = tunnel();
    let pkts: Vec<Vec<u8>> = (0..3u8).map(|i| vec![0x45, i, 7]).collect();
    for p in &pkts {
        t.handle_tun_packet(ms(5), p);
    }
    let out = sent(&mut t);
    assert_eq!(out, pkts.iter().map(|p| (FrameType::Data, p.clone(), false)).collect::<Vec<_>>());
    assert_eq!(t.stats().pkts_tx, 3);
    assert_eq!(t.stats().bytes_tx, 9);
    assert_eq!(t.stats().last_data, Some(ms(5)));
}

#[test]
fn tls_closed_drops_unwritten_frames() {
    let mut t = tunnel();
    t.handle_tun_packet(ms(1), &[0x45; 20]);
    t.handle_tls_closed(ms(2));
    assert_eq!(sent(&mut t), vec![]);
    assert_eq!(t.is_closed(), Some(TunnelEnd::Closed));
}

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
