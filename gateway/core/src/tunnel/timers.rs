//! The timers of one tunnel and the liveness rules every tunnel kind shares.
//!
//! One [`TimerTable`] per tunnel, indexed by [`TunnelTimer`]: each deadline is data, the driver
//! arms one sleep to [`TimerTable::next_timeout`]. [`Liveness`] holds the DPD and idle rules of
//! DESIGN.md §2 over that table, so the CSTP tunnel and a later datagram tunnel (DTLS, QUIC)
//! apply the same rules; the idle rule counts data seen on either path, because "the ssl
//! tunnel is kept while the datagram tunnel carries data".
//!
//! [`TunnelTimers`] is the stand-alone form of the same rules (a table holding only the
//! liveness timers), with its own `handle_*`/`poll_*` methods. Pure: calling `handle_timeout`
//! early or twice is harmless.

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

/// The deadlines of one tunnel; `poll_timeout` reports which one is next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelTimer {
    /// Next DPD probe.
    DpdProbe,
    /// Peer declared dead.
    DpdDead,
    /// Idle timeout.
    Idle,
    /// A partial frame must be completed by then (`request_timeout` after it started).
    PartialFrame,
    /// A closed tunnel that carried nothing detaches after this grace.
    DetachGrace,
}

impl TunnelTimer {
    /// Number of timers, the size of a [`TimerTable`].
    pub const COUNT: usize = 5;
    /// Every timer, in table order (ties in `next_timeout` go to the earlier one).
    pub const VALUES: [TunnelTimer; TunnelTimer::COUNT] = [
        TunnelTimer::DpdProbe,
        TunnelTimer::DpdDead,
        TunnelTimer::Idle,
        TunnelTimer::PartialFrame,
        TunnelTimer::DetachGrace,
    ];

    /// Name for logs and `poll_timeout`.
    pub fn name(self) -> &'static str {
        match self {
            TunnelTimer::DpdProbe => "dpd-probe",
            TunnelTimer::DpdDead => "dpd-dead",
            TunnelTimer::Idle => "idle",
            TunnelTimer::PartialFrame => "partial-frame",
            TunnelTimer::DetachGrace => "detach-grace",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// One deadline per [`TunnelTimer`] (quinn's `TimerTable` shape).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimerTable {
    data: [Option<MonoMillis>; TunnelTimer::COUNT],
}

impl TimerTable {
    /// Arm `timer` for `at`, replacing any earlier deadline.
    pub fn set(&mut self, timer: TunnelTimer, at: MonoMillis) {
        self.data[timer.slot()] = Some(at);
    }

    /// Disarm `timer`.
    pub fn stop(&mut self, timer: TunnelTimer) {
        self.data[timer.slot()] = None;
    }

    /// The deadline of `timer`, if armed.
    pub fn get(&self, timer: TunnelTimer) -> Option<MonoMillis> {
        self.data[timer.slot()]
    }

    /// Whether `timer` is armed and due at `now`.
    pub fn is_expired(&self, timer: TunnelTimer, now: MonoMillis) -> bool {
        self.get(timer).is_some_and(|t| now >= t)
    }

    /// The earliest armed deadline and which timer it is.
    pub fn next_timeout(&self) -> Option<(MonoMillis, TunnelTimer)> {
        let mut best: Option<(MonoMillis, TunnelTimer)> = None;
        for timer in TunnelTimer::VALUES {
            if let Some(t) = self.get(timer) {
                if best.is_none_or(|(b, _)| t < b) {
                    best = Some((t, timer));
                }
            }
        }
        best
    }
}

/// What a liveness deadline asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LivenessAction {
    /// Send a DPD probe.
    Probe,
    /// Tear the tunnel down.
    Close(TunnelEvent),
}

/// The DPD and idle rules of DESIGN.md §2, kept in a tunnel's [`TimerTable`]
/// ([`TunnelTimer::DpdProbe`], [`TunnelTimer::DpdDead`], [`TunnelTimer::Idle`]).
#[derive(Debug, Clone)]
pub struct Liveness {
    cfg: TunnelTimersConfig,
    last_rx: MonoMillis,
    last_data: MonoMillis,
}

impl Liveness {
    /// The rules of a tunnel attached at `now`, with its deadlines armed in `timers`.
    pub fn new(now: MonoMillis, cfg: TunnelTimersConfig, timers: &mut TimerTable) -> Self {
        let l = Liveness { cfg, last_rx: now, last_data: now };
        l.arm_dpd(timers);
        l.arm_idle(timers);
        l
    }

    fn arm_dpd(&self, timers: &mut TimerTable) {
        match self.cfg.dpd {
            Some(d) => {
                timers.set(TunnelTimer::DpdProbe, self.last_rx.plus(d));
                // openconnect's own rule (PROTOCOL.md §4): dead after 2 × dpd without
                // receiving anything, with probes at dpd and 1.5 × dpd.
                timers.set(TunnelTimer::DpdDead, self.last_rx.plus(d * 2));
            }
            None => {
                timers.stop(TunnelTimer::DpdProbe);
                timers.stop(TunnelTimer::DpdDead);
            }
        }
    }

