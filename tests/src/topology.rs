//! Three network namespaces joined by veth pairs:
//!
//! ```text
//!   client ns                     gw ns                          lan ns
//!   10.{200+k}.0.2/24 --veth-- 10.{200+k}.0.1 | 10.{210+k}.0.1 --veth-- 10.{210+k}.0.10/24
//!   (openconnect, tun)         (gateway, ip_forward=1)                  (route POOL via gw)
//! ```
//!
//! No default routes anywhere, so nothing can leave the namespaces. The lan host routes the VPN
//! pool back through the gw (routed mode, no NAT).

use std::ffi::OsStr;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};

use crate::process::{self, pid_alive, run_ok, tool};

/// Prefix of every namespace this crate creates (`gh-<tag>-<pid>-<seq>-<c|g|l>`).
pub const NS_PREFIX: &str = "gh-";
/// The veth end between client and gw, in both of those namespaces.
pub const OUTSIDE_IF: &str = "gh-out";
/// The veth end between gw and lan, in both of those namespaces.
pub const LAN_IF: &str = "gh-lan";

const CMD_TIMEOUT: Duration = Duration::from_secs(20);

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Which namespace of a [`Topology`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Where openconnect runs.
    Client,
    /// Where the gateway under test runs; forwards between the outside and the lan.
    Gw,
    /// The protected network's host (ping / iperf3 target).
    Lan,
}

impl Role {
    fn letter(self) -> char {
        match self {
            Role::Client => 'c',
            Role::Gw => 'g',
            Role::Lan => 'l',
        }
    }
}

/// A client ↔ gw ↔ lan namespace topology; deleted (with every process inside) on drop.
#[derive(Debug)]
pub struct Topology {
    k: u8,
    pool: String,
    client: String,
    gw: String,
    lan: String,
    /// Namespaces that exist and must be deleted on drop (creation may stop halfway).
    created: Vec<String>,
}

impl Topology {
    /// Creates the three namespaces and their links. `tag` names them (alphanumerics, first 8
    /// kept); `k` (0..=9) selects the address block so topologies of parallel tests differ;
    /// `pool_cidr` is the VPN address pool (e.g. [`default_pool`]) that the lan host routes back
    /// via the gw.
    pub fn new(tag: &str, k: u8, pool_cidr: &str) -> Result<Topology> {
        ensure!(k <= 9, "topology number k must be 0..=9, got {k}");
        parse_cidr(pool_cidr).with_context(|| format!("pool {pool_cidr:?}"))?;
        cleanup_stale();
        let tag: String = tag.chars().filter(|c| c.is_ascii_alphanumeric()).take(8).collect();
        let tag = if tag.is_empty() { "t".to_string() } else { tag };
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let base = format!("{NS_PREFIX}{tag}-{}-{seq}-", std::process::id());
        let mut t = Topology {
            k,
            pool: pool_cidr.to_string(),
            client: format!("{base}{}", Role::Client.letter()),
            gw: format!("{base}{}", Role::Gw.letter()),
            lan: format!("{base}{}", Role::Lan.letter()),
            created: Vec::new(),
        };
        // On any error below, `t` is dropped and removes what was created so far.
        t.build().with_context(|| format!("building topology {base}*"))?;
        Ok(t)
    }

