//! The reference model: the live sessions, ended tokens and issued ids the db must match.

use crate::fixtures::{token, user};
use crate::ops::IndexPick;
use gatehouse_core::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

/// A live session as the model sees it.
#[derive(Debug, Clone)]
pub(crate) struct MSession {
    pub(crate) user: u8,
    pub(crate) token: u32,
    pub(crate) small_pool: bool,
    pub(crate) address: Ipv4Addr,
    pub(crate) login_time: u64,
    pub(crate) inactive_since: Option<u64>,
    pub(crate) timers: SessionTimers,
    pub(crate) public_ip: String,
    pub(crate) tunnels: Vec<TunnelRecord>,
    pub(crate) next_tunnel: u32,
    /// Whether an ssl tunnel was ever attached (a later ssl attach is a reconnect).
    pub(crate) had_ssl: bool,
    pub(crate) counters: Counters,
    pub(crate) resumes: u32,
}

impl MSession {
    /// The earliest session-ending deadline; max connect time wins a tie.
    pub(crate) fn deadline(&self) -> Option<(u64, EndReason)> {
        let ms = |d: Duration| d.as_millis() as u64;
        let disc = self
            .inactive_since
            .zip(self.timers.disconnected_timeout)
            .map(|(t, d)| (t + ms(d), EndReason::DisconnectedTimeout));
        let max = self
            .timers
            .max_connect_time
            .map(|d| (self.login_time + ms(d), EndReason::MaxConnectTime));
        match (disc, max) {
            (Some(d), Some(m)) => Some(if m.0 <= d.0 { m } else { d }),
            (d, m) => d.or(m),
        }
    }

    pub(crate) fn due(&self, now: u64) -> Option<EndReason> {
        self.deadline().filter(|(t, _)| *t <= now).map(|(_, r)| r)
    }

    pub(crate) fn expected(&self, index: u64) -> ParentSession {
        ParentSession {
            index,
            user: user(self.user),
            tunnel_group: "tg".into(),
            group_policy: "gp".into(),
            address: self.address,
            token_hash: token(self.token),
            login_time: UnixMillis(self.login_time),
            inactive_since: self.inactive_since.map(UnixMillis),
            timers: self.timers,
            client_version: "Open AnyConnect VPN Agent v9.01-3".into(),
            public_ip: self.public_ip.clone(),
            tunnels: self.tunnels.clone(),
            next_tunnel: self.next_tunnel,
            counters: self.counters,
            resumes: self.resumes,
            slot: None,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Model {
    pub(crate) now: u64,
    pub(crate) live: BTreeMap<u64, MSession>,
    /// Tokens whose session ended: never accepted again.
    pub(crate) ended_tokens: BTreeSet<u32>,
    /// Every index handed out, in order.
    pub(crate) issued: Vec<u64>,
    /// Every tunnel id handed out, in order.
    pub(crate) tunnels_issued: Vec<TunnelId>,
    pub(crate) next_token: u32,
    /// The `simultaneous_logins` of each user's latest successful login.
    pub(crate) user_limit: BTreeMap<u8, u32>,
    /// Endings the journal must show next: (index, reason, at).
    pub(crate) journal: Vec<(u64, EndReason, u64)>,
}

impl Model {
    pub(crate) fn end(&mut self, index: u64, reason: EndReason) -> bool {
        let Some(s) = self.live.remove(&index) else { return false };
        self.ended_tokens.insert(s.token);
        self.journal.push((index, reason, self.now));
        true
    }

    pub(crate) fn due(&self) -> Vec<(u64, u64, EndReason)> {
        let mut v: Vec<_> = self
            .live
            .iter()
            .filter_map(|(&i, s)| {
                s.deadline().filter(|(t, _)| *t <= self.now).map(|(t, r)| (t, i, r))
            })
            .collect();
        v.sort_by_key(|&(t, i, _)| (t, i));
        v
    }

    pub(crate) fn pick_index(&self, p: &IndexPick) -> u64 {
        let live: Vec<u64> = self.live.keys().copied().collect();
        let unknown = |n: u8| self.issued.last().copied().unwrap_or(0) + 1 + u64::from(n);
        match *p {
            IndexPick::Live(k) if !live.is_empty() => recent(&live, k),
            IndexPick::Due(k) => {
                let due = self.due();
                if !due.is_empty() {
                    due[k % due.len()].1
                } else if !live.is_empty() {
                    recent(&live, k)
                } else {
                    unknown(0)
                }
            }
            IndexPick::Issued(k) if !self.issued.is_empty() => recent(&self.issued, k),
            IndexPick::Unknown(n) => unknown(n),
            _ => unknown(0),
        }
    }
}

/// The `k`-th newest element (modulo the length): picks count from the newest, so that dropping
/// an early operation while shrinking does not change what a later one refers to.
pub(crate) fn recent<T: Copy>(v: &[T], k: usize) -> T {
    v[v.len() - 1 - k % v.len()]
}

/// The `k`-th newest entry of a map keyed by something growing (indices), if any.
pub(crate) fn nth<K, V>(m: &BTreeMap<K, V>, k: usize) -> Option<(&K, &V)> {
    if m.is_empty() {
        None
    } else {
        m.iter().rev().nth(k % m.len())
    }
}
