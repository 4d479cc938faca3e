//! One TOML file per node. Parsed into raw serde structs, then validated into [`Config`];
//! every error names the file, the key and what is accepted (exit code 64 in `main`).

use gatehouse_core::{GroupPolicy, PoolRange};
use serde::Deserialize;
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

/// The `[cluster]` section: how this node reaches its peers.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Cluster name (Raft's cluster name; must match on every node).
    pub name: String,
    /// Cluster port (Raft and forwarded writes, mutual TLS).
    pub listen: SocketAddr,
    /// The cluster CA certificate (PEM).
    pub ca_cert: PathBuf,
    /// This node's certificate, naming `node-<id>` (PEM).
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// The other initial members: id → cluster address.
    pub peers: BTreeMap<u64, SocketAddr>,
    /// How often this node proposes its heartbeat.
    pub heartbeat: Duration,
    /// A member silent for this long is declared down by the leader (its tunnels detach).
    pub node_down_after: Duration,
    /// A write that has not committed after this long fails (e.g. in a minority partition).
    pub write_timeout: Duration,
    /// How often the Raft leader sends heartbeats (AppendEntries) to the followers.
    pub raft_heartbeat: Duration,
    /// Followers wait a random time in `[min, max)` beyond openraft's leader lease (`max`)
    /// without a heartbeat before they start an election.
    pub election_timeout: (Duration, Duration),
}

impl ClusterConfig {
    /// Default `raft_heartbeat`.
    pub const RAFT_HEARTBEAT: Duration = Duration::from_millis(40);
    /// Default `election_timeout_min` and `election_timeout_max`.
    pub const ELECTION_TIMEOUT: (Duration, Duration) =
        (Duration::from_millis(120), Duration::from_millis(170));

    /// The longest a surviving follower can take to start an election after the leader's
    /// last heartbeat: openraft (0.9) refuses to elect before the leader lease (= the maximum
    /// election timeout) plus its own election timeout, checked on a tick of 1.5 heartbeats.
    pub fn worst_election_start(&self) -> Duration {
        let (_, max) = self.election_timeout;
        max + max + self.raft_heartbeat * 3 / 2
    }
}

