//! Every timer rule of DESIGN.md §2, on a virtual clock (no sleeps).
#![allow(clippy::unwrap_used, clippy::identity_op)]

use gatehouse_core::*;
use std::net::Ipv4Addr;
use std::time::Duration;

const S: u64 = 1000;

fn timers(idle: u64, disc: Option<u64>, max: Option<u64>, logins: u32) -> SessionTimers {
    let mut p = GroupPolicy::with_defaults("gp", "pool");
    p.idle_timeout = Some(Duration::from_secs(idle));
    p.disconnected_timeout = disc.map(Duration::from_secs);
    p.max_connect_time = max.map(Duration::from_secs);
    p.simultaneous_logins = logins;
    p.session_timers()
}

fn pool() -> PoolRange {
    PoolRange::from_cidr("pool", Ipv4Addr::new(10, 99, 0, 0), 29).unwrap()
}

fn tok(n: u8) -> TokenHash {
    TokenHash([n; 32])
}

fn login(db: &mut SessionDb, at: u64, user: &str, t: u8, timers: SessionTimers) -> (u64, Ipv4Addr) {
    match db.apply(&Command::Login(NewSession {
        at: UnixMillis(at),
        user: user.into(),
        tunnel_group: "tg".into(),
        group_policy: "gp".into(),
        timers,
        pool: pool(),
        token_hash: tok(t),
        client_version: "Open AnyConnect VPN Agent v9.01-3".into(),
        public_ip: "198.51.100.7".into(),
        slot: None,
    })) {
        Outcome::LoggedIn { index, address, .. } => (index, address),
        o => panic!("login failed: {o:?}"),
    }
}

fn attach(db: &mut SessionDb, at: u64, t: u8, ip: &str, port: u16) -> Outcome {
    db.apply(&Command::Attach(AttachTunnel {
        at: UnixMillis(at),
        token_hash: tok(t),
        kind: TunnelKind::Ssl,
        node: 1,
        public_ip: ip.into(),
        src_port: port,
        dst_port: 443,
        slot: None,
    }))
}

fn tunnel_of(o: &Outcome) -> TunnelId {
    match o {
        Outcome::Attached { tunnel, .. } => *tunnel,
        o => panic!("not attached: {o:?}"),
    }
}

fn detach(db: &mut SessionDb, at: u64, id: TunnelId) -> Outcome {
    db.apply(&Command::Detach(DetachTunnel {
        at: UnixMillis(at),
        id,
        counters: Counters { bytes_tx: 10, bytes_rx: 20, pkts_tx: 1, pkts_rx: 2 },
    }))
}

fn cfg(dpd: Option<u64>, idle: Option<u64>) -> TunnelTimersConfig {
    TunnelTimersConfig {
        dpd: dpd.map(Duration::from_secs),
        idle_timeout: idle.map(Duration::from_secs),
    }
}

#[test]
fn dpd_probes_after_silence_and_declares_dead_after_twice_the_interval() {
    let mut t = TunnelTimers::new(MonoMillis(0), cfg(Some(30), None));
    assert_eq!(t.poll_timeout(), Some((MonoMillis(30 * S), TunnelTimer::DpdProbe)));
    t.handle_timeout(MonoMillis(29 * S));
    assert_eq!(t.poll_transmit(), None, "no probe before the interval");
    t.handle_timeout(MonoMillis(30 * S));
    assert_eq!(t.poll_transmit(), Some(tunnel::Transmit::DpdRequest));
    t.handle_timeout(MonoMillis(30 * S));
    assert_eq!(t.poll_transmit(), None, "handle_timeout twice is harmless");
    t.handle_timeout(MonoMillis(45 * S));
    assert_eq!(t.poll_transmit(), Some(tunnel::Transmit::DpdRequest), "re-probe at 1.5 x dpd");
    assert_eq!(t.poll_event(), None);
    t.handle_timeout(MonoMillis(60 * S));
    assert_eq!(t.poll_event(), Some(TunnelEvent::DeadPeer));
    assert_eq!(t.poll_timeout(), None, "a dead tunnel has no timers");
}

