//! The CSTP tunnel driver: the `CONNECT /CSCOSSLC/tunnel` answer and the frame loop of one
//! `ssl` tunnel. The rules (DPD, idle) live in `gatehouse_core::tunnel`; this file only moves
//! bytes, time and orders in and out of it. A bad frame closes this tunnel with a DISCONNECT
//! and a counter increment; it never affects another session.

use crate::dataplane::{ipv4_src, prefix_mask, Route};
use crate::gateway::{bad_input, ClientStream};
use crate::metrics as m;
use crate::node::{Node, Stopping};
use crate::token;
use crate::tunnels::{LocalTunnel, TunnelCtl, TunnelStats};
use bytes::{Bytes, BytesMut};
use gatehouse_core::{
    AttachTunnel, Command, DetachTunnel, EndReason, EndSessions, Outcome, Rejection, TunnelEvent,
    TunnelId, TunnelKind, TunnelTimers, TunnelTimersConfig,
};
use gatehouse_proto::cstp::{self, DisconnectKind, FrameError, FrameType};
use gatehouse_proto::http::{self, RequestHead};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::Instrument;

/// Packets queued towards one client before the tun reader starts dropping.
const QUEUE: usize = 512;
/// Frames written before a flush is forced.
const BATCH: usize = 64;

async fn refuse(mut s: ClientStream, code: u16, why: &str) {
    let r = match code {
        401 => "Unauthorized",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let _ = s
        .write_all(&http::response(code, r, &[("X-Reason", why), ("Connection", "close")], b""))
        .await;
    let _ = s.shutdown().await;
}

/// Serve one `CONNECT /CSCOSSLC/tunnel`.
pub async fn run(
    node: Arc<Node>,
    stream: ClientStream,
    leftover: BytesMut,
    head: RequestHead,
    peer: SocketAddr,
    local_ip: Option<Ipv4Addr>,
    local_port: u16,
) {
    if node.is_stopping() {
        return refuse(stream, 503, "node is shutting down").await;
    }
    let hash = match token::check_cookie(head.cookie("webvpn")) {
        Ok(h) => h,
        Err(e) => {
            tracing::info!(%peer, "tunnel refused: {e}");
            bad_input("cookie", e.reason());
            return refuse(stream, 401, "Cookie is not acceptable").await;
        }
    };
    // On the leader, a token its applied state does not know cannot be attached: answering
    // without a Raft write keeps random cookies from costing a commit each. A follower may
    // not have applied a fresh login yet, so it lets the leader's `apply` decide.
    if node.db.is_leader() && node.db.read(|db| db.by_token(&hash).is_none()) {
        tracing::info!(%peer, "tunnel refused: unknown or ended session");
        bad_input("cookie", "unknown_session");
        return refuse(stream, 401, "Cookie is not acceptable").await;
    }
    let slot = match node.local_slots.slot_for(local_ip) {
        Ok(slot) => slot,
        // Retried by openconnect (503), by which time the slot's new owner answers.
        Err(crate::slots::SlotMoved) => {
            return refuse(stream, 503, "slot moved to another node").await
        }
    };
    let attach = Command::Attach(AttachTunnel {
        at: node.clock.unix(),
        token_hash: hash,
        kind: TunnelKind::Ssl,
        node: node.db.node_id(),
        public_ip: peer.ip().to_string(),
        src_port: peer.port(),
        dst_port: local_port,
        slot,
    });
    let (id, address, user, resumed) = match node.db.propose_command(attach).await {
        Ok(Outcome::Attached { tunnel, address, user, replaced, resumed }) => {
            for r in replaced {
                node.tunnels.send(r, TunnelCtl::Replaced);
            }
            (tunnel, address, user, resumed)
        }
        Ok(Outcome::Rejected(r)) => {
            tracing::info!(%peer, "tunnel refused: {}", r.text());
            bad_input(
                "cookie",
                if r == Rejection::UnknownToken { "unknown_session" } else { "refused" },
            );
            return refuse(stream, 401, r.text()).await;
        }
        Ok(o) => {
            tracing::error!("unexpected attach outcome {o:?}");
            return refuse(stream, 503, "session database error").await;
        }
        Err(e) => {
            tracing::warn!(%peer, "attach not committed: {e}");
            return refuse(stream, 503, "session database unavailable").await;
        }
    };
    if resumed {
        metrics::counter!(m::RESUMES).increment(1);
    }
    let span = tracing::info_span!("tunnel", session = id.index, tunnel = %id);
    let _e = span.enter();
    tracing::info!(user = %user, %address, resumed, "ssl tunnel up");
    drop(_e);
    let Some(sess) = node.db.read(|db| db.get(id.index).cloned()) else {
        return refuse(stream, 401, "Cookie is not acceptable").await;
    };
    let policy = node.cfg.group_policies.get(&sess.group_policy).cloned();
    let mtu = negotiate_mtu(&head, node.cfg.mtu);
    let headers = connect_headers(&node, &sess, policy.as_ref(), mtu, &head);
    let mut stream = stream;
    if stream.write_all(&http::connect_ok(&headers)).await.is_err() || stream.flush().await.is_err()
    {
        detach(&node, id, Default::default(), node.clock.unix()).await;
        return;
    }
    let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
    let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
    let stats = Arc::new(TunnelStats::default());
    node.tunnels.insert(LocalTunnel {
        id,
        kind: TunnelKind::Ssl,
        ctl: ctl_tx,
        stats: stats.clone(),
    });
    node.dp.add_route(address, Route { tunnel: id, tx });
    let timers_cfg = TunnelTimersConfig {
        dpd: policy.as_ref().and_then(|p| p.dpd_interval_gateway),
        idle_timeout: sess.timers.idle_timeout,
    };
    let end = Tunnel { node: node.clone(), id, address, stats: stats.clone(), mtu }
        .run(stream, leftover, rx, ctl_rx, timers_cfg)
        .instrument(span.clone())
        .await;
    node.dp.remove_route(address, id);
    node.tunnels.remove(id);
    let _e = span.enter();
    tracing::info!(reason = end.text(), "ssl tunnel down");
    drop(_e);
    match end {
        // The user logged out: the session ends, which also removes its tunnels.
        End::UserLogout => {
            let cmd = Command::End(EndSessions {
                at: node.clock.unix(),
                indices: vec![id.index],
                reason: EndReason::UserRequested,
            });
            if let Err(e) = node.db.propose_command(cmd).await {
                tracing::warn!(tunnel = %id, "logout not committed: {e}");
            }
        }
        // The session is gone already: nothing to detach.
        End::SessionEnded => {}
        End::Stopping => detach(&node, id, stats.counters(), node.clock.unix()).await,
        // Every other end detaches the tunnel (a replaced one only hands in its counters);
        // the session stays and, without an ssl tunnel, becomes inactive.
        _ if stats.counters() != gatehouse_core::Counters::default() => {
            detach(&node, id, stats.counters(), node.clock.unix()).await
        }
        // A tunnel that carried nothing: a client that reconnects at once (a reconnect storm,
        // a flapping link) replaces it with its attach anyway, so its detach waits a moment
        // and is skipped if that happened. The timestamp is the close time, so inactivity
        // counts from the real moment.
        _ => {
            let closed_at = node.clock.unix();
            let node = node.clone();
            tokio::spawn(async move {
                tokio::time::sleep(DETACH_GRACE).await;
                let recorded = node.db.read(|db| {
                    db.get(id.index).is_some_and(|s| s.tunnels.iter().any(|t| t.id == id))
                });
                if recorded {
                    detach(&node, id, Default::default(), closed_at).await;
                }
            });
        }
    }
}

/// How long a closed tunnel's detach waits for the client's own reconnect.
const DETACH_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

async fn detach(
    node: &Node,
    id: TunnelId,
    counters: gatehouse_core::Counters,
    at: gatehouse_core::UnixMillis,
) {
    let cmd = Command::Detach(DetachTunnel { at, id, counters });
    if let Err(e) = node.db.propose_command(cmd).await {
        tracing::warn!(tunnel = %id, "detach not committed: {e}");
    }
}

/// The client's `X-CSTP-MTU` caps ours (it knows its path); ours caps the tun device.
fn negotiate_mtu(head: &RequestHead, ours: u16) -> u16 {
    head.header("x-cstp-mtu")
        .and_then(|v| v.trim().parse::<u16>().ok())
        .filter(|&v| v >= 576)
        .map_or(ours, |v| v.min(ours))
}

fn secs(d: Option<std::time::Duration>) -> String {
    d.map_or_else(|| "none".to_string(), |d| d.as_secs().max(1).to_string())
}

/// The `X-CSTP-*` answer of PROTOCOL.md §2.3. No DTLS headers: this node offers CSTP only.
fn connect_headers(
    node: &Node,
    s: &gatehouse_core::ParentSession,
    policy: Option<&gatehouse_core::GroupPolicy>,
    mtu: u16,
    head: &RequestHead,
) -> Vec<(&'static str, String)> {
    let mut h: Vec<(&'static str, String)> = Vec::new();
    h.push(("X-CSTP-Version", "1".into()));
    h.push(("X-CSTP-Server-Name", "Gatehouse".into()));
    let prefix = policy
        .and_then(|p| node.cfg.pool_prefixes.get(&p.address_pool))
        .map_or(32, |(_, len)| *len);
    if let Some(p) = policy {
        h.push(("X-CSTP-DPD", secs(p.dpd_interval_client)));
        if let Some(d) = &p.default_domain {
            h.push(("X-CSTP-Default-Domain", d.clone()));
        }
    }
    h.push(("X-CSTP-Address", s.address.to_string()));
    h.push(("X-CSTP-Netmask", prefix_mask(prefix).to_string()));
    if let Some(p) = policy {
        for d in &p.dns {
            h.push(("X-CSTP-DNS", d.to_string()));
        }
        for (net, len) in &p.split_include {
            h.push(("X-CSTP-Split-Include", format!("{net}/{}", prefix_mask(*len))));
        }
        h.push(("X-CSTP-Keepalive", secs(p.keepalive)));
    }
    h.push(("X-CSTP-Idle-Timeout", secs(s.timers.idle_timeout)));
    h.push(("X-CSTP-Disconnected-Timeout", secs(s.timers.disconnected_timeout)));
    let remaining = s.max_connect_deadline().map(|t| t.since(node.clock.unix()));
    h.push(("X-CSTP-Session-Timeout", secs(s.timers.max_connect_time)));
    if let Some(r) = remaining {
        h.push(("X-CSTP-Session-Timeout-Remaining", r.as_secs().to_string()));
    }
    h.push(("X-CSTP-Rekey-Method", "none".into()));
    let base = head
        .header("x-cstp-base-mtu")
        .and_then(|v| v.trim().parse::<u16>().ok())
        .filter(|&v| v >= 1280)
        .map_or(1500, |v| v.min(1500));
    h.push(("X-CSTP-Base-MTU", base.to_string()));
    h.push(("X-CSTP-MTU", mtu.to_string()));
    h
}

/// Why a tunnel loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// TLS closed or failed.
    Closed,
    /// Gateway DPD declared the peer dead.
    DeadPeer,
    /// No data for the idle timeout.
    Idle,
    /// Client sent DISCONNECT 0xb0: the user logged out.
    UserLogout,
    /// Client sent an empty DISCONNECT: temporary, keep the session.
    ClientTemporary,
    /// The session ended (logoff, eviction, timer).
    SessionEnded,
    /// A newer tunnel took over.
    Replaced,
    /// The client sent a malformed frame.
    Protocol,
    /// The node is stopping.
    Stopping,
}

impl End {
    fn text(self) -> &'static str {
        match self {
            End::Closed => "connection closed",
            End::DeadPeer => "dead peer detected",
            End::Idle => "idle timeout",
            End::UserLogout => "user logout",
            End::ClientTemporary => "client disconnect (temporary)",
            End::SessionEnded => "session ended",
            End::Replaced => "replaced by a newer tunnel",
            End::Protocol => "protocol error",
            End::Stopping => "node stopping",
        }
    }
}

