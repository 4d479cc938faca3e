//! Member health: the one rule for "is this node alive enough to be given work" (DESIGN.md §5).
//!
//! A member is healthy while the leader has not declared it down and its last committed
//! heartbeat is younger than `node_down_after`. The slot leader hands vacant slots only to
//! healthy members; the Raft leader declares a member down once its heartbeat has lapsed.
//! Both judge with the same functions so they cannot disagree about a member.

use crate::time::UnixMillis;
use crate::Member;
use std::time::Duration;

/// Whether `member`'s last heartbeat is `node_down_after` or more old at `now`.
pub fn heartbeat_lapsed(member: &Member, now: UnixMillis, node_down_after: Duration) -> bool {
    let grace = node_down_after.as_millis() as u64;
    now.0 >= member.last_heartbeat.0.saturating_add(grace)
}

/// Whether `member` is healthy at `now`: not declared down, and heard from within
/// `node_down_after`.
pub fn is_healthy(member: &Member, now: UnixMillis, node_down_after: Duration) -> bool {
    member.down_since.is_none() && !heartbeat_lapsed(member, now, node_down_after)
}

/// The ids of the healthy members at `now`, in the order given; `me` always counts (a node
/// judging the cluster is alive). Without a cluster (`node_down_after` is `None`) only `me`.
pub fn healthy_members<'a>(
    members: impl IntoIterator<Item = &'a Member>,
    me: u64,
    now: UnixMillis,
    node_down_after: Option<Duration>,
) -> Vec<u64> {
    let Some(grace) = node_down_after else { return vec![me] };
    let mut healthy: Vec<u64> =
        members.into_iter().filter(|m| is_healthy(m, now, grace)).map(|m| m.id).collect();
    if !healthy.contains(&me) {
        healthy.push(me);
    }
    healthy
}

/// The members other than `me` that are not declared down yet but whose heartbeat has
/// lapsed at `now`: the ones the leader declares down.
pub fn newly_silent<'a>(
    members: impl IntoIterator<Item = &'a Member>,
    me: u64,
    now: UnixMillis,
    node_down_after: Duration,
) -> Vec<u64> {
    members
        .into_iter()
        .filter(|m| m.id != me && m.down_since.is_none())
        .filter(|m| heartbeat_lapsed(m, now, node_down_after))
        .map(|m| m.id)
        .collect()
}
