//! The machine description and the diagnostics measured outside Raft (fsync, apply, snapshot).

use crate::commands::Gen;
use crate::report::{fmt_ms, fmt_rate};
use crate::run::Run;
use crate::{HEARTBEAT, NODE_DOWN_AFTER, WRITE_TIMEOUT};
use anyhow::Result;
use gatehouse_core::Command;
use gatehouse_node::config::ClusterConfig;
use gatehouse_node::db::SessionStore;
use gatehouse_tests::clock;
use std::fmt::Write as _;
use std::path::Path;

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

pub(crate) fn machine(dir: &Path) -> String {
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
pub(crate) async fn diagnostics(dir: &Path, leader: &SessionStore, g: &Gen) -> Result<String> {
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
