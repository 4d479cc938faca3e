//! Model test of the session database (STYLE.md "Model tests").
//!
//! proptest drives random sequences of logins, tunnel attaches and detaches, logoffs, timer
//! expiries, clock jumps, node restarts (a serde round trip of the whole state) and follower
//! snapshot installs against a plain reference model, and checks after every step:
//! - one address ↔ one session, and the lease table is exactly the live sessions;
//! - no token is accepted once its session's ending committed;
//! - every acknowledged session stays live until something named it in an ending;
//! - deadlines: `Expire` succeeds exactly when the model's deadline has passed, and `expired`
//!   and `next_deadline` agree with the model;
//! - never more than `simultaneous_logins` live sessions per user;
//! - session indices and per-session tunnel ids only grow;
//! - every outcome is the one the model predicts, and the journal of endings matches;
//! - a follower applying the same commands holds an equal state after every step.
//!
//! Failing seeds are persisted in `tests/regressions/model.proptest-regressions` and replayed
//! first on every run.
#![allow(clippy::unwrap_used)]

use gatehouse_core::*;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

const S: u64 = 1000;
const USERS: u8 = 5;

/// The main pool, a /28: .2 ..= .14 are leasable (13 addresses), fewer than 5 users × 3
/// logins, so it runs out now and then. The small one, a /29 (.2 ..= .6), runs out often, and
/// its sessions share users and the lease table with the main pool's.
fn pool(small: bool) -> PoolRange {
    if small {
        PoolRange::from_cidr("small", Ipv4Addr::new(10, 77, 1, 0), 29).unwrap()
    } else {
        PoolRange::from_cidr("pool", Ipv4Addr::new(10, 77, 0, 0), 28).unwrap()
    }
}

