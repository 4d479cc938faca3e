//! The slot agent on a virtual clock (DESIGN.md §5): renewal, fencing, take-over, the
//! leader's assignments and the settling delay, member health. No sockets, no sleeps.
#![allow(clippy::unwrap_used)]

use gatehouse_core::health::{
    healthy_members, is_healthy, newly_silent, observe_members, MemberSilence,
};
use gatehouse_core::slot_agent::{
    AddReason, ClusterView, DropReason, Now, ProposalResult, SlotAction, SlotAgent,
    SlotAgentConfig, SlotMoved,
};
use gatehouse_core::{
    Member, MonoMillis, PoolRange, SlotCommand, SlotRef, SlotRefusal, SlotSpec, SlotTable,
    UnixMillis,
};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Wall-clock time at monotonic zero.
const WALL0: u64 = 1_700_000_000_000;
const RENEW: u64 = 150;
const LEASE: u64 = 600;
const DOWN_AFTER: u64 = 3_000;

fn at(ms: u64) -> Now {
    Now { mono: MonoMillis(ms), wall: UnixMillis(WALL0 + ms) }
}

fn wall(ms: u64) -> UnixMillis {
    UnixMillis(WALL0 + ms)
}

fn spec(id: u32, preferred_owner: u64, standby: u64) -> SlotSpec {
    SlotSpec {
        id,
        public_ip: Ipv4Addr::new(192, 0, 2, id as u8),
        public_prefix: 24,
        inside_ip: None,
        inside_prefix: 24,
        pool: PoolRange {
            name: "pool".into(),
            first: Ipv4Addr::new(10, 0, id as u8, 1),
            last: Ipv4Addr::new(10, 0, id as u8, 254),
        },
        preferred_owner,
        standby,
        capacity: 100,
    }
}

fn agent(me: u64, specs: &[SlotSpec]) -> SlotAgent {
    let cfg = SlotAgentConfig {
        node: me,
        slots: specs.to_vec(),
        renew_interval: Duration::from_millis(RENEW),
        lease: Duration::from_millis(LEASE),
        node_down_after: Some(Duration::from_millis(DOWN_AFTER)),
    };
    SlotAgent::new(cfg, at(0))
}

fn member(id: u64, heartbeats: u64) -> Member {
    Member { id, last_heartbeat: wall(0), heartbeats, down_since: None }
}

fn follower() -> ClusterView {
    ClusterView { is_leader: false, members: Vec::new() }
}

fn leader(members: Vec<Member>) -> ClusterView {
    ClusterView { is_leader: true, members }
}

fn defined(specs: &[SlotSpec]) -> SlotTable {
    let mut t = SlotTable::default();
    for s in specs {
        t.apply(wall(0), &SlotCommand::Define { spec: s.clone() }).unwrap();
    }
    t
}

fn assign(t: &mut SlotTable, now_ms: u64, slot: u32, node: u64) {
    let s = t.get(slot).unwrap();
    let (from_epoch, seen_renewals) = (s.epoch, s.renewals);
    t.apply(wall(now_ms), &SlotCommand::Assign { slot, node, from_epoch, seen_renewals }).unwrap();
}

fn renew(t: &mut SlotTable, now_ms: u64, slot: u32) {
    let s = t.get(slot).unwrap();
    let (node, epoch) = (s.owner.unwrap(), s.epoch);
    t.apply(wall(now_ms), &SlotCommand::Renew { slot, node, epoch }).unwrap();
}

fn drain(a: &mut SlotAgent) -> Vec<SlotAction> {
    std::iter::from_fn(|| a.poll_action()).collect()
}

/// Follow the agent's timer up to and including `until`, as a driver would; every action
/// with the time it came out.
fn run_until(a: &mut SlotAgent, until: u64) -> Vec<(u64, SlotAction)> {
    let mut out = Vec::new();
    while let Some((t, _)) = a.poll_timeout() {
        if t.0 > until {
            break;
        }
        a.handle_timeout(at(t.0));
        out.extend(drain(a).into_iter().map(|x| (t.0, x)));
    }
    out
}

