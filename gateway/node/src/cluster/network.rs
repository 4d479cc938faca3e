//! openraft's network over tonic: one lazily connected gRPC channel per peer, mutual TLS,
//! shared by the clients of every cluster service (Raft here, forwarded writes and drills in
//! their service files). Payloads are serde types as JSON (see proto/proto/cluster.proto).

use super::payload::MAX_MESSAGE;
use super::pb::raft_client::RaftClient;
use super::pb::Payload;
use super::ClusterTls;
use crate::db::state::Tc;
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
use std::future::Future;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use tonic::{Response, Status};

/// Builds a [`Peer`] per target.
#[derive(Clone)]
pub struct GrpcNetwork {
    tls: Option<ClusterTls>,
    /// One channel per peer, shared by Raft's clients, forwarded writes and drills (a channel
    /// holds one mutual-TLS connection; building one per write would cost a handshake each).
    channels: Channels,
}

type Channels = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<(u64, String), Channel>>>;

impl GrpcNetwork {
    /// A network presenting our cluster certificate; `None` for a single-node group, whose
    /// Raft never calls a peer.
    pub fn new(tls: Option<ClusterTls>) -> Self {
        GrpcNetwork { tls, channels: Default::default() }
    }

    /// A client to node `target` at `addr` (for forwarded writes and drills).
    pub fn peer(&self, target: u64, addr: &str) -> Peer {
        let key = (target, addr.to_string());
        let channel = self.channels.lock().ok().and_then(|m| m.get(&key).cloned());
        Peer {
            target,
            addr: addr.to_string(),
            tls: self.tls.clone(),
            channel,
            channels: self.channels.clone(),
        }
    }
}

/// The transport error of one call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// This node has no `[cluster]` section, hence no certificate to call a peer with.
    #[error("node unreachable: no [cluster] configured")]
    NoCluster,
    /// The peer's cluster address does not make a URI.
    #[error("cluster call failed: bad peer address {addr}: {source}")]
    BadAddress {
        /// The address as the membership has it.
        addr: String,
        /// Why tonic refused it.
        #[source]
        source: tonic::transport::Error,
    },
    /// tonic refused our TLS settings.
    #[error("cluster call failed: TLS config: {0}")]
    Tls(#[source] tonic::transport::Error),
    /// Could not reach the peer (gRPC `UNAVAILABLE`: refused, reset, no route).
    #[error("node unreachable: {}", .0.message())]
    Unreachable(#[source] Status),
    /// Reached it, but the call failed.
    #[error("cluster call failed: {}: {}", .0.code(), .0.message())]
    Failed(#[source] Status),
    /// The request did not encode.
    #[error("cluster call failed: {0}")]
    Encode(#[source] serde_json::Error),
    /// The answer did not decode (a peer of another version).
    #[error("cluster call failed: bad answer: {0}")]
    BadAnswer(#[source] serde_json::Error),
    /// No answer within the call's time limit (the peer may be busy or gone).
    #[error(
        "cluster call timed out: {method} to node {target} timed out after {} ms",
        .after.as_millis()
    )]
    TimedOut {
        /// The call.
        method: &'static str,
        /// The peer.
        target: u64,
        /// The limit.
        after: Duration,
    },
}

/// A connection to one peer.
pub struct Peer {
    target: u64,
    addr: String,
    tls: Option<ClusterTls>,
    channel: Option<Channel>,
    channels: Channels,
}

impl Peer {
    fn channel(&mut self) -> Result<Channel, CallError> {
        if let Some(c) = &self.channel {
            return Ok(c.clone());
        }
        let tls = self.tls.as_ref().ok_or(CallError::NoCluster)?;
        let ep = Endpoint::from_shared(format!("https://{}", self.addr))
            .map_err(|source| CallError::BadAddress { addr: self.addr.clone(), source })?
            .tls_config(tls.client(self.target))
            .map_err(CallError::Tls)?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(2))
            .keep_alive_timeout(Duration::from_secs(2));
        let c = ep.connect_lazy();
        self.channel = Some(c.clone());
        if let Ok(mut m) = self.channels.lock() {
            m.insert((self.target, self.addr.clone()), c.clone());
        }
        Ok(c)
    }

    /// One unary call within `ttl`: `req` as JSON through `send` (which picks the service
    /// client and method on the channel), the answer decoded from JSON.
    pub(crate) async fn call<Q, A, F, Fut>(
        &mut self,
        method: &'static str,
        req: &Q,
        ttl: Duration,
        send: F,
    ) -> Result<A, CallError>
    where
        Q: Serialize + ?Sized,
        A: DeserializeOwned,
        F: FnOnce(Channel, tonic::Request<Payload>) -> Fut,
        Fut: Future<Output = Result<Response<Payload>, Status>>,
    {
        let json = serde_json::to_vec(req).map_err(CallError::Encode)?;
        let channel = self.channel()?;
        let fut = send(channel, tonic::Request::new(Payload { json }));
        let resp = match tokio::time::timeout(ttl, fut).await {
            Err(_) => return Err(CallError::TimedOut { method, target: self.target, after: ttl }),
            Ok(Err(status)) => {
                // A broken channel is rebuilt on the next call.
                self.channel = None;
                if let Ok(mut m) = self.channels.lock() {
                    m.remove(&(self.target, self.addr.clone()));
                }
                return Err(if status.code() == tonic::Code::Unavailable {
                    CallError::Unreachable(status)
                } else {
                    CallError::Failed(status)
                });
            }
            Ok(Ok(r)) => r.into_inner(),
        };
        serde_json::from_slice(&resp.json).map_err(CallError::BadAnswer)
    }

    async fn raft_call<Q, A, E, F, Fut>(
        &mut self,
        method: &'static str,
        req: &Q,
        ttl: Duration,
        send: F,
    ) -> Result<A, RPCError<u64, BasicNode, E>>
    where
        Q: Serialize,
        A: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
        F: FnOnce(RaftClient<Channel>, tonic::Request<Payload>) -> Fut,
        Fut: Future<Output = Result<Response<Payload>, Status>>,
    {
        let send = |ch, req| {
            send(
                RaftClient::new(ch)
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE),
                req,
            )
        };
        match self.call::<Q, Result<A, E>, _, _>(method, req, ttl, send).await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Err(e @ (CallError::NoCluster | CallError::Unreachable(_))) => {
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            // A slow answer is not an unreachable node: openraft retries at once instead of
            // backing off (its AppendEntries limit is one heartbeat interval, which a follower
            // busy with a disk flush can miss while it is perfectly alive).
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
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
        self.raft_call("append", &rpc, option.hard_ttl(), |mut c, r| async move {
            c.append_entries(r).await
        })
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<Tc>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.raft_call("snapshot", &rpc, option.hard_ttl(), |mut c, r| async move {
            c.install_snapshot(r).await
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.raft_call("vote", &rpc, option.hard_ttl(), |mut c, r| async move { c.vote(r).await })
            .await
    }
}
