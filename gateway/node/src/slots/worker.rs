//! The one thread that touches the interfaces: the kernel fence, slot addresses, gratuitous
//! ARP and the tickles run here (all in process, `crate::kernel`), never on an async worker.
//!
//! Jobs run in the order they were sent: an add never overtakes an earlier drop, and a
//! graceful switch's drop is done before its barrier answers (the release is proposed after
//! that). Nothing here sleeps: the repeated gratuitous ARPs and the tickle rounds that follow
//! a take-over are timers of this thread, so a drop due for fencing never waits behind an
//! announcement.

use super::takeover;
use crate::clock::Clock;
use crate::config::SlotsConfig;
use crate::kernel::fence::{self, Fence, FenceError};
use crate::kernel::garp::ArpSocket;
use crate::kernel::rtnl::{Link, Rtnl};
use crate::kernel::sockdiag;
use gatehouse_core::slot_agent::DropReason;
use gatehouse_core::{MonoMillis, SlotSpec};
use std::net::Ipv4Addr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The interface name that means "the one with an address in the slot address's subnet".
pub(super) const AUTO: &str = "auto";

/// A client endpoint to tickle: its address and port, and our (slot) port.
pub(super) type Client = (Ipv4Addr, u16, u16);

/// Something to do to the interfaces.
pub(super) enum Job {
    /// Add the slot's addresses live until `fence_at`, announce them, tickle the clients.
    TakeOver { spec: SlotSpec, epoch: u64, clients: Vec<Client>, fence_at: MonoMillis },
    /// Add the slot's addresses again, live until `fence_at` (no announcement).
    Restore { spec: SlotSpec, fence_at: MonoMillis },
    /// A renewal committed: the slot's addresses stay live until `fence_at`.
    Extend { spec: SlotSpec, fence_at: MonoMillis },
    /// Fence the slot's addresses and remove them; unless they were live, only if the host
    /// has them. When the slot is gone for good ([`DropReason::slot_gone`]), also close every
    /// connection left on them (silently: the fence drops the RSTs).
    Drop { spec: SlotSpec, was_live: bool, reason: DropReason },
    /// Drill crash: exit at once, as a crashing process does; the fence does the rest.
    Crash,
    /// Answer once every earlier job is done.
    Barrier(oneshot::Sender<()>),
}

/// The sending end of the worker.
#[derive(Clone)]
pub(super) struct Worker {
    tx: mpsc::Sender<Job>,
}

