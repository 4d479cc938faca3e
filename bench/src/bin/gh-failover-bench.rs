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
//! Other knobs: `BENCH_CONC` (16: logins in flight), `BENCH_SETTLE_MS` (2000: pause after a
//! restarted node is ready), `BENCH_FLUSH_TCP` (1: before restarting a crashed node, destroy
//! the TCP sockets its namespace's kernel kept, as a reboot would — see `flush_tcp_sockets`;
//! 0 keeps them), `BENCH_PHASES` ("A B C"), `BENCH_LOG_DIR` (where the nodes' logs are
//! copied at the end; default /tmp/gh-failover-bench-<pid>).
//!
//! Everything is bounded; the namespaces and every process in them go away at the end, also on
//! error, SIGINT or SIGTERM.
#![allow(clippy::print_stdout)]

use anyhow::{bail, Context, Result};
use gatehouse_node::config::ClusterConfig;
use gatehouse_tests::cluster::{Cluster, ClusterTopology, PORT};
use gatehouse_tests::process::{output_with_timeout, signal_pid, wait_timeout};
use gatehouse_tests::{cargo_bin, clock};
use serde_json::Value;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Address block of the bench's topology (10.224.0.0/24 outside, 10.234.0.0/24 inside).
const K: u8 = 4;
const NODES: usize = 3;
/// Goals.
const GOAL_P99_MS: f64 = 1000.0;
const GOAL_ALL_BACK_MS: f64 = 3000.0;
/// Slot timing of the bench's nodes (the node defaults).
const RENEW_MS: u64 = 50;
const LEASE_MS: u64 = 600;

static ABORT: AtomicBool = AtomicBool::new(false);

fn check_abort() -> Result<()> {
    if ABORT.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}

/// SIGINT/SIGTERM set [`ABORT`]; every wait checks it and unwinds, so the topology and the
/// cluster are dropped (namespaces deleted, processes killed).
fn watch_signals() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut i), Ok(mut t)) =
                (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
            else {
                return;
            };
            tokio::select! {
                _ = i.recv() => {}
                _ = t.recv() => {}
            }
            eprintln!("bench: signal received, cleaning up");
            ABORT.store(true, Ordering::Relaxed);
        });
    });
}

fn env_num(name: &str, def: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(def)
}

