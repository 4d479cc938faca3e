//! Liveness as one node judges it, on its own monotonic clock (DESIGN.md §4, §5).
//!
//! Replicated timestamps come from the proposer's clock, so "how old is this heartbeat" or
//! "has this lease ended" cannot be read off them without trusting every node's wall clock.
//! Instead each node watches *counters* in the applied state — a member's committed
//! heartbeats, a slot's committed renewals — and notes on its monotonic clock when each one
//! last changed ([`Silence`]). A member or an owner is silent for as long as its counter has
//! not moved here. A counter first seen starts its silence at that moment, so a node that has
//! just started or just became leader waits a full period before it judges anyone.
//!
//! Verdicts built on a silence are compare-and-set in the replicated state: the command
//! carries the counter value the judge saw, and `apply` refuses it if the counter moved since
//! (a heartbeat or renewal committed in between).
//!
//! The member rule used by everyone (the slot leader hands vacant slots only to healthy
//! members; the Raft leader declares silent members down): healthy while not declared down
//! and silent for less than `node_down_after`.

use crate::time::MonoMillis;
use crate::Member;
use std::collections::BTreeMap;
use std::time::Duration;

/// When each counter last changed, as this node saw it.
#[derive(Debug, Clone)]
pub struct Silence<K: Ord, C> {
    seen: BTreeMap<K, (C, MonoMillis)>,
}

impl<K: Ord, C> Default for Silence<K, C> {
    fn default() -> Self {
        Silence { seen: BTreeMap::new() }
    }
}

impl<K: Ord + Copy, C: PartialEq + Copy> Silence<K, C> {
    /// `key`'s counter reads `counter` at `now`.
    pub fn observe(&mut self, key: K, counter: C, now: MonoMillis) {
        match self.seen.get_mut(&key) {
            Some((c, _)) if *c == counter => {}
            Some(e) => *e = (counter, now),
            None => {
                self.seen.insert(key, (counter, now));
            }
        }
    }

    /// How long `key`'s counter has not moved at `now`; zero if it was never observed.
    pub fn silent_for(&self, key: K, now: MonoMillis) -> Duration {
        self.seen.get(&key).map_or(Duration::ZERO, |(_, at)| now.since(*at))
    }

    /// When `key`'s counter last moved (or was first seen).
    pub fn since(&self, key: K) -> Option<MonoMillis> {
        self.seen.get(&key).map(|(_, at)| *at)
    }

    /// The counter value last seen for `key`.
    pub fn counter(&self, key: K) -> Option<C> {
        self.seen.get(&key).map(|(c, _)| *c)
    }

    /// Forget keys `keep` rejects.
    pub fn retain(&mut self, mut keep: impl FnMut(K) -> bool) {
        self.seen.retain(|k, _| keep(*k));
    }
}

/// Member heartbeats as one node has seen them commit.
pub type MemberSilence = Silence<u64, u64>;

/// Note every member's heartbeat count at `now`.
pub fn observe_members<'a>(
    silence: &mut MemberSilence,
    members: impl IntoIterator<Item = &'a Member>,
    now: MonoMillis,
) {
    for m in members {
        silence.observe(m.id, m.heartbeats, now);
    }
}

/// Whether `member` is healthy at `now`: not declared down, and its heartbeat moved within
/// `node_down_after` (as `silence` saw it).
pub fn is_healthy(
    member: &Member,
    silence: &MemberSilence,
    now: MonoMillis,
    node_down_after: Duration,
) -> bool {
    member.down_since.is_none() && silence.silent_for(member.id, now) < node_down_after
}

/// The ids of the healthy members at `now`, in the order given; `me` always counts (a node
/// judging the cluster is alive). Without a cluster (`node_down_after` is `None`) only `me`.
pub fn healthy_members<'a>(
    members: impl IntoIterator<Item = &'a Member>,
    me: u64,
    silence: &MemberSilence,
    now: MonoMillis,
    node_down_after: Option<Duration>,
) -> Vec<u64> {
    let Some(grace) = node_down_after else { return vec![me] };
    let mut healthy: Vec<u64> =
        members.into_iter().filter(|m| is_healthy(m, silence, now, grace)).map(|m| m.id).collect();
    if !healthy.contains(&me) {
        healthy.push(me);
    }
    healthy
}

/// The members other than `me` not declared down yet whose heartbeat has not moved for
/// `node_down_after` at `now`, each with the heartbeat count seen (for the compare-and-set
/// `NodeDown`).
pub fn newly_silent<'a>(
    members: impl IntoIterator<Item = &'a Member>,
    me: u64,
    silence: &MemberSilence,
    now: MonoMillis,
    node_down_after: Duration,
) -> Vec<(u64, u64)> {
    members
        .into_iter()
        .filter(|m| m.id != me && m.down_since.is_none())
        .filter(|m| silence.silent_for(m.id, now) >= node_down_after)
        .map(|m| (m.id, m.heartbeats))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, heartbeats: u64) -> Member {
        Member { id, heartbeats, ..Member::default() }
    }

    #[test]
    fn silence_counts_from_the_last_change_seen_here() {
        let mut s = MemberSilence::default();
        s.observe(2, 7, MonoMillis(100));
        s.observe(2, 7, MonoMillis(400));
        assert_eq!(s.silent_for(2, MonoMillis(500)), Duration::from_millis(400));
        s.observe(2, 8, MonoMillis(600));
        assert_eq!(s.silent_for(2, MonoMillis(700)), Duration::from_millis(100));
        assert_eq!(s.silent_for(3, MonoMillis(700)), Duration::ZERO, "never seen: not silent");
    }

    #[test]
    fn a_member_first_seen_gets_a_full_period() {
        let mut s = MemberSilence::default();
        let m = [member(1, 1), member(2, 40)];
        observe_members(&mut s, &m, MonoMillis(1_000));
        let d = Duration::from_millis(500);
        assert!(newly_silent(&m, 1, &s, MonoMillis(1_499), d).is_empty());
        assert_eq!(newly_silent(&m, 1, &s, MonoMillis(1_500), d), vec![(2, 40)]);
        assert_eq!(healthy_members(&m, 1, &s, MonoMillis(1_500), Some(d)), vec![1]);
        assert_eq!(healthy_members(&m, 1, &s, MonoMillis(1_499), Some(d)), vec![1, 2]);
    }
}
