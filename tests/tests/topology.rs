//! The namespace topology on its own (no VPN): addressing, isolation, cleanup. Needs root;
//! skipped elsewhere (fails under CI=true).

use std::time::Duration;

use gatehouse_tests::{default_pool, ping, require_root, Role, Topology};

fn namespaces() -> String {
    let out =
        std::process::Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn parallel_topologies_route_only_inside_and_vanish_on_drop() {
    if !require_root("parallel_topologies_route_only_inside_and_vanish_on_drop") {
        return;
    }
    let a = Topology::new("topoa", 7, &default_pool(7)).unwrap();
    let b = Topology::new("topob", 8, &default_pool(8)).unwrap();
    assert_eq!(a.gw_outside_ip().to_string(), "10.207.0.1");
    assert_eq!(a.lan_ip().to_string(), "10.217.0.10");
    assert_eq!(b.gw_lan_ip().to_string(), "10.218.0.1");
    let tick = Duration::from_millis(20);
    for t in [&a, &b] {
        assert!(ping(t, Role::Client, t.gw_outside_ip(), 2, tick).unwrap().all_received());
        assert!(ping(t, Role::Gw, t.lan_ip(), 2, tick).unwrap().all_received());
        assert!(ping(t, Role::Lan, t.gw_lan_ip(), 2, tick).unwrap().all_received());
        // No default route and no tunnel: the client cannot reach the lan.
        assert_eq!(ping(t, Role::Client, t.lan_ip(), 1, tick).unwrap().received, 0);
        let routes = t.run(Role::Lan, ["ip", "-4", "route"]).unwrap();
        assert!(routes.contains(&format!("{} via {}", t.pool_cidr(), t.gw_lan_ip())), "{routes}");
        assert!(!t.run(Role::Gw, ["ip", "route"]).unwrap().contains("default"));
        let fwd = t.run(Role::Gw, ["sysctl", "-n", "net.ipv4.ip_forward"]).unwrap();
        assert_eq!(fwd.trim(), "1");
    }
    // The other topology's addresses do not exist here.
    assert_eq!(ping(&a, Role::Client, b.gw_outside_ip(), 1, tick).unwrap().received, 0);

    // Processes inside are killed and the namespaces deleted on drop.
    let mut sleeper = a.exec(Role::Gw, ["sleep", "300"]).spawn().unwrap();
    let names: Vec<String> =
        [Role::Client, Role::Gw, Role::Lan].iter().map(|r| a.ns_name(*r).to_string()).collect();
    // `ip netns exec` needs a moment to enter the namespace and exec `sleep`.
    let inside = gatehouse_tests::clock::poll_until(Duration::from_secs(5), tick, || {
        a.pids(Role::Gw).contains(&sleeper.id()).then_some(())
    });
    assert!(inside.is_some(), "sleep is not listed in the gw namespace");
    drop(a);
    let status = sleeper.wait().unwrap();
    assert!(!status.success(), "sleep 300 was not killed");
    let list = namespaces();
    for n in &names {
        assert!(!list.contains(n.as_str()), "{n} still exists: {list}");
    }
    assert!(list.contains(b.ns_name(Role::Gw)));
}

#[test]
fn bad_arguments_leave_nothing_behind() {
    if !require_root("bad_arguments_leave_nothing_behind") {
        return;
    }
    assert!(Topology::new("bad", 10, &default_pool(0)).is_err());
    assert!(Topology::new("bad", 0, "10.1.2.0").is_err());
    // A pool with host bits set passes parsing but `ip route add` refuses it, so creation
    // fails halfway (namespaces and links exist); cleanup must still run.
    let before = namespaces().lines().filter(|l| l.contains("gh-bad2-")).count();
    assert!(Topology::new("bad2", 6, "10.206.128.1/33").is_err());
    let err = Topology::new("bad2", 6, "10.206.128.1/24").unwrap_err();
    assert!(format!("{err:#}").contains("route add"), "failed elsewhere: {err:#}");
    let after = namespaces().lines().filter(|l| l.contains("gh-bad2-")).count();
    assert_eq!(before, after, "namespaces leaked: {}", namespaces());
}
