//! A single-node Raft on the sled store: writes are applied, and a restart restores the state
//! from the snapshot plus a replay of the log after it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use common::{CounterCmd, CounterOutcome, Counters, C};
use gatehouse_raft::{GatehouseRaft, Request, SharedState};
use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Config};
use tokio::sync::watch;

/// A one-node cluster never talks to a peer; every RPC reports the peer unreachable.
struct NoPeers;

#[derive(Debug, thiserror::Error)]
#[error("single-node test cluster has no peers")]
struct NoPeer;

impl RaftNetworkFactory<C> for NoPeers {
    type Network = NoPeers;

    async fn new_client(&mut self, _target: u64, _node: &BasicNode) -> Self::Network {
        NoPeers
    }
}

impl RaftNetwork<C> for NoPeers {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<C>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        Err(RPCError::Unreachable(Unreachable::new(&NoPeer)))
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<C>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        Err(RPCError::Unreachable(Unreachable::new(&NoPeer)))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        Err(RPCError::Unreachable(Unreachable::new(&NoPeer)))
    }
}

const WAIT: Option<Duration> = Some(Duration::from_secs(10));

struct Node {
    raft: GatehouseRaft<Counters>,
    state: SharedState<Counters>,
    applied: watch::Receiver<u64>,
    /// The state as the store opened it, before Raft replayed the log.
    at_open: Counters,
}

async fn start(dir: &Path) -> Result<Node> {
    let config = Config {
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        // Snapshots are triggered by the test; purge everything a snapshot covers.
        snapshot_policy: openraft::SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: 0,
        ..Default::default()
    }
    .validate()?;
    // The previous node's sled handles are released when its tasks finish; retry briefly.
    let mut opened = gatehouse_raft::open::<Counters>(dir);
    for _ in 0..50 {
        if opened.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        opened = gatehouse_raft::open::<Counters>(dir);
    }
    let (log_store, state_machine) = opened?;
    let state = state_machine.shared();
    let applied = state_machine.applied_watch();
    let at_open = state.read(Counters::clone);
    let raft = openraft::Raft::new(1, Arc::new(config), NoPeers, log_store, state_machine).await?;
    Ok(Node { raft, state, applied, at_open })
}

async fn add(node: &Node, name: &str, by: u64) -> Result<(u64, CounterOutcome)> {
    let resp = node.raft.client_write(Request(CounterCmd::add(name, by))).await?;
    Ok((resp.log_id.index, resp.data))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_applies_writes_and_restores_them_after_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;

    let (snapshot_index, last_index) = {
        let node = start(dir.path()).await?;
        node.raft.initialize(BTreeSet::from([1u64])).await?;
        node.raft.wait(WAIT).current_leader(1, "node 1 leads").await?;

        assert_eq!(add(&node, "a", 1).await?.1, CounterOutcome(1));
        assert_eq!(add(&node, "a", 2).await?.1, CounterOutcome(3));
        let (snapshot_index, outcome) = add(&node, "b", 7).await?;
        assert_eq!(outcome, CounterOutcome(7));

        node.raft.trigger().snapshot().await?;
        node.raft
            .wait(WAIT)
            .metrics(|m| m.snapshot.map(|s| s.index) == Some(snapshot_index), "snapshot built")
            .await?;
        node.raft
            .wait(WAIT)
            .metrics(|m| m.purged.map(|p| p.index) == Some(snapshot_index), "log purged")
            .await?;

        // These live only in the log after the snapshot.
        assert_eq!(add(&node, "a", 10).await?.1, CounterOutcome(13));
        let (last_index, outcome) = add(&node, "c", 4).await?;
        assert_eq!(outcome, CounterOutcome(4));

        assert_eq!(*node.applied.borrow(), last_index);
        let expected = BTreeMap::from([("a".into(), 13), ("b".into(), 7), ("c".into(), 4)]);
        assert_eq!(node.state.read(|s| s.values.clone()), expected);

        node.raft.shutdown().await.context("raft shutdown")?;
        (snapshot_index, last_index)
    };

    let node = start(dir.path()).await?;
    // Before Raft replays anything, the state machine holds the snapshot...
    let from_snapshot = BTreeMap::from([("a".into(), 3), ("b".into(), 7)]);
    assert_eq!(node.at_open.values, from_snapshot);
    // ...and openraft replays the committed log after it.
    let restored =
        node.raft.wait(WAIT).applied_index_at_least(Some(last_index), "replayed").await?;
    assert!(restored.snapshot.is_some_and(|s| s.index == snapshot_index));
    assert!(*node.applied.borrow() >= last_index);
    let expected = BTreeMap::from([("a".into(), 13), ("b".into(), 7), ("c".into(), 4)]);
    assert_eq!(node.state.read(|s| s.values.clone()), expected);

    // The restarted node leads again and keeps accepting writes on top of the restored state.
    node.raft.wait(WAIT).current_leader(1, "node 1 leads after restart").await?;
    assert_eq!(add(&node, "b", 1).await?.1, CounterOutcome(8));
    node.raft.shutdown().await.context("raft shutdown")?;
    Ok(())
}
