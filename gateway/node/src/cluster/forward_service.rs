//! The `ForwardedWrites` service: a follower's batch of session-db commands, committed by the
//! leader as one log entry. Only nodes may forward (`role`). The client side is [`Peer::forward`], used by `db`.

use super::network::{CallError, Peer};
use super::payload::{decode, encode, MAX_MESSAGE};
use super::pb::forwarded_writes_client::ForwardedWritesClient;
use super::pb::forwarded_writes_server::{ForwardedWrites, ForwardedWritesServer};
use super::pb::Payload;
use super::role::{check, Allowed};
use crate::db::state::Tc;
use gatehouse_core::{Command, Outcome};
use gatehouse_raft::Request;
use openraft::error::{ClientWriteError, RaftError};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tonic::{Response, Status};

/// Bound on one forwarded write, answer included.
const FORWARD_TTL: Duration = Duration::from_secs(5);

/// The answer to a forwarded write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardReply {
    /// Committed and applied on the leader at `log_index`.
    Committed {
        /// The outcome of `apply`, one per forwarded command.
        outcomes: Vec<Outcome>,
        /// Where it is in the log: the forwarding node waits to have applied it too.
        log_index: u64,
    },
    /// The receiver is not the leader (any more).
    NotLeader {
        /// The leader it knows of.
        leader: Option<u64>,
    },
    /// Raft failed to commit it.
    Failed(String),
}

/// Commits forwarded batches with this node's Raft (when it is the leader).
pub struct ForwardService {
    raft: openraft::Raft<Tc>,
}

/// The service, ready to register on the cluster server.
pub fn server(raft: openraft::Raft<Tc>) -> ForwardedWritesServer<ForwardService> {
    ForwardedWritesServer::new(ForwardService { raft })
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

#[tonic::async_trait]
impl ForwardedWrites for ForwardService {
    async fn forward(&self, r: tonic::Request<Payload>) -> Result<Response<Payload>, Status> {
        check(&r, Allowed::nodes("forward"))?;
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
}

impl Peer {
    /// Forward a batch of session-db commands to this peer (the leader): one log entry.
    pub async fn forward(&mut self, cmds: &[Command]) -> Result<ForwardReply, CallError> {
        self.call("forward", &cmds, FORWARD_TTL, |ch, req| async move {
            ForwardedWritesClient::new(ch)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE)
                .forward(req)
                .await
        })
        .await
    }
}
