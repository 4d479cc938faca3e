//! The slot manager's face to the rest of the node: which slot, under which epoch, a local
//! address belongs to (the listener asks on every connection), and the handles through which
//! admin and drills reach the running manager and its interface worker.

use super::worker;
use crate::db::ProposeError;
use gatehouse_core::slot_agent::{AddressView, SlotMoved};
use gatehouse_core::MonoMillis;
use gatehouse_core::{Rejection, SlotRef};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use tokio::sync::{mpsc, oneshot};

/// Slots this node answers for; read by the listener (which slot a connection came in on).
#[derive(Default)]
pub struct LocalSlots {
    view: Mutex<AddressView>,
    /// When this node last took a slot over (monotonic ms; 0: never).
    taken_over_at: AtomicU64,
    driver: Mutex<Option<Handles>>,
}

/// How the rest of the node reaches a running slot manager.
pub(super) struct Handles {
    pub(super) control: mpsc::UnboundedSender<Control>,
    pub(super) worker: worker::Worker,
}

/// A request to the slot manager's loop.
pub(super) enum Control {
    /// Take `slot`'s addresses off for a graceful switchover; answer once they are gone.
    Switch { slot: u32, done: oneshot::Sender<()> },
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl LocalSlots {
    /// The slot a connection to local address `ip` came in on, with the epoch this node
    /// serves it under: `Ok(None)` for a node address (not a slot), `Err(SlotMoved)` for a
    /// slot address this node no longer answers for.
    pub fn slot_for(&self, ip: Option<Ipv4Addr>) -> Result<Option<SlotRef>, SlotMoved> {
        lock(&self.view).slot_for(ip)
    }

    /// Ids of the slots whose addresses are on this node.
    pub fn live(&self) -> Vec<u32> {
        lock(&self.view).live()
    }

    /// When this node last took a slot over, if it did.
    pub fn last_take_over(&self) -> Option<MonoMillis> {
        Some(self.taken_over_at.load(Ordering::Relaxed)).filter(|t| *t > 0).map(MonoMillis)
    }

    pub(super) fn note_take_over(&self, at: MonoMillis) {
        self.taken_over_at.store(at.0.max(1), Ordering::Relaxed);
    }

    pub(super) fn publish(&self, view: AddressView) {
        *lock(&self.view) = view;
    }

    pub(super) fn attach(&self, handles: Handles) {
        *lock(&self.driver) = Some(handles);
    }

    /// Queue `job` on the slot worker; false when there is none.
    pub(super) fn send_job(&self, job: worker::Job) -> bool {
        lock(&self.driver).as_ref().is_some_and(|h| h.worker.send(job))
    }

    /// Have the slot manager take `slot`'s addresses off, and wait until they are gone.
    pub(super) async fn drop_for_switch(&self, slot: u32) -> Result<(), SwitchError> {
        let (done, gone) = oneshot::channel();
        let sent = lock(&self.driver)
            .as_ref()
            .is_some_and(|h| h.control.send(Control::Switch { slot, done }).is_ok());
        if !sent {
            return Err(SwitchError::NotRunning);
        }
        gone.await.map_err(|_| SwitchError::NotRunning)
    }
}

/// Why a graceful switchover did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    /// The slot is not in this node's `[[slot]]` configuration.
    #[error("no slot {0} in this node's configuration")]
    NotConfigured(u32),
    /// The leader has not defined the slot in the replicated table yet.
    #[error("slot {0} is not defined yet")]
    NotDefined(u32),
    /// Another node (or none) owns the slot: only its owner can switch it over.
    #[error("slot {slot} is owned by {}; run the switch on its owner", owner_name(*.owner))]
    NotOwner {
        /// The slot.
        slot: u32,
        /// Its owner.
        owner: Option<u64>,
    },
    /// The slot manager is not running (the node is stopping).
    #[error("the slot manager is not running; the node may be stopping")]
    NotRunning,
    /// The release applied as a refusal (the slot moved meanwhile).
    #[error("release refused: {0}")]
    Refused(Rejection),
    /// The release did not commit.
    #[error(transparent)]
    NotCommitted(#[from] ProposeError),
}

fn owner_name(owner: Option<u64>) -> String {
    owner.map_or_else(|| "no node".to_string(), |o| format!("node {o}"))
}
