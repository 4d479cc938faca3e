//! The cluster part of the admin API: `show cluster`, `cluster add-node`, `cluster remove-node`.

use crate::db::SessionStore;
use gatehouse_proto::admin as pb;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ServerState};
use std::collections::BTreeSet;
use std::time::Duration;
use tonic::Status;

/// How long a membership change waits for a leader when leadership moves under it (a node
/// removed and added back may carry a higher term and make the leader step down once).
const LEADER_WAIT: Duration = Duration::from_secs(10);

/// The Raft view from this node.
pub fn show(db: &SessionStore) -> pb::ClusterReply {
    let m = db.raft().metrics().borrow().clone();
    let last = m.last_log_index.unwrap_or(0);
    let applied = m.last_applied.map_or(0, |l| l.index);
    let matched: std::collections::BTreeMap<u64, u64> = m
        .replication
        .as_ref()
        .map(|r| r.iter().map(|(id, l)| (*id, l.map_or(0, |l| l.index))).collect())
        .unwrap_or_default();
    let membership = m.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let heartbeats: std::collections::BTreeMap<u64, gatehouse_core::Member> =
        db.read(|db| db.members().map(|mm| (mm.id, mm.clone())).collect());
    let members = membership
        .nodes()
        .map(|(id, n): (&u64, &BasicNode)| {
            let hb = heartbeats.get(id);
            pb::ClusterMember {
                id: *id,
                addr: n.addr.clone(),
                voter: voters.contains(id),
                matched_index: matched.get(id).copied(),
                lag: matched.get(id).map(|x| last.saturating_sub(*x)),
                last_heartbeat_unix_ms: hb.map(|h| h.last_heartbeat.0),
                down: hb.is_some_and(|h| h.down_since.is_some()),
                leaving: hb.is_some_and(|h| h.leaving),
                departed: hb.is_some_and(|h| h.departed),
            }
        })
        .collect();
    // Commit index on the leader: the highest index a majority of voters has.
    let commit = if m.state == ServerState::Leader && !voters.is_empty() {
        let mut v: Vec<u64> =
            voters.iter().map(|id| matched.get(id).copied().unwrap_or(0)).collect();
        v.sort_unstable();
        v[(v.len() - 1) / 2]
    } else {
        applied
    };
    pb::ClusterReply {
        node_id: m.id,
        state: format!("{:?}", m.state),
        term: m.current_term,
        leader: m.current_leader,
        last_log_index: last,
        applied_index: applied,
        commit_index: commit,
        members,
        snapshot_index: m.snapshot.map_or(0, |s| s.index),
    }
}

fn not_leader(db: &SessionStore) -> Status {
    let m = db.raft().metrics().borrow().clone();
    let leader = m.current_leader.and_then(|l| {
        m.membership_config.membership().get_node(&l).map(|n| format!("node {l} ({})", n.addr))
    });
    Status::failed_precondition(format!(
        "membership changes run on the leader; this is node {}, the leader is {}",
        m.id,
        leader.unwrap_or_else(|| "unknown".into())
    ))
}

type WriteError = RaftError<u64, ClientWriteError<u64, BasicNode>>;

/// Run a membership change on this node while it is the leader. When leadership moves during
/// the change, wait (bounded) for the new leader: if it is this node, run the change again
/// (each step is idempotent); if it is another node, say which.
async fn on_leader<T, F, Fut>(db: &SessionStore, what: &str, op: F) -> Result<T, Status>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, WriteError>>,
{
    // Each retry follows a leader change; a handful is plenty.
    let mut retries = 5;
    loop {
        if !db.is_leader() {
            return Err(not_leader(db));
        }
        match op().await {
            Ok(v) => return Ok(v),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) if retries > 0 => {
                retries -= 1;
                tracing::info!("{what}: leadership moved; waiting for a leader");
                wait_for_leader(db).await;
            }
            Err(e) => return Err(Status::unavailable(format!("{what}: {e}"))),
        }
    }
}

/// Wait until some node is leader again, at most [`LEADER_WAIT`].
async fn wait_for_leader(db: &SessionStore) {
    let mut m = db.raft().metrics();
    let known = |m: &openraft::RaftMetrics<u64, BasicNode>| m.current_leader.is_some();
    let _ = tokio::time::timeout(LEADER_WAIT, async {
        while !known(&m.borrow()) {
            if m.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
}

/// Add node `id` at `addr`: learner first (it catches up by log or snapshot), then voter.
pub async fn add_node(db: &SessionStore, id: u64, addr: &str) -> Result<pb::ClusterReply, Status> {
    if !db.is_leader() {
        return Err(not_leader(db));
    }
    if addr.parse::<std::net::SocketAddr>().is_err() {
        return Err(Status::invalid_argument(format!("{addr:?} is not a host:port address")));
    }
    let raft = db.raft();
    let what = format!("adding node {id} as learner");
    on_leader(db, &what, || raft.add_learner(id, BasicNode { addr: addr.to_string() }, true))
        .await?;
    let what = format!("making node {id} a voter");
    on_leader(db, &what, || {
        let mut voters: BTreeSet<u64> =
            raft.metrics().borrow().membership_config.membership().voter_ids().collect();
        voters.insert(id);
        raft.change_membership(voters, false)
    })
    .await?;
    tracing::info!(member = id, %addr, "node added to the cluster");
    Ok(show(db))
}

/// Remove node `id` from the voters.
pub async fn remove_node(db: &SessionStore, id: u64) -> Result<pb::ClusterReply, Status> {
    if !db.is_leader() {
        return Err(not_leader(db));
    }
    let raft = db.raft();
    let mut voters: BTreeSet<u64> =
        raft.metrics().borrow().membership_config.membership().voter_ids().collect();
    if !voters.remove(&id) {
        return Err(Status::not_found(format!("node {id} is not a voter")));
    }
    if voters.is_empty() {
        return Err(Status::invalid_argument("cannot remove the last voter"));
    }
    let what = format!("removing node {id}");
    on_leader(db, &what, || raft.change_membership(voters.clone(), false)).await?;
    tracing::info!(member = id, "node removed from the cluster");
    Ok(show(db))
}
