//! The namespaces and links of a cluster test (see the [parent module](super)).

use super::{CLUSTER_PORT, PORT, T, TEST_RAFT_TIMING};
use crate::cargo_bin;
use crate::clock::poll_until;
use crate::process::{output_with_timeout, run_ok, signal_pid, tool};
use anyhow::{bail, Context, Result};
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static SEQ: AtomicU32 = AtomicU32::new(0);

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
    /// As [`slots_toml`](Self::slots_toml) at the product's default Raft and slot timing
    /// (renew 50 ms, lease 600 ms): what the demo runs, on release builds.
    pub fn slots_toml_at_defaults(&self) -> String {
        let mut t =
            "[slots]\npublic_interface = \"out0\"\ninside_interface = \"in0\"\n".to_string();
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

    /// `gatehousectl ARGS` in node `i`'s namespace (against its admin API), to run or spawn.
    pub fn ctl_command(&self, i: usize, args: &[&str]) -> Command {
        let mut cmd = self.exec(&self.node_ns(i), &[]);
        cmd.arg(cargo_bin("gatehousectl")).args(args);
        cmd
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
