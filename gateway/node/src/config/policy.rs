//! The `[[pool]]`, `[[group_policy]]` and `[[tunnel_group]]` sections.

use super::raw::Raw;
use super::{parse_cidr, ConfigError, Cx, TunnelGroup};
use gatehouse_core::{GroupPolicy, PoolRange};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Pools, their prefixes, group policies and tunnel groups, validated.
pub(super) struct Policies {
    pub(super) pools: BTreeMap<String, PoolRange>,
    pub(super) pool_prefixes: BTreeMap<String, (Ipv4Addr, u8)>,
    pub(super) group_policies: BTreeMap<String, GroupPolicy>,
    pub(super) tunnel_groups: Vec<TunnelGroup>,
}

pub(super) fn parse(cx: &Cx<'_>, raw: &Raw) -> Result<Policies, ConfigError> {
    let mut pools = BTreeMap::new();
    let mut pool_prefixes = BTreeMap::new();
    for (i, p) in raw.pool.iter().enumerate() {
        let key = format!("pool[{i}].cidr");
        let (net, len) = parse_cidr(&p.cidr).map_err(|m| cx.err(&key, m))?;
        let range = PoolRange::from_cidr(&p.name, net, len)
            .ok_or_else(|| cx.err(&key, format!("/{len} is too small; use /30 or larger")))?;
        pool_prefixes.insert(p.name.clone(), (net, len));
        if pools.insert(p.name.clone(), range).is_some() {
            return Err(
                cx.err(&format!("pool[{i}].name"), format!("{:?} is defined twice", p.name))
            );
        }
    }
    if pools.is_empty() {
        return Err(cx.err("pool", "at least one [[pool]] with name and cidr is required".into()));
    }
    let mut group_policies = BTreeMap::new();
    for (i, p) in raw.group_policy.iter().enumerate() {
        let k = |f: &str| format!("group_policy[{i}].{f}");
        if !pools.contains_key(&p.address_pool) {
            return Err(cx.err(
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
                cx.err(&format!("{}[{j}]", k("dns")), format!("{d:?} is not an IPv4 address"))
            })?);
        }
        g.default_domain = p.default_domain.clone();
        for (j, r) in p.split_include.iter().enumerate() {
            g.split_include.push(
                parse_cidr(r).map_err(|m| cx.err(&format!("{}[{j}]", k("split_include")), m))?,
            );
        }
        g.dpd_interval_gateway =
            cx.dur(&k("dpd_interval_gateway"), &p.dpd_interval_gateway, g.dpd_interval_gateway)?;
        g.dpd_interval_client =
            cx.dur(&k("dpd_interval_client"), &p.dpd_interval_client, g.dpd_interval_client)?;
        g.keepalive = cx.dur(&k("keepalive"), &p.keepalive, g.keepalive)?;
        g.idle_timeout = cx.dur(&k("idle_timeout"), &p.idle_timeout, g.idle_timeout)?;
        // Disconnected timeout = idle timeout unless set (DESIGN.md §2.4).
        g.disconnected_timeout =
            cx.dur(&k("disconnected_timeout"), &p.disconnected_timeout, g.idle_timeout)?;
        g.max_connect_time = cx.dur(&k("max_connect_time"), &p.max_connect_time, None)?;
        g.simultaneous_logins = p.simultaneous_logins.unwrap_or(3);
        if g.simultaneous_logins == 0 {
            return Err(cx.err(
                &k("simultaneous_logins"),
                "0 would refuse every login; accepted: 1 or more".into(),
            ));
        }
        g.auto_reconnect = p.auto_reconnect.unwrap_or(true);
        if let Some(b) = &p.auto_reconnect_behavior {
            if b != "reconnect-after-resume" && b != "disconnect-on-suspend" {
                return Err(cx.err(
                    &k("auto_reconnect_behavior"),
                    format!(
                        "{b:?}: accepted \"reconnect-after-resume\" or \"disconnect-on-suspend\""
                    ),
                ));
            }
            g.auto_reconnect_behavior = b.clone();
        }
        if group_policies.insert(p.name.clone(), g).is_some() {
            return Err(cx.err(&k("name"), format!("{:?} is defined twice", p.name)));
        }
    }
    if group_policies.is_empty() {
        return Err(cx.err("group_policy", "at least one [[group_policy]] is required".into()));
    }
    let mut tunnel_groups = Vec::new();
    for (i, t) in raw.tunnel_group.iter().enumerate() {
        if !group_policies.contains_key(&t.group_policy) {
            return Err(cx.err(
                &format!("tunnel_group[{i}].group_policy"),
                format!("{:?} is not a [[group_policy]] name", t.group_policy),
            ));
        }
        if tunnel_groups.iter().any(|g: &TunnelGroup| g.name == t.name) {
            return Err(cx.err(
                &format!("tunnel_group[{i}].name"),
                format!("{:?} is defined twice", t.name),
            ));
        }
        tunnel_groups
            .push(TunnelGroup { name: t.name.clone(), group_policy: t.group_policy.clone() });
    }
    if tunnel_groups.is_empty() {
        return Err(cx.err("tunnel_group", "at least one [[tunnel_group]] is required".into()));
    }
    Ok(Policies { pools, pool_prefixes, group_policies, tunnel_groups })
}
