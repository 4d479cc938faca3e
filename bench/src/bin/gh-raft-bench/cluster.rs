//! Three `SessionStore`s with their cluster gRPC services in this process: start, leader, shutdown.

use crate::{HEARTBEAT, NODE_DOWN_AFTER, WRITE_TIMEOUT};
use anyhow::{bail, Context, Result};
use gatehouse_node::cluster::pki::ClusterCa;
use gatehouse_node::cluster::{service, ClusterTls};
use gatehouse_node::config::ClusterConfig;
use gatehouse_node::db::SessionStore;
use gatehouse_tests::clock;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub(crate) struct Node {
    pub(crate) id: u64,
    pub(crate) store: SessionStore,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
}

pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Node>,
}

fn free_ports(n: usize) -> Result<Vec<SocketAddr>> {
    // Bind them all before dropping any so the kernel hands out distinct ports.
    let ls = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("binding 127.0.0.1:0")?;
    ls.iter().map(|l| l.local_addr().context("local_addr")).collect()
}

impl Cluster {
    pub(crate) async fn start(dir: &Path, n: u64) -> Result<Cluster> {
        let addrs = free_ports(n as usize)?;
        let ca = ClusterCa::generate("bench")?;
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, ca.cert_pem())?;
        let mut nodes = Vec::new();
        for id in 1..=n {
            let nd = dir.join(format!("node-{id}"));
            std::fs::create_dir_all(&nd)?;
            let (cert, key) = ca.node_cert(id, IpAddr::V4(Ipv4Addr::LOCALHOST))?;
            std::fs::write(nd.join("cluster.pem"), cert)?;
            std::fs::write(nd.join("cluster.key"), key)?;
            let peers: BTreeMap<u64, SocketAddr> =
                (1..=n).filter(|&j| j != id).map(|j| (j, addrs[j as usize - 1])).collect();
            let cfg = ClusterConfig {
                name: "bench".into(),
                listen: addrs[id as usize - 1],
                ca_cert: ca_path.clone(),
                cert: nd.join("cluster.pem"),
                key: nd.join("cluster.key"),
                peers,
                heartbeat: HEARTBEAT,
                node_down_after: NODE_DOWN_AFTER,
                write_timeout: WRITE_TIMEOUT,
                leave_wait: std::time::Duration::ZERO,
                raft_heartbeat: ClusterConfig::RAFT_HEARTBEAT,
                election_timeout: ClusterConfig::ELECTION_TIMEOUT,
            };
            let store = SessionStore::open(id, &nd.join("data"), Some(&cfg))
                .await
                .with_context(|| format!("opening node {id}"))?;
            let tls = ClusterTls::load(&cfg)?;
            let (tx, rx) = oneshot::channel::<()>();
            let server = service::serve(
                &store,
                cfg.listen,
                &tls,
                async move {
                    let _ = rx.await;
                },
                gatehouse_node::cluster::watch_service::SlotSource::new(
                    store.clone(),
                    443,
                    gatehouse_node::clock::Clock::new(),
                    Duration::from_millis(50),
                    Duration::from_millis(600),
                ),
                Default::default(),
            )
            .await?;
            nodes.push(Node { id, store, stop: Some(tx), server });
        }
        Ok(Cluster { nodes })
    }

    /// Wait until every node knows the same leader and that leader says it leads.
    async fn wait_leader(&self, limit: Duration) -> Result<u64> {
        let t0 = clock::now();
        for n in &self.nodes {
            n.store.wait_leader(limit).await?;
        }
        loop {
            let seen: Vec<Option<u64>> = self
                .nodes
                .iter()
                .map(|n| n.store.raft().metrics().borrow().current_leader)
                .collect();
            if let Some(Some(l)) = seen.first() {
                if seen.iter().all(|s| *s == Some(*l))
                    && self.nodes.iter().any(|n| n.id == *l && n.store.is_leader())
                {
                    return Ok(*l);
                }
            }
            if t0.elapsed() > limit {
                bail!("nodes do not agree on a leader: {seen:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// (leader, a follower), once all nodes agree on the leader.
    pub(crate) async fn roles(&self) -> Result<(u64, u64)> {
        let l = self.wait_leader(Duration::from_secs(20)).await?;
        let f = self.nodes.iter().map(|n| n.id).find(|&id| id != l).context("no follower")?;
        Ok((l, f))
    }

    pub(crate) fn store(&self, id: u64) -> Result<&SessionStore> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| &n.store)
            .with_context(|| format!("no node {id}"))
    }

    /// (leader, term) as node `id` sees it.
    pub(crate) fn leader_term(&self, id: u64) -> (Option<u64>, u64) {
        self.store(id)
            .map(|s| {
                let m = s.raft().metrics();
                let m = m.borrow();
                (m.current_leader, m.current_term)
            })
            .unwrap_or((None, 0))
    }

    /// One line per node: last log index, applied index, snapshot index.
    pub(crate) fn log_summary(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let m = n.store.raft().metrics();
                let m = m.borrow();
                format!(
                    "node {}: last log {}, applied {}, snapshot {}",
                    n.id,
                    m.last_log_index.unwrap_or(0),
                    m.last_applied.map_or(0, |l| l.index),
                    m.snapshot.map_or(0, |l| l.index),
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(crate) async fn shutdown(mut self) {
        for n in &self.nodes {
            if tokio::time::timeout(Duration::from_secs(10), n.store.shutdown()).await.is_err() {
                eprintln!("node {}: raft shutdown timed out", n.id);
            }
        }
        for n in &mut self.nodes {
            if let Some(tx) = n.stop.take() {
                let _ = tx.send(());
            }
        }
        for n in self.nodes {
            let mut server = n.server;
            if tokio::time::timeout(Duration::from_secs(5), &mut server).await.is_err() {
                eprintln!("node {}: cluster service did not stop; aborting it", n.id);
                server.abort();
            }
        }
    }
}
