//! The owner keeps its slot: renewal, the fence, take-over, and timers that keep their time.

use crate::fixtures::*;
use gatehouse_core::slot_agent::{
    AddReason, ClusterView, DropReason, ProposalResult, SlotAction, SlotAgent, SlotMoved,
};
use gatehouse_core::{MonoMillis, SlotRef, SlotRefusal, SlotTable};

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
