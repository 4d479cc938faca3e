//! The slot table as directors see it: what a node streams on `SlotWatch.WatchSlots`
//! (JSON, proto/cluster.proto).

use serde::{Deserialize, Serialize};

/// What a director needs to place a new client: every slot, whether it can take clients now,
/// and its load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotTableView {
    /// The node that sent it.
    pub node: u64,
    /// Slots by id.
    pub slots: Vec<SlotView>,
}

/// One slot for a director.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotView {
    /// Slot id.
    pub id: u32,
    /// Public address clients are redirected to.
    pub public_ip: std::net::Ipv4Addr,
    /// Client-facing port of the nodes.
    pub port: u16,
    /// Current owner.
    pub owner: Option<u64>,
    /// Epoch.
    pub epoch: u64,
    /// Sessions hosted.
    pub sessions: u32,
    /// Capacity.
    pub capacity: u32,
    /// An owner holds a live lease (false while a failover is pending).
    pub available: bool,
    /// The owner's renewals are late (it may be failing; the move may be pending): the
    /// director sends new clients elsewhere while it can.
    #[serde(default)]
    pub late: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_table_json_keeps_its_field_names() {
        let v = SlotTableView {
            node: 2,
            slots: vec![SlotView {
                id: 1,
                public_ip: std::net::Ipv4Addr::new(192, 0, 2, 10),
                port: 443,
                owner: None,
                epoch: 3,
                sessions: 4,
                capacity: 5,
                available: false,
                late: true,
            }],
        };
        let j = serde_json::to_string(&v).unwrap();
        assert_eq!(
            j,
            r#"{"node":2,"slots":[{"id":1,"public_ip":"192.0.2.10","port":443,"owner":null,"epoch":3,"sessions":4,"capacity":5,"available":false,"late":true}]}"#
        );
        assert_eq!(serde_json::from_str::<SlotTableView>(&j).unwrap(), v);
        // A table from a node that does not send `late` yet reads as on time.
        let old = j.replace(r#","late":true"#, "");
        let back = serde_json::from_str::<SlotTableView>(&old).unwrap();
        assert!(!back.slots[0].late);
    }
}
