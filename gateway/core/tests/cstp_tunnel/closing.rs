//! How a tunnel ends and what it hands on: the detach grace, counters, logout, orders.

use crate::fixtures::*;
use gatehouse_core::tunnel::cstp::Event;
use gatehouse_core::*;
use gatehouse_proto::cstp::FrameType;

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
fn tls_closed_drops_unwritten_frames() {
    let mut t = tunnel();
    t.handle_tun_packet(ms(1), &[0x45; 20]);
    t.handle_tls_closed(ms(2));
    assert_eq!(sent(&mut t), vec![]);
    assert_eq!(t.is_closed(), Some(TunnelEnd::Closed));
}