/// The group policies a login may come under: small timers so that clock jumps cross them.
fn policy(p: u8) -> SessionTimers {
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
const POLICIES: u8 = 5;

/// Distinct token ids give distinct hashes (the low bytes first, so that `TokenHash`'s debug
/// prefix tells them apart); ids from `NEVER_ISSUED` on are never logged in.
fn token(id: u32) -> TokenHash {
    let mut h = [0xa5u8; 32];
    h[..4].copy_from_slice(&id.to_le_bytes());
    TokenHash(h)
}
const NEVER_ISSUED: u32 = 1 << 30;

fn user(u: u8) -> String {
    format!("user{u}")
}

// ---- operations -------------------------------------------------------------------------

/// Picks are resolved against the model at the time the operation runs, so a shrunk sequence
/// still means something.
#[derive(Debug, Clone)]
enum TokenPick {
    /// The token of a live session.
    Live(usize),
    /// The token of a session that ended.
    Ended(usize),
    /// A token no login ever carried.
    Never(u32),
}

#[derive(Debug, Clone)]
enum TunnelPick {
    /// A tunnel the model says is attached.
    Current(usize),
    /// Any tunnel id ever handed out (maybe replaced, detached, or of an ended session).
    Issued(usize),
    /// An id nothing handed out (maybe later).
    Bogus(u64, u32),
}

#[derive(Debug, Clone)]
enum IndexPick {
    /// A live session.
    Live(usize),
    /// A live session whose deadline has passed (falls back to any live one).
    Due(usize),
    /// Any index ever handed out (maybe ended).
    Issued(usize),
    /// An index past the last one handed out.
    Unknown(u8),
}

#[derive(Debug, Clone)]
enum Op {
    Login {
        user: u8,
        policy: u8,
        small: bool,
    },
    /// The same login proposal applied again (a retried proposal).
    ReplayLogin(usize),
    Attach {
        token: TokenPick,
        kind: TunnelKind,
        node: u64,
        ip: u8,
        port: u16,
    },
    Detach {
        tunnel: TunnelPick,
        bytes: u64,
    },
    End {
        indices: Vec<IndexPick>,
        admin: bool,
    },
    Expire(IndexPick),
    /// Move the virtual clock forward.
    Advance(u64),
    /// Move the clock to the earliest model deadline plus `delta` ms (boundaries).
    ToDeadline(i8),
    /// Node kill and restart: the state is serialized and deserialized.
    Restart,
    /// The follower installs the leader's snapshot.
    FollowerSnapshot,
}

/// Picks index into whatever exists when the operation runs (modulo its length); small numbers
/// keep shrunk sequences readable.
fn pick() -> impl Strategy<Value = usize> {
    0..16usize
}

fn token_pick() -> impl Strategy<Value = TokenPick> {
    prop_oneof![
        6 => pick().prop_map(TokenPick::Live),
        2 => pick().prop_map(TokenPick::Ended),
        1 => (0..4u32).prop_map(TokenPick::Never),
    ]
}

fn tunnel_pick() -> impl Strategy<Value = TunnelPick> {
    prop_oneof![
        5 => pick().prop_map(TunnelPick::Current),
        2 => pick().prop_map(TunnelPick::Issued),
        1 => (0..40u64, 0..6u32).prop_map(|(i, n)| TunnelPick::Bogus(i, n)),
    ]
}

fn index_pick() -> impl Strategy<Value = IndexPick> {
    prop_oneof![
        4 => pick().prop_map(IndexPick::Live),
        3 => pick().prop_map(IndexPick::Due),
        2 => pick().prop_map(IndexPick::Issued),
        1 => any::<u8>().prop_map(IndexPick::Unknown),
    ]
}

fn kind() -> impl Strategy<Value = TunnelKind> {
    prop_oneof![3 => Just(TunnelKind::Ssl), 1 => Just(TunnelKind::Dtls), 1 => Just(TunnelKind::Quic)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..USERS, 0..POLICIES, prop::bool::weighted(0.5))
            .prop_map(|(user, policy, small)| Op::Login { user, policy, small }),
        1 => pick().prop_map(Op::ReplayLogin),
        7 => (token_pick(), kind(), 1..4u64, 0..2u8, any::<u16>())
            .prop_map(|(token, kind, node, ip, port)| Op::Attach { token, kind, node, ip, port }),
        4 => (tunnel_pick(), 0..1000u64).prop_map(|(tunnel, bytes)| Op::Detach { tunnel, bytes }),
        2 => (prop::collection::vec(index_pick(), 0..4), any::<bool>())
            .prop_map(|(indices, admin)| Op::End { indices, admin }),
        3 => index_pick().prop_map(Op::Expire),
        3 => (0..=120 * S).prop_map(Op::Advance),
        1 => (0..=7200 * S).prop_map(Op::Advance),
        2 => (-1..=1i8).prop_map(Op::ToDeadline),
        1 => Just(Op::Restart),
        1 => Just(Op::FollowerSnapshot),
    ]
}

// ---- the reference model ------------------------------------------------------------------

/// A live session as the model sees it.
#[derive(Debug, Clone)]
struct MSession {
    user: u8,
    token: u32,
    small_pool: bool,
    address: Ipv4Addr,
    login_time: u64,
    inactive_since: Option<u64>,
    timers: SessionTimers,
    public_ip: String,
    tunnels: Vec<TunnelRecord>,
    next_tunnel: u32,
    /// Whether an ssl tunnel was ever attached (a later ssl attach is a reconnect).
    had_ssl: bool,
    counters: Counters,
    resumes: u32,
}