struct Tunnel {
    node: Arc<Node>,
    id: TunnelId,
    address: Ipv4Addr,
    stats: Arc<TunnelStats>,
    mtu: u16,
}

fn frame(kind: FrameType, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(cstp::HEADER_LEN + payload.len());
    // Payloads here are bounded by the MTU or by our own short reasons.
    let _ = cstp::encode_into(kind, payload, &mut v);
    v
}

impl Tunnel {
    async fn run(
        self,
        stream: ClientStream,
        leftover: BytesMut,
        mut rx: mpsc::Receiver<Bytes>,
        mut ctl: mpsc::UnboundedReceiver<TunnelCtl>,
        timers_cfg: TunnelTimersConfig,
    ) -> End {
        let node = self.node.clone();
        let clock = node.clock;
        let (mut rd, mut wr) = tokio::io::split(stream);
        let mut rbuf = leftover;
        rbuf.reserve(64 * 1024);
        let mut timers = TunnelTimers::new(clock.mono(), timers_cfg);
        let mut stopping = node.stopping.clone();
        let mut unflushed = false;
        // When a partial frame started waiting for its remainder.
        let mut partial_since: Option<tokio::time::Instant> = None;
        let max_data = usize::from(self.mtu);
        // Counter handles resolved once: the per-packet cost is one atomic add.
        let rx_bytes = metrics::counter!(m::TUNNEL_BYTES, "dir" => "rx");
        let rx_pkts = metrics::counter!(m::TUNNEL_PACKETS, "dir" => "rx");
        let tx_bytes = metrics::counter!(m::TUNNEL_BYTES, "dir" => "tx");
        let tx_pkts = metrics::counter!(m::TUNNEL_PACKETS, "dir" => "tx");

        let end = 'outer: loop {
            if rbuf.capacity() - rbuf.len() < 16 * 1024 {
                rbuf.reserve(64 * 1024);
            }
            let timer_at = timers.poll_timeout().map(|(t, _)| clock.instant_of(t));
            let partial_at = partial_since.map(|t| t + node.cfg.request_timeout);
            tokio::select! {
                r = rd.read_buf(&mut rbuf) => {
                    match r {
                        Ok(0) | Err(_) => break End::Closed,
                        Ok(_) => {}
                    }
                    loop {
                        let (kind, used) = match cstp::decode(&rbuf, max_data) {
                            Ok(Some((f, used))) => (f.kind, used),
                            Ok(None) => break,
                            Err(e) => {
                                let reason = e.reason();
                                tracing::info!(tunnel = %self.id, "bad frame from client: {e}");
                                bad_input("cstp", reason);
                                let _ = wr.write_all(&frame(FrameType::Disconnect, &cstp::disconnect_payload(&describe(&e)))).await;
                                let _ = wr.flush().await;
                                break 'outer End::Protocol;
                            }
                        };
                        // Take the frame out without copying its payload.
                        let payload = rbuf.split_to(used).freeze().slice(cstp::HEADER_LEN..);
                        let now = clock.mono();
                        match kind {
                            FrameType::Data => {
                                timers.handle_rx(now, true);
                                self.stats.bytes_rx.fetch_add(payload.len() as u64, Ordering::Relaxed);
                                self.stats.pkts_rx.fetch_add(1, Ordering::Relaxed);
                                self.stats.last_data_mono.store(now.0, Ordering::Relaxed);
                                rx_bytes.increment(payload.len() as u64);
                                rx_pkts.increment(1);
                                // A client may only send from its own inner address.
                                if ipv4_src(&payload) != Some(self.address) {
                                    bad_input("cstp", "spoofed_source");
                                    continue;
                                }
                                if let Err(e) = node.dp.send_to_tun(&payload).await {
                                    tracing::debug!("tun write: {e}");
                                }
                            }
                            FrameType::DpdReq => {
                                timers.handle_rx(now, false);
                                // Echo the payload: openconnect's MTU probe needs the same bytes back.
                                if wr.write_all(&frame(FrameType::DpdResp, &payload)).await.is_err() {
                                    break 'outer End::Closed;
                                }
                                unflushed = true;
                            }
                            FrameType::DpdResp | FrameType::Keepalive => timers.handle_rx(now, false),
                            FrameType::Disconnect => {
                                break 'outer match cstp::parse_disconnect(&payload) {
                                    DisconnectKind::UserLogout(_) => End::UserLogout,
                                    DisconnectKind::Temporary => End::ClientTemporary,
                                };
                            }
                            FrameType::Terminate => break 'outer End::ClientTemporary,
                            FrameType::Compressed => {
                                bad_input("cstp", "compression_not_negotiated");
                                let _ = wr.write_all(&frame(FrameType::Disconnect, &cstp::disconnect_payload("compression was not negotiated"))).await;
                                let _ = wr.flush().await;
                                break 'outer End::Protocol;
                            }
                        }
                    }
                    partial_since = if rbuf.is_empty() { None } else { partial_since.or(Some(tokio::time::Instant::from_std(clock.instant_now()))) };
                }
                Some(pkt) = rx.recv() => {
                    let mut n = 0;
                    let mut next = Some(pkt);
                    while let Some(p) = next {
                        if wr.write_all(&frame(FrameType::Data, &p)).await.is_err() {
                            break 'outer End::Closed;
                        }
                        self.stats.bytes_tx.fetch_add(p.len() as u64, Ordering::Relaxed);
                        self.stats.pkts_tx.fetch_add(1, Ordering::Relaxed);
                        tx_bytes.increment(p.len() as u64);
                        tx_pkts.increment(1);
                        n += 1;
                        next = if n < BATCH { rx.try_recv().ok() } else { None };
                    }
                    let now = clock.mono();
                    timers.handle_data_tx(now);
                    self.stats.last_data_mono.store(now.0, Ordering::Relaxed);
                    unflushed = true;
                }
                r = wr.flush(), if unflushed => {
                    if r.is_err() {
                        break End::Closed;
                    }
                    unflushed = false;
                }
                Some(c) = ctl.recv() => {
                    match c {
                        TunnelCtl::SessionEnded(reason) => {
                            let _ = wr.write_all(&frame(FrameType::Disconnect, &cstp::disconnect_payload(reason.text()))).await;
                            let _ = wr.flush().await;
                            break End::SessionEnded;
                        }
                        TunnelCtl::Replaced => break End::Replaced,
                    }
                }
                _ = sleep_opt(timer_at) => {
                    timers.handle_timeout(clock.mono());
                    if timers.poll_transmit().is_some() {
                        if wr.write_all(&frame(FrameType::DpdReq, &[])).await.is_err() {
                            break End::Closed;
                        }
                        unflushed = true;
                    }
                    match timers.poll_event() {
                        Some(TunnelEvent::DeadPeer) => {
                            metrics::counter!(m::DPD_TEARDOWNS).increment(1);
                            break End::DeadPeer;
                        }
                        Some(TunnelEvent::IdleTimeout) => {
                            metrics::counter!(m::IDLE_TEARDOWNS).increment(1);
                            let _ = wr.write_all(&frame(FrameType::Disconnect, &cstp::disconnect_payload("Idle Timeout"))).await;
                            let _ = wr.flush().await;
                            break End::Idle;
                        }
                        None => {}
                    }
                }
                _ = sleep_opt(partial_at) => {
                    tracing::info!(tunnel = %self.id, "incomplete frame never completed");
                    bad_input("cstp", "truncated");
                    let _ = wr.write_all(&frame(FrameType::Disconnect, &cstp::disconnect_payload("truncated frame"))).await;
                    let _ = wr.flush().await;
                    break End::Protocol;
                }
                _ = stopping.changed() => {
                    if *stopping.borrow() == Stopping::Terminate {
                        let _ = wr.write_all(&frame(FrameType::Terminate, &[])).await;
                        let _ = wr.flush().await;
                    }
                    break End::Stopping;
                }
            }
        };
        let mut s = rd.unsplit(wr);
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), s.shutdown()).await;
        end
    }
}

fn describe(e: &FrameError) -> String {
    match e {
        FrameError::BadMagic(_) => "bad frame magic".into(),
        FrameError::NonZeroReserved(_) => "nonzero reserved byte".into(),
        FrameError::UnknownType(t) => format!("unknown frame type {t}"),
        FrameError::TooLong { len, max } => format!("frame length {len} beyond the MTU {max}"),
    }
}

async fn sleep_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
