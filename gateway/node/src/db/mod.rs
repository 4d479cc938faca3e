//! The session database as this node sees it: the pure `SessionDb` of gatehouse-core,
//! replicated by openraft with sled storage (gatehouse-raft). Writes go through `propose`
//! and return only after the entry committed and applied; reads see the applied state.
//!
//! Without a `[cluster]` section the group has one member; with it, the members talk over
//! `cluster::network` (tonic, mutual TLS) and writes at followers are forwarded to the leader.

use crate::cluster::network::GrpcNetwork;
use crate::cluster::{ClusterTls, ForwardReply};
use crate::config::ClusterConfig;
use crate::metrics as m;

pub mod state;
pub mod time;
use anyhow::{Context, Result};
use gatehouse_core::{Command, Outcome, OutcomeMismatch, Proposal, Rejection, SessionDb};
use gatehouse_raft::{Request, SharedState};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Config};
pub use state::Tc;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Most commands in one log entry.
const MAX_BATCH: usize = 512;
/// Batches of one node committing at once; writes proposed meanwhile form the next batch.
const BATCHES_IN_FLIGHT: usize = 2;

/// A snapshot is built after this many log entries since the last one.
pub const SNAPSHOT_EVERY: u64 = 20_000;
/// ... or once the log's entries take this many bytes: an entry is a batch of up to
/// `MAX_BATCH` commands, so counting entries alone would let the log grow to gigabytes under
/// sustained load.
pub const SNAPSHOT_LOG_BYTES: u64 = 64 << 20;

impl SessionStore {
    /// The cluster network Raft uses: its channels to the peers serve the other cluster
    /// calls too (`cluster::drill_service::request_move`).
    pub fn network(&self) -> &GrpcNetwork {
        &self.committer.network
    }
}

/// Why a proposed command did not take effect.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProposeError {
    /// It committed, and `apply` refused it; the state is unchanged.
    #[error("refused: {0}")]
    Refused(Rejection),
    /// It did not commit (or its outcome could not be read back).
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// Why a write did not commit, or did not come back.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unavailable {
    /// The session database is shutting down.
    #[error("the session database is stopping")]
    Stopping,
    /// No commit within the write timeout (no leader reachable, or no quorum).
    #[error("not committed within {ms} ms (no quorum reachable from node {node})")]
    NoQuorum {
        /// The write timeout.
        ms: u64,
        /// The proposing node.
        node: u64,
    },
    /// A batch did not commit within the write timeout.
    #[error("not committed within {ms} ms")]
    TimedOut {
        /// The write timeout.
        ms: u64,
    },
    /// openraft refused the write (shutting down, membership change, storage error).
    #[error("raft: {0}")]
    Raft(std::sync::Arc<RaftError<u64, ClientWriteError<u64, BasicNode>>>),
    /// The leader a follower forwarded to could not commit it (its error, as it sent it).
    #[error("the leader could not commit it: {0}")]
    Leader(String),
    /// The outcomes did not match the batch (a replica of another version).
    #[error("a batch of {sent} commands came back with {got} outcomes")]
    BatchSize {
        /// Commands sent.
        sent: usize,
        /// Outcomes received.
        got: usize,
    },
    /// The outcome is not one the command can produce.
    #[error(transparent)]
    Mismatch(#[from] OutcomeMismatch),
}

/// The node's handle on the replicated session db.
#[derive(Clone)]
pub struct SessionStore {
    state: SharedState<SessionDb>,
    /// The Raft handle, the network and the write timeout live here.
    committer: Committer,
    batches: mpsc::UnboundedSender<Pending>,
    node_id: u64,
    clock: crate::clock::Clock,
    time: time::Timekeeper,
    /// When recent log entries arrived here.
    arrivals: gatehouse_raft::Arrivals,
}

/// A write waiting for its batch.
struct Pending {
    cmd: Command,
    done: oneshot::Sender<Result<Outcome, Unavailable>>,
}

