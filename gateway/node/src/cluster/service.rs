//! The cluster port: the four cluster services on one tonic server with mutual TLS, and the
//! JSON payload codec they share (proto/proto/cluster.proto).

use super::pb::Payload;
use super::{drill_service, forward_service, raft_service, watch_service, ClusterTls};
use crate::db::SessionStore;
use serde::Serialize;
use std::net::SocketAddr;
use tonic::{Response, Status};

/// The node, once built (the cluster service starts before it, so Raft can elect).
pub type NodeCell = std::sync::Arc<std::sync::OnceLock<std::sync::Arc<crate::node::Node>>>;

/// Largest message on the cluster port either way (a snapshot travels in one message).
pub(crate) const MAX_MESSAGE: usize = 256 << 20;

/// A request's JSON payload.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(p: &Payload) -> Result<T, Status> {
    serde_json::from_slice(&p.json)
        .map_err(|e| Status::invalid_argument(format!("undecodable payload: {e}")))
}

/// An answer as a JSON payload.
pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Response<Payload>, Status> {
    serde_json::to_vec(v)
        .map(|json| Response::new(Payload { json }))
        .map_err(|e| Status::internal(e.to_string()))
}

/// The node the services that need one (watch, drill) answer for, or `UNAVAILABLE` while it
/// is still being built.
pub(crate) fn node_of(cell: &NodeCell) -> Result<std::sync::Arc<crate::node::Node>, Status> {
    cell.get().cloned().ok_or_else(|| Status::unavailable("node still starting"))
}

/// Serve the cluster port with mutual TLS until `stop` resolves.
pub async fn serve(
    store: &SessionStore,
    addr: SocketAddr,
    tls: &ClusterTls,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    node: NodeCell,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let raft = store.raft().clone();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding the cluster port {addr}: {e}"))?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = tonic::transport::Server::builder()
        .tls_config(tls.server())
        .map_err(|e| anyhow::anyhow!("cluster TLS: {e}"))?
        .add_service(raft_service::server(raft.clone()))
        .add_service(forward_service::server(raft))
        .add_service(watch_service::server(node.clone()))
        .add_service(drill_service::server(node));
    Ok(tokio::spawn(async move {
        if let Err(e) = server.serve_with_incoming_shutdown(incoming, stop).await {
            tracing::error!("cluster service stopped: {e}");
        }
    }))
}
