//! Admin API: the gRPC service `gatehouse.admin.v1.Admin` (proto/proto/admin.proto) that
//! `gatehousectl` speaks, on `admin_listen` (loopback only: it has no authentication, and the
//! config refuses anything else).
//!
//! Reads come from the applied session db plus the live counters of the tunnels running on
//! this node. A logoff is one replicated `End` command; the ended-journal follower
//! (`sessions::follow_endings`) then sends DISCONNECT to the clients, on whichever node holds
//! them, so this module never touches a tunnel.

use crate::node::Node;
use crate::stopping::Stopping;
use gatehouse_core::{
    Counters, EndReason, EndSessions, MonoMillis, ParentSession, SessionDb, TunnelId, TunnelKind,
    UnixMillis,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// Generated messages, client and server of `gatehouse.admin.v1` (in gatehouse-proto).
pub use gatehouse_proto::admin as pb;

use pb::logoff_request::Selector as PbSelector;
use pb::show_sessions_request::Filter as PbFilter;

/// Serve the admin API until the node stops. A port that cannot be bound is logged and the
/// node runs on without its admin API (clients are not affected).
pub async fn serve(node: Arc<Node>) {
    let addr = node.cfg.admin_listen;
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, "admin API not started: cannot bind: {e}");
            return;
        }
    };
    tracing::info!(%addr, "admin API listening");
    let mut stopping = node.stopping.clone();
    let shutdown = async move {
        // An Err means the sender is gone: the node is going away as well.
        let _ = stopping.wait_for(|s| *s != Stopping::No).await;
    };
    let svc = pb::admin_server::AdminServer::new(AdminService { node });
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    if let Err(e) = tonic::transport::Server::builder()
        .add_service(svc)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
    {
        tracing::error!(%addr, "admin API stopped: {e}");
    }
}

struct AdminService {
    node: Arc<Node>,
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn show_sessions(
        &self,
        req: Request<pb::ShowSessionsRequest>,
    ) -> Result<Response<pb::ShowSessionsReply>, Status> {
        let filter = req.into_inner().filter;
        let node = &self.node;
        let selected: Vec<ParentSession> = node.db.read(|db| {
            db.sessions().filter(|s| matches_filter(s, filter.as_ref())).cloned().collect()
        });
        let (now, mono) = (node.db.now(), node.clock.mono());
        let sessions = selected
            .iter()
            .map(|s| {
                let live: Vec<LiveTunnel> = node
                    .tunnels
                    .stats_of(s.index)
                    .into_iter()
                    .map(|(id, st)| {
                        let last = st.last_data_mono.load(Ordering::Relaxed);
                        LiveTunnel {
                            id,
                            counters: st.counters(),
                            last_data: (last != 0).then_some(MonoMillis(last)),
                        }
                    })
                    .collect();
                session_view(s, &live, now, mono)
            })
            .collect();
        Ok(Response::new(pb::ShowSessionsReply {
            sessions,
            now_unix_ms: now.0,
            node_id: node.db.node_id(),
        }))
    }

    async fn logoff(
        &self,
        req: Request<pb::LogoffRequest>,
    ) -> Result<Response<pb::LogoffReply>, Status> {
        let selector = req.into_inner().selector;
        let indices = self.node.db.read(|db| select_logoff(db, selector.as_ref()))?;
        if indices.is_empty() {
            return Ok(Response::new(pb::LogoffReply { indices }));
        }
        let cmd = EndSessions { at: self.node.db.now(), indices, reason: EndReason::AdminLogoff };
        match self.node.db.propose(cmd).await {
            Ok(indices) => {
                tracing::info!(sessions = ?indices, "administrator logoff");
                Ok(Response::new(pb::LogoffReply { indices }))
            }
            Err(e) => Err(Status::unavailable(format!("logoff not committed, nothing ended: {e}"))),
        }
    }

    async fn show_cluster(
        &self,
        _req: Request<pb::ShowClusterRequest>,
    ) -> Result<Response<pb::ClusterReply>, Status> {
        Ok(Response::new(crate::cluster::admin::show(&self.node.db)))
    }

    async fn add_node(
        &self,
        req: Request<pb::AddNodeRequest>,
    ) -> Result<Response<pb::ClusterReply>, Status> {
        let r = req.into_inner();
        crate::cluster::admin::add_node(&self.node.db, r.id, &r.addr).await.map(Response::new)
    }

    async fn show_failover(
        &self,
        _req: Request<pb::ShowFailoverRequest>,
    ) -> Result<Response<pb::FailoverReply>, Status> {
        Ok(Response::new(crate::slots::admin::show(&self.node.slots)))
    }

