//! The Gatehouse node: the tokio driver around gatehouse-core.
//!
//! Where things live: `gateway` (TLS listener, HTTP), `login` (password check, session
//! creation), `token` (cookies), `cstp` (the tunnel loop; DPD rules are in
//! `gatehouse_core::tunnel`), `dataplane` (tun device and routes), `db` (Raft session db),
//! `sessions` (session timers, endings), `admin` (gRPC admin API), `metrics`, `config`.
//! What the director shares (clock, TLS, config helpers, accept loop) is in gatehouse-runtime;
//! `clock`, `tls` and the config helpers are re-exported at their old paths.

pub mod admin;
pub mod app;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod control;
pub mod db;
pub mod edge;
pub mod metrics;
pub mod node;
pub mod sessions;
pub mod slots;
pub mod tls;
