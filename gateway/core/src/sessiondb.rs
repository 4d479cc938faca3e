//! The session database: the replicated state machine of DESIGN.md §4.
//!
//! `apply(&Command) -> Outcome` is the only way the state changes. It is pure: every command
//! carries the proposer's timestamp, nothing here reads a clock or a random source, and every
//! iteration whose order is observable goes through a `BTreeMap`.

use crate::policy::SessionTimers;
use crate::pool::PoolRange;
use crate::session::{
    Counters, EndReason, ParentSession, TokenHash, TunnelId, TunnelKind, TunnelRecord,
};
use crate::slot::{SlotCommand, SlotRefusal, SlotTable};
use crate::time::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv4Addr;

/// How many session endings the journal keeps for nodes that follow it.
pub const ENDED_JOURNAL_LEN: usize = 4096;

/// The slot a write is about, and the epoch its proposer believes current (fencing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRef {
    /// Slot id.
    pub id: u32,
    /// Epoch the proposer owns it under.
    pub epoch: u64,
}

/// A login that passed authentication: create a parent session with an address lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSession {
    /// Proposer's timestamp.
    pub at: UnixMillis,
    /// Username.
    pub user: String,
    /// Tunnel group.
    pub tunnel_group: String,
    /// Group policy name.
    pub group_policy: String,
    /// Timers from the policy.
    pub timers: SessionTimers,
    /// The pool to lease the inner address from.
    pub pool: PoolRange,
    /// SHA-256 of the new token.
    pub token_hash: TokenHash,
    /// Client type and version.
    pub client_version: String,
    /// Client public address.
    pub public_ip: String,
    /// The slot the client connected to (its pool slice is used); `None` = a node address.
    #[serde(default)]
    pub slot: Option<SlotRef>,
}

/// A client presented its token on a new tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachTunnel {
    /// Proposer's timestamp.
    pub at: UnixMillis,
    /// SHA-256 of the presented token.
    pub token_hash: TokenHash,
    /// Transport.
    pub kind: TunnelKind,
    /// Node terminating it.
    pub node: u64,
    /// Client public address.
    pub public_ip: String,
    /// Client source port.
    pub src_port: u16,
    /// Gateway port.
    pub dst_port: u16,
    /// The slot the client reconnected to, with the proposer's epoch.
    #[serde(default)]
    pub slot: Option<SlotRef>,
}

/// A tunnel went away (DPD, idle timeout, TCP loss, replaced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachTunnel {
    /// Proposer's timestamp.
    pub at: UnixMillis,
    /// The tunnel.
    pub id: TunnelId,
    /// Its final counters.
    pub counters: Counters,
}

/// A replicated command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Create a parent session.
    Login(NewSession),
    /// Attach a tunnel (first connect or resume).
    Attach(AttachTunnel),
    /// Detach a tunnel.
    Detach(DetachTunnel),
    /// End sessions (user logout, admin logoff).
    End {
        /// Proposer's timestamp.
        at: UnixMillis,
        /// Sessions to end; unknown ones are ignored.
        indices: Vec<u64>,
        /// Why.
        reason: EndReason,
    },
    /// A node is alive (sent periodically by every node).
    Heartbeat {
        /// Proposer's timestamp.
        at: UnixMillis,
        /// The node.
        node: u64,
    },
    /// The leader saw no heartbeat from `node` for `grace_ms`: its tunnels are gone, so their
    /// sessions become inactive. Rejected if a heartbeat within the grace period committed.
    NodeDown {
        /// Proposer's timestamp.
        at: UnixMillis,
        /// The silent node.
        node: u64,
        /// How long without a heartbeat counts as down.
        grace_ms: u64,
    },
    /// Slot ownership: define, renew, assign, release.
    Slot {
        /// Proposer's timestamp.
        at: UnixMillis,
        /// The slot command.
        cmd: SlotCommand,
    },
    /// End a session whose timer has expired; rejected if it has not (it may have resumed).
    Expire {
        /// Proposer's timestamp.
        at: UnixMillis,
        /// The session.
        index: u64,
    },
}

impl Command {
    /// The proposer's timestamp.
    pub fn at(&self) -> UnixMillis {
        match self {
            Command::Login(c) => c.at,
            Command::Attach(c) => c.at,
            Command::Detach(c) => c.at,
            Command::End { at, .. }
            | Command::Expire { at, .. }
            | Command::Heartbeat { at, .. }
            | Command::NodeDown { at, .. }
            | Command::Slot { at, .. } => *at,
        }
    }
}

