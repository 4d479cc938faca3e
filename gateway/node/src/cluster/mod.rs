//! The cluster: node-to-node gRPC with mutual TLS on the cluster port. openraft's network
//! (`network`), the four services answering on the port — Raft RPC (`raft_service`),
//! forwarded writes (`forward_service`), the directors' slot-table stream (`watch_service`)
//! and drills (`drill_service`), registered together by `service`; who may call which
//! (`role`: the role a caller's certificate names); and the cluster PKI that `gatehouse
//! init` writes (`pki`).

pub mod admin;
pub mod drill_service;
pub mod forward_service;
pub mod membership;
pub mod network;
pub mod payload;
pub mod pki;
pub mod raft_service;
pub mod role;
pub mod service;
pub mod watch_service;

use crate::config::ClusterConfig;
use std::path::Path;

/// Generated messages, clients and servers of `gatehouse.cluster.v1` (in gatehouse-proto).
pub use gatehouse_proto::cluster as pb;
/// The slot table directors read (a wire type of gatehouse-proto), kept at its old path.
pub use gatehouse_proto::slots::{SlotTableView, SlotView};
/// The cluster's mutual TLS (gatehouse-runtime, shared with the director), kept at its old path.
pub use gatehouse_runtime::cluster_tls::{node_name, ClusterTls};

pub use forward_service::ForwardReply;
pub use watch_service::slot_table_view;

impl gatehouse_runtime::ClusterTlsFiles for ClusterConfig {
    fn ca_cert(&self) -> &Path {
        &self.ca_cert
    }
    fn cert(&self) -> &Path {
        &self.cert
    }
    fn key(&self) -> &Path {
        &self.key
    }
}
