//! The per-tunnel timers of one CSTP tunnel: gateway DPD and the idle timeout.
//!
//! Pure: the driver feeds `handle_*` with `now` and pulls `poll_transmit`, `poll_event` and
//! `poll_timeout`. Calling `handle_timeout` early or twice is harmless.

use crate::time::MonoMillis;
use std::time::Duration;

/// Per-tunnel timer settings, from the group policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelTimersConfig {
    /// Probe after this long without receiving anything (`dpd_interval_gateway`).
    pub dpd: Option<Duration>,
    /// Tear down after this long without data in either direction (`idle_timeout`).
    pub idle_timeout: Option<Duration>,
}

/// A control frame the gateway must send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transmit {
    /// CSTP DPD-REQ.
    DpdRequest,
}

/// Why the tunnel must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelEvent {
    /// The peer stopped answering DPD: tear down the tunnel, never the session.
    DeadPeer,
    /// No data for `idle_timeout`.
    IdleTimeout,
}

/// Which deadline `poll_timeout` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelTimer {
    /// Next DPD probe.
    DpdProbe,
    /// Peer declared dead.
    DpdDead,
    /// Idle timeout.
    Idle,
}

impl TunnelTimer {
    /// Name for logs and `poll_timeout`.
    pub fn name(self) -> &'static str {
        match self {
            TunnelTimer::DpdProbe => "dpd-probe",
            TunnelTimer::DpdDead => "dpd-dead",
            TunnelTimer::Idle => "idle",
        }
    }
}

/// Timer state of one tunnel.
#[derive(Debug, Clone)]
pub struct TunnelTimers {
    cfg: TunnelTimersConfig,
    last_rx: MonoMillis,
    last_data: MonoMillis,
    next_probe: Option<MonoMillis>,
    pending_tx: Option<Transmit>,
    event: Option<TunnelEvent>,
    closed: bool,
    probes_sent: u64,
}

impl TunnelTimers {
    /// A tunnel that has just been attached at `now`.
    pub fn new(now: MonoMillis, cfg: TunnelTimersConfig) -> Self {
        let mut t = TunnelTimers {
            cfg,
            last_rx: now,
            last_data: now,
            next_probe: None,
            pending_tx: None,
            event: None,
            closed: false,
            probes_sent: 0,
        };
        t.rearm_probe();
        t
    }

    fn rearm_probe(&mut self) {
        self.next_probe = self.cfg.dpd.map(|d| self.last_rx.plus(d));
    }

    /// Any frame arrived from the client (data or control): the peer is alive.
    pub fn handle_rx(&mut self, now: MonoMillis, is_data: bool) {
        if self.closed {
            return;
        }
        self.last_rx = self.last_rx.max(now);
        if is_data {
            self.last_data = self.last_data.max(now);
        }
        self.rearm_probe();
    }

    /// A data packet was sent to the client.
    pub fn handle_data_tx(&mut self, now: MonoMillis) {
        if !self.closed {
            self.last_data = self.last_data.max(now);
        }
    }

    /// When the peer is declared dead: openconnect's own rule (PROTOCOL.md §4), 2 × dpd
    /// without receiving anything, with probes at dpd and 1.5 × dpd.
    fn dead_at(&self) -> Option<MonoMillis> {
        self.cfg.dpd.map(|d| self.last_rx.plus(d * 2))
    }

    fn idle_at(&self) -> Option<MonoMillis> {
        self.cfg.idle_timeout.map(|d| self.last_data.plus(d))
    }

    /// Advance to `now`.
    pub fn handle_timeout(&mut self, now: MonoMillis) {
        if self.closed {
            return;
        }
        if self.dead_at().is_some_and(|t| now >= t) {
            self.event = Some(TunnelEvent::DeadPeer);
            self.closed = true;
            return;
        }
        if self.idle_at().is_some_and(|t| now >= t) {
            self.event = Some(TunnelEvent::IdleTimeout);
            self.closed = true;
            return;
        }
        if let (Some(at), Some(d)) = (self.next_probe, self.cfg.dpd) {
            if now >= at {
                self.pending_tx = Some(Transmit::DpdRequest);
                self.probes_sent += 1;
                self.next_probe = Some(now.plus(d / 2));
            }
        }
    }

    /// The next control frame to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.pending_tx.take()
    }

    /// Whether the tunnel must be torn down, and why.
    pub fn poll_event(&mut self) -> Option<TunnelEvent> {
        self.event.take()
    }

    /// The earliest deadline and its name; `None` once closed or with no timers.
    pub fn poll_timeout(&self) -> Option<(MonoMillis, TunnelTimer)> {
        if self.closed {
            return None;
        }
        [
            self.next_probe.map(|t| (t, TunnelTimer::DpdProbe)),
            self.dead_at().map(|t| (t, TunnelTimer::DpdDead)),
            self.idle_at().map(|t| (t, TunnelTimer::Idle)),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|(t, _)| *t)
    }

    /// Time left before the idle timeout (`Idle TO Left`).
    pub fn idle_left(&self, now: MonoMillis) -> Option<Duration> {
        self.idle_at().map(|t| t.since(now))
    }

    /// DPD probes sent so far.
    pub fn probes_sent(&self) -> u64 {
        self.probes_sent
    }
}
