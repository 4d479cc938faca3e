//! One run: propose n commands from C concurrent tasks and collect latencies and failures.

use anyhow::{Context, Result};
use gatehouse_core::{Command, Outcome};
use gatehouse_node::db::SessionStore;
use gatehouse_tests::clock;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
pub(crate) struct Run {
    pub(crate) lat: Vec<Duration>,
    pub(crate) elapsed: Duration,
    failed: u64,
    rejected: u64,
    first_error: Option<String>,
    truncated: bool,
}

impl Run {
    pub(crate) fn done(&self) -> u64 {
        self.lat.len() as u64
    }
    pub(crate) fn rate(&self) -> f64 {
        let ok = self.done().saturating_sub(self.failed + self.rejected);
        ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    pub(crate) fn pct_ms(&self, q: f64) -> f64 {
        if self.lat.is_empty() {
            return f64::NAN;
        }
        let mut v = self.lat.clone();
        v.sort();
        let k = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        v[k].as_secs_f64() * 1e3
    }
    pub(crate) fn max_ms(&self) -> f64 {
        self.lat.iter().max().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    }
    pub(crate) fn mean_ms(&self) -> f64 {
        if self.lat.is_empty() {
            return f64::NAN;
        }
        self.lat.iter().map(Duration::as_secs_f64).sum::<f64>() * 1e3 / self.lat.len() as f64
    }
    pub(crate) fn problems(&self) -> String {
        let mut s = String::new();
        if self.truncated {
            s.push_str("stopped at the time budget; ");
        }
        if self.failed > 0 {
            let _ = write!(s, "{} failed", self.failed);
            if let Some(e) = &self.first_error {
                let _ = write!(s, " (first: {e})");
            }
            s.push_str("; ");
        }
        if self.rejected > 0 {
            let _ = write!(s, "{} rejected/evicted; ", self.rejected);
        }
        s.trim_end_matches("; ").to_string()
    }
}

/// Propose `cmd(i)` for i in 0..n on `store` from `c` concurrent tasks; stop early once
/// `budget` has passed. Every proposal is bounded by the store's write timeout.
pub(crate) async fn run(
    store: &SessionStore,
    c: usize,
    n: u64,
    budget: Duration,
    cmd: Arc<dyn Fn(u64) -> Command + Send + Sync>,
    ok: fn(&Outcome) -> bool,
) -> Result<Run> {
    let next = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let t0 = clock::now();
    let mut tasks = Vec::new();
    for _ in 0..c.max(1) {
        let (store, next, cmd, first_error) =
            (store.clone(), next.clone(), cmd.clone(), first_error.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let (mut failed, mut rejected, mut truncated) = (0u64, 0u64, false);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                if t0.elapsed() > budget {
                    truncated = true;
                    break;
                }
                let c = cmd(i);
                let t = clock::now();
                let r = store.propose_command(c).await;
                lat.push(t.elapsed());
                match r {
                    Ok(o) if ok(&o) => {}
                    Ok(o) => {
                        rejected += 1;
                        let mut fe = first_error.lock().unwrap_or_else(|e| e.into_inner());
                        fe.get_or_insert_with(|| format!("{o:?}"));
                    }
                    Err(e) => {
                        failed += 1;
                        let mut fe = first_error.lock().unwrap_or_else(|e| e.into_inner());
                        fe.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            (lat, failed, rejected, truncated)
        }));
    }
    let mut out = Run::default();
    for t in tasks {
        let (lat, failed, rejected, truncated) = t.await.context("bench task panicked")?;
        out.lat.extend(lat);
        out.failed += failed;
        out.rejected += rejected;
        out.truncated |= truncated;
    }
    out.elapsed = t0.elapsed();
    out.first_error = first_error.lock().unwrap_or_else(|e| e.into_inner()).take();
    Ok(out)
}
