//! The `CONNECT /CSCOSSLC/tunnel` answer of one `ssl` tunnel: cookie and slot checks, the
//! Attach proposal, the `X-CSTP-*` headers, and what the session db hears once the tunnel
//! closed. The tunnel's rules live in `gatehouse_core::tunnel` (`CstpTunnel`); the loop that
//! moves bytes, time and orders in and out of it is `cstp_driver`.

use crate::db::ProposeError;
use crate::edge::cstp_driver as driver;
use crate::edge::dataplane::Route;
use crate::edge::token;
use crate::edge::tunnels::{LocalTunnel, TunnelCtl, TunnelStats};
use crate::edge::{bad_input, ClientStream};
use crate::metrics as m;
use crate::node::Node;
use bytes::{Bytes, BytesMut};
use gatehouse_core::tunnel::connect::{connect_headers, negotiate_mtu, ClientMtu};
use gatehouse_core::{
    AfterClose, AttachTunnel, Attached, CstpConfig, CstpTunnel, EndReason, EndSessions, Rejection,
    TunnelKind, TunnelTimersConfig,
};
use gatehouse_proto::http::{self, RequestHead};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tracing::Instrument;

/// Packets queued towards one client before the tun reader starts dropping.
const QUEUE: usize = 512;

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
        Err(gatehouse_core::slot_agent::SlotMoved) => {
            return refuse(stream, 503, "slot moved to another node").await
        }
    };
    let attach = AttachTunnel {
        at: node.db.now(),
        token_hash: hash,
        kind: TunnelKind::Ssl,
        node: node.db.node_id(),
        public_ip: peer.ip().to_string(),
        src_port: peer.port(),
        dst_port: local_port,
        slot,
    };
    let (id, address, user, resumed) = match node.db.propose(attach).await {
        Ok(Attached { tunnel, address, user, replaced, resumed }) => {
            for r in replaced {
                node.tunnels.send(r, TunnelCtl::Replaced);
            }
            (tunnel, address, user, resumed)
        }
        Err(ProposeError::Refused(r)) => {
            tracing::info!(%peer, "tunnel refused: {}", r.text());
            bad_input(
                "cookie",
                if r == Rejection::UnknownToken { "unknown_session" } else { "refused" },
            );
            return refuse(stream, 401, r.text()).await;
        }
        Err(ProposeError::Unavailable(e)) => {
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
    let client = ClientMtu::from_head(&head);
    let mtu = negotiate_mtu(client, node.cfg.mtu);
    let prefix_len = policy
        .as_ref()
        .and_then(|p| node.cfg.pool_prefixes.get(&p.address_pool))
        .map_or(32, |(_, len)| *len);
    let headers = connect_headers(node.db.now(), &sess, policy.as_ref(), prefix_len, mtu, client);
    let mut stream = stream;
    if stream.write_all(&http::connect_ok(&headers)).await.is_err() || stream.flush().await.is_err()
    {
        driver::detach(&node, id, Default::default(), node.db.now()).await;
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
    let cfg = CstpConfig {
        address,
        mtu,
        timers: TunnelTimersConfig {
            dpd: policy.as_ref().and_then(|p| p.dpd_interval_gateway),
            idle_timeout: sess.timers.idle_timeout,
        },
        partial_frame_limit: node.cfg.request_timeout,
    };
    let core = CstpTunnel::new(node.clock.mono(), cfg, leftover);
    let (core, end, after) =
        driver::drive(&node, id, stream, core, rx, ctl_rx, stats).instrument(span.clone()).await;
    node.dp.remove_route(address, id);
    node.tunnels.remove(id);
    let _e = span.enter();
    tracing::info!(reason = end.text(), "ssl tunnel down");
    drop(_e);
    match after {
        AfterClose::EndSession => {
            let cmd = EndSessions {
                at: node.db.now(),
                indices: vec![id.index],
                reason: EndReason::UserRequested,
            };
            if let Err(e) = node.db.propose(cmd).await {
                tracing::warn!(tunnel = %id, "logout not committed: {e}");
            }
        }
        AfterClose::Nothing => {}
        AfterClose::DetachNow(counters) => driver::detach(&node, id, counters, node.db.now()).await,
        // The timestamp is the close time, so inactivity counts from the real moment.
        AfterClose::DetachAfterGrace => {
            let closed_at = node.db.now();
            tokio::spawn(driver::detach_after_grace(node.clone(), id, core, closed_at));
        }
    }
}
