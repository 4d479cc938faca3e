//! What the failover tests share: a cluster with the real openconnect on slot 1, a 10 ms
//! ping through its tunnel (the gap a user sees), and ARP probes for a slot address from the
//! client's network (which hosts answer for it).
#![allow(clippy::unwrap_used)]

use crate::cluster::{Cluster, ClusterTopology, PORT};
use crate::process::signal_pid;
use crate::{cargo_bin, Openconnect};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long openconnect may take to (re)connect in these tests.
pub const CONNECT: Duration = Duration::from_secs(30);

/// Wait until `node` is the only reachable holder of the slot's address (a crashed node cut
/// off the network keeps whatever it had; `dead` lists those).
pub fn wait_holder(topo: &ClusterTopology, slot: usize, node: usize, dead: &[usize]) {
    let ok = crate::clock::poll_until(Duration::from_secs(20), Duration::from_millis(50), || {
        let live: Vec<usize> =
            topo.holders(topo.slot_ip(slot)).into_iter().filter(|n| !dead.contains(n)).collect();
        (live == vec![node]).then_some(())
    });
    assert!(
        ok.is_some(),
        "slot {slot} address not on node {node}: holders {:?}",
        topo.holders(topo.slot_ip(slot))
    );
}

/// TCP connections (every state but LISTEN) with the local address `ip` in node `i`'s
/// namespace, as `ss` lists them.
pub fn connections_on(topo: &ClusterTopology, i: usize, ip: std::net::Ipv4Addr) -> Vec<String> {
    let out = topo
        .exec(&topo.node_ns(i), &["ss", "-Htan", "src", &ip.to_string()])
        .output()
        .expect("ss in a node's namespace");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("LISTEN"))
        .map(str::to_string)
        .collect()
}

/// `ping -i 0.01 -D` from the client to the lan host, into a file.
/// A 3-node cluster with slots (address block `k`), slot 1 on node 1, and the real openconnect
/// connected to slot 1's address; the inner address it got.
pub fn connected_to_slot_1(tag: &str, k: u8) -> (ClusterTopology, Cluster, Openconnect, String) {
    let topo = ClusterTopology::new(tag, k, 3).unwrap();
    let cluster = Cluster::start_with(&topo, &[], &topo.slots_toml()).unwrap();
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
    (topo, cluster, oc, ip)
}

pub fn start_ping(topo: &ClusterTopology, out: &std::path::Path) -> Child {
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
pub fn max_gap_ms(out: &std::path::Path, from: f64) -> f64 {
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

pub fn session(cluster: &Cluster, node: usize) -> serde_json::Value {
    let s = cluster.sessions_json(node).unwrap();
    let v = s["sessions"].as_array().cloned().unwrap_or_default();
    assert_eq!(v.len(), 1, "one session: {s}");
    v[0].clone()
}

/// The session `before` lives on after a move: same index and inner address, one resume and
/// not a second login, its tunnel on `node`, and traffic flows through it.
pub fn assert_resumed_on(
    cluster: &Cluster,
    topo: &ClusterTopology,
    before: &serde_json::Value,
    node: usize,
) {
    let after = session(cluster, node);
    assert_eq!(after["index"], before["index"], "same session index");
    assert_eq!(after["assigned_ip"], before["assigned_ip"]);
    assert_eq!(after["resumes"], 1, "a resume, not a second login");
    assert_eq!(after["tunnels"][0]["node"], node as u64, "the tunnel is on node {node} now");
    let (sent, got) = topo.client_ping(topo.lan_ip(), 3);
    assert_eq!(got, sent, "traffic through the new owner");
}

/// `gh-arp-probe` for one address from the client's namespace: a broadcast ARP request every
/// 10 ms, and the hardware address of every reply in the order they came.
pub struct ArpProbe {
    child: Child,
    macs: Arc<Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
}

impl ArpProbe {
    /// Start probing `ip` on the client's outside interface.
    pub fn start(topo: &ClusterTopology, ip: std::net::Ipv4Addr) -> ArpProbe {
        let mut child = topo
            .exec(
                &topo.client_ns(),
                &[
                    cargo_bin("gh-arp-probe").to_str().unwrap(),
                    "out0",
                    &topo.client_ip().to_string(),
                    &ip.to_string(),
                    "120",
                ],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let macs = Arc::new(Mutex::new(Vec::new()));
        let m = macs.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(reply) = probe_reply(&line) {
                    m.lock().unwrap().push(reply);
                }
            }
        });
        ArpProbe { child, macs, reader }
    }

    /// Stop probing; the replies in order, each as `<probe> <mac>`.
    pub fn stop(mut self) -> Vec<String> {
        let _ = signal_pid(self.child.id(), "KILL");
        let _ = self.child.wait();
        let _ = self.reader.join();
        let v = self.macs.lock().unwrap().clone();
        v
    }
}

/// The hardware address in a `gh-arp-probe` line (`<ms> <probe> <mac>`), tagged with the
/// probe it answered (`<probe> <mac>`).
pub fn probe_reply(line: &str) -> Option<String> {
    let mut f = line.split_whitespace();
    let (_ms, probe, mac) = (f.next()?, f.next()?, f.next()?);
    Some(format!("{probe} {mac}"))
}

/// How often the answering host changed along `replies` (`<probe> <mac>`, in arrival order):
/// 1 for a clean move from one owner to another; more when two hosts answered in the same
/// stretch of time (two answers to one probe count as two changes at least).
pub fn owner_changes(replies: &[String]) -> usize {
    let mac = |r: &String| r.split_whitespace().nth(1).map(str::to_string);
    let macs: Vec<Option<String>> = replies.iter().map(mac).collect();
    macs.windows(2).filter(|w| w[0] != w[1]).count()
}

/// Probes that two different hosts answered (`<probe> <mac>` lines sharing a probe).
pub fn doubly_answered(replies: &[String]) -> Vec<String> {
    let mut by_probe: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> =
        Default::default();
    for r in replies {
        let mut f = r.split_whitespace();
        if let (Some(p), Some(m)) = (f.next(), f.next()) {
            by_probe.entry(p).or_default().insert(m);
        }
    }
    by_probe.into_iter().filter(|(_, m)| m.len() > 1).map(|(p, _)| p.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines_give_their_mac_and_changes_are_counted() {
        assert_eq!(
            probe_reply("1520 152 4a:a8:80:52:24:d6").as_deref(),
            Some("152 4a:a8:80:52:24:d6")
        );
        assert_eq!(probe_reply("garbage"), None);
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(owner_changes(&v(&["1 a", "2 a", "3 b", "4 b"])), 1);
        assert_eq!(owner_changes(&v(&["1 a", "2 b", "2 a", "3 b"])), 3);
        assert_eq!(doubly_answered(&v(&["1 a", "2 b", "2 a", "3 b"])), vec!["2".to_string()]);
        assert!(doubly_answered(&v(&["1 a", "2 a", "3 b"])).is_empty());
    }
}
