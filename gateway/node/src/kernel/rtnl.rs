//! Interface addresses over route netlink, in process: what `ip link show` and `ip addr
//! add|del|show` did, without iproute2.

use super::netlink::{attrs, Msg, Netlink, F_ACK, F_CREATE, F_DUMP, F_REPLACE, F_REQUEST};
use std::io;
use std::net::Ipv4Addr;

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const AF_INET: u8 = libc::AF_INET as u8;

/// An interface: its index and its hardware address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Ethernet address.
    pub mac: [u8; 6],
}

/// An IPv4 address configured on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddr {
    /// Interface index.
    pub index: u32,
    /// The address.
    pub addr: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
}

/// A route netlink socket.
#[derive(Debug)]
pub struct Rtnl(Netlink);

impl Rtnl {
    /// Open one.
    pub fn open() -> io::Result<Rtnl> {
        Ok(Rtnl(Netlink::open(libc::NETLINK_ROUTE)?))
    }

    /// The interface called `name`.
    pub fn link(&mut self, name: &str) -> io::Result<Link> {
        let mut m = Msg::new(RTM_GETLINK, F_REQUEST | F_ACK, &[0; 16]);
        m.attr_str(IFLA_IFNAME, name);
        self.get_link(m, name)
    }

    /// The interface that holds an address (other than `except`) inside `net/prefix`: where
    /// a slot address of that subnet belongs when the configuration says `"auto"` (container
    /// runtimes do not promise interface names).
    pub fn link_in_subnet(
        &mut self,
        net: Ipv4Addr,
        prefix: u8,
        except: &[Ipv4Addr],
    ) -> io::Result<Link> {
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
        let within = |a: Ipv4Addr| u32::from(a) & mask == u32::from(net) & mask;
        let found = self
            .addresses()?
            .into_iter()
            .find(|a| within(a.addr) && !except.contains(&a.addr))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no interface has an address in {net}/{prefix}"),
                )
            })?;
        let mut h = [0u8; 16];
        h[4..8].copy_from_slice(&found.index.to_ne_bytes());
        let m = Msg::new(RTM_GETLINK, F_REQUEST | F_ACK, &h);
        self.get_link(m, &format!("#{}", found.index))
    }

    fn get_link(&mut self, m: Msg, name: &str) -> io::Result<Link> {
        let replies = self
            .0
            .talk(vec![m])
            .map_err(|e| io::Error::new(e.kind(), format!("interface {name}: {e}")))?;
        let r = replies
            .iter()
            .find(|r| r.kind == RTM_NEWLINK && r.payload.len() >= 16)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("interface {name}: no such device"))
            })?;
        let index = u32::from_ne_bytes([r.payload[4], r.payload[5], r.payload[6], r.payload[7]]);
        let mut mac = [0u8; 6];
        if let Some((_, v)) = attrs(&r.payload, 16).into_iter().find(|(k, _)| *k == IFLA_ADDRESS) {
            if v.len() == 6 {
                mac.copy_from_slice(v);
            }
        }
        Ok(Link { index, mac })
    }

    fn addr_msg(kind: u16, flags: u16, index: u32, addr: Ipv4Addr, prefix: u8) -> Msg {
        let mut h = [0u8; 8];
        h[0] = AF_INET;
        h[1] = prefix;
        h[4..8].copy_from_slice(&index.to_ne_bytes());
        let mut m = Msg::new(kind, flags, &h);
        m.attr(IFA_LOCAL, &addr.octets()).attr(IFA_ADDRESS, &addr.octets());
        m
    }

    /// Put `addr/prefix` on interface `index` (already there is fine).
    pub fn add_address(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let m = Self::addr_msg(
            RTM_NEWADDR,
            F_REQUEST | F_ACK | F_CREATE | F_REPLACE,
            index,
            addr,
            prefix,
        );
        self.0.talk(vec![m]).map(drop)
    }

    /// Take `addr/prefix` off interface `index` (already gone is fine).
    pub fn remove_address(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let m = Self::addr_msg(RTM_DELADDR, F_REQUEST | F_ACK, index, addr, prefix);
        match self.0.talk(vec![m]) {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL) | Some(libc::ENOENT)) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Route `net/prefix` to interface `index` in the main table (replacing any route to it).
    pub fn replace_route(&mut self, net: Ipv4Addr, prefix: u8, index: u32) -> io::Result<()> {
        let h = [
            AF_INET,
            prefix,
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            RT_SCOPE_LINK,
            RTN_UNICAST,
            0,
            0,
            0,
            0,
        ];
        let mut m = Msg::new(RTM_NEWROUTE, F_REQUEST | F_ACK | F_CREATE | F_REPLACE, &h);
        m.attr(RTA_DST, &net.octets()).attr(RTA_OIF, &index.to_ne_bytes());
        self.0.talk(vec![m]).map(drop)
    }

    /// Every IPv4 address on every interface.
    pub fn addresses(&mut self) -> io::Result<Vec<IfAddr>> {
        let mut h = [0u8; 8];
        h[0] = AF_INET;
        let replies = self.0.talk(vec![Msg::new(RTM_GETADDR, F_REQUEST | F_DUMP, &h)])?;
        let mut out = Vec::new();
        for r in replies.iter().filter(|r| r.kind == RTM_NEWADDR && r.payload.len() >= 8) {
            let p = &r.payload;
            if p[0] != AF_INET {
                continue;
            }
            let index = u32::from_ne_bytes([p[4], p[5], p[6], p[7]]);
            let a = attrs(p, 8);
            let v = a
                .iter()
                .find(|(k, _)| *k == IFA_LOCAL)
                .or_else(|| a.iter().find(|(k, _)| *k == IFA_ADDRESS));
            if let Some((_, v)) = v {
                if let Ok(o) = <[u8; 4]>::try_from(*v) {
                    out.push(IfAddr { index, addr: Ipv4Addr::from(o), prefix: p[1] });
                }
            }
        }
        Ok(out)
    }
}
