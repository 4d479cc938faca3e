//! When each recent log entry arrived in this node's log, on the local monotonic clock.
//!
//! An entry is applied when it commits, which on a follower can be long after it arrived: the
//! entries a dead leader had replicated but not yet marked committed apply only once the next
//! leader is elected and commits its own first entry. A node that judges how long ago a command
//! was proposed (a slot lease, DESIGN.md §5) must count from the arrival, which is no earlier
//! than the proposal, not from the apply, which may be an election later.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// The clock arrivals are read from (the crate reads none itself, STYLE.md).
type ArrivalClock = Box<dyn Fn() -> Instant + Send + Sync>;

/// How many arrivals are kept. Entries apply within milliseconds of arriving while a leader
/// lives; this covers minutes of log at the cluster's usual rate.
const KEEP: usize = 16_384;

/// Arrival instants by log index, shared between the log store and its readers. Nothing is
/// recorded until a clock is given ([`crate::SledLogStore::track_arrivals`]).
#[derive(Clone, Default)]
pub struct Arrivals {
    seen: Arc<Mutex<BTreeMap<u64, Instant>>>,
    clock: Arc<OnceLock<ArrivalClock>>,
}

impl std::fmt::Debug for Arrivals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arrivals").field("kept", &self.lock().len()).finish()
    }
}

impl Arrivals {
    /// Read arrivals from `clock` from now on (the first clock given stays).
    pub(crate) fn set_clock(&self, clock: ArrivalClock) {
        let _ = self.clock.set(clock);
    }

    /// The arrival clock's reading, if it has one.
    pub(crate) fn now(&self) -> Option<Instant> {
        self.clock.get().map(|c| c())
    }

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
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[allow(clippy::disallowed_methods)] // any instant will do: the tests compare what they stored
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn no_clock_no_reading() {
        let a = Arrivals::default();
        assert_eq!(a.now(), None);
        let t = t0();
        a.set_clock(Box::new(move || t));
        assert_eq!(a.now(), Some(t));
    }

    #[test]
    fn records_replaces_truncates_and_purges() {
        let a = Arrivals::default();
        let t0 = t0();
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
        let t = t0();
        a.record(0..(KEEP as u64 + 10), t);
        assert_eq!(a.at(9), None);
        assert_eq!(a.at(10), Some(t));
        assert_eq!(a.at(KEEP as u64 + 9), Some(t));
    }
}
