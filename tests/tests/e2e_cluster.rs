//! A three-node cluster in network namespaces: every session is replicated through Raft, so a
//! session created through one node resumes through any other, survives the leader's death
//! and a restart of the whole cluster. Needs root; fails under CI=true when it cannot run.
#![allow(clippy::unwrap_used)]

use gatehouse_tests::cluster::{Cluster, ClusterTopology, PORT};
use gatehouse_tests::{require_root, Openconnect, Signal};
use std::collections::BTreeSet;
use std::time::Duration;

const CONNECT: Duration = Duration::from_secs(30);

fn sessions(c: &Cluster, i: usize) -> Vec<serde_json::Value> {
    c.sessions_json(i).unwrap()["sessions"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_session_created_on_one_node_resumes_on_the_others_with_the_same_address() {
    if !require_root("a_session_created_on_one_node_resumes_on_the_others_with_the_same_address") {
        return;
    }
    let topo = ClusterTopology::new("resume", 0, 3).unwrap();
    let cluster = Cluster::start(&topo, &[]).unwrap();
    let leader = cluster.leader(1).expect("a leader");
    let members = cluster.cluster_json(1).unwrap()["members"].as_array().map(Vec::len);
    assert_eq!(members, Some(3));
    // Log in through node 1 with the real client.
    let auth = Openconnect::builder_in(
        &topo.client_ns(),
        &topo.lan_cidr(),
        topo.node_ip(1),
        PORT,
        &cluster.pins[0],
    )
    .authenticate(CONNECT)
    .unwrap();
    assert_eq!(auth.exit_code, Some(0), "{}", auth.log);
    let mut addr = None;
    let mut index = None;
    for node in 1..=3 {
        let mut oc = Openconnect::builder_in(
            &topo.client_ns(),
            &topo.lan_cidr(),
            topo.node_ip(node),
            PORT,
            &cluster.pins[node - 1],
        )
        .cookie(&auth.cookie)
        .spawn()
        .unwrap();
        let ip = oc
            .wait_event("connect", CONNECT)
            .unwrap_or_else(|| panic!("connected through node {node}"));
        if let Some(a) = &addr {
            assert_eq!(&ip, a, "same inner address through node {node}");
        }
        addr = Some(ip);
        let (sent, got) = topo.client_ping(topo.lan_ip(), 3);
        assert_eq!(got, sent, "traffic through node {node}");
        // Every node lists the one session, on the node that holds its tunnel.
        for other in 1..=3 {
            let s = sessions(&cluster, other);
            assert_eq!(s.len(), 1, "node {other} sees one session");
            let i = s[0]["index"].as_u64();
            assert_eq!(*index.get_or_insert(i), i, "same session index everywhere");
            let on = s[0]["tunnels"][0]["node"].as_u64();
            assert_eq!(on, Some(node as u64), "node {other} shows the tunnel on node {node}");
        }
        oc.send_signal(Signal::Kill).unwrap();
        let _ = oc.wait_exit(Duration::from_secs(5));
    }
    let s = sessions(&cluster, leader);
    assert_eq!(s[0]["resumes"], 2, "two resumes, no second login");
}
