//! The owner takes its addresses down: refused renewals, a moved slot, switchover, stop.

use crate::fixtures::*;
use gatehouse_core::slot_agent::{DropReason, Now, ProposalResult, SlotAction, SlotMoved};
use gatehouse_core::{MonoMillis, SlotRef, SlotRefusal};
use std::net::Ipv4Addr;

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
