//! The `SlotWatch` service: each director keeps a stream open and gets this node's slot table
//! whenever it changed, and an unchanged one every [`RESEND_AFTER`].
//!
//! No polling: the stream's task sleeps until the replicated state changes (an apply) or the
//! resend is due. It waits for room on the stream *before* taking a view, so every change
//! made while a send was pending (a slow director, a full HTTP/2 window) goes out in one
//! table, the current one. The bookkeeping — what to send and when — is [`SlotFeed`], pure
//! and tested below; [`feed`] is its driver.

use super::pb::slot_watch_server::{SlotWatch, SlotWatchServer};
use super::pb::Payload;
use super::role::{check, Allowed};
use super::{SlotTableView, SlotView};
use crate::clock::Clock;
use crate::db::SessionStore;
use gatehouse_core::health::Silence;
use gatehouse_core::MonoMillis;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::{Response, Status};

/// An unchanged table is sent again this long after the last one: leases lapse without a log
/// entry, and a director takes a silent stream for a dead one (it re-subscribes after 3 s).
pub const RESEND_AFTER: Duration = Duration::from_secs(2);

/// What the watch service reads: the applied session db, the clients' port, the clock.
#[derive(Clone)]
pub struct SlotSource {
    /// The session db.
    pub db: SessionStore,
    /// Client-facing port of the nodes (directors redirect to it).
    pub port: u16,
    /// The clock.
    pub clock: Clock,
    /// How long an owner's renewals may stand still before its slot counts as late.
    pub late_after: Duration,
    /// How long before its lease counts as lapsed (the slot has no live owner).
    pub lease: Duration,
    /// When each slot's renewal count last moved, as this node saw it.
    pub renewals: Arc<Mutex<Silence<u32, (u64, u64)>>>,
}

impl SlotSource {
    /// A source for the nodes' client port `port`, with the slot timing of the config.
    pub fn new(
        db: SessionStore,
        port: u16,
        clock: Clock,
        renew: Duration,
        lease: Duration,
    ) -> Self {
        // Three renewals missed: more than a slow commit, well before the lease lapses.
        let late_after = (renew * 4).min(lease / 2);
        SlotSource { db, port, clock, late_after, lease, renewals: Arc::default() }
    }
}

/// The slot table as directors see it, from this node's applied state, and when it changes
/// next without a log entry (a slot turning late or lapsing) — judged on this node's
/// monotonic clock ([`gatehouse_core::health`]).
pub fn slot_table_view(src: &SlotSource) -> (SlotTableView, Option<MonoMillis>) {
    let (now, port) = (src.clock.mono(), src.port);
    let (slots, counts, down) = src.db.read(|db| {
        let down: Vec<u64> =
            db.members().filter(|m| m.down_since.is_some()).map(|m| m.id).collect();
        (db.slots().iter().cloned().collect::<Vec<_>>(), db.slot_sessions(), down)
    });
    let mut renewals = src.renewals.lock().unwrap_or_else(|e| e.into_inner());
    renewals.retain(|id| slots.iter().any(|s| s.spec.id == id));
    let mut next: Option<MonoMillis> = None;
    let mut wake = |t: MonoMillis| next = Some(next.map_or(t, |n| n.min(t)));
    let views = slots
        .iter()
        .map(|s| {
            renewals.observe(s.spec.id, s.lease_counter(), now);
            let silent = renewals.silent_for(s.spec.id, now);
            let lease = if s.renewals == 0 { src.lease * 2 } else { src.lease };
            let available = s.owner.is_some() && silent <= lease;
            let late = s.owner.is_some_and(|o| down.contains(&o)) || silent > src.late_after;
            if let (true, Some(since)) = (available, renewals.since(s.spec.id)) {
                let step = if late { lease } else { src.late_after };
                wake(since.plus(step + Duration::from_millis(1)));
            }
            SlotView {
                id: s.spec.id,
                public_ip: s.spec.public_ip,
                port,
                owner: s.owner,
                epoch: s.epoch,
                sessions: counts.get(&s.spec.id).copied().unwrap_or(0),
                capacity: s.spec.capacity,
                available,
                late: available && late,
            }
        })
        .collect();
    (SlotTableView { node: src.db.node_id(), slots: views }, next)
}

/// What one stream has sent and what it owes: a table when the state changed since the last
/// view was taken, or when the resend is due. Pure: every call takes `now`.
#[derive(Debug)]
pub struct SlotFeed {
    /// The table sent last.
    last: Option<SlotTableView>,
    /// The replicated state changed since the last view was taken.
    changed: bool,
    /// When an unchanged table is sent again.
    resend_at: MonoMillis,
    /// When a slot turns late or lapses with no log entry.
    change_at: Option<MonoMillis>,
}

impl Default for SlotFeed {
    fn default() -> Self {
        // A new stream starts with the current table at once.
        SlotFeed { last: None, changed: true, resend_at: MonoMillis(0), change_at: None }
    }
}

impl SlotFeed {
    /// The replicated state changed (an entry was applied).
    pub fn on_applied(&mut self) {
        self.changed = true;
    }

    /// Whether to take a view now: something changed, or the resend is due.
    pub fn wants_view(&self, now: MonoMillis) -> bool {
        self.changed || now >= self.resend_at || self.change_at.is_some_and(|t| now >= t)
    }