fn renewals(actions: &[(u64, SlotAction)]) -> Vec<u64> {
    actions
        .iter()
        .filter(|(_, x)| matches!(x, SlotAction::ProposeRenew { .. }))
        .map(|(t, _)| *t)
        .collect()
}

fn drops(actions: &[(u64, SlotAction)]) -> Vec<(u64, DropReason)> {
    actions
        .iter()
        .filter_map(|(t, x)| match x {
            SlotAction::DropAddresses { reason, .. } => Some((*t, *reason)),
            _ => None,
        })
        .collect()
}

fn applied(epoch: u64) -> ProposalResult {
    ProposalResult::Applied { epoch }
}

fn add(epoch: u64, reason: AddReason, fence_at: u64) -> SlotAction {
    SlotAction::AddAddresses { slot: 1, epoch, reason, fence_at: MonoMillis(fence_at) }
}

/// Node 1 was assigned slot 1 (epoch 1) at time 0 and proposed its first renewal at once;
/// it committed at 3, so the addresses are up with the deadline 0 + 600 (fence at 450).
fn owner_at_zero() -> (SlotAgent, SlotTable) {
    let specs = [spec(1, 1, 2)];
    let mut a = agent(1, &specs);
    let mut t = defined(&specs);
    assign(&mut t, 0, 1, 1);
    a.handle_table(at(0), &t, follower());
    let first = run_until(&mut a, 0);
    assert!(!first.iter().any(|(_, x)| matches!(x, SlotAction::AddAddresses { .. })));
    assert_eq!(renewals(&first), vec![0]);
    a.handle_renewed(at(3), 1, 1, MonoMillis(0), applied(1));
    assert_eq!(drain(&mut a), vec![add(1, AddReason::TakeOver, 450)]);
    (a, t)
}

#[test]
fn renews_every_interval_with_one_renewal_in_flight_per_slot() {
    let (mut a, _) = owner_at_zero();
    assert_eq!(renewals(&run_until(&mut a, 150)), vec![150]);
    // Unanswered: the tick at 300 proposes nothing more.
    assert!(renewals(&run_until(&mut a, 300)).is_empty());
    a.handle_renewed(at(310), 1, 1, MonoMillis(150), applied(1));
    assert_eq!(
        drain(&mut a),
        vec![SlotAction::ExtendFence { slot: 1, fence_at: MonoMillis(600) }],
        "the kernel fence moves with each committed renewal, counted from its proposal"
    );
    assert_eq!(renewals(&run_until(&mut a, 450)), vec![450], "the next tick renews again");
    a.handle_renewed(at(451), 1, 1, MonoMillis(450), applied(1));
    drain(&mut a);
    // Answered promptly: one renewal at each interval.
    let mut times = Vec::new();
    for _ in 0..4 {
        let (t, what) = a.poll_timeout().unwrap();
        a.handle_timeout(at(t.0));
        for x in drain(&mut a) {
            if let SlotAction::ProposeRenew { proposed_at, .. } = x {
                assert_eq!(what, "renew");
                times.push(proposed_at.0);
                a.handle_renewed(at(t.0 + 1), 1, 1, proposed_at, applied(1));
            }
        }
    }
    assert_eq!(times, vec![600, 750, 900, 1050]);
}

#[test]
fn fence_drops_addresses_renew_interval_before_the_local_deadline_and_not_before() {
    let (mut a, _) = owner_at_zero();
    let acts = run_until(&mut a, 449);
    a.handle_renewed(at(449), 1, 1, MonoMillis(150), ProposalResult::NotApplied);
    assert!(drops(&acts).is_empty(), "still answering before the fence");
    assert_eq!(
        a.address_view().slot_for(Some(spec(1, 1, 2).public_ip)),
        Ok(Some(SlotRef { id: 1, epoch: 1 }))
    );
    let acts = run_until(&mut a, 450);
    assert_eq!(drops(&acts), vec![(450, DropReason::LeaseNotRenewed)]);
    assert_eq!(a.address_view().slot_for(Some(spec(1, 1, 2).public_ip)), Err(SlotMoved));
    assert!(drops(&run_until(&mut a, 2_000)).is_empty(), "dropped once");
}