/// Why `apply` refused a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// No live session has this token (never issued, or its session ended).
    UnknownToken,
    /// The pool has no free address.
    PoolExhausted,
    /// No such session.
    NoSuchSession,
    /// No such tunnel.
    NoSuchTunnel,
    /// The session's timer has not expired at the command's time.
    NotExpired,
    /// The group policy forbids reconnecting with the cookie.
    ReconnectNotAllowed,
    /// The node sent a heartbeat within the grace period.
    NodeAlive,
    /// A slot command or a slot-fenced write was refused.
    Slot(SlotRefusal),
    /// A datagram tunnel needs the session's ssl tunnel first (DESIGN.md §2.2).
    NoSslTunnel,
}

impl Rejection {
    /// Text for a client refusal or a log line.
    pub fn text(self) -> &'static str {
        match self {
            Rejection::UnknownToken => "Cookie is not acceptable",
            Rejection::PoolExhausted => "No address available",
            Rejection::NoSuchSession => "No such session",
            Rejection::NoSuchTunnel => "No such tunnel",
            Rejection::NotExpired => "Session timer has not expired",
            Rejection::ReconnectNotAllowed => "Reconnect not allowed by group policy",
            Rejection::NodeAlive => "Node is alive",
            Rejection::NoSslTunnel => "Datagram tunnel without an ssl tunnel",
            Rejection::Slot(SlotRefusal::NoSuchSlot) => "No such slot",
            Rejection::Slot(SlotRefusal::StaleEpoch) => "Slot moved to another node",
            Rejection::Slot(SlotRefusal::Held) => "Slot lease still held",
        }
    }
}

/// What `apply` did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Outcome {
    /// Nothing (blank or membership entries).
    #[default]
    Nothing,
    /// A session was created.
    LoggedIn {
        /// Its index.
        index: u64,
        /// Its inner address.
        address: Ipv4Addr,
        /// Older sessions of the same user ended by `simultaneous_logins`.
        evicted: Vec<u64>,
    },
    /// A tunnel was attached.
    Attached {
        /// The tunnel id.
        tunnel: TunnelId,
        /// The session's inner address.
        address: Ipv4Addr,
        /// The session's user.
        user: String,
        /// Earlier ssl tunnels replaced by this one (the client can hold only one).
        replaced: Vec<TunnelId>,
        /// Whether this was a resume (not the first tunnel of the session).
        resumed: bool,
    },
    /// A tunnel was detached.
    Detached {
        /// Whether the session is now inactive.
        inactive: bool,
    },
    /// A heartbeat was recorded.
    Alive,
    /// A slot command was applied; the slot's epoch now.
    Slot {
        /// Epoch.
        epoch: u64,
    },
    /// A node was declared down; these tunnels were detached.
    NodeDown {
        /// Detached tunnels.
        detached: Vec<TunnelId>,
    },
    /// Sessions ended.
    Ended {
        /// Indices that were live and are now gone.
        indices: Vec<u64>,
    },
    /// The command was refused; the state is unchanged.
    Rejected(Rejection),
}

/// One entry of the journal of ended sessions that nodes follow to close local tunnels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    /// Journal sequence number, growing by one per ending.
    pub seq: u64,
    /// Session index.
    pub index: u64,
    /// Why it ended.
    pub reason: EndReason,
    /// When.
    pub at: UnixMillis,
}

/// A cluster member as the session db sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Node id.
    pub id: u64,
    /// Last committed heartbeat.
    pub last_heartbeat: UnixMillis,
    /// Set when the leader declared it down; cleared by its next heartbeat.
    pub down_since: Option<UnixMillis>,
}

/// The session database. Serializes to its minimal form; indices are rebuilt on load.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Persisted", into = "Persisted")]
pub struct SessionDb {
    sessions: BTreeMap<u64, ParentSession>,
    next_index: u64,
    pool_cursor: BTreeMap<String, u32>,
    ended: VecDeque<Ended>,
    end_seq: u64,
    members: BTreeMap<u64, Member>,
    slots: SlotTable,
    // Derived from `sessions`, rebuilt on load.
    by_token: BTreeMap<TokenHash, u64>,
    by_user: BTreeMap<String, BTreeSet<(UnixMillis, u64)>>,
    leases: BTreeMap<Ipv4Addr, u64>,
    deadlines: BTreeSet<(UnixMillis, u64)>,
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
}

impl From<SessionDb> for Persisted {
    fn from(db: SessionDb) -> Self {
        Persisted {
            sessions: db.sessions.into_values().collect(),
            next_index: db.next_index,
            pool_cursor: db.pool_cursor.into_iter().collect(),
            ended: db.ended.into_iter().collect(),
            end_seq: db.end_seq,
            members: db.members.into_values().collect(),
            slots: db.slots,
        }
    }
}