#[test]
fn any_received_frame_keeps_dpd_quiet() {
    let mut t = TunnelTimers::new(MonoMillis(0), cfg(Some(30), None));
    for k in 1..100u64 {
        t.handle_rx(MonoMillis(k * 20 * S), false);
        t.handle_timeout(MonoMillis(k * 20 * S));
        assert_eq!(t.poll_transmit(), None);
        assert_eq!(t.poll_event(), None);
    }
}

#[test]
fn dpd_answer_after_probe_rearms() {
    let mut t = TunnelTimers::new(MonoMillis(0), cfg(Some(10), None));
    t.handle_timeout(MonoMillis(10 * S));
    assert!(t.poll_transmit().is_some());
    t.handle_rx(MonoMillis(11 * S), false); // DPD-RESP
    t.handle_timeout(MonoMillis(20 * S));
    assert_eq!(t.poll_event(), None, "answered probe: not dead at the old deadline");
    assert_eq!(t.poll_timeout(), Some((MonoMillis(21 * S), TunnelTimer::DpdProbe)));
}

#[test]
fn idle_timeout_tears_down_tunnel_without_data_either_way() {
    let mut t = TunnelTimers::new(MonoMillis(0), cfg(None, Some(60)));
    // Control frames (keepalives) do not count as data.
    t.handle_rx(MonoMillis(30 * S), false);
    t.handle_data_tx(MonoMillis(50 * S));
    t.handle_timeout(MonoMillis(100 * S));
    assert_eq!(t.poll_event(), None, "data sent at 50 s keeps it until 110 s");
    assert_eq!(t.idle_left(MonoMillis(100 * S)), Some(Duration::from_secs(10)));
    t.handle_rx(MonoMillis(105 * S), true);
    t.handle_timeout(MonoMillis(164 * S));
    assert_eq!(t.poll_event(), None);
    t.handle_timeout(MonoMillis(165 * S));
    assert_eq!(t.poll_event(), Some(TunnelEvent::IdleTimeout));
}

#[test]
fn dpd_tears_down_tunnel_not_session() {
    let mut db = SessionDb::new();
    let (index, addr) = login(&mut db, 0, "alice", 1, timers(1800, None, None, 3));
    let id = tunnel_of(&attach(&mut db, 100, 1, "198.51.100.7", 40000));
    // The tunnel's DPD fires; the driver detaches the tunnel.
    assert_eq!(detach(&mut db, 61 * S, id), Outcome::Detached { inactive: true });
    let s = db.get(index).expect("session survives DPD");
    assert_eq!(s.address, addr);
    assert_eq!(s.inactive_since, Some(UnixMillis(61 * S)));
    assert_eq!(db.lease(addr), Some(index));
}

#[test]
fn inactivity_counts_only_while_no_ssl_tunnel_exists() {
    let mut db = SessionDb::new();
    let (index, _) = login(&mut db, 0, "alice", 1, timers(60, Some(60), None, 3));
    assert_eq!(db.get(index).unwrap().inactive_since, Some(UnixMillis(0)), "no tunnel yet");
    attach(&mut db, 10, 1, "198.51.100.7", 40000);
    assert_eq!(db.get(index).unwrap().inactive_since, None);
    assert_eq!(db.next_deadline(), None, "an active session has no disconnected deadline");
    assert!(
        db.expired(UnixMillis(1_000_000 * S)).is_empty(),
        "active sessions never expire by inactivity"
    );
    assert_eq!(
        db.apply(&Command::Expire(Expire { at: UnixMillis(1_000_000 * S), index })),
        Outcome::Rejected(Rejection::NotExpired)
    );
}