/// Commits batches: on the leader through Raft, on a follower by forwarding to the leader.
#[derive(Clone)]
struct Committer {
    raft: openraft::Raft<Tc>,
    applied: watch::Receiver<u64>,
    network: GrpcNetwork,
    write_timeout: Duration,
}

impl SessionStore {
    /// Open the store under `data_dir/raft` and start Raft. A fresh single node initializes a
    /// one-member group; in a cluster the lowest id initializes the configured membership and
    /// the others join when it reaches them. An existing store recovers from snapshot and log.
    pub async fn open(
        node_id: u64,
        data_dir: &Path,
        cluster: Option<&ClusterConfig>,
    ) -> Result<SessionStore> {
        let dir = data_dir.join("raft");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let (log, sm) = gatehouse_raft::open::<SessionDb>(&dir)?;
        let log_bytes = log.log_bytes();
        let clock = crate::clock::Clock::new();
        let arrivals = log.track_arrivals(move || clock.instant_now());
        let state = sm.shared();
        let applied = sm.applied_watch();
        let config = Config {
            cluster_name: cluster.map_or_else(|| "gatehouse".to_string(), |c| c.name.clone()),
            // Elections must start and finish before slot owners fence themselves (config.rs
            // checks the slot lease against `worst_election_start`); otherwise a leader's
            // death moves every slot. A single node elects itself at once.
            heartbeat_interval: cluster.map_or(50, |c| c.raft_heartbeat.as_millis() as u64),
            election_timeout_min: cluster.map_or(150, |c| c.election_timeout.0.as_millis() as u64),
            election_timeout_max: cluster.map_or(200, |c| c.election_timeout.1.as_millis() as u64),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY),
            max_in_snapshot_log_to_keep: 100,
            ..Default::default()
        };
        let config = Arc::new(config.validate().context("raft config")?);
        let tls = cluster.map(ClusterTls::load).transpose()?;
        let network = GrpcNetwork::new(tls);
        let raft = openraft::Raft::new(node_id, config, network.clone(), log, sm)
            .await
            .context("starting raft")?;
        let replayed_up_to = raft.metrics().borrow().last_log_index.unwrap_or(0);
        let time = time::Timekeeper::new(replayed_up_to, state.clone(), applied.clone(), clock);
        tokio::spawn(time.clone().run());
        let mut members = BTreeMap::new();
        members.insert(
            node_id,
            BasicNode { addr: cluster.map(|c| c.listen.to_string()).unwrap_or_default() },
        );
        for (id, addr) in cluster.map(|c| c.peers.clone()).unwrap_or_default() {
            members.insert(id, BasicNode { addr: addr.to_string() });
        }
        let initializer = members.keys().next() == Some(&node_id);
        if initializer {
            match raft.initialize(members).await {
                Ok(()) => tracing::info!(node = node_id, "initialized a new session database"),
                Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => {
                    tracing::info!(node = node_id, "recovered the session database from disk")
                }
                Err(e) => return Err(anyhow::anyhow!("initializing raft: {e}")),
            }
        }
        let write_timeout = cluster.map_or(Duration::from_secs(3), |c| c.write_timeout);
        tokio::spawn(snapshot_when_log_is_large(raft.clone(), log_bytes));
        let committer = Committer { raft, applied, network, write_timeout };
        let (batches, rx) = mpsc::unbounded_channel();
        tokio::spawn(run_batcher(committer.clone(), rx));
        Ok(SessionStore { state, committer, batches, node_id, clock, time, arrivals })
    }

    /// When the log entry at `index` arrived in this node's log, if it arrived while this
    /// process ran and is recent (see [`gatehouse_raft::Arrivals`]).
    pub fn arrived(&self, index: u64) -> Option<std::time::Instant> {
        self.arrivals.at(index)
    }

    /// Wait until a leader is known.
    pub async fn wait_leader(&self, limit: Duration) -> Result<()> {
        self.committer
            .raft
            .wait(Some(limit))
            .metrics(|mm| mm.current_leader.is_some(), "a leader is known")
            .await
            .map_err(|e| anyhow::anyhow!("no raft leader: {e}"))?;
        Ok(())
    }

    /// Propose a command; returns its reply once committed and applied here. A follower
    /// forwards it to the leader and waits until it has applied the entry itself, so a client
    /// that logs in on this node finds its session here on its next request. Fails after the
    /// write timeout (no leader reachable, or no quorum: a minority never commits).
    ///
    /// Commands proposed while this node's earlier batches are committing travel together in
    /// one log entry (one append, one disk flush, one AppendEntries per follower).
    pub async fn propose<P: Proposal>(&self, p: P) -> Result<P::Reply, ProposeError> {
        let outcome = self.propose_command(p.into()).await?;
        P::reply(outcome).map_err(Unavailable::from)?.map_err(ProposeError::Refused)
    }

    /// Propose a command and return `apply`'s envelope (for replayed or mixed commands).
    pub async fn propose_command(&self, cmd: Command) -> Result<Outcome, Unavailable> {
        let t0 = self.clock.instant_now();
        let (done, rx) = oneshot::channel();
        let r = if self.batches.send(Pending { cmd, done }).is_err() {
            Err(Unavailable::Stopping)
        } else {
            match tokio::time::timeout(self.committer.write_timeout, rx).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err(Unavailable::Stopping),
                Err(_) => Err(self.committer.timed_out(Some(self.node_id))),
            }
        };
        metrics::histogram!(m::COMMIT_SECONDS).record(t0.elapsed().as_secs_f64());
        r
    }

    /// Cluster time: the timestamp for a command proposed now ([`time::Timekeeper`]). Use it
    /// for every replicated timestamp and every comparison with one, never the wall clock.
    pub fn now(&self) -> gatehouse_core::UnixMillis {
        self.time.now()
    }

    /// Read the applied state.
    pub fn read<R>(&self, f: impl FnOnce(&SessionDb) -> R) -> R {
        self.state.read(f)
    }

    /// Follow applied log indices.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.committer.applied.clone()
    }

    /// Whether this node currently leads the group (the one that proposes timer expiries).
    pub fn is_leader(&self) -> bool {
        self.committer.raft.metrics().borrow().current_leader == Some(self.node_id)
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// The Raft handle (cluster service, admin).
    pub fn raft(&self) -> &openraft::Raft<Tc> {
        &self.committer.raft
    }

    /// Stop Raft (every acknowledged write is already on disk).
    pub async fn shutdown(&self) {
        if let Err(e) = self.committer.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
    }
}