impl From<Persisted> for SessionDb {
    fn from(p: Persisted) -> Self {
        let mut db = SessionDb {
            next_index: p.next_index,
            pool_cursor: p.pool_cursor.into_iter().collect(),
            ended: p.ended.into_iter().collect(),
            end_seq: p.end_seq,
            members: p.members.into_iter().map(|m| (m.id, m)).collect(),
            slots: p.slots,
            ..SessionDb::default()
        };
        for s in p.sessions {
            db.index_session(&s);
            db.sessions.insert(s.index, s);
        }
        db
    }
}

/// The first session index handed out (the reference headend's indices are small integers).
const FIRST_INDEX: u64 = 1;

impl SessionDb {
    /// An empty database.
    pub fn new() -> Self {
        SessionDb::default()
    }

    /// Apply one committed command. Pure and deterministic.
    pub fn apply(&mut self, cmd: &Command) -> Outcome {
        match cmd {
            Command::Login(c) => self.login(c),
            Command::Attach(c) => self.attach(c),
            Command::Detach(c) => self.detach(c),
            Command::End { at, indices, reason } => {
                let mut ended = Vec::new();
                for &i in indices {
                    if self.end(i, *reason, *at) {
                        ended.push(i);
                    }
                }
                Outcome::Ended { indices: ended }
            }
            Command::Heartbeat { at, node } => {
                let m = self.members.entry(*node).or_insert(Member {
                    id: *node,
                    last_heartbeat: *at,
                    down_since: None,
                });
                m.last_heartbeat = m.last_heartbeat.max(*at);
                m.down_since = None;
                Outcome::Alive
            }
            Command::NodeDown { at, node, grace_ms } => self.node_down(*at, *node, *grace_ms),
            Command::Slot { at, cmd } => match self.slots.apply(*at, cmd) {
                Ok(epoch) => Outcome::Slot { epoch },
                Err(r) => Outcome::Rejected(Rejection::Slot(r)),
            },
            Command::Expire { at, index } => {
                let Some(s) = self.sessions.get(index) else {
                    return Outcome::Rejected(Rejection::NoSuchSession);
                };
                match s.expired_at(*at) {
                    Some(reason) => {
                        self.end(*index, reason, *at);
                        Outcome::Ended { indices: vec![*index] }
                    }
                    None => Outcome::Rejected(Rejection::NotExpired),
                }
            }
        }
    }

