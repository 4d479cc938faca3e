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

mod topology;

pub use topology::ClusterTopology;

use crate::clock::poll_until;
use crate::process::{kill_and_reap, signal_pid};
use crate::{cargo_bin, pin_sha256_of_cert_pem};
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);
/// libfaketime (Debian package faketime), multi-threaded flavour: moves a process's wall
/// clock for the clock-skew tests.
pub const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// Client-facing port of every node.
pub const PORT: u16 = 443;
/// Cluster port of every node.
pub const CLUSTER_PORT: u16 = 7443;

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
    wall_offsets: Vec<Option<String>>,
}

/// Member timing of the test clusters (keys of `[cluster]`): a member counts as down after 5 s
/// without a heartbeat (CI load delays heartbeats).
pub const TEST_MEMBER_TIMING: &str =
    "heartbeat = \"300ms\"\nnode_down_after = \"5s\"\nwrite_timeout = \"3s\"\n";

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
        Self::start_skewed(topo, policy, extra, &[])
    }

    /// As [`Cluster::start_with`], with node `i`'s wall clock off by `offsets[i - 1]` (as
    /// libfaketime writes it: `"+5s"`, `"-5s"`; `""` or missing: the real clock). Only the
    /// wall clock moves (`CLOCK_REALTIME`); the monotonic clock stays true.
    pub fn start_skewed(
        topo: &ClusterTopology,
        policy: &[&str],
        extra: &str,
        offsets: &[&str],
    ) -> Result<Cluster> {
        Self::start_full(topo, policy, extra, offsets, TEST_MEMBER_TIMING)
    }

    /// As [`Cluster::start_with`] at the product's member timing (heartbeat, node-down,
    /// write timeout): the demo, with [`ClusterTopology::slots_toml_at_defaults`].
    pub fn start_at_defaults(topo: &ClusterTopology, extra: &str) -> Result<Cluster> {
        Self::start_full(topo, &[], extra, &[], "")
    }

    fn start_full(
        topo: &ClusterTopology,
        policy: &[&str],
        extra: &str,
        offsets: &[&str],
        member_timing: &str,
    ) -> Result<Cluster> {
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
{member_timing}
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
            wall_offsets: (0..topo.nodes())
                .map(|i| offsets.get(i).filter(|o| !o.is_empty()).map(|o| o.to_string()))
                .collect(),
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
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.nss[i - 1]])
            .arg(cargo_bin("gatehouse"))
            .args(["run", "--config"])
            .arg(self.node_dir(i).join("node.toml"))
            .env("RUST_LOG", "info,gatehouse_node=debug,openraft=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some(offset) = &self.wall_offsets[i - 1] {
            cmd.env("LD_PRELOAD", FAKETIME_LIB)
                .env("FAKETIME", offset)
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_NO_CACHE", "1");
        }
        let child = cmd.spawn()?;
        self.nodes[i - 1] = Some(child);
        self.starts[i - 1] += 1;
        Ok(())
    }

    /// Wait until node `i` logged "ready" for its latest start.
    pub fn wait_ready(&self, i: usize) -> Result<()> {
        let ok = poll_until(Duration::from_secs(40), Duration::from_millis(50), || {
            self.is_ready(i).then_some(())
        });
        if ok.is_none() {
            bail!("node {i} not ready; log:\n{}", crate::openconnect::tail(&self.log(i), 60));
        }
        Ok(())
    }

    /// Whether node `i` logged "ready" for its latest start (see [`wait_ready`](Self::wait_ready)).
    pub fn is_ready(&self, i: usize) -> bool {
        self.log(i).matches("gatehouse node ready").count() >= self.starts[i - 1] as usize
    }

    /// Whether node `i`'s process has exited; an exited process is reaped and forgotten (the
    /// node then counts as not running, as after [`kill`](Self::kill)).
    pub fn exited(&mut self, i: usize) -> bool {
        let done = matches!(self.nodes[i - 1].as_mut().map(|c| c.try_wait()), Some(Ok(Some(_))));
        if done {
            self.nodes[i - 1] = None;
        }
        done
    }

    /// SIGKILL node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i - 1].take() {
            kill_and_reap(&mut c);
        }
    }

    /// Send node `i`'s process signal `sig` (`STOP`, `CONT`, …), as `kill -SIG` would.
    pub fn signal(&self, i: usize, sig: &str) -> Result<()> {
        let Some(c) = self.nodes[i - 1].as_ref() else { bail!("node {i} does not run") };
        signal_pid(c.id(), sig)
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
