//! A cluster topology: a client namespace and N gateway-node namespaces on an outside bridge,
//! the nodes and a lan host on an inside bridge. The bridges live in a "switch" namespace, so
//! cutting a node off is `ip link set ... down` on its switch ports.
//!
//! ```text
//!   cli 10.{220+k}.0.100 ─┐ br-out ┌─ n1 .1 ─┐           ┌─ lan 10.{230+k}.0.10
//!                         ├────────┼─ n2 .2 ─┤ br-in ────┤
//!                         │        └─ n3 .3 ─┘ (.1 .2 .3)│
//! ```
//! Nodes run in NAT mode (masquerade on their inside interface), so the lan needs no route
//! per node and a session can move between nodes.
//!
//! Optionally, D director namespaces sit on the outside bridge too (director j at
//! 10.{220+k}.0.{200+j}), each running `gatehouse-director` from the `director-<j>/` that
//! `gatehouse init --directors` writes.

use crate::clock::poll_until;
use crate::process::{kill_and_reap, output_with_timeout, run_ok, signal_pid, tool};
use crate::{cargo_bin, pin_sha256_of_cert_pem};
use anyhow::{bail, Context, Result};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);
static SEQ: AtomicU32 = AtomicU32::new(0);

/// Client-facing port of every node.
pub const PORT: u16 = 443;
/// Cluster port of every node.
pub const CLUSTER_PORT: u16 = 7443;

/// The namespaces and links of a cluster test.
pub struct ClusterTopology {
    k: u8,
    n: usize,
    d: usize,
    base: String,
    created: Vec<String>,
}

impl ClusterTopology {
    /// `n` nodes; `k` (0..=9) picks the address blocks 10.{220+k}.0.0/24 (outside) and
    /// 10.{230+k}.0.0/24 (inside).
    pub fn new(tag: &str, k: u8, n: usize) -> Result<ClusterTopology> {
        Self::new_with_directors(tag, k, n, 0)
    }