#[test]
fn take_over_goes_live_only_when_its_first_renewal_commits() {
    let specs = [spec(1, 2, 1)];
    let mut a = agent(1, &specs);
    let mut t = defined(&specs);
    a.handle_table(at(0), &t, follower());
    run_until(&mut a, 1_000);
    assign(&mut t, 700, 1, 1);
    a.handle_table(at(1_000), &t, follower());
    let acts = drain(&mut a);
    assert!(
        matches!(
            acts[..],
            [SlotAction::ProposeRenew { slot: 1, epoch: 1, proposed_at: MonoMillis(1_000), .. }]
        ),
        "renew at once, no address yet: {acts:?}"
    );
    let ip = Some(spec(1, 2, 1).public_ip);
    assert_eq!(a.address_view().slot_for(ip), Err(SlotMoved), "not answering yet");
    // Committed at 1004: live until 1000 + 600 - 150.
    a.handle_renewed(at(1_004), 1, 1, MonoMillis(1_000), applied(1));
    assert_eq!(drain(&mut a), vec![add(1, AddReason::TakeOver, 1_450)]);
    assert_eq!(a.address_view().slot_for(ip), Ok(Some(SlotRef { id: 1, epoch: 1 })));

    // A first renewal that commits after its own fencing point puts nothing up; the next
    // tick tries again.
    let mut b = agent(1, &specs);
    let mut t = defined(&specs);
    b.handle_table(at(0), &t, follower());
    run_until(&mut b, 0);
    assign(&mut t, 0, 1, 1);
    b.handle_table(at(10), &t, follower());
    drain(&mut b);
    assert!(renewals(&run_until(&mut b, 499)).is_empty(), "one renewal in flight");
    b.handle_renewed(at(500), 1, 1, MonoMillis(10), applied(1));
    assert!(drain(&mut b).is_empty());
    assert_eq!(renewals(&run_until(&mut b, 600)), vec![600]);
    // Refused: the slot moved on before this node got it going.
    b.handle_renewed(
        at(605),
        1,
        1,
        MonoMillis(600),
        ProposalResult::Refused(SlotRefusal::StaleEpoch),
    );
    assert_eq!(
        drain(&mut b),
        vec![SlotAction::DropAddresses {
            slot: 1,
            reason: DropReason::EpochMovedOn,
            was_live: false
        }]
    );
}

#[test]
fn late_renewal_proposed_before_the_fence_restores_the_addresses_under_the_same_epoch() {
    let (mut a, _) = owner_at_zero();
    // The renewal proposed at 150 is still in flight when the fence comes at 450.
    let acts = run_until(&mut a, 450);
    assert_eq!(drops(&acts), vec![(450, DropReason::LeaseNotRenewed)]);
    a.handle_renewed(at(500), 1, 1, MonoMillis(150), applied(1));
    assert_eq!(drain(&mut a), vec![add(1, AddReason::Restore, 600)]);
    let ip = Some(spec(1, 1, 2).public_ip);
    assert_eq!(a.address_view().slot_for(ip), Ok(Some(SlotRef { id: 1, epoch: 1 })));
    // The new deadline counts from the proposal (150 + 600), not the commit (500 + 600).
    let acts = run_until(&mut a, 599);
    assert!(drops(&acts).is_empty());
    assert_eq!(drops(&run_until(&mut a, 600)), vec![(600, DropReason::LeaseNotRenewed)]);
}

#[test]
fn a_renewal_that_commits_during_a_switchover_does_not_put_the_addresses_back() {
    let (mut a, _) = owner_at_zero();
    assert_eq!(renewals(&run_until(&mut a, 150)), vec![150]);
    a.handle_switch(at(160), 1);
    drain(&mut a);
    a.handle_renewed(at(170), 1, 1, MonoMillis(150), applied(1));
    assert!(
        !drain(&mut a).iter().any(|x| matches!(x, SlotAction::AddAddresses { .. })),
        "the release is on its way"
    );
    assert_eq!(a.address_view().live(), Vec::<u32>::new());
}

