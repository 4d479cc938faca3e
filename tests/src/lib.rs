//! Test support for Gatehouse's end-to-end tests: network-namespace topologies, the real
//! `openconnect` client, traffic helpers and the workspace's binaries.
//!
//! Everything runs inside namespaces this crate creates (10.200.0.0–10.219.255.255 exist only
//! there, and no namespace has a default route); every wait is bounded; namespaces and the
//! processes in them go away on drop, also when a test panics.
//!
//! ```no_run
//! use std::time::Duration;
//! use gatehouse_tests::{require_root, Topology, default_pool, Openconnect, ping, Role};
//! # fn main() -> anyhow::Result<()> {
//! if !require_root("connects") { return Ok(()); }
//! let topo = Topology::new("conn", 0, &default_pool(0))?;
//! // ... start the gateway in topo.exec(Role::Gw, [...]) ...
//! # let pin = String::new();
//! let mut oc = Openconnect::builder(&topo, topo.gw_outside_ip(), 443, &pin).spawn()?;
//! let ip = oc.wait_event("connect", Duration::from_secs(20)).expect("connected");
//! let p = ping(&topo, Role::Client, topo.lan_ip(), 3, Duration::from_millis(200))?;
//! assert!(p.all_received(), "{}", p.output);
//! # Ok(()) }
//! ```

pub mod anyconnect;
pub mod clock;
pub mod cluster;
pub mod compose;
pub mod failover;
pub mod gatehouse;
pub mod net;
pub mod ocserv;
pub mod openconnect;
pub mod pki;
pub mod process;
pub mod topology;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

pub use gatehouse::{GatewayNode, NodeOptions};
pub use net::{
    ping, ss_kill, tcp_transfer, tcp_transfer_with, Direction, PingResult, TRANSFER_PORT,
};
pub use ocserv::{Ocserv, OcservConfig};
pub use openconnect::{AuthInfo, Openconnect, OpenconnectBuilder, Signal};
pub use pki::{pin_sha256_of_cert_pem, self_signed_cert, CertFiles};
pub use topology::{default_pool, Role, Topology};

/// True when this process can run the end-to-end tests: root, `ip netns add` works, /dev/net/tun
/// exists, and `openconnect` is installed. Otherwise, with env `CI=true`, panics (CI must run
/// these tests, never skip them); elsewhere prints `SKIPPED <test>: <reason>` to stderr and
/// returns false, and the caller returns early.
pub fn require_root(test: &str) -> bool {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    match CHECK.get_or_init(check_environment) {
        Ok(()) => true,
        Err(reason) => {
            if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
                panic!(
                    "{test}: cannot run end-to-end test under CI=true: {reason} \
                     (run as root after scripts/install-deps.sh)"
                );
            }
            // Straight to fd 2: libtest captures `eprintln!` of passing tests, and a skip must
            // be visible.
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
            false
        }
    }
}

fn check_environment() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    if euid != "0" {
        return Err(format!("not root (euid {euid})"));
    }
    if process::find_tool("openconnect").is_none() {
        return Err("openconnect is not installed (scripts/install-deps.sh)".into());
    }
    if process::find_tool("ip").is_none() {
        return Err("iproute2 (`ip`) is not installed".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err("/dev/net/tun does not exist".into());
    }
    let probe = format!("gh-probe-{}", std::process::id());
    let add = process::run_ok(
        Command::new(process::tool("ip")).args(["netns", "add", &probe]),
        Duration::from_secs(10),
    );
    if let Err(e) = add {
        return Err(format!("`ip netns add` does not work: {e:#}"));
    }
    let _ = process::run_ok(
        Command::new(process::tool("ip")).args(["netns", "del", &probe]),
        Duration::from_secs(10),
    );
    Ok(())
}

/// Path of the workspace binary `name` (e.g. `gatehouse-node`). Uses `CARGO_BIN_EXE_<name>`
/// when set, else the directory of the running test executable (`target/<profile>/deps/..`),
/// else `$CARGO_TARGET_DIR/debug` or `target/debug`. Panics with a hint if it is not built.
pub fn cargo_bin(name: &str) -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os(format!("CARGO_BIN_EXE_{name}")) {
        candidates.push(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let profile_dir = if dir.ends_with("deps") { dir.parent() } else { Some(dir) };
            if let Some(d) = profile_dir {
                candidates.push(d.join(name));
            }
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
    candidates.push(target.join("debug").join(name));
    match candidates.iter().find(|p| p.is_file()) {
        Some(p) => p.clone(),
        None => panic!(
            "binary `{name}` is not built (looked at {candidates:?}); \
             run `cargo build --bins` first (same CARGO_TARGET_DIR and profile as the tests)"
        ),
    }
}
