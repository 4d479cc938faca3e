//! The IPv4 header facts the tunnel rules need.

use std::net::Ipv4Addr;

/// Source of an IPv4 packet; `None` for anything that is not a whole IPv4 header.
pub fn ipv4_src(p: &[u8]) -> Option<Ipv4Addr> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    Some(Ipv4Addr::new(p[12], p[13], p[14], p[15]))
}

/// `/len` as a dotted netmask (lengths above 32 count as 32).
pub fn prefix_mask(len: u8) -> Ipv4Addr {
    Ipv4Addr::from(if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len.min(32))) })
}
