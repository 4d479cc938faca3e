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
