//! Failover drills (`gatehousectl drill --slot N --kill|--switch|--watch`), coordinated by any
//! node: it asks the slot's owner to crash or to switch over (cluster RPC) — or, with
//! `--watch`, lets the operator inject the fault (docker kill, SIGSTOP, a partition) — then
//! watches the
//! replicated state until the slot's sessions are back on the new owner, and reports sessions
//! lost, resumes, re-logins and per-session blackout.
//!
//! Blackout is measured from the replicated records, as the gateway sees it: from the start
//! of the move to the commit of each session's new tunnel on the new owner (the client's first
//! packet follows within one round trip).

use super::SlotCtx;
use crate::cluster::drill_service::{DrillExecutor, DrillMove, DrillMoveReply};
use gatehouse_core::UnixMillis;
use gatehouse_proto::admin as pb;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tonic::Status;

/// Carries out drill moves for the cluster's `Drill` service on this node (the owner).
pub struct NodeDrills(pub SlotCtx);

#[tonic::async_trait]
impl DrillExecutor for NodeDrills {
    async fn execute(&self, m: DrillMove) -> DrillMoveReply {
        execute(self.0.clone(), m).await
    }
}

/// Carry out a drill move on this node (the owner).
async fn execute(node: SlotCtx, m: DrillMove) -> DrillMoveReply {
    if m.crash {
        let owner = node.db.read(|db| db.slots().get(m.slot).and_then(|s| s.owner));
        if owner != Some(node.db.node_id()) {
            return DrillMoveReply {
                error: Some(format!("slot {} is not owned by this node", m.slot)),
            };
        }
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            super::admin::crash(&node);
        });
        DrillMoveReply { error: None }
    } else {
        DrillMoveReply { error: super::switch(&node, m.slot).await.err().map(|e| e.to_string()) }
    }
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Run a drill from this node.
pub async fn run(node: &SlotCtx, req: pb::DrillRequest) -> Result<pb::DrillReport, Status> {
    let slot = req.slot;
    let timeout = Duration::from_millis(if req.timeout_ms == 0 { 30_000 } else { req.timeout_ms });
    let (owner, epoch0) = node
        .db
        .read(|db| db.slots().get(slot).map(|s| (s.owner, s.epoch)))
        .ok_or_else(|| Status::not_found(format!("slot {slot} is not defined")))?;
    let owner = owner
        .ok_or_else(|| Status::failed_precondition(format!("slot {slot} has no owner now")))?;
    if (req.kill || req.watch) && owner == node.db.node_id() {
        return Err(Status::failed_precondition(format!(
            "this node owns slot {slot}: run a kill or watch drill from another node, which survives to report"
        )));
    }
    // Before: sessions on the slot, which had an ssl tunnel, their resume counts.
    let before: BTreeMap<u64, (bool, u32, String)> = node.db.read(|db| {
        db.sessions()
            .filter(|s| s.slot == Some(slot))
            .map(|s| (s.index, (s.has_ssl(), s.resumes, s.user.clone())))
            .collect()
    });
    let max_index = node.db.read(|db| db.sessions().map(|s| s.index).max().unwrap_or(0));
    let t0 = node.db.now();
    let m = DrillMove { slot, crash: req.kill };
    let reply = if req.watch {
        // The operator injects the fault; nothing to ask of the owner.
        DrillMoveReply { error: None }
    } else if owner == node.db.node_id() {
        // Graceful switch run on the owner itself (`kill` was refused above).
        DrillMoveReply { error: super::switch(node, slot).await.err().map(|e| e.to_string()) }
    } else {
        let addr = node
            .db
            .raft()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&owner)
            .map(|n| n.addr.clone())
            .ok_or_else(|| {
                Status::failed_precondition(format!("owner node {owner} has no address"))
            })?;
        crate::cluster::drill_service::request_move(node.db.network(), owner, &addr, &m)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?
    };
    if let Some(e) = reply.error {
        return Err(Status::failed_precondition(e));
    }
    let active: BTreeSet<u64> = before.iter().filter(|(_, v)| v.0).map(|(i, _)| *i).collect();
    let mut takeover: Option<(UnixMillis, u64, u64)> = None;
    let mut applied = node.db.applied();
    let deadline = tokio::time::Instant::from_std(node.clock.instant_now() + timeout);
    loop {
        let (slot_now, back) = node.db.read(|db| {
            let sl = db.slots().get(slot).map(|s| (s.owner, s.epoch));
            let back = active
                .iter()
                .filter(|i| {
                    db.get(**i).is_some_and(|s| {
                        s.tunnels
                            .iter()
                            .any(|t| t.started > t0 && Some(t.node) == sl.and_then(|x| x.0))
                    })
                })
                .count();
            (sl, back)
        });
        if takeover.is_none() {
            if let Some((Some(to), e)) = slot_now.filter(|(o, e)| *e > epoch0 && o.is_some()) {
                takeover = Some((node.db.now(), to, e));
            }
        }
        if takeover.is_some() && back == active.len() {
            break;
        }
        tokio::select! {
            _ = applied.changed() => {}
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    // After.
    let (to, epoch1) = node
        .db
        .read(|db| db.slots().get(slot).map(|s| (s.owner, s.epoch)))
        .unwrap_or((None, epoch0));
    let report = node.db.read(|db| {
        let mut blackouts: Vec<u64> = Vec::new();
        let mut lost = 0u32;
        let mut back = 0u32;
        let mut resumes = 0u32;
        for (i, (was_active, r0, _)) in &before {
            match db.get(*i) {
                None => lost += 1,
                Some(s) => {
                    resumes += s.resumes.saturating_sub(*r0);
                    if *was_active {
                        if let Some(t) = s
                            .tunnels
                            .iter()
                            .filter(|t| t.started > t0 && Some(t.node) == to)
                            .map(|t| t.started)
                            .min()
                        {
                            back += 1;
                            blackouts.push(t.0 - t0.0);
                        }
                    }
                }
            }
        }
        let users: BTreeSet<&String> = before.values().map(|v| &v.2).collect();
        let relogins =
            db.sessions().filter(|s| s.index > max_index && users.contains(&s.user)).count() as u32;
        blackouts.sort_unstable();
        pb::DrillReport {
            slot,
            mode: if req.watch {
                "watch"
            } else if req.kill {
                "kill"
            } else {
                "switch"
            }
            .into(),
            from_node: Some(owner),
            to_node: to,
            epoch_before: epoch0,
            epoch_after: epoch1,
            sessions_before: before.len() as u32,
            sessions_after: db.sessions().filter(|s| s.slot == Some(slot)).count() as u32,
            sessions_lost: lost,
            active_before: active.len() as u32,
            back,
            resumes,
            relogins,
            takeover_ms: takeover.map_or(0, |t| t.0 .0.saturating_sub(t0.0)),
            blackout_p50_ms: pct(&blackouts, 0.5),
            blackout_p95_ms: pct(&blackouts, 0.95),
            blackout_max_ms: blackouts.last().copied().unwrap_or(0),
            all_back_ms: blackouts.last().copied().unwrap_or(0),
        }
    });
    Ok(report)
}