/// Gather proposed commands into batches, at most `BATCHES_IN_FLIGHT` committing at once: a
/// lone write goes out at once; under load each batch carries whatever queued up while the
/// previous ones were committing (group commit).
async fn run_batcher(c: Committer, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(BATCHES_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        // A proposer that gave up (write timeout) does not get its write committed late.
        batch.retain(|p| !p.done.is_closed());
        if batch.is_empty() {
            continue;
        }
        metrics::histogram!(m::BATCH_COMMANDS).record(batch.len() as f64);
        let c = c.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (cmds, dones): (Vec<Command>, Vec<_>) =
                batch.into_iter().map(|p| (p.cmd, p.done)).unzip();
            let n = cmds.len();
            let r = match tokio::time::timeout(c.write_timeout, c.commit(cmds)).await {
                Ok(r) => r,
                Err(_) => Err(c.timed_out(None)),
            };
            let r = r.and_then(|outcomes| {
                if outcomes.len() == n {
                    Ok(outcomes)
                } else {
                    Err(Unavailable::BatchSize { sent: n, got: outcomes.len() })
                }
            });
            match r {
                Ok(outcomes) => {
                    for (done, o) in dones.into_iter().zip(outcomes) {
                        let _ = done.send(Ok(o));
                    }
                }
                Err(e) => {
                    for done in dones {
                        let _ = done.send(Err(e.clone()));
                    }
                }
            }
        });
    }
}

