//! A Gatehouse node process inside a topology's gateway namespace.

use crate::clock::poll_until;
use crate::process::{kill_and_reap, signal_pid};
use crate::{cargo_bin, pin_sha256_of_cert_pem, Role, Topology};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The client-facing port the test nodes listen on.
pub const PORT: u16 = 443;
/// Test user and password created in every test node's users file.
pub const USER: &str = "test";
/// Password of [`USER`].
pub const PASSWORD: &str = "testpass";

/// Policy knobs the tests shorten.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// Extra `key = value` lines for the `[[group_policy]]` table (timers).
    pub policy: Vec<String>,
    /// Extra lines for the `[node]` table.
    pub node: Vec<String>,
}

/// A running `gatehouse run` in the gateway namespace.
pub struct GatewayNode {
    child: Option<Child>,
    dir: tempfile::TempDir,
    gw_ns: String,
    log: PathBuf,
    starts: u32,
    /// `pin-sha256:...` of the node's self-signed certificate.
    pub pin: String,
}

impl GatewayNode {
    /// Write a config for `topo` and start the node; waits until it is ready.
    pub fn start(topo: &Topology, opts: &NodeOptions) -> Result<GatewayNode> {
        let dir = tempfile::Builder::new().prefix("gh-node-").tempdir()?;
        let cfg = config(topo, opts, dir.path());
        std::fs::write(dir.path().join("node.toml"), cfg)?;
        gatehouse_node::edge::users::add_user(&dir.path().join("users.toml"), USER, PASSWORD)?;
        let mut n = GatewayNode {
            child: None,
            gw_ns: topo.ns_name(Role::Gw).to_string(),
            log: dir.path().join("node.log"),
            dir,
            starts: 0,
            pin: String::new(),
        };
        n.spawn()?;
        n.pin = pin_sha256_of_cert_pem(&n.dir.path().join("data/tls/cert.pem"))?;
        Ok(n)
    }

    fn spawn(&mut self) -> Result<()> {
        self.starts += 1;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.gw_ns])
            .arg(cargo_bin("gatehouse"))
            .args(["run", "--config"])
            .arg(self.dir.path().join("node.toml"))
            .env("RUST_LOG", "info,gatehouse_node=debug,openraft=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning gatehouse")?;
        self.child = Some(child);
        let want = self.starts;
        let ready = poll_until(Duration::from_secs(30), Duration::from_millis(50), || {
            (self.log().matches("gatehouse node ready").count() as u32 >= want).then_some(())
        });
        if ready.is_none() {
            bail!("gatehouse did not become ready in 30 s; log:\n{}", self.log());
        }
        Ok(())
    }

    /// The node's combined stdout/stderr so far (all runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The node's directory (config, users, data).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Send a signal (`"KILL"`, `"TERM"`, `"USR2"`, `"STOP"`).
    pub fn signal(&self, sig: &str) -> Result<()> {
        signal_pid(self.pid().context("not running")?, sig)
    }

    /// Wait for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let c = self.child.as_mut()?;
        let st = crate::process::wait_timeout(c, timeout).ok().flatten()?;
        self.child = None;
        Some(st.code().unwrap_or(-1))
    }

    /// SIGKILL the node and start it again from the same directory.
    pub fn crash_and_restart(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            kill_and_reap(&mut c);
        }
        self.spawn()
    }

    /// Run `gatehousectl ARGS` against this node's admin API.
    pub fn ctl(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.gw_ns])
            .arg(cargo_bin("gatehousectl"))
            .args(args)
            .output()
            .context("running gatehousectl")?;
        if !out.status.success() {
            bail!("gatehousectl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The Prometheus exposition text.
    pub fn metrics(&self) -> Result<String> {
        metrics_in(&self.gw_ns)
    }

    /// Sum of a metric's samples whose line contains every `needle` (label filters).
    pub fn metric(&self, name: &str, needles: &[&str]) -> f64 {
        metric_sum(&self.metrics().unwrap_or_default(), name, needles)
    }
}

/// The Prometheus exposition text of the node in namespace `ns` (metrics on 127.0.0.1:9464).
pub fn metrics_in(ns: &str) -> Result<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "bash", "-c"])
        .arg("exec 3<>/dev/tcp/127.0.0.1/9464; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3")
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Sum of metric `name`'s samples in `text` whose line contains every `needle` (label filters).
pub fn metric_sum(text: &str, name: &str, needles: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split([' ', '{']).next() == Some(name))
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

impl Drop for GatewayNode {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = signal_pid(c.id(), "TERM");
            if crate::process::wait_timeout(&mut c, Duration::from_secs(3)).ok().flatten().is_none()
            {
                kill_and_reap(&mut c);
            }
        }
        if std::thread::panicking() {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("--- gatehouse log ---\n{}\n", crate::openconnect::tail(&self.log(), 120))
                    .as_bytes(),
            );
        }
    }
}

fn config(topo: &Topology, opts: &NodeOptions, dir: &Path) -> String {
    let mut extra_node = opts.node.join("\n");
    if !opts.node.iter().any(|l| l.trim_start().starts_with("mode")) {
        extra_node.push_str("\nmode = \"routed\"");
    }
    let extra_policy = opts.policy.join("\n");
    format!(
        r#"[node]
id = 1
listen = "{gw}:{PORT}"
data_dir = "{data}"
admin_listen = "127.0.0.1:8444"
metrics_listen = "127.0.0.1:9464"
users_file = "users.toml"
tun_name = "gh0"
request_timeout = "3s"
{extra_node}

[login]
max_failures_per_source = 3
max_failures_per_user = 3
failure_window = "1m"
delay = "1s"

[[pool]]
name = "default"
cidr = "{pool}"

[[group_policy]]
name = "default"
address_pool = "default"
dns = ["{lan_gw}"]
default_domain = "gatehouse.test"
split_include = ["{lan}"]
{extra_policy}

[[tunnel_group]]
name = "default"
group_policy = "default"
"#,
        gw = topo.gw_outside_ip(),
        data = dir.join("data").display(),
        pool = topo.pool_cidr(),
        lan_gw = topo.gw_lan_ip(),
        lan = topo.lan_cidr(),
    )
}

/// Run `gh-cstp-probe <gw>:<PORT> ARGS` in the client namespace; returns its result line.
pub fn probe(topo: &Topology, args: &[&str]) -> Result<String> {
    let mut cmd = topo.exec(Role::Client, [cargo_bin("gh-cstp-probe").as_os_str()]);
    cmd.arg(format!("{}:{PORT}", topo.gw_outside_ip())).args(args);
    let out = crate::process::output_with_timeout(&mut cmd, Duration::from_secs(60))?;
    if !out.status.success() {
        bail!("gh-cstp-probe {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Log in with the probe and return the `webvpn` cookie.
pub fn probe_login(topo: &Topology) -> Result<String> {
    let r = probe(topo, &["login", USER, PASSWORD])?;
    r.strip_prefix("cookie ").map(str::to_string).with_context(|| format!("login failed: {r}"))
}

/// Panic if the node's log contains any of the secrets (tokens, cookies, passwords).
pub fn assert_no_secrets(node: &GatewayNode, secrets: &[&str]) {
    let log = node.log();
    assert!(!log.is_empty(), "empty node log");
    for s in secrets.iter().filter(|s| s.len() >= 6) {
        assert!(!log.contains(s), "a secret appears in the node log");
    }
}
