//! The invariants checked after every step: the db against the model and against itself.

use crate::fixtures::{pool, token, user};
use crate::harness::Harness;
use gatehouse_core::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

impl Harness {
    /// Everything that must hold after every step.
    pub(crate) fn check(&mut self) -> Result<(), String> {
        let db = &self.leader;
        let m = &self.model;
        let now = UnixMillis(m.now);
        ensure!(*db == self.follower, "leader and follower diverged");

        // Every acknowledged session is live, and nothing else is; each equals the model's.
        let db_live: Vec<u64> = db.sessions().map(|s| s.index).collect();
        let model_live: Vec<u64> = m.live.keys().copied().collect();
        ensure_eq!(db_live, model_live, "live sessions");
        ensure_eq!(db.len(), m.live.len(), "len");
        for (&i, s) in &m.live {
            ensure_eq!(db.get(i).cloned(), Some(s.expected(i)), "session {i}");
        }

        // One address ↔ one session.
        let mut addresses = BTreeSet::new();
        for s in db.sessions() {
            ensure!(addresses.insert(s.address), "{} held by two sessions", s.address);
            ensure_eq!(db.lease(s.address), Some(s.index), "lease of {}", s.address);
        }
        ensure_eq!(db.lease_count(), db.len(), "lease count");

        // The counts gauges and directors read are kept by `apply`; they equal a scan.
        let active = db.sessions().filter(|s| s.inactive_since.is_none()).count();
        ensure_eq!(db.active_count(), active, "active count");
        let mut per_slot = BTreeMap::new();
        for id in db.sessions().filter_map(|s| s.slot) {
            *per_slot.entry(id).or_insert(0u32) += 1;
        }
        ensure_eq!(db.slot_sessions(), per_slot, "sessions per slot");
        let mut by_node: BTreeMap<u64, Vec<TunnelId>> = BTreeMap::new();
        for t in db.sessions().flat_map(|s| s.tunnels.iter()) {
            by_node.entry(t.node).or_default().push(t.id);
        }
        for (node, mut ids) in by_node {
            ids.sort();
            ensure_eq!(db.tunnels_on(node).collect::<Vec<_>>(), ids, "tunnels on node {node}");
        }
        for p in [pool(false), pool(true)] {
            for a in u32::from(p.first)..=u32::from(p.last) {
                let a = Ipv4Addr::from(a);
                if !addresses.contains(&a) {
                    ensure_eq!(db.lease(a), None, "lease of free address {a}");
                }
            }
        }

        // Tokens: live ones find their session, ended ones nothing.
        for (&i, s) in &m.live {
            ensure_eq!(db.by_token(&token(s.token)).map(|s| s.index), Some(i), "token of {i}");
        }
        for &t in &m.ended_tokens {
            ensure!(db.by_token(&token(t)).is_none(), "ended token {t} still finds a session");
        }

        // simultaneous_logins.
        for (&u, &limit) in &m.user_limit {
            let n = db.sessions().filter(|s| s.user == user(u)).count();
            ensure!(n <= limit as usize, "user{u} has {n} sessions, limit {limit}");
        }

        // Deadlines.
        let due: Vec<(u64, EndReason)> = m.due().into_iter().map(|(_, i, r)| (i, r)).collect();
        ensure_eq!(db.expired(now), due, "expired({})", now.0);
        let next =
            m.live.iter().filter_map(|(&i, s)| s.deadline().map(|(t, _)| (UnixMillis(t), i))).min();
        ensure_eq!(db.next_deadline(), next, "next_deadline");

        // The journal of endings, read in one go as a node's follower does.
        let e = db.endings_after(self.seen_seq);
        let want: Vec<(u64, EndReason)> =
            self.model.journal.iter().map(|&(i, r, _)| (i, r)).collect();
        ensure_eq!((e.ended, e.next, e.missed), (want, db.end_seq(), 0), "endings_after");
        let journal: Vec<(u64, EndReason, u64)> =
            db.ended_since(self.seen_seq).map(|e| (e.index, e.reason, e.at.0)).collect();
        ensure_eq!(journal, self.model.journal, "journal of endings");
        let seqs: Vec<u64> = db.ended_since(self.seen_seq).map(|e| e.seq).collect();
        let want: Vec<u64> = (self.seen_seq + 1..=db.end_seq()).collect();
        ensure_eq!(seqs, want, "journal sequence numbers");
        self.seen_seq = db.end_seq();
        self.model.journal.clear();
        Ok(())
    }
}
