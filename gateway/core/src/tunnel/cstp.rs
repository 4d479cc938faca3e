//! The `ssl` tunnel: CSTP over TLS (PROTOCOL.md §3), as a pure state machine.
//!
//! [`CstpTunnel`] is one tunnel after its `200 CONNECTED`: frame dispatch, DPD, the
//! source-address check, the partial-frame deadline, the idle timeout, orders from the control
//! plane and the after-close decision. It never reads a clock and never does I/O.
//!
//! # Methods
//!
//! - **inputs** (`handle_*`), each taking `now`: [`read_buf`](CstpTunnel::read_buf) then
//!   [`handle_read`](CstpTunnel::handle_read) for TLS plaintext read into the tunnel's own
//!   buffer (zero-copy; [`handle_frame`](CstpTunnel::handle_frame) copies a slice in),
//!   [`handle_tun_packet`](CstpTunnel::handle_tun_packet),
//!   [`handle_order`](CstpTunnel::handle_order),
//!   [`handle_tls_closed`](CstpTunnel::handle_tls_closed) and
//!   [`handle_datagram_data`](CstpTunnel::handle_datagram_data);
//! - **timer**: [`handle_timeout`](CstpTunnel::handle_timeout), harmless when called early or
//!   twice;
//! - **outputs** (`poll_*`): [`poll_transmit`](CstpTunnel::poll_transmit) (frames for TLS),
//!   [`poll_event`](CstpTunnel::poll_event) (packets for tun, refused inputs, the close and
//!   what the session db must hear), [`poll_timeout`](CstpTunnel::poll_timeout) (the next
//!   deadline and which timer it is);
//! - **queries**: [`stats`](CstpTunnel::stats), [`is_closed`](CstpTunnel::is_closed),
//!   [`idle_left`](CstpTunnel::idle_left).
//!
//! # Driving it
//!
//! On each wake-up the driver reads the clock once and feeds the input that woke it (several
//! tun packets in a row are one batch, up to 64). Then it drains, in this order:
//! `poll_transmit` into the TLS writer, one write per frame (flushing at once when a transmit
//! says so, else when it has nothing else to do); `poll_event` into tun writes, metrics and
//! the db; and finally `poll_timeout` into its one sleep, reset when the deadline moved
//! earlier (a sleep that fires early just re-arms). After [`Event::Closed`] it stops feeding
//! inputs but keeps the timer going while `poll_timeout` says so, for the detach grace.

use super::close::{AfterClose, StopMode, TunnelEnd, TunnelOrder, DETACH_GRACE};
use super::ip::ipv4_src;
use super::timers::{Liveness, LivenessAction, TimerTable, TunnelEvent, TunnelTimer};
use super::TunnelTimersConfig;
use crate::session::Counters;
use crate::time::MonoMillis;
use bytes::{Bytes, BytesMut};
use gatehouse_proto::cstp::{self, DisconnectKind, FrameError, FrameType};
use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Free space below which the read buffer grows before the next read.
const READ_LOW_WATER: usize = 16 * 1024;
/// How much the read (and write) buffer grows at a time.
const BUF_CHUNK: usize = 64 * 1024;

/// Settings of one CSTP tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CstpConfig {
    /// The session's inner address: the only source a client may send from.
    pub address: Ipv4Addr,
    /// The negotiated MTU, the largest DATA payload accepted.
    pub mtu: u16,
    /// Gateway DPD and idle timeout.
    pub timers: TunnelTimersConfig,
    /// How long a partial frame may wait for its remainder (`request_timeout`).
    pub partial_frame_limit: Duration,
}

/// Bytes to write to the TLS stream: one whole CSTP frame, its own TLS write (openconnect
/// wants one frame per TLS record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The encoded frame, header included.
    pub frame: Bytes,
    /// Flush right after this frame (the tunnel is closing). Otherwise the driver flushes
    /// once it has nothing else to write.
    pub flush: bool,
}

