//! This node's cluster time (gatehouse-core's [`ClusterTime`]): the timestamp of every command
//! it proposes. A task follows the applied state and notes each newer stamp on the monotonic
//! clock; it also exports how far the wall clock is from cluster time and warns past a bound.

use crate::clock::Clock;
use crate::metrics as m;
use gatehouse_core::cluster_time::ClusterTime;
use gatehouse_core::{SessionDb, UnixMillis};
use gatehouse_raft::SharedState;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// A wall clock further than this from cluster time is logged (WARN), at most once a minute.
pub const OFFSET_WARN_MS: i64 = 1_000;
const WARN_EVERY_MS: u64 = 60_000;

/// Cluster time as this node counts it.
#[derive(Clone)]
pub struct Timekeeper {
    time: Arc<Mutex<ClusterTime>>,
    state: SharedState<SessionDb>,
    applied: watch::Receiver<u64>,
    clock: Clock,
}

impl Timekeeper {
    /// Cluster time for a node that found log entries up to `replayed_up_to` at start.
    pub fn new(
        replayed_up_to: u64,
        state: SharedState<SessionDb>,
        applied: watch::Receiver<u64>,
        clock: Clock,
    ) -> Self {
        let time = Arc::new(Mutex::new(ClusterTime::new(replayed_up_to)));
        Timekeeper { time, state, applied, clock }
    }

    /// Note the newest applied stamp (cheap; called on every apply and before every read).
    fn observe(&self) {
        let index = *self.applied.borrow();
        let stamp = self.state.read(|db| db.newest_stamp());
        let mono = self.clock.mono();
        self.time.lock().unwrap_or_else(|e| e.into_inner()).observe(stamp, index, mono);
    }

    /// Cluster time now.
    pub fn now(&self) -> UnixMillis {
        self.observe();
        let (mono, wall) = (self.clock.mono(), self.clock.unix());
        self.time.lock().unwrap_or_else(|e| e.into_inner()).now(mono, wall)
    }

    /// Follow the applied state until the store stops: note stamps as they apply, export the
    /// wall clock's offset, warn when it is large.
    pub async fn run(self) {
        let mut applied = self.applied.clone();
        let mut warned_at: Option<u64> = None;
        while applied.changed().await.is_ok() {
            self.observe();
            let (mono, wall) = (self.clock.mono(), self.clock.unix());
            let offset = self.time.lock().unwrap_or_else(|e| e.into_inner()).offset(mono, wall);
            let Some(offset) = offset else { continue };
            metrics::gauge!(m::CLOCK_OFFSET_SECONDS).set(offset as f64 / 1000.0);
            let due = warned_at.is_none_or(|t| mono.0 >= t + WARN_EVERY_MS);
            if offset.abs() > OFFSET_WARN_MS && due {
                warned_at = Some(mono.0);
                tracing::warn!(
                    offset_ms = offset,
                    "this node's wall clock is {:.1} s {} cluster time; timers follow cluster \
                     time, but check NTP",
                    offset.abs() as f64 / 1000.0,
                    if offset > 0 { "ahead of" } else { "behind" }
                );
            }
        }
    }
}
