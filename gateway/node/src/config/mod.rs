//! One TOML file per node. Parsed into raw serde structs, then validated into [`Config`];
//! every error names the file, the key and what is accepted (exit code 64 in `main`).
//! One file per section: `raw` (serde), `policy` (pools, group policies, tunnel groups),
//! `cluster`, `slots`; the `[node]` and `[login]` sections are checked here.

mod cluster;
mod demo;
mod policy;
mod raw;
mod slots;
#[cfg(test)]
mod tests;

pub use cluster::ClusterConfig;
pub use demo::demo_config;
pub use slots::SlotsConfig;

use gatehouse_core::{GroupPolicy, PoolRange};
use raw::Raw;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The shared config helpers, kept at their old paths (`crate::config::parse_toml`, ...).
pub use gatehouse_runtime::config::{
    parse_cidr, parse_duration, parse_toml, read_file, relative_to, ConfigError,
};

/// How the pool reaches the inside network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsideMode {
    /// The inside network routes the pool to this node.
    Routed,
    /// Masquerade the pool behind the inside interface's address.
    Nat {
        /// The inside interface.
        interface: String,
    },
}

/// Login throttling.
#[derive(Debug, Clone)]
pub struct LoginLimits {
    /// Failures from one source address tolerated within `window` before slowing down.
    pub max_failures_per_source: u32,
    /// Failures for one username tolerated within `window` before slowing down.
    pub max_failures_per_user: u32,
    /// Window over which failures are counted.
    pub window: Duration,
    /// Base delay once over the limit; doubles per further failure, capped at 32 × base.
    pub delay: Duration,
}

/// A tunnel group (connection profile).
#[derive(Debug, Clone)]
pub struct TunnelGroup {
    /// Name shown in the group list.
    pub name: String,
    /// Default group policy.
    pub group_policy: String,
}

/// The validated node configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Path the config was read from.
    pub file: PathBuf,
    /// Raft node id.
    pub node_id: u64,
    /// Client-facing TLS listener.
    pub listen: SocketAddr,
    /// Data directory (sled, generated certificate).
    pub data_dir: PathBuf,
    /// Certificate and key PEM files; `None` = self-signed, generated in the data dir.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Local admin gRPC listener.
    pub admin_listen: SocketAddr,
    /// Prometheus metrics listener.
    pub metrics_listen: Option<SocketAddr>,
    /// Users file (argon2id hashes).
    pub users_file: PathBuf,
    /// Tun device name.
    pub tun_name: String,
    /// Tun MTU; also the CSTP MTU offered to clients.
    pub mtu: u16,
    /// Routed or NAT.
    pub inside: InsideMode,
    /// Bound for the TLS handshake and for each HTTP request head and body.
    pub request_timeout: Duration,
    /// Banner shown after login.
    pub banner: Option<String>,
    /// Login throttling.
    pub login: LoginLimits,
    /// Address pools by name.
    pub pools: BTreeMap<String, PoolRange>,
    /// Each pool's network and prefix length, for routes and the netmask sent to clients.
    pub pool_prefixes: BTreeMap<String, (Ipv4Addr, u8)>,
    /// Group policies by name.
    pub group_policies: BTreeMap<String, GroupPolicy>,
    /// Tunnel groups in config order; the first is the default.
    pub tunnel_groups: Vec<TunnelGroup>,
    /// Cluster settings; `None` runs a single-node group.
    pub cluster: Option<ClusterConfig>,
    /// Slots; `None` without `[[slot]]` entries.
    pub slots: Option<SlotsConfig>,
}

/// What every section's checks share: the file (for error messages) and its directory (for
/// relative paths).
pub(crate) struct Cx<'a> {
    path: &'a Path,
    file: String,
}

