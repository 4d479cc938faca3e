//! What a node does to its interfaces when it gains or loses a slot: add or remove the slot's
//! addresses (iproute2, i.e. netlink), announce them with gratuitous ARP (iputils `arping`),
//! and "tickle" the slot's clients so their dead TCP connections reset at once.
//!
//! The tickle (the technique CTDB uses for IP takeover): a TCP ACK with sequence 0 sent from
//! the slot address to each client's endpoint. The client's kernel answers an out-of-window
//! ACK with its current sequence numbers; this node's kernel, which has no such connection,
//! answers that with a RST the client accepts, and openconnect reconnects immediately instead
//! of waiting for its retransmissions or DPD to give up.
//!
//! Everything here blocks (subprocesses, a raw socket): only the slot worker thread
//! (`slots::worker`) calls it, never an async task.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Child, Command, Stdio};

/// An `ip` command that did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum InterfaceError {
    /// `ip` could not be run at all (is iproute2 installed?).
    #[error("{cmd}: {source}")]
    Run {
        /// The command, as given.
        cmd: String,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// `ip` ran and refused; its standard error says why.
    #[error("{cmd}: {stderr}")]
    Refused {
        /// The command line.
        cmd: String,
        /// What `ip` said.
        stderr: String,
    },
}

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

fn ip(args: &[&str]) -> Result<(), InterfaceError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| InterfaceError::Run { cmd: format!("ip {args:?}"), source })?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    // Adding an address that is there, or removing one that is not, is the state we want.
    if err.contains("File exists") || err.contains("Cannot assign requested address") {
        return Ok(());
    }
    Err(InterfaceError::Refused {
        cmd: format!("ip {}", args.join(" ")),
        stderr: err.trim().into(),
    })
}

/// Add `addr/prefix` to `dev` (announce it with [`gratuitous_arp`] and [`tickle`]).
pub fn add_address(addr: Ipv4Addr, prefix: u8, dev: &str) -> Result<(), InterfaceError> {
    ip(&["addr", "add", &format!("{addr}/{prefix}"), "dev", dev])
}

/// Start announcing `addr` on `dev` with gratuitous ARP (two unsolicited ARPs within a
/// second); the caller reaps the child. It does not wait: the tickles that follow must not
/// wait for arping to finish, only for it to have started.
pub fn gratuitous_arp(addr: Ipv4Addr, dev: &str) -> std::io::Result<Child> {
    let a = addr.to_string();
    Command::new("arping")
        .args(["-U", "-c", "2", "-w", "1", "-I", dev, "-s", &a, &a])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// Remove `addr/prefix` from `dev`.
pub fn remove_address(addr: Ipv4Addr, prefix: u8, dev: &str) -> Result<(), InterfaceError> {
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

/// Reset connections a previous run of this node left on `addr` (`ss -K`).
pub fn kill_connections(addr: Ipv4Addr) {
    let _ = Command::new("ss")
        .args(["-K", "src", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
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

/// What a crash drill does to the slots it held: nothing more leaves from their addresses
/// (no FIN, no RST), and no ARP answer comes for them either.
pub(super) fn fence_for_crash(
    specs: &[gatehouse_core::SlotSpec],
    public_if: &str,
    inside_if: &str,
) {
    for spec in specs {
        let _ = std::process::Command::new("iptables")
            .args([
                "-I",
                "OUTPUT",
                "-s",
                &spec.public_ip.to_string(),
                "-m",
                "comment",
                "--comment",
                "gatehouse-drill-crash",
                "-j",
                "DROP",
            ])
            .status();
        let _ = remove_address(spec.public_ip, spec.public_prefix, public_if);
        if let Some(ip) = spec.inside_ip {
            let _ = remove_address(ip, spec.inside_prefix, inside_if);
        }
    }
}

/// Remove drill-crash rules a previous run left behind.
pub fn clear_drill_rules() {
    for _ in 0..16 {
        let out = std::process::Command::new("iptables").args(["-S", "OUTPUT"]).output();
        let Ok(out) = out else { return };
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let Some(rule) = text.lines().find(|l| l.contains("gatehouse-drill-crash")) else { return };
        let args: Vec<String> = rule
            .replacen("-A ", "-D ", 1)
            .split_whitespace()
            .map(|s| s.trim_matches('"').to_string())
            .collect();
        let _ = std::process::Command::new("iptables").args(&args).status();
    }
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
