//! The slot agent: where a slot moves, for one node (DESIGN.md §5), as a pure state machine.
//!
//! The agent decides; its driver (the node's slot manager) carries out. It renews the lease
//! of each slot this node owns (one renewal in flight per slot), takes over slots newly
//! assigned to it, and gives up addresses it may no longer answer for: a slot now owned by
//! another node, a renewal refused because the epoch moved on, and — the fencing rule — a
//! slot whose lease it could not renew, `renew_interval` **before** the lease ends on the
//! local monotonic clock, counted from the renewal's proposal, so two nodes never hold one
//! address. On the Raft leader it also defines the configured slots and hands vacant slots
//! (lease lapsed or released) to [`successor`](crate::slot::successor) of the healthy
//! members ([`crate::health`]).
//!
//! No wall clock is trusted. The owner's deadline counts from the monotonic time it
//! *proposed* a renewal that then committed; a slot newly assigned to this node goes live
//! only once its first renewal committed, so every deadline has that origin. The leader
//! judges a lease lapsed when the slot's renewal count has not moved for a lease length on
//! its own monotonic clock ([`Silence`]); since a renewal is seen applied only after it was
//! proposed, the owner's fencing point always comes first, whatever either wall clock says.
//! The fencing point also goes to the kernel ([`SlotAction::AddAddresses`],
//! [`SlotAction::ExtendFence`]), so it holds when the process is dead or frozen.
//!
//! # Methods
//!
//! A `SlotAgent` has four kinds of methods, like quinn-proto's `Connection`:
//!
//! - **Inputs** (`handle_*`): [`handle_table`](SlotAgent::handle_table) with the applied slot
//!   table and the cluster view on every change; [`handle_renewed`](SlotAgent::handle_renewed),
//!   [`handle_defined`](SlotAgent::handle_defined) and
//!   [`handle_assigned`](SlotAgent::handle_assigned) with the results of the proposals it
//!   asked for; [`handle_switch`](SlotAgent::handle_switch) for a graceful switchover;
//!   [`handle_stop`](SlotAgent::handle_stop) when the node stops.
//! - **Timer**: [`handle_timeout`](SlotAgent::handle_timeout) when the deadline of
//!   [`poll_timeout`](SlotAgent::poll_timeout) passes (harmless when called early or twice).
//! - **Outputs** (`poll_*`): [`poll_action`](SlotAgent::poll_action) — addresses to add or
//!   drop, commands to propose; [`poll_view`](SlotAgent::poll_view) — the listener's read view,
//!   when it changed.
//! - **Queries**: [`address_view`](SlotAgent::address_view).
//!
//! After every input or timeout the driver calls, in this order: `poll_view` (publish it
//! first, so the listener stops answering for a slot before its address goes), `poll_action`
//! until it returns `None` (performing the actions in order: an add must not overtake an
//! earlier drop), then `poll_timeout` (re-arm its one timer). Every method
//! takes `now` on both clocks ([`Now`]); the agent reads no clock.

mod action;
mod duty;
mod view;

pub use action::{AddReason, DropReason, ProposalResult, SlotAction};
pub use view::{AddressView, SlotMoved};

use crate::health::{observe_members, MemberSilence, Silence};
use crate::slot::{Slot, SlotSpec, SlotTable};
use crate::time::{MonoMillis, UnixMillis};
use crate::Member;
use duty::{Duty, DutyConfig};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// Both clocks at one instant: monotonic for every decision, cluster time
/// ([`crate::cluster_time`]) for the timestamps of the commands it proposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Now {
    /// Monotonic time.
    pub mono: MonoMillis,
    /// Cluster time (command timestamps only).
    pub wall: UnixMillis,
}

/// What the agent of one node is configured with.
#[derive(Debug, Clone)]
pub struct SlotAgentConfig {
    /// This node's id.
    pub node: u64,
    /// The configured slots.
    pub slots: Vec<SlotSpec>,
    /// How often an owner renews its lease; also the fencing margin.
    pub renew_interval: Duration,
    /// Lease length.
    pub lease: Duration,
    /// How long a silent member stays healthy; `None` without a cluster (only this node).
    pub node_down_after: Option<Duration>,
}

/// What the agent needs to know about the cluster besides the slot table.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// Whether this node leads the Raft group.
    pub is_leader: bool,
    /// The members as the replicated state has them.
    pub members: Vec<Member>,
    /// When the log entry that last moved each slot's lease counter arrived in this node's
    /// log ([`Slot::lease_index`]), where known. A slot's silence counts from there rather
    /// than from the apply: entries a dead leader had replicated but not marked committed
    /// apply only after the next election, and a lease renewed for the last time just before
    /// its owner died with that leader would otherwise run a second time from the election.
    pub lease_heard: BTreeMap<u32, MonoMillis>,
}