impl Cx<'_> {
    /// An error at `key`.
    fn err(&self, key: &str, message: String) -> ConfigError {
        ConfigError { file: self.file.clone(), key: key.to_string(), message }
    }

    /// A duration at `key`, `default` when absent; `"none"` is `None`.
    fn dur(
        &self,
        key: &str,
        v: &Option<String>,
        default: Option<Duration>,
    ) -> Result<Option<Duration>, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) => parse_duration(s).map_err(|m| self.err(key, m)),
        }
    }

    /// A path relative to the config file's directory.
    fn rel(&self, p: &str) -> PathBuf {
        relative_to(self.path, p)
    }
}

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::parse(path, &read_file(path)?)
    }

    /// Validate config text; `path` names the file in errors and anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let cx = Cx { path, file: path.display().to_string() };
        let err = |key: &str, message: String| cx.err(key, message);
        let raw: Raw = parse_toml(path, text)?;
        let rel = |p: &str| cx.rel(p);
        let n = &raw.node;
        let sock =
            |key: &str, v: &Option<String>, default: &str| -> Result<SocketAddr, ConfigError> {
                let s = v.as_deref().unwrap_or(default);
                s.parse().map_err(|_| {
                    err(key, format!("{s:?} is not an address:port like \"0.0.0.0:443\""))
                })
            };
        let dur =
            |key: &str, v: &Option<String>, default: Option<Duration>| cx.dur(key, v, default);
        let listen = sock("node.listen", &n.listen, "0.0.0.0:443")?;
        let admin_listen = sock("node.admin_listen", &n.admin_listen, "127.0.0.1:8444")?;
        let metrics_listen = match &n.metrics_listen {
            Some(s) if s == "none" => None,
            other => Some(sock("node.metrics_listen", other, "127.0.0.1:9464")?),
        };
        if !admin_listen.ip().is_loopback() {
            return Err(err(
                "node.admin_listen",
                "the admin API has no authentication; it must listen on a loopback address".into(),
            ));
        }
        let tls = match (&n.tls_cert, &n.tls_key) {
            (Some(c), Some(k)) => Some((rel(c), rel(k))),
            (None, None) => None,
            _ => {
                return Err(err(
                    "node.tls_cert",
                    "set both tls_cert and tls_key, or neither (self-signed)".into(),
                ))
            }
        };
        let inside = match n.mode.as_deref().unwrap_or("routed") {
            "routed" => InsideMode::Routed,
            "nat" => InsideMode::Nat {
                interface: n.nat_interface.clone().ok_or_else(|| {
                    err(
                        "node.nat_interface",
                        "mode = \"nat\" needs nat_interface (the inside interface)".into(),
                    )
                })?,
            },
            m => {
                return Err(err(
                    "node.mode",
                    format!("{m:?}: accepted values are \"routed\" and \"nat\""),
                ))
            }
        };
        let mtu = n.mtu.unwrap_or(1399);
        if !(576..=9000).contains(&mtu) {
            return Err(err("node.mtu", format!("{mtu}: accepted range is 576-9000")));
        }
        let tun_name = n.tun_name.clone().unwrap_or_else(|| "gh0".into());
        if tun_name.is_empty()
            || tun_name.len() > 15
            || !tun_name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(err(
                "node.tun_name",
                format!("{tun_name:?}: 1-15 characters of [A-Za-z0-9_-]"),
            ));
        }
        let request_timeout =
            dur("node.request_timeout", &n.request_timeout, Some(Duration::from_secs(10)))?
                .ok_or_else(|| {
                    err(
                        "node.request_timeout",
                        "must not be \"none\": it bounds slow clients".into(),
                    )
                })?;
        let l = &raw.login;
        let login = LoginLimits {
            max_failures_per_source: l.max_failures_per_source.unwrap_or(5),
            max_failures_per_user: l.max_failures_per_user.unwrap_or(5),
            window: dur("login.failure_window", &l.failure_window, Some(Duration::from_secs(300)))?
                .unwrap_or(Duration::from_secs(300)),
            delay: dur("login.delay", &l.delay, Some(Duration::from_secs(1)))?.unwrap_or_default(),
        };

        let policy::Policies { pools, mut pool_prefixes, group_policies, tunnel_groups } =
            policy::parse(&cx, &raw)?;
        let node_id = n.id.unwrap_or(1);
        let cluster = cluster::parse(&cx, raw.cluster.as_ref(), node_id)?;
        let slots = slots::parse(&cx, &raw, cluster.as_ref(), &mut pool_prefixes)?;
        Ok(Config {
            slots,
            cluster,
            file: path.to_path_buf(),
            node_id,
            listen,
            data_dir: rel(n.data_dir.as_deref().unwrap_or("data")),
            tls,
            admin_listen,
            metrics_listen,
            users_file: rel(n.users_file.as_deref().unwrap_or("users.toml")),
            tun_name,
            mtu,
            inside,
            request_timeout,
            banner: n.banner.clone(),
            login,
            pools,
            pool_prefixes,
            group_policies,
            tunnel_groups,
        })
    }

    /// The policy a tunnel group logs users in with.
    pub fn policy_of(&self, tunnel_group: &str) -> Option<&GroupPolicy> {
        let tg = self.tunnel_groups.iter().find(|t| t.name == tunnel_group)?;
        self.group_policies.get(&tg.group_policy)
    }
}