#[test]
fn disconnected_timer_starts_when_last_ssl_tunnel_drops() {
    let mut db = SessionDb::new();
    let (index, addr) = login(&mut db, 0, "alice", 1, timers(1800, Some(120), None, 3));
    let id = tunnel_of(&attach(&mut db, 5 * S, 1, "198.51.100.7", 40000));
    detach(&mut db, 500 * S, id);
    assert_eq!(db.next_deadline(), Some((UnixMillis(620 * S), index)));
    assert!(db.expired(UnixMillis(619 * S)).is_empty());
    assert_eq!(db.expired(UnixMillis(620 * S)), vec![(index, EndReason::DisconnectedTimeout)]);
    assert_eq!(
        db.apply(&Command::Expire(Expire { at: UnixMillis(619 * S), index })),
        Outcome::Rejected(Rejection::NotExpired),
        "an early Expire is refused"
    );
    assert_eq!(
        db.apply(&Command::Expire(Expire { at: UnixMillis(620 * S), index })),
        Outcome::Ended { indices: vec![index] }
    );
    assert!(db.get(index).is_none(), "disconnected timer deletes the session");
    assert_eq!(db.lease(addr), None, "and frees its address");
    assert_eq!(db.lease_count(), 0);
    let e: Vec<_> = db.ended_since(0).collect();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].reason, EndReason::DisconnectedTimeout);
}

#[test]
fn disconnected_timeout_defaults_to_idle_timeout() {
    let t = timers(900, None, None, 3);
    assert_eq!(t.disconnected_timeout, Some(Duration::from_secs(900)));
    let d = GroupPolicy::with_defaults("x", "p");
    assert_eq!(d.dpd_interval_gateway, Some(Duration::from_secs(30)));
    assert_eq!(d.dpd_interval_client, Some(Duration::from_secs(30)));
    assert_eq!(d.keepalive, Some(Duration::from_secs(20)));
    assert_eq!(d.idle_timeout, Some(Duration::from_secs(1800)));
    assert_eq!(d.max_connect_time, None);
    assert_eq!(d.simultaneous_logins, 3);
}

#[test]
fn session_that_never_connects_expires_by_disconnected_timer() {
    let mut db = SessionDb::new();
    let (index, _) = login(&mut db, 0, "alice", 1, timers(60, Some(30), None, 3));
    assert_eq!(db.expired(UnixMillis(30 * S)), vec![(index, EndReason::DisconnectedTimeout)]);
}

#[test]
fn resume_keeps_index_token_address_and_makes_new_tunnel_ids() {
    let mut db = SessionDb::new();
    let (index, addr) = login(&mut db, 0, "alice", 1, timers(1800, Some(600), None, 3));
    let t1 = tunnel_of(&attach(&mut db, 1 * S, 1, "198.51.100.7", 40000));
    assert_eq!(t1, TunnelId { index, n: 1 });
    detach(&mut db, 100 * S, t1);
    let o = attach(&mut db, 130 * S, 1, "203.0.113.9", 51234);
    match &o {
        Outcome::Attached { tunnel, address, resumed, .. } => {
            assert_eq!(*tunnel, TunnelId { index, n: 2 });
            assert_eq!(tunnel.to_string(), format!("{index}.2"));
            assert_eq!(*address, addr);
            assert!(*resumed);
        }
        o => panic!("{o:?}"),
    }
    let s = db.get(index).unwrap();
    assert_eq!(s.inactive_since, None, "inactivity reset");
    assert_eq!(s.public_ip, "203.0.113.9", "public address updated");
    assert_eq!(s.tunnels[0].src_port, 51234, "source port updated");
    assert_eq!(s.resumes, 1);
    assert_eq!(s.counters.bytes_rx, 20, "detached tunnel's counters kept");
    assert_eq!(db.by_token(&tok(1)).map(|s| s.index), Some(index), "same token");
}

