//! The `[cluster]` section: how this node reaches its peers, and the Raft timing.

use super::raw::RawCluster;
use super::{ConfigError, Cx};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The `[cluster]` section: how this node reaches its peers.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Cluster name (Raft's cluster name; must match on every node).
    pub name: String,
    /// Cluster port (Raft and forwarded writes, mutual TLS).
    pub listen: SocketAddr,
    /// The cluster CA certificate (PEM).
    pub ca_cert: PathBuf,
    /// This node's certificate, naming `node-<id>` (PEM).
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// The other initial members: id → cluster address.
    pub peers: BTreeMap<u64, SocketAddr>,
    /// How often this node proposes its heartbeat.
    pub heartbeat: Duration,
    /// A member silent for this long is declared down by the leader (its tunnels detach).
    pub node_down_after: Duration,
    /// A write that has not committed after this long fails (e.g. in a minority partition).
    pub write_timeout: Duration,
    /// How long a stopping member waits for its turn to leave (`gatehouse_core::leaving`)
    /// before it leaves without one.
    pub leave_wait: Duration,
    /// How often the Raft leader sends heartbeats (AppendEntries) to the followers.
    pub raft_heartbeat: Duration,
    /// Followers wait a random time in `[min, max)` beyond openraft's leader lease (`max`)
    /// without a heartbeat before they start an election.
    pub election_timeout: (Duration, Duration),
}

impl ClusterConfig {
    /// Default `raft_heartbeat`.
    pub const RAFT_HEARTBEAT: Duration = Duration::from_millis(40);
    /// Default `election_timeout_min` and `election_timeout_max`.
    pub const ELECTION_TIMEOUT: (Duration, Duration) =
        (Duration::from_millis(120), Duration::from_millis(170));

    /// The longest a surviving follower can take to start an election after the leader's
    /// last heartbeat: openraft (0.9) refuses to elect before the leader lease (= the maximum
    /// election timeout) plus its own election timeout, checked on a tick of 1.5 heartbeats.
    pub fn worst_election_start(&self) -> Duration {
        let (_, max) = self.election_timeout;
        max + max + self.raft_heartbeat * 3 / 2
    }
}

pub(super) fn parse(
    cx: &Cx<'_>,
    raw: Option<&RawCluster>,
    node_id: u64,
) -> Result<Option<ClusterConfig>, ConfigError> {
    Ok(match raw {
        None => None,
        Some(c) => {
            let listen = c.listen.parse().map_err(|_| {
                cx.err(
                    "cluster.listen",
                    format!("{:?} is not an address:port like \"10.0.0.1:7443\"", c.listen),
                )
            })?;
            let mut peers = BTreeMap::new();
            for (i, p) in c.peers.iter().enumerate() {
                let a: SocketAddr = p.addr.parse().map_err(|_| {
                    cx.err(
                        &format!("cluster.peers[{i}].addr"),
                        format!("{:?} is not an address:port", p.addr),
                    )
                })?;
                if p.id == node_id {
                    return Err(cx.err(
                        &format!("cluster.peers[{i}].id"),
                        format!(
                            "{} is this node's own id (node.id); list only the other members",
                            p.id
                        ),
                    ));
                }
                if peers.insert(p.id, a).is_some() {
                    return Err(cx.err(
                        &format!("cluster.peers[{i}].id"),
                        format!("{} is listed twice", p.id),
                    ));
                }
            }
            let d = |key: &str, v: &Option<String>, def: u64| -> Result<Duration, ConfigError> {
                Ok(cx
                    .dur(key, v, Some(Duration::from_millis(def)))?
                    .unwrap_or(Duration::from_millis(def)))
            };
            let ms = |d: Duration| d.as_millis() as u64;
            let (emin, emax) = ClusterConfig::ELECTION_TIMEOUT;
            let raft_heartbeat =
                d("cluster.raft_heartbeat", &c.raft_heartbeat, ms(ClusterConfig::RAFT_HEARTBEAT))?;
            let emin = d("cluster.election_timeout_min", &c.election_timeout_min, ms(emin))?;
            let emax = d("cluster.election_timeout_max", &c.election_timeout_max, ms(emax))?;
            if raft_heartbeat.is_zero() {
                return Err(cx.err("cluster.raft_heartbeat", "must be longer than 0 ms".into()));
            }
            if emin < raft_heartbeat * 3 {
                return Err(cx.err(
                    "cluster.election_timeout_min",
                    format!(
                        "{} ms is less than three Raft heartbeats ({} ms): followers would \
                         start elections while the leader is alive",
                        emin.as_millis(),
                        raft_heartbeat.as_millis() * 3
                    ),
                ));
            }
            if emax <= emin {
                return Err(cx.err(
                    "cluster.election_timeout_max",
                    format!(
                        "{} ms must be longer than election_timeout_min ({} ms)",
                        emax.as_millis(),
                        emin.as_millis()
                    ),
                ));
            }
            Some(ClusterConfig {
                raft_heartbeat,
                election_timeout: (emin, emax),
                name: c.name.clone(),
                listen,
                ca_cert: cx.rel(&c.ca_cert),
                cert: cx.rel(&c.cert),
                key: cx.rel(&c.key),
                peers,
                heartbeat: d("cluster.heartbeat", &c.heartbeat, 1000)?,
                node_down_after: d("cluster.node_down_after", &c.node_down_after, 3000)?,
                write_timeout: d("cluster.write_timeout", &c.write_timeout, 3000)?,
                leave_wait: d("cluster.leave_wait", &c.leave_wait, 8000)?,
            })
        }
    })
}
