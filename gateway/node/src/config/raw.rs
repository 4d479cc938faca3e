//! The config file as serde reads it, before validation.

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub(super) node: RawNode,
    #[serde(default)]
    pub(super) login: RawLogin,
    #[serde(default)]
    pub(super) pool: Vec<RawPool>,
    #[serde(default)]
    pub(super) group_policy: Vec<RawPolicy>,
    #[serde(default)]
    pub(super) tunnel_group: Vec<RawTunnelGroup>,
    pub(super) cluster: Option<RawCluster>,
    #[serde(default)]
    pub(super) slot: Vec<RawSlot>,
    pub(super) slots: Option<RawSlots>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSlot {
    pub(super) id: u32,
    pub(super) public_address: String,
    pub(super) inside_address: Option<String>,
    pub(super) pool: String,
    pub(super) owner: u64,
    pub(super) standby: u64,
    pub(super) capacity: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSlots {
    pub(super) public_interface: Option<String>,
    pub(super) inside_interface: Option<String>,
    pub(super) renew_interval: Option<String>,
    pub(super) lease: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub(super) name: String,
    pub(super) listen: String,
    pub(super) ca_cert: String,
    pub(super) cert: String,
    pub(super) key: String,
    #[serde(default)]
    pub(super) peers: Vec<RawPeer>,
    pub(super) heartbeat: Option<String>,
    pub(super) node_down_after: Option<String>,
    pub(super) write_timeout: Option<String>,
    pub(super) leave_wait: Option<String>,
    pub(super) raft_heartbeat: Option<String>,
    pub(super) election_timeout_min: Option<String>,
    pub(super) election_timeout_max: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeer {
    pub(super) id: u64,
    pub(super) addr: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    pub(super) id: Option<u64>,
    pub(super) listen: Option<String>,
    pub(super) data_dir: Option<String>,
    pub(super) tls_cert: Option<String>,
    pub(super) tls_key: Option<String>,
    pub(super) admin_listen: Option<String>,
    pub(super) metrics_listen: Option<String>,
    pub(super) users_file: Option<String>,
    pub(super) tun_name: Option<String>,
    pub(super) mtu: Option<u16>,
    pub(super) mode: Option<String>,
    pub(super) nat_interface: Option<String>,
    pub(super) request_timeout: Option<String>,
    pub(super) banner: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogin {
    pub(super) max_failures_per_source: Option<u32>,
    pub(super) max_failures_per_user: Option<u32>,
    pub(super) failure_window: Option<String>,
    pub(super) delay: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPool {
    pub(super) name: String,
    pub(super) cidr: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub(super) name: String,
    pub(super) address_pool: String,
    #[serde(default)]
    pub(super) dns: Vec<String>,
    pub(super) default_domain: Option<String>,
    #[serde(default)]
    pub(super) split_include: Vec<String>,
    pub(super) dpd_interval_gateway: Option<String>,
    pub(super) dpd_interval_client: Option<String>,
    pub(super) keepalive: Option<String>,
    pub(super) idle_timeout: Option<String>,
    pub(super) disconnected_timeout: Option<String>,
    pub(super) max_connect_time: Option<String>,
    pub(super) simultaneous_logins: Option<u32>,
    pub(super) auto_reconnect: Option<bool>,
    pub(super) auto_reconnect_behavior: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTunnelGroup {
    pub(super) name: String,
    pub(super) group_policy: String,
}
