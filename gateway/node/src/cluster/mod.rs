//! The cluster: node-to-node gRPC with mutual TLS on the cluster port. openraft's network
//! (`network`), the service answering it and forwarded writes (`service`), and the cluster PKI
//! that `gatehouse init` writes (`pki`).

pub mod admin;
pub mod network;
pub mod pki;
pub mod service;

use crate::config::ClusterConfig;
use anyhow::{Context, Result};
use gatehouse_core::Outcome;
use serde::{Deserialize, Serialize};

/// Generated messages, client and server of `gatehouse.cluster.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("gatehouse.cluster.v1");
}

/// The answer to a forwarded write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardReply {
    /// Committed and applied on the leader at `log_index`.
    Committed {
        /// The outcome of `apply`, one per forwarded command.
        outcomes: Vec<Outcome>,
        /// Where it is in the log: the forwarding node waits to have applied it too.
        log_index: u64,
    },
    /// The receiver is not the leader (any more).
    NotLeader {
        /// The leader it knows of.
        leader: Option<u64>,
    },
    /// Raft failed to commit it.
    Failed(String),
}

/// What a director needs to place a new client: every slot, whether it can take clients now,
/// and its load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotTableView {
    /// The node that sent it.
    pub node: u64,
    /// Slots by id.
    pub slots: Vec<SlotView>,
}

/// One slot for a director.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotView {
    /// Slot id.
    pub id: u32,
    /// Public address clients are redirected to.
    pub public_ip: std::net::Ipv4Addr,
    /// Client-facing port of the nodes.
    pub port: u16,
    /// Current owner.
    pub owner: Option<u64>,
    /// Epoch.
    pub epoch: u64,
    /// Sessions hosted.
    pub sessions: u32,
    /// Capacity.
    pub capacity: u32,
    /// An owner holds a live lease (false while a failover is pending).
    pub available: bool,
}

/// The slot table as directors see it, from this node's applied state.
pub fn slot_table_view(node: &crate::node::Node) -> SlotTableView {
    let now = node.clock.unix();
    let port = node.cfg.listen.port();
    let (slots, counts) =
        node.db.read(|db| (db.slots().iter().cloned().collect::<Vec<_>>(), db.slot_sessions()));
    SlotTableView {
        node: node.db.node_id(),
        slots: slots
            .iter()
            .map(|s| SlotView {
                id: s.spec.id,
                public_ip: s.spec.public_ip,
                port,
                owner: s.owner,
                epoch: s.epoch,
                sessions: counts.get(&s.spec.id).copied().unwrap_or(0),
                capacity: s.spec.capacity,
                available: !s.vacant_at(now),
            })
            .collect(),
    }
}

/// The TLS name a node's cluster certificate carries, checked by its peers.
pub fn node_name(id: u64) -> String {
    format!("node-{id}")
}

/// Client and server TLS settings for the cluster port: our certificate, and the cluster CA
/// that every peer's certificate must chain to.
#[derive(Clone)]
pub struct ClusterTls {
    /// Our identity.
    pub identity: tonic::transport::Identity,
    /// The cluster CA.
    pub ca: tonic::transport::Certificate,
}

impl ClusterTls {
    /// Load the files named in `[cluster]`.
    pub fn load(c: &ClusterConfig) -> Result<ClusterTls> {
        let cert =
            std::fs::read(&c.cert).with_context(|| format!("reading {}", c.cert.display()))?;
        let key = std::fs::read(&c.key).with_context(|| format!("reading {}", c.key.display()))?;
        let ca = std::fs::read(&c.ca_cert)
            .with_context(|| format!("reading {}", c.ca_cert.display()))?;
        Ok(ClusterTls {
            identity: tonic::transport::Identity::from_pem(cert, key),
            ca: tonic::transport::Certificate::from_pem(ca),
        })
    }

    /// Server side: present our certificate, require one from the cluster CA.
    pub fn server(&self) -> tonic::transport::ServerTlsConfig {
        tonic::transport::ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
    }

    /// Client side towards node `target`: its certificate must name it.
    pub fn client(&self, target: u64) -> tonic::transport::ClientTlsConfig {
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.clone())
            .domain_name(node_name(target))
    }
}
