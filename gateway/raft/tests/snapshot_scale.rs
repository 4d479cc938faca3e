//! A session db of 100,000 parent sessions (10,000 in the default run) through the sled store: the snapshot the state machine
//! builds stays within 1 KiB per session, and reopening the store from disk gives back the same
//! session db, indices included.
//!
//! Build and restore times are printed as figures (STYLE.md: speed targets are checked by
//! benchmarks, never by timed assertions); run with `--nocapture` to see them.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use gatehouse_core::{
    AttachTunnel, Command, GroupPolicy, NewSession, Outcome, PoolRange, SessionDb, TokenHash,
    TunnelKind, UnixMillis,
};
use gatehouse_raft::{ReplicatedState, Request, SledLogStore, SledStateMachine, TypeConfig};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

/// `SessionDb` as the replicated state, as gatehouse-node wraps it (`node/src/db.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
struct Replicated(SessionDb);

impl ReplicatedState for Replicated {
    type Command = Command;
    type Outcome = Outcome;
    fn apply(&mut self, index: u64, cmd: &Command) -> Outcome {
        self.0.apply_entry(index, cmd)
    }
}

type C = TypeConfig<Replicated>;

/// The goal for the snapshot: at most this many bytes per parent session.
const MAX_BYTES_PER_SESSION: usize = 1024;
/// Every login lands in one Raft entry; entries are applied in batches of this many.
const BATCH: u64 = 1000;
/// 2021-06-01, so timestamps have realistic widths.
const T0: u64 = 1_622_505_600_000;

/// A /15: 131,069 leasable addresses, room for every session.
fn pool() -> PoolRange {
    PoolRange::from_cidr("vpn-pool", Ipv4Addr::new(10, 128, 0, 0), 15).expect("a /15 is a pool")
}

/// A token hash per session, spread over all 32 bytes like a real SHA-256 (splitmix64).
fn token(i: u64) -> TokenHash {
    let mut out = [0u8; 32];
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for chunk in out.chunks_mut(8) {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_be_bytes());
    }
    TokenHash(out)
}

fn login(i: u64) -> Command {
    let mut policy = GroupPolicy::with_defaults("gp-employees", "vpn-pool");
    policy.max_connect_time = Some(Duration::from_secs(24 * 3600));
    Command::Login(NewSession {
        at: UnixMillis(T0 + i * 7),
        user: format!("user{i:06}@corp.example.com"),
        tunnel_group: "tg-employees".into(),
        group_policy: policy.name.clone(),
        timers: policy.session_timers(),
        pool: pool(),
        token_hash: token(i),
        client_version: "Open AnyConnect VPN Agent v9.01-3".into(),
        public_ip: format!("198.51.{}.{}", (i >> 8) % 256, i % 256),
        slot: None,
    })
}

/// Most sessions of a running headend have their ssl tunnel attached: give every session one,
/// so the figure counts a tunnel record per session.
fn attach(i: u64) -> Command {
    Command::Attach(AttachTunnel {
        at: UnixMillis(T0 + i * 7 + 3),
        token_hash: token(i),
        kind: TunnelKind::Ssl,
        node: 1 + i % 3,
        public_ip: format!("198.51.{}.{}", (i >> 8) % 256, i % 256),
        src_port: 40000 + (i % 20000) as u16,
        dst_port: 443,
        slot: None,
    })
}

fn log_id(index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

/// Reopen the store; sled releases its directory lock only once every handle is gone, so retry
/// briefly. Returns how long the successful open (the restore from the snapshot) took.
#[allow(clippy::disallowed_methods)] // a printed figure only: nothing asserts on it
async fn reopen(dir: &Path) -> Result<(SledLogStore<C>, SledStateMachine<Replicated>, Duration)> {
    let mut last_err = None;
    for _ in 0..50 {
        let start = std::time::Instant::now();
        match gatehouse_raft::open::<Replicated>(dir) {
            Ok((log, sm)) => return Ok((log, sm, start.elapsed())),
            Err(e) => last_err = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last_err.context("no error recorded")?.into())
}

/// Time `f`: a printed figure only, nothing asserts on it.
#[allow(clippy::disallowed_methods)]
async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, Duration) {
    let start = std::time::Instant::now();
    let out = f.await;
    (out, start.elapsed())
}

/// 100,000 sessions (the cluster issue's size) snapshot and restore; about 10 s in debug.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_of_100k_sessions_is_compact_and_restores_from_disk() -> Result<()> {
    snapshot_round_trip(100_000).await
}

