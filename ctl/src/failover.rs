//! `show failover` and drill reports.

use gatehouse_proto::admin as pb;
use serde::Serialize;
use std::fmt::Write;

/// `show failover` as text.
pub fn render(r: &pb::FailoverReply) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Failover slots (as seen by node {})", r.node_id);
    let _ = writeln!(
        o,
        "{:<5} {:<20} {:<20} {:<6} {:<8} {:<8} {:>6} {:>10} {:>9} {:>9}",
        "Slot",
        "Public address",
        "Inside address",
        "Owner",
        "Standby",
        "Pref.",
        "Epoch",
        "Lease ms",
        "Sessions",
        "Active"
    );
    for s in &r.slots {
        let owner = s.owner.map_or_else(|| "-".to_string(), |o| o.to_string());
        let _ = writeln!(
            o,
            "{:<5} {:<20} {:<20} {:<6} {:<8} {:<8} {:>6} {:>10} {:>9} {:>9}",
            s.id,
            s.public_address,
            if s.inside_address.is_empty() { "-" } else { &s.inside_address },
            owner,
            s.standby,
            s.preferred_owner,
            s.epoch,
            s.lease_left_ms,
            format!("{}/{}", s.sessions, s.capacity),
            s.active_sessions
        );
    }
    o
}

/// One slot in `show failover --json`.
#[derive(Debug, Serialize)]
pub struct SlotJson {
    /// Slot id.
    pub id: u32,
    /// Public address/prefix.
    pub public_address: String,
    /// Owner.
    pub owner: Option<u64>,
    /// Standby.
    pub standby: u64,
    /// Epoch.
    pub epoch: u64,
    /// Lease left (negative: lapsed).
    pub lease_left_ms: i64,
    /// Sessions hosted.
    pub sessions: u32,
    /// Of which with an ssl tunnel.
    pub active_sessions: u32,
    /// Capacity.
    pub capacity: u32,
}

/// `show failover --json`.
#[derive(Debug, Serialize)]
pub struct FailoverJson {
    /// Answering node.
    pub node_id: u64,
    /// Slots.
    pub slots: Vec<SlotJson>,
}

impl From<&pb::FailoverReply> for FailoverJson {
    fn from(r: &pb::FailoverReply) -> Self {
        FailoverJson {
            node_id: r.node_id,
            slots: r
                .slots
                .iter()
                .map(|s| SlotJson {
                    id: s.id,
                    public_address: s.public_address.clone(),
                    owner: s.owner,
                    standby: s.standby,
                    epoch: s.epoch,
                    lease_left_ms: s.lease_left_ms,
                    sessions: s.sessions,
                    active_sessions: s.active_sessions,
                    capacity: s.capacity,
                })
                .collect(),
        }
    }
}

/// A drill report as text.
pub fn render_drill(d: &pb::DrillReport) -> String {
    let node = |n: Option<u64>| n.map_or_else(|| "-".to_string(), |x| format!("node {x}"));
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Failover drill: slot {} ({}), {} -> {}, epoch {} -> {}",
        d.slot,
        d.mode,
        node(d.from_node),
        node(d.to_node),
        d.epoch_before,
        d.epoch_after
    );
    let _ = writeln!(
        o,
        "  sessions before : {}   after : {}   lost : {}",
        d.sessions_before, d.sessions_after, d.sessions_lost
    );
    let _ = writeln!(
        o,
        "  connected before: {}   back  : {}   resumes : {}   re-logins : {}",
        d.active_before, d.back, d.resumes, d.relogins
    );
    let _ = writeln!(o, "  takeover        : {} ms", d.takeover_ms);
    let _ = writeln!(
        o,
        "  blackout        : p50 {} ms   p95 {} ms   max {} ms",
        d.blackout_p50_ms, d.blackout_p95_ms, d.blackout_max_ms
    );
    o
}

/// Drill report as JSON.
#[derive(Debug, Serialize)]
pub struct DrillJson {
    /// Slot.
    pub slot: u32,
    /// kill or switch.
    pub mode: String,
    /// Old owner.
    pub from_node: Option<u64>,
    /// New owner.
    pub to_node: Option<u64>,
    /// Sessions before.
    pub sessions_before: u32,
    /// Sessions after.
    pub sessions_after: u32,
    /// Sessions lost.
    pub sessions_lost: u32,
    /// Connected before.
    pub active_before: u32,
    /// Connected again.
    pub back: u32,
    /// Resumes.
    pub resumes: u32,
    /// Re-logins.
    pub relogins: u32,
    /// Takeover time.
    pub takeover_ms: u64,
    /// Blackout p50.
    pub blackout_p50_ms: u64,
    /// Blackout p95.
    pub blackout_p95_ms: u64,
    /// Blackout max.
    pub blackout_max_ms: u64,
    /// Move start until the last returning session attached.
    pub all_back_ms: u64,
}

impl From<&pb::DrillReport> for DrillJson {
    fn from(d: &pb::DrillReport) -> Self {
        DrillJson {
            slot: d.slot,
            mode: d.mode.clone(),
            from_node: d.from_node,
            to_node: d.to_node,
            sessions_before: d.sessions_before,
            sessions_after: d.sessions_after,
            sessions_lost: d.sessions_lost,
            active_before: d.active_before,
            back: d.back,
            resumes: d.resumes,
            relogins: d.relogins,
            takeover_ms: d.takeover_ms,
            blackout_p50_ms: d.blackout_p50_ms,
            blackout_p95_ms: d.blackout_p95_ms,
            blackout_max_ms: d.blackout_max_ms,
            all_back_ms: d.all_back_ms,
        }
    }
}
