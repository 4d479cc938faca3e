//! The director's pure core: the slot tables the nodes sent, merged into one view, and the
//! redirects this director made that the tables do not show yet. No I/O and no clock: every
//! call takes `now` (milliseconds on the director's monotonic clock).
//!
//! Replicas share nothing: each counts only its own redirects in flight, and a table's new
//! sessions cancel pending redirects whichever replica sent those clients. One director
//! spreads a burst exactly (within one session per slot); several replicas behind a load
//! balancer drift by up to the number of clients in flight at the other replicas, and the
//! tables correct it as logins land.

use gatehouse_core::placement::{place, SlotLoad};
use gatehouse_proto::slots::{SlotTableView, SlotView};
use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

/// A node's table is stale when its stream sent nothing for this long. The watch re-subscribes
/// after 3 s of quiet (a new stream starts with the current table), so a live node's table is
/// never older than about 3 s.
pub const STALE_AFTER_MS: u64 = 5_000;

/// A redirect not yet seen in any table is forgotten after this long: the client gave up, or
/// logged in somewhere the tables attribute to another director.
pub const PENDING_TTL_MS: u64 = 10_000;

struct Received {
    at: u64,
    connected: bool,
    view: SlotTableView,
}

/// The slot tables from every watched node and this director's own recent redirects.
pub struct Placer {
    affinity: bool,
    tables: BTreeMap<u64, Received>,
    /// The merged view placement last used, by slot id.
    merged: BTreeMap<u32, SlotView>,
    /// Redirects per slot (their times) that the merged view does not count yet: the
    /// optimistic bump that keeps a burst of clients from all landing on the same slot.
    pending: BTreeMap<u32, VecDeque<u64>>,
}

impl Placer {
    /// An empty placer: answers no slot until a table arrives.
    pub fn new(affinity: bool) -> Self {
        Placer {
            affinity,
            tables: BTreeMap::new(),
            merged: BTreeMap::new(),
            pending: BTreeMap::new(),
        }
    }

    /// A table from node `view.node`'s stream.
    pub fn on_table(&mut self, now: u64, view: SlotTableView) {
        self.tables.insert(view.node, Received { at: now, connected: true, view });
        self.remerge(now);
    }

    /// Node `node`'s stream broke: its table is stale from now on (kept only as a fallback).
    pub fn on_disconnect(&mut self, now: u64, node: u64) {
        if let Some(r) = self.tables.get_mut(&node) {
            r.connected = false;
        }
        self.remerge(now);
    }

    fn fresh(r: &Received, now: u64) -> bool {
        r.connected && now.saturating_sub(r.at) < STALE_AFTER_MS
    }

    /// Milliseconds since the newest table arrived (`None` before the first).
    pub fn table_age_ms(&self, now: u64) -> Option<u64> {
        self.tables.values().map(|r| now.saturating_sub(r.at)).min()
    }

    /// Whether any node's table is fresh.
    pub fn has_fresh_table(&self, now: u64) -> bool {
        self.tables.values().any(|r| Self::fresh(r, now))
    }

    /// Merge the fresh tables (all tables when none is fresh: an old table still names the
    /// slots' addresses, which move with the slots). Per slot, the entry with the highest
    /// epoch wins; then an available one (a node cut off from the majority sees every lease
    /// lapse, and must not hide the slots the majority still serves); then the one counting
    /// more sessions (a node that has applied more of the log); then the newest.
    ///
    /// Sessions the new view counts beyond the previous one take the place of as many pending
    /// redirects to that slot: the clients arrived.
    fn remerge(&mut self, now: u64) {
        let any_fresh = self.has_fresh_table(now);
        let mut merged: BTreeMap<u32, (&SlotView, u64)> = BTreeMap::new();
        for r in self.tables.values().filter(|r| !any_fresh || Self::fresh(r, now)) {
            for s in &r.view.slots {
                let key = |s: &SlotView, at: u64| (s.epoch, s.available, !s.late, s.sessions, at);
                match merged.get(&s.id) {
                    Some((best, at)) if key(best, *at) >= key(s, r.at) => {}
                    _ => {
                        merged.insert(s.id, (s, r.at));
                    }
                }
            }
        }
        let merged: BTreeMap<u32, SlotView> =
            merged.into_iter().map(|(id, (s, _))| (id, s.clone())).collect();
        for (id, s) in &merged {
            let before = self.merged.get(id).map_or(0, |p| p.sessions);
            let arrived = s.sessions.saturating_sub(before) as usize;
            if let Some(q) = self.pending.get_mut(id) {
                q.drain(..arrived.min(q.len()));
            }
        }
        self.merged = merged;
    }

    /// Choose a slot for a new client from `client` and count the redirect as pending on it.
    /// `None` when no slot is available.
    pub fn choose(&mut self, now: u64, client: Option<IpAddr>) -> Option<SlotView> {
        // Freshness depends on `now`: a node gone quiet drops out here.
        self.remerge(now);
        for q in self.pending.values_mut() {
            while q.front().is_some_and(|t| now.saturating_sub(*t) >= PENDING_TTL_MS) {
                q.pop_front();
            }
        }
        let loads: Vec<SlotLoad> = self
            .merged
            .values()
            .map(|s| SlotLoad {
                id: s.id,
                sessions: s.sessions.saturating_add(self.pending_on(s.id)),
                capacity: s.capacity,
                available: s.available,
                late: s.late,
            })
            .collect();
        let id = place(&loads, client, self.affinity)?;
        self.pending.entry(id).or_default().push_back(now);
        self.merged.get(&id).cloned()
    }

