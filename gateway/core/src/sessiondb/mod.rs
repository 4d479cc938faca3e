//! The session database: the replicated state machine of DESIGN.md §4.
//!
//! `apply(&Command) -> Outcome` is the only way the state changes. It is pure: every command
//! carries the proposer's timestamp, nothing here reads a clock or a random source, and every
//! iteration whose order is observable goes through a `BTreeMap`.
//!
//! Files: `command` (what is proposed), `outcome` (what apply answers, and the typed replies
//! proposers get back), `apply` (sessions and tunnels), `members` (heartbeats, node down),
//! `journal` (ended sessions, followed by every node).

mod apply;
pub mod command;
pub mod journal;
pub mod members;
pub mod outcome;

pub use command::{
    AttachTunnel, Command, Depart, DetachTunnel, EndSessions, Expire, Heartbeat, NewSession,
    NodeDown, RaftStops, SlotChange, SlotRef,
};
pub use journal::{Ended, Endings, ENDED_JOURNAL_LEN};
pub use members::Member;
pub use outcome::{Attached, Detached, LoggedIn, Outcome, OutcomeMismatch, Proposal, Rejection};

use crate::session::{EndReason, ParentSession, TokenHash, TunnelId};
use crate::slot::SlotTable;
use crate::time::UnixMillis;
use journal::Journal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// The session database. Serializes to its minimal form; indices are rebuilt on load.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Persisted", into = "Persisted")]
pub struct SessionDb {
    sessions: BTreeMap<u64, ParentSession>,
    next_index: u64,
    pool_cursor: BTreeMap<String, u32>,
    journal: Journal,
    members: BTreeMap<u64, Member>,
    slots: SlotTable,
    /// The newest timestamp applied (nodes count cluster time from it, [`crate::cluster_time`]).
    newest_stamp: UnixMillis,
    // Derived from `sessions`, rebuilt on load.
    by_token: BTreeMap<TokenHash, u64>,
    by_user: BTreeMap<String, BTreeSet<(UnixMillis, u64)>>,
    leases: BTreeMap<Ipv4Addr, u64>,
    deadlines: BTreeSet<(UnixMillis, u64)>,
    /// Sessions with an ssl tunnel (gauges read this instead of scanning).
    active: usize,
    /// Sessions per slot (directors' placement reads this on every change).
    per_slot: BTreeMap<u32, u32>,
    /// Tunnel records by the node terminating them (each node checks its own).
    by_node: BTreeMap<u64, BTreeSet<TunnelId>>,
}

#[derive(Serialize, Deserialize)]
struct Persisted {
    sessions: Vec<ParentSession>,
    next_index: u64,
    pool_cursor: Vec<(String, u32)>,
    ended: Vec<Ended>,
    end_seq: u64,
    #[serde(default)]
    members: Vec<Member>,
    #[serde(default)]
    slots: SlotTable,
    #[serde(default)]
    newest_stamp: UnixMillis,
}

impl From<SessionDb> for Persisted {
    fn from(db: SessionDb) -> Self {
        Persisted {
            sessions: db.sessions.into_values().collect(),
            next_index: db.next_index,
            pool_cursor: db.pool_cursor.into_iter().collect(),
            ended: db.journal.entries.into_iter().collect(),
            end_seq: db.journal.seq,
            members: db.members.into_values().collect(),
            slots: db.slots,
            newest_stamp: db.newest_stamp,
        }
    }
}

impl From<Persisted> for SessionDb {
    fn from(p: Persisted) -> Self {
        let mut db = SessionDb {
            next_index: p.next_index,
            pool_cursor: p.pool_cursor.into_iter().collect(),
            journal: Journal { entries: p.ended.into_iter().collect(), seq: p.end_seq },
            members: p.members.into_iter().map(|m| (m.id, m)).collect(),
            slots: p.slots,
            newest_stamp: p.newest_stamp,
            ..SessionDb::default()
        };
        for s in p.sessions {
            db.index_session(&s);
            db.sessions.insert(s.index, s);
        }
        db
    }
}

/// What the derived indices knew of a session before a change (see [`SessionDb::reindex`]).
#[derive(Debug, Clone)]
struct Before {
    deadline: Option<(UnixMillis, u64)>,
    active: bool,
    tunnels: Vec<(u64, TunnelId)>,
}

