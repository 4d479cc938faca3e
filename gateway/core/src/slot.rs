//! Slots: the member addresses clients are assigned to (DESIGN.md §5). One node owns a slot at
//! a time and renews its lease through Raft; when the lease lapses the leader hands the slot
//! to its standby (or the least-loaded healthy node) with epoch + 1. Every write about a
//! slot's sessions carries the epoch it was issued under, and a stale epoch is refused.
//!
//! No wall-clock time decides anything here: a lease "lapses" when the slot's renewal count
//! has not moved for a lease length on the judging node's monotonic clock
//! ([`crate::health::Silence`]), and the leader's assignment is a compare-and-set on that
//! count, so a renewal that commits after the leader judged wins.

use crate::pool::PoolRange;
use crate::time::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// A slot as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotSpec {
    /// Slot id.
    pub id: u32,
    /// Public (outside) address clients connect to.
    pub public_ip: Ipv4Addr,
    /// Its prefix length on the outside interface.
    pub public_prefix: u8,
    /// Inside address the slot's pool is routed to, if any.
    pub inside_ip: Option<Ipv4Addr>,
    /// Its prefix length on the inside interface.
    pub inside_prefix: u8,
    /// The slice of the address pool whose sessions this slot hosts.
    pub pool: PoolRange,
    /// The node that owns the slot when all are healthy.
    pub preferred_owner: u64,
    /// The node that takes it over.
    pub standby: u64,
    /// Sessions the slot is sized for (placement: load = sessions ÷ capacity).
    pub capacity: u32,
}

/// A slot's replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// Configuration.
    pub spec: SlotSpec,
    /// Current owner.
    pub owner: Option<u64>,
    /// Bumped on every change of owner.
    pub epoch: u64,
    /// Renewals committed under this epoch (the leader's assignment starts it at zero).
    pub renewals: u64,
    /// Timestamp of the last renewal or assignment (for display).
    pub renewed_at: UnixMillis,
    /// The node that released the slot gracefully (not to be handed back to it).
    pub released_by: Option<u64>,
    /// The Raft log index of the entry that last moved [`Self::lease_counter`] (0: not
    /// known). A node judges the lease from when that entry *arrived* in its log, not from
    /// when it applied: after a leader's death the two are an election apart.
    #[serde(default)]
    pub lease_index: u64,
}

impl Slot {
    /// What a node watches to judge the owner's lease: it moves on every renewal and every
    /// change of owner.
    pub fn lease_counter(&self) -> (u64, u64) {
        (self.epoch, self.renewals)
    }
}

/// A slot-table command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlotCommand {
    /// Define or update a slot from configuration (owner and epoch are kept).
    Define {
        /// The spec.
        spec: SlotSpec,
    },
    /// The owner extends its lease.
    Renew {
        /// Slot.
        slot: u32,
        /// Proposing node.
        node: u64,
        /// Epoch it believes current.
        epoch: u64,
    },
    /// The leader gives a vacant slot to `node`.
    Assign {
        /// Slot.
        slot: u32,
        /// New owner.
        node: u64,
        /// The epoch the leader saw vacant.
        from_epoch: u64,
        /// The renewal count the leader saw stop moving (ignored for a slot without owner).
        seen_renewals: u64,
    },
    /// The owner gives the slot up (graceful switchover), after removing its addresses.
    Release {
        /// Slot.
        slot: u32,
        /// The owner.
        node: u64,
        /// Its epoch.
        epoch: u64,
    },
}

/// Why a slot command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlotRefusal {
    /// Unknown slot.
    NoSuchSlot,
    /// The epoch moved on: the proposer is not (any more) the owner.
    StaleEpoch,
    /// The owner renewed after the leader judged its lease lapsed.
    Held,
}

/// The slot table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotTable {
    slots: BTreeMap<u32, Slot>,
}

