//! The listener's read view of the slot agent: which slot a local address belongs to, and
//! under which epoch this node answers for it.

use crate::SlotRef;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// A connection came in on a slot address this node no longer answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotMoved;

/// What the listener asks of the slot agent, as a value the driver publishes after every
/// change ([`SlotAgent::poll_view`](super::SlotAgent::poll_view)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressView {
    /// Configured public address → slot id.
    pub(super) by_ip: BTreeMap<Ipv4Addr, u32>,
    /// Slots this node holds: epoch, and whether their addresses are on its interfaces.
    pub(super) held: BTreeMap<u32, (u64, bool)>,
}

impl AddressView {
    /// The slot a connection to local address `ip` came in on, with the epoch this node
    /// serves it under: `Ok(None)` for a node address (not a slot), `Err(SlotMoved)` for a
    /// slot address this node no longer answers for.
    pub fn slot_for(&self, ip: Option<Ipv4Addr>) -> Result<Option<SlotRef>, SlotMoved> {
        let Some(id) = ip.and_then(|ip| self.by_ip.get(&ip).copied()) else {
            return Ok(None);
        };
        match self.held.get(&id) {
            Some(&(epoch, true)) => Ok(Some(SlotRef { id, epoch })),
            _ => Err(SlotMoved),
        }
    }

    /// Ids of the slots whose addresses are on this node.
    pub fn live(&self) -> Vec<u32> {
        self.held.iter().filter(|(_, (_, live))| *live).map(|(id, _)| *id).collect()
    }
}
