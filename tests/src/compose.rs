//! The docker-compose deployment (`docker-compose.yml`, `deploy/compose.sh`) driven from a
//! test: images built from this checkout's debug binaries, a project of its own (a unique
//! name, networks in a free `172.29.x` block, configs in a temporary directory), and
//! `docker-compose down -v` on drop, also when the test panics. One compose test runs on the
//! machine at a time (a lock directory), so two checkouts testing at once do not starve each
//! other's nodes.

use crate::clock::poll_until;
use crate::process::{output_with_timeout, pid_alive, run_ok, tool};
use crate::{cargo_bin, pin_sha256_of_cert_pem};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The services of the deployment whose logs a failing test prints.
const LOGGED: [&str; 5] = ["gw1", "gw2", "gw3", "director1", "director2"];
/// Where the machine-wide lock lives.
const LOCK: &str = "/tmp/gatehouse-e2e-compose.lock";
/// The test user `deploy/compose.sh init` writes.
pub const USER: &str = crate::gatehouse::USER;
/// Its password.
pub const PASSWORD: &str = crate::gatehouse::PASSWORD;

/// True when docker and docker-compose can run the compose test here: both installed, the
/// daemon answers, /dev/net/tun exists, and busybox (busybox-static) is there for the
/// images. Otherwise, with env `CI=true`, panics; elsewhere prints `SKIPPED <test>: <reason>`
/// to stderr and returns false.
pub fn require_docker(test: &str) -> bool {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    match CHECK.get_or_init(check_docker) {
        Ok(()) => true,
        Err(reason) => {
            if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
                panic!(
                    "{test}: cannot run the compose test under CI=true: {reason} \
                     (run as root with Docker Engine and docker-compose after scripts/install-deps.sh)"
                );
            }
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
            false
        }
    }
}

