//! One task per configured node keeps a `WatchSlots` stream open over the cluster's mutual
//! TLS and feeds every table into the [`Placer`]. A broken stream is retried with backoff; the
//! other nodes' streams carry on meanwhile.

use crate::metrics as m;
use crate::placer::Placer;
use gatehouse_proto::cluster::slot_watch_client::SlotWatchClient;
use gatehouse_proto::cluster::Payload;
use gatehouse_proto::slots::SlotTableView;
use gatehouse_runtime::{Clock, ClusterTls};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// The node sends a table when it changes. After this long without one the watch opens a
/// new stream, which starts with the current table: it proves the node alive and keeps the
/// table fresh (see `placer::STALE_AFTER_MS`).
const QUIET: Duration = Duration::from_secs(3);
/// Bound on connecting and on opening a stream, so a node cut off the network is noticed.
const OPEN_TIMEOUT: Duration = Duration::from_secs(3);
/// Retry delays after a failure: doubling from the first to the last.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Why a stream ended.
#[derive(Debug, thiserror::Error)]
enum WatchError {
    /// Connecting or opening the stream failed or timed out.
    #[error("cannot open the slot stream: {0}")]
    Open(String),
    /// The open stream failed.
    #[error("slot stream broke: {0}")]
    Broken(String),
}

/// The watch of one node.
struct Watch {
    id: u64,
    addr: SocketAddr,
    tls: ClusterTls,
    placer: Arc<Mutex<Placer>>,
    clock: Clock,
    /// The node id as a metric label.
    label: String,
    backoff: Duration,
    /// Whether the last attempt got a table (`None` before the first attempt); transitions
    /// are logged at INFO.
    up: Option<bool>,
}

/// Watch node `id` at `addr` until the process ends.
pub async fn watch(
    id: u64,
    addr: SocketAddr,
    tls: ClusterTls,
    placer: Arc<Mutex<Placer>>,
    clock: Clock,
) {
    let mut w = Watch {
        id,
        addr,
        tls,
        placer,
        clock,
        label: id.to_string(),
        backoff: BACKOFF_MIN,
        up: None,
    };
    loop {
        let r = w.run().await;
        metrics::gauge!(m::WATCH_CONNECTED, "node" => w.label.clone()).set(0.0);
        if let Ok(mut p) = w.placer.lock() {
            p.on_disconnect(w.clock.mono().0, id);
        }
        if let Err(e) = r {
            if w.up == Some(false) {
                tracing::debug!(node = id, %addr, "slot table watch: {e}");
            } else {
                tracing::info!(node = id, %addr, "slot table watch lost: {e}; retrying");
            }
            w.up = Some(false);
        }
        tokio::time::sleep(w.backoff).await;
        w.backoff = (w.backoff * 2).min(BACKOFF_MAX);
    }
}

impl Watch {
    /// Connect, then keep a stream open (re-subscribing when quiet) until something fails.
    async fn run(&mut self) -> Result<(), WatchError> {
        let (id, addr) = (self.id, self.addr);
        let ep = Endpoint::from_shared(format!("https://{addr}"))
            .map_err(|e| WatchError::Open(e.to_string()))?
            .tls_config(self.tls.client(id))
            .map_err(|e| WatchError::Open(e.to_string()))?
            .connect_timeout(OPEN_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(2))
            .keep_alive_while_idle(true);
        let channel: Channel = tokio::time::timeout(OPEN_TIMEOUT, ep.connect())
            .await
            .map_err(|_| WatchError::Open("connect timed out".into()))?
            .map_err(|e| WatchError::Open(format!("{e}")))?;
        let mut client = SlotWatchClient::new(channel);
        loop {
            // The node ignores the request body.
            let req = Payload { json: b"{}".to_vec() };
            let mut stream = tokio::time::timeout(OPEN_TIMEOUT, client.watch_slots(req))
                .await
                .map_err(|_| WatchError::Open("WatchSlots timed out".into()))?
                .map_err(|s| WatchError::Open(format!("{}: {}", s.code(), s.message())))?
                .into_inner();
            metrics::gauge!(m::WATCH_CONNECTED, "node" => self.label.clone()).set(1.0);
            loop {
                let msg = match tokio::time::timeout(QUIET, stream.message()).await {
                    Err(_) => break, // quiet: re-subscribe for a fresh copy
                    Ok(Ok(Some(m))) => m,
                    Ok(Ok(None)) => return Err(WatchError::Broken("closed by the node".into())),
                    Ok(Err(s)) => {
                        return Err(WatchError::Broken(format!("{}: {}", s.code(), s.message())))
                    }
                };
                let view = serde_json::from_slice::<SlotTableView>(&msg.json).map_err(|e| {
                    // A node of another version: its tables are useless, the others may do.
                    tracing::warn!(node = id, "undecodable slot table: {e}");
                    WatchError::Broken(format!("undecodable slot table: {e}"))
                })?;
                self.backoff = BACKOFF_MIN;
                if self.up != Some(true) {
                    tracing::info!(node = id, %addr, slots = view.slots.len(), "slot table watch connected");
                    self.up = Some(true);
                }
                if let Ok(mut p) = self.placer.lock() {
                    p.on_table(self.clock.mono().0, view);
                }
            }
        }
    }
}
