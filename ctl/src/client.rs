//! The admin API client: connect to a node's `admin_listen` and turn failures into messages
//! that say where `gatehousectl` looked and what to check.

use gatehouse_proto::admin as pb;
use gatehouse_proto::admin::admin_client::AdminClient;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Where `gatehousectl` looks by default (the config's default `admin_listen`).
pub const DEFAULT_ADMIN: &str = "127.0.0.1:8444";

/// Environment variable overriding [`DEFAULT_ADMIN`].
pub const ADMIN_ENV: &str = "GATEHOUSE_ADMIN";

/// Bound on connecting to a local node; it is loopback, so a slow answer means trouble.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Bound on one call (a logoff waits for a Raft commit).
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a call to the admin API failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// `--admin` is not an address.
    #[error("--admin {addr:?} is not an address like 127.0.0.1:8444: {detail}")]
    BadAddress {
        /// What was given.
        addr: String,
        /// Why it was refused.
        detail: String,
    },
    /// Nothing answered at the address.
    #[error(
        "cannot reach the admin API at {addr}: {detail}\n\
         Is the gatehouse node running, with admin_listen = \"{addr}\"? \
         (use --admin ADDR or {ADMIN_ENV} for another address)"
    )]
    Connect {
        /// Where we looked.
        addr: String,
        /// The transport's reason.
        detail: String,
    },
    /// The node answered with an error.
    #[error("admin API at {addr}: {message} ({code:?})")]
    Status {
        /// Where we asked.
        addr: String,
        /// gRPC status code.
        code: tonic::Code,
        /// The node's message.
        message: String,
    },
}

impl RpcError {
    /// Whether the fault is in the command line rather than in reaching the node.
    pub fn is_usage(&self) -> bool {
        matches!(self, RpcError::BadAddress { .. })
            || matches!(self, RpcError::Status { code: tonic::Code::InvalidArgument, .. })
    }
}

/// An error and its causes on one line (tonic's transport errors put the useful part in the
/// source chain, e.g. "Connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

/// A request with the default deadline.
fn timed<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(CALL_TIMEOUT);
    r
}

/// A connected admin client.
pub struct Admin {
    addr: String,
    client: AdminClient<Channel>,
}

impl Admin {
    /// Connect to `addr` (`host:port`, or a full `http://` URI).
    pub async fn connect(addr: &str) -> Result<Admin, RpcError> {
        let uri = if addr.contains("://") { addr.to_string() } else { format!("http://{addr}") };
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|e| RpcError::BadAddress { addr: addr.to_string(), detail: chain(&e) })?
            .connect_timeout(CONNECT_TIMEOUT)
            // Per-call deadlines are set on each request (a drill waits longer than a show).
            ;
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| RpcError::Connect { addr: addr.to_string(), detail: chain(&e) })?;
        Ok(Admin { addr: addr.to_string(), client: AdminClient::new(channel) })
    }

    fn status(&self, s: tonic::Status) -> RpcError {
        if s.code() == tonic::Code::Unavailable && s.message().contains("transport") {
            return RpcError::Connect { addr: self.addr.clone(), detail: s.message().to_string() };
        }
        RpcError::Status {
            addr: self.addr.clone(),
            code: s.code(),
            message: s.message().to_string(),
        }
    }

    /// `ShowSessions`.
    pub async fn show_sessions(
        &mut self,
        filter: Option<pb::show_sessions_request::Filter>,
    ) -> Result<pb::ShowSessionsReply, RpcError> {
        match self.client.show_sessions(timed(pb::ShowSessionsRequest { filter })).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.status(s)),
        }
    }

    /// `Logoff`.
    pub async fn logoff(
        &mut self,
        selector: pb::logoff_request::Selector,
    ) -> Result<pb::LogoffReply, RpcError> {
        match self.client.logoff(timed(pb::LogoffRequest { selector: Some(selector) })).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.status(s)),
        }
    }

    /// `ShowCluster`.
    pub async fn show_cluster(&mut self) -> Result<pb::ClusterReply, RpcError> {
        match self.client.show_cluster(timed(pb::ShowClusterRequest {})).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.status(s)),
        }
    }

    /// `AddNode`.
    pub async fn add_node(&mut self, id: u64, addr: String) -> Result<pb::ClusterReply, RpcError> {
        match self.client.add_node(timed(pb::AddNodeRequest { id, addr })).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.status(s)),
        }
    }

    /// `RemoveNode`.
    pub async fn remove_node(&mut self, id: u64) -> Result<pb::ClusterReply, RpcError> {
        match self.client.remove_node(timed(pb::RemoveNodeRequest { id })).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.status(s)),
        }
    }

    /// `ShowFailover`.
    pub async fn show_failover(&mut self) -> Result<pb::FailoverReply, RpcError> {
        match self.client.show_failover(timed(pb::ShowFailoverRequest {})).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.status(s)),
        }
    }

    /// `FailoverSwitch`.
    pub async fn failover_switch(&mut self, slot: u32) -> Result<pb::FailoverReply, RpcError> {
        match self.client.failover_switch(timed(pb::FailoverSwitchRequest { slot })).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.status(s)),
        }
    }

    /// `Drill` (waits up to the drill's own timeout).
    pub async fn drill(
        &mut self,
        slot: u32,
        kill: bool,
        watch: bool,
        timeout_ms: u64,
    ) -> Result<pb::DrillReport, RpcError> {
        let mut req = tonic::Request::new(pb::DrillRequest { slot, kill, timeout_ms, watch });
        req.set_timeout(std::time::Duration::from_millis(timeout_ms.max(30_000) + 10_000));
        match self.client.drill(req).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.status(s)),
        }
    }
}
