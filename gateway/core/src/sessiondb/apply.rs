//! How sessions and tunnels change: login, attach, detach, end. Each returns the typed reply
//! of its command; `SessionDb::apply` wraps it in the [`Outcome`](super::Outcome) envelope.

use super::command::{AttachTunnel, DetachTunnel, NewSession};
use super::outcome::{Attached, Detached, LoggedIn, Rejection};
use super::SessionDb;
use crate::pool::PoolRange;
use crate::session::{Counters, EndReason, ParentSession, TunnelId, TunnelKind, TunnelRecord};
use crate::slot::SlotRefusal;
use crate::time::UnixMillis;
use std::net::Ipv4Addr;

/// The first session index handed out (the reference headend's indices are small integers).
const FIRST_INDEX: u64 = 1;

impl SessionDb {
    pub(super) fn login(&mut self, c: &NewSession) -> Result<LoggedIn, Rejection> {
        if let Some(&i) = self.by_token.get(&c.token_hash) {
            // 256-bit random tokens do not collide: a duplicate is a replayed proposal. A
            // follower whose forward was cut off by a leader change retries it, and the old
            // leader may have committed the first copy: the replay names the session the first
            // copy made (its evictions already happened). Anything else is refused.
            return match self.sessions.get(&i) {
                Some(s) if s.user == c.user && s.login_time == c.at => {
                    Ok(LoggedIn { index: i, address: s.address, evicted: Vec::new() })
                }
                _ => Err(Rejection::UnknownToken),
            };
        }
        // Simultaneous logins: keep at most N sessions of this user including the new one,
        // ending the oldest first. Evict before leasing so an evicted address can be reused.
        let limit = c.timers.simultaneous_logins.max(1) as usize;
        // Oldest first: the per-user index is ordered by (login time, index).
        let mine: Vec<(UnixMillis, u64)> =
            self.by_user.get(&c.user).map(|v| v.iter().copied().collect()).unwrap_or_default();
        let excess = (mine.len() + 1).saturating_sub(limit);
        let to_evict: Vec<u64> = mine.iter().take(excess).map(|&(_, i)| i).collect();
        let pool = match c.slot {
            None => c.pool.clone(),
            Some(r) => match self.slots.get(r.id) {
                None => return Err(Rejection::Slot(SlotRefusal::NoSuchSlot)),
                Some(s) if s.epoch != r.epoch => {
                    return Err(Rejection::Slot(SlotRefusal::StaleEpoch))
                }
                Some(s) => s.spec.pool.clone(),
            },
        };
        let Some(address) = self.free_address(&pool, &to_evict) else {
            return Err(Rejection::PoolExhausted);
        };
        for &i in &to_evict {
            self.end(i, EndReason::SimultaneousLogins, c.at);
        }
        let index = self.next_index.max(FIRST_INDEX);
        self.next_index = index + 1;
        let s = ParentSession {
            index,
            user: c.user.clone(),
            tunnel_group: c.tunnel_group.clone(),
            group_policy: c.group_policy.clone(),
            address,
            token_hash: c.token_hash,
            login_time: c.at,
            inactive_since: Some(c.at),
            timers: c.timers,
            client_version: c.client_version.clone(),
            public_ip: c.public_ip.clone(),
            tunnels: Vec::new(),
            next_tunnel: 1,
            counters: Counters::default(),
            resumes: 0,
            slot: c.slot.map(|r| r.id),
        };
        self.pool_cursor.insert(pool.name.clone(), u32::from(address));
        self.index_session(&s);
        self.sessions.insert(index, s);
        Ok(LoggedIn { index, address, evicted: to_evict })
    }

