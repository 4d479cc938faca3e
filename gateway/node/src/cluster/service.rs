//! The cluster port: the four cluster services on one tonic server with mutual TLS, and the
//! JSON payload codec they share (proto/proto/cluster.proto).

use super::{drill_service, forward_service, raft_service, watch_service, ClusterTls};
use crate::db::SessionStore;
use std::net::SocketAddr;

/// Serve the cluster port with mutual TLS until `stop` resolves.
pub async fn serve(
    store: &SessionStore,
    addr: SocketAddr,
    tls: &ClusterTls,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    slots: watch_service::SlotSource,
    drills: drill_service::DrillCell,
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
        .add_service(watch_service::server(slots))
        .add_service(drill_service::server(drills));
    Ok(tokio::spawn(async move {
        if let Err(e) = server.serve_with_incoming_shutdown(incoming, stop).await {
            tracing::error!("cluster service stopped: {e}");
        }
    }))
}
