//! The data plane: one tun device per node. Packets from tunnels go to the tun device; packets
//! from it go to the tunnel that owns the destination inner address (a map lookup).

use crate::config::{Config, InsideMode};
use crate::kernel::rtnl::Rtnl;
use crate::metrics as m;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use gatehouse_core::TunnelId;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;

/// Where packets for one inner address go.
#[derive(Clone)]
pub struct Route {
    /// The tunnel currently carrying the session.
    pub tunnel: TunnelId,
    /// Its outbound packet queue.
    pub tx: mpsc::Sender<Bytes>,
}

/// The tun device and the inner-address routing table.
pub struct DataPlane {
    dev: tun::AsyncDevice,
    routes: RwLock<HashMap<Ipv4Addr, Route>>,
    mtu: u16,
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

impl DataPlane {
    /// Create the tun device, give it the gateway address of each pool, route the pools to
    /// it, enable forwarding and, in NAT mode, masquerade the pools on the inside interface.
    pub fn open(cfg: &Config) -> Result<Arc<DataPlane>> {
        let (first_name, first) = cfg.pools.iter().next().context("no pool configured")?;
        let (_, prefix) = cfg.pool_prefixes.get(first_name).copied().context("pool prefix")?;
        let mut tc = tun::Configuration::default();
        tc.tun_name(&cfg.tun_name)
            .address(first.gateway_address())
            .netmask(prefix_mask(prefix))
            .mtu(cfg.mtu)
            .up();
        tc.platform_config(|p| {
            p.ensure_root_privileges(true);
        });
        let dev = tun::create_as_async(&tc).with_context(|| {
            format!("creating tun device {} (needs root or CAP_NET_ADMIN)", cfg.tun_name)
        })?;
        if cfg.pool_prefixes.len() > 1 {
            // The other pools' gateway addresses and routes, over route netlink.
            let mut rtnl = Rtnl::open().context("route netlink")?;
            let tun = rtnl.link(&cfg.tun_name)?;
            for (name, (net, len)) in &cfg.pool_prefixes {
                if name == first_name {
                    continue;
                }
                let gw = gatehouse_core::PoolRange::from_cidr(name, *net, *len)
                    .map(|p| p.gateway_address())
                    .with_context(|| format!("pool {name} is too small"))?;
                rtnl.add_address(tun.index, gw, 32)
                    .with_context(|| format!("adding {gw}/32 to {}", cfg.tun_name))?;
                rtnl.replace_route(*net, *len, tun.index)
                    .with_context(|| format!("routing {net}/{len} to {}", cfg.tun_name))?;
            }
        }
        // Written only when off: in a container /proc/sys is read-only, and the runtime sets
        // it (docker-compose `sysctls`).
        const FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
        if std::fs::read_to_string(FORWARD).map(|v| v.trim() != "1").unwrap_or(true) {
            std::fs::write(FORWARD, "1").context(
                "enabling IPv4 forwarding (in a container, set net.ipv4.ip_forward=1 instead)",
            )?;
        }
        if let InsideMode::Nat { interface } = &cfg.inside {
            for (net, len) in cfg.pool_prefixes.values() {
                let rule = |op: &str| {
                    let mut c = Command::new("iptables");
                    c.args([
                        "-t",
                        "nat",
                        op,
                        "POSTROUTING",
                        "-s",
                        &format!("{net}/{len}"),
                        "-o",
                        interface,
                        "-j",
                        "MASQUERADE",
                    ]);
                    c
                };
                if run(&mut rule("-C")).is_err() {
                    run(&mut rule("-A")).context("adding the NAT rule (is iptables installed?)")?;
                }
            }
        }
        Ok(Arc::new(DataPlane { dev, routes: RwLock::new(HashMap::new()), mtu: cfg.mtu }))
    }

    /// Packets for `addr` go to `route` from now on (a resume replaces the old tunnel's route).
    pub fn add_route(&self, addr: Ipv4Addr, route: Route) {
        if let Ok(mut r) = self.routes.write() {
            r.insert(addr, route);
        }
    }

    /// Forget `addr`'s route if it still belongs to `tunnel`.
    pub fn remove_route(&self, addr: Ipv4Addr, tunnel: TunnelId) {
        if let Ok(mut r) = self.routes.write() {
            if r.get(&addr).is_some_and(|x| x.tunnel == tunnel) {
                r.remove(&addr);
            }
        }
    }

    /// Write one packet from a client to the tun device.
    pub async fn send_to_tun(&self, pkt: &[u8]) -> std::io::Result<()> {
        self.dev.send(pkt).await.map(|_| ())
    }

    /// Read packets from the tun device forever and queue each on its session's tunnel.
    /// A full queue drops the packet (TCP backs off; the tunnel is not blocked).
    pub async fn run_reader(self: Arc<Self>) {
        let mut buf = vec![0u8; usize::from(self.mtu) + 64];
        loop {
            let n = match self.dev.recv(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!("tun read failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(dst) = ipv4_dst(&buf[..n]) else { continue };
            let route = self.routes.read().ok().and_then(|r| r.get(&dst).cloned());
            match route {
                Some(r) => {
                    if r.tx.try_send(Bytes::copy_from_slice(&buf[..n])).is_err() {
                        metrics::counter!(m::TUNNEL_QUEUE_DROPS).increment(1);
                    }
                }
                None => metrics::counter!(m::TUN_NO_ROUTE).increment(1),
            }
        }
    }
}

/// Destination of an IPv4 packet.
pub fn ipv4_dst(p: &[u8]) -> Option<Ipv4Addr> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    Some(Ipv4Addr::new(p[16], p[17], p[18], p[19]))
}

pub use gatehouse_core::tunnel::ip::{ipv4_src, prefix_mask};