/// Every second: publish the log's size, and ask openraft for a snapshot (after which it purges
/// the log) once the log holds more than `SNAPSHOT_LOG_BYTES`; at most one request per 10 s.
async fn snapshot_when_log_is_large(
    raft: openraft::Raft<Tc>,
    bytes: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut quiet = 0u32;
    loop {
        tick.tick().await;
        let b = bytes.load(std::sync::atomic::Ordering::Relaxed);
        metrics::gauge!(m::RAFT_LOG_BYTES).set(b as f64);
        quiet = quiet.saturating_sub(1);
        if b > SNAPSHOT_LOG_BYTES && quiet == 0 {
            tracing::info!(log_bytes = b, "raft log is large; building a snapshot");
            if raft.trigger().snapshot().await.is_err() {
                return; // Raft stopped.
            }
            quiet = 10;
        }
    }
}

impl Committer {
    /// The error of a write that did not commit within the write timeout.
    fn timed_out(&self, node: Option<u64>) -> Unavailable {
        let ms = self.write_timeout.as_millis() as u64;
        match node {
            Some(node) => Unavailable::NoQuorum { ms, node },
            None => Unavailable::TimedOut { ms },
        }
    }

    /// Commit `cmds` as one entry: on the leader directly, on a follower by forwarding.
    async fn commit(&self, cmds: Vec<Command>) -> Result<Vec<Outcome>, Unavailable> {
        let mut backoff = Duration::from_millis(20);
        loop {
            let mut tried = None;
            match self.raft.client_write(Request(cmds.clone())).await {
                Ok(resp) => return Ok(resp.data),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    if let (Some(id), Some(node)) = (f.leader_id, f.leader_node) {
                        tried = Some(id);
                        let mut peer = self.network.peer(id, &node.addr);
                        // A leader that died mid-call may never answer: give up on it as soon
                        // as this node learns of another leader (or of none).
                        let reply = tokio::select! {
                            r = peer.forward(&cmds) => Some(r),
                            _ = self.leader_other_than(Some(id)) => None,
                        };
                        match reply {
                            Some(Ok(ForwardReply::Committed { outcomes, log_index })) => {
                                self.wait_applied(log_index).await;
                                return Ok(outcomes);
                            }
                            Some(Ok(ForwardReply::Failed(e))) => {
                                return Err(Unavailable::Leader(e))
                            }
                            Some(Ok(ForwardReply::NotLeader { .. })) => {}
                            Some(Err(e)) => tracing::debug!(leader = id, "forward failed: {e}"),
                            None => tracing::debug!(leader = id, "leader changed during forward"),
                        }
                    }
                }
                Err(e) => return Err(Unavailable::Raft(std::sync::Arc::new(e))),
            }
            // No leader known, or the one we tried failed: retry as soon as this node learns
            // of a new leader (an election), at the latest after the backoff.
            let _ = tokio::time::timeout(backoff, self.new_leader_known(tried)).await;
            backoff = (backoff * 2).min(Duration::from_millis(300));
        }
    }

    /// Resolves once this node's view of the leader is not `leader` (another one, or none).
    async fn leader_other_than(&self, leader: Option<u64>) {
        let mut m = self.raft.metrics();
        let _ = m.wait_for(|m| m.current_leader != leader).await;
    }

    /// Resolves once this node knows a leader other than `failed`.
    async fn new_leader_known(&self, failed: Option<u64>) {
        let mut m = self.raft.metrics();
        let _ = m.wait_for(|m| m.current_leader.is_some() && m.current_leader != failed).await;
    }

    /// Wait until this node has applied `index` (bounded by the write timeout).
    async fn wait_applied(&self, index: u64) {
        let mut w = self.applied.clone();
        let _ = tokio::time::timeout(self.write_timeout, w.wait_for(|a| *a >= index)).await;
    }
}
