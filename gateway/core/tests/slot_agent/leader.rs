//! The leader: lapsed leases, whom a slot goes to, defining slots, and the settling delay.

use crate::fixtures::*;
use gatehouse_core::slot_agent::{Now, ProposalResult, SlotAction};
use gatehouse_core::{Member, MonoMillis, SlotCommand, SlotTable, UnixMillis};

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
fn a_renewal_applied_after_an_election_counts_from_its_arrival() {
    // The owner (also the Raft leader) renewed at 0, its entry reached this follower at 20,
    // and then it died before the follower learnt the entry was committed. The follower wins
    // the election at 450 and applies the entry then: the lease still ends 600 after the
    // entry arrived, not 600 after the election.
    let specs = [spec(1, 1, 2)];
    let mut t = defined(&specs);
    assign(&mut t, 0, 1, 1);
    let mut a = agent(2, &specs);
    let members = vec![member(1, 1), member(2, 1)];
    a.handle_table(at(0), &t, follower());
    renew(&mut t, 0, 1);
    let mut view = leader(members);
    view.lease_heard.insert(1, MonoMillis(20));
    a.handle_table(at(450), &t, view);
    let acts = run_until(&mut a, 620);
    assert!(acts.is_empty(), "{acts:?}");
    assert_eq!(a.poll_timeout(), Some((MonoMillis(621), "lease end")));
    let acts = run_until(&mut a, 621);
    assert!(
        matches!(acts[..], [(621, SlotAction::ProposeAssign { node: 2, seen_renewals: 1, .. })]),
        "{acts:?}"
    );
}

#[test]
fn an_arrival_is_never_taken_as_later_than_the_apply() {
    let specs = [spec(1, 1, 2)];
    let mut t = defined(&specs);
    assign(&mut t, 0, 1, 1);
    renew(&mut t, 0, 1);
    let mut a = agent(2, &specs);
    let mut view = leader(vec![member(1, 1), member(2, 1)]);
    view.lease_heard.insert(1, MonoMillis(5_000));
    a.handle_table(at(100), &t, view);
    let acts = run_until(&mut a, 700);
    assert!(acts.is_empty(), "{acts:?}");
    assert!(matches!(run_until(&mut a, 701)[..], [(701, SlotAction::ProposeAssign { .. })]));
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

/// Slot 1 (owner 1, standby 2) released by node 1; whom leader 3 hands it to, seeing
/// `members`: its one action must be that assignment.
fn handed_to_after_release(members: Vec<Member>) -> u64 {
    let specs = [spec(1, 1, 2)];
    let mut t = defined(&specs);
    assign(&mut t, 0, 1, 1);
    t.apply(wall(10), 0, &SlotCommand::Release { slot: 1, node: 1, epoch: 1 }).unwrap();
    let mut a = agent(3, &specs);
    a.handle_table(at(20), &t, leader(members));
    a.handle_timeout(at(20));
    let acts = drain(&mut a);
    match acts[..] {
        [SlotAction::ProposeAssign { slot: 1, node, from: Some(1), .. }] => node,
        _ => panic!("{acts:?}"),
    }
}

#[test]
fn released_slot_is_not_handed_back_to_the_node_that_released_it() {
    let mut standby_down = member(2, 1);
    standby_down.down_since = Some(wall(0));
    // The standby when it is healthy, else the least-loaded healthy node other than 1.
    for (two, to) in [(member(2, 1), 2), (standby_down, 3)] {
        assert_eq!(handed_to_after_release(vec![member(1, 1), two, member(3, 1)]), to);
    }
}

#[test]
fn a_released_slot_goes_to_a_member_that_stays_rather_than_to_one_leaving() {
    // Node 1 hands slot 1 over as it stops; its standby 2 is stopping too (every node was
    // told to stop at once): the slot goes to 3, which stays, not to 2, which leaves soon.
    let leaving = |mut m: Member| {
        m.leaving = true;
        m
    };
    for (three, to) in [(member(3, 1), 3), (leaving(member(3, 1)), 2)] {
        let members = vec![leaving(member(1, 1)), leaving(member(2, 1)), three];
        assert_eq!(handed_to_after_release(members), to);
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
