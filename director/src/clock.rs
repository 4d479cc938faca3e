//! The one place that reads the clock (STYLE.md). Everything else receives `now`.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

/// Monotonic milliseconds since the director started.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Clock { start: Instant::now() }
    }

    /// Milliseconds since the origin.
    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