fn check_docker() -> Result<(), String> {
    for t in ["docker", "docker-compose", "busybox", "openconnect", "nft", "objcopy"] {
        if crate::process::find_tool(t).is_none() {
            return Err(format!("`{t}` is not installed"));
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err("/dev/net/tun does not exist".into());
    }
    let info = output_with_timeout(
        Command::new(tool("docker")).args(["info", "--format", "{{.ServerVersion}}"]),
        Duration::from_secs(30),
    )
    .map_err(|e| format!("docker info: {e:#}"))?;
    if !info.status.success() {
        return Err(format!(
            "the docker daemon does not answer: {}",
            String::from_utf8_lossy(&info.stderr).trim()
        ));
    }
    Ok(())
}

/// The checkout's root (where docker-compose.yml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A running deployment of docker-compose.yml.
pub struct Compose {
    project: String,
    tag: String,
    dir: tempfile::TempDir,
    nets: [String; 3],
    up: bool,
    _lock: Lock,
}

impl Compose {
    /// Build the images from the debug binaries, write the configs (user `test` / `testpass`)
    /// and `docker-compose up -d` everything; returns once the containers run (not once the
    /// cluster is formed: see [`Compose::wait_formed`]).
    pub fn up(tag: &str) -> Result<Compose> {
        let lock = Lock::take(Duration::from_secs(900))?;
        let tag: String = tag.chars().filter(|c| c.is_ascii_alphanumeric()).take(8).collect();
        let project = format!("ghe2e{tag}{}", std::process::id());
        let dir = tempfile::Builder::new().prefix("gh-compose-").tempdir()?;
        let nets = free_block()?;
        let mut c = Compose { project, tag: tag.clone(), dir, nets, up: false, _lock: lock };
        c.script(&["build"], &[])?;
        c.script(
            &["init"],
            &[
                ("GATEHOUSE_NET_PUBLIC", c.nets[0].as_str()),
                ("GATEHOUSE_NET_INSIDE", c.nets[1].as_str()),
                ("GATEHOUSE_NET_CLUSTER", c.nets[2].as_str()),
                ("GATEHOUSE_USER", USER),
                ("GATEHOUSE_PASSWORD", PASSWORD),
            ],
        )?;
        c.up = true;
        c.compose(&["up", "-d"])?;
        Ok(c)
    }

    /// `deploy/compose.sh --profile debug --bin-dir … --dir … -p … --tag … ARGS`.
    fn script(&self, args: &[&str], env: &[(&str, &str)]) -> Result<String> {
        let bin_dir = cargo_bin("gatehouse").parent().context("binary directory")?.to_path_buf();
        let mut cmd = Command::new("bash");
        cmd.arg(repo_root().join("deploy/compose.sh"))
            .args(["--profile", "debug", "--bin-dir"])
            .arg(&bin_dir)
            .arg("--dir")
            .arg(self.dir.path())
            .args(["-p", &self.project, "--tag", &format!("e2e{}", self.tag)])
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_ok(&mut cmd, Duration::from_secs(300))
    }

    /// `docker-compose ARGS` for this deployment (through `deploy/compose.sh compose`).
    pub fn compose(&self, args: &[&str]) -> Result<String> {
        let mut a = vec!["compose"];
        a.extend_from_slice(args);
        self.script(&a, &[])
    }

    /// `docker ARGS`, bounded.
    pub fn docker(&self, args: &[&str]) -> Result<String> {
        run_ok(Command::new(tool("docker")).args(args), Duration::from_secs(120))
    }

    /// The container of `service` (`gw1`, `client`, …).
    pub fn container(&self, service: &str) -> String {
        format!("{}_{service}_1", self.project)
    }

    /// The docker network `public`, `inside` or `cluster` of this project.
    pub fn network(&self, name: &str) -> String {
        format!("{}_{name}", self.project)
    }

    /// `docker exec CONTAINER ARGS`, its stdout.
    pub fn exec(&self, service: &str, args: &[&str]) -> Result<String> {
        let c = self.container(service);
        let mut a = vec!["exec", c.as_str()];
        a.extend_from_slice(args);
        self.docker(&a)
    }

    /// Start `script` (sh) in `service` in the background (`docker exec -d`).
    pub fn spawn(&self, service: &str, script: &str) -> Result<()> {
        self.docker(&["exec", "-d", &self.container(service), "sh", "-c", script]).map(|_| ())
    }

    /// An address on network `net` (0 public, 1 inside, 2 cluster): `host` is its last octet.
    pub fn ip(&self, net: usize, host: u8) -> String {
        format!("{}.{host}", self.nets[net])
    }

    /// The address of node `i` on network `net`.
    pub fn node_ip(&self, net: usize, i: usize) -> String {
        self.ip(net, 10 + i as u8)
    }

    /// The public address of slot `s`.
    pub fn slot_ip(&self, s: u64) -> String {
        self.ip(0, 100 + s as u8)
    }

    /// `pin-sha256:` of the certificate every node and director presents.
    pub fn pin(&self) -> Result<String> {
        pin_sha256_of_cert_pem(&self.dir.path().join("pki/server.pem"))
    }

    /// `gatehousectl --json ARGS` on node `i` (`docker exec`).
    pub fn ctl_json(&self, i: usize, args: &[&str]) -> Result<serde_json::Value> {
        let mut a = vec!["gatehousectl", "--json"];
        a.extend_from_slice(args);
        Ok(serde_json::from_str(&self.exec(&format!("gw{i}"), &a)?)?)
    }

    /// `show vpn-sessiondb detail` of node `i`: its sessions.
    pub fn sessions(&self, i: usize) -> Result<Vec<serde_json::Value>> {
        let v = self.ctl_json(i, &["show", "vpn-sessiondb", "detail"])?;
        Ok(v["sessions"].as_array().cloned().unwrap_or_default())
    }

    /// `show failover` of node `i`: its slots.
    pub fn slots(&self, i: usize) -> Result<Vec<serde_json::Value>> {
        let v = self.ctl_json(i, &["show", "failover"])?;
        Ok(v["slots"].as_array().cloned().unwrap_or_default())
    }

    /// Wait until node `i` sees a leader, every member up and every slot owned with a running
    /// lease.
    pub fn wait_settled(&self, i: usize, timeout: Duration) -> Result<()> {
        let ok = poll_until(timeout, Duration::from_millis(250), || {
            let c = self.ctl_json(i, &["show", "cluster"]).ok()?;
            c["leader"].as_u64()?;
            let members = c["members"].as_array()?;
            if members.len() != 3 || members.iter().any(|m| m["down"] == true) {
                return None;
            }
            let slots = self.slots(i).ok()?;
            (slots.len() == 3
                && slots.iter().all(|s| {
                    s["owner"].as_u64().unwrap_or(0) > 0
                        && s["lease_left_ms"].as_u64().unwrap_or(0) > 0
                }))
            .then_some(())
        });
        if ok.is_none() {
            bail!(
                "node {i} did not settle in {timeout:?}; log:\n{}",
                self.log_tail(&format!("gw{i}"), 40)
            );
        }
        Ok(())
    }

    /// Wait until director `j` has a slot table from every node.
    pub fn wait_director(&self, j: usize, timeout: Duration) -> Result<()> {
        let ok = poll_until(timeout, Duration::from_millis(250), || {
            let log = self.log_tail(&format!("director{j}"), 10_000);
            (log.matches("slot table watch connected").count() >= 3).then_some(())
        });
        if ok.is_none() {
            bail!(
                "director {j} has no slot tables; log:\n{}",
                self.log_tail(&format!("director{j}"), 40)
            );
        }
        Ok(())
    }

    /// The last `n` lines of `service`'s log (without openraft's own lines).
    pub fn log_tail(&self, service: &str, n: usize) -> String {
        let out = output_with_timeout(
            Command::new(tool("docker")).args(["logs", &self.container(service)]),
            Duration::from_secs(30),
        );
        let text = out
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.contains("openraft::")).collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for s in LOGGED {
                let _ = writeln!(std::io::stderr(), "--- {s} log ---\n{}", self.log_tail(s, 50));
            }
        }
        if self.up {
            if let Err(e) = self.compose(&["down", "-v", "--remove-orphans", "-t", "2"]) {
                let _ = writeln!(std::io::stderr(), "docker-compose down: {e:#}");
            }
        }
        for image in ["gatehouse-node", "gatehouse-director", "gatehouse-lan", "gatehouse-client"] {
            let _ = output_with_timeout(
                Command::new(tool("docker")).args([
                    "image",
                    "rm",
                    &format!("{image}:e2e{}", self.tag),
                ]),
                Duration::from_secs(60),
            );
        }
    }
}