/// This node's view of a slot it owns.
#[derive(Debug, Clone, Copy)]
struct Held {
    epoch: u64,
    /// Local (monotonic) end of the last committed lease, counted from the proposal time.
    deadline: MonoMillis,
    /// Whether the addresses are on our interfaces.
    live: bool,
    /// Whether they were announced (taken over) under this epoch; a later add is a restore.
    announced: bool,
    /// A graceful switchover is under way: a late renewal must not put the addresses back.
    switching: bool,
}

/// With nothing else due the agent looks again after this long.
const RECHECK: Duration = Duration::from_secs(1);
/// Never spin: a deadline that passed without effect is looked at again after this long.
const MIN_WAKE: Duration = Duration::from_millis(2);
/// A renew tick this late counts as missed: the next one is a full interval from now
/// (tokio's `MissedTickBehavior::Delay`, which the manager used before it was pure).
const TICK_SLACK: Duration = Duration::from_millis(5);

/// The slot agent of one node; see the [module documentation](self).
#[derive(Debug)]
pub struct SlotAgent {
    cfg: SlotAgentConfig,
    lease_ms: u64,
    table: SlotTable,
    seen_table: bool,
    cluster: ClusterView,
    /// When each slot's renewal count last moved here (the leader's lease judgment).
    slot_silence: Silence<u32, (u64, u64)>,
    /// When each member's heartbeat count last moved here.
    member_silence: MemberSilence,
    held: BTreeMap<u32, Held>,
    in_flight: BTreeSet<u32>,
    next_renew: MonoMillis,
    last: Now,
    leader_since: Option<MonoMillis>,
    duty: Option<Duty>,
    actions: VecDeque<SlotAction>,
    view_changed: bool,
    stopped: bool,
}

impl SlotAgent {
    /// A new agent holding nothing; its first renew tick is due at `now`.
    pub fn new(cfg: SlotAgentConfig, now: Now) -> Self {
        SlotAgent {
            lease_ms: cfg.lease.as_millis() as u64,
            cfg,
            table: SlotTable::default(),
            seen_table: false,
            cluster: ClusterView::default(),
            slot_silence: Silence::default(),
            member_silence: MemberSilence::default(),
            held: BTreeMap::new(),
            in_flight: BTreeSet::new(),
            next_renew: now.mono,
            last: now,
            leader_since: None,
            duty: None,
            actions: VecDeque::new(),
            view_changed: true,
            stopped: false,
        }
    }

    /// The applied slot table and the cluster view, on every change. The agent acts at once
    /// only when the table changed owners or epochs (a standby takes over the moment its
    /// assignment applies); other changes are kept for its next pass. The first table only
    /// seeds what it compares against.
    pub fn handle_table(&mut self, now: Now, table: &SlotTable, cluster: ClusterView) {
        if self.stopped {
            return;
        }
        self.last = now;
        let moved = self.seen_table && !same_ownership(&self.table, table);
        if self.table != *table {
            self.table = table.clone();
        }
        self.seen_table = true;
        for slot in table.iter() {
            let id = slot.spec.id;
            // Never later than now: a renewal cannot have arrived after it applied.
            let heard = cluster.lease_heard.get(&id).map_or(now.mono, |t| (*t).min(now.mono));
            self.slot_silence.observe(id, slot.lease_counter(), heard);
        }
        observe_members(&mut self.member_silence, &cluster.members, now.mono);
        self.cluster = cluster;
        if moved {
            self.pass(now, false);
        }
    }

    /// A renewal of `slot` under `epoch`, proposed at `proposed_at`, came back.
    pub fn handle_renewed(
        &mut self,
        now: Now,
        slot: u32,
        epoch: u64,
        proposed_at: MonoMillis,
        result: ProposalResult,
    ) {
        self.in_flight.remove(&slot);
        if self.stopped || !self.configured(slot) {
            return;
        }
        self.last = now;
        match result {
            ProposalResult::Applied { epoch: e } if e == epoch => {
                let lease = Duration::from_millis(self.lease_ms);
                let margin = self.cfg.renew_interval;
                let Some(h) = self.held.get_mut(&slot).filter(|h| h.epoch == e) else { return };
                h.deadline = h.deadline.max(proposed_at.plus(lease));
                let fence_at = MonoMillis(h.deadline.0.saturating_sub(margin.as_millis() as u64));
                if h.live {
                    self.actions.push_back(SlotAction::ExtendFence { slot, fence_at });
                } else if !h.switching && now.mono < fence_at {
                    // The first renewal of a take-over, or a partition that healed before the
                    // leader moved the slot: ours until `fence_at`.
                    let reason = if h.announced { AddReason::Restore } else { AddReason::TakeOver };
                    h.live = true;
                    h.announced = true;
                    self.view_changed = true;
                    self.actions.push_back(SlotAction::AddAddresses {
                        slot,
                        epoch,
                        reason,
                        fence_at,
                    });
                }
            }
            ProposalResult::Applied { .. } | ProposalResult::Refused(_) => {
                self.drop_addresses(slot, DropReason::EpochMovedOn);
            }
            ProposalResult::NotApplied => {}
        }
    }

