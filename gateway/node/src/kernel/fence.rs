//! The kernel fence: nftables rules that make a slot address fall silent on this host the
//! moment its lease's fencing point passes, whether the node is running, frozen (SIGSTOP,
//! `docker pause`, a VM stall) or dead (`kill -9`, an OOM kill, `docker kill`). DESIGN.md §4
//! asks for "a kernel object whose lifetime each renewal refreshes": here it is an element of
//! the nftables set `live`, whose timeout (millisecond resolution) runs to the fencing point;
//! each committed renewal replaces it with a later one. The kernel expires it on time with
//! nobody left to ask.
//!
//! The rules (table `gatehouse`, families `ip` and `arp`), for every configured slot address:
//!
//! - not in `live`: drop it in and out — no ARP answer, no packet accepted, forwarded or sent
//!   (a frozen or dead owner's address is configured but fenced);
//! - a FIN or RST from a client connection the node did not close itself (the node marks
//!   each accepted connection [`MARK_OPEN`] and sets [`MARK_CLOSED`] right before it closes
//!   one): dropped, so a crashed process's connections go silent as a crashed machine's
//!   would, instead of sending the FIN that makes openconnect reconnect at once to an
//!   address nobody serves — and sleep 10 s after the refusal;
//! - an RST the kernel makes up for a segment that matches no socket at all (mark 0): a
//!   socket-less RST from a slot address means the process is gone, and it is dropped;
//! - an RST of the listener ([`MARK_LISTEN`]: its answer to a stray segment, or the reset of
//!   a connection it had not handed to the node yet) unless the address is in the set
//!   `resets`: the listener's RSTs are what a take-over's tickle draws (`slots::takeover`),
//!   so a take-over opens that window for [`RESET_WINDOW`]. Outside it they are dropped: a
//!   process being killed keeps its listener for a moment (a thread still finishing a disk
//!   write holds the process), and in that moment the listener answered a client's segments
//!   with RSTs and accepted, then reset, its reconnection — openconnect then sleeps 10 s.
//!
//! A client of a dead process therefore hears nothing until the new owner's RST.
//!
//! The ruleset is installed once at start with `nft -f` (nftables package); the elements,
//! which change on the failover path, go over netlink in one atomic batch each.

use super::netlink::{Msg, Netlink, F_ACK, F_CREATE, F_REQUEST};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The mark of an accepted client connection the node has not closed.
pub const MARK_OPEN: u32 = 0x6768_0001;
/// The mark the node sets on a client connection right before it closes it.
pub const MARK_CLOSED: u32 = 0x6768_0002;
/// The mark of the client listener (its RSTs to stray segments carry it).
pub const MARK_LISTEN: u32 = 0x6768_0003;
/// How long after a take-over the listener's RSTs may leave (the tickle rounds and the
/// clients' answers fit well inside).
pub const RESET_WINDOW: Duration = Duration::from_secs(1);
/// The nftables table (in families `ip` and `arp`).
pub const TABLE: &str = "gatehouse";

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
/// Delete without failing when absent (Linux 6.3).
const NFT_MSG_DESTROYSETELEM: u16 = 30;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
const NFTA_DATA_VALUE: u16 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_ARP: u8 = 3;

/// Why the fence could not be set up or moved.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// `nft` could not be run (is the nftables package installed?).
    #[error("nft: {0} (the node needs the nftables package to fence slot addresses)")]
    Run(io::Error),
    /// `nft` refused the ruleset; what it said.
    #[error("nft refused the fence ruleset: {0}")]
    Refused(String),
    /// The kernel refused a set element update.
    #[error("nftables set element: {0}")]
    Netlink(#[from] io::Error),
}

