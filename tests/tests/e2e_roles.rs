//! Roles on the cluster port (`cluster::role`): a certificate of the cluster CA is not a
//! licence to do anything. With the director's own certificate and key as `gatehouse init`
//! wrote them (what an intruder on the internet-facing director holds), calls to a node's
//! cluster port are refused — forwarding a login with a token of its choosing, Raft
//! AppendEntries and Vote with a higher term, a crash drill — while the slot watch it exists
//! for still works; a node's certificate cannot speak Raft as another node. Each refusal is
//! counted (`gatehouse_cluster_refused_total`) and written to the audit log, and the cluster
//! is untouched (no intruder session, same Raft term, node 1 still running).
//! Needs root; fails under CI=true when it cannot run.
#![allow(clippy::unwrap_used)]

use gatehouse_tests::cluster::{Cluster, ClusterTopology, CLUSTER_PORT};
use gatehouse_tests::failover::wait_holder;
use gatehouse_tests::gatehouse::{metric_sum, metrics_in};
use gatehouse_tests::{cargo_bin, require_root};
use std::path::Path;

/// `gh-cluster-call` from namespace `ns` with the certificate in `dir` to node `target`.
fn call(
    topo: &ClusterTopology,
    ns: &str,
    dir: &Path,
    target: usize,
    what: &str,
    as_node: usize,
) -> String {
    let out = topo
        .exec(ns, &[])
        .arg(cargo_bin("gh-cluster-call"))
        .arg(dir.join("ca.pem"))
        .arg(dir.join("cluster.pem"))
        .arg(dir.join("cluster.key"))
        .arg(format!("{}:{CLUSTER_PORT}", topo.node_ip(target)))
        .arg(target.to_string())
        .arg(what)
        .arg(as_node.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gh-cluster-call {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn term(cluster: &Cluster, i: usize) -> u64 {
    cluster.cluster_json(i).unwrap()["term"].as_u64().unwrap()
}

#[test]
fn a_director_certificate_may_only_watch_slots_and_a_node_speaks_only_for_itself() {
    if !require_root(
        "a_director_certificate_may_only_watch_slots_and_a_node_speaks_only_for_itself",
    ) {
        return;
    }
    let topo = ClusterTopology::new_with_directors("roles", 6, 3, 1).unwrap();
    let mut cluster = Cluster::start_with(&topo, &[], &topo.slots_toml()).unwrap();
    for s in 1..=3 {
        wait_holder(&topo, s, s, &[]);
    }
    cluster.start_directors().unwrap();
    let term_before = term(&cluster, 1);
    let (dns, ddir) = (topo.director_ns(1), cluster.director_dir(1));

    for what in ["forward", "append", "vote", "drill"] {
        let out = call(&topo, &dns, &ddir, 1, what, 1);
        assert!(out.starts_with("PermissionDenied"), "director {what} to node 1: {out}");
    }
    assert_eq!(call(&topo, &dns, &ddir, 1, "watch", 1), "OK", "the director may watch slots");
    // Node 2's own certificate, claiming to be node 1 (a higher term would depose the leader).
    let (n2, n2dir) = (topo.node_ns(2), cluster.node_dir(2));
    for what in ["append", "vote"] {
        let out = call(&topo, &n2, &n2dir, 1, what, 1);
        assert!(out.starts_with("PermissionDenied"), "node 2 {what} as node 1: {out}");
    }

    let m = metrics_in(&topo.node_ns(1)).unwrap();
    let refused = |rpc: &str, role: &str| {
        metric_sum(
            &m,
            "gatehouse_cluster_refused_total",
            &[&format!("rpc=\"{rpc}\""), &format!("role=\"{role}\"")],
        )
    };
    for rpc in ["forward", "append_entries", "vote", "drill_move"] {
        assert_eq!(refused(rpc, "director"), 1.0, "{rpc} refusals of the director counted:\n{m}");
    }
    assert_eq!(refused("append_entries", "node"), 1.0, "{m}");
    assert_eq!(refused("vote", "node"), 1.0, "{m}");
    let log = cluster.log(1);
    for why in [
        "refused: director-1 may not call forward",
        "refused: director-1 may not call drill_move",
        "refused: node-2 sent a vote as node 1",
    ] {
        assert!(
            log.lines().any(|l| l.contains("gatehouse::audit") && l.contains(why)),
            "audit log of node 1 lacks {why:?}"
        );
    }

    // Nothing happened: node 1 runs, the term is the same, no intruder session exists.
    assert!(cluster.running(1), "node 1 exited");
    assert_eq!(term(&cluster, 1), term_before, "the Raft term moved");
    let sessions = cluster.ctl(2, &["--json", "show", "vpn-sessiondb"]).unwrap();
    assert!(!sessions.contains("intruder"), "a forwarded login was applied: {sessions}");
}
