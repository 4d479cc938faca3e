//! The tunnel timers: the partial-frame deadline, the idle timeout, dead peer detection.

use crate::fixtures::*;
use gatehouse_core::tunnel::cstp::{BadInput, Event};
use gatehouse_core::*;
use gatehouse_proto::cstp::FrameType;
use std::time::Duration;

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