/// An input the tunnel refused, labelled as `gatehouse_bad_input_total{stage, reason}` counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadInput {
    /// A malformed frame (closes the tunnel).
    Frame(FrameError),
    /// A DATA packet from an address other than the session's (dropped, the tunnel stays).
    SpoofedSource,
    /// A COMPRESSED frame without a negotiated encoding (closes the tunnel).
    CompressionNotNegotiated,
    /// A partial frame never completed within the limit (closes the tunnel).
    Truncated,
}

impl BadInput {
    /// The `stage` label.
    pub fn stage(&self) -> &'static str {
        "cstp"
    }

    /// The `reason` label.
    pub fn reason(&self) -> &'static str {
        match self {
            BadInput::Frame(e) => e.reason(),
            BadInput::SpoofedSource => "spoofed_source",
            BadInput::CompressionNotNegotiated => "compression_not_negotiated",
            BadInput::Truncated => "truncated",
        }
    }
}

/// What the driver must carry out, besides writing frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A packet from the client for the tun device (a slice of the read buffer, not a copy).
    TunPacket(Bytes),
    /// An input was refused: count it.
    BadInput(BadInput),
    /// The tunnel closed: stop reading, write what `poll_transmit` still holds, close TLS,
    /// then tell the session db what `after` says.
    Closed {
        /// Why.
        end: TunnelEnd,
        /// What the session db must hear.
        after: AfterClose,
    },
    /// The detach grace ended: detach the tunnel (no counters, at its close time) if the db
    /// still records it.
    DetachIfRecorded,
}

/// Counters of one tunnel, plain numbers; the driver exports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// DATA bytes sent to the client.
    pub bytes_tx: u64,
    /// DATA bytes received from the client (dropped spoofed packets included).
    pub bytes_rx: u64,
    /// DATA packets sent to the client.
    pub pkts_tx: u64,
    /// DATA packets received from the client (dropped spoofed packets included).
    pub pkts_rx: u64,
    /// DATA packets dropped for a source other than the session's address.
    pub spoofed_source: u64,
    /// DPD probes sent.
    pub dpd_probes: u64,
    /// When DATA last moved either way (`None` before the first packet).
    pub last_data: Option<MonoMillis>,
}

impl Stats {
    /// The counters the session db checkpoints.
    pub fn counters(&self) -> Counters {
        Counters {
            bytes_tx: self.bytes_tx,
            bytes_rx: self.bytes_rx,
            pkts_tx: self.pkts_tx,
            pkts_rx: self.pkts_rx,
        }
    }
}

/// One CSTP (`ssl`) tunnel after its `200 CONNECTED`; see the module doc for how to drive it.
#[derive(Debug)]
pub struct CstpTunnel {
    cfg: CstpConfig,
    timers: TimerTable,
    liveness: Liveness,
    rbuf: BytesMut,
    wbuf: BytesMut,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    end: Option<TunnelEnd>,
}

impl CstpTunnel {
    /// A tunnel whose `CONNECT` was answered at `now`; `leftover` holds what the client sent
    /// after its request head (decoded with the next read).
    pub fn new(now: MonoMillis, cfg: CstpConfig, leftover: BytesMut) -> Self {
        let mut timers = TimerTable::default();
        let liveness = Liveness::new(now, cfg.timers, &mut timers);
        let mut rbuf = leftover;
        rbuf.reserve(BUF_CHUNK);
        CstpTunnel {
            cfg,
            timers,
            liveness,
            rbuf,
            wbuf: BytesMut::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            end: None,
        }
    }

