//! Where a slot moves: the slot manager of one node (DESIGN.md §5).
//!
//! Every `renew_interval`, and at once when the slot table changes owners, a lease it watches
//! lapses or its own fencing point comes, the manager
//! - (leader) defines the configured slots in the replicated table and hands vacant slots —
//!   lease lapsed or released — to a successor (`gatehouse_core::slot::successor`);
//! - renews the lease of each slot this node owns, through Raft;
//! - takes over slots newly assigned to it: adds the addresses, announces them, tickles the
//!   slot's clients (`takeover`);
//! - gives up addresses it may no longer answer for: a slot now owned by another node, and —
//!   the fencing rule — a slot whose lease it could not renew, **before** that lease ends, so
//!   two nodes never hold one address.

pub mod admin;
pub mod drill;
pub mod takeover;

use crate::node::Node;
use gatehouse_core::slot::successor;
use gatehouse_core::{
    Command, MonoMillis, Outcome, Rejection, SlotChange, SlotCommand, SlotRef, SlotSpec,
};
use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// This node's view of a slot it owns.
#[derive(Debug, Clone, Copy)]
struct Held {
    epoch: u64,
    /// Local (monotonic) end of the last committed lease, counted from the proposal time.
    deadline: MonoMillis,
    /// Whether the addresses are on our interfaces.
    live: bool,
}

/// A connection came in on a slot address this node no longer answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotMoved;

/// Slots this node answers for; read by the listener (which slot a connection came in on).
#[derive(Default)]
pub struct LocalSlots {
    held: Mutex<BTreeMap<u32, Held>>,
    by_ip: Mutex<BTreeMap<Ipv4Addr, u32>>,
}

impl LocalSlots {
    /// The slot a connection to local address `ip` came in on, with the epoch this node
    /// serves it under: `Ok(None)` for a node address (not a slot), `Err(SlotMoved)` for a
    /// slot address this node no longer answers for.
    pub fn slot_for(&self, ip: Option<Ipv4Addr>) -> Result<Option<SlotRef>, SlotMoved> {
        let Some(id) = ip.and_then(|ip| self.by_ip.lock().ok()?.get(&ip).copied()) else {
            return Ok(None);
        };
        match self.held.lock().ok().and_then(|h| h.get(&id).copied()) {
            Some(h) if h.live => Ok(Some(SlotRef { id, epoch: h.epoch })),
            _ => Err(SlotMoved),
        }
    }

    /// Ids of the slots whose addresses are on this node.
    pub fn live(&self) -> Vec<u32> {
        self.held
            .lock()
            .map(|h| h.iter().filter(|(_, x)| x.live).map(|(id, _)| *id).collect())
            .unwrap_or_default()
    }
}

struct Renewed {
    slot: u32,
    epoch: u64,
    proposed: MonoMillis,
    result: Result<Outcome, String>,
}