    /// Next free address after the pool's cursor, wrapping (next-fit: a freed address is
    /// reused last, so a stale client is unlikely to meet its old address on someone else).
    fn free_address(&self, pool: &PoolRange, freed: &[u64]) -> Option<Ipv4Addr> {
        let (first, last) = (u32::from(pool.first), u32::from(pool.last));
        if first > last {
            return None;
        }
        let cursor = self.pool_cursor.get(&pool.name).copied().unwrap_or(last);
        let size = u64::from(last - first) + 1;
        let start = if cursor >= first && cursor < last { cursor + 1 } else { first };
        for k in 0..size {
            let a = first + ((u64::from(start - first) + k) % size) as u32;
            let addr = Ipv4Addr::from(a);
            match self.leases.get(&addr) {
                None => return Some(addr),
                Some(owner) if freed.contains(owner) => return Some(addr),
                Some(_) => {}
            }
        }
        None
    }

    pub(super) fn attach(&mut self, c: &AttachTunnel) -> Result<Attached, Rejection> {
        let Some(&index) = self.by_token.get(&c.token_hash) else {
            return Err(Rejection::UnknownToken);
        };
        if let Some(r) = c.slot {
            // Fencing: a node that lost the slot cannot attach tunnels for it.
            if !self.slots.is_current(r.id, r.epoch) {
                return Err(Rejection::Slot(SlotRefusal::StaleEpoch));
            }
        }
        let before = self.before(index);
        let Some(s) = self.sessions.get_mut(&index) else {
            return Err(Rejection::UnknownToken);
        };
        if c.kind != TunnelKind::Ssl && !s.has_ssl() {
            return Err(Rejection::NoSslTunnel);
        }
        // A resume is a new ssl tunnel after an earlier one (every earlier tunnel implies an
        // earlier ssl tunnel, see above); a datagram tunnel joining it is not a reconnect.
        let resumed = c.kind == TunnelKind::Ssl && s.next_tunnel > 1;
        if resumed && !s.timers.auto_reconnect {
            return Err(Rejection::ReconnectNotAllowed);
        }
        let id = TunnelId { index, n: s.next_tunnel };
        s.next_tunnel += 1;
        let mut replaced = Vec::new();
        if c.kind == TunnelKind::Ssl {
            // A client holds one ssl tunnel: a new one replaces whatever the gateway still
            // thinks is attached (a frozen or half-dead connection DPD has not caught yet).
            // Datagram tunnels were keyed to the old TLS session, so they go too.
            replaced = s.tunnels.iter().map(|t| t.id).collect();
            s.tunnels.clear();
            s.inactive_since = None;
        }
        if resumed {
            s.resumes += 1;
        }
        s.public_ip = c.public_ip.clone();
        s.tunnels.push(TunnelRecord {
            id,
            kind: c.kind,
            node: c.node,
            public_ip: c.public_ip.clone(),
            src_port: c.src_port,
            dst_port: c.dst_port,
            started: c.at,
        });
        let out =
            Attached { tunnel: id, address: s.address, user: s.user.clone(), replaced, resumed };
        self.reindex(index, before);
        Ok(out)
    }

    pub(super) fn detach(&mut self, c: &DetachTunnel) -> Result<Detached, Rejection> {
        let index = c.id.index;
        let before = self.before(index);
        let Some(s) = self.sessions.get_mut(&index) else {
            return Err(Rejection::NoSuchSession);
        };
        let Some(pos) = s.tunnels.iter().position(|t| t.id == c.id) else {
            // Already replaced: keep its counters all the same.
            s.counters = s.counters.plus(c.counters);
            return Err(Rejection::NoSuchTunnel);
        };
        s.tunnels.remove(pos);
        s.counters = s.counters.plus(c.counters);
        if !s.has_ssl() && s.inactive_since.is_none() {
            // Inactivity counts only while no ssl tunnel exists; a datagram tunnel alone
            // cannot carry control, so it goes with the ssl one.
            s.inactive_since = Some(c.at);
            s.tunnels.clear();
        }
        let inactive = s.inactive_since.is_some();
        self.reindex(index, before);
        Ok(Detached { inactive })
    }

    /// End session `index`; false if it is not live.
    pub(super) fn end(&mut self, index: u64, reason: EndReason, at: UnixMillis) -> bool {
        let Some(s) = self.sessions.remove(&index) else {
            return false;
        };
        self.unindex_session(&s);
        self.journal.push(index, reason, at);
        true
    }
}
