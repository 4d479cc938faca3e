//! Member duties of a node in a cluster: its heartbeat through Raft, the leader's verdict on
//! silent members, and detaching the tunnels the replicated state records on this node that
//! do not run here.

use crate::clock::Clock;
use crate::config::ClusterConfig;
use crate::db::SessionStore;
use crate::edge::tunnels::Tunnels;
use gatehouse_core::health::{newly_silent, observe_members, MemberSilence};
use gatehouse_core::{DetachTunnel, Heartbeat, NodeDown, TunnelId};
use std::sync::Arc;
use std::time::Duration;

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
            if let Err(e) = db.propose(Heartbeat { at: now, node: me }).await {
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