/// Why the worker could not start: without its fence this node must take no slot.
#[derive(Debug, thiserror::Error)]
pub(super) enum StartError {
    /// A netlink or packet socket could not be opened.
    #[error("{0}")]
    Socket(#[from] std::io::Error),
    /// The fence could not be installed.
    #[error("{0}")]
    Fence(#[from] FenceError),
}

impl Worker {
    /// Start the worker thread for the interfaces and slots `sc` names: install the fence
    /// (every slot address fenced), remove every slot address the host still has (a
    /// previous run, crashed or frozen, may have left them) and the connections left on
    /// them. Returns once that is done.
    pub(super) fn start(sc: &SlotsConfig, clock: Clock) -> Result<Worker, StartError> {
        let mut rtnl = Rtnl::open()?;
        let (public, inside) = links(&mut rtnl, sc)?;
        let mut state = State {
            rtnl,
            fence: Fence::open()?,
            arp: ArpSocket::open()?,
            sc: sc.clone(),
            public,
            inside,
            clock,
            pending: Vec::new(),
        };
        state.clean_start(&sc.slots)?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new().name("gatehouse-slots".into()).spawn(move || state.run(rx))?;
        Ok(Worker { tx })
    }

    /// Queue `job`; false when the worker is gone.
    pub(super) fn send(&self, job: Job) -> bool {
        self.tx.send(job).is_ok()
    }
}

/// Something the worker does later.
enum Later {
    /// Tickle rounds still to send for one announced address.
    Tickle { addr: Ipv4Addr, clients: Vec<Client>, rounds_left: u8 },
    /// Gratuitous ARPs still to send for one address, at these delays after the first.
    Announce { addr: Ipv4Addr, inside: bool, next: &'static [Duration] },
}

/// The clients' answers must come to this node and not to the old owner's MAC address:
/// the first round goes shortly after the gratuitous ARP, two more follow.
const FIRST_TICKLE: Duration = Duration::from_millis(20);
const NEXT_TICKLE: Duration = Duration::from_millis(150);
const TICKLE_ROUNDS: u8 = 3;
/// Gratuitous ARP is sent at once and repeated: a neighbour ignores a second change of an
/// entry within its `locktime` (1 s by default), and a lost frame must not cost a failover.
/// The gaps, as keepalived repeats its announcements.
const ANNOUNCE_AGAIN: &[Duration] =
    &[Duration::from_millis(200), Duration::from_millis(1100), Duration::from_millis(2200)];

/// Close every connection left on `addrs` (the fence drops their RSTs, so the clients hear
/// only the new owner's tickle); `whose` says whose addresses they are, for the log.
fn close_connections(addrs: &[Ipv4Addr], whose: &str) {
    match sockdiag::destroy_local(addrs) {
        Ok(0) => {}
        Ok(n) => tracing::info!(sockets = n, "closed the connections left on {whose}"),
        Err(e) => tracing::warn!("cannot close the connections left on {whose}: {e}"),
    }
}

/// The public and inside interfaces `sc` names (or finds, for `"auto"`), as they are now.
fn links(rtnl: &mut Rtnl, sc: &SlotsConfig) -> std::io::Result<(Link, Option<Link>)> {
    let all: Vec<Ipv4Addr> = sc.slots.iter().flat_map(addrs).collect();
    let public = match (sc.public_interface.as_str(), sc.slots.first()) {
        (AUTO, Some(s)) => rtnl.link_in_subnet(s.public_ip, s.public_prefix, &all)?,
        (name, _) => rtnl.link(name)?,
    };
    let inside =
        match (sc.inside_interface.as_str(), sc.slots.iter().find(|s| s.inside_ip.is_some())) {
            (_, None) => None,
            (AUTO, Some(s)) => {
                let ip = s.inside_ip.unwrap_or(s.public_ip);
                Some(rtnl.link_in_subnet(ip, s.inside_prefix, &all)?)
            }
            (name, Some(_)) => Some(rtnl.link(name)?),
        };
    Ok((public, inside))
}

struct State {
    rtnl: Rtnl,
    sc: SlotsConfig,
    fence: Fence,
    arp: ArpSocket,
    public: Link,
    inside: Option<Link>,
    clock: Clock,
    pending: Vec<(Instant, Later)>,
}

fn addrs(spec: &SlotSpec) -> Vec<Ipv4Addr> {
    std::iter::once(spec.public_ip).chain(spec.inside_ip).collect()
}

impl State {
    fn run(&mut self, rx: mpsc::Receiver<Job>) {
        loop {
            let now = self.clock.instant_now();
            let wait = self.pending.iter().map(|(at, _)| at.saturating_duration_since(now)).min();
            let job = match wait {
                None => match rx.recv() {
                    Ok(j) => Some(j),
                    Err(_) => return,
                },
                Some(w) => match rx.recv_timeout(w) {
                    Ok(j) => Some(j),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
            };
            if let Some(job) = job {
                self.perform(job);
            }
            self.run_due();
        }
    }

    fn clean_start(&mut self, slots: &[SlotSpec]) -> Result<(), StartError> {
        let all: Vec<Ipv4Addr> = slots.iter().flat_map(addrs).collect();
        fence::install(&all)?;
        for a in self.rtnl.addresses()? {
            if all.contains(&a.addr) {
                tracing::info!(address = %a.addr, "removing a slot address this node does not hold");
                self.rtnl.remove_address(a.index, a.addr, a.prefix)?;
            }
        }
        // Connections a previous run left on the slot addresses (a crash leaves them
        // retransmitting a FIN the fence drops) would swallow the tickles of clients that
        // reuse their ports.
        close_connections(&all, "slot addresses by a previous run");
        Ok(())
    }

    fn perform(&mut self, job: Job) {
        match job {
            Job::TakeOver { spec, epoch, clients, fence_at } => {
                self.make_live(&spec, fence_at);
                if let Err(e) = self.fence.allow_resets(&addrs(&spec)) {
                    tracing::warn!(slot = spec.id, "the tickle's resets cannot leave: {e}");
                }
                self.add_addresses(&spec);
                tracing::info!(slot = spec.id, epoch, address = %spec.public_ip, clients = clients.len(), "slot taken over");
                self.announce(spec.public_ip, false);
                if !clients.is_empty() {
                    let at = self.clock.instant_now() + FIRST_TICKLE;
                    let later =
                        Later::Tickle { addr: spec.public_ip, clients, rounds_left: TICKLE_ROUNDS };
                    self.pending.push((at, later));
                }
                if let Some(ip) = spec.inside_ip {
                    self.announce(ip, true);
                }
            }
            Job::Restore { spec, fence_at } => {
                self.make_live(&spec, fence_at);
                self.add_addresses(&spec);
            }
            Job::Extend { spec, fence_at } => self.make_live(&spec, fence_at),
            Job::Drop { spec, was_live, reason } => {
                self.drop_addresses(&spec, was_live, reason.as_str());
                if reason.slot_gone() {
                    close_connections(&addrs(&spec), &format!("slot {}'s addresses", spec.id));
                }
            }
            Job::Crash => {
                tracing::warn!("drill: crashing now");
                std::process::exit(137);
            }
            Job::Barrier(done) => {
                let _ = done.send(());
            }
        }
    }

    /// The kernel lets the slot's addresses answer until `fence_at` (and not at all when it
    /// has passed: a renewal that committed while this node was frozen extends nothing).
    fn make_live(&mut self, spec: &SlotSpec, fence_at: MonoMillis) {
        let left = Duration::from_millis(fence_at.0.saturating_sub(self.clock.mono().0));
        if let Err(e) = self.fence.live_for(&addrs(spec), left) {
            tracing::error!(slot = spec.id, "cannot move the kernel fence: {e}");
        }
    }

    fn add_addresses(&mut self, spec: &SlotSpec) {
        // Interfaces come and go (a container reconnected to a network gets a new one):
        // look them up again before every add.
        match links(&mut self.rtnl, &self.sc) {
            Ok((public, inside)) => {
                if public != self.public {
                    tracing::info!(index = public.index, "the public interface changed");
                }
                (self.public, self.inside) = (public, inside);
            }
            Err(e) => tracing::warn!(slot = spec.id, "cannot look up the slot interfaces: {e}"),
        }
        let public = self.public.index;
        if let Err(e) = self.rtnl.add_address(public, spec.public_ip, spec.public_prefix) {
            tracing::error!(slot = spec.id, "cannot add the public address: {e}");
        }
        if let (Some(ip), Some(inside)) = (spec.inside_ip, self.inside) {
            if let Err(e) = self.rtnl.add_address(inside.index, ip, spec.inside_prefix) {
                tracing::error!(slot = spec.id, "cannot add the inside address: {e}");
            }
        }
    }

    fn drop_addresses(&mut self, spec: &SlotSpec, was_live: bool, why: &str) {
        if let Err(e) = self.fence.fence(&addrs(spec)) {
            tracing::error!(slot = spec.id, "cannot fence the slot's addresses: {e}");
        }
        let held = match self.rtnl.addresses() {
            Ok(a) => a.iter().any(|a| a.addr == spec.public_ip),
            Err(_) => true,
        };
        if !was_live && !held {
            return;
        }
        if let Err(e) =
            self.rtnl.remove_address(self.public.index, spec.public_ip, spec.public_prefix)
        {
            tracing::error!(slot = spec.id, "cannot remove the public address: {e}");
        }
        if let (Some(ip), Some(inside)) = (spec.inside_ip, self.inside) {
            if let Err(e) = self.rtnl.remove_address(inside.index, ip, spec.inside_prefix) {
                tracing::error!(slot = spec.id, "cannot remove the inside address: {e}");
            }
        }
        self.pending.retain(|(_, l)| match l {
            Later::Tickle { addr, .. } | Later::Announce { addr, .. } => {
                *addr != spec.public_ip && Some(*addr) != spec.inside_ip
            }
        });
        tracing::info!(slot = spec.id, address = %spec.public_ip, why, "slot addresses removed");
    }

    /// Gratuitous ARP for `addr` now, and again at [`ANNOUNCE_AGAIN`].
    fn announce(&mut self, addr: Ipv4Addr, inside: bool) {
        self.announce_once(addr, inside);
        let at = self.clock.instant_now() + ANNOUNCE_AGAIN[0];
        self.pending.push((at, Later::Announce { addr, inside, next: ANNOUNCE_AGAIN }));
    }

    fn announce_once(&self, addr: Ipv4Addr, inside: bool) {
        let link = if inside { self.inside.as_ref() } else { Some(&self.public) };
        let Some(link) = link else { return };
        if let Err(e) = self.arp.announce(link, addr) {
            tracing::warn!(address = %addr, "gratuitous ARP not sent: {e}");
        }
    }

    fn run_due(&mut self) {
        let now = self.clock.instant_now();
        let (due, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.pending).into_iter().partition(|(at, _)| *at <= now);
        self.pending = rest;
        for (at, later) in due {
            match later {
                Later::Tickle { addr, clients, rounds_left } => {
                    match takeover::tickle(addr, &clients) {
                        Ok(n) => tracing::debug!(address = %addr, tickles = n, "tickled clients"),
                        Err(e) => tracing::warn!(address = %addr, "could not tickle clients: {e}"),
                    }
                    if rounds_left > 1 {
                        let later = Later::Tickle { addr, clients, rounds_left: rounds_left - 1 };
                        self.pending.push((now + NEXT_TICKLE, later));
                    }
                }
                Later::Announce { addr, inside, next } => {
                    self.announce_once(addr, inside);
                    if let [gap, rest @ ..] = next {
                        if let Some(following) = rest.first() {
                            let at = at + (*following - *gap);
                            self.pending.push((at, Later::Announce { addr, inside, next: rest }));
                        }
                    }
                }
            }
        }
    }
}
