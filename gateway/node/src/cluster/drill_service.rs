//! The `Drill` service: a failover drill move (crash, or graceful switch) carried out by the
//! slot's owner for the node coordinating the drill (`slots::drill`); only a node may ask. The client side is
//! [`request_move`], straight over the cluster network.

use super::network::{CallError, GrpcNetwork};
use super::payload::{decode, encode};
use super::pb::drill_client::DrillClient;
use super::pb::drill_server::{Drill, DrillServer};
use super::pb::Payload;
use super::role::{check, Allowed, AUDIT};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tonic::{Request, Response, Status};

/// Bound on the owner's answer (a switchover commits a few log entries first).
const DRILL_TTL: Duration = Duration::from_secs(10);

/// What the owner is asked to do.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DrillMove {
    /// Slot.
    pub slot: u32,
    /// Crash (true) or graceful switch (false).
    pub crash: bool,
}

/// The owner's answer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DrillMoveReply {
    /// Error text, if refused.
    pub error: Option<String>,
}

/// What carries out a drill move on this node (the slot manager's drills).
#[tonic::async_trait]
pub trait DrillExecutor: Send + Sync + 'static {
    /// Crash or switch over as `m` says, if this node owns the slot.
    async fn execute(&self, m: DrillMove) -> DrillMoveReply;
}

/// The executor, once the node is built (the cluster service starts before it, so Raft can
/// elect); until then drill moves are answered `UNAVAILABLE`.
pub type DrillCell = Arc<OnceLock<Arc<dyn DrillExecutor>>>;

/// Carries out drill moves on this node.
pub struct DrillService {
    drills: DrillCell,
}

/// The service, ready to register on the cluster server.
pub fn server(drills: DrillCell) -> DrillServer<DrillService> {
    DrillServer::new(DrillService { drills })
}

#[tonic::async_trait]
impl Drill for DrillService {
    async fn drill_move(&self, r: Request<Payload>) -> Result<Response<Payload>, Status> {
        let who = check(&r, Allowed::nodes("drill_move"))?;
        let m: DrillMove = decode(r.get_ref())?;
        tracing::info!(target: AUDIT, %who, slot = m.slot, crash = m.crash, "drill move");
        let drills =
            self.drills.get().cloned().ok_or_else(|| Status::unavailable("node still starting"))?;
        encode(&drills.execute(m).await)
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
