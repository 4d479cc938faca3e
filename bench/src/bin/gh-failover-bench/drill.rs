//! One drill: crash, kill or freeze a slot's owner, see what moved, and bring the node back.

use crate::ctl::{ctl, leader, slot_view};
use crate::fleet::Fleet;
use crate::phase::{Fault, Knobs};
use crate::wait::{sleep, wait_for};
use crate::NODES;
use anyhow::{bail, Context, Result};
use gatehouse_tests::clock;
use gatehouse_tests::cluster::{Cluster, ClusterTopology};
use gatehouse_tests::process::output_with_timeout;
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;

/// One kill drill as the bench saw it.
#[derive(Debug, Clone)]
pub(crate) struct Drill {
    /// Epoch seconds just before `gatehousectl drill` started.
    pub(crate) start: f64,
    pub(crate) from: usize,
    pub(crate) was_leader: bool,
    /// TCP sockets of the crashed node flushed before its restart.
    pub(crate) flushed: usize,
    /// Slots of surviving owners that moved too (must be 0).
    pub(crate) collateral: usize,
    pub(crate) report: Value,
}

impl Drill {
    pub(crate) fn u(&self, k: &str) -> u64 {
        self.report[k].as_u64().unwrap_or(0)
    }
}

/// Run one kill drill on `slot` (from a node that survives), then bring the crashed node back.
pub(crate) fn kill_drill(
    topo: &ClusterTopology,
    cluster: &mut Cluster,
    fleet: &mut Fleet,
    slot: usize,
    expect_attached: usize,
    knobs: Knobs,
) -> Result<Drill> {
    let Knobs { settle, flush_tcp, fault, .. } = knobs;
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
    let (start, out) = match fault {
        Fault::Crash => {
            let start = clock::epoch_secs();
            let out = ctl(
                topo,
                reporter,
                &["--json", "drill", "--slot", &slot_s, "--kill", "--timeout", "12"],
                // gatehousectl's own call timeout is 15 s whatever --timeout says.
                Duration::from_secs(30),
            )?;
            (start, out)
        }
        Fault::Kill9 | Fault::Stop => {
            let mut cmd = topo.ctl_command(
                reporter,
                &["--json", "drill", "--slot", &slot_s, "--watch", "--timeout", "12"],
            );
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            let watch = cmd.spawn().context("gatehousectl drill --watch")?;
            // Let the watch read the slot's sessions before the fault.
            sleep(Duration::from_millis(300))?;
            let start = clock::epoch_secs();
            if fault == Fault::Kill9 {
                cluster.kill(owner);
            } else {
                cluster.signal(owner, "STOP")?;
                std::thread::sleep(Duration::from_secs(3));
                cluster.signal(owner, "CONT")?;
            }
            let o = watch.wait_with_output()?;
            if !o.status.success() {
                bail!("drill --watch: {}", String::from_utf8_lossy(&o.stderr).trim());
            }
            (start, String::from_utf8_lossy(&o.stdout).into_owned())
        }
    };
    let report: Value =
        serde_json::from_str(&out).with_context(|| format!("drill report: {out}"))?;
    // A crashed owner (exit 137 or SIGKILL): reap it. A thawed one runs on.
    if fault != Fault::Stop {
        cluster.kill(owner);
    }
    let flushed =
        if flush_tcp && fault != Fault::Stop { flush_tcp_sockets(topo, owner)? } else { 0 };
    fleet.wait_attached(expect_attached, Duration::from_secs(60))?;
    let collateral = bystanders
        .iter()
        .filter(|(s, epoch)| {
            slot_view(topo, cluster, *s).and_then(|v| v["epoch"].as_u64()) != Some(*epoch)
        })
        .count();
    if fault != Fault::Stop {
        cluster.spawn(owner)?;
        cluster.wait_ready(owner)?;
    }
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