/// Slots (DESIGN.md §5) and their lease timing.
#[derive(Debug, Clone)]
pub struct SlotsConfig {
    /// Slot specs by id.
    pub slots: Vec<gatehouse_core::SlotSpec>,
    /// Interface the public addresses go on.
    pub public_interface: String,
    /// Interface the inside addresses go on.
    pub inside_interface: String,
    /// How often an owner renews its lease.
    pub renew_interval: Duration,
    /// Lease length.
    pub lease: Duration,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    node: RawNode,
    #[serde(default)]
    login: RawLogin,
    #[serde(default)]
    pool: Vec<RawPool>,
    #[serde(default)]
    group_policy: Vec<RawPolicy>,
    #[serde(default)]
    tunnel_group: Vec<RawTunnelGroup>,
    cluster: Option<RawCluster>,
    #[serde(default)]
    slot: Vec<RawSlot>,
    slots: Option<RawSlots>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlot {
    id: u32,
    public_address: String,
    inside_address: Option<String>,
    pool: String,
    owner: u64,
    standby: u64,
    capacity: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSlots {
    public_interface: Option<String>,
    inside_interface: Option<String>,
    renew_interval: Option<String>,
    lease: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: String,
    listen: String,
    ca_cert: String,
    cert: String,
    key: String,
    #[serde(default)]
    peers: Vec<RawPeer>,
    heartbeat: Option<String>,
    node_down_after: Option<String>,
    write_timeout: Option<String>,
    raft_heartbeat: Option<String>,
    election_timeout_min: Option<String>,
    election_timeout_max: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    id: u64,
    addr: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: Option<u64>,
    listen: Option<String>,
    data_dir: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    admin_listen: Option<String>,
    metrics_listen: Option<String>,
    users_file: Option<String>,
    tun_name: Option<String>,
    mtu: Option<u16>,
    mode: Option<String>,
    nat_interface: Option<String>,
    request_timeout: Option<String>,
    banner: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLogin {
    max_failures_per_source: Option<u32>,
    max_failures_per_user: Option<u32>,
    failure_window: Option<String>,
    delay: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    name: String,
    cidr: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: String,
    address_pool: String,
    #[serde(default)]
    dns: Vec<String>,
    default_domain: Option<String>,
    #[serde(default)]
    split_include: Vec<String>,
    dpd_interval_gateway: Option<String>,
    dpd_interval_client: Option<String>,
    keepalive: Option<String>,
    idle_timeout: Option<String>,
    disconnected_timeout: Option<String>,
    max_connect_time: Option<String>,
    simultaneous_logins: Option<u32>,
    auto_reconnect: Option<bool>,
    auto_reconnect_behavior: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTunnelGroup {
    name: String,
    group_policy: String,
}

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::parse(path, &read_file(path)?)
    }

    /// Validate config text; `path` names the file in errors and anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let err = |key: &str, message: String| ConfigError {
            file: file.clone(),
            key: key.to_string(),
            message,
        };
        let raw: Raw = parse_toml(path, text)?;
        let rel = |p: &str| relative_to(path, p);
        let n = &raw.node;
        let sock =
            |key: &str, v: &Option<String>, default: &str| -> Result<SocketAddr, ConfigError> {
                let s = v.as_deref().unwrap_or(default);
                s.parse().map_err(|_| {
                    err(key, format!("{s:?} is not an address:port like \"0.0.0.0:443\""))
                })
            };
        let dur = |key: &str,
                   v: &Option<String>,
                   default: Option<Duration>|
         -> Result<Option<Duration>, ConfigError> {
            match v {
                None => Ok(default),
                Some(s) => parse_duration(s).map_err(|m| err(key, m)),
            }
        };
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

        let mut pools = BTreeMap::new();
        let mut pool_prefixes = BTreeMap::new();
        for (i, p) in raw.pool.iter().enumerate() {
            let key = format!("pool[{i}].cidr");
            let (net, len) = parse_cidr(&p.cidr).map_err(|m| err(&key, m))?;
            let range = PoolRange::from_cidr(&p.name, net, len)
                .ok_or_else(|| err(&key, format!("/{len} is too small; use /30 or larger")))?;
            pool_prefixes.insert(p.name.clone(), (net, len));
            if pools.insert(p.name.clone(), range).is_some() {
                return Err(err(
                    &format!("pool[{i}].name"),
                    format!("{:?} is defined twice", p.name),
                ));
            }
        }
        if pools.is_empty() {
            return Err(err("pool", "at least one [[pool]] with name and cidr is required".into()));
        }
        let mut group_policies = BTreeMap::new();
        for (i, p) in raw.group_policy.iter().enumerate() {
            let k = |f: &str| format!("group_policy[{i}].{f}");
            if !pools.contains_key(&p.address_pool) {
                return Err(err(
                    &k("address_pool"),
                    format!(
                        "{:?} is not a [[pool]] name; defined: {:?}",
                        p.address_pool,
                        pools.keys().collect::<Vec<_>>()
                    ),
                ));
            }
            let mut g = GroupPolicy::with_defaults(&p.name, &p.address_pool);
            for (j, d) in p.dns.iter().enumerate() {
                g.dns.push(d.parse().map_err(|_| {
                    err(&format!("{}[{j}]", k("dns")), format!("{d:?} is not an IPv4 address"))
                })?);
            }
            g.default_domain = p.default_domain.clone();
            for (j, r) in p.split_include.iter().enumerate() {
                g.split_include.push(
                    parse_cidr(r).map_err(|m| err(&format!("{}[{j}]", k("split_include")), m))?,
                );
            }
            g.dpd_interval_gateway =
                dur(&k("dpd_interval_gateway"), &p.dpd_interval_gateway, g.dpd_interval_gateway)?;
            g.dpd_interval_client =
                dur(&k("dpd_interval_client"), &p.dpd_interval_client, g.dpd_interval_client)?;
            g.keepalive = dur(&k("keepalive"), &p.keepalive, g.keepalive)?;
            g.idle_timeout = dur(&k("idle_timeout"), &p.idle_timeout, g.idle_timeout)?;
            // Disconnected timeout = idle timeout unless set (DESIGN.md §2.4).
            g.disconnected_timeout =
                dur(&k("disconnected_timeout"), &p.disconnected_timeout, g.idle_timeout)?;
            g.max_connect_time = dur(&k("max_connect_time"), &p.max_connect_time, None)?;
            g.simultaneous_logins = p.simultaneous_logins.unwrap_or(3);
            if g.simultaneous_logins == 0 {
                return Err(err(
                    &k("simultaneous_logins"),
                    "0 would refuse every login; accepted: 1 or more".into(),
                ));
            }
            g.auto_reconnect = p.auto_reconnect.unwrap_or(true);
            if let Some(b) = &p.auto_reconnect_behavior {
                if b != "reconnect-after-resume" && b != "disconnect-on-suspend" {
                    return Err(err(&k("auto_reconnect_behavior"), format!("{b:?}: accepted \"reconnect-after-resume\" or \"disconnect-on-suspend\"")));
                }
                g.auto_reconnect_behavior = b.clone();
            }
            if group_policies.insert(p.name.clone(), g).is_some() {
                return Err(err(&k("name"), format!("{:?} is defined twice", p.name)));
            }
        }
        if group_policies.is_empty() {
            return Err(err("group_policy", "at least one [[group_policy]] is required".into()));
        }
        let mut tunnel_groups = Vec::new();
        for (i, t) in raw.tunnel_group.iter().enumerate() {
            if !group_policies.contains_key(&t.group_policy) {
                return Err(err(
                    &format!("tunnel_group[{i}].group_policy"),
                    format!("{:?} is not a [[group_policy]] name", t.group_policy),
                ));
            }
            if tunnel_groups.iter().any(|g: &TunnelGroup| g.name == t.name) {
                return Err(err(
                    &format!("tunnel_group[{i}].name"),
                    format!("{:?} is defined twice", t.name),
                ));
            }
            tunnel_groups
                .push(TunnelGroup { name: t.name.clone(), group_policy: t.group_policy.clone() });
        }
        if tunnel_groups.is_empty() {
            return Err(err("tunnel_group", "at least one [[tunnel_group]] is required".into()));
        }
        let node_id = n.id.unwrap_or(1);
        let cluster = match &raw.cluster {
            None => None,
            Some(c) => {
                let listen = c.listen.parse().map_err(|_| {
                    err(
                        "cluster.listen",
                        format!("{:?} is not an address:port like \"10.0.0.1:7443\"", c.listen),
                    )
                })?;
                let mut peers = BTreeMap::new();
                for (i, p) in c.peers.iter().enumerate() {
                    let a: SocketAddr = p.addr.parse().map_err(|_| {
                        err(
                            &format!("cluster.peers[{i}].addr"),
                            format!("{:?} is not an address:port", p.addr),
                        )
                    })?;
                    if p.id == node_id {
                        return Err(err(
                            &format!("cluster.peers[{i}].id"),
                            format!(
                                "{} is this node's own id (node.id); list only the other members",
                                p.id
                            ),
                        ));
                    }
                    if peers.insert(p.id, a).is_some() {
                        return Err(err(
                            &format!("cluster.peers[{i}].id"),
                            format!("{} is listed twice", p.id),
                        ));
                    }
                }
                let d =
                    |key: &str, v: &Option<String>, def: u64| -> Result<Duration, ConfigError> {
                        Ok(dur(key, v, Some(Duration::from_millis(def)))?
                            .unwrap_or(Duration::from_millis(def)))
                    };
                let ms = |d: Duration| d.as_millis() as u64;
                let (emin, emax) = ClusterConfig::ELECTION_TIMEOUT;
                let raft_heartbeat = d(
                    "cluster.raft_heartbeat",
                    &c.raft_heartbeat,
                    ms(ClusterConfig::RAFT_HEARTBEAT),
                )?;
                let emin = d("cluster.election_timeout_min", &c.election_timeout_min, ms(emin))?;
                let emax = d("cluster.election_timeout_max", &c.election_timeout_max, ms(emax))?;
                if raft_heartbeat.is_zero() {
                    return Err(err("cluster.raft_heartbeat", "must be longer than 0 ms".into()));
                }
                if emin < raft_heartbeat * 3 {
                    return Err(err(
                        "cluster.election_timeout_min",
                        format!(
                            "{} ms is less than three Raft heartbeats ({} ms): followers would \
                             start elections while the leader is alive",
                            emin.as_millis(),
                            raft_heartbeat.as_millis() * 3
                        ),
                    ));
                }
                if emax <= emin {
                    return Err(err(
                        "cluster.election_timeout_max",
                        format!(
                            "{} ms must be longer than election_timeout_min ({} ms)",
                            emax.as_millis(),
                            emin.as_millis()
                        ),
                    ));
                }
                Some(ClusterConfig {
                    raft_heartbeat,
                    election_timeout: (emin, emax),
                    name: c.name.clone(),
                    listen,
                    ca_cert: rel(&c.ca_cert),
                    cert: rel(&c.cert),
                    key: rel(&c.key),
                    peers,
                    heartbeat: d("cluster.heartbeat", &c.heartbeat, 1000)?,
                    node_down_after: d("cluster.node_down_after", &c.node_down_after, 3000)?,
                    write_timeout: d("cluster.write_timeout", &c.write_timeout, 3000)?,
                })
            }
        };
        let slots = if raw.slot.is_empty() {
            None
        } else {
            let rs = raw.slots.as_ref();
            let mut specs: Vec<gatehouse_core::SlotSpec> = Vec::new();
            for (i, sl) in raw.slot.iter().enumerate() {
                let k = |f: &str| format!("slot[{i}].{f}");
                let (pub_ip, pub_len) = parse_cidr(&sl.public_address).map_err(|m| {
                    err(
                        &k("public_address"),
                        format!("{m} (the address with its prefix, e.g. \"10.0.0.101/24\")"),
                    )
                })?;
                let inside = match &sl.inside_address {
                    None => None,
                    Some(a) => Some(parse_cidr(a).map_err(|m| err(&k("inside_address"), m))?),
                };
                let (pnet, plen) = parse_cidr(&sl.pool).map_err(|m| err(&k("pool"), m))?;
                let pool = PoolRange::from_cidr(&format!("slot{}", sl.id), pnet, plen).ok_or_else(
                    || err(&k("pool"), format!("/{plen} is too small; use /30 or larger")),
                )?;
                if specs.iter().any(|x| x.id == sl.id) {
                    return Err(err(&k("id"), format!("{} is defined twice", sl.id)));
                }
                if sl.owner == sl.standby {
                    return Err(err(
                        &k("standby"),
                        "the standby must be another node than the owner".into(),
                    ));
                }
                specs.push(gatehouse_core::SlotSpec {
                    id: sl.id,
                    public_ip: pub_ip,
                    public_prefix: pub_len,
                    inside_ip: inside.map(|x| x.0),
                    inside_prefix: inside.map_or(32, |x| x.1),
                    pool,
                    preferred_owner: sl.owner,
                    standby: sl.standby,
                    capacity: sl.capacity.unwrap_or(1000),
                });
                pool_prefixes.insert(format!("slot{}", sl.id), (pnet, plen));
            }
            let d = |key: &str, v: Option<&String>, def: u64| -> Result<Duration, ConfigError> {
                Ok(dur(key, &v.cloned(), Some(Duration::from_millis(def)))?
                    .unwrap_or(Duration::from_millis(def)))
            };
            let renew_interval =
                d("slots.renew_interval", rs.and_then(|r| r.renew_interval.as_ref()), 50)?;
            let lease = d("slots.lease", rs.and_then(|r| r.lease.as_ref()), 600)?;
            if lease < renew_interval * 2 {
                return Err(err("slots.lease", format!("{} ms is shorter than two renew intervals ({} ms): the owner would lose its slot on one late renewal", lease.as_millis(), renew_interval.as_millis() * 2)));
            }
            // An owner fences itself (drops its addresses) one renew interval before the end of
            // a lease it renewed up to one interval ago. If a leader's death left no leader for
            // that long, every slot would move: elections must finish first.
            if let Some(c) = &cluster {
                let election = c.worst_election_start();
                if election + renew_interval * 2 >= lease {
                    return Err(err(
                        "slots.lease",
                        format!(
                            "{} ms is too short for this cluster's Raft timing: an election can \
                             take {} ms to start (cluster.election_timeout_max twice plus 1.5 \
                             raft_heartbeat), and owners fence themselves two renew intervals \
                             ({} ms) before their lease ends, so a leader's death would move \
                             every slot; use a lease longer than {} ms or shorter election \
                             timeouts",
                            lease.as_millis(),
                            election.as_millis(),
                            renew_interval.as_millis() * 2,
                            (election + renew_interval * 2).as_millis()
                        ),
                    ));
                }
            }
            Some(SlotsConfig {
                slots: specs,
                public_interface: rs
                    .and_then(|r| r.public_interface.clone())
                    .unwrap_or_else(|| "eth0".into()),
                inside_interface: rs
                    .and_then(|r| r.inside_interface.clone())
                    .unwrap_or_else(|| "eth1".into()),
                renew_interval,
                lease,
            })
        };
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

/// The configuration `gatehouse demo` writes for a local node.
pub fn demo_config(data_dir: &str, listen: &str) -> String {
    format!(
        r#"# Gatehouse node configuration (generated by `gatehouse demo` or `gatehouse init`). Reference: docs/configuration.md
[node]
id = 1
listen = "{listen}"
data_dir = "{data_dir}"
admin_listen = "127.0.0.1:8444"
metrics_listen = "127.0.0.1:9464"
users_file = "users.toml"
tun_name = "gh0"
mode = "routed"

[login]
max_failures_per_source = 5
max_failures_per_user = 5
failure_window = "5m"
delay = "1s"

[[pool]]
name = "default"
cidr = "10.99.0.0/24"

[[group_policy]]
name = "default"
address_pool = "default"
dns = ["10.99.0.1"]
default_domain = "gatehouse.test"
split_include = ["10.99.0.0/24"]
dpd_interval_gateway = "30s"
dpd_interval_client = "30s"
keepalive = "20s"
idle_timeout = "30m"
simultaneous_logins = 3

[[tunnel_group]]
name = "default"
group_policy = "default"
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/gatehouse/node.toml"), t)
    }

    #[test]
    fn demo_config_is_valid_with_reference_defaults() {
        let c = parse(&demo_config("data", "0.0.0.0:443")).unwrap();
        let p = c.policy_of("default").unwrap();
        assert_eq!(p.disconnected_timeout, Some(Duration::from_secs(1800)));
        assert_eq!(p.max_connect_time, None);
        assert_eq!(c.data_dir, PathBuf::from("/etc/gatehouse/data"));
    }

    #[test]
    fn errors_name_file_key_and_accepted_values() {
        let bad = demo_config("d", "0.0.0.0:443")
            .replace("idle_timeout = \"30m\"", "idle_timeout = \"30 minutes\"");
        let e = parse(&bad).unwrap_err().to_string();
        assert!(e.starts_with("/etc/gatehouse/node.toml: group_policy[0].idle_timeout:"), "{e}");
        assert!(e.contains("accepted"), "{e}");
        let bad = demo_config("d", "0.0.0.0:443").replace("mode = \"routed\"", "mode = \"bridge\"");
        let e = parse(&bad).unwrap_err().to_string();
        assert!(e.contains("node.mode") && e.contains("\"routed\""), "{e}");
        let bad = demo_config("d", "0.0.0.0:443")
            .replace("address_pool = \"default\"", "address_pool = \"nope\"");
        assert!(parse(&bad).unwrap_err().to_string().contains("group_policy[0].address_pool"));
        let bad = demo_config("d", "nonsense");
        assert!(parse(&bad).unwrap_err().to_string().contains("node.listen"));
        let bad = demo_config("d", "0.0.0.0:443") + "\n[bogus]\n";
        assert!(parse(&bad).unwrap_err().to_string().contains("bogus"));
    }

    /// A cluster with one slot; `extra_cluster` and `slots` tune the Raft and slot timing.
    fn cluster_config(extra_cluster: &str, slots: &str) -> String {
        demo_config("d", "0.0.0.0:443")
            + &format!(
                "\n[cluster]\nname = \"c\"\nlisten = \"10.0.0.1:7443\"\nca_cert = \"ca.pem\"\n\
                 cert = \"c.pem\"\nkey = \"c.key\"\npeers = [{{ id = 2, addr = \"10.0.0.2:7443\" }}]\n\
                 {extra_cluster}\n[slots]\n{slots}\n[[slot]]\nid = 1\npublic_address = \"10.1.0.101/24\"\n\
                 pool = \"10.99.1.0/24\"\nowner = 1\nstandby = 2\n"
            )
    }

    #[test]
    fn slot_lease_must_outlast_a_raft_election() {
        // The defaults fit: worst election start 2 x 170 + 60 = 400 ms, + 2 x 50 < 600 ms.
        let c = parse(&cluster_config("", "")).unwrap();
        let cl = c.cluster.as_ref().unwrap();
        assert_eq!(cl.worst_election_start(), Duration::from_millis(400));
        let sl = c.slots.as_ref().unwrap();
        assert_eq!(
            (sl.renew_interval, sl.lease),
            (Duration::from_millis(50), Duration::from_millis(600))
        );
        // A lease that a leader's death would outlive is refused, naming the key and the bound.
        let e = parse(&cluster_config("", "lease = \"450ms\"")).unwrap_err().to_string();
        assert!(e.contains("slots.lease") && e.contains("longer than 500 ms"), "{e}");
        // Slower elections need a longer lease.
        let slow = "election_timeout_min = \"250ms\"\nelection_timeout_max = \"450ms\"";
        let e = parse(&cluster_config(slow, "")).unwrap_err().to_string();
        assert!(e.contains("slots.lease") && e.contains("960 ms"), "{e}");
        assert!(parse(&cluster_config(slow, "lease = \"1100ms\"")).is_ok());
        // Election timeouts shorter than three heartbeats are refused.
        let e = parse(&cluster_config("election_timeout_min = \"100ms\"", "")).unwrap_err();
        assert!(e.to_string().contains("cluster.election_timeout_min"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms").unwrap(), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("none").unwrap(), None);
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("3x").is_err());
    }
}
