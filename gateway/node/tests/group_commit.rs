//! Group commit in `SessionStore::propose`: writes proposed concurrently on one node share log
//! entries, and every proposer still gets the outcome of its own command.
#![allow(clippy::unwrap_used)]

use gatehouse_core::{
    Command, Expire, NewSession, Outcome, PoolRange, SessionTimers, TokenHash, UnixMillis,
};
use gatehouse_node::db::SessionStore;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

fn login(n: u64, pool: &PoolRange) -> Command {
    let mut token = [0u8; 32];
    token[..8].copy_from_slice(&n.to_le_bytes());
    token[31] = 0xa5;
    Command::Login(NewSession {
        at: UnixMillis(1_800_000_000_000 + n),
        user: format!("u{n}"),
        tunnel_group: "default".into(),
        group_policy: "default".into(),
        timers: SessionTimers {
            idle_timeout: Some(Duration::from_secs(1800)),
            disconnected_timeout: Some(Duration::from_secs(1800)),
            max_connect_time: None,
            simultaneous_logins: 3,
            auto_reconnect: true,
        },
        pool: pool.clone(),
        token_hash: TokenHash(token),
        client_version: "test".into(),
        public_ip: "192.0.2.1".into(),
        slot: None,
    })
}

/// A one-node store in a temporary directory (kept as long as the first value lives), its
/// leader elected, and a /16 pool.
async fn single_node() -> (tempfile::TempDir, SessionStore, PoolRange) {
    let dir = tempfile::tempdir().unwrap();
    let store = SessionStore::open(1, dir.path(), None).await.unwrap();
    store.wait_leader(Duration::from_secs(10)).await.unwrap();
    let pool = PoolRange::from_cidr("p", Ipv4Addr::new(10, 9, 0, 0), 16).unwrap();
    (dir, store, pool)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_entries_and_each_gets_its_own_outcome() {
    let (_dir, store, pool) = single_node().await;
    let before = store.raft().metrics().borrow().last_log_index.unwrap_or(0);

    const N: u64 = 400;
    let tasks: Vec<_> = (0..N)
        .map(|n| {
            let (store, cmd) = (store.clone(), login(n, &pool));
            tokio::spawn(async move { (n, store.propose_command(cmd).await) })
        })
        .collect();
    let mut addresses = BTreeSet::new();
    for t in tasks {
        let (n, r) = t.await.unwrap();
        let Ok(Outcome::LoggedIn { index, address, evicted }) = r else {
            panic!("login {n}: {r:?}");
        };
        assert!(evicted.is_empty());
        // The outcome is this proposer's: the session it names belongs to its user.
        let user = store.read(|db| db.get(index).map(|s| (s.user.clone(), s.address)));
        assert_eq!(user, Some((format!("u{n}"), address)), "login {n} got session {index}");
        assert!(addresses.insert(address), "address {address} leased twice");
    }
    let entries = store.raft().metrics().borrow().last_log_index.unwrap_or(0) - before;
    assert!((1..N).contains(&entries), "{N} concurrent writes took {entries} log entries");
    assert_eq!(store.read(|db| db.sessions().count()) as u64, N);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_command_in_a_batch_does_not_fail_the_others() {
    let (_dir, store, pool) = single_node().await;
    // An expiry of a session that does not exist is refused by `apply`; logins around it in
    // the same batches still commit.
    let tasks: Vec<_> = (0..50u64)
        .map(|n| {
            let store = store.clone();
            let cmd = if n % 5 == 0 {
                Command::Expire(Expire { at: UnixMillis(1_800_000_000_000), index: 1_000_000 + n })
            } else {
                login(n, &pool)
            };
            tokio::spawn(async move { (n, store.propose_command(cmd).await) })
        })
        .collect();
    for t in tasks {
        let (n, r) = t.await.unwrap();
        match (n % 5 == 0, r) {
            (true, Ok(o)) => assert!(!matches!(o, Outcome::LoggedIn { .. }), "{n}: {o:?}"),
            (false, Ok(Outcome::LoggedIn { .. })) => {}
            (_, r) => panic!("command {n}: {r:?}"),
        }
    }
    assert_eq!(store.read(|db| db.sessions().count()), 40);
    store.shutdown().await;
}
