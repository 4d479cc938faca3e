//! The loop of one `ssl` tunnel, in quinn's `ConnectionDriver` / firezone's event-loop shape:
//! each wake-up reads the clock once, feeds TLS reads, tun packets, control orders or the one
//! timer into `gatehouse_core::CstpTunnel`, then drains its transmits into the TLS writer and
//! its events into tun writes, metrics and the db. No protocol rule lives here.

use crate::edge::tunnels::{TunnelCtl, TunnelStats};
use crate::edge::{bad_input, ClientStream};
use crate::metrics as m;
use crate::node::Node;
use crate::stopping::Stopping;
use bytes::Bytes;
use gatehouse_core::tunnel::cstp::{BadInput, Event, Stats};
use gatehouse_core::{
    AfterClose, CstpTunnel, DetachTunnel, MonoMillis, StopMode, TunnelEnd, TunnelId, TunnelOrder,
    UnixMillis,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::sync::mpsc;

/// Tun packets framed per wake-up before the writer gets a turn (write batching).
const BATCH: usize = 64;

/// Run the tunnel until it closes; the TLS stream is shut down on return. Returns the core
/// (which may still hold the detach grace), why it ended and what the db must hear.
pub(crate) async fn drive(
    node: &Node,
    id: TunnelId,
    stream: ClientStream,
    mut core: CstpTunnel,
    mut rx: mpsc::Receiver<Bytes>,
    mut ctl: mpsc::UnboundedReceiver<TunnelCtl>,
    shared: Arc<TunnelStats>,
) -> (CstpTunnel, TunnelEnd, AfterClose) {
    let clock = node.clock;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut stopping = node.stopping.clone();
    let mut export = Export::new(shared);
    let sleep = tokio::time::sleep_until(clock.instant_of(MonoMillis(0)));
    tokio::pin!(sleep);
    let mut armed: Option<MonoMillis> = None;
    let mut unflushed = false;
    let (end, after) = loop {
        write_transmits(&mut core, &mut wr, &mut unflushed, clock.mono()).await;
        if let Some(closed) = carry_out_events(node, id, &mut core).await {
            break closed;
        }
        export.publish(core.stats());
        // Under traffic the DPD/idle deadline moves later on almost every frame: the sleep is
        // reset only when the deadline moves earlier, and one that fires early is re-armed
        // (`handle_timeout` is harmless when early).
        match core.poll_timeout() {
            Some((t, timer)) if armed.is_none_or(|a| t < a) => {
                tracing::trace!(timer = timer.name(), at = t.0, "timer armed");
                sleep.as_mut().reset(clock.instant_of(t));
                armed = Some(t);
            }
            Some(_) => {}
            None => armed = None,
        }
        tokio::select! {
            r = rd.read_buf(core.read_buf()) => match r {
                Ok(0) | Err(_) => core.handle_tls_closed(clock.mono()),
                Ok(_) => core.handle_read(clock.mono()),
            },
            Some(pkt) = rx.recv() => {
                let now = clock.mono();
                core.handle_tun_packet(now, &pkt);
                for _ in 1..BATCH {
                    let Ok(p) = rx.try_recv() else { break };
                    core.handle_tun_packet(now, &p);
                }
            }
            r = wr.flush(), if unflushed => {
                unflushed = false;
                if r.is_err() {
                    core.handle_tls_closed(clock.mono());
                }
            }
            Some(c) = ctl.recv() => core.handle_order(clock.mono(), order_of(c)),
            () = &mut sleep, if armed.is_some() => {
                // Re-armed on the next turn, to the deadline as it is now.
                armed = None;
                core.handle_timeout(clock.mono());
            }
            _ = stopping.changed() => {
                let mode = match *stopping.borrow() {
                    Stopping::Terminate => StopMode::Terminate,
                    Stopping::Restart | Stopping::No => StopMode::Restart,
                };
                core.handle_order(clock.mono(), TunnelOrder::Stop(mode));
            }
        }
    };
    // The close's last frame (DISCONNECT, TERMINATE), if any.
    write_transmits(&mut core, &mut wr, &mut unflushed, clock.mono()).await;
    export.publish(core.stats());
    let mut s = rd.unsplit(wr);
    let _ = tokio::time::timeout(std::time::Duration::from_millis(200), s.shutdown()).await;
    (core, end, after)
}

fn order_of(c: TunnelCtl) -> TunnelOrder {
    match c {
        TunnelCtl::SessionEnded(reason) => TunnelOrder::SessionEnded(reason),
        TunnelCtl::Replaced => TunnelOrder::Replaced,
    }
}

/// Write every pending frame, each its own TLS write; a failure closes the tunnel.
async fn write_transmits(
    core: &mut CstpTunnel,
    wr: &mut WriteHalf<ClientStream>,
    unflushed: &mut bool,
    now: MonoMillis,
) {
    while let Some(t) = core.poll_transmit() {
        let ok = wr.write_all(&t.frame).await.is_ok() && (!t.flush || wr.flush().await.is_ok());
        if !ok {
            core.handle_tls_closed(now);
        }
        *unflushed = !t.flush;
    }
}

/// Carry out the core's events; returns the close once it came.
async fn carry_out_events(
    node: &Node,
    id: TunnelId,
    core: &mut CstpTunnel,
) -> Option<(TunnelEnd, AfterClose)> {
    let mut closed = None;
    while let Some(ev) = core.poll_event() {
        match ev {
            Event::TunPacket(p) => {
                if let Err(e) = node.dp.send_to_tun(&p).await {
                    tracing::debug!("tun write: {e}");
                }
            }
            Event::BadInput(b) => {
                match &b {
                    BadInput::Frame(e) => {
                        tracing::info!(tunnel = %id, "bad frame from client: {e}")
                    }
                    BadInput::Truncated => {
                        tracing::info!(tunnel = %id, "incomplete frame never completed")
                    }
                    BadInput::SpoofedSource | BadInput::CompressionNotNegotiated => {}
                }
                bad_input(b.stage(), b.reason());
            }
            Event::Closed { end, after } => {
                match end {
                    TunnelEnd::DeadPeer => metrics::counter!(m::DPD_TEARDOWNS).increment(1),
                    TunnelEnd::Idle => metrics::counter!(m::IDLE_TEARDOWNS).increment(1),
                    _ => {}
                }
                closed = Some((end, after));
            }
            // Only comes after the close, from `detach_after_grace`.
            Event::DetachIfRecorded => {}
        }
    }
    closed
}

/// The rest of a closed tunnel that carried nothing: once its grace ends, detach it only if
/// the db still records it (a client that reconnected at once has replaced it already).
pub(crate) async fn detach_after_grace(
    node: Arc<Node>,
    id: TunnelId,
    mut core: CstpTunnel,
    closed_at: UnixMillis,
) {
    while let Some((at, _)) = core.poll_timeout() {
        tokio::time::sleep_until(node.clock.instant_of(at)).await;
        core.handle_timeout(node.clock.mono());
        while let Some(ev) = core.poll_event() {
            if ev != Event::DetachIfRecorded {
                continue;
            }
            let recorded = node
                .db
                .read(|db| db.get(id.index).is_some_and(|s| s.tunnels.iter().any(|t| t.id == id)));
            if recorded {
                detach(&node, id, Default::default(), closed_at).await;
            }
        }
    }
}

/// Exports the core's `Stats`: the tunnel's shared counters (admin's live view) and the
/// node-wide byte/packet metrics, by the difference since the last wake-up.
struct Export {
    shared: Arc<TunnelStats>,
    seen: Stats,
    rx_bytes: metrics::Counter,
    rx_pkts: metrics::Counter,
    tx_bytes: metrics::Counter,
    tx_pkts: metrics::Counter,
}

impl Export {
    fn new(shared: Arc<TunnelStats>) -> Self {
        // Counter handles resolved once: the per-wake-up cost is a few atomic adds.
        Export {
            shared,
            seen: Stats::default(),
            rx_bytes: metrics::counter!(m::TUNNEL_BYTES, "dir" => "rx"),
            rx_pkts: metrics::counter!(m::TUNNEL_PACKETS, "dir" => "rx"),
            tx_bytes: metrics::counter!(m::TUNNEL_BYTES, "dir" => "tx"),
            tx_pkts: metrics::counter!(m::TUNNEL_PACKETS, "dir" => "tx"),
        }
    }

    fn publish(&mut self, s: &Stats) {
        if *s == self.seen {
            return;
        }
        let old = std::mem::replace(&mut self.seen, *s);
        self.rx_bytes.increment(s.bytes_rx - old.bytes_rx);
        self.rx_pkts.increment(s.pkts_rx - old.pkts_rx);
        self.tx_bytes.increment(s.bytes_tx - old.bytes_tx);
        self.tx_pkts.increment(s.pkts_tx - old.pkts_tx);
        let st = &self.shared;
        st.bytes_rx.store(s.bytes_rx, Ordering::Relaxed);
        st.pkts_rx.store(s.pkts_rx, Ordering::Relaxed);
        st.bytes_tx.store(s.bytes_tx, Ordering::Relaxed);
        st.pkts_tx.store(s.pkts_tx, Ordering::Relaxed);
        if let Some(t) = s.last_data {
            st.last_data_mono.store(t.0, Ordering::Relaxed);
        }
    }
}

/// Tell the session db a tunnel went away, with its counters.
pub(crate) async fn detach(
    node: &Node,
    id: TunnelId,
    counters: gatehouse_core::Counters,
    at: gatehouse_core::UnixMillis,
) {
    let cmd = DetachTunnel { at, id, counters };
    if let Err(e) = node.db.propose(cmd).await {
        tracing::warn!(tunnel = %id, "detach not committed: {e}");
    }
}