/// Log in (and attach an ssl tunnel to) `sessions` sessions through the state machine, build a
/// snapshot, reopen the store from disk and compare.
async fn snapshot_round_trip(sessions: u64) -> Result<()> {
    let dir = tempfile::tempdir()?;

    let (original, last, snapshot_meta, bytes, build_time) = {
        let (_log, mut sm) = gatehouse_raft::open::<Replicated>(dir.path())?;
        let mut next_log = 1;
        for start in (0..sessions).step_by(BATCH as usize) {
            let end = (start + BATCH).min(sessions);
            let commands = (start..end).flat_map(|i| [login(i), attach(i)]);
            let entries: Vec<Entry<C>> = commands
                .map(|cmd| {
                    let e = Entry {
                        log_id: log_id(next_log),
                        payload: EntryPayload::Normal(Request(cmd)),
                    };
                    next_log += 1;
                    e
                })
                .collect();
            let outcomes = sm.apply(entries).await?;
            for (k, o) in outcomes.iter().enumerate() {
                let ok = match o {
                    Outcome::LoggedIn { evicted, .. } => k % 2 == 0 && evicted.is_empty(),
                    Outcome::Attached { resumed, .. } => k % 2 == 1 && !resumed,
                    _ => false,
                };
                ensure!(ok, "entry {k} of the batch from session {start}: {o:?}");
            }
        }
        let last = log_id(next_log - 1);
        let original = sm.shared().read(|s| s.0.clone());
        ensure!(original.len() == sessions as usize, "{} sessions", original.len());

        let (snapshot, build_time) =
            timed(async { sm.get_snapshot_builder().await.build_snapshot().await }).await;
        let snapshot = snapshot?;
        ensure!(snapshot.meta.last_log_id == Some(last), "snapshot at {:?}", snapshot.meta);
        let bytes = snapshot.snapshot.get_ref().len();
        (original, last, snapshot.meta, bytes, build_time)
    };

    let (_log, mut sm, restore_time) = reopen(dir.path()).await?;
    let sm_restored = sm.shared();
    let restored = sm_restored.read(|s| s.0.clone());

    let per_session = bytes / sessions as usize;
    eprintln!(
        "snapshot of {sessions} sessions: {bytes} bytes ({per_session} bytes/session), \
         built in {build_time:?}, restored from disk in {restore_time:?}"
    );

    // The store comes back at the snapshot.
    let (applied, _) = sm.applied_state().await?;
    assert_eq!(applied, Some(last));
    let current = sm.get_current_snapshot().await?.context("snapshot lost on reopen")?;
    assert_eq!(current.meta, snapshot_meta);
    assert_eq!(current.snapshot.get_ref().len(), bytes);

    // The same session db, derived indices included.
    assert_eq!(restored.len(), sessions as usize);
    assert_eq!(restored.lease_count(), sessions as usize);
    assert_eq!(restored.next_deadline(), original.next_deadline());
    for i in (0..sessions).step_by(997).chain([sessions - 1]) {
        let s = original.by_token(&token(i)).context("token of an original session")?;
        assert_eq!(restored.get(s.index), Some(s), "session {}", s.index);
        assert_eq!(restored.by_token(&token(i)).map(|r| r.index), Some(s.index));
        assert_eq!(restored.lease(s.address), Some(s.index));
        assert!(pool().contains(s.address));
    }
    assert!(restored.by_token(&token(sessions)).is_none(), "a token never issued");
    assert!(restored == original, "restored session db differs from the original");

    // And it behaves the same from here: the next login gets the same index and address.
    let mut a = original;
    let mut b = restored;
    assert_eq!(a.apply(&login(sessions)), b.apply(&login(sessions)));
    assert!(a == b);

    assert!(
        per_session <= MAX_BYTES_PER_SESSION,
        "{per_session} bytes per session in the snapshot; the goal is at most {MAX_BYTES_PER_SESSION}"
    );
    Ok(())
}