#[test]
fn new_ssl_tunnel_replaces_a_stale_one() {
    let mut db = SessionDb::new();
    let (index, _) = login(&mut db, 0, "alice", 1, timers(1800, None, None, 3));
    let t1 = tunnel_of(&attach(&mut db, 1 * S, 1, "198.51.100.7", 40000));
    // Client reconnects before DPD noticed the old connection was dead.
    match attach(&mut db, 5 * S, 1, "198.51.100.7", 40001) {
        Outcome::Attached { replaced, .. } => assert_eq!(replaced, vec![t1]),
        o => panic!("{o:?}"),
    }
    // The old tunnel's late detach does not make the session inactive.
    assert_eq!(detach(&mut db, 6 * S, t1), Outcome::Rejected(Rejection::NoSuchTunnel));
    assert_eq!(db.get(index).unwrap().inactive_since, None);
    assert_eq!(db.get(index).unwrap().tunnels.len(), 1);
}

#[test]
fn max_connect_time_ends_session_even_while_active() {
    let mut db = SessionDb::new();
    let (index, addr) = login(&mut db, 0, "alice", 1, timers(1800, None, Some(3600), 3));
    attach(&mut db, 1 * S, 1, "198.51.100.7", 40000);
    assert_eq!(db.next_deadline(), Some((UnixMillis(3600 * S), index)));
    assert!(db.expired(UnixMillis(3599 * S)).is_empty());
    assert_eq!(db.expired(UnixMillis(3600 * S)), vec![(index, EndReason::MaxConnectTime)]);
    db.apply(&Command::Expire(Expire { at: UnixMillis(3600 * S), index }));
    assert!(db.get(index).is_none());
    assert_eq!(db.lease(addr), None);
}

#[test]
fn max_connect_time_beats_a_later_disconnected_timer() {
    let mut db = SessionDb::new();
    let (index, _) = login(&mut db, 0, "alice", 1, timers(1800, Some(600), Some(700), 3));
    let t = tunnel_of(&attach(&mut db, 1 * S, 1, "198.51.100.7", 40000));
    detach(&mut db, 500 * S, t);
    assert_eq!(db.next_deadline(), Some((UnixMillis(700 * S), index)));
    assert_eq!(db.expired(UnixMillis(700 * S)), vec![(index, EndReason::MaxConnectTime)]);
}

#[test]
fn simultaneous_logins_logs_off_the_oldest_beyond_the_limit() {
    let mut db = SessionDb::new();
    let t = timers(1800, None, None, 2);
    let (a, _) = login(&mut db, 0, "alice", 1, t);
    let (b, _) = login(&mut db, 10, "alice", 2, t);
    let (_, _) = login(&mut db, 15, "bob", 9, t);
    let o = db.apply(&Command::Login(NewSession {
        at: UnixMillis(20),
        user: "alice".into(),
        tunnel_group: "tg".into(),
        group_policy: "gp".into(),
        timers: t,
        pool: pool(),
        token_hash: tok(3),
        client_version: "x".into(),
        public_ip: "x".into(),
        slot: None,
    }));
    match o {
        Outcome::LoggedIn { evicted, .. } => assert_eq!(evicted, vec![a]),
        o => panic!("{o:?}"),
    }
    assert!(db.get(a).is_none());
    assert!(db.get(b).is_some());
    assert_eq!(attach(&mut db, 30, 1, "x", 1), Outcome::Rejected(Rejection::UnknownToken));
    assert_eq!(db.sessions().filter(|s| s.user == "alice").count(), 2);
    assert_eq!(db.sessions().filter(|s| s.user == "bob").count(), 1);
}

#[test]
fn simultaneous_logins_one_keeps_only_the_newest() {
    let mut db = SessionDb::new();
    let t = timers(1800, None, None, 1);
    let (a, addr_a) = login(&mut db, 0, "alice", 1, t);
    let (b, _) = login(&mut db, 10, "alice", 2, t);
    assert!(db.get(a).is_none());
    assert!(db.get(b).is_some());
    assert_eq!(db.lease(addr_a), None);
}

