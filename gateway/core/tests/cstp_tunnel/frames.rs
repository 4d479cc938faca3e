//! Frames in and out: malformed ones refused, split and batched ones, DPD echo, spoofing.

use crate::fixtures::*;
use gatehouse_core::tunnel::cstp::{BadInput, Event};
use gatehouse_core::*;
use gatehouse_proto::cstp::{self, FrameError, FrameType};
use std::net::Ipv4Addr;

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
