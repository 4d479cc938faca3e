//! What the slot agent asks its driver to do, and what the driver reports back.

use crate::slot::{SlotCommand, SlotRefusal, SlotSpec};
use crate::time::{MonoMillis, UnixMillis};

/// Why the agent puts a slot's addresses on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddReason {
    /// The slot is newly ours: add, announce, and tickle the slot's clients.
    TakeOver,
    /// A late renewal committed under the same epoch: the slot is still ours, put the
    /// addresses back.
    Restore,
}

/// Why the agent takes a slot's addresses off this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Fencing: the lease could not be renewed in time.
    LeaseNotRenewed,
    /// A renewal was refused or applied under another epoch.
    EpochMovedOn,
    /// Another node owns the slot now (or it is vacant).
    OwnedElsewhere,
    /// The node is stopping.
    Stopping,
    /// Graceful switchover: the addresses go before the slot is released.
    Switchover,
}

impl DropReason {
    /// Whether the slot is gone from this node (not merely unrenewed, which a later renewal
    /// can restore): the connections left on its addresses are then dead for good, and a
    /// leftover whose 4-tuple a client reuses when the slot comes back would swallow that
    /// client's segments and the new owner's tickle, so they are closed.
    pub fn slot_gone(self) -> bool {
        !matches!(self, DropReason::LeaseNotRenewed)
    }

    /// The reason as the "slot addresses removed" log line gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::LeaseNotRenewed => "lease not renewed",
            DropReason::EpochMovedOn => "epoch moved on",
            DropReason::OwnedElsewhere => "slot owned elsewhere",
            DropReason::Stopping => "node stopping",
            DropReason::Switchover => "graceful switchover",
        }
    }
}

/// What became of a slot command the agent asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalResult {
    /// Applied; the slot's epoch afterwards.
    Applied {
        /// Epoch after the command.
        epoch: u64,
    },
    /// Applied as a refusal.
    Refused(SlotRefusal),
    /// Not committed, or an outcome that says nothing about the slot.
    NotApplied,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotAction {
    /// Put the slot's public and inside addresses on this node's interfaces.
    AddAddresses {
        /// Slot.
        slot: u32,
        /// Epoch this node holds it under.
        epoch: u64,
        /// Take-over (announce, tickle) or restore.
        reason: AddReason,
        /// The fencing point: the kernel stops answering for the addresses then unless an
        /// [`ExtendFence`](SlotAction::ExtendFence) moves it (monotonic).
        fence_at: MonoMillis,
    },
    /// A renewal committed: the kernel fence of the slot's addresses moves to `fence_at`.
    ExtendFence {
        /// Slot.
        slot: u32,
        /// The new fencing point (monotonic).
        fence_at: MonoMillis,
    },
    /// Take the slot's addresses off this node's interfaces.
    DropAddresses {
        /// Slot.
        slot: u32,
        /// Why (logged).
        reason: DropReason,
        /// Whether the agent had them up; if not, remove them only if the host has them.
        was_live: bool,
    },
    /// Propose a lease renewal; report with [`SlotAgent::handle_renewed`].
    ProposeRenew {
        /// Slot.
        slot: u32,
        /// This node.
        node: u64,
        /// Epoch it is held under.
        epoch: u64,
        /// The command's timestamp.
        at: UnixMillis,
        /// Monotonic proposal time: the new local deadline counts from it.
        proposed_at: MonoMillis,
    },
    /// (Leader) define a configured slot; report with [`SlotAgent::handle_defined`].
    ProposeDefine {
        /// The spec.
        spec: SlotSpec,
        /// The command's timestamp.
        at: UnixMillis,
    },
    /// (Leader) give a vacant slot to `node`; report with [`SlotAgent::handle_assigned`].
    ProposeAssign {
        /// Slot.
        slot: u32,
        /// New owner.
        node: u64,
        /// The epoch seen vacant.
        from_epoch: u64,
        /// The renewal count seen standing still.
        seen_renewals: u64,
        /// The command's timestamp.
        at: UnixMillis,
        /// Who held it before (logged).
        from: Option<u64>,
    },
}

impl SlotAction {
    /// The slot command to propose, with its timestamp, for a `Propose*` action.
    pub fn command(&self) -> Option<(UnixMillis, SlotCommand)> {
        match self {
            SlotAction::ProposeRenew { slot, node, epoch, at, .. } => {
                Some((*at, SlotCommand::Renew { slot: *slot, node: *node, epoch: *epoch }))
            }
            SlotAction::ProposeDefine { spec, at } => {
                Some((*at, SlotCommand::Define { spec: spec.clone() }))
            }
            SlotAction::ProposeAssign { slot, node, from_epoch, seen_renewals, at, .. } => Some((
                *at,
                SlotCommand::Assign {
                    slot: *slot,
                    node: *node,
                    from_epoch: *from_epoch,
                    seen_renewals: *seen_renewals,
                },
            )),
            _ => None,
        }
    }
}
