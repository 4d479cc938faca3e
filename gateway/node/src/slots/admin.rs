//! The failover part of the admin API: `show failover`, `failover switch`, drill crashes.

use super::SlotCtx;
use gatehouse_proto::admin as pb;
use tonic::Status;

/// Slots as seen by this node.
pub fn show(node: &SlotCtx) -> pb::FailoverReply {
    let now = node.db.now();
    let (slots, counts, active) = node.db.read(|db| {
        let mut active = std::collections::BTreeMap::<u32, u32>::new();
        for s in db.sessions().filter(|s| s.has_ssl()) {
            if let Some(id) = s.slot {
                *active.entry(id).or_insert(0) += 1;
            }
        }
        (db.slots().iter().cloned().collect::<Vec<_>>(), db.slot_sessions(), active)
    });
    pb::FailoverReply {
        node_id: node.db.node_id(),
        now_unix_ms: now.0,
        slots: slots
            .iter()
            .map(|s| pb::SlotView {
                id: s.spec.id,
                public_address: format!("{}/{}", s.spec.public_ip, s.spec.public_prefix),
                inside_address: s
                    .spec
                    .inside_ip
                    .map(|i| format!("{i}/{}", s.spec.inside_prefix))
                    .unwrap_or_default(),
                owner: s.owner,
                preferred_owner: s.spec.preferred_owner,
                standby: s.spec.standby,
                epoch: s.epoch,
                lease_left_ms: lease_left(s, node, now),
                sessions: counts.get(&s.spec.id).copied().unwrap_or(0),
                capacity: s.spec.capacity,
                pool: format!("{}-{}", s.spec.pool.first, s.spec.pool.last),
                active_sessions: active.get(&s.spec.id).copied().unwrap_or(0),
            })
            .collect(),
    }
}

/// What is left of the owner's lease by cluster time: from its last renewal (or assignment),
/// a lease (two for an owner that has not renewed yet). Display only: the leader judges on
/// its own monotonic clock (gatehouse_core::health).
fn lease_left(s: &gatehouse_core::Slot, node: &SlotCtx, now: gatehouse_core::UnixMillis) -> i64 {
    let Some(lease) = node.cfg.slots.as_ref().map(|c| c.lease.as_millis() as i64) else {
        return 0;
    };
    if s.owner.is_none() {
        return 0;
    }
    let lease = if s.renewals == 0 { 2 * lease } else { lease };
    s.renewed_at.0 as i64 + lease - now.0 as i64
}

/// Graceful switchover of `slot` (run on its owner).
pub async fn switch(node: &SlotCtx, slot: u32) -> Result<pb::FailoverReply, Status> {
    match super::switch(node, slot).await {
        Ok(_) => Ok(show(node)),
        Err(e) => Err(Status::failed_precondition(e.to_string())),
    }
}

/// Drill crash: exit at once, as a crashing process does (no slot released, no connection
/// closed by the node); the kernel fence makes the slots fall silent. The slot worker exits
/// after the interface changes already queued, so the kernel sees what the node meant to do.
pub fn crash(node: &SlotCtx) {
    if node.local_slots.send_job(super::worker::Job::Crash) {
        return;
    }
    tracing::warn!("drill: crashing now");
    std::process::exit(137);
}
