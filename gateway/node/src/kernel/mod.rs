//! What the node asks of the Linux kernel on the failover path, in process and without
//! subprocesses: interface addresses (route netlink), the nftables fence of slot addresses,
//! gratuitous ARP and destroying leftover sockets. Blocking calls: the slot worker thread
//! (`slots::worker`) is their one user.

pub mod fence;
pub mod garp;
pub mod netlink;
pub mod rtnl;
pub mod sockdiag;