#[test]
fn refused_renewal_drops_the_addresses_epoch_moved_on() {
    let (mut a, _) = owner_at_zero();
    run_until(&mut a, 150);
    a.handle_renewed(
        at(160),
        1,
        1,
        MonoMillis(150),
        ProposalResult::Refused(SlotRefusal::StaleEpoch),
    );
    assert_eq!(
        drain(&mut a),
        vec![SlotAction::DropAddresses {
            slot: 1,
            reason: DropReason::EpochMovedOn,
            was_live: true
        }]
    );
    assert_eq!(a.address_view().slot_for(Some(spec(1, 1, 2).public_ip)), Err(SlotMoved));

    let (mut b, _) = owner_at_zero();
    run_until(&mut b, 150);
    b.handle_renewed(at(160), 1, 1, MonoMillis(150), applied(2));
    assert!(matches!(
        drain(&mut b)[..],
        [SlotAction::DropAddresses { reason: DropReason::EpochMovedOn, .. }]
    ));
}

#[test]
fn slot_owned_elsewhere_drops_the_addresses_at_once() {
    let (mut a, mut t) = owner_at_zero();
    // The leader judged the lease lapsed and the standby got the slot.
    assign(&mut t, 400, 1, 2);
    a.handle_table(at(200), &t, follower());
    assert_eq!(
        drain(&mut a),
        vec![SlotAction::DropAddresses {
            slot: 1,
            reason: DropReason::OwnedElsewhere,
            was_live: true
        }]
    );
    assert_eq!(a.address_view().slot_for(Some(spec(1, 1, 2).public_ip)), Err(SlotMoved));
    assert!(run_until(&mut a, 3_000).is_empty(), "nothing more to do for a slot not ours");
}

#[test]
fn a_restarted_owner_renews_its_slot_back_unless_the_leader_moved_it() {
    let specs = [spec(1, 1, 2)];
    let mut t = defined(&specs);
    assign(&mut t, 0, 1, 1);
    renew(&mut t, 100, 1);
    // A new process of node 1, whatever its wall clock says.
    let mut a = agent(1, &specs);
    let later = Now { mono: MonoMillis(0), wall: wall(3_600_000) };
    a.handle_table(later, &t, follower());
    a.handle_timeout(later);
    let acts = drain(&mut a);
    assert!(matches!(acts[..], [SlotAction::ProposeRenew { slot: 1, epoch: 1, .. }]), "{acts:?}");
    // The leader had assigned it already: the renewal is refused, nothing was ever up.
    a.handle_renewed(at(5), 1, 1, MonoMillis(0), ProposalResult::Refused(SlotRefusal::StaleEpoch));
    assert!(matches!(
        drain(&mut a)[..],
        [SlotAction::DropAddresses { was_live: false, reason: DropReason::EpochMovedOn, .. }]
    ));
}

#[test]
fn leader_assigns_a_lapsed_slot_one_millisecond_after_its_renewals_stop_moving() {
    let specs = [spec(1, 1, 2)];
    let mut t = defined(&specs);
    assign(&mut t, 0, 1, 1);
    renew(&mut t, 0, 1);
    let mut a = agent(2, &specs);
    let members = vec![member(1, 1), member(2, 1)];
    a.handle_table(at(0), &t, leader(members.clone()));
    // A renewal commits at 300: the lease counts from when this node saw it.
    renew(&mut t, 300, 1);
    a.handle_table(at(300), &t, leader(members));
    let acts = run_until(&mut a, 900);
    assert!(acts.is_empty(), "the lease counts as held at its end: {acts:?}");
    assert_eq!(a.poll_timeout(), Some((MonoMillis(901), "lease end")));
    let acts = run_until(&mut a, 901);
    assert_eq!(
        acts,
        vec![(
            901,
            SlotAction::ProposeAssign {
                slot: 1,
                node: 2,
                from_epoch: 1,
                seen_renewals: 2,
                at: wall(901),
                from: Some(1),
            }
        )],
        "to the standby, compare-and-set on the renewals it saw stand still"
    );
}

