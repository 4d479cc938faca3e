//! Failover: slots move between nodes, the real openconnect client keeps its session and its
//! inner address. Three nodes, one slot each (slot i owned by node i, standby node i+1).
//! Needs root; fails under CI=true when it cannot run.
#![allow(clippy::unwrap_used)]

use gatehouse_tests::cluster::{Cluster, ClusterTopology, PORT};
use gatehouse_tests::{require_root, Openconnect};
use std::process::{Child, Stdio};
use std::time::Duration;

const CONNECT: Duration = Duration::from_secs(30);

/// Wait until `node` is the only reachable holder of the slot's address (a crashed node cut
/// off the network keeps whatever it had; `dead` lists those).
fn wait_holder(topo: &ClusterTopology, slot: usize, node: usize, dead: &[usize]) {
    let ok = gatehouse_tests::clock::poll_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let live: Vec<usize> = topo
                .holders(topo.slot_ip(slot))
                .into_iter()
                .filter(|n| !dead.contains(n))
                .collect();
            (live == vec![node]).then_some(())
        },
    );
    assert!(
        ok.is_some(),
        "slot {slot} address not on node {node}: holders {:?}",
        topo.holders(topo.slot_ip(slot))
    );
}

/// `ping -i 0.01 -D` from the client to the lan host, into a file.
fn start_ping(topo: &ClusterTopology, out: &std::path::Path) -> Child {
    topo.exec(
        &topo.client_ns(),
        &["ping", "-n", "-D", "-i", "0.01", "-W", "1", &topo.lan_ip().to_string()],
    )
    .stdout(Stdio::from(std::fs::File::create(out).unwrap()))
    .stderr(Stdio::null())
    .spawn()
    .unwrap()
}

/// Largest gap between consecutive ping replies after `from` (epoch seconds), in ms.
fn max_gap_ms(out: &std::path::Path, from: f64) -> f64 {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let times: Vec<f64> = text
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
        .collect();
    let mut gap: f64 = 0.0;
    for w in times.windows(2) {
        if w[1] >= from {
            gap = gap.max(w[1] - w[0]);
        }
    }
    gap * 1000.0
}

fn session(cluster: &Cluster, node: usize) -> serde_json::Value {
    let s = cluster.sessions_json(node).unwrap();
    let v = s["sessions"].as_array().cloned().unwrap_or_default();
    assert_eq!(v.len(), 1, "one session: {s}");
    v[0].clone()
}

fn failover(kill: bool) {
    let tag = if kill { "fokill" } else { "foswitch" };
    let topo = ClusterTopology::new(tag, if kill { 5 } else { 6 }, 3).unwrap();
    let mut cluster = Cluster::start_with(&topo, &[], &topo.slots_toml()).unwrap();
    wait_holder(&topo, 1, 1, &[]);
    let mut oc = Openconnect::builder_in(
        &topo.client_ns(),
        &topo.lan_cidr(),
        topo.slot_ip(1),
        PORT,
        &cluster.pins[0],
    )
    .spawn()
    .unwrap();
    let ip = oc.wait_event("connect", CONNECT).expect("connected to slot 1");
    let before = session(&cluster, 2);
    assert_eq!(before["tunnels"][0]["node"], 1);
    let dir = tempfile::tempdir().unwrap();
    let pings = dir.path().join("ping.txt");
    let mut ping = start_ping(&topo, &pings);
    std::thread::sleep(Duration::from_secs(1));
    let t0 = gatehouse_tests::clock::epoch_secs();
    if kill {
        // The node dies as a machine does: off the network, process killed.
        topo.isolate(1, true).unwrap();
        cluster.kill(1);
    } else {
        let out = cluster.ctl(1, &["failover", "switch", "--slot", "1"]).unwrap();
        assert!(out.contains("Failover slots"), "{out}");
    }
    let again = oc.wait_event("reconnect", CONNECT).expect("openconnect resumed after the move");
    assert_eq!(again, ip, "same inner address after the move");
    wait_holder(&topo, 1, 2, if kill { &[1] } else { &[] });
    std::thread::sleep(Duration::from_millis(500));
    let _ = ping.kill();
    let _ = ping.wait();
    let blackout = max_gap_ms(&pings, t0);
    eprintln!("failover ({}): blackout {blackout:.0} ms (largest gap between ping replies, 10 ms interval)", if kill { "kill" } else { "switch" });
    let after = session(&cluster, 2);
    assert_eq!(after["index"], before["index"], "same session index");
    assert_eq!(after["assigned_ip"], before["assigned_ip"]);
    assert_eq!(after["resumes"], 1, "a resume, not a second login");
    assert_eq!(after["tunnels"][0]["node"], 2, "the tunnel is on the standby now");
    let (sent, got) = topo.client_ping(topo.lan_ip(), 3);
    assert_eq!(got, sent, "traffic through the new owner");
}

#[test]
fn killed_slot_owner_fails_over_to_the_standby_and_openconnect_resumes() {
    if !require_root("killed_slot_owner_fails_over_to_the_standby_and_openconnect_resumes") {
        return;
    }
    failover(true);
}

#[test]
fn graceful_switch_moves_the_slot_and_openconnect_resumes() {
    if !require_root("graceful_switch_moves_the_slot_and_openconnect_resumes") {
        return;
    }
    failover(false);
}
