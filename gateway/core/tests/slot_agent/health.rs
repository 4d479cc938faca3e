//! Member health: heartbeat silence against node_down_after, and members declared down.

use crate::fixtures::*;
use gatehouse_core::health::{
    healthy_members, is_healthy, newly_silent, observe_members, MemberSilence,
};
use gatehouse_core::MonoMillis;
use std::time::Duration;

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
