//! The only place in this crate that reads the clock (see clippy.toml and STYLE.md "One place
//! reads the clock"). A test harness has to bound real waits on real processes, so it needs wall
//! time; everything else in the crate goes through these functions.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Monotonic now, for deadlines.
pub fn now() -> Instant {
    Instant::now()
}

/// Seconds since the Unix epoch, as `date +%s.%N` prints them (the vpnc script's event times).
pub fn epoch_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Polls `f` every `every` until it returns `Some`, or until `timeout` has passed (then one
/// last call is made, so a condition that became true right at the deadline is not missed).
pub fn poll_until<T>(
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return f();
        }
        std::thread::sleep(every.min(deadline - now));
    }
}