    /// As [`ClusterTopology::new`], plus `d` director namespaces on the outside bridge.
    pub fn new_with_directors(tag: &str, k: u8, n: usize, d: usize) -> Result<ClusterTopology> {
        anyhow::ensure!(k <= 9 && (1..=9).contains(&n) && d <= 9, "k 0..=9, n 1..=9, d 0..=9");
        let tag: String = tag.chars().filter(|c| c.is_ascii_alphanumeric()).take(6).collect();
        let base =
            format!("ghc{tag}-{}-{}-", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        let mut t = ClusterTopology { k, n, d, base, created: Vec::new() };
        t.build().with_context(|| format!("building cluster topology {}*", t.base))?;
        Ok(t)
    }

    /// Namespace of the client.
    pub fn client_ns(&self) -> String {
        format!("{}cli", self.base)
    }
    /// Namespace of node `i` (1-based).
    pub fn node_ns(&self, i: usize) -> String {
        format!("{}n{i}", self.base)
    }
    /// Namespace of director `j` (1-based).
    pub fn director_ns(&self, j: usize) -> String {
        format!("{}d{j}", self.base)
    }
    /// Address of director `j` (1-based), on the outside network.
    pub fn director_ip(&self, j: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 220 + self.k, 0, 200 + j as u8)
    }
    /// Number of directors.
    pub fn directors(&self) -> usize {
        self.d
    }
    /// Namespace of the lan host.
    pub fn lan_ns(&self) -> String {
        format!("{}lan", self.base)
    }
    fn sw_ns(&self) -> String {
        format!("{}sw", self.base)
    }
    /// Outside address of node `i`.
    pub fn node_ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 220 + self.k, 0, i as u8)
    }
    /// Inside address of node `i`.
    pub fn node_inside_ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 230 + self.k, 0, i as u8)
    }
    /// The client's address.
    pub fn client_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 220 + self.k, 0, 100)
    }
    /// The lan host.
    pub fn lan_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 230 + self.k, 0, 10)
    }
    /// The inside network.
    pub fn lan_cidr(&self) -> String {
        format!("10.{}.0.0/24", 230 + self.k)
    }
    /// The VPN pool shared by the cluster.
    pub fn pool_cidr(&self) -> String {
        format!("10.{}.128.0/20", 220 + self.k)
    }
    /// Public address of slot `s`.
    pub fn slot_ip(&self, s: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 220 + self.k, 0, 100 + s as u8)
    }
    /// Inside address of slot `s`.
    pub fn slot_inside_ip(&self, s: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 230 + self.k, 0, 100 + s as u8)
    }
    /// `[slots]` and one `[[slot]]` per node (slot i owned by node i, standby the next node).
    ///
    /// Timing: debug builds of 3 nodes, 2 directors and openconnect per test, several tests at
    /// once, on 2 cores, stall a node for a few hundred milliseconds now and then; at the
    /// defaults (Raft lease 170 ms, slot lease 600 ms) such a stall starts an election and
    /// moves slots under a test that is about something else. The tests therefore run with
    /// [`TEST_RAFT_TIMING`] and a 1.3 s slot lease (the relation `gatehouse` checks holds);
    /// bench/failover.sh measures the defaults on release builds.
    pub fn slots_toml(&self) -> String {
        // The leading keys belong to the `[cluster]` table the config ends with.
        let mut t = format!(
            "{TEST_RAFT_TIMING}[slots]\npublic_interface = \"out0\"\ninside_interface = \"in0\"\nrenew_interval = \"100ms\"\nlease = \"1300ms\"\n",
        );
        t.push_str(&self.slot_tables(|s| format!("10.{}.{}.0/24", 220 + self.k, 144 + s), ""));
        t
    }
    /// One `[[slot]]` per node: slot i owned by node i, standby the next node, its pool
    /// `pool(i)`, and `extra` keys in each.
    pub fn slot_tables(&self, pool: impl Fn(usize) -> String, extra: &str) -> String {
        (1..=self.n)
            .map(|s| {
                format!(
                    "\n[[slot]]\nid = {s}\npublic_address = \"{}/24\"\ninside_address = \"{}/24\"\npool = \"{}\"\nowner = {s}\nstandby = {}\n{extra}",
                    self.slot_ip(s),
                    self.slot_inside_ip(s),
                    pool(s),
                    s % self.n + 1
                )
            })
            .collect()
    }
    /// Which node namespaces hold `ip` right now.
    pub fn holders(&self, ip: Ipv4Addr) -> Vec<usize> {
        (1..=self.n)
            .filter(|i| {
                self.ip(&self.node_ns(*i), &["-4", "-o", "addr", "show", "to", &format!("{ip}/32")])
                    .map(|o| !o.trim().is_empty())
                    .unwrap_or(false)
            })
            .collect()
    }
    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.n
    }

    fn ip(&self, ns: &str, args: &[&str]) -> Result<String> {
        run_ok(Command::new(tool("ip")).arg("-n").arg(ns).args(args), T)
    }

    /// `ip netns exec NS ARGS`.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Command {
        let mut c = Command::new(tool("ip"));
        c.args(["netns", "exec", ns]).args(args);
        c
    }

    fn build(&mut self) -> Result<()> {
        let mut all = vec![self.sw_ns(), self.client_ns(), self.lan_ns()];
        all.extend((1..=self.n).map(|i| self.node_ns(i)));
        all.extend((1..=self.d).map(|j| self.director_ns(j)));
        for ns in &all {
            run_ok(Command::new(tool("ip")).args(["netns", "add", ns]), T)?;
            self.created.push(ns.clone());
            self.ip(ns, &["link", "set", "lo", "up"])?;
        }
        let sw = self.sw_ns();
        for br in ["br-out", "br-in"] {
            self.ip(&sw, &["link", "add", br, "type", "bridge"])?;
            self.ip(&sw, &["link", "set", br, "up"])?;
        }
        let mut ports: Vec<(String, &str, &str, String, Ipv4Addr)> =
            vec![(self.client_ns(), "br-out", "out0", "o-cli".into(), self.client_ip())];
        for i in 1..=self.n {
            ports.push((self.node_ns(i), "br-out", "out0", format!("o-n{i}"), self.node_ip(i)));
            ports.push((
                self.node_ns(i),
                "br-in",
                "in0",
                format!("i-n{i}"),
                self.node_inside_ip(i),
            ));
        }
        ports.push((self.lan_ns(), "br-in", "in0", "i-lan".into(), self.lan_ip()));
        for j in 1..=self.d {
            ports.push((
                self.director_ns(j),
                "br-out",
                "out0",
                format!("o-d{j}"),
                self.director_ip(j),
            ));
        }
        for (ns, br, dev, port, ip) in &ports {
            run_ok(
                Command::new(tool("ip")).args([
                    "link", "add", dev, "netns", ns, "type", "veth", "peer", "name", port, "netns",
                    &sw,
                ]),
                T,
            )?;
            self.ip(&sw, &["link", "set", port, "master", br])?;
            self.ip(&sw, &["link", "set", port, "up"])?;
            self.ip(ns, &["addr", "add", &format!("{ip}/24"), "dev", dev])?;
            self.ip(ns, &["link", "set", dev, "up"])?;
        }
        for i in 1..=self.n {
            run_ok(
                &mut self.exec(&self.node_ns(i), &["sysctl", "-qw", "net.ipv4.ip_forward=1"]),
                T,
            )?;
        }
        for i in 1..=self.n {
            let ok = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
                let o = output_with_timeout(
                    &mut self.exec(
                        &self.client_ns(),
                        &["ping", "-n", "-q", "-c1", "-W1", &self.node_ip(i).to_string()],
                    ),
                    Duration::from_secs(3),
                );
                matches!(o, Ok(o) if o.status.success()).then_some(())
            });
            if ok.is_none() {
                bail!("client cannot reach node {i}");
            }
        }
        Ok(())
    }

    /// Cut node `i` off every network (both switch ports down), or reconnect it.
    pub fn isolate(&self, i: usize, cut: bool) -> Result<()> {
        let state = if cut { "down" } else { "up" };
        self.ip(&self.sw_ns(), &["link", "set", &format!("o-n{i}"), state])?;
        self.ip(&self.sw_ns(), &["link", "set", &format!("i-n{i}"), state])?;
        Ok(())
    }

    /// Cut node `i`'s cluster port (Raft, forwarding) in both directions while clients can
    /// still reach it, or heal the cut.
    pub fn partition(&self, i: usize, cut: bool) -> Result<()> {
        let op = if cut { "-I" } else { "-D" };
        let port = CLUSTER_PORT.to_string();
        for (chain, dir) in [
            ("INPUT", "--dport"),
            ("INPUT", "--sport"),
            ("OUTPUT", "--dport"),
            ("OUTPUT", "--sport"),
        ] {
            run_ok(
                &mut self.exec(
                    &self.node_ns(i),
                    &["iptables", op, chain, "-p", "tcp", dir, &port, "-j", "DROP"],
                ),
                T,
            )?;
        }
        Ok(())
    }

    /// Ping from the client namespace; returns (sent, received).
    pub fn client_ping(&self, dst: Ipv4Addr, count: u32) -> (u32, u32) {
        let out = output_with_timeout(
            &mut self.exec(
                &self.client_ns(),
                &[
                    "ping",
                    "-n",
                    "-q",
                    "-c",
                    &count.to_string(),
                    "-i",
                    "0.1",
                    "-W",
                    "1",
                    &dst.to_string(),
                ],
            ),
            Duration::from_secs(u64::from(count) + 5),
        );
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        let received = text
            .lines()
            .find(|l| l.contains("received"))
            .and_then(|l| l.split(", ").nth(1))
            .and_then(|x| x.split(' ').next())
            .and_then(|x| x.parse().ok())
            .unwrap_or(0);
        (count, received)
    }

    /// Run `gh-cstp-probe NODE_IP:PORT ARGS` in the client namespace.
    pub fn probe(&self, node: usize, args: &[&str]) -> Result<String> {
        self.probe_at(&format!("{}:{PORT}", self.node_ip(node)), args)
    }

    /// Run `gh-cstp-probe ADDR ARGS` in the client namespace (`ADDR` is `IP:PORT`, or a
    /// comma-separated list for the scenarios that alternate between directors).
    pub fn probe_at(&self, addr: &str, args: &[&str]) -> Result<String> {
        let mut cmd = self.exec(&self.client_ns(), &[]);
        cmd.arg(cargo_bin("gh-cstp-probe")).arg(addr).args(args);
        let out = output_with_timeout(&mut cmd, Duration::from_secs(120))?;
        if !out.status.success() {
            bail!("gh-cstp-probe {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for ClusterTopology {
    fn drop(&mut self) {
        for ns in &self.created {
            let o = output_with_timeout(
                Command::new(tool("ip")).args(["netns", "pids", ns]),
                Duration::from_secs(5),
            );
            if let Ok(o) = o {
                for p in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = signal_pid(p.parse().unwrap_or(0), "KILL");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        for ns in &self.created {
            let _ = run_ok(Command::new(tool("ip")).args(["netns", "del", ns]), T);
        }
    }
}

/// The nodes of a cluster: one `gatehouse run` per node namespace, from `gatehouse init` PKI.
pub struct Cluster {
    dir: tempfile::TempDir,
    nodes: Vec<Option<Child>>,
    nss: Vec<String>,
    directors: Vec<Option<Child>>,
    director_nss: Vec<String>,
    /// `pin-sha256:` of each node's client-facing certificate (index 0 = node 1).
    pub pins: Vec<String>,
    starts: Vec<u32>,
}

/// Raft timing of the test clusters with slots (see [`ClusterTopology::slots_toml`]): keys of
/// the `[cluster]` table.
pub const TEST_RAFT_TIMING: &str =
    "raft_heartbeat = \"50ms\"\nelection_timeout_min = \"250ms\"\nelection_timeout_max = \"450ms\"\n";

impl Cluster {
    /// Write PKI and configs for every node of `topo` and start them all; waits until each is
    /// ready. `policy` lines go into the group policy.
    pub fn start(topo: &ClusterTopology, policy: &[&str]) -> Result<Cluster> {
        Self::start_with(topo, policy, "")
    }

    /// As [`Cluster::start`], with `extra` TOML appended to every node's config (slots).
    pub fn start_with(topo: &ClusterTopology, policy: &[&str], extra: &str) -> Result<Cluster> {
        let dir = tempfile::Builder::new().prefix("gh-cluster-").tempdir()?;
        let addrs: Vec<String> = (1..=topo.nodes()).map(|i| topo.node_ip(i).to_string()).collect();
        let out = Command::new(cargo_bin("gatehouse"))
            .args(["init", "--cluster", "test", "--nodes", &topo.nodes().to_string(), "--dir"])
            .arg(dir.path())
            .args(["--addrs", &addrs.join(","), "--cluster-port", &CLUSTER_PORT.to_string()])
            .args(director_args(topo))
            .output()?;
        if !out.status.success() {
            bail!("gatehouse init failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        for i in 1..=topo.nodes() {
            let nd = dir.path().join(format!("node-{i}"));
            let peers: Vec<String> = (1..=topo.nodes())
                .filter(|j| *j != i)
                .map(|j| format!("{{ id = {j}, addr = \"{}:{CLUSTER_PORT}\" }}", topo.node_ip(j)))
                .collect();
            let cfg = format!(
                r#"[node]
id = {i}
listen = "0.0.0.0:{PORT}"
data_dir = "data"
tls_cert = "server.pem"
tls_key = "server.key"
admin_listen = "127.0.0.1:8444"
metrics_listen = "127.0.0.1:9464"
users_file = "users.toml"
tun_name = "gh0"
mode = "nat"
nat_interface = "in0"
request_timeout = "3s"

[[pool]]
name = "default"
cidr = "{pool}"

[[group_policy]]
name = "default"
address_pool = "default"
split_include = ["{lan}"]
simultaneous_logins = 1000
{policy}

[[tunnel_group]]
name = "default"
group_policy = "default"

[cluster]
name = "test"
listen = "{ip}:{CLUSTER_PORT}"
ca_cert = "ca.pem"
cert = "cluster.pem"
key = "cluster.key"
peers = [{peers}]
heartbeat = "300ms"
node_down_after = "5s"
write_timeout = "3s"

{extra}
"#,
                ip = topo.node_ip(i),
                pool = topo.pool_cidr(),
                lan = topo.lan_cidr(),
                policy = policy.join("\n"),
                peers = peers.join(", "),
            );
            std::fs::write(nd.join("node.toml"), cfg)?;
            gatehouse_node::edge::users::add_user(
                &nd.join("users.toml"),
                crate::gatehouse::USER,
                crate::gatehouse::PASSWORD,
            )?;
        }
        let mut c = Cluster {
            dir,
            nodes: (0..topo.nodes()).map(|_| None).collect(),
            nss: (1..=topo.nodes()).map(|i| topo.node_ns(i)).collect(),
            directors: (0..topo.directors()).map(|_| None).collect(),
            director_nss: (1..=topo.directors()).map(|j| topo.director_ns(j)).collect(),
            pins: Vec::new(),
            starts: vec![0; topo.nodes()],
        };
        for i in 1..=topo.nodes() {
            c.spawn(i)?;
        }
        for i in 1..=topo.nodes() {
            c.wait_ready(i)?;
            c.pins.push(pin_sha256_of_cert_pem(&c.node_dir(i).join("server.pem"))?);
        }
        Ok(c)
    }

    /// Node `i`'s directory.
    pub fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node-{i}"))
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("node.log")
    }

    /// Node `i`'s log.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.log_path(i)).unwrap_or_default()
    }

    /// Start node `i` (again).
    pub fn spawn(&mut self, i: usize) -> Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path(i))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.nss[i - 1]])
            .arg(cargo_bin("gatehouse"))
            .args(["run", "--config"])
            .arg(self.node_dir(i).join("node.toml"))
            .env("RUST_LOG", "info,gatehouse_node=debug,openraft=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.nodes[i - 1] = Some(child);
        self.starts[i - 1] += 1;
        Ok(())
    }

    /// Wait until node `i` logged "ready" for its latest start.
    pub fn wait_ready(&self, i: usize) -> Result<()> {
        let want = self.starts[i - 1] as usize;
        let ok = poll_until(Duration::from_secs(40), Duration::from_millis(50), || {
            (self.log(i).matches("gatehouse node ready").count() >= want).then_some(())
        });
        if ok.is_none() {
            bail!("node {i} not ready; log:\n{}", crate::openconnect::tail(&self.log(i), 60));
        }
        Ok(())
    }

    /// SIGKILL node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i - 1].take() {
            kill_and_reap(&mut c);
        }
    }

    /// Run `gatehousectl ARGS` against node `i`.
    pub fn ctl(&self, i: usize, args: &[&str]) -> Result<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.nss[i - 1]])
            .arg(cargo_bin("gatehousectl"))
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!("gatehousectl {args:?} on node {i}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `show cluster --json` of node `i`.
    pub fn cluster_json(&self, i: usize) -> Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.ctl(i, &["--json", "show", "cluster"])?)?)
    }

    /// `show vpn-sessiondb detail --json` of node `i`.
    pub fn sessions_json(&self, i: usize) -> Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.ctl(i, &["--json", "show", "vpn-sessiondb", "detail"])?)?)
    }

    /// The current leader as seen by node `i`.
    pub fn leader(&self, i: usize) -> Option<usize> {
        self.cluster_json(i).ok()?["leader"].as_u64().map(|l| l as usize)
    }

    /// Whether node `i` runs.
    pub fn running(&self, i: usize) -> bool {
        self.nodes[i - 1].is_some()
    }

    /// Director `j`'s directory (`director.toml` and certificates from `gatehouse init`).
    pub fn director_dir(&self, j: usize) -> PathBuf {
        self.dir.path().join(format!("director-{j}"))
    }

    /// Director `j`'s log.
    pub fn director_log(&self, j: usize) -> String {
        std::fs::read_to_string(self.director_dir(j).join("director.log")).unwrap_or_default()
    }

    /// Start every director of the topology with the config `gatehouse init` wrote (its
    /// listen address and node list already match the topology); waits until each has a slot
    /// table from every node.
    pub fn start_directors(&mut self) -> Result<()> {
        for j in 1..=self.directors.len() {
            self.spawn_director(j)?;
        }
        for j in 1..=self.directors.len() {
            let want = self.nss.len();
            let ok = poll_until(Duration::from_secs(30), Duration::from_millis(50), || {
                let log = self.director_log(j);
                (log.contains("gatehouse director ready")
                    && log.matches("slot table watch connected").count() >= want)
                    .then_some(())
            });
            if ok.is_none() {
                bail!(
                    "director {j} has no slot tables; log:\n{}",
                    crate::openconnect::tail(&self.director_log(j), 40)
                );
            }
        }
        Ok(())
    }

    /// Start director `j` (again).
    pub fn spawn_director(&mut self, j: usize) -> Result<()> {
        let dd = self.director_dir(j);
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(dd.join("director.log"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.director_nss[j - 1]])
            .arg(cargo_bin("gatehouse-director"))
            .arg("--config")
            .arg(dd.join("director.toml"))
            .env("RUST_LOG", "info,gatehouse_director=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.directors[j - 1] = Some(child);
        Ok(())
    }

    /// SIGKILL director `j`.
    pub fn kill_director(&mut self, j: usize) {
        if let Some(mut c) = self.directors[j - 1].take() {
            kill_and_reap(&mut c);
        }
    }

    /// Whether director `j` runs.
    pub fn director_running(&self, j: usize) -> bool {
        self.directors[j - 1].is_some()
    }
}

