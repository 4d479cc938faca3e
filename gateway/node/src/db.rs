//! The session database as this node sees it: the pure `SessionDb` of gatehouse-core,
//! replicated by openraft with sled storage (gatehouse-raft). Writes go through `propose`
//! and return only after the entry committed and applied; reads see the applied state.
//!
//! This issue runs a single-node group; the network below has no peers to reach. The
//! multi-node transport (tonic, mutual TLS) replaces it when the cluster is configured.

use crate::metrics as m;
use anyhow::{Context, Result};
use gatehouse_core::{Command, Outcome, SessionDb};
use gatehouse_raft::{Request, SharedState, TypeConfig};
use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Config};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// `SessionDb` as openraft's replicated state (a newtype: the trait and the type live in
/// different crates).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Replicated(pub SessionDb);

impl gatehouse_raft::ReplicatedState for Replicated {
    type Command = Command;
    type Outcome = Outcome;
    fn apply(&mut self, cmd: &Command) -> Outcome {
        self.0.apply(cmd)
    }
}

/// openraft type configuration of the session db.
pub type Tc = TypeConfig<Replicated>;

/// Why a write did not commit.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// Raft could not commit the entry (no leader, shutting down, storage failure).
    #[error("session database unavailable: {0}")]
    Unavailable(String),
}

/// The node's handle on the replicated session db.
#[derive(Clone)]
pub struct SessionStore {
    raft: openraft::Raft<Tc>,
    state: SharedState<Replicated>,
    applied: watch::Receiver<u64>,
    node_id: u64,
}

impl SessionStore {
    /// Open the store under `data_dir/raft` and start Raft. A fresh directory initializes a
    /// single-member group; an existing one recovers from its snapshot and log.
    pub async fn open(node_id: u64, data_dir: &Path) -> Result<SessionStore> {
        let dir = data_dir.join("raft");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let (log, sm) = gatehouse_raft::open::<Replicated>(&dir)?;
        let state = sm.shared();
        let applied = sm.applied_watch();
        let config = Config {
            cluster_name: "gatehouse".into(),
            heartbeat_interval: 50,
            election_timeout_min: 150,
            election_timeout_max: 300,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(5000),
            max_in_snapshot_log_to_keep: 1000,
            ..Default::default()
        };
        let config = Arc::new(config.validate().context("raft config")?);
        let raft = openraft::Raft::new(node_id, config, NoPeers, log, sm)
            .await
            .context("starting raft")?;
        let mut members = BTreeMap::new();
        members.insert(node_id, BasicNode { addr: String::new() });
        match raft.initialize(members).await {
            Ok(()) => {
                tracing::info!(node = node_id, "initialized a new single-node session database")
            }
            Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => {
                tracing::info!(node = node_id, "recovered the session database from disk")
            }
            Err(e) => return Err(anyhow::anyhow!("initializing raft: {e}")),
        }
        let store = SessionStore { raft, state, applied, node_id };
        store.wait_leader(Duration::from_secs(10)).await?;
        Ok(store)
    }

    async fn wait_leader(&self, limit: Duration) -> Result<()> {
        let id = self.node_id;
        self.raft
            .wait(Some(limit))
            .metrics(|mm| mm.current_leader == Some(id), "this node is leader")
            .await
            .map_err(|e| anyhow::anyhow!("raft did not elect this node: {e}"))?;
        Ok(())
    }

    /// Propose a command; returns its outcome once committed and applied.
    pub async fn propose(&self, cmd: Command) -> Result<Outcome, ProposeError> {
        let t0 = crate::clock::Clock::new().instant_now();
        let r = self.raft.client_write(Request(cmd)).await;
        metrics::histogram!(m::COMMIT_SECONDS).record(t0.elapsed().as_secs_f64());
        r.map(|resp| resp.data).map_err(|e| ProposeError::Unavailable(e.to_string()))
    }

    /// Read the applied state.
    pub fn read<R>(&self, f: impl FnOnce(&SessionDb) -> R) -> R {
        self.state.read(|s| f(&s.0))
    }

    /// Follow applied log indices.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.applied.clone()
    }

    /// Whether this node currently leads the group (the one that proposes timer expiries).
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.node_id)
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Stop Raft (flushes nothing extra: every acknowledged write is already on disk).
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
    }
}

/// The network of a single-node group: there is no peer, so every RPC is unreachable.
struct NoPeers;

fn no_peer<E: std::error::Error>() -> RPCError<u64, BasicNode, E> {
    RPCError::Unreachable(Unreachable::new(&std::io::Error::other(
        "single-node group has no peers",
    )))
}

impl RaftNetworkFactory<Tc> for NoPeers {
    type Network = NoPeers;
    async fn new_client(&mut self, _target: u64, _node: &BasicNode) -> Self::Network {
        NoPeers
    }
}

impl RaftNetwork<Tc> for NoPeers {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<Tc>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        Err(no_peer())
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<Tc>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        Err(no_peer())
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        Err(no_peer())
    }
}
