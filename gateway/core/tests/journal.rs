//! The ended-session journal as a node follows it, and the counts `apply` keeps for gauges
//! and directors. No clock, no sockets.
#![allow(clippy::unwrap_used)]

use gatehouse_core::sessiondb::ENDED_JOURNAL_LEN;
use gatehouse_core::*;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

fn pool() -> PoolRange {
    PoolRange::from_cidr("pool", Ipv4Addr::new(10, 99, 0, 0), 24).unwrap()
}

fn login(db: &mut SessionDb, at: u64, user: &str, t: u8, slot: Option<SlotRef>) -> u64 {
    let mut p = GroupPolicy::with_defaults("gp", "pool");
    p.simultaneous_logins = 100;
    match db.apply(&Command::Login(NewSession {
        at: UnixMillis(at),
        user: user.into(),
        tunnel_group: "tg".into(),
        group_policy: "gp".into(),
        timers: p.session_timers(),
        pool: pool(),
        token_hash: TokenHash([t; 32]),
        client_version: "test".into(),
        public_ip: "198.51.100.7".into(),
        slot,
    })) {
        Outcome::LoggedIn { index, .. } => index,
        o => panic!("login failed: {o:?}"),
    }
}

fn attach(db: &mut SessionDb, at: u64, t: u8, node: u64, slot: Option<SlotRef>) -> TunnelId {
    match db.apply(&Command::Attach(AttachTunnel {
        at: UnixMillis(at),
        token_hash: TokenHash([t; 32]),
        kind: TunnelKind::Ssl,
        node,
        public_ip: "198.51.100.7".into(),
        src_port: 40000,
        dst_port: 443,
        slot,
    })) {
        Outcome::Attached { tunnel, .. } => tunnel,
        o => panic!("attach failed: {o:?}"),
    }
}

fn end(db: &mut SessionDb, at: u64, index: u64) {
    let cmd =
        EndSessions { at: UnixMillis(at), indices: vec![index], reason: EndReason::AdminLogoff };
    db.apply(&cmd.into());
}

/// The follower the node ran before: the journal entries, then the sequence number, in two
/// separate reads of the shared state. The raft task applies entries between any two reads.
#[test]
fn an_ending_applied_between_the_two_reads_of_the_old_follower_is_never_delivered() {
    let mut db = SessionDb::new();
    let a = login(&mut db, 1_000, "alice", 1, None);
    let b = login(&mut db, 1_000, "bob", 2, None);
    let mut seen = db.end_seq();
    let mut delivered = Vec::new();

    end(&mut db, 2_000, a);
    // Read 1: the entries after `seen`.
    delivered.extend(db.ended_since(seen).map(|e| e.index));
    // The raft task applies bob's logoff here.
    end(&mut db, 2_001, b);
    // Read 2: the sequence number, which now counts bob's ending too.
    seen = db.end_seq();
    // Every later wake-up reads after `seen`: bob's ending is skipped for good.
    delivered.extend(db.ended_since(seen).map(|e| e.index));
    assert_eq!(delivered, vec![a], "the race is real: bob's tunnels would never hear of it");

    // The one-read form cannot skip it: what it returns and where it resumes belong together.
    let mut db = SessionDb::new();
    let a = login(&mut db, 1_000, "alice", 1, None);
    let b = login(&mut db, 1_000, "bob", 2, None);
    let mut seen = db.end_seq();
    let mut delivered = Vec::new();
    end(&mut db, 2_000, a);
    let e = db.endings_after(seen);
    delivered.extend(e.ended.iter().map(|&(i, _)| i));
    seen = e.next;
    end(&mut db, 2_001, b);
    let e = db.endings_after(seen);
    delivered.extend(e.ended.iter().map(|&(i, _)| i));
    assert_eq!(delivered, vec![a, b]);
    assert_eq!(e.next, db.end_seq());
    assert_eq!(db.endings_after(e.next).ended, vec![], "nothing is delivered twice");
}

#[test]
fn a_follower_that_fell_behind_the_journal_is_told_how_many_endings_it_missed() {
    let mut db = SessionDb::new();
    let n = ENDED_JOURNAL_LEN as u64 + 10;
    for k in 0..n {
        let t = (k % 250) as u8;
        let i = login(&mut db, 1_000 + k, &format!("u{k}"), t, None);
        end(&mut db, 1_000 + k, i);
    }
    let e = db.endings_after(0);
    assert_eq!(e.ended.len(), ENDED_JOURNAL_LEN);
    assert_eq!(e.missed, 10);
    assert_eq!(e.next, n);
    assert_eq!(db.endings_after(n - 1).missed, 0);
}