/// Run the slot manager until the node stops. Without `[[slot]]` it returns at once.
pub async fn run(node: Arc<Node>) {
    let Some(sc) = node.cfg.slots.clone() else { return };
    admin::clear_drill_rules();
    // Connections a previous run of this node left on the slot addresses (a crash drill drops
    // their FIN/RST) would swallow the takeover tickles of clients that reuse their ports.
    for spec in &sc.slots {
        let _ = std::process::Command::new("ss")
            .args(["-K", "src", &spec.public_ip.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
    if let Ok(mut m) = node.local_slots.by_ip.lock() {
        *m = sc.slots.iter().map(|s| (s.public_ip, s.id)).collect();
    }
    let me = node.db.node_id();
    let lease_ms = sc.lease.as_millis() as u64;
    let margin = sc.renew_interval;
    let (tx, mut rx) = mpsc::unbounded_channel::<Renewed>();
    let mut in_flight: HashSet<u32> = HashSet::new();
    let mut tick = tokio::time::interval(sc.renew_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = node.stopping.clone();
    let mut applied = node.db.applied();
    let mut leader_task: Option<tokio::task::JoinHandle<()>> = None;
    let mut leader_since: Option<MonoMillis> = None;
    let mut seen = node.db.read(|db| ownership(db.slots()));
    loop {
        // Besides the renew tick, the manager wakes when the slot table changes hands (a
        // standby takes over the moment the assignment applies), when a lease it watches
        // lapses (the leader reassigns at once), and when its own fencing point arrives.
        let wake = next_deadline(&node, &sc.slots, margin);
        let mut renew_due = false;
        tokio::select! {
            _ = tick.tick() => renew_due = true,
            Some(r) = rx.recv() => {
                in_flight.remove(&r.slot);
                on_renewed(&node, &sc.slots, r, lease_ms);
                continue;
            }
            r = applied.changed() => {
                if r.is_err() {
                    return;
                }
                // Every apply wakes this arm: compare owners without copying the table.
                let now = node.db.read(|db| ownership(db.slots()));
                if now == seen {
                    continue;
                }
                seen = now;
            }
            _ = tokio::time::sleep(wake) => {}
            _ = stopping.changed() => {
                // Stopping: release nothing in the table (the lease lapses and the standby
                // takes over), but take our addresses off now.
                for spec in &sc.slots {
                    drop_addresses(&node, spec, "node stopping");
                }
                return;
            }
        }
        let table = node.db.read(|db| db.slots().clone());
        if node.db.is_leader() {
            let since = *leader_since.get_or_insert(node.clock.mono());
            if leader_task.as_ref().is_none_or(|t: &tokio::task::JoinHandle<()>| t.is_finished()) {
                // Proposals never hold up the renew/fencing loop below.
                let (node2, specs, table) = (node.clone(), sc.slots.clone(), table.clone());
                leader_task = Some(tokio::spawn(async move {
                    leader_duties(&node2, &specs, &table, lease_ms, since).await;
                }));
            }
        } else {
            leader_since = None;
        }
        let now = node.clock.unix();
        let mono = node.clock.mono();
        for spec in &sc.slots {
            let Some(slot) = table.get(spec.id) else { continue };
            let held = node.local_slots.held.lock().ok().and_then(|h| h.get(&spec.id).copied());
            if slot.owner == Some(me) && !(slot.lease_until <= now && held.is_none()) {
                match held {
                    Some(h) if h.epoch == slot.epoch => {
                        // Fencing: never answer past a lease we could not renew.
                        if h.live && mono.plus(margin) >= h.deadline {
                            tracing::warn!(
                                slot = spec.id,
                                "slot lease not renewed in time; removing its addresses"
                            );
                            drop_addresses(&node, spec, "lease not renewed");
                        }
                    }
                    _ => {
                        // Newly ours: the assign's first (double) lease, counted from when we saw
                        // it, capped by what the table says.
                        let left = slot.lease_until.0.saturating_sub(now.0).min(2 * lease_ms);
                        let deadline = mono.plus(Duration::from_millis(left));
                        take_over(
                            &node,
                            spec,
                            slot.epoch,
                            deadline,
                            &sc.public_interface,
                            &sc.inside_interface,
                        );
                        renew_due = true;
                    }
                }
                if renew_due && in_flight.insert(spec.id) {
                    let (node2, tx2, epoch, id) = (node.clone(), tx.clone(), slot.epoch, spec.id);
                    tokio::spawn(async move {
                        let proposed = node2.clock.mono();
                        let cmd = Command::Slot(SlotChange {
                            at: node2.clock.unix(),
                            cmd: SlotCommand::Renew {
                                slot: id,
                                node: node2.db.node_id(),
                                epoch,
                                lease_ms,
                            },
                        });
                        let result = node2.db.propose_command(cmd).await.map_err(|e| e.to_string());
                        let _ = tx2.send(Renewed { slot: id, epoch, proposed, result });
                    });
                }
            } else if held.is_some() {
                // Another node owns it now (or it is vacant): we must not answer for it.
                drop_addresses(&node, spec, "slot owned elsewhere");
                if let Ok(mut h) = node.local_slots.held.lock() {
                    h.remove(&spec.id);
                }
            }
        }
    }
}

/// Who owns which slot under which epoch: what the manager reacts to at once.
fn ownership(table: &gatehouse_core::SlotTable) -> Vec<(u32, Option<u64>, u64)> {
    table.iter().map(|s| (s.spec.id, s.owner, s.epoch)).collect()
}

/// How long the manager may sleep before something it must act on without waiting for the
/// next tick: the fencing point of a slot it holds, or (on the leader) the end of another
/// owner's lease. At most one second: the tick covers everything else.
fn next_deadline(node: &Node, specs: &[SlotSpec], margin: Duration) -> Duration {
    let mut wake = Duration::from_secs(1);
    let mono = node.clock.mono();
    if let Ok(h) = node.local_slots.held.lock() {
        for x in h.values().filter(|x| x.live) {
            let fence = x.deadline.since(mono).saturating_sub(margin);
            wake = wake.min(fence);
        }
    }
    if node.db.is_leader() {
        let now = node.clock.unix();
        node.db.read(|db| {
            for s in db.slots().iter().filter(|s| specs.iter().any(|x| x.id == s.spec.id)) {
                if s.owner.is_some() && s.lease_until > now {
                    // One millisecond past the end: `vacant_at` counts the end itself as held.
                    wake = wake.min(s.lease_until.since(now) + Duration::from_millis(1));
                }
            }
        });
    }
    // Never spin: a deadline already passed is handled by this iteration's checks.
    wake.max(Duration::from_millis(2))
}

fn on_renewed(node: &Node, specs: &[SlotSpec], r: Renewed, lease_ms: u64) {
    let Some(spec) = specs.iter().find(|s| s.id == r.slot) else { return };
    match r.result {
        Ok(Outcome::Slot { epoch }) if epoch == r.epoch => {
            let mut relive = false;
            if let Ok(mut h) = node.local_slots.held.lock() {
                if let Some(x) = h.get_mut(&r.slot).filter(|x| x.epoch == epoch) {
                    x.deadline = x.deadline.max(r.proposed.plus(Duration::from_millis(lease_ms)));
                    relive = !x.live;
                }
            }
            if relive {
                // A partition healed before the leader moved the slot: it is still ours.
                if let Some(sc) = node.cfg.slots.as_ref() {
                    tracing::info!(
                        slot = r.slot,
                        "slot lease renewed again; restoring its addresses"
                    );
                    add_addresses(node, spec, &sc.public_interface, &sc.inside_interface);
                }
            }
        }
        Ok(Outcome::Rejected(Rejection::Slot(_))) | Ok(Outcome::Slot { .. }) => {
            tracing::warn!(slot = r.slot, "slot lost (epoch moved on); removing its addresses");
            drop_addresses(node, spec, "epoch moved on");
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(slot = r.slot, "slot renewal not committed: {e}"),
    }
}

async fn leader_duties(
    node: &Node,
    specs: &[SlotSpec],
    table: &gatehouse_core::SlotTable,
    lease_ms: u64,
    leader_since: MonoMillis,
) {
    let now = node.clock.unix();
    for spec in specs {
        if table.get(spec.id).map(|s| &s.spec) != Some(spec) {
            let cmd = Command::Slot(SlotChange {
                at: now,
                cmd: SlotCommand::Define { spec: spec.clone() },
            });
            if let Err(e) = node.db.propose_command(cmd).await {
                tracing::debug!(slot = spec.id, "slot definition not committed: {e}");
            }
        }
    }
    let healthy: Vec<u64> = match &node.cfg.cluster {
        None => vec![node.db.node_id()],
        Some(c) => {
            let grace = c.node_down_after.as_millis() as u64;
            let mut h: Vec<u64> = node.db.read(|db| {
                db.members()
                    .filter(|m| {
                        m.down_since.is_none() && now.0 < m.last_heartbeat.0.saturating_add(grace)
                    })
                    .map(|m| m.id)
                    .collect()
            });
            if !h.contains(&node.db.node_id()) {
                h.push(node.db.node_id());
            }
            h
        }
    };
    let mut owned: BTreeMap<u64, usize> = BTreeMap::new();
    for s in table.iter() {
        if let (Some(o), false) = (s.owner, s.vacant_at(now)) {
            *owned.entry(o).or_default() += 1;
        }
    }
    // A fresh cluster gives its preferred owner a moment to start before anyone else gets a
    // never-assigned slot.
    let settling = node
        .cfg
        .cluster
        .as_ref()
        .is_some_and(|c| node.clock.mono().since(leader_since) < c.node_down_after * 2);
    for s in table.iter().filter(|s| s.vacant_at(now)) {
        if s.epoch == 0 && settling && !healthy.contains(&s.spec.preferred_owner) {
            continue;
        }
        let Some(to) = successor(s, &healthy, &owned) else { continue };
        let cmd = Command::Slot(SlotChange {
            at: now,
            // The first lease is twice as long: the new owner's renewals queue behind the
            // reconnect storm of the slot's clients.
            cmd: SlotCommand::Assign {
                slot: s.spec.id,
                node: to,
                from_epoch: s.epoch,
                lease_ms: lease_ms * 2,
            },
        });
        match node.db.propose_command(cmd).await {
            Ok(Outcome::Slot { epoch }) => {
                metrics::counter!(crate::metrics::FAILOVERS).increment(1);
                tracing::info!(slot = s.spec.id, to, epoch, from = ?s.owner.or(s.released_by), "slot assigned");
                *owned.entry(to).or_default() += 1;
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(slot = s.spec.id, "slot assignment not committed: {e}"),
        }
    }
}

fn add_addresses(node: &Node, spec: &SlotSpec, public_if: &str, inside_if: &str) {
    if let Err(e) = takeover::add_address(spec.public_ip, spec.public_prefix, public_if) {
        tracing::error!(slot = spec.id, "cannot add the public address: {e}");
    }
    if let Some(ip) = spec.inside_ip {
        if let Err(e) = takeover::add_address(ip, spec.inside_prefix, inside_if) {
            tracing::error!(slot = spec.id, "cannot add the inside address: {e}");
        }
    }
    if let Ok(mut h) = node.local_slots.held.lock() {
        if let Some(x) = h.get_mut(&spec.id) {
            x.live = true;
        }
    }
}

fn take_over(
    node: &Node,
    spec: &SlotSpec,
    epoch: u64,
    deadline: MonoMillis,
    public_if: &str,
    inside_if: &str,
) {
    if let Ok(mut h) = node.local_slots.held.lock() {
        h.insert(spec.id, Held { epoch, deadline, live: false });
    }
    add_addresses(node, spec, public_if, inside_if);
    // Clients whose tunnel was on another node sit on a dead TCP connection: reset it now.
    let me = node.db.node_id();
    let clients: Vec<(Ipv4Addr, u16, u16)> = node.db.read(|db| {
        db.sessions()
            .filter(|s| s.slot == Some(spec.id))
            .flat_map(|s| s.tunnels.iter())
            .filter(|t| t.node != me)
            .filter_map(|t| Some((t.public_ip.parse().ok()?, t.src_port, t.dst_port)))
            .collect()
    });
    tracing::info!(slot = spec.id, epoch, address = %spec.public_ip, clients = clients.len(), "slot taken over");
    takeover::announce(spec.public_ip, public_if, clients);
    if let Some(ip) = spec.inside_ip {
        takeover::announce(ip, inside_if, Vec::new());
    }
}

fn drop_addresses(node: &Node, spec: &SlotSpec, why: &str) {
    let Some(sc) = node.cfg.slots.as_ref() else { return };
    let was_live = node
        .local_slots
        .held
        .lock()
        .ok()
        .and_then(|mut h| h.get_mut(&spec.id).map(|x| std::mem::replace(&mut x.live, false)))
        .unwrap_or(false);
    if !was_live && !takeover::has_address(spec.public_ip) {
        return;
    }
    if let Err(e) =
        takeover::remove_address(spec.public_ip, spec.public_prefix, &sc.public_interface)
    {
        tracing::error!(slot = spec.id, "cannot remove the public address: {e}");
    }
    if let Some(ip) = spec.inside_ip {
        if let Err(e) = takeover::remove_address(ip, spec.inside_prefix, &sc.inside_interface) {
            tracing::error!(slot = spec.id, "cannot remove the inside address: {e}");
        }
    }
    tracing::info!(slot = spec.id, address = %spec.public_ip, why, "slot addresses removed");
}

/// Graceful switchover of a slot this node owns: remove the addresses first, then release the
/// slot in the replicated table; the leader hands it to the standby.
pub async fn switch(node: &Node, slot: u32) -> Result<u64, String> {
    let spec = node
        .cfg
        .slots
        .as_ref()
        .and_then(|s| s.slots.iter().find(|x| x.id == slot).cloned())
        .ok_or_else(|| format!("no slot {slot} in this node's configuration"))?;
    let (owner, epoch) = node
        .db
        .read(|db| db.slots().get(slot).map(|s| (s.owner, s.epoch)))
        .ok_or_else(|| format!("slot {slot} is not defined yet"))?;
    if owner != Some(node.db.node_id()) {
        return Err(format!(
            "slot {slot} is owned by {}; run the switch on its owner",
            owner.map_or_else(|| "no node".to_string(), |o| format!("node {o}"))
        ));
    }
    drop_addresses(node, &spec, "graceful switchover");
    let cmd = Command::Slot(SlotChange {
        at: node.clock.unix(),
        cmd: SlotCommand::Release { slot, node: node.db.node_id(), epoch },
    });
    match node.db.propose_command(cmd).await {
        Ok(Outcome::Slot { epoch }) => Ok(epoch),
        Ok(o) => Err(format!("release refused: {o:?}")),
        Err(e) => Err(e.to_string()),
    }
}