    fn login(&mut self, c: &NewSession) -> Outcome {
        if let Some(&i) = self.by_token.get(&c.token_hash) {
            // 256-bit random tokens do not collide: a duplicate is a replayed proposal. A
            // follower whose forward was cut off by a leader change retries it, and the old
            // leader may have committed the first copy: the replay names the session the first
            // copy made (its evictions already happened). Anything else is refused.
            return match self.sessions.get(&i) {
                Some(s) if s.user == c.user && s.login_time == c.at => {
                    Outcome::LoggedIn { index: i, address: s.address, evicted: Vec::new() }
                }
                _ => Outcome::Rejected(Rejection::UnknownToken),
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
                None => return Outcome::Rejected(Rejection::Slot(SlotRefusal::NoSuchSlot)),
                Some(s) if s.epoch != r.epoch => {
                    return Outcome::Rejected(Rejection::Slot(SlotRefusal::StaleEpoch))
                }
                Some(s) => s.spec.pool.clone(),
            },
        };
        let Some(address) = self.free_address(&pool, &to_evict) else {
            return Outcome::Rejected(Rejection::PoolExhausted);
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
        Outcome::LoggedIn { index, address, evicted: to_evict }
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

    fn attach(&mut self, c: &AttachTunnel) -> Outcome {
        let Some(&index) = self.by_token.get(&c.token_hash) else {
            return Outcome::Rejected(Rejection::UnknownToken);
        };
        if let Some(r) = c.slot {
            // Fencing: a node that lost the slot cannot attach tunnels for it.
            if !self.slots.is_current(r.id, r.epoch) {
                return Outcome::Rejected(Rejection::Slot(SlotRefusal::StaleEpoch));
            }
        }
        let old_deadline = self.deadline_key(index);
        let Some(s) = self.sessions.get_mut(&index) else {
            return Outcome::Rejected(Rejection::UnknownToken);
        };
        if c.kind != TunnelKind::Ssl && !s.has_ssl() {
            return Outcome::Rejected(Rejection::NoSslTunnel);
        }
        // A resume is a new ssl tunnel after an earlier one (every earlier tunnel implies an
        // earlier ssl tunnel, see above); a datagram tunnel joining it is not a reconnect.
        let resumed = c.kind == TunnelKind::Ssl && s.next_tunnel > 1;
        if resumed && !s.timers_allow_reconnect() {
            return Outcome::Rejected(Rejection::ReconnectNotAllowed);
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
        let out = Outcome::Attached {
            tunnel: id,
            address: s.address,
            user: s.user.clone(),
            replaced,
            resumed,
        };
        self.reindex_deadline(index, old_deadline);
        out
    }

    fn detach(&mut self, c: &DetachTunnel) -> Outcome {
        let index = c.id.index;
        let old_deadline = self.deadline_key(index);
        let Some(s) = self.sessions.get_mut(&index) else {
            return Outcome::Rejected(Rejection::NoSuchSession);
        };
        let Some(pos) = s.tunnels.iter().position(|t| t.id == c.id) else {
            // Already replaced: keep its counters all the same.
            s.counters = s.counters.plus(c.counters);
            return Outcome::Rejected(Rejection::NoSuchTunnel);
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
        self.reindex_deadline(index, old_deadline);
        Outcome::Detached { inactive }
    }

    fn node_down(&mut self, at: UnixMillis, node: u64, grace_ms: u64) -> Outcome {
        if let Some(m) = self.members.get(&node) {
            if at.0 < m.last_heartbeat.0.saturating_add(grace_ms) {
                return Outcome::Rejected(Rejection::NodeAlive);
            }
        }
        let affected: Vec<u64> = self
            .sessions
            .values()
            .filter(|s| s.tunnels.iter().any(|t| t.node == node))
            .map(|s| s.index)
            .collect();
        let mut detached = Vec::new();
        for index in affected {
            let old = self.deadline_key(index);
            if let Some(s) = self.sessions.get_mut(&index) {
                detached.extend(s.tunnels.iter().filter(|t| t.node == node).map(|t| t.id));
                s.tunnels.retain(|t| t.node != node);
                if !s.has_ssl() && s.inactive_since.is_none() {
                    s.inactive_since = Some(at);
                    s.tunnels.clear();
                }
            }
            self.reindex_deadline(index, old);
        }
        let m = self.members.entry(node).or_insert(Member {
            id: node,
            last_heartbeat: UnixMillis(0),
            down_since: None,
        });
        m.down_since.get_or_insert(at);
        Outcome::NodeDown { detached }
    }

    fn end(&mut self, index: u64, reason: EndReason, at: UnixMillis) -> bool {
        let old_deadline = self.deadline_key(index);
        let Some(s) = self.sessions.remove(&index) else {
            return false;
        };
        self.by_token.remove(&s.token_hash);
        if let Some(v) = self.by_user.get_mut(&s.user) {
            v.remove(&(s.login_time, s.index));
            if v.is_empty() {
                self.by_user.remove(&s.user);
            }
        }
        if self.leases.get(&s.address) == Some(&index) {
            self.leases.remove(&s.address);
        }
        if let Some(k) = old_deadline {
            self.deadlines.remove(&k);
        }
        self.end_seq += 1;
        self.ended.push_back(Ended { seq: self.end_seq, index, reason, at });
        while self.ended.len() > ENDED_JOURNAL_LEN {
            self.ended.pop_front();
        }
        true
    }

    fn index_session(&mut self, s: &ParentSession) {
        self.by_token.insert(s.token_hash, s.index);
        self.by_user.entry(s.user.clone()).or_default().insert((s.login_time, s.index));
        self.leases.insert(s.address, s.index);
        if let Some((t, _)) = s.next_deadline() {
            self.deadlines.insert((t, s.index));
        }
    }

    fn deadline_key(&self, index: u64) -> Option<(UnixMillis, u64)> {
        self.sessions.get(&index)?.next_deadline().map(|(t, _)| (t, index))
    }

    fn reindex_deadline(&mut self, index: u64, old: Option<(UnixMillis, u64)>) {
        if let Some(k) = old {
            self.deadlines.remove(&k);
        }
        if let Some(k) = self.deadline_key(index) {
            self.deadlines.insert(k);
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

    /// Journal entries of ended sessions with `seq > after`.
    pub fn ended_since(&self, after: u64) -> impl Iterator<Item = &Ended> {
        self.ended.iter().filter(move |e| e.seq > after)
    }

    /// The slot table.
    pub fn slots(&self) -> &SlotTable {
        &self.slots
    }

    /// Sessions per slot.
    pub fn slot_sessions(&self) -> BTreeMap<u32, u32> {
        let mut m = BTreeMap::new();
        for s in self.sessions.values() {
            if let Some(id) = s.slot {
                *m.entry(id).or_insert(0) += 1;
            }
        }
        m
    }

    /// Cluster members by id.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// The newest journal sequence number.
    pub fn end_seq(&self) -> u64 {
        self.end_seq
    }
}

impl ParentSession {
    fn timers_allow_reconnect(&self) -> bool {
        self.timers.auto_reconnect
    }
}
