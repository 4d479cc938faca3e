//! Where a slot moves: the slot manager of one node (DESIGN.md §5).
//!
//! The rules — renew, fence, take over, and (on the leader) define and hand out slots — live
//! in the pure [`SlotAgent`](gatehouse_core::slot_agent::SlotAgent). This module is its
//! driver ([`driver`]): it feeds the agent the applied slot table, the results of the
//! proposals it asked for, its one timer and the stop signal, and carries out what it asks:
//! proposals as tasks of their own (they never hold up the loop), interface changes on one
//! blocking worker thread ([`worker`]), in order. The listener reads which slot a connection
//! came in on from [`LocalSlots`], which the driver keeps up to date.

pub mod admin;
pub mod drill;
mod driver;
pub mod local;
pub mod takeover;
mod worker;

pub use driver::run;
pub use gatehouse_core::slot_agent::SlotMoved;
pub use local::{LocalSlots, SwitchError};

use crate::clock::Clock;
use crate::config::{ClusterConfig, SlotsConfig};
use crate::db::ProposeError;
use crate::db::SessionStore;
use crate::stopping::Stopping;
use gatehouse_core::{SlotChange, SlotCommand};
use std::sync::Arc;
use tokio::sync::watch;

/// The configuration the slot manager reads.
#[derive(Clone)]
pub struct SlotCfg {
    /// `[[slot]]` and `[slots]`; `None` without slots.
    pub slots: Option<SlotsConfig>,
    /// `[cluster]`; `None` on a single node.
    pub cluster: Option<ClusterConfig>,
}

/// What the slot manager, switchovers, drills and `show failover` work with: narrow handles,
/// not the whole node.
#[derive(Clone)]
pub struct SlotCtx {
    /// Slots and cluster configuration (shared: the context is cloned into every proposal).
    pub cfg: Arc<SlotCfg>,
    /// The session db.
    pub db: SessionStore,
    /// The clock.
    pub clock: Clock,
    /// Which slot addresses this node holds (shared with the listener).
    pub local_slots: Arc<LocalSlots>,
    /// The stop signal.
    pub stopping: watch::Receiver<Stopping>,
}

/// How long after taking a slot over a stopping node waits before it hands its slots on.
const SETTLE_AFTER_TAKE_OVER: std::time::Duration = std::time::Duration::from_millis(1500);

/// A stopping node hands every slot it owns over (a graceful switchover each, bounded by
/// `limit` in all) before anything else stops: its addresses are fenced before its tunnels
/// close, so its clients hear no FIN or TERMINATE, only the new owner's tickle a moment later —
/// stopping a node (`systemctl stop`, `docker stop`) moves its clients as a switchover does.
pub async fn hand_over(node: &SlotCtx, limit: std::time::Duration) {
    let Some(sc) = node.cfg.slots.as_ref() else { return };
    let me = node.db.node_id();
    let owned: Vec<u32> = node.db.read(|db| {
        sc.slots
            .iter()
            .map(|s| s.id)
            .filter(|id| db.slots().get(*id).is_some_and(|s| s.owner == Some(me)))
            .collect()
    });
    // Clients that followed a slot here a moment ago may still be reconnecting (TLS, CONNECT,
    // the attach's commit). Moving the slot on now would leave them on a connection whose
    // close the fence swallows, with no tunnel record for the next owner to tickle: when
    // every node restarts at once, the member that took the first one's slots leaves next.
    if let (false, Some(at)) = (owned.is_empty(), node.local_slots.last_take_over()) {
        let since = node.clock.mono().since(at);
        if since < SETTLE_AFTER_TAKE_OVER {
            let rest = SETTLE_AFTER_TAKE_OVER - since;
            tracing::info!(
                ?rest,
                "letting clients that just moved here attach before handing over"
            );
            tokio::time::sleep(rest).await;
        }
    }
    let all = async {
        for &slot in &owned {
            match switch(node, slot).await {
                Ok(epoch) => tracing::info!(slot, epoch, "slot handed over (node stopping)"),
                Err(e) => tracing::warn!(slot, "slot not handed over: {e}"),
            }
        }
        // Stay until every slot is live on its new owner (its first renewal committed): the
        // Raft leader's agent assigns a released slot (when this node leads, the survivors
        // would first have to elect one), and the new owner tickles the clients of the
        // tunnel records this node still keeps — it detaches them only when it stops.
        let mut applied = node.db.applied();
        while node.db.read(|db| {
            owned.iter().any(|id| {
                db.slots()
                    .get(*id)
                    .is_none_or(|s| s.owner.is_none_or(|o| o == me) || s.renewals == 0)
            })
        }) {
            if applied.changed().await.is_err() {
                break;
            }
        }
    };
    if tokio::time::timeout(limit, all).await.is_err() {
        tracing::warn!(
            "slots not all handed over within {limit:?}; the fence and the lease move them"
        );
    }
}

/// Graceful switchover of a slot this node owns: remove the addresses first, then release the
/// slot in the replicated table; the leader hands it to the standby.
pub async fn switch(node: &SlotCtx, slot: u32) -> Result<u64, SwitchError> {
    if !node.cfg.slots.as_ref().is_some_and(|s| s.slots.iter().any(|x| x.id == slot)) {
        return Err(SwitchError::NotConfigured(slot));
    }
    let (owner, epoch) = node
        .db
        .read(|db| db.slots().get(slot).map(|s| (s.owner, s.epoch)))
        .ok_or(SwitchError::NotDefined(slot))?;
    if owner != Some(node.db.node_id()) {
        return Err(SwitchError::NotOwner { slot, owner });
    }
    node.local_slots.drop_for_switch(slot).await?;
    let cmd = SlotChange {
        at: node.db.now(),
        cmd: SlotCommand::Release { slot, node: node.db.node_id(), epoch },
    };
    match node.db.propose(cmd).await {
        Ok(epoch) => Ok(epoch),
        Err(ProposeError::Refused(r)) => Err(SwitchError::Refused(r)),
        Err(e) => Err(e.into()),
    }
}
