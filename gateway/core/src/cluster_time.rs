//! Cluster time: the timestamp every replicated command carries, the same on every node
//! whatever its wall clock says (DESIGN.md §4: "a skewed wall clock can neither expire live
//! sessions nor delay a failover").
//!
//! Each node follows the newest timestamp it has seen committed and counts forward from it on
//! its own monotonic clock: `now = last stamp + monotonic time since it was applied here`. Its
//! wall clock only steers that count, by at most [`MAX_SLEW`] (one part in a thousand), so a
//! node whose wall clock is seconds ahead or behind stamps what the others would (within the
//! replication lag), and time never goes back when leadership moves to it. How far the wall
//! clock is from cluster time is the node's [`offset`](ClusterTime::offset) (a metric, and a
//! warning past a bound).
//!
//! Two cases trust the wall clock: a node that has seen no stamp yet, and a node whose
//! stamps all come from its own log replay at start (the cluster was down: nobody counted,
//! so the downtime is only known from a wall clock). A stamp counts as live once it comes
//! from a log entry appended after this process started.

use crate::time::{MonoMillis, UnixMillis};

/// How fast the wall clock may pull cluster time: 1 ms per second of monotonic time.
pub const MAX_SLEW: (u64, u64) = (1, 1000);

/// A node's view of cluster time; see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct ClusterTime {
    /// The newest stamp seen and the monotonic time it was seen at.
    anchor: Option<(UnixMillis, MonoMillis)>,
    /// Whether the anchor came from an entry appended after this process started.
    live: bool,
    /// The last log index present when the process started.
    replayed_up_to: u64,
}

impl ClusterTime {
    /// A node that found log entries up to `replayed_up_to` on disk at start.
    pub fn new(replayed_up_to: u64) -> Self {
        ClusterTime { anchor: None, live: false, replayed_up_to }
    }

    /// The newest applied stamp is `stamp`, from the entry at `index`, applied by `now`. A
    /// zero stamp is no stamp (entries applied so far carried none: Raft's own membership and
    /// blank entries).
    pub fn observe(&mut self, stamp: UnixMillis, index: u64, now: MonoMillis) {
        if stamp.0 == 0 {
            return;
        }
        let live = index > self.replayed_up_to;
        if live && !self.live {
            // The first live stamp replaces whatever replay left.
            self.anchor = Some((stamp, now));
            self.live = true;
            return;
        }
        match self.anchor {
            Some((s, _)) if stamp <= s => {}
            _ => self.anchor = Some((stamp, now)),
        }
    }

    /// Cluster time at monotonic `mono`, with this node's wall clock reading `wall`.
    pub fn now(&self, mono: MonoMillis, wall: UnixMillis) -> UnixMillis {
        let Some((stamp, seen)) = self.anchor else { return wall };
        let elapsed = mono.0.saturating_sub(seen.0);
        let counted = stamp.0.saturating_add(elapsed);
        if !self.live {
            // Nobody counted while the cluster was down: the wall clock knows, but time
            // still never goes back.
            return UnixMillis(wall.0.max(counted));
        }
        let slack = elapsed * MAX_SLEW.0 / MAX_SLEW.1;
        UnixMillis(wall.0.clamp(counted.saturating_sub(slack), counted.saturating_add(slack)))
    }

    /// How far this node's wall clock is ahead of cluster time (negative: behind), in
    /// milliseconds; `None` before a live stamp was seen.
    pub fn offset(&self, mono: MonoMillis, wall: UnixMillis) -> Option<i64> {
        let (stamp, seen) = self.anchor.filter(|_| self.live)?;
        let counted = stamp.0.saturating_add(mono.0.saturating_sub(seen.0));
        Some(wall.0 as i64 - counted as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000;

    #[test]
    fn no_stamp_yet_is_the_wall_clock() {
        let t = ClusterTime::new(0);
        assert_eq!(t.now(MonoMillis(5), UnixMillis(1_000_000)), UnixMillis(1_000_000));
        assert_eq!(t.offset(MonoMillis(5), UnixMillis(1_000_000)), None);
    }

    #[test]
    fn a_clock_ahead_or_behind_follows_the_committed_stamps() {
        for skew in [5 * S as i64, -5 * S as i64] {
            let mut t = ClusterTime::new(0);
            let real = |mono: u64| 1_000_000 + mono;
            let wall = |mono: u64| UnixMillis((real(mono) as i64 + skew) as u64);
            // Stamps from a correct leader every 50 ms.
            for mono in (0..10 * S).step_by(50) {
                t.observe(UnixMillis(real(mono)), 1 + mono, MonoMillis(mono));
                let now = t.now(MonoMillis(mono + 20), wall(mono + 20));
                assert!((now.0 as i64 - real(mono + 20) as i64).abs() <= 1, "{skew}: {now:?}");
            }
            assert_eq!(t.offset(MonoMillis(10 * S), wall(10 * S)), Some(skew));
        }
    }

    #[test]
    fn a_node_ahead_that_becomes_leader_does_not_jump_forward() {
        let mut t = ClusterTime::new(0);
        t.observe(UnixMillis(1_000_000), 1, MonoMillis(0));
        // No stamps for 10 s (it is the leader now and the only proposer): its own clock is
        // 5 s ahead, cluster time moves by 10 s plus at most 10 ms of slew.
        let now = t.now(MonoMillis(10 * S), UnixMillis(1_000_000 + 15 * S));
        assert_eq!(now, UnixMillis(1_000_000 + 10 * S + 10));
        let behind = t.now(MonoMillis(10 * S), UnixMillis(1_000_000 + 5 * S));
        assert_eq!(behind, UnixMillis(1_000_000 + 10 * S - 10));
    }

    #[test]
    fn entries_without_a_stamp_leave_the_wall_clock_in_charge() {
        // A fresh cluster applies Raft's membership entry first: no command, no stamp.
        let mut t = ClusterTime::new(0);
        t.observe(UnixMillis(0), 1, MonoMillis(5));
        assert_eq!(t.offset(MonoMillis(10), UnixMillis(1_000_000)), None, "no offset from nothing");
        assert_eq!(t.now(MonoMillis(10), UnixMillis(1_000_000)), UnixMillis(1_000_000));
        t.observe(UnixMillis(999_990), 2, MonoMillis(10));
        assert_eq!(t.offset(MonoMillis(10), UnixMillis(1_000_000)), Some(10));
    }

    #[test]
    fn time_never_goes_back_on_an_older_stamp() {
        let mut t = ClusterTime::new(0);
        t.observe(UnixMillis(2_000_000), 5, MonoMillis(100));
        t.observe(UnixMillis(1_000_000), 6, MonoMillis(200));
        assert_eq!(t.now(MonoMillis(300), UnixMillis(2_000_200)), UnixMillis(2_000_200));
    }

    #[test]
    fn after_a_cluster_restart_the_downtime_comes_from_the_wall_clock() {
        // Entries up to 40 were on disk; their stamps are an hour old.
        let mut t = ClusterTime::new(40);
        t.observe(UnixMillis(1_000_000), 40, MonoMillis(10));
        let wall = UnixMillis(1_000_000 + 3_600 * S);
        assert_eq!(t.now(MonoMillis(20), wall), wall);
        // Once a live stamp commits, it counts from there.
        t.observe(wall, 41, MonoMillis(30));
        assert_eq!(t.now(MonoMillis(130), UnixMillis(wall.0 + 5 * S)), UnixMillis(wall.0 + 100));
    }
}