impl MSession {
    /// The earliest session-ending deadline; max connect time wins a tie.
    fn deadline(&self) -> Option<(u64, EndReason)> {
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

    fn due(&self, now: u64) -> Option<EndReason> {
        self.deadline().filter(|(t, _)| *t <= now).map(|(_, r)| r)
    }

    fn expected(&self, index: u64) -> ParentSession {
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
struct Model {
    now: u64,
    live: BTreeMap<u64, MSession>,
    /// Tokens whose session ended: never accepted again.
    ended_tokens: BTreeSet<u32>,
    /// Every index handed out, in order.
    issued: Vec<u64>,
    /// Every tunnel id handed out, in order.
    tunnels_issued: Vec<TunnelId>,
    next_token: u32,
    /// The `simultaneous_logins` of each user's latest successful login.
    user_limit: BTreeMap<u8, u32>,
    /// Endings the journal must show next: (index, reason, at).
    journal: Vec<(u64, EndReason, u64)>,
}

impl Model {
    fn end(&mut self, index: u64, reason: EndReason) -> bool {
        let Some(s) = self.live.remove(&index) else { return false };
        self.ended_tokens.insert(s.token);
        self.journal.push((index, reason, self.now));
        true
    }

    fn due(&self) -> Vec<(u64, u64, EndReason)> {
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

    fn pick_index(&self, p: &IndexPick) -> u64 {
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

// ---- the test harness ----------------------------------------------------------------------

struct Harness {
    model: Model,
    leader: SessionDb,
    follower: SessionDb,
    seen_seq: u64,
    /// The commands applied so far, for the failure report.
    trace: Vec<String>,
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($fmt:tt)+) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err(format!("{}\n  db:    {:?}\n  model: {:?}", format!($($fmt)+), l, r));
        }
    }};
}

fn roundtrip(db: &SessionDb) -> Result<SessionDb, String> {
    let json = serde_json::to_string(db).map_err(|e| format!("serialize: {e}"))?;
    let back: SessionDb = serde_json::from_str(&json).map_err(|e| format!("deserialize: {e}"))?;
    let again = serde_json::to_string(&back).map_err(|e| format!("serialize again: {e}"))?;
    ensure!(again == json, "serialization is not stable across a round trip");
    Ok(back)
}

impl Harness {
    fn new() -> Self {
        Harness {
            model: Model::default(),
            leader: SessionDb::new(),
            follower: SessionDb::new(),
            seen_seq: 0,
            trace: Vec::new(),
        }
    }

    /// Apply `cmd` on the leader and the follower; both must answer the same.
    fn apply(&mut self, cmd: Command) -> Result<Outcome, String> {
        let out = self.leader.apply(&cmd);
        let f = self.follower.apply(&cmd);
        self.trace.push(format!("{cmd:?}\n      -> {out:?}"));
        ensure_eq!(f, out, "follower answered differently");
        Ok(out)
    }

    fn step(&mut self, op: &Op) -> Result<(), String> {
        let now = self.model.now;
        let at = UnixMillis(now);
        match op {
            Op::Login { user: u, policy: p, small } => {
                self.model.next_token += 1;
                let t = self.model.next_token;
                self.login(*u, t, policy(*p), *small)?;
            }
            Op::ReplayLogin(k) => {
                let Some((_, s)) = nth(&self.model.live, *k) else { return Ok(()) };
                let (u, t, timers, small) = (s.user, s.token, s.timers, s.small_pool);
                self.login(u, t, timers, small)?;
            }
            Op::Attach { token: pick, kind, node, ip, port } => {
                let t = match *pick {
                    TokenPick::Live(k) if !self.model.live.is_empty() => {
                        nth(&self.model.live, k).map(|(_, s)| s.token).unwrap()
                    }
                    TokenPick::Ended(k) if !self.model.ended_tokens.is_empty() => {
                        let v: Vec<u32> = self.model.ended_tokens.iter().copied().collect();
                        recent(&v, k)
                    }
                    TokenPick::Never(n) => NEVER_ISSUED + n,
                    _ => NEVER_ISSUED,
                };
                let public_ip = ["198.51.100.7", "203.0.113.9"][usize::from(*ip) % 2].to_string();
                let out = self.apply(Command::Attach(AttachTunnel {
                    at,
                    token_hash: token(t),
                    kind: *kind,
                    node: *node,
                    public_ip: public_ip.clone(),
                    src_port: *port,
                    dst_port: 443,
                    slot: None,
                }))?;
                let live = self.model.live.iter_mut().find(|(_, s)| s.token == t);
                let Some((&index, s)) = live else {
                    ensure!(
                        t >= NEVER_ISSUED || self.model.ended_tokens.contains(&t),
                        "model lost token {t}"
                    );
                    ensure_eq!(
                        out,
                        Outcome::Rejected(Rejection::UnknownToken),
                        "attach, dead token"
                    );
                    return Ok(());
                };
                // DESIGN.md §2.2: a datagram tunnel joins an ssl tunnel; without one it is refused.
                if *kind != TunnelKind::Ssl && !s.tunnels.iter().any(|t| t.kind == TunnelKind::Ssl)
                {
                    ensure_eq!(
                        out,
                        Outcome::Rejected(Rejection::NoSslTunnel),
                        "datagram attach to {index} without an ssl tunnel"
                    );
                    return Ok(());
                }
                // DESIGN.md §2.6: a resume is a new ssl tunnel on a session that had one. A
                // datagram tunnel joining the ssl tunnel is no reconnect, nor is the session's
                // first ssl tunnel.
                let resumed = *kind == TunnelKind::Ssl && s.had_ssl;
                if resumed && !s.timers.auto_reconnect {
                    ensure_eq!(
                        out,
                        Outcome::Rejected(Rejection::ReconnectNotAllowed),
                        "attach to {index}, auto_reconnect off"
                    );
                    return Ok(());
                }
                let id = TunnelId { index, n: s.next_tunnel };
                s.next_tunnel += 1;
                let mut replaced = Vec::new();
                if *kind == TunnelKind::Ssl {
                    replaced = s.tunnels.drain(..).map(|t| t.id).collect();
                    s.inactive_since = None;
                    s.had_ssl = true;
                }
                if resumed {
                    s.resumes += 1;
                }
                s.public_ip = public_ip.clone();
                s.tunnels.push(TunnelRecord {
                    id,
                    kind: *kind,
                    node: *node,
                    public_ip,
                    src_port: *port,
                    dst_port: 443,
                    started: at,
                });
                let expected = Outcome::Attached {
                    tunnel: id,
                    address: s.address,
                    user: user(s.user),
                    replaced,
                    resumed,
                };
                ensure_eq!(out, expected, "attach to {index}");
                if let Some(last) =
                    self.model.tunnels_issued.iter().rev().find(|t| t.index == index)
                {
                    ensure!(last.n < id.n, "tunnel id {id} not after {last}");
                }
                self.model.tunnels_issued.push(id);
            }
            Op::Detach { tunnel, bytes } => {
                let current: Vec<TunnelId> =
                    self.model.live.values().flat_map(|s| s.tunnels.iter().map(|t| t.id)).collect();
                let issued = &self.model.tunnels_issued;
                let id = match *tunnel {
                    TunnelPick::Current(k) if !current.is_empty() => recent(&current, k),
                    TunnelPick::Issued(k) if !issued.is_empty() => recent(issued, k),
                    TunnelPick::Bogus(index, n) => TunnelId { index, n },
                    _ => TunnelId { index: 0, n: 0 },
                };
                let counters =
                    Counters { bytes_tx: *bytes, bytes_rx: 2 * bytes, pkts_tx: 1, pkts_rx: 2 };
                let out = self.apply(Command::Detach(DetachTunnel { at, id, counters }))?;
                let Some(s) = self.model.live.get_mut(&id.index) else {
                    ensure_eq!(out, Outcome::Rejected(Rejection::NoSuchSession), "detach {id}");
                    return Ok(());
                };
                s.counters = s.counters.plus(counters);
                let Some(pos) = s.tunnels.iter().position(|t| t.id == id) else {
                    ensure_eq!(out, Outcome::Rejected(Rejection::NoSuchTunnel), "detach {id}");
                    return Ok(());
                };
                s.tunnels.remove(pos);
                if !s.tunnels.iter().any(|t| t.kind == TunnelKind::Ssl)
                    && s.inactive_since.is_none()
                {
                    // The last ssl tunnel went: the datagram tunnels go with it (§2.4).
                    s.inactive_since = Some(now);
                    s.tunnels.clear();
                }
                let inactive = s.inactive_since.is_some();
                ensure_eq!(out, Outcome::Detached { inactive }, "detach {id}");
            }
            Op::End { indices, admin } => {
                let indices: Vec<u64> = indices.iter().map(|p| self.model.pick_index(p)).collect();
                let reason = if *admin { EndReason::AdminLogoff } else { EndReason::UserRequested };
                let out =
                    self.apply(Command::End(EndSessions { at, indices: indices.clone(), reason }))?;
                let ended: Vec<u64> =
                    indices.into_iter().filter(|&i| self.model.end(i, reason)).collect();
                ensure_eq!(out, Outcome::Ended { indices: ended }, "end");
            }
            Op::Expire(pick) => {
                let index = self.model.pick_index(pick);
                let out = self.apply(Command::Expire(Expire { at, index }))?;
                let expected = match self.model.live.get(&index) {
                    None => Outcome::Rejected(Rejection::NoSuchSession),
                    Some(s) => match s.due(now) {
                        None => Outcome::Rejected(Rejection::NotExpired),
                        Some(reason) => {
                            self.model.end(index, reason);
                            Outcome::Ended { indices: vec![index] }
                        }
                    },
                };
                ensure_eq!(out, expected, "expire {index} at {now}");
            }
            Op::Advance(ms) => {
                self.model.now += ms;
                self.trace.push(format!("clock +{ms} ms = {}", self.model.now));
            }
            Op::ToDeadline(delta) => {
                let next =
                    self.model.live.values().filter_map(|s| s.deadline()).map(|(t, _)| t).min();
                if let Some(t) = next {
                    self.model.now = self.model.now.max(t.saturating_add_signed(i64::from(*delta)));
                    self.trace.push(format!("clock -> {} (deadline {t})", self.model.now));
                }
            }
            Op::Restart => {
                self.leader = roundtrip(&self.leader)?;
                self.trace.push("leader restarted from its serialized state".into());
            }
            Op::FollowerSnapshot => {
                self.follower = roundtrip(&self.leader)?;
                self.trace.push("follower installed the leader's snapshot".into());
            }
        }
        Ok(())
    }

    fn login(&mut self, u: u8, t: u32, timers: SessionTimers, small: bool) -> Result<(), String> {
        let now = self.model.now;
        let out = self.apply(Command::Login(NewSession {
            at: UnixMillis(now),
            user: user(u),
            tunnel_group: "tg".into(),
            group_policy: "gp".into(),
            timers,
            pool: pool(small),
            token_hash: token(t),
            client_version: "Open AnyConnect VPN Agent v9.01-3".into(),
            public_ip: "198.51.100.7".into(),
            slot: None,
        }))?;
        let m = &mut self.model;
        if let Some((&i, s)) = m.live.iter().find(|(_, s)| s.token == t) {
            // The same proposal applied again (a retried forward) names the session it made;
            // any other reuse of a token is refused.
            let expect = if s.user == u && s.login_time == now {
                Outcome::LoggedIn { index: i, address: s.address, evicted: Vec::new() }
            } else {
                Outcome::Rejected(Rejection::UnknownToken)
            };
            ensure_eq!(out, expect, "replayed login");
            return Ok(());
        }
        let mut mine: Vec<(u64, u64)> =
            m.live.iter().filter(|(_, s)| s.user == u).map(|(&i, s)| (s.login_time, i)).collect();
        mine.sort();
        let limit = timers.simultaneous_logins.max(1) as usize;
        let excess = (mine.len() + 1).saturating_sub(limit);
        let evict: Vec<u64> = mine.iter().take(excess).map(|&(_, i)| i).collect();
        let in_pool = |i: &u64| m.live[i].small_pool == small;
        let leased = m.live.keys().filter(|i| in_pool(i)).count();
        let freed = evict.iter().filter(|i| in_pool(i)).count();
        if leased - freed >= pool(small).size() as usize {
            ensure_eq!(out, Outcome::Rejected(Rejection::PoolExhausted), "login of user{u}");
            return Ok(());
        }
        let Outcome::LoggedIn { index, address, evicted } = out else {
            return Err(format!("login of user{u}: expected LoggedIn, got {out:?}"));
        };
        ensure_eq!(evicted, evict, "simultaneous-logins eviction of user{u}");
        for &i in &evict {
            m.end(i, EndReason::SimultaneousLogins);
        }
        ensure!(
            m.issued.last().is_none_or(|&last| index > last),
            "index {index} not after {:?}",
            m.issued.last()
        );
        ensure!(pool(small).contains(address), "{address} is outside {:?}", pool(small));
        if let Some((other, _)) = m.live.iter().find(|(_, s)| s.address == address) {
            return Err(format!("{address} leased to {index} while session {other} holds it"));
        }
        m.issued.push(index);
        m.user_limit.insert(u, timers.simultaneous_logins.max(1));
        m.live.insert(
            index,
            MSession {
                user: u,
                token: t,
                small_pool: small,
                address,
                login_time: now,
                inactive_since: Some(now),
                timers,
                public_ip: "198.51.100.7".into(),
                tunnels: Vec::new(),
                next_tunnel: 1,
                had_ssl: false,
                counters: Counters::default(),
                resumes: 0,
            },
        );
        Ok(())
    }

    /// Everything that must hold after every step.
    fn check(&mut self) -> Result<(), String> {
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

/// The `k`-th newest element (modulo the length): picks count from the newest, so that dropping
/// an early operation while shrinking does not change what a later one refers to.
fn recent<T: Copy>(v: &[T], k: usize) -> T {
    v[v.len() - 1 - k % v.len()]
}

/// The `k`-th newest entry of a map keyed by something growing (indices), if any.
fn nth<K, V>(m: &BTreeMap<K, V>, k: usize) -> Option<(&K, &V)> {
    if m.is_empty() {
        None
    } else {
        m.iter().rev().nth(k % m.len())
    }
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut h = Harness::new();
    for op in ops {
        if let Err(e) = h.step(op).and_then(|()| h.check()) {
            let trace = h.trace.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n");
            return Err(TestCaseError::fail(format!("{e}\ncommands applied:\n{trace}")));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/regressions/model.proptest-regressions",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn session_db_matches_reference_model(ops in prop::collection::vec(op(), 1..200)) {
        run(&ops)?;
    }
}

/// The shrunk form of the committed regression seed, spelled out: with `auto_reconnect` off, the
/// datagram tunnel that joins the session's first ssl tunnel is refused as if it were a
/// reconnect (DESIGN.md §2.2: the client opens `ssl`, then optionally a datagram tunnel; §2.6:
/// a resume is a new `ssl` tunnel).
#[test]
fn datagram_tunnel_joining_the_first_ssl_tunnel_is_not_a_reconnect() {
    let mut h = Harness::new();
    let ops = [
        Op::Login { user: 0, policy: 3, small: false },
        Op::Attach { token: TokenPick::Live(0), kind: TunnelKind::Ssl, node: 1, ip: 0, port: 1 },
        Op::Attach { token: TokenPick::Live(0), kind: TunnelKind::Dtls, node: 1, ip: 0, port: 2 },
    ];
    assert!(!policy(3).auto_reconnect);
    for op in &ops {
        if let Err(e) = h.step(op).and_then(|()| h.check()) {
            panic!("{e}\ncommands applied:\n  {}", h.trace.join("\n  "));
        }
    }
}