#[test]
fn logoff_refuses_the_token_from_then_on() {
    let mut db = SessionDb::new();
    let (index, addr) = login(&mut db, 0, "alice", 1, timers(1800, None, None, 3));
    attach(&mut db, 1, 1, "x", 1);
    let o = db.apply(&Command::End(EndSessions {
        at: UnixMillis(5),
        indices: vec![index, 999],
        reason: EndReason::AdminLogoff,
    }));
    assert_eq!(o, Outcome::Ended { indices: vec![index] });
    assert_eq!(attach(&mut db, 6, 1, "x", 2), Outcome::Rejected(Rejection::UnknownToken));
    assert_eq!(db.lease(addr), None);
}

#[test]
fn auto_reconnect_off_refuses_a_resume() {
    let mut db = SessionDb::new();
    let mut t = timers(1800, None, None, 3);
    t.auto_reconnect = false;
    login(&mut db, 0, "alice", 1, t);
    let id = tunnel_of(&attach(&mut db, 1, 1, "x", 1));
    detach(&mut db, 2, id);
    assert_eq!(attach(&mut db, 3, 1, "x", 2), Outcome::Rejected(Rejection::ReconnectNotAllowed));
}

#[test]
fn pool_never_leases_an_address_twice_and_reports_exhaustion() {
    let mut db = SessionDb::new();
    let t = timers(1800, None, None, 100);
    // /29: .2 ... .6 are leasable (5 addresses; .1 is the gateway's).
    let mut seen = std::collections::BTreeSet::new();
    for k in 0..5u8 {
        let (_, a) = login(&mut db, u64::from(k), &format!("u{k}"), k + 1, t);
        assert!(seen.insert(a), "{a} leased twice");
        assert!(pool().contains(a));
    }
    let o = db.apply(&Command::Login(NewSession {
        at: UnixMillis(10),
        user: "late".into(),
        tunnel_group: "tg".into(),
        group_policy: "gp".into(),
        timers: t,
        pool: pool(),
        token_hash: tok(77),
        client_version: "x".into(),
        public_ip: "x".into(),
        slot: None,
    }));
    assert_eq!(o, Outcome::Rejected(Rejection::PoolExhausted));
    assert_eq!(db.len(), 5);
}

#[test]
fn snapshot_round_trip_rebuilds_indices() {
    let mut db = SessionDb::new();
    let t = timers(1800, Some(60), None, 3);
    let (a, addr) = login(&mut db, 0, "alice", 1, t);
    let id = tunnel_of(&attach(&mut db, 1, 1, "x", 1));
    detach(&mut db, 2 * S, id);
    login(&mut db, 3, "bob", 2, t);
    let json = serde_json::to_string(&db).unwrap();
    let back: SessionDb = serde_json::from_str(&json).unwrap();
    assert_eq!(back, db);
    assert_eq!(back.lease(addr), Some(a));
    assert_eq!(back.by_token(&tok(1)).map(|s| s.index), Some(a));
    assert_eq!(back.next_deadline(), db.next_deadline());
}

#[test]
fn a_silent_node_is_declared_down_and_its_sessions_become_inactive() {
    let mut db = SessionDb::new();
    let (index, addr) = login(&mut db, 0, "alice", 1, timers(1800, Some(60), None, 3));
    let id = tunnel_of(&attach(&mut db, 1 * S, 1, "198.51.100.7", 40000));
    db.apply(&Command::Heartbeat(Heartbeat { at: UnixMillis(2 * S), node: 1, leaving: false }));
    // The leader judged node 1 silent at its first heartbeat; the second committed since.
    db.apply(&Command::Heartbeat(Heartbeat { at: UnixMillis(3 * S), node: 1, leaving: false }));
    let down = |at: u64, seen_heartbeats: u64| {
        Command::NodeDown(NodeDown { at: UnixMillis(at), node: 1, seen_heartbeats })
    };
    assert_eq!(
        db.apply(&down(4 * S, 1)),
        Outcome::Rejected(Rejection::NodeAlive),
        "a heartbeat committed after the judgment keeps the node up"
    );
    assert_eq!(db.apply(&down(5 * S, 2)), Outcome::NodeDown { detached: vec![id] });
    let s = db.get(index).unwrap();
    assert!(s.tunnels.is_empty());
    assert_eq!(s.inactive_since, Some(UnixMillis(5 * S)), "the session is kept, inactive");
    assert_eq!(db.lease(addr), Some(index));
    assert_eq!(db.next_deadline(), Some((UnixMillis(65 * S), index)), "disconnected timer runs");
    // The client resumes elsewhere before the timer: the session is back.
    attach(&mut db, 10 * S, 1, "198.51.100.7", 40001);
    assert_eq!(db.get(index).unwrap().inactive_since, None);
    let m: Vec<_> = db.members().collect();
    assert_eq!(m[0].down_since, Some(UnixMillis(5 * S)));
    db.apply(&Command::Heartbeat(Heartbeat { at: UnixMillis(11 * S), node: 1, leaving: false }));
    assert_eq!(db.members().next().unwrap().down_since, None, "a heartbeat brings it back");
}

