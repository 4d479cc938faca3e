//! The journal of ended sessions: every node follows it to close its local tunnels of sessions
//! that ended anywhere in the cluster.

use crate::session::EndReason;
use crate::time::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// How many session endings the journal keeps for nodes that follow it.
pub const ENDED_JOURNAL_LEN: usize = 4096;

/// One entry of the journal of ended sessions that nodes follow to close local tunnels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    /// Journal sequence number, growing by one per ending.
    pub seq: u64,
    /// Session index.
    pub index: u64,
    /// Why it ended.
    pub reason: EndReason,
    /// When.
    pub at: UnixMillis,
}

/// What a follower of the journal has not seen yet, read in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endings {
    /// `(session index, reason)` in journal order.
    pub ended: Vec<(u64, EndReason)>,
    /// The sequence number to pass next time.
    pub next: u64,
    /// Endings that left the journal before the follower read them (it fell more than
    /// [`ENDED_JOURNAL_LEN`] endings behind): the follower must check its tunnels' sessions
    /// one by one.
    pub missed: u64,
}

/// The bounded journal and its sequence counter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Journal {
    pub(super) entries: VecDeque<Ended>,
    pub(super) seq: u64,
}

impl Journal {
    pub(super) fn push(&mut self, index: u64, reason: EndReason, at: UnixMillis) {
        self.seq += 1;
        self.entries.push_back(Ended { seq: self.seq, index, reason, at });
        while self.entries.len() > ENDED_JOURNAL_LEN {
            self.entries.pop_front();
        }
    }

    pub(super) fn since(&self, after: u64) -> impl Iterator<Item = &Ended> {
        self.entries.iter().filter(move |e| e.seq > after)
    }

    pub(super) fn endings_after(&self, seen: u64) -> Endings {
        let ended: Vec<(u64, EndReason)> = self.since(seen).map(|e| (e.index, e.reason)).collect();
        let kept = ended.len() as u64;
        Endings {
            ended,
            next: self.seq,
            missed: self.seq.saturating_sub(seen).saturating_sub(kept),
        }
    }
}
