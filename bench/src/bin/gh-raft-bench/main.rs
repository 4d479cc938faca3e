//! gh-raft-bench: how fast the session database commits, without a client, a TLS listener or
//! argon2 in the way. Three `SessionStore`s (openraft + sled, cluster gRPC with mutual TLS on
//! 127.0.0.1) run in this one process; the bench proposes `Login` and `Attach` commands on the
//! leader and through a follower (which forwards them) and prints a markdown report on stdout
//! (progress on stderr).
//!
//! ```text
//! gh-raft-bench            # everything, ~2-4 min
//! ```
//! Knobs (environment): `RAFT_BENCH_DIR` (where the temporary data directories go; default the
//! system temp dir — put it on the disk you care about, sled fsyncs every append),
//! `RAFT_BENCH_LAT_N` (2000), `RAFT_BENCH_N` (20000 writes per concurrency level),
//! `RAFT_BENCH_CONC` ("1 16 64 256"), `RAFT_BENCH_BUDGET_SECS` (30: a level stops early after
//! this long and reports what it did), `RAFT_BENCH_RESUME_M` (1000).
#![allow(clippy::print_stdout)]

mod cluster;
mod commands;
mod diag;
mod measure;
mod report;
mod run;

use anyhow::{Context, Result};
use cluster::Cluster;
use measure::measure;
use std::path::PathBuf;
use std::time::Duration;

/// Goal from the issue: p99 commit latency on loopback.
const GOAL_P99_MS: f64 = 10.0;
/// Goal from the issue: session writes per second.
const GOAL_WRITES_PER_S: f64 = 5000.0;
/// Cluster timings as in tests/src/cluster.rs, with a 5 s write timeout.
const HEARTBEAT: Duration = Duration::from_millis(300);
const NODE_DOWN_AFTER: Duration = Duration::from_secs(2);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole run, shutdown included.
const RUN_LIMIT: Duration = Duration::from_secs(20 * 60);

fn env_num(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().with_context(|| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

struct Knobs {
    lat_n: u64,
    n: u64,
    conc: Vec<usize>,
    budget: Duration,
    resume_m: u64,
    dir: Option<PathBuf>,
}

impl Knobs {
    fn from_env() -> Result<Knobs> {
        let conc = match std::env::var("RAFT_BENCH_CONC") {
            Ok(v) => v
                .split_whitespace()
                .map(|c| c.parse::<usize>().with_context(|| format!("RAFT_BENCH_CONC: {c:?}")))
                .collect::<Result<Vec<_>>>()?,
            Err(_) => vec![1, 16, 64, 256],
        };
        Ok(Knobs {
            lat_n: env_num("RAFT_BENCH_LAT_N", 2000)?,
            n: env_num("RAFT_BENCH_N", 20_000)?,
            conc,
            budget: Duration::from_secs(env_num("RAFT_BENCH_BUDGET_SECS", 30)?),
            resume_m: env_num("RAFT_BENCH_RESUME_M", 1000)?,
            dir: std::env::var_os("RAFT_BENCH_DIR").map(PathBuf::from),
        })
    }
}

#[tokio::main]
async fn main() {
    match tokio::time::timeout(RUN_LIMIT, bench()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("gh-raft-bench: {e:#}");
            std::process::exit(1);
        }
        Err(_) => {
            eprintln!("gh-raft-bench: gave up after {} s", RUN_LIMIT.as_secs());
            std::process::exit(1);
        }
    }
}

async fn bench() -> Result<()> {
    let k = Knobs::from_env()?;
    let tmp = match &k.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            tempfile::Builder::new().prefix("gh-raft-bench-").tempdir_in(d)?
        }
        None => tempfile::Builder::new().prefix("gh-raft-bench-").tempdir()?,
    };
    eprintln!("gh-raft-bench: starting 3 nodes under {}", tmp.path().display());
    let cluster = Cluster::start(tmp.path(), 3).await?;
    let r = measure(&cluster, &k, tmp.path()).await;
    eprintln!("gh-raft-bench: shutting down");
    cluster.shutdown().await;
    drop(tmp);
    r
}
