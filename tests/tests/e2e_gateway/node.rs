//! The node process: a restart keeps the sessions, NAT mode, a clean stop sends TERMINATE.

use crate::fixtures::*;
use gatehouse_tests::gatehouse::PORT;
use gatehouse_tests::{
    default_pool, ping, require_root, GatewayNode, NodeOptions, Openconnect, Role, Topology,
};
use std::time::Duration;

#[test]
fn node_restart_keeps_the_session_and_the_client_resumes_with_the_same_address() {
    if !require_root("node_restart_keeps_the_session_and_the_client_resumes_with_the_same_address")
    {
        return;
    }
    let (topo, mut node) = setup("e2ee", 4, &NodeOptions::default());
    let mut oc =
        Openconnect::builder(&topo, topo.gw_outside_ip(), PORT, &node.pin).spawn().unwrap();
    let ip = oc.wait_event("connect", CONNECT).expect("connected");
    node.crash_and_restart().unwrap();
    let again =
        oc.wait_event("reconnect", Duration::from_secs(45)).expect("resumed after the restart");
    assert_eq!(again, ip, "same address after a node restart");
    let p = ping(&topo, Role::Client, topo.lan_ip(), 3, Duration::from_millis(100)).unwrap();
    assert!(p.all_received(), "{}", p.output);
    // Counters restart with the process: this run saw a resume and no login.
    assert_eq!(node.metric("gatehouse_logins_total", &["result=\"ok\""]), 0.0, "no second login");
    assert_eq!(node.metric("gatehouse_resumes_total", &[]), 1.0);
}

#[test]
fn nat_mode_masquerades_the_pool_on_the_inside_interface() {
    if !require_root("nat_mode_masquerades_the_pool_on_the_inside_interface") {
        return;
    }
    let topo = Topology::new("e2ek", 0, &default_pool(0)).expect("topology");
    // The lan has no route back to the pool: only NAT can make replies come back.
    topo.run(Role::Lan, ["ip", "route", "del", topo.pool_cidr()]).unwrap();
    let opts = NodeOptions {
        node: vec![
            "mode = \"nat\"".into(),
            format!("nat_interface = \"{}\"", gatehouse_tests::topology::LAN_IF),
        ],
        ..Default::default()
    };
    let node = GatewayNode::start(&topo, &opts).expect("gatehouse node in NAT mode");
    let mut oc =
        Openconnect::builder(&topo, topo.gw_outside_ip(), PORT, &node.pin).spawn().unwrap();
    oc.wait_event("connect", CONNECT).expect("connected");
    let p = ping(&topo, Role::Client, topo.lan_ip(), 3, Duration::from_millis(100)).unwrap();
    assert!(p.all_received(), "{}", p.output);
    let rules = topo.run(Role::Gw, ["iptables", "-t", "nat", "-S", "POSTROUTING"]).unwrap();
    assert!(rules.contains("MASQUERADE") && rules.contains(topo.pool_cidr()), "{rules}");
}

#[test]
fn node_stop_sends_terminate_and_the_client_leaves() {
    if !require_root("node_stop_sends_terminate_and_the_client_leaves") {
        return;
    }
    let (topo, mut node) = setup("e2el", 1, &NodeOptions::default());
    let mut oc =
        Openconnect::builder(&topo, topo.gw_outside_ip(), PORT, &node.pin).spawn().unwrap();
    oc.wait_event("connect", CONNECT).expect("connected");
    node.signal("TERM").unwrap();
    assert_eq!(node.wait_exit(Duration::from_secs(10)), Some(0), "clean stop");
    let code = oc.wait_exit(Duration::from_secs(10)).expect("client leaves on TERMINATE");
    assert_ne!(code, 0);
    assert!(oc.log().contains("terminat"), "client saw the server terminate:\n{}", oc.log());
}