impl SessionDb {
    /// An empty database.
    pub fn new() -> Self {
        SessionDb::default()
    }

    /// The newest command timestamp applied so far.
    pub fn newest_stamp(&self) -> UnixMillis {
        self.newest_stamp
    }

    /// Apply one committed command. Pure and deterministic.
    pub fn apply(&mut self, cmd: &Command) -> Outcome {
        self.apply_entry(0, cmd)
    }

    /// Apply one committed command, carried by the Raft log entry at `index` (a slot keeps
    /// the index of the entry that last moved its lease: [`crate::Slot::lease_index`]).
    pub fn apply_entry(&mut self, index: u64, cmd: &Command) -> Outcome {
        self.newest_stamp = self.newest_stamp.max(cmd.at());
        match cmd {
            Command::Login(c) => self.login(c).into(),
            Command::Attach(c) => self.attach(c).into(),
            Command::Detach(c) => self.detach(c).into(),
            Command::End(c) => {
                let indices = c.indices.iter().copied().filter(|&i| self.end(i, c.reason, c.at));
                Outcome::Ended { indices: indices.collect() }
            }
            Command::Heartbeat(c) => {
                self.heartbeat(c.at, c.node, c.leaving);
                Outcome::Alive
            }
            Command::Depart(c) => match self.depart(c.node) {
                Ok(()) => Outcome::Departed,
                Err(r) => Outcome::Rejected(r),
            },
            Command::RaftStops(c) => {
                self.raft_stops(c.node, c.successor);
                Outcome::Departed
            }
            Command::NodeDown(c) => match self.node_down(c.at, c.node, c.seen_heartbeats) {
                Ok(detached) => Outcome::NodeDown { detached },
                Err(r) => Outcome::Rejected(r),
            },
            Command::Slot(c) => match self.slots.apply(c.at, index, &c.cmd) {
                Ok(epoch) => Outcome::Slot { epoch },
                Err(r) => Outcome::Rejected(Rejection::Slot(r)),
            },
            Command::Expire(c) => {
                let Some(s) = self.sessions.get(&c.index) else {
                    return Outcome::Rejected(Rejection::NoSuchSession);
                };
                match s.expired_at(c.at) {
                    Some(reason) => {
                        self.end(c.index, reason, c.at);
                        Outcome::Ended { indices: vec![c.index] }
                    }
                    None => Outcome::Rejected(Rejection::NotExpired),
                }
            }
        }
    }

    // ---- derived indices ----------------------------------------------------------------

    fn index_session(&mut self, s: &ParentSession) {
        self.by_token.insert(s.token_hash, s.index);
        self.by_user.entry(s.user.clone()).or_default().insert((s.login_time, s.index));
        self.leases.insert(s.address, s.index);
        if let Some((t, _)) = s.next_deadline() {
            self.deadlines.insert((t, s.index));
        }
        if s.inactive_since.is_none() {
            self.active += 1;
        }
        if let Some(id) = s.slot {
            *self.per_slot.entry(id).or_insert(0) += 1;
        }
        for t in &s.tunnels {
            self.by_node.entry(t.node).or_default().insert(t.id);
        }
    }

    fn unindex_session(&mut self, s: &ParentSession) {
        self.by_token.remove(&s.token_hash);
        if let Some(v) = self.by_user.get_mut(&s.user) {
            v.remove(&(s.login_time, s.index));
            if v.is_empty() {
                self.by_user.remove(&s.user);
            }
        }
        if self.leases.get(&s.address) == Some(&s.index) {
            self.leases.remove(&s.address);
        }
        if let Some((t, _)) = s.next_deadline() {
            self.deadlines.remove(&(t, s.index));
        }
        if s.inactive_since.is_none() {
            self.active -= 1;
        }
        if let Some(id) = s.slot {
            if let Some(n) = self.per_slot.get_mut(&id) {
                *n -= 1;
                if *n == 0 {
                    self.per_slot.remove(&id);
                }
            }
        }
        for t in &s.tunnels {
            self.unindex_tunnel(t.node, t.id);
        }
    }

    fn unindex_tunnel(&mut self, node: u64, id: TunnelId) {
        if let Some(set) = self.by_node.get_mut(&node) {
            set.remove(&id);
            if set.is_empty() {
                self.by_node.remove(&node);
            }
        }
    }

