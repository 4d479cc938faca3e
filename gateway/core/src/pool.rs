//! Address pools: the ranges inner addresses are leased from. Leases live in the session db.

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// An inclusive IPv4 range, named as in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRange {
    /// Pool name.
    pub name: String,
    /// First leasable address.
    pub first: Ipv4Addr,
    /// Last leasable address.
    pub last: Ipv4Addr,
}

impl PoolRange {
    /// The hosts of `net/prefix`, skipping the network address, the broadcast address and
    /// the first host (kept for the gateway's own tun address). `None` for prefixes too
    /// small to hold a client (/31, /32).
    pub fn from_cidr(name: &str, net: Ipv4Addr, prefix: u8) -> Option<PoolRange> {
        if prefix > 30 {
            return None;
        }
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        let base = u32::from(net) & mask;
        let bcast = base | !mask;
        Some(PoolRange {
            name: name.to_string(),
            first: Ipv4Addr::from(base + 2),
            last: Ipv4Addr::from(bcast - 1),
        })
    }

    /// The address the gateway gives its own tun interface (`net + 1`).
    pub fn gateway_address(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.first) - 1)
    }

    /// Number of leasable addresses.
    pub fn size(&self) -> u64 {
        u64::from(u32::from(self.last)).saturating_sub(u64::from(u32::from(self.first))) + 1
    }

    /// Whether `a` belongs to this pool.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&a)
    }
}