/// The ruleset for the slot addresses `slots` (public and inside).
pub fn ruleset(slots: &[Ipv4Addr]) -> String {
    let elems = slots.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ");
    let elements =
        if elems.is_empty() { String::new() } else { format!(" elements = {{ {elems} }};") };
    format!(
        "table ip {TABLE}\n\
         delete table ip {TABLE}\n\
         table arp {TABLE}\n\
         delete table arp {TABLE}\n\
         table ip {TABLE} {{\n\
         \x20 set slots {{ type ipv4_addr;{elements} }}\n\
         \x20 set live {{ type ipv4_addr; flags timeout; }}\n\
         \x20 set resets {{ type ipv4_addr; flags timeout; }}\n\
         \x20 chain input {{ type filter hook input priority -150; policy accept;\n\
         \x20   ip daddr @slots ip daddr != @live counter drop\n\
         \x20 }}\n\
         \x20 chain forward {{ type filter hook forward priority -150; policy accept;\n\
         \x20   ip daddr @slots ip daddr != @live counter drop\n\
         \x20 }}\n\
         \x20 chain output {{ type filter hook output priority -150; policy accept;\n\
         \x20   ip saddr @slots ip saddr != @live counter drop\n\
         \x20   ip saddr @slots meta mark {MARK_OPEN:#x} tcp flags & (fin | rst) != 0 counter drop\n\
         \x20   ip saddr @slots meta mark 0 tcp flags & rst != 0 counter drop\n\
         \x20   ip saddr @slots meta mark {MARK_LISTEN:#x} tcp flags & rst != 0 ip saddr != @resets counter drop\n\
         \x20 }}\n\
         }}\n\
         table arp {TABLE} {{\n\
         \x20 set slots {{ type ipv4_addr;{elements} }}\n\
         \x20 set live {{ type ipv4_addr; flags timeout; }}\n\
         \x20 chain input {{ type filter hook input priority 0; policy accept;\n\
         \x20   arp daddr ip @slots arp daddr ip != @live counter drop\n\
         \x20 }}\n\
         \x20 chain output {{ type filter hook output priority 0; policy accept;\n\
         \x20   arp saddr ip @slots arp saddr ip != @live counter drop\n\
         \x20 }}\n\
         }}\n"
    )
}

/// Install (or replace) the fence for `slots`: every slot address starts fenced.
pub fn install(slots: &[Ipv4Addr]) -> Result<(), FenceError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(FenceError::Run)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(ruleset(slots).as_bytes()).map_err(FenceError::Run)?;
    }
    let out = child.wait_with_output().map_err(FenceError::Run)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(FenceError::Refused(String::from_utf8_lossy(&out.stderr).trim().to_string()))
    }
}

/// The set elements this node changes, over a netfilter netlink socket.
#[derive(Debug)]
pub struct Fence {
    nl: Netlink,
    /// Whether the kernel knows "destroy" (delete if present); older ones get delete + add,
    /// or add alone when the element is gone.
    destroy: bool,
}

impl Fence {
    /// Open the netlink socket.
    pub fn open() -> Result<Fence, FenceError> {
        Ok(Fence { nl: Netlink::open(libc::NETLINK_NETFILTER)?, destroy: true })
    }

    /// Behave as on a kernel before Linux 6.3, which cannot destroy set elements (delete,
    /// then add): how the kernel test covers that path on a newer kernel.
    pub fn as_before_destroy(mut self) -> Fence {
        self.destroy = false;
        self
    }

    /// `addrs` answer on this host for `for_` from now on (the fencing point), replacing
    /// whatever they had. A zero duration fences them at once.
    pub fn live_for(&mut self, addrs: &[Ipv4Addr], for_: Duration) -> Result<(), FenceError> {
        if for_.is_zero() {
            return self.fence(addrs);
        }
        self.replace(LIVE, addrs, Some(for_))
    }

    /// `addrs` are fenced from now on.
    pub fn fence(&mut self, addrs: &[Ipv4Addr]) -> Result<(), FenceError> {
        self.replace(LIVE, addrs, None)
    }

    /// The listener's RSTs from `addrs` may leave for [`RESET_WINDOW`] (a take-over's tickle).
    pub fn allow_resets(&mut self, addrs: &[Ipv4Addr]) -> Result<(), FenceError> {
        self.replace(RESETS, addrs, Some(RESET_WINDOW))
    }

