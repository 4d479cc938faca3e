//! Every metric name in one place, and the Prometheus endpoint. docs/metrics.md lists them.

use anyhow::Result;
use metrics_exporter_prometheus::PrometheusHandle;

/// Gauge: sessions with an ssl tunnel.
pub const SESSIONS_ACTIVE: &str = "gatehouse_sessions_active";
/// Gauge: sessions waiting to resume (no ssl tunnel).
pub const SESSIONS_INACTIVE: &str = "gatehouse_sessions_inactive";
/// Gauge: inner addresses leased to sessions.
pub const ADDRESS_LEASES: &str = "gatehouse_address_leases";
/// Gauge: tunnels terminated on this node, label `kind` (ssl, dtls, quic).
pub const TUNNELS: &str = "gatehouse_tunnels";
/// Counter: logins, label `result` (ok, failed, throttled, refused, error).
pub const LOGINS: &str = "gatehouse_logins_total";
/// Counter: tunnels that resumed an existing parent session with its cookie.
pub const RESUMES: &str = "gatehouse_resumes_total";
/// Counter: tunnels torn down by gateway DPD.
pub const DPD_TEARDOWNS: &str = "gatehouse_dpd_teardowns_total";
/// Counter: tunnels torn down by the idle timeout.
pub const IDLE_TEARDOWNS: &str = "gatehouse_idle_teardowns_total";
/// Counter: sessions ended, label `reason`.
pub const SESSIONS_ENDED: &str = "gatehouse_sessions_ended_total";
/// Counter: tunnel payload bytes, label `dir` (tx = to clients, rx = from clients).
pub const TUNNEL_BYTES: &str = "gatehouse_tunnel_bytes_total";
/// Counter: tunnel packets, label `dir`.
pub const TUNNEL_PACKETS: &str = "gatehouse_tunnel_packets_total";
/// Counter: bad input refused, labels `stage` (tls, http, auth, cookie, cstp) and `reason`.
pub const BAD_INPUT: &str = "gatehouse_bad_input_total";
/// Counter: packets from the tun device with no session owning the destination.
pub const TUN_NO_ROUTE: &str = "gatehouse_tun_no_route_total";
/// Counter: packets dropped because a tunnel's queue was full.
pub const TUNNEL_QUEUE_DROPS: &str = "gatehouse_tunnel_queue_drops_total";
/// Histogram: seconds from proposing a command to its commit and apply.
pub const COMMIT_SECONDS: &str = "gatehouse_raft_commit_seconds";
/// Histogram: commands per log entry proposed by this node (group commit).
pub const BATCH_COMMANDS: &str = "gatehouse_raft_batch_commands";

/// Gauge: how far this node's wall clock is ahead of cluster time (negative: behind), in
/// seconds. Timers follow cluster time; past ±1 s the node also logs a warning.
pub const CLOCK_OFFSET_SECONDS: &str = "gatehouse_clock_offset_seconds";
/// Counter: slots assigned to a new owner by this node as leader (failovers and switchovers).
pub const FAILOVERS: &str = "gatehouse_failover_total";
/// Counter: cluster-port calls refused for their caller's role (labels `rpc`, `role`:
/// node, director, operator or none), `cluster::role`.
pub const CLUSTER_REFUSED: &str = "gatehouse_cluster_refused_total";
/// Gauge: current Raft term.
pub const RAFT_TERM: &str = "gatehouse_raft_term";
/// Counter: leader changes seen by this node.
pub const RAFT_LEADER_CHANGES: &str = "gatehouse_raft_leader_changes_total";
/// Gauge: 1 while this node is the leader.
pub const RAFT_IS_LEADER: &str = "gatehouse_raft_is_leader";
/// Gauge: entries in the log (last index − purged index).
pub const RAFT_LOG_ENTRIES: &str = "gatehouse_raft_log_entries";
/// Gauge: bytes the log's entries take in the store (a snapshot is built past 64 MiB).
pub const RAFT_LOG_BYTES: &str = "gatehouse_raft_log_bytes";
/// Gauge: last log index.
pub const RAFT_LAST_LOG_INDEX: &str = "gatehouse_raft_last_log_index";
/// Gauge: last applied index.
pub const RAFT_APPLIED_INDEX: &str = "gatehouse_raft_applied_index";
/// Gauge: last log index − last applied index.
pub const RAFT_APPLY_LAG: &str = "gatehouse_raft_apply_lag";
/// Counter: snapshots built or installed.
pub const RAFT_SNAPSHOTS: &str = "gatehouse_raft_snapshots_total";

/// Export openraft's metrics of `raft` as they change.
pub async fn follow_raft<C>(raft: openraft::Raft<C>)
where
    C: openraft::RaftTypeConfig<NodeId = u64>,
{
    let mut rx = raft.metrics();
    let (mut leader, mut snapshot) = (None, None);
    loop {
        let m = rx.borrow_and_update().clone();
        let last = m.last_log_index.unwrap_or(0);
        let applied = m.last_applied.map_or(0, |l| l.index);
        let purged = m.purged.map_or(0, |l| l.index + 1);
        metrics::gauge!(RAFT_TERM).set(m.current_term as f64);
        metrics::gauge!(RAFT_IS_LEADER).set(if m.current_leader == Some(m.id) { 1.0 } else { 0.0 });
        metrics::gauge!(RAFT_LAST_LOG_INDEX).set(last as f64);
        metrics::gauge!(RAFT_APPLIED_INDEX).set(applied as f64);
        metrics::gauge!(RAFT_APPLY_LAG).set(last.saturating_sub(applied) as f64);
        metrics::gauge!(RAFT_LOG_ENTRIES).set(last.saturating_sub(purged) as f64 + 1.0);
        if m.current_leader != leader {
            if m.current_leader.is_some() {
                metrics::counter!(RAFT_LEADER_CHANGES).increment(1);
                tracing::info!(leader = ?m.current_leader, term = m.current_term, "raft leader");
            }
            leader = m.current_leader;
        }
        if m.snapshot != snapshot {
            if m.snapshot.is_some() {
                metrics::counter!(RAFT_SNAPSHOTS).increment(1);
            }
            snapshot = m.snapshot;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Install the global recorder; returns the handle that renders the exposition text.
pub fn install() -> Result<PrometheusHandle> {
    gatehouse_runtime::metrics::install(&[
        (COMMIT_SECONDS, &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0]),
        (BATCH_COMMANDS, &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0]),
    ])
}

/// Serve `GET /metrics` (any path, really) on `addr` in plain HTTP.
pub use gatehouse_runtime::metrics::serve;