/// Three /24s (`172.29.b`, `172.29.b+1`, `172.29.b+2`) that no docker network and no route of
/// this host overlaps.
fn free_block() -> Result<[String; 3]> {
    let mut taken: Vec<(u32, u32)> = Vec::new(); // (network, mask)
    let ids = run_ok(
        Command::new(tool("docker")).args(["network", "ls", "-q"]),
        Duration::from_secs(30),
    )?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let mut cmd = Command::new(tool("docker"));
        cmd.args(["network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"])
            .args(&ids);
        // A network removed in between makes inspect fail; the others still print.
        let out = output_with_timeout(&mut cmd, Duration::from_secs(30))?;
        for cidr in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Some(n) = parse_cidr(cidr) {
                taken.push(n);
            }
        }
    }
    // /proc/net/route: destination and mask as the kernel keeps them (network byte order),
    // printed as native words.
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    for l in routes.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() > 7 {
            if let (Ok(d), Ok(m)) = (u32::from_str_radix(f[1], 16), u32::from_str_radix(f[7], 16)) {
                if m != 0 {
                    taken.push((
                        u32::from_be_bytes(d.to_le_bytes()),
                        u32::from_be_bytes(m.to_le_bytes()),
                    ));
                }
            }
        }
    }
    for b in (40u32..=240).step_by(10) {
        let ours: Vec<u32> = (0..3).map(|k| (172 << 24) | (29 << 16) | ((b + k) << 8)).collect();
        let clash = ours.iter().any(|&net| {
            taken.iter().any(|&(tn, tm)| {
                let m = tm & 0xffff_ff00;
                (net & m) == (tn & m)
            })
        });
        if !clash {
            return Ok([0, 1, 2].map(|k| format!("172.29.{}", b + k)));
        }
    }
    bail!("no free 172.29.x block for the compose test's networks")
}

fn parse_cidr(s: &str) -> Option<(u32, u32)> {
    let (a, l) = s.split_once('/')?;
    let a: std::net::Ipv4Addr = a.parse().ok()?;
    let l: u32 = l.parse().ok()?;
    let mask = if l == 0 { 0 } else { u32::MAX << (32 - l) };
    Some((u32::from(a) & mask, mask))
}

/// A lock directory held while a compose test runs (taken over from a holder that died).
struct Lock;

impl Lock {
    fn take(timeout: Duration) -> Result<Lock> {
        let me = std::process::id();
        let got = poll_until(timeout, Duration::from_millis(500), || {
            if std::fs::create_dir(LOCK).is_ok() {
                std::fs::write(Path::new(LOCK).join("pid"), me.to_string()).ok()?;
                return Some(());
            }
            let holder = std::fs::read_to_string(Path::new(LOCK).join("pid")).unwrap_or_default();
            match holder.trim().parse::<u32>() {
                Ok(pid) if pid_alive(pid) => None,
                // No pid yet: its holder may be writing it; gone for long: stale.
                Err(_) if !stale(Path::new(LOCK)) => None,
                _ => {
                    let _ = std::fs::remove_dir_all(LOCK);
                    None
                }
            }
        });
        got.map(|_| Lock).context("another compose test holds /tmp/gatehouse-e2e-compose.lock")
    }
}

fn stale(p: &Path) -> bool {
    let age = std::fs::metadata(p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .unwrap_or_default();
    age > Duration::from_secs(10)
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(LOCK);
    }
}
