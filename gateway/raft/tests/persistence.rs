//! What the store persists survives closing and reopening the directory.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use common::{CounterCmd, CounterOutcome, Counters, C};
use gatehouse_raft::{Request, SledLogStore, SledStateMachine};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftLogReader, RaftSnapshotBuilder,
    Vote,
};

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64, payload: EntryPayload<C>) -> Entry<C> {
    Entry { log_id: log_id(term, index), payload }
}

fn normal(term: u64, index: u64, cmd: CounterCmd) -> Entry<C> {
    entry(term, index, EntryPayload::Normal(Request(cmd)))
}

/// sled releases its directory lock only once every handle is gone; retry briefly.
async fn reopen(dir: &Path) -> Result<(SledLogStore<C>, SledStateMachine<Counters>)> {
    let mut last_err = None;
    for _ in 0..50 {
        match gatehouse_raft::open::<Counters>(dir) {
            Ok(stores) => return Ok(stores),
            Err(e) => last_err = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last_err.context("no error recorded")?.into())
}

#[tokio::test]
async fn vote_log_and_snapshot_survive_reopen() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let membership = Membership::new(vec![[1u64].into()], ());
    let entries = vec![
        entry(1, 1, EntryPayload::Blank),
        entry(1, 2, EntryPayload::Membership(membership.clone())),
        normal(1, 3, CounterCmd::add("a", 2)),
        normal(1, 4, CounterCmd::add("b", 5)),
        normal(2, 5, CounterCmd::add("a", 3)),
        normal(2, 6, CounterCmd::add("c", 1)),
    ];

    let (vote, log_before, snapshot_meta) = {
        let (mut log, mut sm) = gatehouse_raft::open::<Counters>(dir.path())?;
        let state = sm.shared();
        let applied = sm.applied_watch();

        log.blocking_append(entries.clone()).await?;
        let vote = Vote::new_committed(2, 1);
        log.save_vote(&vote).await?;
        log.save_committed(Some(log_id(2, 6))).await?;

        // Snapshot after 5 entries; entry 6 is only in the log.
        let outcomes = sm.apply(entries[..5].to_vec()).await?;
        assert_eq!(outcomes.last(), Some(&CounterOutcome(5)), "a = 2 + 3");
        assert_eq!(*applied.borrow(), 5);
        let snapshot = sm.get_snapshot_builder().await.build_snapshot().await?;
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(2, 5)));
        log.purge(log_id(1, 2)).await?;
        sm.apply(entries[5..].to_vec()).await?;
        assert_eq!(state.read(|s| s.values.get("c").copied()), Some(1));

        let log_before = log.try_get_log_entries(0..).await?;
        (vote, log_before, snapshot.meta)
    };

    let (mut log, mut sm) = reopen(dir.path()).await?;
    assert_eq!(log.read_vote().await?, Some(vote));
    assert_eq!(log.read_committed().await?, Some(log_id(2, 6)));
    let state = log.get_log_state().await?;
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 2)));
    assert_eq!(state.last_log_id, Some(log_id(2, 6)));
    let log_after = log.try_get_log_entries(0..).await?;
    assert_eq!(log_after, log_before);
    assert_eq!(log_after.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), vec![3, 4, 5, 6]);

    // The state machine comes back from the snapshot: entry 6 is for openraft to replay.
    let (applied, stored_membership) = sm.applied_state().await?;
    assert_eq!(applied, Some(log_id(2, 5)));
    assert_eq!(stored_membership.membership(), &membership);
    assert_eq!(*sm.applied_watch().borrow(), 5);
    let expected: BTreeMap<String, u64> = [("a".to_string(), 5), ("b".to_string(), 5)].into();
    assert_eq!(sm.shared().read(|s| s.values.clone()), expected);
    let current = sm.get_current_snapshot().await?.context("snapshot lost on reopen")?;
    assert_eq!(current.meta, snapshot_meta);

    // A new snapshot id after reopen does not collide with the old one.
    let again = sm.get_snapshot_builder().await.build_snapshot().await?;
    assert_ne!(again.meta.snapshot_id, snapshot_meta.snapshot_id);
    Ok(())
}

#[tokio::test]
async fn truncate_survives_reopen_and_leaves_no_hole() -> Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let (mut log, _sm) = gatehouse_raft::open::<Counters>(dir.path())?;
        let entries: Vec<_> = (1..=8).map(|i| normal(1, i, CounterCmd::add("x", i))).collect();
        log.blocking_append(entries).await?;
        log.truncate(log_id(1, 5)).await?;
        log.blocking_append([normal(2, 5, CounterCmd::add("y", 1))]).await?;
    }
    let (mut log, _sm) = reopen(dir.path()).await?;
    let got = log.try_get_log_entries(0..).await?;
    let ids: Vec<_> = got.iter().map(|e| e.log_id).collect();
    assert_eq!(ids, vec![log_id(1, 1), log_id(1, 2), log_id(1, 3), log_id(1, 4), log_id(2, 5)]);
    assert_eq!(log.get_log_state().await?.last_log_id, Some(log_id(2, 5)));
    Ok(())
}

#[tokio::test]
async fn the_log_size_follows_appends_purges_truncations_and_reopens() -> Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let dir = tempfile::tempdir()?;
    let entries: Vec<Entry<C>> =
        (1..=20).map(|i| normal(1, i, CounterCmd::add(&"x".repeat(i as usize * 10), 1))).collect();
    let size = |e: &[Entry<C>]| -> u64 {
        e.iter().map(|e| serde_json::to_vec(e).map_or(0, |v| v.len() as u64)).sum()
    };
    {
        let (mut log, _sm) = gatehouse_raft::open::<Counters>(dir.path())?;
        let bytes = log.log_bytes();
        assert_eq!(bytes.load(Relaxed), 0);
        log.blocking_append(entries.clone()).await?;
        assert_eq!(bytes.load(Relaxed), size(&entries));
        log.purge(log_id(1, 5)).await?;
        assert_eq!(bytes.load(Relaxed), size(&entries[5..]));
        log.truncate(log_id(1, 16)).await?;
        assert_eq!(bytes.load(Relaxed), size(&entries[5..15]));
    }
    let (log, _sm) = reopen(dir.path()).await?;
    assert_eq!(log.log_bytes().load(Relaxed), size(&entries[5..15]), "recounted on open");
    Ok(())
}