impl SlotTable {
    /// Apply a slot command at `at`, carried by the log entry at `index`; returns the slot's
    /// epoch afterwards.
    pub fn apply(
        &mut self,
        at: UnixMillis,
        index: u64,
        cmd: &SlotCommand,
    ) -> Result<u64, SlotRefusal> {
        match cmd {
            SlotCommand::Define { spec } => {
                let s = self.slots.entry(spec.id).or_insert_with(|| Slot {
                    spec: spec.clone(),
                    owner: None,
                    epoch: 0,
                    renewals: 0,
                    renewed_at: UnixMillis(0),
                    released_by: None,
                    lease_index: index,
                });
                s.spec = spec.clone();
                Ok(s.epoch)
            }
            SlotCommand::Renew { slot, node, epoch } => {
                let s = self.slots.get_mut(slot).ok_or(SlotRefusal::NoSuchSlot)?;
                if s.owner != Some(*node) || s.epoch != *epoch {
                    return Err(SlotRefusal::StaleEpoch);
                }
                s.renewals += 1;
                s.renewed_at = s.renewed_at.max(at);
                s.lease_index = index;
                Ok(s.epoch)
            }
            SlotCommand::Assign { slot, node, from_epoch, seen_renewals } => {
                let s = self.slots.get_mut(slot).ok_or(SlotRefusal::NoSuchSlot)?;
                if s.epoch != *from_epoch {
                    return Err(SlotRefusal::StaleEpoch);
                }
                if s.owner.is_some() && s.renewals != *seen_renewals {
                    return Err(SlotRefusal::Held);
                }
                s.owner = Some(*node);
                s.epoch += 1;
                s.renewals = 0;
                s.renewed_at = s.renewed_at.max(at);
                s.lease_index = index;
                if s.released_by == Some(*node) {
                    s.released_by = None;
                }
                Ok(s.epoch)
            }
            SlotCommand::Release { slot, node, epoch } => {
                let s = self.slots.get_mut(slot).ok_or(SlotRefusal::NoSuchSlot)?;
                if s.owner != Some(*node) || s.epoch != *epoch {
                    return Err(SlotRefusal::StaleEpoch);
                }
                s.owner = None;
                s.released_by = Some(*node);
                Ok(s.epoch)
            }
        }
    }

    /// A slot by id.
    pub fn get(&self, id: u32) -> Option<&Slot> {
        self.slots.get(&id)
    }

    /// All slots by id.
    pub fn iter(&self) -> impl Iterator<Item = &Slot> {
        self.slots.values()
    }

    /// The slot whose public address is `ip`.
    pub fn by_public_ip(&self, ip: Ipv4Addr) -> Option<&Slot> {
        self.slots.values().find(|s| s.spec.public_ip == ip)
    }

    /// Whether `epoch` is the current epoch of `slot`.
    pub fn is_current(&self, slot: u32, epoch: u64) -> bool {
        self.slots.get(&slot).is_some_and(|s| s.epoch == epoch)
    }
}

/// Whom the leader gives a vacant slot to. The configured pair first — the preferred owner
/// on first assignment, else whichever of owner and standby did not just hold it — if
/// healthy; otherwise the healthy node owning the fewest slots (ties: lowest id). The node
/// that released or lost the slot comes last.
pub fn successor(slot: &Slot, healthy: &[u64], owned: &BTreeMap<u64, usize>) -> Option<u64> {
    let prev = slot.owner.or(slot.released_by);
    let (p, s) = (slot.spec.preferred_owner, slot.spec.standby);
    let pair = if prev == Some(p) { [s, p] } else { [p, s] };
    let ok = |n: u64| healthy.contains(&n) && Some(n) != prev;
    if let Some(n) = pair.iter().copied().find(|n| ok(*n)) {
        return Some(n);
    }
    let pick = healthy
        .iter()
        .copied()
        .filter(|n| ok(*n))
        .min_by_key(|n| (owned.get(n).copied().unwrap_or(0), *n));
    // Only the previous holder is healthy: give it back (better than no owner).
    pick.or_else(|| prev.filter(|n| healthy.contains(n)))
}
