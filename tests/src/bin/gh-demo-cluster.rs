//! `gh-demo-cluster`: a local Gatehouse cluster to try things on (run as root; `scripts/demo.sh`).
//!
//! Builds the same network-namespace topology as the end-to-end tests — a client namespace, a
//! director and three nodes on an outside bridge, a LAN host on an inside bridge — writes a
//! cluster with `gatehouse init` (self-signed certificates, a cluster CA, sled in each node's
//! data directory, a demo user), starts the three nodes with one slot each and the director,
//! and prints how to connect with openconnect, read sessions and run a failover drill. Ctrl-C
//! (or `DEMO_SECONDS`) stops it and removes every namespace and process it made.
#![allow(clippy::print_stdout)]

use anyhow::{Context, Result};
use gatehouse_tests::cluster::{Cluster, ClusterTopology};
use gatehouse_tests::gatehouse::{PASSWORD, USER};
use gatehouse_tests::{cargo_bin, require_root};
use std::time::Duration;

fn main() -> Result<()> {
    if !require_root("gh-demo-cluster") {
        anyhow::bail!("the demo cluster needs root (network namespaces, tun devices)");
    }
    let seconds = match std::env::var("DEMO_SECONDS") {
        Ok(v) => Some(v.trim().parse::<u64>().context("DEMO_SECONDS is not a number")?),
        Err(_) => None,
    };
    let topo = ClusterTopology::new_with_directors("demo", 0, 3, 1)?;
    // The product's defaults (slot lease 600 ms, Raft election 120-170 ms), as an operator
    // would run it; the test suite's clusters run with more slack (see `slots_toml`).
    let mut cluster = Cluster::start_at_defaults(&topo, &topo.slots_toml_at_defaults())?;
    cluster.start_directors()?;
    let ctl = cargo_bin("gatehousectl");
    let director = topo.director_ip(1);
    println!(
        "Gatehouse demo cluster: 3 nodes, 3 slots ({}, {}, {}), director {director}
  user     : {USER} / {PASSWORD}
  connect  : echo {PASSWORD} | sudo ip netns exec {client} openconnect --protocol=anyconnect \\
               --servercert {pin} -u {USER} --passwd-on-stdin https://{director}/
             (the director redirects the client to a slot address; it keeps that address)
  inside   : ping {lan} through the tunnel
  sessions : sudo ip netns exec {n1} {ctl} show vpn-sessiondb detail
  slots    : sudo ip netns exec {n1} {ctl} show failover
  drill    : sudo ip netns exec {n3} {ctl} drill --slot 1 --kill    (node 1 crashes)
  nodes    : configs, data and logs in {dir}
Ctrl-C stops the cluster and removes its namespaces.",
        topo.slot_ip(1),
        topo.slot_ip(2),
        topo.slot_ip(3),
        client = topo.client_ns(),
        pin = cluster.pins[0],
        lan = topo.lan_ip(),
        n1 = topo.node_ns(1),
        n3 = topo.node_ns(3),
        ctl = ctl.display(),
        dir = cluster.node_dir(1).parent().map_or_else(String::new, |p| p.display().to_string()),
    );
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (mut int, mut term) =
            (signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?);
        let limit = seconds.map_or(Duration::MAX, Duration::from_secs);
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = tokio::time::sleep(limit) => {}
        }
        anyhow::Ok(())
    })?;
    println!("stopping the demo cluster");
    drop(cluster);
    drop(topo);
    Ok(())
}
