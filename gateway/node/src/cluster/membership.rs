//! Member duties of a node in a cluster: its heartbeat through Raft, the leader's verdict on
//! silent members, detaching the tunnels the replicated state records on this node that do
//! not run here, and a stopping member's turn to leave ([`leave_in_turn`]).

use crate::clock::Clock;
use crate::config::ClusterConfig;
use crate::db::{ProposeError, SessionStore};
use crate::edge::tunnels::Tunnels;
use gatehouse_core::health::{newly_silent, observe_members, MemberSilence};
use gatehouse_core::{Depart, DetachTunnel, Heartbeat, NodeDown, RaftStops, TunnelId};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A tunnel record younger than this may belong to a tunnel whose task is still starting.
const STALE_AFTER_MS: u64 = 5_000;

/// A member's periodic duties:
/// - in a cluster, propose this node's heartbeat; as leader, declare members silent for
///   `node_down_after` down, which detaches their tunnels (their clients resume elsewhere, or
///   the disconnected timer runs);
/// - detach tunnels the replicated state records on this node that do not run here: after a
///   restart none of them exists, an attach whose client was refused may commit late, and a
///   detach may have failed to commit. Only this node's own records are read (an index kept
///   by `apply`), never the whole session table.
pub async fn run_member_duties(
    db: SessionStore,
    tunnels: Arc<Tunnels>,
    clock: Clock,
    cluster: Option<ClusterConfig>,
    leaving: watch::Receiver<bool>,
) {
    let me = db.node_id();
    let every = cluster.as_ref().map_or(Duration::from_secs(2), |c| c.heartbeat);
    // Liveness is judged on this node's monotonic clock (gatehouse_core::health): a member is
    // silent while its committed heartbeat count does not move here. Leadership restarts it.
    let mut silence = MemberSilence::default();
    let mut was_leader = false;
    loop {
        let now = db.now();
        if let Some(c) = &cluster {
            let leaving = *leaving.borrow();
            if let Err(e) = db.propose(Heartbeat { at: now, node: me, leaving }).await {
                tracing::debug!("heartbeat not committed: {e}");
            }
            let leader = db.is_leader();
            if leader && !was_leader {
                silence = MemberSilence::default();
            }
            was_leader = leader;
            if leader {
                let mono = clock.mono();
                let silent = db.read(|db| {
                    observe_members(&mut silence, db.members(), mono);
                    newly_silent(db.members(), me, &silence, mono, c.node_down_after)
                });
                for (id, seen_heartbeats) in silent {
                    let now = db.now();
                    match db.propose(NodeDown { at: now, node: id, seen_heartbeats }).await {
                        Ok(detached) => {
                            tracing::warn!(
                                member = id,
                                tunnels = detached.len(),
                                "member declared down"
                            )
                        }
                        Err(e) => tracing::debug!("node-down not committed: {e}"),
                    }
                }
            }
        }
        let stale: Vec<TunnelId> = db.read(|db| {
            db.tunnels_on(me)
                .filter(|id| !tunnels.contains(*id))
                .filter(|id| {
                    db.get(id.index)
                        .and_then(|s| s.tunnels.iter().find(|t| t.id == *id))
                        .is_some_and(|t| now.0 >= t.started.0.saturating_add(STALE_AFTER_MS))
                })
                .collect()
        });
        for id in stale {
            let cmd = DetachTunnel { at: now, id, counters: Default::default() };
            if let Err(e) = db.propose(cmd).await {
                tracing::debug!(tunnel = %id, "could not detach a stale tunnel: {e}");
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// A stopping member's turn to leave the cluster (`gatehouse_core::leaving`): its heartbeats
/// say it is leaving (no vacant slot goes to it while another member can take it), then it
/// asks for its turn until `apply` grants it — at once unless another member left and is not
/// back — or `wait` passes. Returns whether it got its turn. The caller then hands its slots
/// over and stops.
pub async fn leave_in_turn(
    db: &SessionStore,
    leaving: &watch::Sender<bool>,
    wait: Duration,
) -> bool {
    let me = db.node_id();
    leaving.send_replace(true);
    if wait.is_zero() {
        return false;
    }
    let turn = async {
        while let Err(e) = db.propose(Heartbeat { at: db.now(), node: me, leaving: true }).await {
            tracing::debug!("leaving heartbeat not committed: {e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut applied = db.applied();
        let mut told: Option<u64> = None;
        loop {
            let away = db.read(|db| db.members().find(|m| m.departed && m.id != me).map(|m| m.id));
            match away {
                Some(away) => {
                    if told != Some(away) {
                        tracing::info!(
                            member = away,
                            "waiting for member {away}, which left, to come back before leaving"
                        );
                        told = Some(away);
                    }
                }
                None => match db.propose(Depart { at: db.now(), node: me }).await {
                    Ok(()) => return,
                    Err(ProposeError::Refused(r)) => tracing::debug!("no turn to leave yet: {r}"),
                    Err(e) => {
                        tracing::debug!("turn to leave not committed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
            // Look again when the applied state moves (a heartbeat of the member that left),
            // and at least every 200 ms.
            let _ = tokio::time::timeout(Duration::from_millis(200), applied.changed()).await;
        }
    };
    match tokio::time::timeout(wait, turn).await {
        Ok(()) => {
            tracing::info!("my turn to leave the cluster");
            true
        }
        Err(_) => {
            tracing::warn!(
                "no turn to leave within cluster.leave_wait ({wait:?}): another member left and \
                 is not back; leaving anyway"
            );
            false
        }
    }
}

/// A leaving member that leads Raft stops Raft last (`gatehouse_core::leaving`): it records
/// that it does ([`RaftStops`]) and makes sure the followers heard it committed (a Raft
/// heartbeat carries the commit index), so that the member chosen to follow it calls the
/// election at once ([`call_elections`]). Does nothing on a follower.
pub async fn stop_leading(db: &SessionStore, cluster: &ClusterConfig) {
    if !db.is_leader() {
        return;
    }
    let me = db.node_id();
    // The follower furthest along: it can win the election (a shorter log gets no vote).
    let successor = {
        let m = db.raft().metrics().borrow().clone();
        let away: Vec<u64> =
            db.read(|db| db.members().filter(|m| m.departed).map(|m| m.id).collect());
        m.replication.as_ref().and_then(|r| {
            r.iter()
                .filter(|(id, _)| **id != me && !away.contains(id))
                .max_by_key(|(id, l)| (l.map(|l| l.index), std::cmp::Reverse(**id)))
                .map(|(id, _)| *id)
        })
    };
    match db.propose(RaftStops { at: db.now(), node: me, successor }).await {
        Ok(()) => {
            let _ = db.raft().trigger().heartbeat().await;
            tokio::time::sleep(cluster.raft_heartbeat).await;
            tracing::info!(
                ?successor,
                "leaving as Raft leader: the next member calls the election"
            );
        }
        Err(e) => tracing::debug!("could not record that Raft stops here: {e}"),
    }
}

/// When the Raft leader leaves ([`stop_leading`]), the members
/// `gatehouse_core::leaving::electors` names call the election in turn: the first as soon as
/// the other followers will vote (openraft's leader lease, `election_timeout_max`, after the
/// leader's last heartbeat, which comes at most two Raft heartbeats after the commit), each
/// next one 100 ms later, again and again until a leader is elected. No follower waits for an
/// election timeout while the other slots' owners cannot renew.
pub async fn call_elections(db: SessionStore, cluster: ClusterConfig) {
    let me = db.node_id();
    let lease = cluster.election_timeout.1;
    let mut applied = db.applied();
    let mut called_for: Option<(u64, u64)> = None;
    while applied.changed().await.is_ok() {
        // Every commit wakes this loop: look no further unless a leader said it stops Raft.
        if !db.read(|db| db.members().any(|m| m.raft_stopping)) {
            continue;
        }
        let (leader, term) = {
            let m = db.raft().metrics();
            let m = m.borrow();
            (m.current_leader, m.current_term)
        };
        let Some(leader) = leader.filter(|l| *l != me) else { continue };
        if called_for == Some((leader, term)) {
            continue;
        }
        let members: Vec<gatehouse_core::Member> = db.read(|db| db.members().cloned().collect());
        let order = gatehouse_core::leaving::electors(&members, leader);
        let Some(rank) = order.iter().position(|n| *n == me) else { continue };
        called_for = Some((leader, term));
        let stagger = Duration::from_millis(100) * rank as u32;
        tokio::time::sleep(
            lease + cluster.raft_heartbeat * 2 + Duration::from_millis(20) + stagger,
        )
        .await;
        for _ in 0..10 {
            let now = db.raft().metrics().borrow().current_leader;
            if now.is_some_and(|l| l != leader) {
                break;
            }
            tracing::info!(leader, "the Raft leader left: calling the election");
            if let Err(e) = db.raft().trigger().elect().await {
                tracing::warn!("could not call the election: {e}");
                break;
            }
            tokio::time::sleep(lease + stagger).await;
        }
    }
}