#[test]
fn a_fresh_owner_gets_two_leases_to_renew_for_the_first_time() {
    let specs = [spec(1, 1, 2)];
    let mut t = defined(&specs);
    assign(&mut t, 0, 1, 1);
    let mut a = agent(2, &specs);
    a.handle_table(at(0), &t, leader(vec![member(1, 1), member(2, 1)]));
    assert!(run_until(&mut a, 2 * LEASE).is_empty());
    let acts = run_until(&mut a, 2 * LEASE + 1);
    assert!(matches!(acts[..], [(1_201, SlotAction::ProposeAssign { seen_renewals: 0, .. })]));
}

#[test]
fn wall_clocks_decide_nothing_for_the_leader() {
    // The owner's clock is an hour ahead (its renewal stamps say so), the leader's a minute
    // behind: the lease still ends a lease length after the renewal was seen.
    let specs = [spec(1, 1, 2)];
    let mut t = defined(&specs);
    assign(&mut t, 0, 1, 1);
    renew(&mut t, 3_600_000, 1);
    let skewed = |ms: u64| Now { mono: MonoMillis(ms), wall: UnixMillis(WALL0 + ms - 60_000) };
    let mut a = agent(2, &specs);
    a.handle_table(skewed(0), &t, leader(vec![member(1, 1), member(2, 1)]));
    let mut acts = Vec::new();
    while let Some((d, _)) = a.poll_timeout().filter(|(d, _)| d.0 <= 700) {
        a.handle_timeout(skewed(d.0));
        acts.extend(drain(&mut a).into_iter().map(|x| (d.0, x)));
    }
    assert!(matches!(acts[..], [(601, SlotAction::ProposeAssign { node: 2, .. })]), "{acts:?}");
}

#[test]
fn released_slot_is_not_handed_back_to_the_node_that_released_it() {
    let specs = [spec(1, 1, 2)];
    let mut t = defined(&specs);
    assign(&mut t, 0, 1, 1);
    t.apply(wall(10), &SlotCommand::Release { slot: 1, node: 1, epoch: 1 }).unwrap();
    let mut standby_down = member(2, 1);
    standby_down.down_since = Some(wall(0));
    // The standby when it is healthy, else the least-loaded healthy node other than 1.
    for (two, to) in [(member(2, 1), 2), (standby_down, 3)] {
        let mut a = agent(3, &specs);
        a.handle_table(at(20), &t, leader(vec![member(1, 1), two, member(3, 1)]));
        a.handle_timeout(at(20));
        let acts = drain(&mut a);
        assert!(
            matches!(acts[..], [SlotAction::ProposeAssign { slot: 1, node, from: Some(1), .. }] if node == to),
            "{acts:?}"
        );
    }
}

#[test]
fn leader_counts_its_own_committed_assignments_when_choosing_the_next_owner() {
    // Both slots' configured pairs are gone; 3 and 4 are healthy and own nothing.
    let specs = [spec(1, 1, 2), spec(2, 1, 2)];
    let mut t = defined(&specs);
    assign(&mut t, 0, 1, 1);
    assign(&mut t, 0, 2, 2);
    let quiet = 2 * LEASE + 1;
    for committed in [true, false] {
        let mut a = agent(3, &specs);
        let mut members = vec![member(3, 1), member(4, 1)];
        a.handle_table(at(0), &t, leader(members.clone()));
        // Keep 3 and 4 heartbeating while the owners stay silent.
        members = vec![member(3, 2), member(4, 2)];
        a.handle_table(at(quiet - 1), &t, leader(members));
        a.handle_timeout(at(quiet));
        let acts = drain(&mut a);
        assert!(
            matches!(acts[..], [SlotAction::ProposeAssign { slot: 1, node: 3, .. }]),
            "{acts:?}"
        );
        // One proposal at a time: the second slot waits for the first result.
        let result = if committed { applied(2) } else { ProposalResult::NotApplied };
        a.handle_assigned(at(quiet + 10), 1, 3, result);
        let next = if committed { 4 } else { 3 };
        assert!(
            matches!(drain(&mut a)[..], [SlotAction::ProposeAssign { slot: 2, node, .. }] if node == next)
        );
    }
}

