//! The shared fixtures: one node in its own topology, and its session db read as JSON.

use gatehouse_tests::{default_pool, GatewayNode, NodeOptions, Topology};
use std::time::Duration;

pub(crate) const CONNECT: Duration = Duration::from_secs(20);

pub(crate) fn setup(tag: &str, k: u8, opts: &NodeOptions) -> (Topology, GatewayNode) {
    let topo = Topology::new(tag, k, &default_pool(k)).expect("topology");
    let node = GatewayNode::start(&topo, opts).expect("gatehouse node");
    (topo, node)
}

pub(crate) fn sessions_json(node: &GatewayNode) -> serde_json::Value {
    let out = node.ctl(&["--json", "show", "vpn-sessiondb", "detail"]).unwrap();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
}
