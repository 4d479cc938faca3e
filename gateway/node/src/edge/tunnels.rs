//! The tunnels this node terminates, by session index: how the control plane reaches a
//! running tunnel (logoff, eviction, replacement, shutdown) and where live counters live.

use gatehouse_core::{Counters, EndReason, TunnelId, TunnelKind};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// An order to a running tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelCtl {
    /// Its session ended: send DISCONNECT with the reason and close.
    SessionEnded(EndReason),
    /// A newer tunnel of the same session took over: close quietly.
    Replaced,
}

/// Live counters of one tunnel, updated by its task without locks.
#[derive(Debug, Default)]
pub struct TunnelStats {
    /// Bytes sent to the client.
    pub bytes_tx: AtomicU64,
    /// Bytes received from the client.
    pub bytes_rx: AtomicU64,
    /// Packets sent to the client.
    pub pkts_tx: AtomicU64,
    /// Packets received from the client.
    pub pkts_rx: AtomicU64,
    /// Monotonic ms of the last data packet either way (for `Idle TO Left`).
    pub last_data_mono: AtomicU64,
}

impl TunnelStats {
    /// A consistent-enough snapshot.
    pub fn counters(&self) -> Counters {
        Counters {
            bytes_tx: self.bytes_tx.load(Ordering::Relaxed),
            bytes_rx: self.bytes_rx.load(Ordering::Relaxed),
            pkts_tx: self.pkts_tx.load(Ordering::Relaxed),
            pkts_rx: self.pkts_rx.load(Ordering::Relaxed),
        }
    }
}

/// A tunnel running on this node.
#[derive(Clone)]
pub struct LocalTunnel {
    /// Its id.
    pub id: TunnelId,
    /// Transport.
    pub kind: TunnelKind,
    /// Control channel to its task.
    pub ctl: mpsc::UnboundedSender<TunnelCtl>,
    /// Live counters.
    pub stats: Arc<TunnelStats>,
}

/// Registry of local tunnels by session index; keeps the `gatehouse_tunnels` gauge.
#[derive(Default)]
pub struct Tunnels {
    by_index: Mutex<HashMap<u64, Vec<LocalTunnel>>>,
}

fn kind_label(k: TunnelKind) -> &'static str {
    match k {
        TunnelKind::Ssl => "ssl",
        TunnelKind::Dtls => "dtls",
        TunnelKind::Quic => "quic",
    }
}

impl Tunnels {
    /// Register a running tunnel.
    pub fn insert(&self, t: LocalTunnel) {
        if let Ok(mut m) = self.by_index.lock() {
            metrics::gauge!(crate::metrics::TUNNELS, "kind" => kind_label(t.kind)).increment(1.0);
            m.entry(t.id.index).or_default().push(t);
        }
    }

    /// Unregister a tunnel.
    pub fn remove(&self, id: TunnelId) {
        if let Ok(mut m) = self.by_index.lock() {
            if let Some(v) = m.get_mut(&id.index) {
                for t in v.iter().filter(|t| t.id == id) {
                    metrics::gauge!(crate::metrics::TUNNELS, "kind" => kind_label(t.kind))
                        .decrement(1.0);
                }
                v.retain(|t| t.id != id);
                if v.is_empty() {
                    m.remove(&id.index);
                }
            }
        }
    }

    /// Tell every local tunnel of a session.
    pub fn send_session(&self, index: u64, ctl: TunnelCtl) -> usize {
        let v = self.by_index.lock().ok().and_then(|m| m.get(&index).cloned()).unwrap_or_default();
        v.iter().filter(|t| t.ctl.send(ctl).is_ok()).count()
    }

    /// Tell one tunnel.
    pub fn send(&self, id: TunnelId, ctl: TunnelCtl) {
        let v =
            self.by_index.lock().ok().and_then(|m| m.get(&id.index).cloned()).unwrap_or_default();
        for t in v.iter().filter(|t| t.id == id) {
            let _ = t.ctl.send(ctl);
        }
    }

    /// Live counters of a session's local tunnels, by tunnel id.
    pub fn stats_of(&self, index: u64) -> Vec<(TunnelId, Arc<TunnelStats>)> {
        self.by_index
            .lock()
            .ok()
            .and_then(|m| {
                m.get(&index).map(|v| v.iter().map(|t| (t.id, t.stats.clone())).collect())
            })
            .unwrap_or_default()
    }

    /// Whether a tunnel runs here.
    pub fn contains(&self, id: TunnelId) -> bool {
        self.by_index
            .lock()
            .map(|m| m.get(&id.index).is_some_and(|v| v.iter().any(|t| t.id == id)))
            .unwrap_or(false)
    }

    /// Number of local tunnels of a kind.
    pub fn count(&self, kind: TunnelKind) -> usize {
        self.by_index
            .lock()
            .map(|m| m.values().flatten().filter(|t| t.kind == kind).count())
            .unwrap_or(0)
    }

    /// Session indices with a tunnel here.
    pub fn indices(&self) -> Vec<u64> {
        self.by_index.lock().map(|m| m.keys().copied().collect()).unwrap_or_default()
    }

    /// Whether any tunnel is registered.
    pub fn is_empty(&self) -> bool {
        self.by_index.lock().map(|m| m.is_empty()).unwrap_or(true)
    }
}