    /// The view taken at `now` (once the stream has room): the table to send, if it differs
    /// from the last one or the resend is due.
    pub fn offer(&mut self, now: MonoMillis, view: SlotTableView) -> Option<&SlotTableView> {
        self.changed = false;
        if now < self.resend_at && self.last.as_ref() == Some(&view) {
            return None;
        }
        self.resend_at = now.plus(RESEND_AFTER);
        self.last = Some(view);
        self.last.as_ref()
    }

    /// A slot's state changes at `at` without a log entry (it turns late, or its lease
    /// lapses): a view is due then.
    pub fn change_due(&mut self, at: Option<MonoMillis>) {
        self.change_at = at;
    }

    /// When the driver must wake at the latest, with what it is for.
    pub fn poll_timeout(&self) -> (MonoMillis, &'static str) {
        match self.change_at {
            Some(t) if t < self.resend_at => (t, "slot turns late or lapses"),
            _ => (self.resend_at, "slot table resend"),
        }
    }
}

/// Streams slot tables to directors.
pub struct WatchService {
    src: SlotSource,
}

/// The service, ready to register on the cluster server.
pub fn server(src: SlotSource) -> SlotWatchServer<WatchService> {
    SlotWatchServer::new(WatchService { src })
}

type SlotStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<Payload, Status>> + Send>>;

#[tonic::async_trait]
impl SlotWatch for WatchService {
    type WatchSlotsStream = SlotStream;

    async fn watch_slots(
        &self,
        r: tonic::Request<Payload>,
    ) -> Result<Response<SlotStream>, Status> {
        check(&r, Allowed { director: true, ..Allowed::nodes("watch_slots") })?;
        let node = self.src.clone();
        // Room for one table: a second waits for the director, and coalesces meanwhile.
        let (tx, rx) = mpsc::channel::<Result<Payload, Status>>(1);
        tokio::spawn(feed(node, tx));
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}

/// Drive one stream's [`SlotFeed`] until the director goes away.
pub async fn feed(node: SlotSource, tx: mpsc::Sender<Result<Payload, Status>>) {
    let mut applied = node.db.applied();
    let mut feed = SlotFeed::default();
    loop {
        if feed.wants_view(node.clock.mono()) {
            // Room first, then the view: what changed while we waited is in this one table.
            let Ok(permit) = tx.reserve().await else { return };
            // Changes applied from here on wake us again.
            applied.borrow_and_update();
            let (view, change) = slot_table_view(&node);
            feed.change_due(change);
            if let Some(view) = feed.offer(node.clock.mono(), view) {
                let Ok(json) = serde_json::to_vec(view) else { return };
                permit.send(Ok(Payload { json }));
            }
        }
        let (deadline, _) = feed.poll_timeout();
        tokio::select! {
            r = applied.changed() => match r {
                Ok(()) => feed.on_applied(),
                Err(_) => return,
            },
            () = tokio::time::sleep_until(node.clock.instant_of(deadline)) => {}
            () = tx.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(sessions: u32) -> SlotTableView {
        SlotTableView {
            node: 1,
            slots: vec![SlotView {
                id: 1,
                public_ip: std::net::Ipv4Addr::new(192, 0, 2, 1),
                port: 443,
                owner: Some(1),
                epoch: 1,
                sessions,
                capacity: 10,
                available: true,
                late: false,
            }],
        }
    }

    #[test]
    fn a_new_stream_gets_the_current_table_at_once() {
        let mut f = SlotFeed::default();
        assert!(f.wants_view(MonoMillis(0)));
        assert_eq!(f.offer(MonoMillis(0), table(0)), Some(&table(0)));
        assert!(!f.wants_view(MonoMillis(1)), "nothing changed, resend not due");
        assert_eq!(f.poll_timeout().0, MonoMillis(2_000));
    }

    #[test]
    fn an_apply_that_leaves_the_table_as_it_was_sends_nothing() {
        let mut f = SlotFeed::default();
        f.offer(MonoMillis(0), table(0));
        f.on_applied();
        assert!(f.wants_view(MonoMillis(10)));
        assert_eq!(f.offer(MonoMillis(10), table(0)), None);
        assert!(!f.wants_view(MonoMillis(11)));
        assert_eq!(f.poll_timeout().0, MonoMillis(2_000), "the resend is not pushed back");
    }

    #[test]
    fn changes_while_a_send_is_pending_go_out_as_one_table() {
        let mut f = SlotFeed::default();
        f.offer(MonoMillis(0), table(0));
        // Three applies while the stream had no room: one view is taken once it has.
        f.on_applied();
        f.on_applied();
        f.on_applied();
        assert_eq!(f.offer(MonoMillis(50), table(3)), Some(&table(3)));
        assert!(!f.wants_view(MonoMillis(51)));
    }

    #[test]
    fn an_unchanged_table_is_resent_after_two_seconds() {
        let mut f = SlotFeed::default();
        f.offer(MonoMillis(0), table(0));
        assert!(!f.wants_view(MonoMillis(1_999)));
        assert!(f.wants_view(MonoMillis(2_000)));
        assert_eq!(f.offer(MonoMillis(2_000), table(0)), Some(&table(0)));
        assert_eq!(f.poll_timeout().0, MonoMillis(4_000));
        // A changed table restarts the resend period.
        f.on_applied();
        f.offer(MonoMillis(2_500), table(1));
        assert_eq!(f.poll_timeout().0, MonoMillis(4_500));
    }
}
