//! Unwinding on SIGINT/SIGTERM, environment knobs, and bounded sleeps and polls.

use anyhow::{bail, Result};
use gatehouse_tests::clock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static ABORT: AtomicBool = AtomicBool::new(false);

pub(crate) fn check_abort() -> Result<()> {
    if ABORT.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}

/// SIGINT/SIGTERM set [`ABORT`]; every wait checks it and unwinds, so the topology and the
/// cluster are dropped (namespaces deleted, processes killed).
pub(crate) fn watch_signals() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut i), Ok(mut t)) =
                (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
            else {
                return;
            };
            tokio::select! {
                _ = i.recv() => {}
                _ = t.recv() => {}
            }
            eprintln!("bench: signal received, cleaning up");
            ABORT.store(true, Ordering::Relaxed);
        });
    });
}

pub(crate) fn env_num(name: &str, def: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(def)
}

/// Sleep in small steps, unwinding on a signal.
pub(crate) fn sleep(d: Duration) -> Result<()> {
    let end = clock::now() + d;
    loop {
        check_abort()?;
        let now = clock::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// Poll `f` every 50 ms until it gives `Some`, for at most `timeout`.
pub(crate) fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T> {
    let end = clock::now() + timeout;
    loop {
        check_abort()?;
        if let Some(v) = f() {
            return Ok(v);
        }
        if clock::now() >= end {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
