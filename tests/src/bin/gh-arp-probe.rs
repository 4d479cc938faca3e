//! `gh-arp-probe IFACE OUR_IP TARGET_IP SECONDS`: a broadcast ARP request for TARGET_IP every
//! 10 ms on IFACE for SECONDS, printing `<ms since start> <probe number> <hardware address>`
//! for every reply (iputils arping cannot probe faster than once a second). The failover
//! tests read it to see which hosts answer for a slot address, and whether two ever do.
//!
//! A packet socket needs a link-layer address (`sockaddr_ll`) that std cannot build, hence the
//! libc calls below — test tooling, like the node's `kernel::garp`.
#![allow(unsafe_code)]
#![allow(clippy::print_stdout)] // a command-line tool: its output is the point

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

const ETH_P_ARP: u16 = 0x0806;

fn sys_file(iface: &str, what: &str) -> String {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/{what}"))
        .unwrap_or_else(|e| panic!("/sys/class/net/{iface}/{what}: {e}"))
        .trim()
        .to_string()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: gh-arp-probe IFACE OUR_IP TARGET_IP SECONDS");
        std::process::exit(64);
    }
    let iface = &args[1];
    let ours: Ipv4Addr = args[2].parse().expect("OUR_IP");
    let target: Ipv4Addr = args[3].parse().expect("TARGET_IP");
    let secs: u64 = args[4].parse().expect("SECONDS");
    let index: i32 = sys_file(iface, "ifindex").parse().expect("ifindex");
    let mac: Vec<u8> = sys_file(iface, "address")
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).expect("hardware address"))
        .collect();

    // SAFETY: socket(2) with constant arguments, checked, then owned.
    let fd =
        unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, i32::from(ETH_P_ARP.to_be())) };
    assert!(fd >= 0, "packet socket: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let tv = libc::timeval { tv_sec: 0, tv_usec: 1000 };
    // SAFETY: tv is valid for its size during the call.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
    // SAFETY: plain old data; all-zero is valid.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = ETH_P_ARP.to_be();
    to.sll_ifindex = index;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    let mut req = [0u8; 28];
    req[0..2].copy_from_slice(&1u16.to_be_bytes());
    req[2..4].copy_from_slice(&0x0800u16.to_be_bytes());
    req[4] = 6;
    req[5] = 4;
    req[6..8].copy_from_slice(&1u16.to_be_bytes());
    req[8..14].copy_from_slice(&mac);
    req[14..18].copy_from_slice(&ours.octets());
    req[24..28].copy_from_slice(&target.octets());

    let start = gatehouse_tests::clock::now();
    let end = start + Duration::from_secs(secs);
    let mut probe = 0u64;
    let mut next = start;
    let mut buf = [0u8; 128];
    while gatehouse_tests::clock::now() < end {
        if gatehouse_tests::clock::now() >= next {
            probe += 1;
            // SAFETY: the buffer and the address are valid for their lengths during the call.
            unsafe {
                libc::sendto(
                    fd.as_raw_fd(),
                    req.as_ptr().cast(),
                    req.len(),
                    0,
                    (&to as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                );
            }
            next += Duration::from_millis(10);
        }
        // SAFETY: buf is valid for its length during the call.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 28 {
            continue;
        }
        let p = &buf[..n as usize];
        let is_reply = p[6..8] == [0, 2];
        if is_reply && p[14..18] == target.octets() {
            let m: Vec<String> = p[8..14].iter().map(|b| format!("{b:02x}")).collect();
            println!("{} {probe} {}", start.elapsed().as_millis(), m.join(":"));
        }
    }
}
