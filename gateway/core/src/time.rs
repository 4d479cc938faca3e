//! The two clocks the core is driven by. The core never reads a clock: the driver passes `now`.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Wall-clock milliseconds since the Unix epoch. Used for everything that is replicated
/// (login time, inactivity start, deadlines), so every node computes the same timers.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// `self + d`, saturating.
    pub fn plus(self, d: Duration) -> UnixMillis {
        UnixMillis(self.0.saturating_add(d.as_millis().min(u64::MAX as u128) as u64))
    }
    /// `self - earlier`, zero when `earlier` is later.
    pub fn since(self, earlier: UnixMillis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

/// Monotonic milliseconds since the node started. Used for the node-local tunnel timers
/// (DPD, idle), which must not jump when the wall clock is stepped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MonoMillis(pub u64);

impl MonoMillis {
    /// `self + d`, saturating.
    pub fn plus(self, d: Duration) -> MonoMillis {
        MonoMillis(self.0.saturating_add(d.as_millis().min(u64::MAX as u128) as u64))
    }
    /// `self - earlier`, zero when `earlier` is later.
    pub fn since(self, earlier: MonoMillis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}