    fn replace(
        &mut self,
        set: Set,
        addrs: &[Ipv4Addr],
        timeout: Option<Duration>,
    ) -> Result<(), FenceError> {
        if addrs.is_empty() {
            return Ok(());
        }
        if self.destroy {
            match self.nl.talk(batch(set, addrs, Some(NFT_MSG_DESTROYSETELEM), timeout)) {
                Ok(_) => return Ok(()),
                Err(e)
                    if e.raw_os_error() == Some(libc::EOPNOTSUPP)
                        || e.raw_os_error() == Some(libc::EINVAL) =>
                {
                    tracing::debug!("nftables: no destroy of set elements ({e}); delete + add");
                    self.destroy = false;
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Older kernels: a delete fails on an absent element (and fails its whole batch), so
        // one address at a time, adding alone where there was nothing to delete.
        for a in addrs {
            match self.nl.talk(batch(set, &[*a], Some(NFT_MSG_DELSETELEM), timeout)) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    if timeout.is_some() {
                        self.nl.talk(batch(set, &[*a], None, timeout))?;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

fn nfgen(family: u8, res_id: u16) -> [u8; 4] {
    let r = res_id.to_be_bytes();
    [family, 0, r[0], r[1]]
}

fn elements(
    kind: u16,
    flags: u16,
    family: u8,
    set: &str,
    addrs: &[Ipv4Addr],
    timeout: Option<Duration>,
) -> Msg {
    let mut m = Msg::new((NFNL_SUBSYS_NFTABLES << 8) | kind, flags, &nfgen(family, 0));
    m.attr_str(NFTA_SET_ELEM_LIST_TABLE, TABLE).attr_str(NFTA_SET_ELEM_LIST_SET, set);
    m.begin(NFTA_SET_ELEM_LIST_ELEMENTS);
    for a in addrs {
        m.begin(NFTA_LIST_ELEM);
        m.begin(NFTA_SET_ELEM_KEY).attr(NFTA_DATA_VALUE, &a.octets()).end();
        if let Some(t) = timeout {
            m.attr(NFTA_SET_ELEM_TIMEOUT, &(t.as_millis() as u64).max(1).to_be_bytes());
        }
        m.end();
    }
    m.end();
    m
}

/// A set the node changes: its name and the families that have it.
type Set = (&'static str, &'static [u8]);
/// The addresses that answer (both families).
const LIVE: Set = ("live", &[NFPROTO_IPV4, NFPROTO_ARP]);
/// The addresses whose listener RSTs may leave (`ip` only).
const RESETS: Set = ("resets", &[NFPROTO_IPV4]);

/// One transaction: optionally remove the elements (`remove`: destroy or delete), then, with
/// a timeout, add them with it; in every family that has the set.
fn batch(set: Set, addrs: &[Ipv4Addr], remove: Option<u16>, timeout: Option<Duration>) -> Vec<Msg> {
    let (name, families) = set;
    let mut msgs = vec![Msg::new(NFNL_MSG_BATCH_BEGIN, F_REQUEST, &nfgen(0, NFNL_SUBSYS_NFTABLES))];
    for &family in families {
        if let Some(kind) = remove {
            msgs.push(elements(kind, F_REQUEST | F_ACK, family, name, addrs, None));
        }
        if timeout.is_some() {
            msgs.push(elements(
                NFT_MSG_NEWSETELEM,
                F_REQUEST | F_CREATE | F_ACK,
                family,
                name,
                addrs,
                timeout,
            ));
        }
    }
    msgs.push(Msg::new(NFNL_MSG_BATCH_END, F_REQUEST, &nfgen(0, NFNL_SUBSYS_NFTABLES)));
    msgs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ruleset_lists_every_slot_address_in_both_families() {
        let r = ruleset(&[Ipv4Addr::new(10, 0, 0, 101), Ipv4Addr::new(10, 1, 0, 1)]);
        assert_eq!(r.matches("elements = { 10.0.0.101, 10.1.0.1 }").count(), 2);
        assert!(r.contains("table arp gatehouse {"));
        assert!(r.contains(&format!("meta mark {MARK_OPEN:#x}")));
        assert!(r.contains(&format!(
            "meta mark {MARK_LISTEN:#x} tcp flags & rst != 0 ip saddr != @resets"
        )));
    }
}