fn assign_slot(db: &mut SessionDb, id: u32, first: u8, owner: u64) -> SlotRef {
    let spec = SlotSpec {
        id,
        public_ip: Ipv4Addr::new(192, 0, 2, id as u8),
        public_prefix: 24,
        inside_ip: None,
        inside_prefix: 24,
        pool: PoolRange {
            name: format!("slot{id}"),
            first: Ipv4Addr::new(10, 99, 0, first),
            last: Ipv4Addr::new(10, 99, 0, first + 9),
        },
        preferred_owner: owner,
        standby: owner + 1,
        capacity: 10,
    };
    let at = UnixMillis(1);
    db.apply(&SlotChange { at, cmd: SlotCommand::Define { spec } }.into());
    let assign = SlotCommand::Assign { slot: id, node: owner, from_epoch: 0, seen_renewals: 0 };
    match db.apply(&SlotChange { at, cmd: assign }.into()) {
        Outcome::Slot { epoch } => SlotRef { id, epoch },
        o => panic!("assign failed: {o:?}"),
    }
}

#[test]
fn sessions_per_slot_and_active_sessions_follow_every_change_without_a_scan() {
    let mut db = SessionDb::new();
    let s1 = assign_slot(&mut db, 1, 10, 1);
    let s2 = assign_slot(&mut db, 2, 30, 2);
    let a = login(&mut db, 1_000, "a", 1, Some(s1));
    let b = login(&mut db, 1_000, "b", 2, Some(s1));
    let c = login(&mut db, 1_000, "c", 3, Some(s2));
    let _d = login(&mut db, 1_000, "d", 4, None);
    assert_eq!(db.slot_sessions(), BTreeMap::from([(1, 2), (2, 1)]));
    assert_eq!(db.active_count(), 0, "a new session is inactive until its ssl tunnel");

    let ta = attach(&mut db, 1_100, 1, 1, Some(s1));
    attach(&mut db, 1_100, 2, 1, Some(s1));
    attach(&mut db, 1_100, 3, 2, Some(s2));
    assert_eq!(db.active_count(), 3);
    // A resume of an active session replaces its tunnel: still one active session.
    let ta2 = attach(&mut db, 1_200, 1, 1, Some(s1));
    assert_eq!(db.active_count(), 3);
    // Detaching the replaced tunnel changes nothing; detaching the live one does.
    let d = |id| {
        Command::Detach(DetachTunnel { at: UnixMillis(1_300), id, counters: Counters::default() })
    };
    db.apply(&d(ta));
    assert_eq!(db.active_count(), 3);
    db.apply(&d(ta2));
    assert_eq!(db.active_count(), 2);
    // Node 2 goes silent: its tunnel goes, its session becomes inactive.
    db.apply(&Heartbeat { at: UnixMillis(1_000), node: 2, leaving: false }.into());
    db.apply(&NodeDown { at: UnixMillis(9_000), node: 2, seen_heartbeats: 1 }.into());
    assert_eq!(db.active_count(), 1);
    end(&mut db, 9_100, b);
    assert_eq!(db.active_count(), 0);
    end(&mut db, 9_100, a);
    end(&mut db, 9_100, c);
    assert_eq!(db.slot_sessions(), BTreeMap::new());
    // The counts survive a snapshot round trip (they are rebuilt on load).
    let e = login(&mut db, 9_200, "e", 5, Some(s2));
    attach(&mut db, 9_300, 5, 2, Some(s2));
    let json = serde_json::to_string(&db).unwrap();
    let back: SessionDb = serde_json::from_str(&json).unwrap();
    assert_eq!(back.slot_sessions(), BTreeMap::from([(2, 1)]));
    assert_eq!(back.active_count(), 1);
    assert_eq!(back.get(e).map(|s| s.index), Some(e));
}

#[test]
fn each_command_gets_its_own_reply_type_back_from_the_envelope() {
    let mut db = SessionDb::new();
    let cmd = EndSessions { at: UnixMillis(5), indices: vec![7], reason: EndReason::AdminLogoff };
    let out = db.apply(&cmd.clone().into());
    assert_eq!(<EndSessions as Proposal>::reply(out), Ok(Ok(vec![])));
    let out = db.apply(&Expire { at: UnixMillis(5), index: 7 }.into());
    assert_eq!(<Expire as Proposal>::reply(out), Ok(Err(Rejection::NoSuchSession)));
    // An envelope its command cannot produce is an error, not an arm for callers.
    let mismatch = <SlotChange as Proposal>::reply(Outcome::Alive).unwrap_err();
    assert_eq!(mismatch.to_string(), "the session database answered Alive to a Slot command");
}
