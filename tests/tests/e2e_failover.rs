//! Failover: slots move between nodes, the real openconnect client keeps its session and its
//! inner address. Three nodes, one slot each (slot i owned by node i, standby node i+1).
//! Needs root; fails under CI=true when it cannot run.
#![allow(clippy::unwrap_used)]

use gatehouse_tests::cluster::{Cluster, ClusterTopology};
use gatehouse_tests::failover::{
    assert_resumed_on, connected_to_slot_1, max_gap_ms, session, start_ping, wait_holder, CONNECT,
};
use gatehouse_tests::{cargo_bin, require_root};
use std::process::Stdio;
use std::time::Duration;

fn failover(kill: bool) {
    let tag = if kill { "fokill" } else { "foswitch" };
    let (topo, mut cluster, mut oc, ip) = connected_to_slot_1(tag, if kill { 5 } else { 6 });
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
    assert_resumed_on(&cluster, &topo, &before, 2);
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

/// `[ts] ... inet IP/...` lines of `ip -ts monitor address`: (timestamp text, added?).
fn address_events(path: &std::path::Path, ip: &str) -> Vec<(String, bool)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains(&format!("inet {ip}/")))
        .filter_map(|l| {
            let ts = l.strip_prefix('[')?.split(']').next()?.to_string();
            Some((ts, !l.contains("Deleted")))
        })
        .collect()
}

#[test]
fn a_partitioned_owner_drops_the_address_before_the_standby_adds_it() {
    if !require_root("a_partitioned_owner_drops_the_address_before_the_standby_adds_it") {
        return;
    }
    let topo = ClusterTopology::new("fopart", 9, 3).unwrap();
    let cluster = Cluster::start_with(&topo, &[], &topo.slots_toml()).unwrap();
    wait_holder(&topo, 1, 1, &[]);
    let dir = tempfile::tempdir().unwrap();
    let mut monitors = Vec::new();
    for node in 1..=3 {
        let out = std::fs::File::create(dir.path().join(format!("n{node}.mon"))).unwrap();
        monitors.push(
            topo.exec(&topo.node_ns(node), &["ip", "-ts", "monitor", "address"])
                .stdout(Stdio::from(out))
                .spawn()
                .unwrap(),
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    // Node 1 keeps its client-facing links but loses its peers: it cannot renew its lease.
    topo.partition(1, true).unwrap();
    wait_holder(&topo, 1, 2, &[1]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(topo.holders(topo.slot_ip(1)), vec![2], "never two holders, also after the move");
    topo.partition(1, false).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        topo.holders(topo.slot_ip(1)),
        vec![2],
        "the healed ex-owner does not take the address back"
    );
    for m in &mut monitors {
        let _ = m.kill();
        let _ = m.wait();
    }
    let ip = topo.slot_ip(1).to_string();
    let e1 = address_events(&dir.path().join("n1.mon"), &ip);
    let e2 = address_events(&dir.path().join("n2.mon"), &ip);
    let dropped = e1
        .iter()
        .find(|(_, added)| !added)
        .map(|(t, _)| t.clone())
        .expect("node 1 removed the address");
    let added = e2
        .iter()
        .find(|(_, added)| *added)
        .map(|(t, _)| t.clone())
        .expect("node 2 added the address");
    eprintln!("partition: node 1 dropped the address at {dropped}, node 2 added it at {added}");
    assert!(dropped < added, "node 1 dropped at {dropped}, node 2 added at {added}: both held it");
    let f = cluster.ctl(2, &["--json", "show", "failover"]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&f).unwrap();
    assert_eq!(v["slots"][0]["owner"], 2, "{v}");
    assert_eq!(v["slots"][0]["epoch"], 2, "{v}");
}

#[test]
fn drills_report_no_lost_session_and_no_relogin() {
    if !require_root("drills_report_no_lost_session_and_no_relogin") {
        return;
    }
    let (topo, cluster, mut oc, ip) = connected_to_slot_1("fodrill", 9);
    // Keep traffic flowing so the tunnel is busy during the moves.
    let dir = tempfile::tempdir().unwrap();
    let mut ping = start_ping(&topo, &dir.path().join("ping.txt"));
    let parse = |out: &str| -> serde_json::Value {
        serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    // A graceful switch, coordinated from node 3.
    let r = parse(&cluster.ctl(3, &["--json", "drill", "--slot", "1", "--switch"]).unwrap());
    eprintln!("switch drill: {r}");
    assert_eq!(r["sessions_lost"], 0, "{r}");
    assert_eq!(r["relogins"], 0, "{r}");
    assert_eq!(r["back"], 1, "{r}");
    assert_eq!(r["to_node"], 2, "{r}");
    assert_eq!(oc.wait_event("reconnect", CONNECT).as_deref(), Some(ip.as_str()));
    // The operators' drill script (deploy/drill.sh) switches every slot in turn from node 3:
    // slot 1 goes back to node 1 (the client follows), slots 2 and 3 to their standbys.
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/drill.sh");
    let ctl = format!("ip netns exec {} {}", topo.node_ns(3), cargo_bin("gatehousectl").display());
    let out = std::process::Command::new("bash")
        .arg(&script)
        .env("GATEHOUSECTL", &ctl)
        .env("PAUSE", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("drill.sh:\n{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "deploy/drill.sh failed");
    assert_eq!(text.matches("== drill slot").count(), 3, "{text}");
    assert!(text.contains("every drill passed"), "{text}");
    assert_eq!(oc.wait_nth_event("reconnect", 2, CONNECT).as_deref(), Some(ip.as_str()));
    let owner = |s: u64| {
        let v = parse(&cluster.ctl(3, &["--json", "show", "failover"]).unwrap());
        v["slots"].as_array().unwrap().iter().find(|x| x["id"] == s).unwrap()["owner"].clone()
    };
    assert_eq!((owner(1), owner(2), owner(3)), (1.into(), 3.into(), 1.into()));
    // A kill drill: slot 1's owner (node 1) crashes; node 3 reports.
    let r = parse(&cluster.ctl(3, &["--json", "drill", "--slot", "1", "--kill"]).unwrap());
    eprintln!("kill drill: {r}");
    assert_eq!(r["sessions_lost"], 0, "{r}");
    assert_eq!(r["relogins"], 0, "{r}");
    assert_eq!(r["back"], 1, "{r}");
    assert_eq!(oc.wait_nth_event("reconnect", 3, CONNECT).as_deref(), Some(ip.as_str()));
    let _ = ping.kill();
    let _ = ping.wait();
}
