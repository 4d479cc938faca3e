//! The one place that reads the clock (STYLE.md). Everything else receives `now`.
#![allow(clippy::disallowed_methods)]

use gatehouse_core::{MonoMillis, UnixMillis};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The node's clocks: monotonic (tunnel timers) and wall (replicated timestamps).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock whose monotonic origin is now.
    pub fn new() -> Self {
        Clock { start: Instant::now() }
    }

    /// Monotonic milliseconds since the node started.
    pub fn mono(&self) -> MonoMillis {
        MonoMillis(self.start.elapsed().as_millis() as u64)
    }

    /// The `tokio::time::Instant` of a monotonic deadline, for arming a sleep.
    pub fn instant_of(&self, t: MonoMillis) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.start + std::time::Duration::from_millis(t.0))
    }

    /// Wall-clock milliseconds since the Unix epoch.
    pub fn unix(&self) -> UnixMillis {
        UnixMillis(
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
        )
    }

    /// Seconds-resolution wall clock for display.
    pub fn instant_now(&self) -> Instant {
        Instant::now()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
