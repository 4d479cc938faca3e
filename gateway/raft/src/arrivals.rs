//! When each recent log entry arrived in this node's log, on the local monotonic clock.
//!
//! An entry is applied when it commits, which on a follower can be long after it arrived: the
//! entries a dead leader had replicated but not yet marked committed apply only once the next
//! leader is elected and commits its own first entry. A node that judges how long ago a command
//! was proposed (a slot lease, DESIGN.md §5) must count from the arrival, which is no earlier
//! than the proposal, not from the apply, which may be an election later.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How many arrivals are kept. Entries apply within milliseconds of arriving while a leader
/// lives; this covers minutes of log at the cluster's usual rate.
const KEEP: usize = 16_384;

/// Arrival instants by log index, shared between the log store and its readers.
#[derive(Debug, Clone, Default)]
pub struct Arrivals(Arc<Mutex<BTreeMap<u64, Instant>>>);

impl Arrivals {
    /// When the entry at `index` arrived in this node's log, if it arrived while this process
    /// ran and is among the newest kept (a restart, a snapshot or a long lag forget it).
    pub fn at(&self, index: u64) -> Option<Instant> {
        self.lock().get(&index).copied()
    }

    /// The entries at `indexes` arrived at `at` (a re-append after a truncation replaces).
    pub(crate) fn record(&self, indexes: impl IntoIterator<Item = u64>, at: Instant) {
        let mut m = self.lock();
        for i in indexes {
            m.insert(i, at);
        }
        while m.len() > KEEP {
            m.pop_first();
        }
    }

    /// The entries from `index` on were removed (truncated).
    pub(crate) fn truncate(&self, index: u64) {
        drop(self.lock().split_off(&index));
    }

    /// The entries up to and including `index` were purged.
    pub(crate) fn purge(&self, index: u64) {
        let mut m = self.lock();
        *m = m.split_off(&index.saturating_add(1));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Instant>> {
        // The map stays consistent whatever a panicking holder did: every update is one call.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn records_replaces_truncates_and_purges() {
        let a = Arrivals::default();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(5);
        a.record(1..=4, t0);
        assert_eq!(a.at(3), Some(t0));
        a.truncate(3);
        assert_eq!((a.at(2), a.at(3), a.at(4)), (Some(t0), None, None));
        a.record([3], t1);
        assert_eq!(a.at(3), Some(t1));
        a.purge(2);
        assert_eq!((a.at(1), a.at(2), a.at(3)), (None, None, Some(t1)));
    }

    #[test]
    fn keeps_only_the_newest() {
        let a = Arrivals::default();
        let t = Instant::now();
        a.record(0..(KEEP as u64 + 10), t);
        assert_eq!(a.at(9), None);
        assert_eq!(a.at(10), Some(t));
        assert_eq!(a.at(KEEP as u64 + 9), Some(t));
    }
}
