//! The one place that reads the clock (STYLE.md): the node and the director build one
//! [`Clock`] and pass its readings on. Everything else receives `now`.
#![allow(clippy::disallowed_methods)]

use gatehouse_core::{MonoMillis, UnixMillis};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The process's clocks: monotonic (tunnel timers, deadlines) and wall (replicated timestamps).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock whose monotonic origin is now.
    pub fn new() -> Self {
        Clock { start: Instant::now() }
    }

    /// Monotonic milliseconds since the clock was made (the process started).
    pub fn mono(&self) -> MonoMillis {
        MonoMillis(self.start.elapsed().as_millis() as u64)
    }

    /// The `tokio::time::Instant` of a monotonic deadline, for arming a sleep.
    pub fn instant_of(&self, t: MonoMillis) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.start + std::time::Duration::from_millis(t.0))
    }

    /// The monotonic reading of an earlier `Instant` (one before this clock was made reads 0).
    pub fn mono_of(&self, t: Instant) -> MonoMillis {
        MonoMillis(t.saturating_duration_since(self.start).as_millis() as u64)
    }

    /// Wall-clock milliseconds since the Unix epoch.
    pub fn unix(&self) -> UnixMillis {
        UnixMillis(
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
        )
    }

    /// The current monotonic instant, for measuring an elapsed time or building a deadline
    /// (a monotonic read: not the wall clock).
    pub fn instant_now(&self) -> Instant {
        Instant::now()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
