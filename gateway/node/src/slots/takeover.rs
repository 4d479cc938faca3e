//! The "tickle" that resets a slot's clients' dead TCP connections at once after a take-over
//! (the technique CTDB uses for IP takeover): a TCP ACK with sequence 0 sent from the slot
//! address to each client's endpoint. The client's kernel answers an out-of-window ACK with
//! its current sequence numbers; this node's kernel, which has no such connection, answers
//! that with a RST the client accepts (the listener's, which the fence lets out,
//! `kernel::fence`), and openconnect reconnects immediately instead of
//! waiting for its retransmissions or DPD to give up.
//!
//! Blocking (a raw socket): only the slot worker thread (`slots::worker`) calls it.

use std::net::{Ipv4Addr, SocketAddrV4};

/// Why the tickles could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum TickleError {
    /// No raw socket (the node needs CAP_NET_RAW).
    #[error("raw socket: {0}")]
    Socket(std::io::Error),
    /// The slot address is not (or no longer) on this host.
    #[error("bind {addr}: {source}")]
    Bind {
        /// The slot address.
        addr: Ipv4Addr,
        /// Why the bind failed.
        source: std::io::Error,
    },
}

fn checksum(data: &[u8], mut sum: u32) -> u16 {
    for c in data.chunks(2) {
        let w = if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { u16::from(c[0]) << 8 };
        sum += u32::from(w);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A bare TCP ACK (seq 0, ack 0) from `from` to `to`, checksummed.
pub fn tickle_segment(from: SocketAddrV4, to: SocketAddrV4) -> [u8; 20] {
    let mut t = [0u8; 20];
    t[0..2].copy_from_slice(&from.port().to_be_bytes());
    t[2..4].copy_from_slice(&to.port().to_be_bytes());
    t[12] = 5 << 4; // data offset: 5 words
    t[13] = 0x10; // ACK
    t[14..16].copy_from_slice(&1024u16.to_be_bytes());
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&from.ip().octets());
    pseudo.extend_from_slice(&to.ip().octets());
    pseudo.extend_from_slice(&[0, 6, 0, 20]);
    let mut sum = 0u32;
    for c in pseudo.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    let c = checksum(&t, sum);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// Send tickle ACKs from `slot_ip` to each client endpoint `(ip, port, our_port)`.
pub fn tickle(slot_ip: Ipv4Addr, clients: &[(Ipv4Addr, u16, u16)]) -> Result<usize, TickleError> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let s =
        Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP)).map_err(TickleError::Socket)?;
    s.bind(&SockAddr::from(SocketAddrV4::new(slot_ip, 0)))
        .map_err(|source| TickleError::Bind { addr: slot_ip, source })?;
    let mut sent = 0;
    for &(ip, port, ours) in clients {
        let seg = tickle_segment(SocketAddrV4::new(slot_ip, ours), SocketAddrV4::new(ip, port));
        if s.send_to(&seg, &SockAddr::from(SocketAddrV4::new(ip, 0))).is_ok() {
            sent += 1;
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickle_segment_checksums_to_zero_with_its_pseudo_header() {
        let from = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 101), 443);
        let to = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 100), 51234);
        let seg = tickle_segment(from, to);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&from.ip().octets());
        pseudo.extend_from_slice(&to.ip().octets());
        pseudo.extend_from_slice(&[0, 6, 0, 20]);
        pseudo.extend_from_slice(&seg);
        assert_eq!(checksum(&pseudo, 0), 0, "a valid segment sums to 0xffff (complement 0)");
        assert_eq!(seg[13], 0x10, "ACK only");
        assert_eq!(u16::from_be_bytes([seg[0], seg[1]]), 443);
        assert_eq!(u16::from_be_bytes([seg[2], seg[3]]), 51234);
    }
}
