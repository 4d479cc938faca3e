//! `gh-failover-bench`: how long clients are dark when a slot owner dies (run as root).
//!
//! A three-node cluster with one slot per node (slot i owned by node i, standby node i+1) runs in
//! namespaces of its own (`ClusterTopology`, address block k = 4). `gh-fleet` holds many CSTP
//! sessions on a slot address from the client namespace and re-attaches after every drop, as
//! openconnect does; the gateways run `gatehousectl drill --kill`, which crashes the slot's
//! owner (no FIN, no RST, addresses gone) and reports what the replicated state saw.
//!
//! - Phase A: `BENCH_SESSIONS` (100) sessions on slot 1, `BENCH_DRILLS` (20) kill drills in a
//!   row; after each the crashed node is started again and given ~2 s to rejoin.
//! - Phase B: `BENCH_BIG` (1000) sessions on a slot whose owner is not the Raft leader
//!   (`BENCH_BIG_SLOT=N` forces slot N), one kill drill.
//! - Phase C: as B, on a slot the Raft leader owns: the owner's death also costs a leader
//!   election.
//!
//! Prints a markdown report on stdout (progress on stderr): sessions lost, re-logins, blackout
//! percentiles as the clients saw them (from the drill start, and from the moment each client
//! saw its connection drop) and as the gateway saw them (the drills' own figures), takeover
//! time and, for phase B, the time until all sessions were back — next to the goals.
//! `BENCH_FAULT` picks the fault: `crash` (default: `drill --kill`, the process exits at once),
//! `kill9` (SIGKILL from outside) or `stop` (SIGSTOP for 3 s, then SIGCONT); the last two run
//! `drill --watch` on a surviving node for the gateway's figures.
//! Other knobs: `BENCH_CONC` (16: logins in flight), `BENCH_SETTLE_MS` (2000: pause after a
//! restarted node is ready), `BENCH_FLUSH_TCP` (1: before restarting a crashed node, destroy
//! the TCP sockets its namespace's kernel kept, as a reboot would — see `flush_tcp_sockets`;
//! 0 keeps them), `BENCH_PHASES` ("A B C"), `BENCH_LOG_DIR` (where the nodes' logs are
//! copied at the end; default /tmp/gh-failover-bench-<pid>).
//!
//! Everything is bounded; the namespaces and every process in them go away at the end, also on
//! error, SIGINT or SIGTERM.
#![allow(clippy::print_stdout)]

mod ctl;
mod drill;
mod fleet;
mod phase;
mod report;
mod stats;
mod wait;

use anyhow::{bail, Result};
use ctl::{pick_slot, slots_toml, wait_holder};
use gatehouse_tests::cargo_bin;
use gatehouse_tests::cluster::{Cluster, ClusterTopology};
use phase::{run_phase, Knobs};
use report::report;
use std::time::Duration;
use wait::{env_num, watch_signals};

/// Address block of the bench's topology (10.224.0.0/24 outside, 10.234.0.0/24 inside).
const K: u8 = 4;
const NODES: usize = 3;
/// Goals.
const GOAL_P99_MS: f64 = 1000.0;
const GOAL_ALL_BACK_MS: f64 = 3000.0;
/// Slot timing of the bench's nodes (the node defaults).
const RENEW_MS: u64 = 50;
const LEASE_MS: u64 = 600;

fn main() -> Result<()> {
    if !gatehouse_tests::require_root("gh-failover-bench") {
        bail!("gh-failover-bench needs root (network namespaces, iptables)");
    }
    watch_signals();
    let drills = env_num("BENCH_DRILLS", 20);
    let sessions = env_num("BENCH_SESSIONS", 100);
    let big = env_num("BENCH_BIG", 1000);
    // A number, or "auto": a slot whose owner is not the Raft leader.
    let big_slot = std::env::var("BENCH_BIG_SLOT")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map(|s| s.clamp(1, NODES));
    let knobs = Knobs {
        fault: phase::Fault::from_env()?,
        conc: env_num("BENCH_CONC", 16),
        settle: Duration::from_millis(env_num("BENCH_SETTLE_MS", 2000) as u64),
        flush_tcp: env_num("BENCH_FLUSH_TCP", 1) != 0,
    };
    let phases_env = std::env::var("BENCH_PHASES").unwrap_or_else(|_| "A B C".into());
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    for b in ["gatehouse", "gatehousectl", "gh-fleet"] {
        eprintln!("bench: {b} = {}", cargo_bin(b).display());
    }
    let topo = ClusterTopology::new("fbench", K, NODES)?;
    eprintln!("bench: starting {NODES} nodes");
    let mut cluster = Cluster::start_with(&topo, &[], &slots_toml(&topo))?;
    for s in 1..=NODES {
        wait_holder(&topo, s, s)?;
    }
    let mut phases = Vec::new();
    let run = |name: &str| phases_env.split_whitespace().any(|p| p.eq_ignore_ascii_case(name));
    let result = (|| -> Result<()> {
        if run("A") && drills > 0 {
            phases.push(run_phase(&topo, &mut cluster, "Phase A", 1, sessions, drills, knobs)?);
        }
        if run("B") {
            let slot = match big_slot {
                Some(s) => s,
                None => pick_slot(&topo, &cluster, false)?,
            };
            phases.push(run_phase(&topo, &mut cluster, "Phase B", slot, big, 1, knobs)?);
        }
        if run("C") {
            let slot = pick_slot(&topo, &cluster, true)?;
            phases.push(run_phase(&topo, &mut cluster, "Phase C", slot, big, 1, knobs)?);
        }
        Ok(())
    })();
    // The nodes' logs outlive the cluster's temporary directory, for a look afterwards.
    let dir = std::env::var("BENCH_LOG_DIR")
        .unwrap_or_else(|_| format!("/tmp/gh-failover-bench-{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_ok() {
        for i in 1..=NODES {
            let _ = std::fs::write(format!("{dir}/node-{i}.log"), cluster.log(i));
        }
        eprintln!("bench: node logs saved in {dir}/");
    }
    if let Err(e) = &result {
        eprintln!("bench: failed: {e:#}");
        for i in 1..=NODES {
            eprintln!(
                "--- node {i} log (tail) ---\n{}",
                gatehouse_tests::openconnect::tail(&cluster.log(i), 30)
            );
        }
    }
    if !phases.is_empty() {
        print!("{}", report(&phases, nproc, knobs.fault));
    }
    result
}