    /// A definition this agent asked for (as leader) came back.
    pub fn handle_defined(&mut self, now: Now, _slot: u32, _result: ProposalResult) {
        self.last = now;
        self.advance_duty(now);
    }

    /// An assignment of `slot` to `node` this agent asked for (as leader) came back.
    pub fn handle_assigned(&mut self, now: Now, _slot: u32, node: u64, result: ProposalResult) {
        self.last = now;
        if let Some(d) = self.duty.as_mut() {
            d.assigned(node, result);
        }
        self.advance_duty(now);
    }

    /// The operator asked to switch `slot` over gracefully: its addresses go now; the driver
    /// proposes the release once they are gone. Renewal goes on until the release applies.
    pub fn handle_switch(&mut self, now: Now, slot: u32) {
        if self.stopped || !self.configured(slot) {
            return;
        }
        self.last = now;
        if let Some(h) = self.held.get_mut(&slot) {
            h.switching = true;
        }
        self.drop_addresses(slot, DropReason::Switchover);
    }

    /// The node stops: release nothing in the table (the lease lapses and the standby takes
    /// over) but take every address off now. The agent does nothing after this.
    pub fn handle_stop(&mut self) {
        if self.stopped {
            return;
        }
        for i in 0..self.cfg.slots.len() {
            self.drop_addresses(self.cfg.slots[i].id, DropReason::Stopping);
        }
        self.stopped = true;
        self.duty = None;
    }

    /// The deadline of [`poll_timeout`](Self::poll_timeout) passed: one look at everything —
    /// renew (when the renew tick is due), fence, take over, and (as leader) hand out lapsed
    /// slots. Harmless when called early or twice: each rule checks `now` itself, and a
    /// slot never has two renewals nor the leader two duties in flight.
    pub fn handle_timeout(&mut self, now: Now) {
        if self.stopped {
            return;
        }
        self.last = now;
        let tick = now.mono >= self.next_renew;
        if tick {
            let period = self.cfg.renew_interval;
            self.next_renew = if now.mono > self.next_renew.plus(TICK_SLACK) {
                now.mono.plus(period)
            } else {
                self.next_renew.plus(period)
            };
        }
        self.pass(now, tick);
    }

    /// The next action to carry out, in order.
    pub fn poll_action(&mut self) -> Option<SlotAction> {
        self.actions.pop_front()
    }

    /// The listener's read view, when it changed since the last call.
    pub fn poll_view(&mut self) -> Option<AddressView> {
        std::mem::take(&mut self.view_changed).then(|| self.address_view())
    }

