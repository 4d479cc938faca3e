//! The `Drill` service: a failover drill move (crash, or graceful switch) carried out by the
//! slot's owner for the node coordinating the drill (`slots::drill`). The client side is
//! [`request_move`], straight over the cluster network.

use super::network::{CallError, GrpcNetwork};
use super::pb::drill_client::DrillClient;
use super::pb::drill_server::{Drill, DrillServer};
use super::pb::Payload;
use super::service::{decode, encode, node_of, NodeCell};
use crate::slots::drill::{DrillMove, DrillMoveReply};
use std::time::Duration;
use tonic::{Request, Response, Status};

/// Bound on the owner's answer (a switchover commits a few log entries first).
const DRILL_TTL: Duration = Duration::from_secs(10);

/// Carries out drill moves on this node.
pub struct DrillService {
    node: NodeCell,
}

/// The service, ready to register on the cluster server.
pub fn server(node: NodeCell) -> DrillServer<DrillService> {
    DrillServer::new(DrillService { node })
}

#[tonic::async_trait]
impl Drill for DrillService {
    async fn drill_move(&self, r: Request<Payload>) -> Result<Response<Payload>, Status> {
        let m: DrillMove = decode(r.get_ref())?;
        let node = node_of(&self.node)?;
        encode(&crate::slots::drill::execute(node, m).await)
    }
}

/// Ask node `owner` (at its cluster address `addr`) to carry out a failover drill move.
pub async fn request_move(
    network: &GrpcNetwork,
    owner: u64,
    addr: &str,
    m: &DrillMove,
) -> Result<DrillMoveReply, CallError> {
    network
        .peer(owner, addr)
        .call(
            "drill",
            m,
            DRILL_TTL,
            |ch, req| async move { DrillClient::new(ch).drill_move(req).await },
        )
        .await
}
