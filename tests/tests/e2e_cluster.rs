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

#[test]
fn killing_the_leader_under_a_stream_of_logins_loses_no_committed_session() {
    if !require_root("killing_the_leader_under_a_stream_of_logins_loses_no_committed_session") {
        return;
    }
    let topo = ClusterTopology::new("kill", 1, 3).unwrap();
    let mut cluster = Cluster::start(&topo, &[]).unwrap();
    let leader = cluster.leader(1).expect("a leader");
    let survivor = if leader == 1 { 2 } else { 1 };
    // Logins stream through a node that survives; its writes are forwarded to the leader.
    let stream = topo
        .exec(&topo.client_ns(), &[])
        .arg(gatehouse_tests::cargo_bin("gh-cstp-probe"))
        .arg(format!("{}:{PORT}", topo.node_ip(survivor)))
        .args(["login-loop", "test", "testpass", "200", "4"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    cluster.kill(leader);
    let out = stream.wait_with_output().unwrap();
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let ok: usize =
        line.split(' ').nth(1).and_then(|x| x.parse().ok()).unwrap_or_else(|| panic!("{line}"));
    eprintln!("login stream across the leader kill: {line}");
    assert!(ok > 0, "{line}");
    let new_leader = cluster.leader(survivor).expect("a new leader");
    assert_ne!(new_leader, leader, "a new leader was elected");
    // Every acknowledged login is there, and no address is leased twice.
    let s = sessions(&cluster, survivor);
    assert!(s.len() >= ok, "{} sessions listed, {ok} logins acknowledged", s.len());
    let addrs: BTreeSet<&str> = s.iter().filter_map(|x| x["assigned_ip"].as_str()).collect();
    assert_eq!(addrs.len(), s.len(), "an address was leased twice");
    // Logins continue on the two survivors.
    for node in (1..=3).filter(|n| *n != leader) {
        let r = topo.probe(node, &["login", "test", "testpass"]).unwrap();
        assert!(r.starts_with("cookie "), "login through node {node} after the kill: {r}");
    }
    // The killed node comes back and catches up.
    cluster.spawn(leader).unwrap();
    cluster.wait_ready(leader).unwrap();
    let caught_up = gatehouse_tests::clock::poll_until(
        Duration::from_secs(20),
        Duration::from_millis(200),
        || (sessions(&cluster, leader).len() >= ok + 2).then_some(()),
    );
    assert!(caught_up.is_some(), "the restarted node did not catch up");
}

#[test]
fn a_partitioned_minority_cannot_create_or_end_sessions_and_rejoins() {
    if !require_root("a_partitioned_minority_cannot_create_or_end_sessions_and_rejoins") {
        return;
    }
    let topo = ClusterTopology::new("part", 2, 3).unwrap();
    let cluster = Cluster::start(&topo, &[]).unwrap();
    let cookie = topo.probe(1, &["login", "test", "testpass"]).unwrap();
    assert!(cookie.starts_with("cookie "), "{cookie}");
    let minority = 3;
    topo.partition(minority, true).unwrap();
    // The minority still answers clients, but cannot commit: a clear refusal.
    let r = topo.probe(minority, &["login", "test", "testpass"]).unwrap();
    assert!(r.starts_with("refused") && r.contains("503"), "login in the minority: {r}");
    let idx = sessions(&cluster, minority)[0]["index"].as_u64().unwrap().to_string();
    let e = cluster
        .ctl(minority, &["vpn-sessiondb", "logoff", "index", &idx, "noconfirm"])
        .unwrap_err();
    assert!(e.to_string().contains("not committed"), "logoff in the minority: {e}");
    // The majority goes on.
    let majority = if cluster.leader(1) == Some(minority) { 2 } else { 1 };
    let m = gatehouse_tests::clock::poll_until(
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            topo.probe(majority, &["login", "test", "testpass"])
                .ok()
                .filter(|r| r.starts_with("cookie "))
        },
    );
    assert!(m.is_some(), "the majority keeps logging in");
    topo.partition(minority, false).unwrap();
    // Healed: the minority sees the majority's sessions and commits again.
    let rejoined = gatehouse_tests::clock::poll_until(
        Duration::from_secs(30),
        Duration::from_millis(300),
        || (sessions(&cluster, minority).len() >= 2).then_some(()),
    );
    assert!(rejoined.is_some(), "the minority did not catch up");
    let r = gatehouse_tests::clock::poll_until(
        Duration::from_secs(20),
        Duration::from_millis(300),
        || {
            topo.probe(minority, &["login", "test", "testpass"])
                .ok()
                .filter(|r| r.starts_with("cookie "))
        },
    );
    assert!(r.is_some(), "the rejoined node logs in again");
}

#[test]
fn restarting_every_node_from_disk_keeps_every_session_resumable() {
    if !require_root("restarting_every_node_from_disk_keeps_every_session_resumable") {
        return;
    }
    let topo = ClusterTopology::new("rall", 3, 3).unwrap();
    let mut cluster = Cluster::start(&topo, &[]).unwrap();
    let mut cookies = Vec::new();
    for node in 1..=3 {
        let r = topo.probe(node, &["login", "test", "testpass"]).unwrap();
        cookies.push(r.strip_prefix("cookie ").unwrap().to_string());
    }
    let before = sessions(&cluster, 1);
    assert_eq!(before.len(), 3);
    for node in 1..=3 {
        cluster.kill(node);
    }
    for node in 1..=3 {
        cluster.spawn(node).unwrap();
    }
    for node in 1..=3 {
        cluster.wait_ready(node).unwrap();
    }
    let key = |v: &Vec<serde_json::Value>| -> Vec<(u64, String)> {
        v.iter()
            .map(|s| (s["index"].as_u64().unwrap(), s["assigned_ip"].as_str().unwrap().to_string()))
            .collect()
    };
    // A restarted follower applies what it knows to be committed at once, and the rest of its
    // log when the new leader tells it the commit index.
    let same = gatehouse_tests::clock::poll_until(
        Duration::from_secs(15),
        Duration::from_millis(200),
        || (key(&sessions(&cluster, 2)) == key(&before)).then_some(()),
    );
    assert!(
        same.is_some(),
        "same sessions, same addresses after a full restart: before {:?}, after {:?}",
        key(&before),
        key(&sessions(&cluster, 2))
    );
    for (k, c) in cookies.iter().enumerate() {
        let node = 3 - k;
        let r = gatehouse_tests::clock::poll_until(
            Duration::from_secs(20),
            Duration::from_millis(300),
            || topo.probe(node, &["connect", c]).ok().filter(|r| r.contains(" 200 ")),
        );
        assert!(r.is_some(), "cookie {k} resumes through node {node} after the restart");
    }
}

#[test]
fn a_logoff_committed_on_one_node_is_refused_by_every_node() {
    if !require_root("a_logoff_committed_on_one_node_is_refused_by_every_node") {
        return;
    }
    let topo = ClusterTopology::new("logoff", 4, 3).unwrap();
    let cluster = Cluster::start(&topo, &[]).unwrap();
    let r = topo.probe(2, &["login", "test", "testpass"]).unwrap();
    let cookie = r.strip_prefix("cookie ").unwrap().to_string();
    // Resumable through every node before the logoff.
    for node in 1..=3 {
        assert!(topo.probe(node, &["connect", &cookie]).unwrap().contains(" 200 "), "node {node}");
    }
    let idx = sessions(&cluster, 1)[0]["index"].as_u64().unwrap().to_string();
    let out = cluster.ctl(1, &["vpn-sessiondb", "logoff", "index", &idx, "noconfirm"]).unwrap();
    assert!(out.contains("logged off : 1"), "{out}");
    // Immediately after the commit, no node accepts the token (the attach goes through the
    // leader's apply, which refuses it).
    for node in [3, 2, 1] {
        assert_eq!(
            topo.probe(node, &["connect", &cookie]).unwrap(),
            "status HTTP/1.1 401 Unauthorized",
            "node {node} after the logoff"
        );
    }
}

#[test]
fn a_removed_node_added_back_catches_up() {
    if !require_root("a_removed_node_added_back_catches_up") {
        return;
    }
    let topo = ClusterTopology::new("member", 5, 3).unwrap();
    let cluster = Cluster::start(&topo, &[]).unwrap();
    // Membership changes run on the leader; on a loaded machine leadership may move under
    // the test: ask again whenever the node says it is not the leader.
    let on_leader = |among: &[usize], args: &[&str]| -> (usize, String) {
        gatehouse_tests::clock::poll_until(
            Duration::from_secs(20),
            Duration::from_millis(200),
            || {
                let l = among.iter().find_map(|n| cluster.leader(*n))?;
                match cluster.ctl(l, args) {
                    Ok(out) => Some((l, out)),
                    // "the leader is N", or openraft's "has to forward request to: None"
                    // while an election runs.
                    Err(e)
                        if ["the leader is", "forward request to"]
                            .iter()
                            .any(|m| e.to_string().contains(m)) =>
                    {
                        None
                    }
                    Err(e) => panic!("{args:?} on node {l}: {e:#}"),
                }
            },
        )
        .unwrap_or_else(|| panic!("{args:?}: no leader took it"))
    };
    let leader = cluster.leader(1).expect("a leader");
    let other = (1..=3).find(|n| *n != leader).unwrap();
    let (_, out) = on_leader(&[1, 2, 3], &["cluster", "remove-node", &other.to_string()]);
    assert!(!out.contains(&format!("\n{other:<6} ")), "node {other} still a member:\n{out}");
    // Writes go on with two voters; the removed node misses them.
    for node in (1..=3).filter(|n| *n != other) {
        let r = topo.probe(node, &["login", "test", "testpass"]).unwrap();
        assert!(r.starts_with("cookie "), "{r}");
    }
    let addr = format!("{}:{}", topo.node_ip(other), gatehouse_tests::cluster::CLUSTER_PORT);
    let voters: Vec<usize> = (1..=3).filter(|n| *n != other).collect();
    let (leader, out) = on_leader(&voters, &["cluster", "add-node", &other.to_string(), &addr]);
    assert!(out.contains("voter"), "{out}");
    let caught = gatehouse_tests::clock::poll_until(
        Duration::from_secs(20),
        Duration::from_millis(200),
        || (sessions(&cluster, other).len() == 2).then_some(()),
    );
    assert!(caught.is_some(), "node {other} did not catch up after being added back");
    let j = cluster.cluster_json(leader).unwrap();
    let m = j["members"].as_array().unwrap();
    assert_eq!(m.len(), 3, "{j}");
    assert!(m.iter().all(|x| x["voter"] == true), "{j}");
    // A follower asked to change membership says where the leader is.
    let e = cluster.ctl(other, &["cluster", "remove-node", "1"]).unwrap_err().to_string();
    if other != leader {
        assert!(e.contains("leader"), "{e}");
    }
}