    /// When to call [`handle_timeout`](Self::handle_timeout), on the monotonic clock, and
    /// which deadline that is: the renew tick, the fencing point of a slot whose addresses
    /// are up, (leader) one millisecond past the end of an owner's lease (a lease counts as
    /// held at its end), or a recheck a second after the last input. `None` once stopped.
    pub fn poll_timeout(&self) -> Option<(MonoMillis, &'static str)> {
        if self.stopped {
            return None;
        }
        let mut other = (self.last.mono.plus(RECHECK), "recheck");
        let mut consider = |t: MonoMillis, what: &'static str| {
            if t < other.0 {
                other = (t, what);
            }
        };
        let margin = self.cfg.renew_interval.as_millis() as u64;
        for h in self.held.values().filter(|h| h.live) {
            consider(MonoMillis(h.deadline.0.saturating_sub(margin)), "fence");
        }
        if self.cluster.is_leader {
            for s in self.table.iter().filter(|s| self.configured(s.spec.id)) {
                if let (Some(_), Some(since)) = (s.owner, self.slot_silence.since(s.spec.id)) {
                    let end = since.plus(lease_period(s, self.lease_ms) + Duration::from_millis(1));
                    consider(end, "lease end");
                }
            }
        }
        if other.0 <= self.last.mono {
            other.0 = self.last.mono.plus(MIN_WAKE);
        }
        Some(if self.next_renew <= other.0 { (self.next_renew, "renew") } else { other })
    }

    /// The listener's read view now.
    pub fn address_view(&self) -> AddressView {
        AddressView {
            by_ip: self.cfg.slots.iter().map(|s| (s.public_ip, s.id)).collect(),
            held: self.held.iter().map(|(id, h)| (*id, (h.epoch, h.live))).collect(),
        }
    }

    /// One look at everything: leader duties, then each configured slot in order.
    fn pass(&mut self, now: Now, tick: bool) {
        if self.cluster.is_leader {
            let since = *self.leader_since.get_or_insert(now.mono);
            if self.duty.is_none() {
                self.duty = Some(Duty::new(now.wall, self.table.clone(), since, &self.cfg.slots));
                self.advance_duty(now);
            }
        } else {
            self.leader_since = None;
        }
        let me = self.cfg.node;
        let margin = self.cfg.renew_interval;
        // A take-over renews at once, and so does every slot after it in this pass.
        let mut renew_due = tick;
        for i in 0..self.cfg.slots.len() {
            let id = self.cfg.slots[i].id;
            let Some(slot) = self.table.get(id) else { continue };
            let (owner, epoch) = (slot.owner, slot.epoch);
            let lapsed = lapsed(slot, &self.slot_silence, now.mono, self.lease_ms);
            let held = self.held.get(&id).copied();
            if owner == Some(me) && !(lapsed && held.is_none()) {
                match held {
                    Some(h) if h.epoch == epoch => {
                        // Fencing: never answer past a lease we could not renew.
                        if h.live && now.mono.plus(margin) >= h.deadline {
                            self.drop_addresses(id, DropReason::LeaseNotRenewed);
                        }
                    }
                    _ => {
                        // Newly ours: renew at once; the addresses go up when that renewal
                        // commits, with a deadline counted from its proposal.
                        let h = Held {
                            epoch,
                            deadline: now.mono,
                            live: false,
                            announced: false,
                            switching: false,
                        };
                        self.held.insert(id, h);
                        renew_due = true;
                    }
                }
                if renew_due && self.in_flight.insert(id) {
                    self.actions.push_back(SlotAction::ProposeRenew {
                        slot: id,
                        node: me,
                        epoch,
                        at: now.wall,
                        proposed_at: now.mono,
                    });
                }
            } else if held.is_some() {
                // Another node owns it now (or it is vacant): we must not answer for it.
                self.drop_addresses(id, DropReason::OwnedElsewhere);
                self.held.remove(&id);
                self.view_changed = true;
            }
        }
    }

    /// Ask the leader duty for its next proposal; forget it once done.
    fn advance_duty(&mut self, now: Now) {
        let Some(duty) = self.duty.as_mut() else { return };
        let cfg = DutyConfig {
            me: self.cfg.node,
            lease_ms: self.lease_ms,
            node_down_after: self.cfg.node_down_after,
            members: &self.cluster.members,
            slot_silence: &self.slot_silence,
            member_silence: &self.member_silence,
        };
        match duty.next(now.mono, &cfg) {
            Some(a) => self.actions.push_back(a),
            None => self.duty = None,
        }
    }

    fn drop_addresses(&mut self, slot: u32, reason: DropReason) {
        let was_live =
            self.held.get_mut(&slot).is_some_and(|h| std::mem::replace(&mut h.live, false));
        self.view_changed |= was_live;
        self.actions.push_back(SlotAction::DropAddresses { slot, reason, was_live });
    }

    fn configured(&self, slot: u32) -> bool {
        self.cfg.slots.iter().any(|s| s.id == slot)
    }
}

/// How long a slot's renewal count may stand still before its lease counts as lapsed: a
/// lease, or two for an owner that has not renewed yet (its first renewal may queue behind
/// the take-over of several slots).
fn lease_period(slot: &Slot, lease_ms: u64) -> Duration {
    Duration::from_millis(if slot.renewals == 0 { 2 * lease_ms } else { lease_ms })
}

/// Whether `slot` is vacant at `now` as this node judges it: no owner, or the owner's
/// renewal count has not moved for its lease period ([`Silence`]).
pub(crate) fn lapsed(
    slot: &Slot,
    silence: &Silence<u32, (u64, u64)>,
    now: MonoMillis,
    lease_ms: u64,
) -> bool {
    // A lease counts as held at its end.
    slot.owner.is_none() || silence.silent_for(slot.spec.id, now) > lease_period(slot, lease_ms)
}

/// Whether two tables agree on who owns which slot under which epoch.
fn same_ownership(a: &SlotTable, b: &SlotTable) -> bool {
    a.iter()
        .map(|s| (s.spec.id, s.owner, s.epoch))
        .eq(b.iter().map(|s| (s.spec.id, s.owner, s.epoch)))
}