#[test]
fn leader_defines_configured_slots_one_at_a_time() {
    let specs = [spec(1, 1, 2), spec(2, 2, 1)];
    let mut a = agent(1, &specs);
    a.handle_table(at(0), &SlotTable::default(), leader(vec![member(1, 1)]));
    a.handle_timeout(at(0));
    assert_eq!(
        drain(&mut a),
        vec![SlotAction::ProposeDefine { spec: specs[0].clone(), at: wall(0) }]
    );
    a.handle_defined(at(5), 1, applied(0));
    assert_eq!(
        drain(&mut a),
        vec![SlotAction::ProposeDefine { spec: specs[1].clone(), at: wall(0) }]
    );
}

#[test]
fn settling_keeps_a_never_assigned_slot_for_its_preferred_owner() {
    let specs = [spec(1, 1, 2)];
    let t = defined(&specs);
    // Node 2 leads; the preferred owner 1 has not started yet.
    let mut a = agent(2, &specs);
    a.handle_table(at(0), &t, leader(vec![member(2, 1)]));
    let settle = 2 * DOWN_AFTER;
    let early = run_until(&mut a, settle - 1);
    assert!(early.is_empty(), "nobody else gets it within 2 × node_down_after: {early:?}");
    let acts = run_until(&mut a, settle + RENEW);
    assert!(
        matches!(acts[..], [(t0, SlotAction::ProposeAssign { node: 2, from_epoch: 0, .. })] if t0 >= settle)
    );

    // The preferred owner is healthy: it gets the slot at once.
    let mut b = agent(2, &specs);
    b.handle_table(at(0), &t, leader(vec![member(1, 1), member(2, 1)]));
    let acts = run_until(&mut b, 0);
    assert!(matches!(acts[..], [(0, SlotAction::ProposeAssign { node: 1, .. })]), "{acts:?}");
}

#[test]
fn member_health_is_heartbeat_silence_against_node_down_after_and_not_declared_down() {
    let d = Duration::from_millis(DOWN_AFTER);
    let mut silence = MemberSilence::default();
    let m = member(1, 5);
    let mut down = member(2, 5);
    down.down_since = Some(wall(900));
    let members = [m.clone(), down.clone(), member(3, 7)];
    observe_members(&mut silence, &members, MonoMillis(0));
    // Node 1 heartbeats at 1000; 3 stays silent.
    observe_members(&mut silence, &[member(1, 6)], MonoMillis(1_000));
    let t = |ms: u64| MonoMillis(ms);
    assert!(is_healthy(&m, &silence, t(1_000 + DOWN_AFTER - 1), d));
    assert!(!is_healthy(&m, &silence, t(1_000 + DOWN_AFTER), d));
    assert!(!is_healthy(&down, &silence, t(1_001), d), "declared down until its next heartbeat");
    let now = t(DOWN_AFTER);
    assert_eq!(healthy_members(&members, 9, &silence, now, Some(d)), vec![1, 9], "me counts");
    assert_eq!(healthy_members(&members, 9, &silence, now, None), vec![9], "no cluster: only me");
    assert_eq!(
        newly_silent(&members, 9, &silence, now, d),
        vec![(3, 7)],
        "down already is not declared again; the count seen goes with the verdict"
    );
}

