//! The `Raft` service: peers' AppendEntries, Vote and InstallSnapshot, handed to openraft —
//! each only from the node it names as its sender (`role`).
//! The client side is openraft's network in `network`.

use super::payload::{decode, encode, MAX_MESSAGE};
use super::pb::raft_server::{Raft, RaftServer};
use super::pb::Payload;
use super::role::check_raft_sender;
use crate::db::state::Tc;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use tonic::{Request, Response, Status};

/// Answers a peer's Raft RPCs with this node's Raft.
pub struct RaftService {
    raft: openraft::Raft<Tc>,
}

/// The service, ready to register on the cluster server.
pub fn server(raft: openraft::Raft<Tc>) -> RaftServer<RaftService> {
    RaftServer::new(RaftService { raft })
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

#[tonic::async_trait]
impl Raft for RaftService {
    async fn append_entries(&self, r: Request<Payload>) -> Result<Response<Payload>, Status> {
        let req: AppendEntriesRequest<Tc> = decode(r.get_ref())?;
        check_raft_sender(&r, "append_entries", req.vote.leader_id.node_id)?;
        encode(&self.raft.append_entries(req).await)
    }

    async fn vote(&self, r: Request<Payload>) -> Result<Response<Payload>, Status> {
        let req: VoteRequest<u64> = decode(r.get_ref())?;
        check_raft_sender(&r, "vote", req.vote.leader_id.node_id)?;
        encode(&self.raft.vote(req).await)
    }

    async fn install_snapshot(&self, r: Request<Payload>) -> Result<Response<Payload>, Status> {
        let req: InstallSnapshotRequest<Tc> = decode(r.get_ref())?;
        check_raft_sender(&r, "install_snapshot", req.vote.leader_id.node_id)?;
        encode(&self.raft.install_snapshot(req).await)
    }
}
