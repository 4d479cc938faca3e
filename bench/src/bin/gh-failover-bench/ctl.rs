//! The bench's slot layout and `gatehousectl` queries: slot views, the Raft leader, slot picking.

use crate::wait::wait_for;
use crate::{K, LEASE_MS, NODES, RENEW_MS};
use anyhow::{bail, Context, Result};
use gatehouse_tests::cluster::{Cluster, ClusterTopology};
use gatehouse_tests::process::output_with_timeout;
use serde_json::Value;
use std::fmt::Write as _;
use std::time::Duration;

/// The bench's slots: as `ClusterTopology::slots_toml`, but each slot's pool is a /21 (2,046
/// addresses; the topology's /24 pools hold 254, too few for phase B).
pub(crate) fn slots_toml(topo: &ClusterTopology) -> String {
    let mut t = String::from("[slots]\npublic_interface = \"out0\"\ninside_interface = \"in0\"\n");
    let _ = writeln!(t, "renew_interval = \"{RENEW_MS}ms\"\nlease = \"{LEASE_MS}ms\"");
    t.push_str(&topo.slot_tables(
        |s| format!("10.{}.{}.0/21", 220 + K, 160 + 8 * (s - 1)),
        "capacity = 4000\n",
    ));
    t
}

/// `gatehousectl ARGS` in node `i`'s namespace, bounded.
pub(crate) fn ctl(
    topo: &ClusterTopology,
    i: usize,
    args: &[&str],
    timeout: Duration,
) -> Result<String> {
    let mut cmd = topo.ctl_command(i, args);
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
pub(crate) fn slot_view(topo: &ClusterTopology, cluster: &Cluster, slot: usize) -> Option<Value> {
    (1..=NODES).filter(|i| cluster.running(*i)).find_map(|i| {
        let v = ctl_json(topo, i, &["show", "failover"]).ok()?;
        v["slots"].as_array()?.iter().find(|s| s["id"].as_u64() == Some(slot as u64)).cloned()
    })
}

pub(crate) fn leader(topo: &ClusterTopology, cluster: &Cluster) -> Option<u64> {
    (1..=NODES)
        .filter(|i| cluster.running(*i))
        .find_map(|i| ctl_json(topo, i, &["show", "cluster"]).ok()?["leader"].as_u64())
}

/// A slot whose owner is (`leader`) or is not (`!leader`) the Raft leader; the lowest such.
pub(crate) fn pick_slot(
    topo: &ClusterTopology,
    cluster: &Cluster,
    leader_owned: bool,
) -> Result<usize> {
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
pub(crate) fn wait_holder(topo: &ClusterTopology, slot: usize, node: usize) -> Result<()> {
    wait_for(&format!("slot {slot} address on node {node}"), Duration::from_secs(30), || {
        (topo.holders(topo.slot_ip(slot)) == vec![node]).then_some(())
    })
}
