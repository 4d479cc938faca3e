//! The fixtures the operations name: the two pools, the group policies, tokens and users.

use gatehouse_core::{PoolRange, SessionTimers, TokenHash};
use std::net::Ipv4Addr;
use std::time::Duration;

pub(crate) const S: u64 = 1000;
pub(crate) const USERS: u8 = 5;

/// The main pool, a /28: .2 ..= .14 are leasable (13 addresses), fewer than 5 users × 3
/// logins, so it runs out now and then. The small one, a /29 (.2 ..= .6), runs out often, and
/// its sessions share users and the lease table with the main pool's.
pub(crate) fn pool(small: bool) -> PoolRange {
    if small {
        PoolRange::from_cidr("small", Ipv4Addr::new(10, 77, 1, 0), 29).unwrap()
    } else {
        PoolRange::from_cidr("pool", Ipv4Addr::new(10, 77, 0, 0), 28).unwrap()
    }
}

/// The group policies a login may come under: small timers so that clock jumps cross them.
pub(crate) fn policy(p: u8) -> SessionTimers {
    let t =
        |disc: Option<u64>, max: Option<u64>, logins: u32, auto_reconnect: bool| SessionTimers {
            idle_timeout: Some(Duration::from_secs(30)),
            disconnected_timeout: disc.map(Duration::from_secs),
            max_connect_time: max.map(Duration::from_secs),
            simultaneous_logins: logins,
            auto_reconnect,
        };
    match p % POLICIES {
        0 => t(Some(60), None, 1, true),
        1 => t(Some(60), Some(600), 2, true),
        2 => t(Some(60), Some(600), 3, true),
        3 => t(None, Some(600), 3, false),
        _ => t(None, None, 3, true),
    }
}
pub(crate) const POLICIES: u8 = 5;

/// Distinct token ids give distinct hashes (the low bytes first, so that `TokenHash`'s debug
/// prefix tells them apart); ids from `NEVER_ISSUED` on are never logged in.
pub(crate) fn token(id: u32) -> TokenHash {
    let mut h = [0xa5u8; 32];
    h[..4].copy_from_slice(&id.to_le_bytes());
    TokenHash(h)
}
pub(crate) const NEVER_ISSUED: u32 = 1 << 30;

pub(crate) fn user(u: u8) -> String {
    format!("user{u}")
}