    /// Take note of what the derived indices know of session `index` before changing it ...
    fn before(&self, index: u64) -> Before {
        let s = self.sessions.get(&index);
        Before {
            deadline: s.and_then(|s| s.next_deadline()).map(|(t, _)| (t, index)),
            active: s.is_some_and(|s| s.inactive_since.is_none()),
            tunnels: s
                .map(|s| s.tunnels.iter().map(|t| (t.node, t.id)).collect())
                .unwrap_or_default(),
        }
    }

    /// ... and bring them up to date afterwards (its deadline and active state may change).
    fn reindex(&mut self, index: u64, before: Before) {
        if let Some(k) = before.deadline {
            self.deadlines.remove(&k);
        }
        let s = self.sessions.get(&index);
        if let Some(k) = s.and_then(|s| s.next_deadline()).map(|(t, _)| (t, index)) {
            self.deadlines.insert(k);
        }
        match (before.active, s.is_some_and(|s| s.inactive_since.is_none())) {
            (true, false) => self.active -= 1,
            (false, true) => self.active += 1,
            _ => {}
        }
        let after: Vec<(u64, TunnelId)> =
            s.map(|s| s.tunnels.iter().map(|t| (t.node, t.id)).collect()).unwrap_or_default();
        for &(node, id) in before.tunnels.iter().filter(|t| !after.contains(t)) {
            self.unindex_tunnel(node, id);
        }
        for &(node, id) in after.iter().filter(|t| !before.tunnels.contains(t)) {
            self.by_node.entry(node).or_default().insert(id);
        }
    }

    // ---- reads -------------------------------------------------------------------------

    /// A session by index.
    pub fn get(&self, index: u64) -> Option<&ParentSession> {
        self.sessions.get(&index)
    }

    /// The live session a token hash belongs to.
    pub fn by_token(&self, h: &TokenHash) -> Option<&ParentSession> {
        self.sessions.get(self.by_token.get(h)?)
    }

    /// The session holding an address lease.
    pub fn lease(&self, a: Ipv4Addr) -> Option<u64> {
        self.leases.get(&a).copied()
    }

    /// All sessions in index order.
    pub fn sessions(&self) -> impl Iterator<Item = &ParentSession> {
        self.sessions.values()
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Number of active sessions (with an ssl tunnel); the others are inactive.
    pub fn active_count(&self) -> usize {
        self.active
    }

    /// Number of address leases.
    pub fn lease_count(&self) -> usize {
        self.leases.len()
    }

    /// The earliest session deadline: when to propose `Expire` for which session.
    pub fn next_deadline(&self) -> Option<(UnixMillis, u64)> {
        self.deadlines.iter().next().copied()
    }

    /// Sessions whose deadline has passed at `now`, in deadline order.
    pub fn expired(&self, now: UnixMillis) -> Vec<(u64, EndReason)> {
        self.deadlines
            .iter()
            .take_while(|(t, _)| *t <= now)
            .filter_map(|&(_, i)| Some((i, self.sessions.get(&i)?.expired_at(now)?)))
            .collect()
    }

    /// Journal entries of ended sessions with `seq > after`. A follower must read these and
    /// [`end_seq`](Self::end_seq) in one read ([`endings_after`](Self::endings_after)): an
    /// ending applied between two reads would be skipped.
    pub fn ended_since(&self, after: u64) -> impl Iterator<Item = &Ended> {
        self.journal.since(after)
    }

    /// Endings after `seen` and the sequence number to pass next time, from one read.
    pub fn endings_after(&self, seen: u64) -> Endings {
        self.journal.endings_after(seen)
    }

    /// The newest journal sequence number.
    pub fn end_seq(&self) -> u64 {
        self.journal.seq
    }

    /// The slot table.
    pub fn slots(&self) -> &SlotTable {
        &self.slots
    }

    /// Sessions per slot (kept up to date by `apply`, not counted on each call).
    pub fn slot_sessions(&self) -> BTreeMap<u32, u32> {
        self.per_slot.clone()
    }

    /// The tunnels the replicated state records on `node`, in id order.
    pub fn tunnels_on(&self, node: u64) -> impl Iterator<Item = TunnelId> + '_ {
        self.by_node.get(&node).into_iter().flatten().copied()
    }

    /// Cluster members by id.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }
}
