//! `gatehousectl`'s library half: the headend command words, the admin API client and the
//! output formats (plain headend layout, JSON). The binary only wires them to clap and stdout,
//! so everything here is tested without a running node.

pub mod client;
pub mod cluster;
pub mod failover;
pub mod json;
pub mod show;
pub mod time;
pub mod words;