    /// Redirects to `slot` the tables do not count yet.
    pub fn pending_on(&self, slot: u32) -> u32 {
        self.pending.get(&slot).map_or(0, |q| q.len() as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn slot(id: u32, sessions: u32, epoch: u64, available: bool) -> SlotView {
        SlotView {
            id,
            public_ip: Ipv4Addr::new(198, 51, 100, id as u8),
            port: 443,
            owner: Some(u64::from(id)),
            epoch,
            sessions,
            capacity: 100,
            available,
            late: false,
        }
    }

    fn table(node: u64, slots: Vec<SlotView>) -> SlotTableView {
        SlotTableView { node, slots }
    }

    fn three(sessions: [u32; 3]) -> SlotTableView {
        table(1, (1..=3).map(|i| slot(i, sessions[i as usize - 1], 1, true)).collect())
    }

    #[test]
    fn a_burst_between_tables_spreads_by_the_local_bump() {
        let mut p = Placer::new(false);
        p.on_table(0, three([0, 0, 0]));
        let ids: Vec<u32> = (0..6).map(|_| p.choose(10, None).unwrap().id).collect();
        assert_eq!(ids, vec![1, 2, 3, 1, 2, 3]);
        assert_eq!(p.pending_on(1), 2);
        // The table catches up with four of the six logins: two stay pending.
        p.on_table(100, three([2, 1, 1]));
        assert_eq!((p.pending_on(1), p.pending_on(2), p.pending_on(3)), (0, 1, 1));
        // Counted load is 2/2/2: the tie goes to the lowest id.
        assert_eq!(p.choose(110, None).unwrap().id, 1);
    }

    #[test]
    fn a_redirect_that_never_logs_in_is_forgotten() {
        let mut p = Placer::new(false);
        p.on_table(0, three([5, 5, 5]));
        assert_eq!(p.choose(0, None).unwrap().id, 1);
        assert_eq!(p.pending_on(1), 1);
        p.on_table(PENDING_TTL_MS, three([5, 5, 5]));
        assert_eq!(p.choose(PENDING_TTL_MS, None).unwrap().id, 1, "slot 1 is not held back");
    }

    #[test]
    fn no_slot_when_nothing_is_available_or_known() {
        let mut p = Placer::new(false);
        assert_eq!(p.choose(0, None), None, "no table yet");
        p.on_table(0, table(1, vec![slot(1, 0, 1, false), slot(2, 0, 1, false)]));
        assert_eq!(p.choose(0, None), None);
        assert_eq!(p.pending_on(1) + p.pending_on(2), 0);
    }

    #[test]
    fn stale_tables_give_way_to_fresh_ones_and_serve_only_as_a_fallback() {
        let mut p = Placer::new(false);
        // Node 1 saw slot 1 with a live owner, then went quiet; node 2 saw it move (epoch 2)
        // and slot 2 fill up.
        p.on_table(0, table(1, vec![slot(1, 0, 1, true), slot(2, 0, 1, true)]));
        p.on_table(1_000, table(2, vec![slot(1, 0, 2, false), slot(2, 9, 1, true)]));
        assert_eq!(p.choose(1_000, None).unwrap().id, 2, "slot 1 is moving");
        p.on_table(STALE_AFTER_MS + 1, table(2, vec![slot(1, 0, 2, true), slot(2, 9, 1, true)]));
        assert_eq!(p.choose(STALE_AFTER_MS + 1, None).unwrap().id, 1);
        // Every stream lost: the last tables still name the slots.
        p.on_disconnect(STALE_AFTER_MS + 2, 2);
        assert!(!p.has_fresh_table(STALE_AFTER_MS + 2));
        assert!(p.choose(STALE_AFTER_MS + 2, None).is_some());
    }

    #[test]
    fn a_lapsed_lease_seen_by_a_cut_off_node_does_not_hide_a_served_slot() {
        let mut p = Placer::new(false);
        p.on_table(0, table(1, vec![slot(1, 3, 1, true), slot(2, 0, 1, true)]));
        p.on_table(10, table(3, vec![slot(1, 3, 1, false), slot(2, 0, 1, false)]));
        assert_eq!(p.choose(20, None).unwrap().id, 2);
        assert_eq!(p.choose(20, None).unwrap().id, 2);
    }

    #[test]
    fn affinity_keeps_a_client_on_its_slot_whatever_the_bumps() {
        let mut p = Placer::new(true);
        p.on_table(0, three([0, 0, 0]));
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let first = p.choose(0, Some(ip)).unwrap().id;
        for _ in 0..5 {
            assert_eq!(p.choose(0, Some(ip)).unwrap().id, first);
        }
    }
}
