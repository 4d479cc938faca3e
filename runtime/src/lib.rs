//! What the Gatehouse node and director (and `gatehousectl`) share at run time, with neither
//! Raft, sled nor the tun device: the clock, TLS identities, config helpers, the metrics
//! endpoint, the client-facing accept loop and the users file.
#![warn(missing_docs)]

pub mod accept;
pub mod client_tcp;
pub mod clock;
pub mod cluster_tls;
pub mod config;
pub mod metrics;
pub mod tls;
pub mod users;

pub use clock::Clock;
pub use cluster_tls::{node_name, ClusterTls, ClusterTlsFiles};
