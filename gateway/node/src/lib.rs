//! The Gatehouse node: the tokio driver that moves bytes and time into gatehouse-core.
//!
//! Where things live: `edge` (TLS listener, login, tokens, the CSTP driver, tun data plane,
//! local tunnels), `db` (the Raft session db and typed proposals), `sessions` (session timers,
//! endings, gauges), `cluster` (Raft network and the cluster services, membership, PKI),
//! `slots` (driver of the slot agent, interface worker, drills), `kernel` (netlink,
//! the nftables fence of slot addresses, gratuitous ARP), `admin` (gRPC admin API),
//! `config` (one file per section), `metrics`, `app` (start-up and shutdown: the one place
//! that wires components together). What the director shares (clock, TLS, config helpers,
//! accept loop) is in gatehouse-runtime; `clock` and `tls` are re-exported from there.

pub mod admin;
pub mod app;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod control;
pub mod db;
pub mod edge;
pub mod kernel;
pub mod metrics;
pub mod node;
pub mod sessions;
pub mod slots;
pub mod stopping;
pub mod tls;
