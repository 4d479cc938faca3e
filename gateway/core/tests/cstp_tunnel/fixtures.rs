//! The shared fixtures: a tunnel on a virtual clock, frames to feed it, its output read back.

use bytes::BytesMut;
use gatehouse_core::tunnel::cstp::{Event, Transmit};
use gatehouse_core::*;
use gatehouse_proto::cstp::{self, FrameType};
use std::net::Ipv4Addr;
use std::time::Duration;

pub(crate) const ADDR: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
pub(crate) const MTU: u16 = 1406;
pub(crate) const LIMIT: u64 = 10_000;

pub(crate) fn ms(t: u64) -> MonoMillis {
    MonoMillis(t)
}

pub(crate) fn tunnel_with(dpd: Option<u64>, idle: Option<u64>) -> CstpTunnel {
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

pub(crate) fn tunnel() -> CstpTunnel {
    tunnel_with(None, None)
}

pub(crate) fn frame(kind: FrameType, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    cstp::encode_into(kind, payload, &mut v).unwrap();
    v
}

pub(crate) fn ipv4_from(src: Ipv4Addr, body: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&[10, 0, 0, 1]);
    p.extend_from_slice(body);
    p
}

/// Every pending transmit, decoded: (type, payload, flush).
pub(crate) fn sent(t: &mut CstpTunnel) -> Vec<(FrameType, Vec<u8>, bool)> {
    let mut out = Vec::new();
    while let Some(Transmit { frame, flush }) = t.poll_transmit() {
        let (f, used) = cstp::decode(&frame, 65535).unwrap().unwrap();
        assert_eq!(used, frame.len(), "one whole frame per transmit");
        out.push((f.kind, f.payload.to_vec(), flush));
    }
    out
}

pub(crate) fn events(t: &mut CstpTunnel) -> Vec<Event> {
    std::iter::from_fn(|| t.poll_event()).collect()
}

pub(crate) fn disconnect(reason: &str) -> (FrameType, Vec<u8>, bool) {
    (FrameType::Disconnect, cstp::disconnect_payload(reason), true)
}

pub(crate) fn closed(end: TunnelEnd, after: AfterClose) -> Event {
    Event::Closed { end, after }
}