#[test]
fn a_replayed_login_names_the_session_it_made_and_other_token_reuse_is_refused() {
    let mut db = SessionDb::default();
    let t = timers(1_800_000, None, None, 3);
    let (index, address) = login(&mut db, 1_000, "alice", 7, t);
    // The same proposal again (a follower retried a forward the old leader had committed).
    assert_eq!(login(&mut db, 1_000, "alice", 7, t), (index, address));
    assert_eq!(db.sessions().count(), 1, "no second session");
    // The same token in another proposal (other time or user) is refused.
    for (at, user) in [(1_001, "alice"), (1_000, "bob")] {
        let o = db.apply(&Command::Login(NewSession {
            at: UnixMillis(at),
            user: user.into(),
            tunnel_group: "tg".into(),
            group_policy: "gp".into(),
            timers: t,
            pool: pool(),
            token_hash: tok(7),
            client_version: "x".into(),
            public_ip: "198.51.100.7".into(),
            slot: None,
        }));
        assert_eq!(o, Outcome::Rejected(Rejection::UnknownToken), "{user} at {at}");
    }
}

#[test]
fn members_that_all_stop_at_once_leave_one_at_a_time() {
    let mut db = SessionDb::new();
    let beat = |node: u64, leaving: bool, at: u64| {
        Command::Heartbeat(Heartbeat { at: UnixMillis(at * S), node, leaving })
    };
    let depart = |node: u64| Command::Depart(Depart { at: UnixMillis(0), node });
    for n in 1..=3 {
        db.apply(&beat(n, false, 1));
    }
    // `docker-compose restart`: all three are told to stop.
    for n in 1..=3 {
        db.apply(&beat(n, true, 2));
    }
    assert_eq!(db.apply(&depart(1)), Outcome::Departed);
    assert_eq!(db.apply(&depart(1)), Outcome::Departed, "a retried turn is granted again");
    assert_eq!(db.apply(&depart(2)), Outcome::Rejected(Rejection::MemberAway));
    // Node 1's last heartbeat before it stops still says it is leaving: not back yet.
    db.apply(&beat(1, true, 3));
    assert_eq!(db.apply(&depart(3)), Outcome::Rejected(Rejection::MemberAway));
    // Node 1 is back (its new start's heartbeat): the next may go, and only one.
    db.apply(&beat(1, false, 5));
    assert_eq!(db.apply(&depart(3)), Outcome::Departed);
    assert_eq!(db.apply(&depart(2)), Outcome::Rejected(Rejection::MemberAway));
    db.apply(&beat(3, false, 8));
    assert_eq!(db.apply(&depart(2)), Outcome::Departed);
    let flags: Vec<_> = db.members().map(|m| (m.id, m.leaving, m.departed)).collect();
    assert_eq!(flags, vec![(1, false, false), (2, true, true), (3, false, false)]);
    // The state survives a snapshot.
    let back: SessionDb = serde_json::from_str(&serde_json::to_string(&db).unwrap()).unwrap();
    assert_eq!(back, db);
}
