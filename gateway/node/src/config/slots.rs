//! The `[[slot]]` and `[slots]` sections: member addresses and their lease timing.

use super::raw::Raw;
use super::{parse_cidr, ClusterConfig, ConfigError, Cx};
use gatehouse_core::PoolRange;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

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

pub(super) fn parse(
    cx: &Cx<'_>,
    raw: &Raw,
    cluster: Option<&ClusterConfig>,
    pool_prefixes: &mut BTreeMap<String, (Ipv4Addr, u8)>,
) -> Result<Option<SlotsConfig>, ConfigError> {
    Ok(if raw.slot.is_empty() {
        None
    } else {
        let rs = raw.slots.as_ref();
        let mut specs: Vec<gatehouse_core::SlotSpec> = Vec::new();
        for (i, sl) in raw.slot.iter().enumerate() {
            let k = |f: &str| format!("slot[{i}].{f}");
            let (pub_ip, pub_len) = parse_cidr(&sl.public_address).map_err(|m| {
                cx.err(
                    &k("public_address"),
                    format!("{m} (the address with its prefix, e.g. \"10.0.0.101/24\")"),
                )
            })?;
            let inside = match &sl.inside_address {
                None => None,
                Some(a) => Some(parse_cidr(a).map_err(|m| cx.err(&k("inside_address"), m))?),
            };
            let (pnet, plen) = parse_cidr(&sl.pool).map_err(|m| cx.err(&k("pool"), m))?;
            let pool =
                PoolRange::from_cidr(&format!("slot{}", sl.id), pnet, plen).ok_or_else(|| {
                    cx.err(&k("pool"), format!("/{plen} is too small; use /30 or larger"))
                })?;
            if specs.iter().any(|x| x.id == sl.id) {
                return Err(cx.err(&k("id"), format!("{} is defined twice", sl.id)));
            }
            if sl.owner == sl.standby {
                return Err(
                    cx.err(&k("standby"), "the standby must be another node than the owner".into())
                );
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
            Ok(cx
                .dur(key, &v.cloned(), Some(Duration::from_millis(def)))?
                .unwrap_or(Duration::from_millis(def)))
        };
        let renew_interval =
            d("slots.renew_interval", rs.and_then(|r| r.renew_interval.as_ref()), 50)?;
        let lease = d("slots.lease", rs.and_then(|r| r.lease.as_ref()), 600)?;
        if lease < renew_interval * 2 {
            return Err(cx.err("slots.lease", format!("{} ms is shorter than two renew intervals ({} ms): the owner would lose its slot on one late renewal", lease.as_millis(), renew_interval.as_millis() * 2)));
        }
        // An owner fences itself (drops its addresses) one renew interval before the end of
        // a lease it renewed up to one interval ago. If a leader's death left no leader for
        // that long, every slot would move: elections must finish first.
        if let Some(c) = &cluster {
            let election = c.worst_election_start();
            if election + renew_interval * 2 >= lease {
                return Err(cx.err(
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
    })
}