#[test]
fn graceful_switch_drops_the_addresses_first() {
    let (mut a, _) = owner_at_zero();
    a.handle_switch(at(10), 1);
    assert_eq!(
        drain(&mut a),
        vec![SlotAction::DropAddresses { slot: 1, reason: DropReason::Switchover, was_live: true }]
    );
    assert_eq!(a.address_view().live(), Vec::<u32>::new());
}

#[test]
fn stop_drops_every_address_and_ends_the_timer() {
    let specs = [spec(1, 1, 2), spec(2, 2, 1)];
    let mut a = agent(1, &specs);
    let mut t = defined(&specs);
    assign(&mut t, 0, 1, 1);
    a.handle_table(at(0), &t, follower());
    run_until(&mut a, 0);
    a.handle_renewed(at(2), 1, 1, MonoMillis(0), applied(1));
    drain(&mut a);
    assert_eq!(a.address_view().live(), vec![1]);
    a.handle_stop();
    assert_eq!(
        drain(&mut a),
        vec![
            SlotAction::DropAddresses { slot: 1, reason: DropReason::Stopping, was_live: true },
            SlotAction::DropAddresses { slot: 2, reason: DropReason::Stopping, was_live: false },
        ]
    );
    assert_eq!(a.poll_timeout(), None);
    assert!(a.poll_view().is_some_and(|v| v.live().is_empty()));
}

#[test]
fn address_view_tells_node_addresses_held_slots_and_moved_slots_apart() {
    let (mut a, _) = owner_at_zero();
    let v = a.poll_view().unwrap();
    assert_eq!(v.slot_for(None), Ok(None));
    assert_eq!(v.slot_for(Some(Ipv4Addr::new(198, 51, 100, 1))), Ok(None));
    assert_eq!(v.slot_for(Some(spec(1, 1, 2).public_ip)), Ok(Some(SlotRef { id: 1, epoch: 1 })));
    assert_eq!(a.poll_view(), None, "unchanged");
}

#[test]
fn early_timeout_neither_renews_nor_fences_early() {
    let (mut a, _) = owner_at_zero();
    a.handle_timeout(at(100));
    a.handle_timeout(at(100));
    assert!(drain(&mut a).is_empty(), "the renew tick is at 150, the fence at 450");
    a.handle_timeout(at(449));
    let acts = drain(&mut a);
    assert!(matches!(acts[..], [SlotAction::ProposeRenew { proposed_at: MonoMillis(449), .. }]));
    a.handle_timeout(at(450));
    assert!(matches!(
        drain(&mut a)[..],
        [SlotAction::DropAddresses { reason: DropReason::LeaseNotRenewed, .. }]
    ));
}

/// As the node's driver does: the table and cluster view are fed again at every wake-up,
/// right before the timeout.
fn run_refreshing(
    a: &mut SlotAgent,
    t: &SlotTable,
    cluster: &ClusterView,
    until: u64,
) -> Vec<(u64, SlotAction)> {
    let mut out = Vec::new();
    while let Some((d, _)) = a.poll_timeout() {
        if d.0 > until {
            break;
        }
        a.handle_table(at(d.0), t, cluster.clone());
        a.handle_timeout(at(d.0));
        out.extend(drain(a).into_iter().map(|x| (d.0, x)));
    }
    out
}

#[test]
fn fence_and_lease_end_keep_their_time_when_inputs_arrive_at_every_wake() {
    let (mut a, t) = owner_at_zero();
    let acts = run_refreshing(&mut a, &t, &follower(), 2_000);
    assert_eq!(drops(&acts), vec![(450, DropReason::LeaseNotRenewed)]);

    let specs = [spec(1, 1, 2)];
    let mut t = defined(&specs);
    assign(&mut t, 0, 1, 1);
    renew(&mut t, 0, 1);
    let mut b = agent(2, &specs);
    let cluster = leader(vec![member(1, 1), member(2, 1)]);
    b.handle_table(at(0), &t, cluster.clone());
    let acts = run_refreshing(&mut b, &t, &cluster, 700);
    assert!(matches!(acts[..], [(601, SlotAction::ProposeAssign { node: 2, .. })]), "{acts:?}");
}
