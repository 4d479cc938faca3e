//! The node's session-level background work, all driven by the replicated state:
//! - session timers: sleep until the earliest replicated deadline, then propose `Expire`
//!   (the disconnected timer and max connect time end sessions here);
//! - the ended-session journal: tell local tunnels of sessions that ended anywhere;
//! - start-up reconciliation: tunnels recorded on this node died with its last run;
//! - session gauges.

use crate::metrics as m;
use crate::node::Node;
use crate::tunnels::TunnelCtl;
use gatehouse_core::{Command, DetachTunnel, EndReason, TunnelId, TunnelKind};
use std::sync::Arc;
use std::time::Duration;

/// A member's periodic duties:
/// - in a cluster, propose this node's heartbeat; as leader, declare members silent for
///   `node_down_after` down, which detaches their tunnels (their clients resume elsewhere, or
///   the disconnected timer runs);
/// - detach tunnels the replicated state records on this node that do not run here: after a
///   restart none of them exists, and an attach whose client was refused may commit late.
pub async fn run_member_duties(node: Arc<Node>) {
    let me = node.db.node_id();
    let every = node.cfg.cluster.as_ref().map_or(Duration::from_secs(2), |c| c.heartbeat);
    loop {
        let now = node.clock.unix();
        if let Some(c) = &node.cfg.cluster {
            if let Err(e) =
                node.db.propose(Command::Heartbeat(Heartbeat { at: now, node: me })).await
            {
                tracing::debug!("heartbeat not committed: {e}");
            }
            if node.db.is_leader() {
                let grace = c.node_down_after.as_millis() as u64;
                let silent: Vec<u64> = node.db.read(|db| {
                    db.members()
                        .filter(|m| m.id != me && m.down_since.is_none())
                        .filter(|m| now.0 >= m.last_heartbeat.0.saturating_add(grace))
                        .map(|m| m.id)
                        .collect()
                });
                for id in silent {
                    match node
                        .db
                        .propose(Command::NodeDown(NodeDown { at: now, node: id, grace_ms: grace }))
                        .await
                    {
                        Ok(gatehouse_core::Outcome::NodeDown { detached }) => {
                            tracing::warn!(
                                member = id,
                                tunnels = detached.len(),
                                "member declared down"
                            )
                        }
                        Ok(_) => {}
                        Err(e) => tracing::debug!("node-down not committed: {e}"),
                    }
                }
            }
        }
        let stale: Vec<TunnelId> = node.db.read(|db| {
            db.sessions()
                .flat_map(|s| s.tunnels.iter())
                .filter(|t| t.node == me && now.0 >= t.started.0.saturating_add(5_000))
                .map(|t| t.id)
                .collect()
        });
        for id in stale.into_iter().filter(|id| !node.tunnels.contains(*id)) {
            let cmd = Command::Detach(DetachTunnel { at: now, id, counters: Default::default() });
            if let Err(e) = node.db.propose(cmd).await {
                tracing::debug!(tunnel = %id, "could not detach a stale tunnel: {e}");
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Follow the ended-session journal and close local tunnels of ended sessions.
pub async fn follow_endings(node: Arc<Node>) {
    let mut applied = node.db.applied();
    let mut seen = node.db.read(|db| db.end_seq());
    loop {
        let ended: Vec<(u64, EndReason)> =
            node.db.read(|db| db.ended_since(seen).map(|e| (e.index, e.reason)).collect());
        seen = node.db.read(|db| db.end_seq());
        for (index, reason) in ended {
            metrics::counter!(m::SESSIONS_ENDED, "reason" => reason_label(reason)).increment(1);
            tracing::info!(session = index, reason = reason.text(), "session ended");
            node.tunnels.send_session(index, TunnelCtl::SessionEnded(reason));
        }
        if applied.changed().await.is_err() {
            return;
        }
    }
}

fn reason_label(r: EndReason) -> &'static str {
    match r {
        EndReason::UserRequested => "user_requested",
        EndReason::AdminLogoff => "admin_logoff",
        EndReason::DisconnectedTimeout => "disconnected_timeout",
        EndReason::MaxConnectTime => "max_connect_time",
        EndReason::SimultaneousLogins => "simultaneous_logins",
    }
}

/// Propose `Expire` for sessions whose replicated deadline passed. Only the leader proposes
/// (any node computes the same deadlines; one proposal is enough).
pub async fn run_session_timers(node: Arc<Node>) {
    let mut applied = node.db.applied();
    loop {
        let now = node.clock.unix();
        let next = node.db.read(|db| db.next_deadline());
        if node.db.is_leader() {
            let due = node.db.read(|db| db.expired(now));
            for (index, _) in due {
                if let Err(e) = node.db.propose(Command::Expire(Expire { at: now, index })).await {
                    tracing::warn!(session = index, "expiry not committed: {e}");
                }
            }
        }
        let wait = match next {
            Some((t, _)) if t > now => t.since(now),
            // Due now but not leader (or a failed proposal): retry shortly.
            Some(_) => Duration::from_millis(200),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            r = applied.changed() => if r.is_err() { return },
        }
    }
}

/// Refresh the session and tunnel gauges after changes, at most ten times a second, and at
/// least once a second.
pub async fn run_gauges(node: Arc<Node>) {
    let mut applied = node.db.applied();
    loop {
        let (active, inactive) = node.db.read(|db| {
            let a = db.sessions().filter(|s| s.inactive_since.is_none()).count();
            (a, db.len() - a)
        });
        metrics::gauge!(m::SESSIONS_ACTIVE).set(active as f64);
        metrics::gauge!(m::SESSIONS_INACTIVE).set(inactive as f64);
        metrics::gauge!(m::ADDRESS_LEASES).set(node.db.read(|db| db.lease_count()) as f64);
        metrics::gauge!(m::TUNNELS, "kind" => "ssl")
            .set(node.tunnels.count(TunnelKind::Ssl) as f64);
        tokio::time::sleep(Duration::from_millis(100)).await;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            r = applied.changed() => if r.is_err() { return },
        }
    }
}