    /// The buffer the driver reads TLS plaintext into (with room for the next read); call
    /// [`handle_read`](Self::handle_read) after each read.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        if self.rbuf.capacity() - self.rbuf.len() < READ_LOW_WATER {
            self.rbuf.reserve(BUF_CHUNK);
        }
        &mut self.rbuf
    }

    /// `data` was read from TLS: append it and handle it (copies; the driver uses
    /// [`read_buf`](Self::read_buf) instead).
    pub fn handle_frame(&mut self, now: MonoMillis, data: &[u8]) {
        self.rbuf.extend_from_slice(data);
        self.handle_read(now);
    }

    /// Bytes were read into [`read_buf`](Self::read_buf): handle every whole frame; a partial
    /// one waits for the next read, at most `partial_frame_limit` from when bytes were first
    /// left over.
    pub fn handle_read(&mut self, now: MonoMillis) {
        while self.end.is_none() {
            let max_data = usize::from(self.cfg.mtu);
            let (kind, used) = match cstp::decode(&self.rbuf, max_data) {
                Ok(Some((f, used))) => (f.kind, used),
                Ok(None) => break,
                Err(e) => {
                    let text = describe(&e);
                    self.refuse(now, BadInput::Frame(e), &text);
                    return;
                }
            };
            // Take the frame out without copying its payload.
            let payload = self.rbuf.split_to(used).freeze().slice(cstp::HEADER_LEN..);
            self.handle_one(now, kind, payload);
        }
        if self.end.is_some() {
            return;
        }
        if self.rbuf.is_empty() {
            self.timers.stop(TunnelTimer::PartialFrame);
        } else if self.timers.get(TunnelTimer::PartialFrame).is_none() {
            self.timers.set(TunnelTimer::PartialFrame, now.plus(self.cfg.partial_frame_limit));
        }
    }

    fn handle_one(&mut self, now: MonoMillis, kind: FrameType, payload: Bytes) {
        match kind {
            FrameType::Data => {
                self.liveness.on_receive(now, &mut self.timers);
                self.liveness.on_data(now, &mut self.timers);
                self.stats.bytes_rx += payload.len() as u64;
                self.stats.pkts_rx += 1;
                self.stats.last_data = Some(now);
                // A client may only send from its own inner address.
                if ipv4_src(&payload) != Some(self.cfg.address) {
                    self.stats.spoofed_source += 1;
                    self.events.push_back(Event::BadInput(BadInput::SpoofedSource));
                    return;
                }
                self.events.push_back(Event::TunPacket(payload));
            }
            FrameType::DpdReq => {
                self.liveness.on_receive(now, &mut self.timers);
                // Echo the payload: openconnect's MTU probe needs the same bytes back.
                self.send(FrameType::DpdResp, &payload, false);
            }
            FrameType::DpdResp | FrameType::Keepalive => {
                self.liveness.on_receive(now, &mut self.timers);
            }
            FrameType::Disconnect => {
                let end = match cstp::parse_disconnect(&payload) {
                    DisconnectKind::UserLogout(_) => TunnelEnd::UserLogout,
                    DisconnectKind::Temporary => TunnelEnd::ClientTemporary,
                };
                self.close(now, end);
            }
            FrameType::Terminate => self.close(now, TunnelEnd::ClientTemporary),
            FrameType::Compressed => self.refuse(
                now,
                BadInput::CompressionNotNegotiated,
                "compression was not negotiated",
            ),
        }
    }

    /// A packet from the tun device for this client: framed as DATA.
    pub fn handle_tun_packet(&mut self, now: MonoMillis, packet: &[u8]) {
        if self.end.is_some() {
            return;
        }
        self.send(FrameType::Data, packet, false);
        self.stats.bytes_tx += packet.len() as u64;
        self.stats.pkts_tx += 1;
        self.stats.last_data = Some(now);
        self.liveness.on_data(now, &mut self.timers);
    }

    /// The session's datagram tunnel carried data: the ssl tunnel is not idle.
    pub fn handle_datagram_data(&mut self, now: MonoMillis) {
        if self.end.is_none() {
            self.liveness.on_data(now, &mut self.timers);
        }
    }

    /// An order from the control plane.
    pub fn handle_order(&mut self, now: MonoMillis, order: TunnelOrder) {
        if self.end.is_some() {
            return;
        }
        match order {
            TunnelOrder::SessionEnded(reason) => {
                self.send(FrameType::Disconnect, &cstp::disconnect_payload(reason.text()), true);
                self.close(now, TunnelEnd::SessionEnded);
            }
            TunnelOrder::Replaced => self.close(now, TunnelEnd::Replaced),
            TunnelOrder::Stop(mode) => {
                if mode == StopMode::Terminate {
                    self.send(FrameType::Terminate, &[], true);
                }
                self.close(now, TunnelEnd::Stopping);
            }
        }
    }

    /// The TLS stream ended or a read/write/flush failed. Nothing more can be written.
    pub fn handle_tls_closed(&mut self, now: MonoMillis) {
        if self.end.is_none() {
            self.transmits.clear();
            self.close(now, TunnelEnd::Closed);
        }
    }

    /// Apply every deadline due at `now`.
    pub fn handle_timeout(&mut self, now: MonoMillis) {
        if self.end.is_some() {
            if self.timers.is_expired(TunnelTimer::DetachGrace, now) {
                self.timers.stop(TunnelTimer::DetachGrace);
                self.events.push_back(Event::DetachIfRecorded);
            }
            return;
        }
        if self.timers.is_expired(TunnelTimer::PartialFrame, now) {
            self.refuse(now, BadInput::Truncated, "truncated frame");
            return;
        }
        match self.liveness.handle_timeout(now, &mut self.timers) {
            Some(LivenessAction::Probe) => {
                self.stats.dpd_probes += 1;
                self.send(FrameType::DpdReq, &[], false);
            }
            // Dead: nobody is listening, so no DISCONNECT.
            Some(LivenessAction::Close(TunnelEvent::DeadPeer)) => {
                self.close(now, TunnelEnd::DeadPeer)
            }
            Some(LivenessAction::Close(TunnelEvent::IdleTimeout)) => {
                self.send(FrameType::Disconnect, &cstp::disconnect_payload("Idle Timeout"), true);
                self.close(now, TunnelEnd::Idle);
            }
            None => {}
        }
    }

    /// The next frame to write to TLS.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next thing for the driver to carry out.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest deadline and which timer it is.
    pub fn poll_timeout(&self) -> Option<(MonoMillis, TunnelTimer)> {
        self.timers.next_timeout()
    }

    /// The counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Why the tunnel ended, once it has.
    pub fn is_closed(&self) -> Option<TunnelEnd> {
        self.end
    }

    /// Time left before the idle timeout (`Idle TO Left`).
    pub fn idle_left(&self, now: MonoMillis) -> Option<Duration> {
        self.liveness.idle_left(now)
    }

    /// Refuse an input that ends the tunnel: count it, tell the client why, close.
    fn refuse(&mut self, now: MonoMillis, bad: BadInput, text: &str) {
        self.events.push_back(Event::BadInput(bad));
        self.send(FrameType::Disconnect, &cstp::disconnect_payload(text), true);
        self.close(now, TunnelEnd::Protocol);
    }

    fn send(&mut self, kind: FrameType, payload: &[u8], flush: bool) {
        // Payloads here are bounded by the MTU or by our own short reasons.
        let Ok(len) = u16::try_from(payload.len()) else { return };
        let need = cstp::HEADER_LEN + payload.len();
        if self.wbuf.capacity() < need {
            self.wbuf.reserve(need.max(BUF_CHUNK));
        }
        self.wbuf.extend_from_slice(&cstp::encode_header(kind, len));
        self.wbuf.extend_from_slice(payload);
        self.transmits.push_back(Transmit { frame: self.wbuf.split().freeze(), flush });
    }

    fn close(&mut self, now: MonoMillis, end: TunnelEnd) {
        if self.end.is_some() {
            return;
        }
        self.end = Some(end);
        Liveness::stop(&mut self.timers);
        self.timers.stop(TunnelTimer::PartialFrame);
        let after = AfterClose::decide(end, self.stats.counters());
        if after == AfterClose::DetachAfterGrace {
            self.timers.set(TunnelTimer::DetachGrace, now.plus(DETACH_GRACE));
        }
        self.events.push_back(Event::Closed { end, after });
    }
}

/// The DISCONNECT reason sent for a malformed frame.
pub fn describe(e: &FrameError) -> String {
    match e {
        FrameError::BadMagic(_) => "bad frame magic".into(),
        FrameError::NonZeroReserved(_) => "nonzero reserved byte".into(),
        FrameError::UnknownType(t) => format!("unknown frame type {t}"),
        FrameError::TooLong { len, max } => format!("frame length {len} beyond the MTU {max}"),
    }
}
