//! The node's kernel interface for real, in a network namespace of its own: addresses over
//! route netlink, the nftables fence (an address answers while its `live` element lasts and
//! falls silent when it expires, with nobody asking), gratuitous ARP from a packet socket,
//! destroying sockets left on an address. Needs root; under `CI=true` it fails without.

use gatehouse_node::kernel::fence::{self, Fence};
use gatehouse_node::kernel::garp::ArpSocket;
use gatehouse_node::kernel::rtnl::Rtnl;
use gatehouse_node::kernel::sockdiag;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

const CHILD: &str = "kernel_child";
const SLOT: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 101);

fn sh(args: &[&str]) -> bool {
    Command::new(args[0]).args(&args[1..]).status().is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout == b"0\n")
}

#[test]
fn fence_addresses_and_arp_work_against_the_real_kernel() {
    if !is_root() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true: this test needs root");
        eprintln!("SKIPPED fence_addresses_and_arp_work_against_the_real_kernel: needs root");
        return;
    }
    let ns = format!("ghk-{}", std::process::id());
    assert!(sh(&["ip", "netns", "add", &ns]), "ip netns add");
    let ok = sh(&["ip", "-n", &ns, "link", "set", "lo", "up"])
        && sh(&["ip", "-n", &ns, "link", "add", "gh0", "type", "veth", "peer", "name", "gh1"])
        && sh(&["ip", "-n", &ns, "link", "set", "gh1", "up"])
        && sh(&["ip", "-n", &ns, "link", "set", "gh0", "up"])
        && sh(&["ip", "-n", &ns, "addr", "add", "10.77.0.1/24", "dev", "gh0"]);
    let exe = std::env::current_exe().expect("test binary");
    let status = ok.then(|| {
        Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(exe)
            .args(["--exact", CHILD, "--ignored", "--nocapture", "--test-threads=1"])
            .status()
    });
    sh(&["ip", "netns", "del", &ns]);
    assert!(ok, "namespace set-up");
    let status = status.expect("set up").expect("child ran");
    assert!(status.success(), "the kernel checks failed (output above)");
}

/// Whether a TCP connection from this host to `SLOT:port` gets through (the fence drops
/// the slot address's packets both ways when it is not live).
fn reaches(port: u16) -> bool {
    TcpStream::connect_timeout(&(SLOT, port).into(), Duration::from_millis(150)).is_ok()
}

/// Connect to a listener marked as the node marks its own, close the listener before it
/// accepts (the kernel resets the connection), and say whether the client heard the RST.
fn listener_reset_heard() -> bool {
    use std::io::Read;
    let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("listener");
    socket2::SockRef::from(&l).set_mark(fence::MARK_LISTEN).expect("SO_MARK");
    let port = l.local_addr().expect("port").port();
    let mut c = TcpStream::connect((SLOT, port)).expect("connect");
    drop(l);
    c.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
    matches!(c.read(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
}

#[test]
#[ignore = "run inside a network namespace by the test above"]
fn kernel_child() {
    let mut rtnl = Rtnl::open().expect("route netlink");
    let link = rtnl.link("gh0").expect("gh0");
    assert!(link.index > 0 && link.mac != [0; 6], "{link:?}");
    assert!(rtnl.link("nosuch0").is_err(), "an unknown interface is an error");
    let by_subnet = rtnl.link_in_subnet(SLOT, 24, &[SLOT]).expect("the interface in 10.77.0.0/24");
    assert_eq!(by_subnet, link, "found by its address 10.77.0.1");
    assert!(rtnl.link_in_subnet(Ipv4Addr::new(10, 78, 0, 1), 24, &[]).is_err());

    rtnl.add_address(link.index, SLOT, 24).expect("add");
    rtnl.add_address(link.index, SLOT, 24).expect("adding again is fine");
    assert!(rtnl.addresses().expect("dump").iter().any(|a| a.addr == SLOT && a.prefix == 24));

    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("listener");
    let port = listener.local_addr().expect("port").port();
    assert!(reaches(port), "no fence yet");
    fence::install(&[SLOT]).expect("nft ruleset");
    fence::install(&[SLOT]).expect("installing again replaces it");
    assert!(!reaches(port), "a slot address starts fenced");
    let mut f = Fence::open().expect("netfilter netlink");
    f.live_for(&[SLOT], Duration::from_millis(600)).expect("live");
    assert!(reaches(port), "live: the slot address answers");
    f.live_for(&[SLOT], Duration::from_millis(600)).expect("live again (replaces the element)");
    std::thread::sleep(Duration::from_millis(800));
    assert!(!reaches(port), "the element expired on its own: fenced");
    f.live_for(&[SLOT], Duration::from_secs(30)).expect("live");
    assert!(reaches(port));
    f.fence(&[SLOT]).expect("fence");
    assert!(!reaches(port), "fenced at once");
    f.fence(&[SLOT]).expect("fencing a fenced address is fine");

    // The same on a kernel without "destroy" (before 6.3): delete, then add.
    let mut old = Fence::open().expect("netfilter netlink").as_before_destroy();
    old.live_for(&[SLOT], Duration::from_millis(600)).expect("live (nothing to delete)");
    assert!(reaches(port), "live again");
    old.live_for(&[SLOT], Duration::from_millis(600)).expect("live (delete, then add)");
    std::thread::sleep(Duration::from_millis(800));
    assert!(!reaches(port), "expired on its own");
    old.fence(&[SLOT]).expect("fencing an expired element is fine");

    // The listener's RSTs leave only in the window a take-over opens: a connection the
    // listener had not handed over is reset when the listener closes (as when a killed
    // process's listener goes), and the client hears it only inside the window.
    f.live_for(&[SLOT], Duration::from_secs(30)).expect("live");
    assert!(!listener_reset_heard(), "a listener RST left outside the window");
    f.allow_resets(&[SLOT]).expect("open the reset window");
    assert!(listener_reset_heard(), "the listener RST was dropped inside the window");
    std::thread::sleep(fence::RESET_WINDOW + Duration::from_millis(200));
    assert!(!listener_reset_heard(), "a listener RST left after the window closed");

    let arp = ArpSocket::open().expect("packet socket");
    arp.announce(&link, SLOT).expect("gratuitous ARP");

    f.live_for(&[SLOT], Duration::from_secs(30)).expect("live");
    let _client = TcpStream::connect((SLOT, port)).expect("connect");
    let (_server, _) = listener.accept().expect("accept");
    let n = sockdiag::destroy_local(&[SLOT]).expect("destroy");
    assert!(n >= 1, "the connection on the slot address was destroyed ({n})");

    rtnl.replace_route(Ipv4Addr::new(10, 88, 0, 0), 24, link.index).expect("route");
    rtnl.replace_route(Ipv4Addr::new(10, 88, 0, 0), 24, link.index).expect("replacing it is fine");
    let routes = Command::new("ip")
        .args(["-4", "route", "show", "10.88.0.0/24"])
        .output()
        .expect("ip route");
    assert!(String::from_utf8_lossy(&routes.stdout).contains("dev gh0"), "{routes:?}");

    rtnl.remove_address(link.index, SLOT, 24).expect("remove");
    rtnl.remove_address(link.index, SLOT, 24).expect("removing again is fine");
    assert!(!rtnl.addresses().expect("dump").iter().any(|a| a.addr == SLOT));
}
