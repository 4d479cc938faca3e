//! A phase: a fleet on one slot, a series of kill drills, and its results.

use crate::ctl::{ctl, slot_view};
use crate::drill::{kill_drill, Drill};
use crate::fleet::Fleet;
use crate::stats::{client_side, ClientSide};
use crate::wait::wait_for;
use crate::NODES;
use anyhow::Result;
use gatehouse_tests::cluster::{Cluster, ClusterTopology};
use std::time::Duration;

/// The fault a drill injects on the slot's owner (`BENCH_FAULT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// `crash`: `gatehousectl drill --kill` — the owner's process exits at once.
    Crash,
    /// `kill9`: SIGKILL of the owner's process from outside, links up; `drill --watch` reports.
    Kill9,
    /// `stop`: SIGSTOP of the owner's process for 3 s, then SIGCONT; `drill --watch` reports.
    Stop,
}

impl Fault {
    /// From `BENCH_FAULT`.
    pub(crate) fn from_env() -> anyhow::Result<Fault> {
        match std::env::var("BENCH_FAULT").as_deref().unwrap_or("crash") {
            "crash" => Ok(Fault::Crash),
            "kill9" => Ok(Fault::Kill9),
            "stop" => Ok(Fault::Stop),
            other => anyhow::bail!("BENCH_FAULT={other}: use crash, kill9 or stop"),
        }
    }

    /// How the report names it.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Fault::Crash => "`gatehousectl drill --kill` (the owner's process exits at once, links up)",
            Fault::Kill9 => "`kill -9` of the owner's process from outside (links up), `drill --watch` reporting",
            Fault::Stop => "SIGSTOP of the owner's process for 3 s, then SIGCONT, `drill --watch` reporting",
        }
    }
}

/// Knobs every phase shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Knobs {
    /// What each drill does to the owner.
    pub(crate) fault: Fault,
    /// Logins in flight.
    pub(crate) conc: usize,
    /// Pause after a restarted node is ready.
    pub(crate) settle: Duration,
    /// Flush the crashed node's TCP sockets before its restart (as a reboot would).
    pub(crate) flush_tcp: bool,
}

/// A phase's results.
pub(crate) struct Phase {
    pub(crate) name: &'static str,
    pub(crate) slot: usize,
    pub(crate) sessions: usize,
    pub(crate) drills: Vec<Drill>,
    pub(crate) client: ClientSide,
}

pub(crate) fn run_phase(
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