    async fn failover_switch(
        &self,
        req: Request<pb::FailoverSwitchRequest>,
    ) -> Result<Response<pb::FailoverReply>, Status> {
        crate::slots::admin::switch(&self.node.slots, req.into_inner().slot)
            .await
            .map(Response::new)
    }

    async fn drill_crash(
        &self,
        _req: Request<pb::DrillCrashRequest>,
    ) -> Result<Response<pb::DrillCrashReply>, Status> {
        let node = self.node.clone();
        tokio::spawn(async move {
            // Answer first, then vanish.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            crate::slots::admin::crash(&node.slots);
        });
        Ok(Response::new(pb::DrillCrashReply {}))
    }

    async fn drill(
        &self,
        req: Request<pb::DrillRequest>,
    ) -> Result<Response<pb::DrillReport>, Status> {
        crate::slots::drill::run(&self.node.slots, req.into_inner()).await.map(Response::new)
    }

    async fn remove_node(
        &self,
        req: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::ClusterReply>, Status> {
        crate::cluster::admin::remove_node(&self.node.db, req.into_inner().id)
            .await
            .map(Response::new)
    }
}

/// The live view of one tunnel running on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveTunnel {
    /// Its id.
    pub id: TunnelId,
    /// Its counters so far.
    pub counters: Counters,
    /// Monotonic time of its last data packet; `None` before the first.
    pub last_data: Option<MonoMillis>,
}

/// Whether a session passes a `show vpn-sessiondb` filter (`None` = every session).
pub fn matches_filter(s: &ParentSession, f: Option<&PbFilter>) -> bool {
    match f {
        None => true,
        Some(PbFilter::Inactive(inactive)) => s.inactive_since.is_some() == *inactive,
        Some(PbFilter::Name(n)) => s.user == *n,
        Some(PbFilter::Ipaddress(a)) => {
            let a = a.trim();
            s.address.to_string() == a
                || s.public_ip == a
                || s.tunnels.iter().any(|t| t.public_ip == a)
        }
        Some(PbFilter::TunnelGroup(g)) => s.tunnel_group == *g,
    }
}

/// The sessions a logoff selector names, in index order. Unknown indices and names select
/// nothing (the reply then says 0 sessions); a malformed selector is `INVALID_ARGUMENT`.
pub fn select_logoff(db: &SessionDb, sel: Option<&PbSelector>) -> Result<Vec<u64>, Status> {
    let pick = |f: &dyn Fn(&ParentSession) -> bool| -> Vec<u64> {
        db.sessions().filter(|s| f(s)).map(|s| s.index).collect()
    };
    match sel {
        None => Err(Status::invalid_argument(
            "empty logoff selector: set one of index, name, tunnel_group, protocol, inactive, all",
        )),
        Some(PbSelector::Index(i)) => Ok(db.get(*i).map(|s| vec![s.index]).unwrap_or_default()),
        Some(PbSelector::Name(n)) => Ok(pick(&|s| s.user == *n)),
        Some(PbSelector::TunnelGroup(g)) => Ok(pick(&|s| s.tunnel_group == *g)),
        Some(PbSelector::Protocol(p)) => {
            let kind = protocol_kind(p).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "unknown protocol {p:?}; accepted: anyconnect, ssl, dtls, quic"
                ))
            })?;
            Ok(pick(&|s| s.tunnels.iter().any(|t| t.kind == kind)))
        }
        Some(PbSelector::Inactive(true)) => Ok(pick(&|s| s.inactive_since.is_some())),
        Some(PbSelector::All(true)) => Ok(pick(&|_| true)),
        Some(PbSelector::Inactive(false) | PbSelector::All(false)) => {
            Err(Status::invalid_argument("the inactive and all selectors must be true"))
        }
    }
}

/// The tunnel kind a logoff `protocol` word selects. `anyconnect` means every connected
/// AnyConnect session, i.e. one holding an ssl tunnel (DESIGN.md: the definition of active).
fn protocol_kind(p: &str) -> Option<TunnelKind> {
    match p.trim().to_ascii_lowercase().as_str() {
        "anyconnect" | "ssl" | "ssl-tunnel" => Some(TunnelKind::Ssl),
        "dtls" | "dtls-tunnel" => Some(TunnelKind::Dtls),
        "quic" | "quic-tunnel" => Some(TunnelKind::Quic),
        _ => None,
    }
}

fn secs(d: Option<Duration>) -> u64 {
    d.map(|d| d.as_secs()).unwrap_or(0)
}