/// `--directors A,B` for `gatehouse init` when the topology has directors.
fn director_args(topo: &ClusterTopology) -> Vec<String> {
    if topo.directors() == 0 {
        return Vec::new();
    }
    let ips: Vec<String> =
        (1..=topo.directors()).map(|j| topo.director_ip(j).to_string()).collect();
    vec!["--directors".into(), ips.join(",")]
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let dir = self.dir.path();
        for (k, c) in self.directors.iter_mut().enumerate() {
            let log = dir.join(format!("director-{}/director.log", k + 1));
            stop_and_dump(c, &log, &format!("director {}", k + 1), 40);
        }
        for (k, c) in self.nodes.iter_mut().enumerate() {
            let log = dir.join(format!("node-{}/node.log", k + 1));
            stop_and_dump(c, &log, &format!("node {}", k + 1), 60);
        }
    }
}

/// Kill a cluster process; when a test is failing, print the tail of its log to stderr
/// (without openraft's own lines, which a dead peer turns into a flood).
fn stop_and_dump(c: &mut Option<Child>, log: &Path, label: &str, lines: usize) {
    if let Some(c) = c.as_mut() {
        let _ = signal_pid(c.id(), "KILL");
        let _ = c.wait();
    }
    if std::thread::panicking() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let text: String =
            text.lines().filter(|l| !l.contains(" openraft::")).map(|l| format!("{l}\n")).collect();
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("--- {label} log ---\n{}\n", crate::openconnect::tail(&text, lines)).as_bytes(),
        );
    }
}