/// Sleep in small steps, unwinding on a signal.
fn sleep(d: Duration) -> Result<()> {
    let end = clock::now() + d;
    loop {
        check_abort()?;
        let now = clock::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// Poll `f` every 50 ms until it gives `Some`, for at most `timeout`.
fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let end = clock::now() + timeout;
    loop {
        check_abort()?;
        if let Some(v) = f() {
            return Ok(v);
        }
        if clock::now() >= end {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The bench's slots: as `ClusterTopology::slots_toml`, but each slot's pool is a /21 (2,046
/// addresses; the topology's /24 pools hold 254, too few for phase B).
fn slots_toml(topo: &ClusterTopology) -> String {
    let mut t = String::from("[slots]\npublic_interface = \"out0\"\ninside_interface = \"in0\"\n");
    let _ = writeln!(t, "renew_interval = \"{RENEW_MS}ms\"\nlease = \"{LEASE_MS}ms\"");
    t.push_str(&topo.slot_tables(
        |s| format!("10.{}.{}.0/21", 220 + K, 160 + 8 * (s - 1)),
        "capacity = 4000\n",
    ));
    t
}

/// `gatehousectl ARGS` in node `i`'s namespace, bounded.
fn ctl(topo: &ClusterTopology, i: usize, args: &[&str], timeout: Duration) -> Result<String> {
    let mut cmd = topo.exec(&topo.node_ns(i), &[]);
    cmd.arg(cargo_bin("gatehousectl")).args(args);
    let out = output_with_timeout(&mut cmd, timeout)?;
    if !out.status.success() {
        bail!("gatehousectl {args:?} on node {i}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ctl_json(topo: &ClusterTopology, i: usize, args: &[&str]) -> Result<Value> {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let out = ctl(topo, i, &a, Duration::from_secs(15))?;
    serde_json::from_str(&out).with_context(|| format!("gatehousectl {args:?}: {out}"))
}

/// Slot `slot` in `show failover` of the first running node that answers.
fn slot_view(topo: &ClusterTopology, cluster: &Cluster, slot: usize) -> Option<Value> {
    (1..=NODES).filter(|i| cluster.running(*i)).find_map(|i| {
        let v = ctl_json(topo, i, &["show", "failover"]).ok()?;
        v["slots"].as_array()?.iter().find(|s| s["id"].as_u64() == Some(slot as u64)).cloned()
    })
}

fn leader(topo: &ClusterTopology, cluster: &Cluster) -> Option<u64> {
    (1..=NODES)
        .filter(|i| cluster.running(*i))
        .find_map(|i| ctl_json(topo, i, &["show", "cluster"]).ok()?["leader"].as_u64())
}

/// A slot whose owner is (`leader`) or is not (`!leader`) the Raft leader; the lowest such.
fn pick_slot(topo: &ClusterTopology, cluster: &Cluster, leader_owned: bool) -> Result<usize> {
    wait_for(
        &format!(
            "a slot owned by {}the Raft leader",
            if leader_owned { "" } else { "a node other than " }
        ),
        Duration::from_secs(20),
        || {
            let l = leader(topo, cluster)?;
            (1..=NODES).find(|s| {
                slot_view(topo, cluster, *s)
                    .and_then(|v| v["owner"].as_u64())
                    .is_some_and(|o| (o == l) == leader_owned)
            })
        },
    )
}

/// Wait until `node` is the only holder of slot `slot`'s address.
fn wait_holder(topo: &ClusterTopology, slot: usize, node: usize) -> Result<()> {
    wait_for(&format!("slot {slot} address on node {node}"), Duration::from_secs(30), || {
        (topo.holders(topo.slot_ip(slot)) == vec![node]).then_some(())
    })
}

/// The latest progress line of a fleet.
#[derive(Debug, Default, Clone, Copy)]
struct FleetStatus {
    logged_in: usize,
    attached: usize,
    drops: usize,
    lost: usize,
}

/// A running `gh-fleet` in the client namespace.
struct Fleet {
    child: Child,
    status: Arc<Mutex<FleetStatus>>,
    out: Option<std::thread::JoinHandle<String>>,
    err: Option<std::thread::JoinHandle<()>>,
}

impl Fleet {
    fn start(
        topo: &ClusterTopology,
        slot: usize,
        n: usize,
        secs: u64,
        conc: usize,
    ) -> Result<Fleet> {
        let mut cmd = topo.exec(&topo.client_ns(), &[]);
        cmd.arg(cargo_bin("gh-fleet"))
            .arg(format!("{}:{PORT}", topo.slot_ip(slot)))
            .args([gatehouse_tests::gatehouse::USER, gatehouse_tests::gatehouse::PASSWORD])
            .args([n.to_string(), secs.to_string(), conc.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("starting gh-fleet")?;
        let mut stdout = child.stdout.take().context("fleet stdout")?;
        let stderr = child.stderr.take().context("fleet stderr")?;
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let status = Arc::new(Mutex::new(FleetStatus::default()));
        let st = status.clone();
        let err = std::thread::spawn(move || {
            let mut other = 0usize;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("fleet: logged_in=") {
                    let nums: Vec<usize> = std::iter::once(rest)
                        .flat_map(|r| r.split_whitespace())
                        .filter_map(|w| w.rsplit('=').next()?.parse().ok())
                        .collect();
                    if let ([l, a, d, x, ..], Ok(mut s)) = (nums.as_slice(), st.lock()) {
                        *s = FleetStatus { logged_in: *l, attached: *a, drops: *d, lost: *x };
                    }
                } else if other < 200 {
                    other += 1;
                    eprintln!("  {line}");
                }
            }
        });
        Ok(Fleet { child, status, out: Some(out), err: Some(err) })
    }

    fn status(&self) -> FleetStatus {
        self.status.lock().map(|s| *s).unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait until the fleet has `want` tunnels attached.
    fn wait_attached(&mut self, want: usize, timeout: Duration) -> Result<()> {
        let end = clock::now() + timeout;
        loop {
            check_abort()?;
            let s = self.status();
            if s.attached >= want {
                return Ok(());
            }
            if !self.running() {
                bail!("gh-fleet exited early ({s:?})");
            }
            if clock::now() >= end {
                bail!("fleet: {want} tunnels not attached within {timeout:?} ({s:?})");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGINT, wait for the JSON report.
    fn stop(mut self) -> Result<Value> {
        let _ = signal_pid(self.child.id(), "INT");
        if wait_timeout(&mut self.child, Duration::from_secs(30))?.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            bail!("gh-fleet did not stop within 30 s of SIGINT");
        }
        let out = self.out.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        if let Some(h) = self.err.take() {
            let _ = h.join();
        }
        let line = out.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
        serde_json::from_str(line).with_context(|| format!("gh-fleet output: {out:?}"))
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One kill drill as the bench saw it.
#[derive(Debug, Clone)]
struct Drill {
    /// Epoch seconds just before `gatehousectl drill` started.
    start: f64,
    from: usize,
    was_leader: bool,
    /// TCP sockets of the crashed node flushed before its restart.
    flushed: usize,
    /// Slots of surviving owners that moved too (must be 0).
    collateral: usize,
    report: Value,
}

impl Drill {
    fn u(&self, k: &str) -> u64 {
        self.report[k].as_u64().unwrap_or(0)
    }
}

/// Run one kill drill on `slot` (from a node that survives), then bring the crashed node back.
fn kill_drill(
    topo: &ClusterTopology,
    cluster: &mut Cluster,
    fleet: &mut Fleet,
    slot: usize,
    expect_attached: usize,
    knobs: Knobs,
) -> Result<Drill> {
    let Knobs { settle, flush_tcp, .. } = knobs;
    let owner = wait_for("a slot owner", Duration::from_secs(30), || {
        let v = slot_view(topo, cluster, slot)?;
        let o = v["owner"].as_u64()? as usize;
        (topo.holders(topo.slot_ip(slot)) == vec![o]).then_some(o)
    })?;
    let reporter = (1..=NODES)
        .find(|i| *i != owner && cluster.running(*i))
        .context("no surviving node to run the drill from")?;
    let was_leader = leader(topo, cluster) == Some(owner as u64);
    // Slots of the surviving nodes: a kill must not move them (a leader's death that outlasts
    // their leases would make their owners fence themselves).
    let bystanders: Vec<(usize, u64)> = (1..=NODES)
        .filter(|s| *s != slot)
        .filter_map(|s| {
            let v = slot_view(topo, cluster, s)?;
            (v["owner"].as_u64()? != owner as u64).then_some((s, v["epoch"].as_u64()?))
        })
        .collect();
    let slot_s = slot.to_string();
    let start = clock::epoch_secs();
    let out = ctl(
        topo,
        reporter,
        &["--json", "drill", "--slot", &slot_s, "--kill", "--timeout", "12"],
        // gatehousectl's own call timeout is 15 s whatever --timeout says.
        Duration::from_secs(30),
    )?;
    let report: Value =
        serde_json::from_str(&out).with_context(|| format!("drill report: {out}"))?;
    // The owner crashed itself (exit 137): reap it.
    cluster.kill(owner);
    let flushed = if flush_tcp { flush_tcp_sockets(topo, owner)? } else { 0 };
    fleet.wait_attached(expect_attached, Duration::from_secs(60))?;
    let collateral = bystanders
        .iter()
        .filter(|(s, epoch)| {
            slot_view(topo, cluster, *s).and_then(|v| v["epoch"].as_u64()) != Some(*epoch)
        })
        .count();
    cluster.spawn(owner)?;
    cluster.wait_ready(owner)?;
    sleep(settle)?;
    Ok(Drill { start, from: owner, was_leader, flushed, collateral, report })
}

/// What a reboot does to the crashed node's kernel: forget its TCP connections. The drill
/// crash kills the process but the namespace's kernel lives on, and with the drill's DROP rule
/// the dead process's connections linger as orphans (FIN-WAIT-1). If the node later owns the
/// slot address again, an orphan whose 4-tuple a client has since reused (same client port,
/// new connection) swallows that client's segments and the new owner's tickle: no RST, the
/// client never notices the move. Returns how many sockets were destroyed.
fn flush_tcp_sockets(topo: &ClusterTopology, node: usize) -> Result<usize> {
    let mut cmd = topo.exec(&topo.node_ns(node), &["ss", "-K", "-Htn", "state", "connected"]);
    let out = output_with_timeout(&mut cmd, Duration::from_secs(10))?;
    if !out.status.success() {
        bail!(
            "ss -K in node {node}'s namespace (needs CONFIG_INET_DIAG_DESTROY): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()).count())
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    pct(&s, 0.5)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

/// Client-side figures of one phase, from the fleet report and the drills' start times.
#[derive(Debug, Default)]
struct ClientSide {
    /// Drill start → reattached, ms, every session of every drill.
    blackout: Vec<f64>,
    /// Drop seen → reattached, ms.
    gaps: Vec<f64>,
    /// Drill start → drop seen, ms.
    detect: Vec<f64>,
    /// Per drill: drill start → last reattach, ms; drops.
    per_drill: Vec<(f64, usize, Vec<f64>)>,
    drops: usize,
    lost: usize,
    pending: usize,
    logged_in: usize,
}

fn client_side(fleet: &Value, drills: &[Drill]) -> ClientSide {
    let mut c = ClientSide {
        drops: fleet["drops"].as_u64().unwrap_or(0) as usize,
        lost: fleet["lost"].as_u64().unwrap_or(0) as usize,
        pending: fleet["pending"].as_u64().unwrap_or(0) as usize,
        logged_in: fleet["logged_in"].as_u64().unwrap_or(0) as usize,
        ..ClientSide::default()
    };
    c.per_drill = drills.iter().map(|_| (0.0, 0, Vec::new())).collect();
    let events: Vec<(f64, f64)> = fleet["events"]
        .as_array()
        .map(|a| {
            a.iter().filter_map(|e| Some((e[0].as_f64()?, e[1].as_f64()?))).collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for (drop, back) in events {
        c.gaps.push((back - drop) * 1000.0);
        // The drill whose window the drop falls into.
        let Some(d) = drills.iter().rposition(|d| d.start <= drop) else { continue };
        let b = (back - drills[d].start) * 1000.0;
        c.blackout.push(b);
        c.detect.push((drop - drills[d].start) * 1000.0);
        let pd = &mut c.per_drill[d];
        pd.0 = pd.0.max(b);
        pd.1 += 1;
        pd.2.push(b);
    }
    for v in [&mut c.blackout, &mut c.gaps, &mut c.detect] {
        v.sort_by(f64::total_cmp);
    }
    c
}

/// Knobs every phase shares.
#[derive(Debug, Clone, Copy)]
struct Knobs {
    /// Logins in flight.
    conc: usize,
    /// Pause after a restarted node is ready.
    settle: Duration,
    /// Flush the crashed node's TCP sockets before its restart (as a reboot would).
    flush_tcp: bool,
}

/// A phase's results.
struct Phase {
    name: &'static str,
    slot: usize,
    sessions: usize,
    drills: Vec<Drill>,
    client: ClientSide,
}

fn fmt_ms(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.0}")
    }
}

fn triple(s: &[f64]) -> String {
    format!("{} / {} / {}", fmt_ms(pct(s, 0.5)), fmt_ms(pct(s, 0.99)), fmt_ms(max(s)))
}

fn drills_field(d: &[Drill], k: &str) -> Vec<f64> {
    d.iter().map(|x| x.u(k) as f64).collect()
}

fn med_max(v: &[f64]) -> String {
    format!("{} / {}", fmt_ms(median(v)), fmt_ms(max(v)))
}

fn ok(b: bool) -> &'static str {
    if b {
        "✅"
    } else {
        "❌"
    }
}

fn report(phases: &[Phase], nproc: usize) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Gatehouse failover bench\n");
    let _ = writeln!(
        o,
        "3 nodes in network namespaces on one host, nproc = {nproc}; slot lease {LEASE_MS} ms renewed every {RENEW_MS} ms, Raft heartbeat and election timeouts at the node defaults ({} ms, {}–{} ms), cluster heartbeat 300 ms, node down after 5 s (tests/src/cluster.rs). Kill drills: `gatehousectl --json drill --slot N --kill` run on a surviving node crashes the slot's owner (iptables DROP on the slot address, addresses removed, exit 137). Clients: `gh-fleet` (CSTP over TLS, re-attach with the same cookie at once, retry every 20 ms).\n",
        ClusterConfig::RAFT_HEARTBEAT.as_millis(),
        ClusterConfig::ELECTION_TIMEOUT.0.as_millis(),
        ClusterConfig::ELECTION_TIMEOUT.1.as_millis(),
    );
    let mut head = String::from("| metric | goal |");
    let mut sep = String::from("|---|---|");
    for p in phases {
        let _ = write!(
            head,
            " {} (slot {}, {} sessions, {} kill drill{}) |",
            p.name,
            p.slot,
            p.sessions,
            p.drills.len(),
            if p.drills.len() == 1 { "" } else { "s" }
        );
        sep.push_str("---|");
    }
    let _ = writeln!(o, "{head}\n{sep}");
    let row = |o: &mut String, name: &str, goal: &str, f: &dyn Fn(&Phase) -> String| {
        let mut r = format!("| {name} | {goal} |");
        for p in phases {
            let _ = write!(r, " {} |", f(p));
        }
        let _ = writeln!(o, "{r}");
    };
    row(&mut o, "drills", "", &|p| p.drills.len().to_string());
    row(&mut o, "sessions logged in", "", &|p| format!("{} / {}", p.client.logged_in, p.sessions));
    row(&mut o, "drops seen by clients (expected drills × sessions)", "", &|p| {
        format!("{} ({})", p.client.drops, p.drills.len() * p.sessions)
    });
    row(&mut o, "lost sessions (client 401 + drill `sessions_lost`)", "0", &|p| {
        let lost =
            p.client.lost as u64 + p.drills.iter().map(|d| d.u("sessions_lost")).sum::<u64>();
        format!("{lost} {}", ok(lost == 0 && p.client.pending == 0))
    });
    row(&mut o, "re-logins (drills)", "0", &|p| {
        let r: u64 = p.drills.iter().map(|d| d.u("relogins")).sum();
        format!("{r} {}", ok(r == 0))
    });
    row(&mut o, "other slots moved by a kill (sum over drills)", "0", &|p| {
        let c: usize = p.drills.iter().map(|d| d.collateral).sum();
        format!("{c} {}", ok(c == 0))
    });
    row(&mut o, "back / active before (sum over drills)", "all", &|p| {
        let b: u64 = p.drills.iter().map(|d| d.u("back")).sum();
        let a: u64 = p.drills.iter().map(|d| d.u("active_before")).sum();
        format!("{b} / {a} {}", ok(b == a))
    });
    row(
        &mut o,
        "**client blackout** p50 / p99 / max ms (drill start → re-attached)",
        "p99 < 1000 (100 sessions)",
        &|p| {
            // The goal is stated for the drills with 100 sessions; 1,000 have their own.
            let s = &p.client.blackout;
            if p.sessions >= 1000 {
                triple(s)
            } else {
                format!("{} {}", triple(s), ok(pct(s, 0.99) < GOAL_P99_MS))
            }
        },
    );
    row(&mut o, "client: drill start → drop seen p50 / p99 / max ms", "", &|p| {
        triple(&p.client.detect)
    });
    row(&mut o, "client gap p50 / p99 / max ms (drop seen → re-attached)", "", &|p| {
        triple(&p.client.gaps)
    });
    row(&mut o, "gateway blackout p50, median / max over drills (ms)", "", &|p| {
        med_max(&drills_field(&p.drills, "blackout_p50_ms"))
    });
    row(
        &mut o,
        "gateway blackout p95, median / max over drills (ms)",
        "< 1000 (100 sessions)",
        &|p| {
            let v = drills_field(&p.drills, "blackout_p95_ms");
            if p.sessions >= 1000 {
                med_max(&v)
            } else {
                format!("{} {}", med_max(&v), ok(max(&v) < GOAL_P99_MS))
            }
        },
    );
    row(&mut o, "gateway blackout max, median / max over drills (ms)", "", &|p| {
        med_max(&drills_field(&p.drills, "blackout_max_ms"))
    });
    row(&mut o, "takeover ms, median / max (move start → new owner committed)", "", &|p| {
        med_max(&drills_field(&p.drills, "takeover_ms"))
    });
    row(&mut o, "**all back, gateway** ms (`all_back_ms`: move start → last session attached), median / max", "< 3000 (1,000 sessions)", &|p| {
        let v: Vec<f64> = p
            .drills
            .iter()
            .map(|d| d.report.get("all_back_ms").unwrap_or(&d.report["blackout_max_ms"]).as_f64().unwrap_or(f64::NAN))
            .collect();
        let goal = if p.sessions >= 1000 { format!(" {}", ok(max(&v) < GOAL_ALL_BACK_MS)) } else { String::new() };
        format!("{}{goal}", med_max(&v))
    });
    row(
        &mut o,
        "**all back, client** ms (drill start → last re-attach), median / max",
        "< 3000 (1,000 sessions)",
        &|p| {
            let v: Vec<f64> = p.client.per_drill.iter().map(|x| x.0).collect();
            let goal = if p.sessions >= 1000 {
                format!(" {}", ok(max(&v) < GOAL_ALL_BACK_MS))
            } else {
                String::new()
            };
            format!("{}{goal}", med_max(&v))
        },
    );
    row(&mut o, "drills that crashed the Raft leader", "", &|p| {
        p.drills.iter().filter(|d| d.was_leader).count().to_string()
    });
    for (label, leader) in [("owner ≠ Raft leader", false), ("owner = Raft leader", true)] {
        row(
            &mut o,
            &format!("{label}: takeover / gateway max / client max ms, median (n)"),
            "",
            &|p| {
                let ds: Vec<(usize, &Drill)> =
                    p.drills.iter().enumerate().filter(|(_, d)| d.was_leader == leader).collect();
                if ds.is_empty() {
                    return "–".into();
                }
                let t: Vec<f64> = ds.iter().map(|(_, d)| d.u("takeover_ms") as f64).collect();
                let g: Vec<f64> = ds.iter().map(|(_, d)| d.u("blackout_max_ms") as f64).collect();
                let c: Vec<f64> = ds
                    .iter()
                    .map(|(i, _)| p.client.per_drill.get(*i).map_or(f64::NAN, |x| x.0))
                    .collect();
                format!(
                    "{} / {} / {} ({})",
                    fmt_ms(median(&t)),
                    fmt_ms(median(&g)),
                    fmt_ms(median(&c)),
                    ds.len()
                )
            },
        );
    }
    for p in phases {
        let _ = writeln!(o, "\n### {} — per drill\n", p.name);
        let _ = writeln!(o, "| # | from → to | leader killed | takeover ms | gateway p50 / p95 / max ms | client p50 / max ms | client drops | back / active | lost | re-logins | other slots moved | TCP sockets flushed |");
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        for (i, d) in p.drills.iter().enumerate() {
            let (last, n, v) =
                p.client.per_drill.get(i).cloned().unwrap_or((f64::NAN, 0, Vec::new()));
            let mut v = v;
            v.sort_by(f64::total_cmp);
            let _ = writeln!(
                o,
                "| {} | {} → {} | {} | {} | {} / {} / {} | {} / {} | {} | {} / {} | {} | {} | {} | {} |",
                i + 1,
                d.from,
                d.report["to_node"],
                if d.was_leader { "yes" } else { "" },
                d.u("takeover_ms"),
                d.u("blackout_p50_ms"),
                d.u("blackout_p95_ms"),
                d.u("blackout_max_ms"),
                fmt_ms(pct(&v, 0.5)),
                fmt_ms(last),
                n,
                d.u("back"),
                d.u("active_before"),
                d.u("sessions_lost"),
                d.u("relogins"),
                d.collateral,
                d.flushed,
            );
        }
    }
    let _ = writeln!(
        o,
        "\nClient blackout is measured from just before `gatehousectl drill` starts; the owner crashes ~50 ms after it receives the drill RPC, so the client figures include ~50–100 ms of drill overhead (ctl start, RPC, the crash delay). Gateway figures are the drills' own: from the move start to the commit of each session's new tunnel. Percentiles are nearest-rank over all sessions of all drills of the phase."
    );
    o
}

fn run_phase(
    topo: &ClusterTopology,
    cluster: &mut Cluster,
    name: &'static str,
    slot: usize,
    sessions: usize,
    drills: usize,
    knobs: Knobs,
) -> Result<Phase> {
    let conc = knobs.conc;
    eprintln!("bench: {name}: {sessions} sessions on slot {slot}, {drills} kill drill(s)");
    // Generous: logins (~30 ms of argon2id each), drills, restarts; SIGINT ends it earlier.
    let secs = 300 + sessions as u64 / 5 + drills as u64 * 60;
    let mut fleet = Fleet::start(topo, slot, sessions, secs, conc)?;
    let attach_timeout = Duration::from_secs(120 + sessions as u64 / 4);
    fleet.wait_attached(sessions, attach_timeout)?;
    wait_for(
        &format!("slot {slot} active_sessions == {sessions}"),
        Duration::from_secs(30),
        || {
            (slot_view(topo, cluster, slot)?["active_sessions"].as_u64()? as usize >= sessions)
                .then_some(())
        },
    )?;
    eprintln!("bench: {name}: {sessions} sessions attached");
    let mut done = Vec::new();
    for d in 0..drills {
        let s = fleet.status();
        let expect = s.logged_in.saturating_sub(s.lost);
        let r = kill_drill(topo, cluster, &mut fleet, slot, expect, knobs)?;
        eprintln!(
            "bench: {name}: drill {}/{drills}: node {} killed{} -> {}; takeover {} ms, gateway blackout p50/p95/max {}/{}/{} ms, back {}/{}, lost {}, relogins {}, other slots moved {}; fleet: attached {}, drops {}, lost {}; {} TCP sockets flushed",
            d + 1,
            r.from,
            if r.was_leader { " (Raft leader)" } else { "" },
            r.report["to_node"],
            r.u("takeover_ms"),
            r.u("blackout_p50_ms"),
            r.u("blackout_p95_ms"),
            r.u("blackout_max_ms"),
            r.u("back"),
            r.u("active_before"),
            r.u("sessions_lost"),
            r.u("relogins"),
            r.collateral,
            fleet.status().attached,
            fleet.status().drops,
            fleet.status().lost,
            r.flushed,
        );
        done.push(r);
    }
    let fj = fleet.stop()?;
    // The next phase logs in as the same user: end this phase's sessions so that they do not
    // count against its simultaneous-logins limit.
    if let Some(i) = (1..=NODES).find(|i| cluster.running(*i)) {
        ctl(topo, i, &["vpn-sessiondb", "logoff", "all"], Duration::from_secs(30))?;
    }
    let client = client_side(&fj, &done);
    eprintln!(
        "bench: {name}: fleet: logged_in {} drops {} lost {} pending {}",
        client.logged_in, client.drops, client.lost, client.pending
    );
    // Logged-out sessions leave the slot (bounded wait; not fatal).
    let _ = wait_for("fleet sessions logged out", Duration::from_secs(20), || {
        (slot_view(topo, cluster, slot)?["sessions"].as_u64()? == 0).then_some(())
    });
    Ok(Phase { name, slot, sessions, drills: done, client })
}

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
        print!("{}", report(&phases, nproc));
    }
    result
}
