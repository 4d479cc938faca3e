//! The measurement sequence: warm-up, commit latency, creates/s, resumes, then the report.

use crate::cluster::Cluster;
use crate::commands::{attach_ok, login_ok, Gen};
use crate::diag::{diagnostics, machine};
use crate::report::{fmt_ms, fmt_rate, write_summary, write_table, Row};
use crate::run::{run, Run};
use crate::{Knobs, GOAL_P99_MS, GOAL_WRITES_PER_S};
use anyhow::{bail, Result};
use gatehouse_core::Command;
use gatehouse_node::db::SessionStore;
use gatehouse_tests::clock;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::task::JoinHandle;

pub(crate) async fn measure(cluster: &Cluster, k: &Knobs, dir: &Path) -> Result<()> {
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
    write_table(&mut out, &rows);
    let _ = writeln!(out);
    write_summary(&mut out, &rows);
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
