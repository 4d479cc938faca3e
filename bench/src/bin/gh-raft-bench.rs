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

use anyhow::{bail, Context, Result};
use gatehouse_core::{
    AttachTunnel, Command, NewSession, Outcome, PoolRange, SessionTimers, TokenHash, TunnelKind,
    UnixMillis,
};
use gatehouse_node::cluster::pki::ClusterCa;
use gatehouse_node::cluster::{service, ClusterTls};
use gatehouse_node::config::ClusterConfig;
use gatehouse_node::db::SessionStore;
use gatehouse_tests::clock;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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

// ---------------------------------------------------------------------------------------------
// The cluster

struct Node {
    id: u64,
    store: SessionStore,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
}

struct Cluster {
    nodes: Vec<Node>,
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
    async fn start(dir: &Path, n: u64) -> Result<Cluster> {
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
    async fn roles(&self) -> Result<(u64, u64)> {
        let l = self.wait_leader(Duration::from_secs(20)).await?;
        let f = self.nodes.iter().map(|n| n.id).find(|&id| id != l).context("no follower")?;
        Ok((l, f))
    }

    fn store(&self, id: u64) -> Result<&SessionStore> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| &n.store)
            .with_context(|| format!("no node {id}"))
    }

    /// (leader, term) as node `id` sees it.
    fn leader_term(&self, id: u64) -> (Option<u64>, u64) {
        self.store(id)
            .map(|s| {
                let m = s.raft().metrics();
                let m = m.borrow();
                (m.current_leader, m.current_term)
            })
            .unwrap_or((None, 0))
    }

    /// One line per node: last log index, applied index, snapshot index.
    fn log_summary(&self) -> String {
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

    async fn shutdown(mut self) {
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

// ---------------------------------------------------------------------------------------------
// Commands

/// Builds the commands: every login gets a fresh user `u{n}` and token hash from one counter.
struct Gen {
    seed: u64,
    pool: PoolRange,
    timers: SessionTimers,
    next: AtomicU64,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn unix_now() -> UnixMillis {
    UnixMillis((clock::epoch_secs() * 1000.0) as u64)
}

impl Gen {
    fn new() -> Result<Gen> {
        Ok(Gen {
            seed: splitmix((clock::epoch_secs() * 1e9) as u64 ^ u64::from(std::process::id())),
            pool: PoolRange::from_cidr("bench", Ipv4Addr::new(10, 0, 0, 0), 12)
                .context("pool /12")?,
            timers: SessionTimers {
                idle_timeout: Some(Duration::from_secs(1800)),
                disconnected_timeout: Some(Duration::from_secs(1800)),
                max_connect_time: Some(Duration::from_secs(86400)),
                simultaneous_logins: u32::MAX,
                auto_reconnect: true,
            },
            next: AtomicU64::new(1),
        })
    }

    /// A range of `n` fresh session numbers.
    fn take(&self, n: u64) -> u64 {
        self.next.fetch_add(n, Ordering::Relaxed)
    }

    fn token(&self, n: u64) -> TokenHash {
        let mut h = [0u8; 32];
        for (k, chunk) in h.chunks_mut(8).enumerate() {
            let w = splitmix(self.seed ^ splitmix(n.wrapping_mul(4).wrapping_add(k as u64)));
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        TokenHash(h)
    }

    fn login(&self, n: u64) -> Command {
        Command::Login(NewSession {
            at: unix_now(),
            user: format!("u{n}"),
            tunnel_group: "default".into(),
            group_policy: "default".into(),
            timers: self.timers,
            pool: self.pool.clone(),
            token_hash: self.token(n),
            client_version: "AnyConnect Linux_64 4.10.07061".into(),
            public_ip: format!("192.0.2.{}", n % 250 + 1),
            slot: None,
        })
    }

    fn attach(&self, n: u64, node: u64) -> Command {
        Command::Attach(AttachTunnel {
            at: unix_now(),
            token_hash: self.token(n),
            kind: TunnelKind::Ssl,
            node,
            public_ip: format!("198.51.100.{}", n % 250 + 1),
            src_port: (n % 50_000) as u16 + 10_000,
            dst_port: 443,
            slot: None,
        })
    }
}

fn login_ok(o: &Outcome) -> bool {
    matches!(o, Outcome::LoggedIn { evicted, .. } if evicted.is_empty())
}

fn attach_ok(o: &Outcome) -> bool {
    matches!(o, Outcome::Attached { .. })
}

// ---------------------------------------------------------------------------------------------
// Runs

#[derive(Default)]
struct Run {
    lat: Vec<Duration>,
    elapsed: Duration,
    failed: u64,
    rejected: u64,
    first_error: Option<String>,
    truncated: bool,
}

impl Run {
    fn done(&self) -> u64 {
        self.lat.len() as u64
    }
    fn rate(&self) -> f64 {
        let ok = self.done().saturating_sub(self.failed + self.rejected);
        ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    fn pct_ms(&self, q: f64) -> f64 {
        if self.lat.is_empty() {
            return f64::NAN;
        }
        let mut v = self.lat.clone();
        v.sort();
        let k = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        v[k].as_secs_f64() * 1e3
    }
    fn max_ms(&self) -> f64 {
        self.lat.iter().max().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    }
    fn mean_ms(&self) -> f64 {
        if self.lat.is_empty() {
            return f64::NAN;
        }
        self.lat.iter().map(Duration::as_secs_f64).sum::<f64>() * 1e3 / self.lat.len() as f64
    }
    fn problems(&self) -> String {
        let mut s = String::new();
        if self.truncated {
            s.push_str("stopped at the time budget; ");
        }
        if self.failed > 0 {
            let _ = write!(s, "{} failed", self.failed);
            if let Some(e) = &self.first_error {
                let _ = write!(s, " (first: {e})");
            }
            s.push_str("; ");
        }
        if self.rejected > 0 {
            let _ = write!(s, "{} rejected/evicted; ", self.rejected);
        }
        s.trim_end_matches("; ").to_string()
    }
}

/// Propose `cmd(i)` for i in 0..n on `store` from `c` concurrent tasks; stop early once
/// `budget` has passed. Every proposal is bounded by the store's write timeout.
async fn run(
    store: &SessionStore,
    c: usize,
    n: u64,
    budget: Duration,
    cmd: Arc<dyn Fn(u64) -> Command + Send + Sync>,
    ok: fn(&Outcome) -> bool,
) -> Result<Run> {
    let next = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let t0 = clock::now();
    let mut tasks = Vec::new();
    for _ in 0..c.max(1) {
        let (store, next, cmd, first_error) =
            (store.clone(), next.clone(), cmd.clone(), first_error.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let (mut failed, mut rejected, mut truncated) = (0u64, 0u64, false);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                if t0.elapsed() > budget {
                    truncated = true;
                    break;
                }
                let c = cmd(i);
                let t = clock::now();
                let r = store.propose_command(c).await;
                lat.push(t.elapsed());
                match r {
                    Ok(o) if ok(&o) => {}
                    Ok(o) => {
                        rejected += 1;
                        let mut fe = first_error.lock().unwrap_or_else(|e| e.into_inner());
                        fe.get_or_insert_with(|| format!("{o:?}"));
                    }
                    Err(e) => {
                        failed += 1;
                        let mut fe = first_error.lock().unwrap_or_else(|e| e.into_inner());
                        fe.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            (lat, failed, rejected, truncated)
        }));
    }
    let mut out = Run::default();
    for t in tasks {
        let (lat, failed, rejected, truncated) = t.await.context("bench task panicked")?;
        out.lat.extend(lat);
        out.failed += failed;
        out.rejected += rejected;
        out.truncated |= truncated;
    }
    out.elapsed = t0.elapsed();
    out.first_error = first_error.lock().unwrap_or_else(|e| e.into_inner()).take();
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Report

struct Row {
    figure: String,
    via: String,
    c: usize,
    sessions_before: usize,
    run: Run,
    goal: String,
    note: String,
}

fn fmt_ms(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x < 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.1}")
    }
}

fn fmt_rate(x: f64) -> String {
    let digits = (x.round() as u64).to_string();
    let groups: Vec<&str> =
        digits.as_bytes().rchunks(3).rev().map(|g| std::str::from_utf8(g).unwrap_or("?")).collect();
    groups.join(",")
}

fn first_line(path: &str, key: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':').map(|(_, v)| v.trim().to_string()))
}

/// Filesystem type of the mount holding `p` (longest matching mount point in /proc/mounts).
fn fs_type(p: &Path) -> String {
    let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for l in mounts.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 3 || !p.starts_with(f[1]) {
            continue;
        }
        if best.as_ref().is_none_or(|(len, _)| f[1].len() >= *len) {
            best = Some((f[1].len(), format!("{} on {} ({})", f[2], f[1], f[0])));
        }
    }
    best.map_or_else(|| "unknown".into(), |(_, s)| s)
}

fn machine(dir: &Path) -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = first_line("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into());
    let mem = first_line("/proc/meminfo", "MemTotal").unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!(
        "- machine: nproc {nproc}, {cpu}, {mem} RAM, Linux {kernel}\n\
         - data dirs: {} — {}\n\
         - cluster: 3 SessionStores in one process (one tokio runtime, {nproc} workers), cluster \
         gRPC with mutual TLS on 127.0.0.1, heartbeat {} ms, node_down_after {} s, write_timeout \
         {} s; openraft heartbeat {} ms, election timeout {}-{} ms, snapshot every {} entries\n",
        dir.display(),
        fs_type(dir),
        HEARTBEAT.as_millis(),
        NODE_DOWN_AFTER.as_secs(),
        WRITE_TIMEOUT.as_secs(),
        ClusterConfig::RAFT_HEARTBEAT.as_millis(),
        ClusterConfig::ELECTION_TIMEOUT.0.as_millis(),
        ClusterConfig::ELECTION_TIMEOUT.1.as_millis(),
        gatehouse_node::db::SNAPSHOT_EVERY,
    )
}

/// Where the time might go, measured outside Raft: the disk's fsync, the size of one command
/// as JSON (the log store and the cluster RPCs both encode entries as JSON), the cost of
/// `SessionDb::apply(Login)` on an empty db and on a copy of the final one, and what a
/// snapshot of the final db costs (clone + JSON).
async fn diagnostics(dir: &Path, leader: &SessionStore, g: &Gen) -> Result<String> {
    let mut out = String::new();
    // fsync: 4 KiB write + fdatasync, 200 times, on the data disk.
    let f = dir.join("fsync-probe");
    let fs = tokio::task::spawn_blocking(move || -> Result<Run> {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::File::create(&f)?;
        let buf = [0x5au8; 4096];
        let mut r = Run::default();
        for _ in 0..200 {
            let t = clock::now();
            file.seek(SeekFrom::Start(0))?;
            file.write_all(&buf)?;
            file.sync_data()?;
            r.lat.push(t.elapsed());
        }
        drop(file);
        let _ = std::fs::remove_file(&f);
        Ok(r)
    })
    .await??;
    let _ = writeln!(
        out,
        "- disk: 4 KiB write + fdatasync in the data dir: p50 {} ms, p99 {} ms (sled flushes \
         every append batch on each of the 3 nodes, all on this one disk)",
        fmt_ms(fs.pct_ms(0.50)),
        fmt_ms(fs.pct_ms(0.99)),
    );
    let n0 = g.take(2000);
    let cmds: Vec<Command> = (0..2000).map(|i| g.login(n0 + i)).collect();
    let one = serde_json::to_vec(&cmds[0])?.len();
    let _ = writeln!(
        out,
        "- one `Login` command is {one} bytes of JSON (encoded again for the sled log entry, \
         the AppendEntries payload to each follower, and the forwarded write)"
    );
    let db = leader.read(|db| db.clone());
    let stats = tokio::task::spawn_blocking(move || -> Result<String> {
        let mut empty = gatehouse_core::SessionDb::new();
        let t = clock::now();
        for c in &cmds[..1000] {
            empty.apply(c);
        }
        let us_empty = t.elapsed().as_secs_f64() * 1e6 / 1000.0;
        let size = db.len();
        let t = clock::now();
        let mut copy = db.clone();
        let clone_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = clock::now();
        for c in &cmds[1000..] {
            copy.apply(c);
        }
        let us_full = t.elapsed().as_secs_f64() * 1e6 / 1000.0;
        let t = clock::now();
        let json = serde_json::to_vec(&db)?;
        let ser_ms = t.elapsed().as_secs_f64() * 1e3;
        Ok(format!(
            "- `SessionDb::apply(Login)`: {us_empty:.1} µs on an empty db, {us_full:.1} µs on a \
             copy of the final db ({} sessions); applied once per node, 3 nodes in this process\n\
             - a snapshot of the final db: clone {} ms, JSON {} ms, {:.1} MB (openraft builds one \
             every {} log entries on every node; an entry is a batch of commands)\n",
            fmt_rate(size as f64),
            fmt_ms(clone_ms),
            fmt_ms(ser_ms),
            json.len() as f64 / 1e6,
            gatehouse_node::db::SNAPSHOT_EVERY,
        ))
    })
    .await??;
    out.push_str(&stats);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------

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

async fn measure(cluster: &Cluster, k: &Knobs, dir: &Path) -> Result<()> {
    let t_start = clock::now();
    let (leader_id, follower_id) = cluster.roles().await?;
    eprintln!(
        "gh-raft-bench: leader node {leader_id} after {} ms; follower used: node {follower_id}",
        t_start.elapsed().as_millis()
    );
    let (_, term0) = cluster.leader_term(leader_id);
    let g = Arc::new(Gen::new()?);
    // Count the snapshots the nodes build (openraft: every SNAPSHOT_EVERY entries, on every node).
    let snapshots = Arc::new(AtomicU64::new(0));
    let watchers: Vec<JoinHandle<()>> = cluster
        .nodes
        .iter()
        .map(|n| {
            let (mut rx, snapshots) = (n.store.raft().metrics(), snapshots.clone());
            tokio::spawn(async move {
                let mut last = rx.borrow().snapshot;
                while rx.changed().await.is_ok() {
                    let now = rx.borrow().snapshot;
                    if now != last {
                        snapshots.fetch_add(1, Ordering::Relaxed);
                        last = now;
                    }
                }
            })
        })
        .collect();

    // Warm-up (not counted): connections, code paths, allocator.
    let login = |g: &Arc<Gen>, base: u64| -> Arc<dyn Fn(u64) -> Command + Send + Sync> {
        let g = g.clone();
        Arc::new(move |i| g.login(base + i))
    };
    for id in [leader_id, follower_id] {
        let w = run(cluster.store(id)?, 8, 200, k.budget, login(&g, g.take(200)), login_ok).await?;
        if w.done() != 200 || !w.problems().is_empty() {
            bail!("warm-up on node {id} failed: {}", w.problems());
        }
    }

    let mut rows: Vec<Row> = Vec::new();
    let sessions = |s: &SessionStore| s.read(|db| db.len());
    let mut snap_seen = snapshots.load(Ordering::Relaxed);
    // `via`: the node proposed on; `lt`: (leader, term) when the row started.
    let mut push = |figure: &str,
                    via: String,
                    c: usize,
                    before: usize,
                    lt: (u64, u64),
                    run: Run,
                    goal: &str| {
        let (l, t) = cluster.leader_term(lt.0);
        let snaps = snapshots.load(Ordering::Relaxed);
        let mut note = match snaps - snap_seen {
            0 => String::new(),
            1 => "1 snapshot built (3 nodes)".to_string(),
            k => format!("{k} snapshots built (3 nodes)"),
        };
        snap_seen = snaps;
        if l != Some(lt.0) || t != lt.1 {
            if !note.is_empty() {
                note.push_str("; ");
            }
            let l = l.map_or_else(|| "none".to_string(), |l| format!("node {l}"));
            let _ = write!(note, "**leader changed** during the row (now {l}, term {t})");
        }
        eprintln!(
            "  {figure} via {via} C={c}: {} in {:.1} s, {}/s, p50 {} ms, p99 {} ms, max {} ms; {} {note}",
            run.done(),
            run.elapsed.as_secs_f64(),
            fmt_rate(run.rate()),
            fmt_ms(run.pct_ms(0.50)),
            fmt_ms(run.pct_ms(0.99)),
            fmt_ms(run.max_ms()),
            run.problems()
        );
        rows.push(Row {
            figure: figure.into(),
            via,
            c,
            sessions_before: before,
            run,
            goal: goal.into(),
            note,
        });
    };

    // Each row first finds the current leader (it may have changed) and proposes on it, or on
    // a follower of it.
    let pick = |lf: (u64, u64), on_leader: bool| -> Result<(SessionStore, String)> {
        let id = if on_leader { lf.0 } else { lf.1 };
        let via = if on_leader {
            format!("leader (node {id})")
        } else {
            format!("follower (node {id}, forwarded)")
        };
        Ok((cluster.store(id)?.clone(), via))
    };

    // 1. Commit latency, one at a time.
    let goal_lat = format!("p99 < {GOAL_P99_MS} ms");
    for on_leader in [true, false] {
        let lf = cluster.roles().await?;
        let (s, via) = pick(lf, on_leader)?;
        eprintln!("gh-raft-bench: commit latency via {via}, {} sequential creates", k.lat_n);
        let (before, lt) = (sessions(&s), (lf.0, cluster.leader_term(lf.0).1));
        let r = run(&s, 1, k.lat_n, k.budget * 4, login(&g, g.take(k.lat_n)), login_ok).await?;
        push("commit latency (create, sequential)", via, 1, before, lt, r, &goal_lat);
    }

    // 2. Creates per second.
    let goal_rate = format!("≥ {} writes/s", fmt_rate(GOAL_WRITES_PER_S));
    let mut levels: Vec<(bool, usize)> = k.conc.iter().map(|&c| (true, c)).collect();
    levels.push((false, 64));
    for (on_leader, c) in levels {
        let lf = cluster.roles().await?;
        let (s, via) = pick(lf, on_leader)?;
        eprintln!("gh-raft-bench: creates/s via {via}, C={c}, N={}", k.n);
        let (before, lt) = (sessions(&s), (lf.0, cluster.leader_term(lf.0).1));
        let r = run(&s, c, k.n, k.budget, login(&g, g.take(k.n)), login_ok).await?;
        push("session creates/s", via, c, before, lt, r, &goal_rate);
    }

    // 3. Resumes through a follower: M sessions, then one ssl Attach each.
    let m = k.resume_m;
    let lf = cluster.roles().await?;
    eprintln!(
        "gh-raft-bench: resume: {m} logins on node {}, then {m} attaches via node {}",
        lf.0, lf.1
    );
    let base = g.take(m);
    let (s, _) = pick(lf, true)?;
    let pre = run(&s, 64, m, k.budget * 4, login(&g, base), login_ok).await?;
    if pre.done() != m || !pre.problems().is_empty() {
        bail!("resume setup: {} of {m} logins, {}", pre.done(), pre.problems());
    }
    let lf = cluster.roles().await?;
    let (s, via) = pick(lf, false)?;
    let attach: Arc<dyn Fn(u64) -> Command + Send + Sync> = {
        let (g, node) = (g.clone(), lf.1);
        Arc::new(move |i| g.attach(base + i, node))
    };
    let (before, lt) = (sessions(&s), (lf.0, cluster.leader_term(lf.0).1));
    let r = run(&s, 64, m, k.budget, attach, attach_ok).await?;
    push("resumes/s (ssl attach)", via, 64, before, lt, r, "");

    let total = clock::now().duration_since(t_start);
    let logs = cluster.log_summary();
    let (leader_end, _) = cluster.roles().await?;
    let final_sessions = sessions(cluster.store(leader_end)?);
    for w in &watchers {
        w.abort();
    }
    eprintln!("gh-raft-bench: diagnostics");
    let diag = diagnostics(dir, cluster.store(leader_end)?, &g).await?;

    // Report.
    let mut out = String::new();
    let _ = writeln!(out, "# Raft session writes (gh-raft-bench)\n");
    out.push_str(&machine(dir));
    let _ = writeln!(
        out,
        "- commands: `Login` of a fresh user `u<n>` with a fresh token hash (no argon2: the Raft \
         write alone), pool 10.0.0.0/12 (1,048,573 addresses), simultaneous_logins = u32::MAX; \
         `Attach` ssl of an existing session's token; C writers each propose one command at a \
         time, and `SessionStore::propose` groups the commands proposed on a node while its \
         previous batches commit into one log entry (at most 2 batches in flight)\n\
         - goals (issue): p99 commit < {GOAL_P99_MS} ms on loopback; ≥ {} session writes/s\n\
         - first leader: node {leader_id} (term {term0}); each row proposes on the leader of \
         the moment or on a follower of it\n",
        fmt_rate(GOAL_WRITES_PER_S)
    );
    let _ = writeln!(
        out,
        "| figure | proposed on | C | n | sessions in db before | writes/s | p50 ms | p99 ms | \
         max ms | goal | met | notes |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|");
    for r in &rows {
        let met = if r.goal.starts_with("p99") {
            if r.run.pct_ms(0.99) < GOAL_P99_MS {
                "yes"
            } else {
                "**no**"
            }
        } else if r.goal.starts_with('≥') {
            if r.run.rate() >= GOAL_WRITES_PER_S {
                "yes"
            } else {
                "**no**"
            }
        } else {
            ""
        };
        let mut notes = r.run.problems();
        if !r.note.is_empty() {
            if !notes.is_empty() {
                notes.push_str("; ");
            }
            notes.push_str(&r.note);
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.figure,
            r.via,
            r.c,
            fmt_rate(r.run.done() as f64),
            fmt_rate(r.sessions_before as f64),
            fmt_rate(r.run.rate()),
            fmt_ms(r.run.pct_ms(0.50)),
            fmt_ms(r.run.pct_ms(0.99)),
            fmt_ms(r.run.max_ms()),
            r.goal,
            met,
            notes
        );
    }
    let _ = writeln!(out);
    for r in &rows {
        let line = if r.figure.starts_with("commit latency") {
            format!(
                "commit latency via {}: p50 {} ms, p99 {} ms, max {} ms, mean {} ms over {} \
                 sequential creates (goal p99 < {GOAL_P99_MS} ms: {})",
                r.via,
                fmt_ms(r.run.pct_ms(0.50)),
                fmt_ms(r.run.pct_ms(0.99)),
                fmt_ms(r.run.max_ms()),
                fmt_ms(r.run.mean_ms()),
                r.run.done(),
                if r.run.pct_ms(0.99) < GOAL_P99_MS { "met" } else { "NOT met" }
            )
        } else if r.figure.starts_with("session creates") {
            format!(
                "session creates via {}, C={}: {} writes/s ({} in {:.1} s; p99 {} ms) (goal ≥ \
                 {}/s: {})",
                r.via,
                r.c,
                fmt_rate(r.run.rate()),
                fmt_rate(r.run.done() as f64),
                r.run.elapsed.as_secs_f64(),
                fmt_ms(r.run.pct_ms(0.99)),
                fmt_rate(GOAL_WRITES_PER_S),
                if r.run.rate() >= GOAL_WRITES_PER_S { "met" } else { "NOT met" }
            )
        } else {
            format!(
                "resumes via {}, C={}: {} attaches/s, p50 {} ms, p99 {} ms ({} attaches in {:.1} s)",
                r.via,
                r.c,
                fmt_rate(r.run.rate()),
                fmt_ms(r.run.pct_ms(0.50)),
                fmt_ms(r.run.pct_ms(0.99)),
                fmt_rate(r.run.done() as f64),
                r.run.elapsed.as_secs_f64()
            )
        };
        let _ = writeln!(out, "- {line}");
    }
    let _ = writeln!(
        out,
        "\nSessions at the end: {}. Raft logs: {logs}. Measured in {:.0} s.",
        fmt_rate(final_sessions as f64),
        total.as_secs_f64()
    );
    let _ = writeln!(out, "\nWhere the time may go (measured outside Raft, after the runs):\n");
    out.push_str(&diag);
    print!("{out}");
    Ok(())
}
