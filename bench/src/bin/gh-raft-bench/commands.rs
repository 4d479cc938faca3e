//! The commands proposed: fresh `Login`s and ssl `Attach`es, and what counts as success.

use anyhow::{Context, Result};
use gatehouse_core::{
    AttachTunnel, Command, NewSession, Outcome, PoolRange, SessionTimers, TokenHash, TunnelKind,
    UnixMillis,
};
use gatehouse_tests::clock;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Builds the commands: every login gets a fresh user `u{n}` and token hash from one counter.
pub(crate) struct Gen {
    seed: u64,
    pool: PoolRange,
    timers: SessionTimers,
    next: AtomicU64,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn unix_now() -> UnixMillis {
    UnixMillis((clock::epoch_secs() * 1000.0) as u64)
}

impl Gen {
    pub(crate) fn new() -> Result<Gen> {
        Ok(Gen {
            seed: splitmix((clock::epoch_secs() * 1e9) as u64 ^ u64::from(std::process::id())),
            pool: PoolRange::from_cidr("bench", Ipv4Addr::new(10, 0, 0, 0), 12)
                .context("pool /12")?,
            timers: SessionTimers {
                idle_timeout: Some(Duration::from_secs(1800)),
                disconnected_timeout: Some(Duration::from_secs(1800)),
                max_connect_time: Some(Duration::from_secs(86400)),
                simultaneous_logins: u32::MAX,
                auto_reconnect: true,
            },
            next: AtomicU64::new(1),
        })
    }

    /// A range of `n` fresh session numbers.
    pub(crate) fn take(&self, n: u64) -> u64 {
        self.next.fetch_add(n, Ordering::Relaxed)
    }

    fn token(&self, n: u64) -> TokenHash {
        let mut h = [0u8; 32];
        for (k, chunk) in h.chunks_mut(8).enumerate() {
            let w = splitmix(self.seed ^ splitmix(n.wrapping_mul(4).wrapping_add(k as u64)));
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        TokenHash(h)
    }

    pub(crate) fn login(&self, n: u64) -> Command {
        Command::Login(NewSession {
            at: unix_now(),
            user: format!("u{n}"),
            tunnel_group: "default".into(),
            group_policy: "default".into(),
            timers: self.timers,
            pool: self.pool.clone(),
            token_hash: self.token(n),
            client_version: "AnyConnect Linux_64 4.10.07061".into(),
            public_ip: format!("192.0.2.{}", n % 250 + 1),
            slot: None,
        })
    }

    pub(crate) fn attach(&self, n: u64, node: u64) -> Command {
        Command::Attach(AttachTunnel {
            at: unix_now(),
            token_hash: self.token(n),
            kind: TunnelKind::Ssl,
            node,
            public_ip: format!("198.51.100.{}", n % 250 + 1),
            src_port: (n % 50_000) as u16 + 10_000,
            dst_port: 443,
            slot: None,
        })
    }
}

pub(crate) fn login_ok(o: &Outcome) -> bool {
    matches!(o, Outcome::LoggedIn { evicted, .. } if evicted.is_empty())
}

pub(crate) fn attach_ok(o: &Outcome) -> bool {
    matches!(o, Outcome::Attached { .. })
}
