//! Login throttling: repeated failures from one source address or for one username slow
//! further attempts down (exponential delay, capped), so password guessing gets expensive
//! without locking anyone out.

use crate::config::LoginLimits;
use gatehouse_core::MonoMillis;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// Bound on tracked keys; beyond it, entries whose window has passed are dropped first.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: MonoMillis,
}

/// Failure counters per source and per user.
pub struct Throttle {
    limits: LoginLimits,
    by_source: Mutex<HashMap<IpAddr, Failures>>,
    by_user: Mutex<HashMap<String, Failures>>,
}

fn current<K: std::hash::Hash + Eq>(
    m: &HashMap<K, Failures>,
    k: &K,
    now: MonoMillis,
    window: Duration,
) -> u32 {
    m.get(k).filter(|f| now.since(f.since) < window).map_or(0, |f| f.count)
}

fn bump<K: std::hash::Hash + Eq + Clone>(
    m: &mut HashMap<K, Failures>,
    k: &K,
    now: MonoMillis,
    window: Duration,
) {
    if m.len() >= MAX_TRACKED {
        m.retain(|_, f| now.since(f.since) < window);
        if m.len() >= MAX_TRACKED {
            m.clear();
        }
    }
    let e = m.entry(k.clone()).or_insert(Failures { count: 0, since: now });
    if now.since(e.since) >= window {
        *e = Failures { count: 0, since: now };
    }
    e.count = e.count.saturating_add(1);
}

impl Throttle {
    /// Throttle with the configured limits.
    pub fn new(limits: LoginLimits) -> Self {
        Throttle {
            limits,
            by_source: Mutex::new(HashMap::new()),
            by_user: Mutex::new(HashMap::new()),
        }
    }

    /// How long to hold this attempt before checking the password: zero under the limits,
    /// then base × 2^(excess−1), capped at 32 × base.
    pub fn delay(&self, now: MonoMillis, source: IpAddr, user: &str) -> Duration {
        let w = self.limits.window;
        let s = self.by_source.lock().map(|m| current(&m, &source, now, w)).unwrap_or(0);
        let u = self.by_user.lock().map(|m| current(&m, &user.to_string(), now, w)).unwrap_or(0);
        let excess = s
            .saturating_sub(self.limits.max_failures_per_source)
            .max(u.saturating_sub(self.limits.max_failures_per_user));
        if excess == 0 {
            return Duration::ZERO;
        }
        self.limits.delay * (1u32 << (excess - 1).min(5))
    }

    /// Count a failed attempt.
    pub fn failed(&self, now: MonoMillis, source: IpAddr, user: &str) {
        let w = self.limits.window;
        if let Ok(mut m) = self.by_source.lock() {
            bump(&mut m, &source, now, w);
        }
        if let Ok(mut m) = self.by_user.lock() {
            bump(&mut m, &user.to_string(), now, w);
        }
    }

    /// A successful login clears the user's counter (not the source's: one good password
    /// must not buy a guesser a fresh budget for other users).
    pub fn succeeded(&self, user: &str) {
        if let Ok(mut m) = self.by_user.lock() {
            m.remove(user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LoginLimits {
        LoginLimits {
            max_failures_per_source: 3,
            max_failures_per_user: 2,
            window: Duration::from_secs(60),
            delay: Duration::from_secs(1),
        }
    }

    #[test]
    fn failures_beyond_the_limit_slow_down_exponentially_and_expire() {
        let t = Throttle::new(limits());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let now = MonoMillis(0);
        assert_eq!(t.delay(now, ip, "alice"), Duration::ZERO);
        t.failed(now, ip, "alice");
        t.failed(now, ip, "alice");
        assert_eq!(t.delay(now, ip, "alice"), Duration::ZERO, "at the limit, no delay yet");
        t.failed(now, ip, "alice");
        assert_eq!(t.delay(now, ip, "alice"), Duration::from_secs(1));
        t.failed(now, ip, "alice");
        assert_eq!(t.delay(now, ip, "alice"), Duration::from_secs(2));
        for _ in 0..20 {
            t.failed(now, ip, "alice");
        }
        assert_eq!(t.delay(now, ip, "alice"), Duration::from_secs(32), "capped");
        // Another user from another source is not affected.
        assert_eq!(t.delay(now, "192.0.2.2".parse().unwrap(), "bob"), Duration::ZERO);
        // The same user from another source is (per-user counter).
        assert!(t.delay(now, "192.0.2.2".parse().unwrap(), "alice") > Duration::ZERO);
        assert_eq!(t.delay(MonoMillis(61_000), ip, "alice"), Duration::ZERO, "window passed");
    }
}
