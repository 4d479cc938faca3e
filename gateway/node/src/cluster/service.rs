//! The cluster service: answers peers' Raft RPCs and commits writes forwarded by followers.

use super::pb::cluster_server::{Cluster, ClusterServer};
use super::pb::Payload;
use super::{ClusterTls, ForwardReply};
use crate::db::{SessionStore, Tc};
use gatehouse_core::Command;
use gatehouse_raft::Request;
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::Serialize;
use std::net::SocketAddr;
use tonic::{Response, Status};

/// The node, once built (the cluster service starts before it, so Raft can elect).
pub type NodeCell = std::sync::Arc<std::sync::OnceLock<std::sync::Arc<crate::node::Node>>>;

struct Service {
    raft: openraft::Raft<Tc>,
    node: NodeCell,
}

fn decode<T: serde::de::DeserializeOwned>(p: &Payload) -> Result<T, Status> {
    serde_json::from_slice(&p.json)
        .map_err(|e| Status::invalid_argument(format!("undecodable payload: {e}")))
}

fn encode<T: Serialize>(v: &T) -> Result<Response<Payload>, Status> {
    serde_json::to_vec(v)
        .map(|json| Response::new(Payload { json }))
        .map_err(|e| Status::internal(e.to_string()))
}

type SlotStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<Payload, Status>> + Send>>;

#[tonic::async_trait]
impl Cluster for Service {
    type WatchSlotsStream = SlotStream;

    async fn watch_slots(
        &self,
        _r: tonic::Request<Payload>,
    ) -> Result<Response<SlotStream>, Status> {
        let node =
            self.node.get().cloned().ok_or_else(|| Status::unavailable("node still starting"))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Payload, Status>>(4);
        tokio::spawn(async move {
            let mut applied = node.db.applied();
            let mut last: Option<super::SlotTableView> = None;
            let mut due = true;
            loop {
                let view = super::slot_table_view(&node);
                // Send on change, and at least every 2 s (leases lapse without a log entry,
                // and a director takes silence for a dead stream).
                if due || last.as_ref() != Some(&view) {
                    due = false;
                    let Ok(json) = serde_json::to_vec(&view) else { return };
                    if tx.send(Ok(Payload { json })).await.is_err() {
                        return;
                    }
                    last = Some(view);
                }
                tokio::select! {
                    r = applied.changed() => if r.is_err() { return },
                    _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => due = true,
                    _ = tx.closed() => return,
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn append_entries(
        &self,
        r: tonic::Request<Payload>,
    ) -> Result<Response<Payload>, Status> {
        let req: AppendEntriesRequest<Tc> = decode(r.get_ref())?;
        encode(&self.raft.append_entries(req).await)
    }

    async fn vote(&self, r: tonic::Request<Payload>) -> Result<Response<Payload>, Status> {
        let req: VoteRequest<u64> = decode(r.get_ref())?;
        encode(&self.raft.vote(req).await)
    }

    async fn install_snapshot(
        &self,
        r: tonic::Request<Payload>,
    ) -> Result<Response<Payload>, Status> {
        let req: InstallSnapshotRequest<Tc> = decode(r.get_ref())?;
        encode(&self.raft.install_snapshot(req).await)
    }

    async fn forward(&self, r: tonic::Request<Payload>) -> Result<Response<Payload>, Status> {
        let cmds: Vec<Command> = decode(r.get_ref())?;
        if cmds.is_empty() {
            return Err(Status::invalid_argument("an empty batch"));
        }
        let reply = match self.raft.client_write(Request(cmds)).await {
            Ok(resp) => {
                ForwardReply::Committed { outcomes: resp.data, log_index: resp.log_id.index }
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                ForwardReply::NotLeader { leader: f.leader_id }
            }
            Err(e) => ForwardReply::Failed(e.to_string()),
        };
        encode(&reply)
    }

    async fn drill_move(&self, r: tonic::Request<Payload>) -> Result<Response<Payload>, Status> {
        let m: crate::slots::drill::DrillMove = decode(r.get_ref())?;
        let node =
            self.node.get().cloned().ok_or_else(|| Status::unavailable("node still starting"))?;
        encode(&crate::slots::drill::execute(node, m).await)
    }
}

/// Serve the cluster port with mutual TLS until `stop` resolves.
pub async fn serve(
    store: &SessionStore,
    addr: SocketAddr,
    tls: &ClusterTls,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    node: NodeCell,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let svc = ClusterServer::new(Service { raft: store.raft().clone(), node })
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding the cluster port {addr}: {e}"))?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = tonic::transport::Server::builder()
        .tls_config(tls.server())
        .map_err(|e| anyhow::anyhow!("cluster TLS: {e}"))?
        .add_service(svc);
    Ok(tokio::spawn(async move {
        if let Err(e) = server.serve_with_incoming_shutdown(incoming, stop).await {
            tracing::error!("cluster service stopped: {e}");
        }
    }))
}