/// Seconds before the idle timeout fires for a tunnel: the idle timeout minus the time since
/// its last data packet, or since it started when it has carried none yet (the tunnel timer
/// starts counting at attach). `None` without an idle timeout.
pub fn idle_left_s(
    idle_timeout: Option<Duration>,
    last_data: Option<MonoMillis>,
    started: UnixMillis,
    now: UnixMillis,
    mono: MonoMillis,
) -> Option<u64> {
    let idle = idle_timeout?;
    let quiet = match last_data {
        Some(t) => mono.since(t),
        None => now.since(started),
    };
    Some(idle.saturating_sub(quiet).as_secs())
}

/// A session as the admin API shows it. Totals are the replicated checkpoint (tunnels that
/// detached) plus the live counters of its tunnels on this node; tunnels running on another
/// node show zero counters and no `idle_left_s`.
pub fn session_view(
    s: &ParentSession,
    live: &[LiveTunnel],
    now: UnixMillis,
    mono: MonoMillis,
) -> pb::Session {
    let totals = live.iter().fold(s.counters, |acc, t| acc.plus(t.counters));
    let tunnels = s
        .tunnels
        .iter()
        .map(|t| {
            let l = live.iter().find(|l| l.id == t.id);
            let c = l.map(|l| l.counters).unwrap_or_default();
            pb::Tunnel {
                id: t.id.to_string(),
                kind: t.kind.label().to_string(),
                node: t.node,
                public_ip: t.public_ip.clone(),
                src_port: u32::from(t.src_port),
                dst_port: u32::from(t.dst_port),
                started_unix_ms: t.started.0,
                bytes_tx: c.bytes_tx,
                bytes_rx: c.bytes_rx,
                pkts_tx: c.pkts_tx,
                pkts_rx: c.pkts_rx,
                idle_left_s: l.and_then(|l| {
                    idle_left_s(s.timers.idle_timeout, l.last_data, t.started, now, mono)
                }),
            }
        })
        .collect();
    pb::Session {
        index: s.index,
        username: s.user.clone(),
        assigned_ip: s.address.to_string(),
        public_ip: s.public_ip.clone(),
        tunnel_group: s.tunnel_group.clone(),
        group_policy: s.group_policy.clone(),
        login_time_unix_ms: s.login_time.0,
        inactive_since_unix_ms: s.inactive_since.map(|t| t.0),
        client_version: s.client_version.clone(),
        idle_timeout_s: secs(s.timers.idle_timeout),
        disconnected_timeout_s: secs(s.timers.disconnected_timeout),
        max_connect_time_s: secs(s.timers.max_connect_time),
        resumes: s.resumes,
        slot: s.slot,
        bytes_tx: totals.bytes_tx,
        bytes_rx: totals.bytes_rx,
        pkts_tx: totals.pkts_tx,
        pkts_rx: totals.pkts_rx,
        tunnels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::{
        AttachTunnel, Command, GroupPolicy, NewSession, Outcome, PoolRange, TokenHash,
    };
    use std::net::Ipv4Addr;

    const T0: u64 = 1_700_000_000_000;

    /// A db with alice (connected, tunnel 1.1 from 203.0.113.5), bob (logged in, never
    /// connected: inactive) and carol in tunnel group "eng" (connected).
    fn db() -> SessionDb {
        let mut db = SessionDb::new();
        let pool = PoolRange::from_cidr("p", Ipv4Addr::new(10, 99, 0, 0), 24).unwrap();
        for (i, (user, tg, connect)) in
            [("alice", "default", true), ("bob", "default", false), ("carol", "eng", true)]
                .into_iter()
                .enumerate()
        {
            let token_hash = TokenHash([i as u8 + 1; 32]);
            let at = UnixMillis(T0 + i as u64);
            let out = db.apply(&Command::Login(NewSession {
                at,
                user: user.into(),
                tunnel_group: tg.into(),
                group_policy: "default".into(),
                timers: GroupPolicy::with_defaults("default", "p").session_timers(),
                pool: pool.clone(),
                token_hash,
                client_version: "Open AnyConnect VPN Agent v9.12".into(),
                public_ip: "203.0.113.5".into(),
                slot: None,
            }));
            assert!(matches!(out, Outcome::LoggedIn { .. }), "{out:?}");
            if connect {
                let out = db.apply(&Command::Attach(AttachTunnel {
                    at,
                    token_hash,
                    kind: TunnelKind::Ssl,
                    node: 1,
                    public_ip: format!("203.0.113.{}", 5 + i),
                    src_port: 50000,
                    dst_port: 443,
                    slot: None,
                }));
                assert!(matches!(out, Outcome::Attached { .. }), "{out:?}");
            }
        }
        db
    }

    fn names(db: &SessionDb, ids: &[u64]) -> Vec<String> {
        ids.iter().map(|i| db.get(*i).unwrap().user.clone()).collect()
    }

    #[test]
    fn logoff_selectors_pick_the_sessions_a_headend_would() {
        let db = db();
        let sel = |s: PbSelector| names(&db, &select_logoff(&db, Some(&s)).unwrap());
        assert_eq!(sel(PbSelector::All(true)), ["alice", "bob", "carol"]);
        assert_eq!(sel(PbSelector::Name("bob".into())), ["bob"]);
        assert_eq!(sel(PbSelector::TunnelGroup("eng".into())), ["carol"]);
        assert_eq!(sel(PbSelector::Inactive(true)), ["bob"]);
        assert_eq!(sel(PbSelector::Protocol("AnyConnect".into())), ["alice", "carol"]);
        assert_eq!(sel(PbSelector::Index(2)), ["bob"]);
        assert!(sel(PbSelector::Index(99)).is_empty(), "unknown index ends nothing");
        assert!(sel(PbSelector::Name("mallory".into())).is_empty());
    }

    #[test]
    fn malformed_logoff_selectors_are_invalid_arguments() {
        let db = db();
        for s in [None, Some(PbSelector::All(false)), Some(PbSelector::Protocol("ikev2".into()))] {
            let e = select_logoff(&db, s.as_ref()).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{s:?}");
        }
    }

    #[test]
    fn show_filters() {
        let db = db();
        let pick = |f: PbFilter| -> Vec<String> {
            db.sessions().filter(|s| matches_filter(s, Some(&f))).map(|s| s.user.clone()).collect()
        };
        assert_eq!(pick(PbFilter::Inactive(true)), ["bob"]);
        assert_eq!(pick(PbFilter::Inactive(false)), ["alice", "carol"]);
        assert_eq!(pick(PbFilter::Name("carol".into())), ["carol"]);
        assert_eq!(pick(PbFilter::TunnelGroup("default".into())), ["alice", "bob"]);
        let bob_ip = db.sessions().nth(1).unwrap().address.to_string();
        assert_eq!(pick(PbFilter::Ipaddress(bob_ip)), ["bob"]);
        assert_eq!(pick(PbFilter::Ipaddress("203.0.113.7".into())), ["carol"], "public address");
    }

    #[test]
    fn totals_add_live_tunnel_counters_to_the_checkpoint() {
        let db = db();
        let mut alice = db.get(1).unwrap().clone();
        alice.counters = Counters { bytes_tx: 1000, bytes_rx: 500, pkts_tx: 10, pkts_rx: 5 };
        let id = alice.tunnels[0].id;
        let live = [LiveTunnel {
            id,
            counters: Counters { bytes_tx: 1, bytes_rx: 2, pkts_tx: 3, pkts_rx: 4 },
            last_data: Some(MonoMillis(60_000)),
        }];
        // 100 s of monotonic time later, 10 s after the last packet.
        let v = session_view(&alice, &live, UnixMillis(T0 + 100_000), MonoMillis(70_000));
        assert_eq!((v.bytes_tx, v.bytes_rx, v.pkts_tx, v.pkts_rx), (1001, 502, 13, 9));
        assert_eq!(v.inactive_since_unix_ms, None);
        assert_eq!(v.idle_timeout_s, 1800);
        let t = &v.tunnels[0];
        assert_eq!((t.id.as_str(), t.kind.as_str()), ("1.1", "SSL-Tunnel"));
        assert_eq!((t.bytes_tx, t.pkts_rx), (1, 4));
        assert_eq!(t.idle_left_s, Some(1790));
        // The same tunnel seen from a node that does not run it.
        let v = session_view(&alice, &[], UnixMillis(T0 + 100_000), MonoMillis(70_000));
        assert_eq!(v.bytes_tx, 1000);
        assert_eq!((v.tunnels[0].bytes_tx, v.tunnels[0].idle_left_s), (0, None));
    }

    #[test]
    fn idle_left_counts_from_tunnel_start_before_the_first_packet() {
        let idle = Some(Duration::from_secs(600));
        let started = UnixMillis(T0);
        let left = idle_left_s(idle, None, started, UnixMillis(T0 + 60_000), MonoMillis(5));
        assert_eq!(left, Some(540));
        let left = idle_left_s(idle, None, started, UnixMillis(T0 + 3_600_000), MonoMillis(5));
        assert_eq!(left, Some(0), "never negative");
        assert_eq!(idle_left_s(None, None, started, UnixMillis(T0), MonoMillis(0)), None);
    }
}
