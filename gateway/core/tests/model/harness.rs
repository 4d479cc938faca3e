//! The harness: each operation applied to a leader, a follower and the model, outcomes compared.

use crate::fixtures::{policy, pool, token, user, NEVER_ISSUED};
use crate::ops::{Op, TokenPick, TunnelPick};
use crate::reference::{nth, recent, MSession, Model};
use gatehouse_core::*;

pub(crate) struct Harness {
    pub(crate) model: Model,
    pub(crate) leader: SessionDb,
    pub(crate) follower: SessionDb,
    pub(crate) seen_seq: u64,
    /// The commands applied so far, for the failure report.
    pub(crate) trace: Vec<String>,
}

fn roundtrip(db: &SessionDb) -> Result<SessionDb, String> {
    let json = serde_json::to_string(db).map_err(|e| format!("serialize: {e}"))?;
    let back: SessionDb = serde_json::from_str(&json).map_err(|e| format!("deserialize: {e}"))?;
    let again = serde_json::to_string(&back).map_err(|e| format!("serialize again: {e}"))?;
    ensure!(again == json, "serialization is not stable across a round trip");
    Ok(back)
}

impl Harness {
    pub(crate) fn new() -> Self {
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

    pub(crate) fn step(&mut self, op: &Op) -> Result<(), String> {
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
}
