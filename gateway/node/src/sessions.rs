//! The node's session-level background work, all driven by the replicated state:
//! - session timers: sleep until the earliest replicated deadline, then propose `Expire`
//!   (the disconnected timer and max connect time end sessions here);
//! - the ended-session journal: tell local tunnels of sessions that ended anywhere;
//! - session gauges, refreshed when an entry applies (counts kept by `apply`, no scan).

use crate::db::SessionStore;
use crate::edge::tunnels::TunnelCtl;
use crate::edge::tunnels::Tunnels;
use crate::metrics as m;
use gatehouse_core::{EndReason, Expire, SessionDb};
use std::sync::Arc;
use std::time::Duration;

/// Follow the ended-session journal and close local tunnels of ended sessions.
pub async fn follow_endings(db: SessionStore, tunnels: Arc<Tunnels>) {
    let mut applied = db.applied();
    let mut seen = db.read(|db| db.end_seq());
    loop {
        // The entries and the sequence to resume from come from ONE read: an ending applied
        // between two reads would otherwise be skipped for good (tests/journal.rs).
        let e = db.read(|db| db.endings_after(seen));
        seen = e.next;
        for (index, reason) in e.ended {
            metrics::counter!(m::SESSIONS_ENDED, "reason" => reason_label(reason)).increment(1);
            tracing::info!(session = index, reason = reason.text(), "session ended");
            tunnels.send_session(index, TunnelCtl::SessionEnded(reason));
        }
        if e.missed > 0 {
            // More endings than the journal keeps applied since the last wake-up: check every
            // local tunnel's session instead.
            tracing::warn!(missed = e.missed, "fell behind the ended-session journal");
            let gone: Vec<u64> = db.read(|db| {
                tunnels.indices().into_iter().filter(|&i| db.get(i).is_none()).collect()
            });
            for index in gone {
                tunnels.send_session(index, TunnelCtl::SessionEnded(EndReason::AdminLogoff));
            }
        }
        if applied.changed().await.is_err() {
            return;
        }
    }
}

fn reason_label(r: EndReason) -> &'static str {
    match r {
        EndReason::UserRequested => "user_requested",
        EndReason::AdminLogoff => "admin_logoff",
        EndReason::DisconnectedTimeout => "disconnected_timeout",
        EndReason::MaxConnectTime => "max_connect_time",
        EndReason::SimultaneousLogins => "simultaneous_logins",
    }
}

/// Propose `Expire` for sessions whose replicated deadline passed. Only the leader proposes
/// (any node computes the same deadlines; one proposal is enough).
pub async fn run_session_timers(db: SessionStore) {
    let mut applied = db.applied();
    loop {
        let now = db.now();
        let next = db.read(|db| db.next_deadline());
        if db.is_leader() {
            let due = db.read(|db| db.expired(now));
            for (index, _) in due {
                if let Err(e) = db.propose(Expire { at: now, index }).await {
                    tracing::warn!(session = index, "expiry not committed: {e}");
                }
            }
        }
        let wait = match next {
            Some((t, _)) if t > now => t.since(now),
            // Due now but not leader (or a failed proposal): retry shortly.
            Some(_) => Duration::from_millis(200),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            r = applied.changed() => if r.is_err() { return },
        }
    }
}

/// The session gauges of a db: (active, inactive, address leases). O(1): `apply` keeps them.
fn session_gauges(db: &SessionDb) -> (usize, usize, usize) {
    (db.active_count(), db.len() - db.active_count(), db.lease_count())
}

/// Refresh the session gauges whenever an entry applies (a burst of applies wakes this once).
pub async fn run_gauges(db: SessionStore) {
    let mut applied = db.applied();
    loop {
        let (active, inactive, leases) = db.read(session_gauges);
        metrics::gauge!(m::SESSIONS_ACTIVE).set(active as f64);
        metrics::gauge!(m::SESSIONS_INACTIVE).set(inactive as f64);
        metrics::gauge!(m::ADDRESS_LEASES).set(leases as f64);
        if applied.changed().await.is_err() {
            return;
        }
    }
}
