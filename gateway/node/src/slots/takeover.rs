//! What a node does to its interfaces when it gains or loses a slot: add or remove the slot's
//! addresses (iproute2, i.e. netlink), announce them with gratuitous ARP (iputils `arping`),
//! and "tickle" the slot's clients so their dead TCP connections reset at once.
//!
//! The tickle (the technique CTDB uses for IP takeover): a TCP ACK with sequence 0 sent from
//! the slot address to each client's endpoint. The client's kernel answers an out-of-window
//! ACK with its current sequence numbers; this node's kernel, which has no such connection,
//! answers that with a RST the client accepts, and openconnect reconnects immediately instead
//! of waiting for its retransmissions or DPD to give up.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    // Adding an address that is there, or removing one that is not, is the state we want.
    if err.contains("File exists") || err.contains("Cannot assign requested address") {
        return Ok(());
    }
    Err(format!("ip {}: {}", args.join(" "), err.trim()))
}

/// Add `addr/prefix` to `dev` (announce it with [`announce`]).
pub fn add_address(addr: Ipv4Addr, prefix: u8, dev: &str) -> Result<(), String> {
    ip(&["addr", "add", &format!("{addr}/{prefix}"), "dev", dev])
}

/// Announce `addr` on `dev` with gratuitous ARP, then tickle `clients` (see the module doc).
/// Runs on a thread of its own: arping takes its time, the slot loop must not wait for it.
/// The tickles follow the ARP announcement, so the clients' answers come to this node and
/// not to the old owner's MAC address.
pub fn announce(addr: Ipv4Addr, dev: &str, clients: Vec<(Ipv4Addr, u16, u16)>) {
    let dev = dev.to_string();
    std::thread::spawn(move || {
        let a = addr.to_string();
        let arping = Command::new("arping")
            .args(["-U", "-c", "2", "-w", "1", "-I", &dev, "-s", &a, &a])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if let Err(e) = &arping {
            tracing::warn!("gratuitous ARP for {a} not sent (is iputils-arping installed?): {e}");
        }
        if !clients.is_empty() {
            for round in 0..3 {
                std::thread::sleep(std::time::Duration::from_millis(if round == 0 {
                    20
                } else {
                    150
                }));
                match tickle(addr, &clients) {
                    Ok(n) => tracing::debug!(address = %addr, tickles = n, "tickled clients"),
                    Err(e) => tracing::warn!(address = %addr, "could not tickle clients: {e}"),
                }
            }
        }
        if let Ok(mut c) = arping {
            let _ = c.wait();
        }
    });
}

/// Remove `addr/prefix` from `dev`.
pub fn remove_address(addr: Ipv4Addr, prefix: u8, dev: &str) -> Result<(), String> {
    ip(&["addr", "del", &format!("{addr}/{prefix}"), "dev", dev])
}

/// Whether `addr` is configured on this host.
pub fn has_address(addr: Ipv4Addr) -> bool {
    Command::new("ip")
        .args(["-4", "-o", "addr", "show", "to", &format!("{addr}/32")])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false)
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
pub fn tickle(slot_ip: Ipv4Addr, clients: &[(Ipv4Addr, u16, u16)]) -> Result<usize, String> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP))
        .map_err(|e| format!("raw socket: {e}"))?;
    s.bind(&SockAddr::from(SocketAddrV4::new(slot_ip, 0)))
        .map_err(|e| format!("bind {slot_ip}: {e}"))?;
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
