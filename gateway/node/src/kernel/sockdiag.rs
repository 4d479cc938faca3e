//! Destroying TCP sockets by their local address over sock_diag netlink: what `ss -K src A`
//! did, in process.

use super::netlink::{Msg, Netlink, F_ACK, F_DUMP, F_REQUEST};
use std::io;
use std::net::Ipv4Addr;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const SOCK_DESTROY: u16 = 21;
const TCP_LISTEN: u8 = 10;
/// `inet_diag_sockid`: ports, two 16-byte addresses, interface, cookie.
const SOCKID_LEN: usize = 48;

fn request(kind: u16, flags: u16, id: &[u8; SOCKID_LEN]) -> Msg {
    let mut h = Vec::with_capacity(8 + SOCKID_LEN);
    h.extend_from_slice(&[libc::AF_INET as u8, libc::IPPROTO_TCP as u8, 0, 0]);
    h.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    h.extend_from_slice(id);
    Msg::new(kind, flags, &h)
}

/// Destroy every TCP socket (but listeners) whose local address is one of `addrs`; returns
/// how many went. The kernel needs `CONFIG_INET_DIAG_DESTROY`, as `ss -K` does.
pub fn destroy_local(addrs: &[Ipv4Addr]) -> io::Result<usize> {
    let mut nl = Netlink::open(libc::NETLINK_SOCK_DIAG)?;
    let replies =
        nl.talk(vec![request(SOCK_DIAG_BY_FAMILY, F_REQUEST | F_DUMP, &[0; SOCKID_LEN])])?;
    let mut n = 0;
    for r in replies.iter().filter(|r| r.kind == SOCK_DIAG_BY_FAMILY) {
        let p = &r.payload;
        if p.len() < 4 + SOCKID_LEN || p[1] == TCP_LISTEN {
            continue;
        }
        let mut id = [0u8; SOCKID_LEN];
        id.copy_from_slice(&p[4..4 + SOCKID_LEN]);
        let src = Ipv4Addr::new(id[4], id[5], id[6], id[7]);
        if !addrs.contains(&src) {
            continue;
        }
        match nl.talk(vec![request(SOCK_DESTROY, F_REQUEST | F_ACK, &id)]) {
            Ok(_) => n += 1,
            // Gone meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
