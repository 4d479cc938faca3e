//! openraft's network over tonic: one lazily connected gRPC channel per peer, mutual TLS.
//! Payloads are openraft's serde types as JSON (see proto/proto/cluster.proto).

use super::pb::cluster_client::ClusterClient;
use super::pb::Payload;
use super::{ClusterTls, ForwardReply};
use crate::db::Tc;
use gatehouse_core::Command;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Builds a [`Peer`] per target.
#[derive(Clone)]
pub struct GrpcNetwork {
    tls: Option<ClusterTls>,
    /// One channel per peer, shared by Raft's clients and forwarded writes (a channel holds
    /// one mutual-TLS connection; building one per write would cost a handshake each).
    channels: Channels,
}

type Channels = std::sync::Arc<
    std::sync::Mutex<std::collections::HashMap<(u64, String), ClusterClient<Channel>>>,
>;

impl GrpcNetwork {
    /// A network presenting our cluster certificate; `None` for a single-node group, whose
    /// Raft never calls a peer.
    pub fn new(tls: Option<ClusterTls>) -> Self {
        GrpcNetwork { tls, channels: Default::default() }
    }

    /// A client to node `target` at `addr` (for forwarded writes).
    pub fn peer(&self, target: u64, addr: &str) -> Peer {
        let key = (target, addr.to_string());
        let client = self.channels.lock().ok().and_then(|m| m.get(&key).cloned());
        Peer {
            target,
            addr: addr.to_string(),
            tls: self.tls.clone(),
            client,
            channels: self.channels.clone(),
        }
    }
}

/// The transport error of one call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Could not reach the peer.
    #[error("node unreachable: {0}")]
    Unreachable(String),
    /// Reached it, but the call failed or the answer did not decode.
    #[error("cluster call failed: {0}")]
    Failed(String),
    /// No answer within the call's time limit (the peer may be busy or gone).
    #[error("cluster call timed out: {0}")]
    TimedOut(String),
}

/// A connection to one peer.
pub struct Peer {
    target: u64,
    addr: String,
    tls: Option<ClusterTls>,
    client: Option<ClusterClient<Channel>>,
    channels: Channels,
}

impl Peer {
    fn client(&mut self) -> Result<ClusterClient<Channel>, CallError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let tls = self
            .tls
            .as_ref()
            .ok_or_else(|| CallError::Unreachable("no [cluster] configured".into()))?;
        let ep = Endpoint::from_shared(format!("https://{}", self.addr))
            .map_err(|e| CallError::Failed(format!("bad peer address {}: {e}", self.addr)))?
            .tls_config(tls.client(self.target))
            .map_err(|e| CallError::Failed(format!("TLS config: {e}")))?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(2))
            .keep_alive_timeout(Duration::from_secs(2));
        let c = ClusterClient::new(ep.connect_lazy())
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20);
        self.client = Some(c.clone());
        if let Ok(mut m) = self.channels.lock() {
            m.insert((self.target, self.addr.clone()), c.clone());
        }
        Ok(c)
    }

    async fn call<Q: Serialize, A: DeserializeOwned>(
        &mut self,
        method: &'static str,
        req: &Q,
        ttl: Duration,
    ) -> Result<A, CallError> {
        let json = serde_json::to_vec(req).map_err(|e| CallError::Failed(e.to_string()))?;
        let mut c = self.client()?;
        let req = tonic::Request::new(Payload { json });
        let fut = async {
            match method {
                "append" => c.append_entries(req).await,
                "vote" => c.vote(req).await,
                "snapshot" => c.install_snapshot(req).await,
                "drill" => c.drill_move(req).await,
                _ => c.forward(req).await,
            }
        };
        let resp = match tokio::time::timeout(ttl, fut).await {
            Err(_) => {
                return Err(CallError::TimedOut(format!(
                    "{method} to node {} timed out after {} ms",
                    self.target,
                    ttl.as_millis()
                )))
            }
            Ok(Err(status)) => {
                // A broken channel is rebuilt on the next call.
                self.client = None;
                if let Ok(mut m) = self.channels.lock() {
                    m.remove(&(self.target, self.addr.clone()));
                }
                return Err(if status.code() == tonic::Code::Unavailable {
                    CallError::Unreachable(status.message().to_string())
                } else {
                    CallError::Failed(format!("{}: {}", status.code(), status.message()))
                });
            }
            Ok(Ok(r)) => r.into_inner(),
        };
        serde_json::from_slice(&resp.json)
            .map_err(|e| CallError::Failed(format!("bad answer: {e}")))
    }

    async fn raft_call<Q: Serialize, A: DeserializeOwned, E>(
        &mut self,
        method: &'static str,
        req: &Q,
        ttl: Duration,
    ) -> Result<A, RPCError<u64, BasicNode, E>>
    where
        E: std::error::Error + DeserializeOwned,
    {
        match self.call::<Q, Result<A, E>>(method, req, ttl).await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Err(CallError::Unreachable(m)) => {
                Err(RPCError::Unreachable(Unreachable::new(&std::io::Error::other(m))))
            }
            // A slow answer is not an unreachable node: openraft retries at once instead of
            // backing off (its AppendEntries limit is one heartbeat interval, which a follower
            // busy with a disk flush can miss while it is perfectly alive).
            Err(CallError::Failed(m) | CallError::TimedOut(m)) => {
                Err(RPCError::Network(NetworkError::new(&std::io::Error::other(m))))
            }
        }
    }

    /// Ask this peer (a slot owner) to carry out a drill move.
    pub async fn drill_move(
        &mut self,
        m: &crate::slots::drill::DrillMove,
    ) -> Result<crate::slots::drill::DrillMoveReply, CallError> {
        self.call("drill", m, Duration::from_secs(10)).await
    }

    /// Forward a batch of session-db commands to this peer (the leader): one log entry.
    pub async fn forward(&mut self, cmds: &[Command]) -> Result<ForwardReply, CallError> {
        self.call("forward", &cmds, Duration::from_secs(5)).await
    }
}

impl RaftNetworkFactory<Tc> for GrpcNetwork {
    type Network = Peer;
    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Peer {
        self.peer(target, &node.addr)
    }
}

impl RaftNetwork<Tc> for Peer {
    /// Retry an unreachable peer every 100 ms (openraft's default waits 500 ms, during which a
    /// follower that was only briefly unreachable gets no heartbeat and starts an election).
    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(100)))
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Tc>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.raft_call("append", &rpc, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<Tc>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.raft_call("snapshot", &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.raft_call("vote", &rpc, option.hard_ttl()).await
    }
}
