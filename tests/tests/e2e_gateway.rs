//! End to end, one node: the real openconnect client in a client namespace, a Gatehouse node
//! in the gateway namespace with a real tun device, a lan host behind it. Needs root;
//! fails under CI=true when it cannot run.

use gatehouse_tests::gatehouse::PORT;
use gatehouse_tests::{
    default_pool, ping, require_root, ss_kill, tcp_transfer, GatewayNode, NodeOptions,
    Openconnect, Role, Topology,
};
use std::time::Duration;

const CONNECT: Duration = Duration::from_secs(20);

fn setup(tag: &str, k: u8, opts: &NodeOptions) -> (Topology, GatewayNode) {
    let topo = Topology::new(tag, k, &default_pool(k)).expect("topology");
    let node = GatewayNode::start(&topo, opts).expect("gatehouse node");
    (topo, node)
}

#[test]
fn login_tunnel_traffic_and_resume_after_tcp_break() {
    if !require_root("login_tunnel_traffic_and_resume_after_tcp_break") {
        return;
    }
    let (topo, node) = setup("e2ea", 0, &NodeOptions::default());
    let mut oc = Openconnect::builder(&topo, topo.gw_outside_ip(), PORT, &node.pin).spawn().unwrap();
    let ip = oc.wait_event("connect", CONNECT).expect("openconnect connected");
    assert!(ip.starts_with("10.200.128."), "inner address {ip} from the pool");
    let p = ping(&topo, Role::Client, topo.lan_ip(), 5, Duration::from_millis(100)).unwrap();
    assert!(p.all_received(), "{}", p.output);
    let moved = tcp_transfer(&topo, 4 << 20).unwrap();
    assert_eq!(moved, 4 << 20);
    assert_eq!(node.metric("gatehouse_logins_total", &["result=\"ok\""]), 1.0);

    // Break the TCP connection under the client: it resumes with its cookie.
    let killed = ss_kill(&topo, Role::Gw, PORT).unwrap();
    assert!(killed >= 1, "ss -K killed nothing");
    let again = oc.wait_event("reconnect", CONNECT).expect("openconnect resumed");
    assert_eq!(again, ip, "same inner address after resume");
    let p = ping(&topo, Role::Client, topo.lan_ip(), 3, Duration::from_millis(100)).unwrap();
    assert!(p.all_received(), "{}", p.output);
    assert_eq!(node.metric("gatehouse_resumes_total", &[]), 1.0);
    assert_eq!(node.metric("gatehouse_logins_total", &["result=\"ok\""]), 1.0, "no second login");
    assert!(oc.is_running());
}