    fn build(&mut self) -> Result<()> {
        for ns in [self.client.clone(), self.gw.clone(), self.lan.clone()] {
            run_ok(Command::new(tool("ip")).args(["netns", "add", &ns]), CMD_TIMEOUT)?;
            self.created.push(ns.clone());
            self.ip(&ns, &["link", "set", "lo", "up"])?;
        }
        let (c, g, l) = (self.client.clone(), self.gw.clone(), self.lan.clone());
        // Create each veth pair directly inside its namespaces: no name clash in the host ns.
        #[rustfmt::skip]
        run_ok(Command::new(tool("ip")).args([
            "link", "add", OUTSIDE_IF, "netns", &c, "type", "veth", "peer", "name", OUTSIDE_IF,
            "netns", &g]), CMD_TIMEOUT)?;
        #[rustfmt::skip]
        run_ok(Command::new(tool("ip")).args([
            "link", "add", LAN_IF, "netns", &g, "type", "veth", "peer", "name", LAN_IF,
            "netns", &l]), CMD_TIMEOUT)?;
        let addrs = [
            (&c, OUTSIDE_IF, self.client_ip()),
            (&g, OUTSIDE_IF, self.gw_outside_ip()),
            (&g, LAN_IF, self.gw_lan_ip()),
            (&l, LAN_IF, self.lan_ip()),
        ];
        for (ns, dev, ip) in addrs {
            self.ip(ns, &["addr", "add", &format!("{ip}/24"), "dev", dev])?;
            self.ip(ns, &["link", "set", dev, "up"])?;
        }
        run_ok(&mut self.exec(Role::Gw, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]), CMD_TIMEOUT)?;
        self.ip(&l, &["route", "add", &self.pool.clone(), "via", &self.gw_lan_ip().to_string()])?;
        // Both links must carry traffic before a test starts (veth carrier comes up async).
        for (role, dst) in [(Role::Client, self.gw_outside_ip()), (Role::Lan, self.gw_lan_ip())] {
            let ok =
                crate::clock::poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
                    let o = process::output_with_timeout(
                        &mut self.exec(role, ["ping", "-n", "-q", "-c1", "-W1", &dst.to_string()]),
                        Duration::from_secs(3),
                    );
                    matches!(o, Ok(o) if o.status.success()).then_some(())
                });
            if ok.is_none() {
                bail!("{:?} namespace cannot ping {dst}", role);
            }
        }
        Ok(())
    }

    fn ip(&self, ns: &str, args: &[&str]) -> Result<String> {
        run_ok(Command::new(tool("ip")).arg("-n").arg(ns).args(args), CMD_TIMEOUT)
    }

    /// `ip netns exec <ns> args...`. `ip` execs the program, so a spawned child's pid is the
    /// program's own pid.
    pub fn exec<I, S>(&self, role: Role, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(tool("ip"));
        cmd.args(["netns", "exec", self.ns_name(role)]).args(args);
        cmd
    }

    /// Runs `args` in the namespace (20 s limit) and returns stdout; non-zero exit is an error.
    pub fn run<I, S>(&self, role: Role, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_ok(&mut self.exec(role, args), CMD_TIMEOUT)
    }

    /// The namespace's name (for `ip -n`, `ip netns exec`).
    pub fn ns_name(&self, role: Role) -> &str {
        match role {
            Role::Client => &self.client,
            Role::Gw => &self.gw,
            Role::Lan => &self.lan,
        }
    }

    /// The topology number given to [`Topology::new`].
    pub fn k(&self) -> u8 {
        self.k
    }
    /// The VPN pool given to [`Topology::new`].
    pub fn pool_cidr(&self) -> &str {
        &self.pool
    }
    /// The client's address, 10.{200+k}.0.2.
    pub fn client_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 200 + self.k, 0, 2)
    }
    /// The gw's address facing the client (what openconnect connects to), 10.{200+k}.0.1.
    pub fn gw_outside_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 200 + self.k, 0, 1)
    }
    /// The gw's address on the lan, 10.{210+k}.0.1.
    pub fn gw_lan_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 210 + self.k, 0, 1)
    }
    /// The lan host, 10.{210+k}.0.10.
    pub fn lan_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 210 + self.k, 0, 10)
    }
    /// The client↔gw network, 10.{200+k}.0.0/24.
    pub fn outside_cidr(&self) -> String {
        format!("10.{}.0.0/24", 200 + u16::from(self.k))
    }
    /// The lan network the VPN routes to, 10.{210+k}.0.0/24.
    pub fn lan_cidr(&self) -> String {
        format!("10.{}.0.0/24", 210 + u16::from(self.k))
    }

    /// Pids of every process in the namespace (`ip netns pids`).
    pub fn pids(&self, role: Role) -> Vec<u32> {
        ns_pids(self.ns_name(role))
    }
}

/// A pool for topology `k` that no topology address overlaps: 10.{200+k}.128.0/24.
pub fn default_pool(k: u8) -> String {
    format!("10.{}.128.0/24", 200 + u16::from(k))
}

impl Drop for Topology {
    fn drop(&mut self) {
        delete_namespaces(&self.created);
    }
}

fn ns_pids(ns: &str) -> Vec<u32> {
    let o = process::output_with_timeout(
        Command::new(tool("ip")).args(["netns", "pids", ns]),
        Duration::from_secs(10),
    );
    match o {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// SIGKILLs every process inside `names` (the pids came from our own namespaces), waits a
/// little for them to go, and deletes the namespaces.
fn delete_namespaces(names: &[String]) {
    for ns in names {
        for pid in ns_pids(ns) {
            let _ = process::signal_pid(pid, "KILL");
        }
    }
    for ns in names {
        crate::clock::poll_until(Duration::from_secs(3), Duration::from_millis(20), || {
            ns_pids(ns).is_empty().then_some(())
        });
        let r = run_ok(Command::new(tool("ip")).args(["netns", "del", ns]), CMD_TIMEOUT);
        if let Err(e) = r {
            eprintln!("gatehouse-tests: could not delete namespace {ns}: {e:#}");
        }
    }
}

/// Deletes namespaces left by earlier runs of this crate whose process is gone (a SIGKILLed
/// test run cannot run its `Drop`s).
fn cleanup_stale() {
    let Ok(list) = run_ok(Command::new(tool("ip")).args(["netns", "list"]), CMD_TIMEOUT) else {
        return;
    };
    let stale: Vec<String> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(NS_PREFIX))
        .filter(|n| {
            // gh-<tag>-<pid>-<seq>-<role>
            let parts: Vec<&str> = n.split('-').collect();
            parts.len() == 5 && parts[2].parse::<u32>().map(|pid| !pid_alive(pid)).unwrap_or(false)
        })
        .map(str::to_string)
        .collect();
    if !stale.is_empty() {
        let _ = writeln!(std::io::stderr(), "gatehouse-tests: removing stale namespaces {stale:?}");
        delete_namespaces(&stale);
    }
}

/// Parses `a.b.c.d/len`.
pub fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8)> {
    let (a, l) = s.split_once('/').context("expected a.b.c.d/len")?;
    let a: Ipv4Addr = a.parse().context("bad address")?;
    let l: u8 = l.parse().context("bad prefix length")?;
    ensure!(l <= 32, "prefix length {l} > 32");
    Ok((a, l))
}