    fn arm_idle(&self, timers: &mut TimerTable) {
        match self.cfg.idle_timeout {
            Some(d) => timers.set(TunnelTimer::Idle, self.last_data.plus(d)),
            None => timers.stop(TunnelTimer::Idle),
        }
    }

    /// Something arrived from the peer (data or control): it is alive.
    pub fn on_receive(&mut self, now: MonoMillis, timers: &mut TimerTable) {
        self.last_rx = self.last_rx.max(now);
        self.arm_dpd(timers);
    }

    /// Data moved: sent or received on this tunnel, or carried by the session's datagram
    /// tunnel (which keeps the ssl tunnel from going idle).
    pub fn on_data(&mut self, now: MonoMillis, timers: &mut TimerTable) {
        self.last_data = self.last_data.max(now);
        self.arm_idle(timers);
    }

    /// Apply the deadlines due at `now`: a dead peer first, then idleness, then a probe
    /// (the next one 0.5 × dpd later). A close disarms the liveness timers.
    pub fn handle_timeout(
        &mut self,
        now: MonoMillis,
        timers: &mut TimerTable,
    ) -> Option<LivenessAction> {
        let close = if timers.is_expired(TunnelTimer::DpdDead, now) {
            Some(TunnelEvent::DeadPeer)
        } else if timers.is_expired(TunnelTimer::Idle, now) {
            Some(TunnelEvent::IdleTimeout)
        } else {
            None
        };
        if let Some(e) = close {
            Self::stop(timers);
            return Some(LivenessAction::Close(e));
        }
        match self.cfg.dpd {
            Some(d) if timers.is_expired(TunnelTimer::DpdProbe, now) => {
                timers.set(TunnelTimer::DpdProbe, now.plus(d / 2));
                Some(LivenessAction::Probe)
            }
            _ => None,
        }
    }

    /// Disarm the liveness timers (the tunnel closed).
    pub fn stop(timers: &mut TimerTable) {
        for t in [TunnelTimer::DpdProbe, TunnelTimer::DpdDead, TunnelTimer::Idle] {
            timers.stop(t);
        }
    }

    /// Time left before the idle timeout (`Idle TO Left`).
    pub fn idle_left(&self, now: MonoMillis) -> Option<Duration> {
        self.cfg.idle_timeout.map(|d| self.last_data.plus(d).since(now))
    }

    /// When data last moved (the attach time if none yet).
    pub fn last_data(&self) -> MonoMillis {
        self.last_data
    }
}

/// The liveness rules on their own: gateway DPD and the idle timeout of one tunnel.
#[derive(Debug, Clone)]
pub struct TunnelTimers {
    table: TimerTable,
    liveness: Liveness,
    pending_tx: Option<Transmit>,
    event: Option<TunnelEvent>,
    closed: bool,
    probes_sent: u64,
}

impl TunnelTimers {
    /// A tunnel that has just been attached at `now`.
    pub fn new(now: MonoMillis, cfg: TunnelTimersConfig) -> Self {
        let mut table = TimerTable::default();
        let liveness = Liveness::new(now, cfg, &mut table);
        TunnelTimers {
            table,
            liveness,
            pending_tx: None,
            event: None,
            closed: false,
            probes_sent: 0,
        }
    }

    /// Any frame arrived from the client (data or control): the peer is alive.
    pub fn handle_rx(&mut self, now: MonoMillis, is_data: bool) {
        if self.closed {
            return;
        }
        self.liveness.on_receive(now, &mut self.table);
        if is_data {
            self.liveness.on_data(now, &mut self.table);
        }
    }

    /// A data packet was sent to the client.
    pub fn handle_data_tx(&mut self, now: MonoMillis) {
        if !self.closed {
            self.liveness.on_data(now, &mut self.table);
        }
    }

    /// Advance to `now`.
    pub fn handle_timeout(&mut self, now: MonoMillis) {
        if self.closed {
            return;
        }
        match self.liveness.handle_timeout(now, &mut self.table) {
            Some(LivenessAction::Probe) => {
                self.pending_tx = Some(Transmit::DpdRequest);
                self.probes_sent += 1;
            }
            Some(LivenessAction::Close(e)) => {
                self.event = Some(e);
                self.closed = true;
            }
            None => {}
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
        self.table.next_timeout()
    }

    /// Time left before the idle timeout (`Idle TO Left`).
    pub fn idle_left(&self, now: MonoMillis) -> Option<Duration> {
        self.liveness.idle_left(now)
    }

    /// DPD probes sent so far.
    pub fn probes_sent(&self) -> u64 {
        self.probes_sent
    }
}
