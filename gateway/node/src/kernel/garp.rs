//! Gratuitous ARP from a packet socket: what `arping -U` did, in process.
//!
//! This is the node's one module with `unsafe` code: a packet socket needs a link-layer
//! address (`sockaddr_ll`) that neither std nor socket2 can build, so the two system calls
//! that take one are made through libc here, with their sizes checked.
#![allow(unsafe_code)]

use super::rtnl::Link;
use std::io;
use std::net::Ipv4Addr;

const ETH_P_ARP: u16 = 0x0806;
const BROADCAST: [u8; 6] = [0xff; 6];

/// The ARP request a gratuitous announcement is: sender and target protocol address both
/// `addr`, sender hardware address `mac`, target hardware address broadcast (as `arping -U`
/// and keepalived send it; a neighbour updates an entry it already has for `addr`).
pub fn announcement(mac: [u8; 6], addr: Ipv4Addr) -> [u8; 28] {
    let mut p = [0u8; 28];
    p[0..2].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    p[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    p[4] = 6;
    p[5] = 4;
    p[6..8].copy_from_slice(&1u16.to_be_bytes()); // request
    p[8..14].copy_from_slice(&mac);
    p[14..18].copy_from_slice(&addr.octets());
    p[18..24].copy_from_slice(&BROADCAST);
    p[24..28].copy_from_slice(&addr.octets());
    p
}

/// An `AF_PACKET` datagram socket for ARP.
#[derive(Debug)]
pub struct ArpSocket {
    fd: std::os::fd::OwnedFd,
}

impl ArpSocket {
    /// Open one (needs CAP_NET_RAW).
    pub fn open() -> io::Result<ArpSocket> {
        use std::os::fd::FromRawFd;
        // SAFETY: socket(2) with constant arguments; the result is checked before use and
        // owned by the OwnedFd from then on.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_ARP.to_be()),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        Ok(ArpSocket { fd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) } })
    }

    /// Broadcast a gratuitous ARP for `addr` on `link`.
    pub fn announce(&self, link: &Link, addr: Ipv4Addr) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let payload = announcement(link.mac, addr);
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = ETH_P_ARP.to_be();
        sa.sll_ifindex = link.index as i32;
        sa.sll_halen = 6;
        sa.sll_addr[..6].copy_from_slice(&BROADCAST);
        // SAFETY: the buffer and the address are valid for the lengths given for the
        // duration of the call.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                payload.as_ptr().cast(),
                payload.len(),
                0,
                (&sa as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announcement_names_the_address_as_sender_and_target() {
        let p = announcement([2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 0, 0, 101));
        assert_eq!(&p[6..8], &[0, 1], "a request");
        assert_eq!(&p[14..18], &[10, 0, 0, 101]);
        assert_eq!(&p[24..28], &[10, 0, 0, 101]);
        assert_eq!(&p[8..14], &[2, 0, 0, 0, 0, 1]);
    }
}
