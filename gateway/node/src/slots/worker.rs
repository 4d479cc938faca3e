//! The one thread that touches the interfaces: `ip`, `arping`, `ss -K`, `iptables` and the
//! tickles run here, never on an async worker.
//!
//! Jobs run in the order they were sent: an add never overtakes an earlier drop, and a
//! graceful switch's drop is done before its barrier answers (the release is proposed after
//! that). Nothing here sleeps: gratuitous ARP is started and reaped later, and the tickle
//! rounds that follow it are timers of this thread, so a drop due for fencing never waits
//! behind an announcement.

use super::takeover;
use crate::clock::Clock;
use crate::config::SlotsConfig;
use gatehouse_core::SlotSpec;
use std::net::Ipv4Addr;
use std::process::Child;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A client endpoint to tickle: its address and port, and our (slot) port.
pub(super) type Client = (Ipv4Addr, u16, u16);

/// Something to do to the interfaces.
pub(super) enum Job {
    /// Remove drill-crash rules a previous run left behind.
    ClearDrillRules,
    /// Reset connections a previous run left on these addresses.
    KillConnections(Vec<Ipv4Addr>),
    /// Add the slot's addresses, announce them, tickle the clients.
    TakeOver { spec: SlotSpec, epoch: u64, clients: Vec<Client> },
    /// Add the slot's addresses again (no announcement).
    Restore { spec: SlotSpec },
    /// Remove the slot's addresses; unless they were live, only if the host has them.
    Drop { spec: SlotSpec, was_live: bool, why: &'static str },
    /// Drill crash: fence the slots' addresses as a dead machine would, then exit.
    Crash { specs: Vec<SlotSpec> },
    /// Answer once every earlier job is done.
    Barrier(oneshot::Sender<()>),
}

/// The sending end of the worker.
#[derive(Clone)]
pub(super) struct Worker {
    tx: mpsc::Sender<Job>,
}

impl Worker {
    /// Start the worker thread for the interfaces `sc` names.
    pub(super) fn start(sc: &SlotsConfig, clock: Clock) -> std::io::Result<Worker> {
        let (tx, rx) = mpsc::channel();
        let mut state = State {
            public_if: sc.public_interface.clone(),
            inside_if: sc.inside_interface.clone(),
            clock,
            tickles: Vec::new(),
            arpings: Vec::new(),
        };
        std::thread::Builder::new().name("gatehouse-slots".into()).spawn(move || state.run(rx))?;
        Ok(Worker { tx })
    }

    /// Queue `job`; false when the worker is gone.
    pub(super) fn send(&self, job: Job) -> bool {
        self.tx.send(job).is_ok()
    }
}

/// Tickle rounds still to send for one announced address.
struct Tickles {
    at: Instant,
    addr: Ipv4Addr,
    clients: Vec<Client>,
    rounds_left: u8,
}

/// The clients' answers must come to this node and not to the old owner's MAC address:
/// the first round goes shortly after the gratuitous ARP, two more follow.
const FIRST_TICKLE: Duration = Duration::from_millis(20);
const NEXT_TICKLE: Duration = Duration::from_millis(150);
const TICKLE_ROUNDS: u8 = 3;
/// How often finished arping processes are reaped while some run.
const REAP_EVERY: Duration = Duration::from_millis(200);

struct State {
    public_if: String,
    inside_if: String,
    clock: Clock,
    tickles: Vec<Tickles>,
    arpings: Vec<Child>,
}

impl State {
    fn run(&mut self, rx: mpsc::Receiver<Job>) {
        loop {
            let now = self.clock.instant_now();
            let mut wait = self.tickles.iter().map(|t| t.at.saturating_duration_since(now)).min();
            if !self.arpings.is_empty() {
                wait = Some(wait.map_or(REAP_EVERY, |w| w.min(REAP_EVERY)));
            }
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
            self.send_due_tickles();
            self.arpings.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
        }
    }

    fn perform(&mut self, job: Job) {
        match job {
            Job::ClearDrillRules => takeover::clear_drill_rules(),
            Job::KillConnections(addrs) => addrs.into_iter().for_each(takeover::kill_connections),
            Job::TakeOver { spec, epoch, clients } => {
                self.add_addresses(&spec);
                tracing::info!(slot = spec.id, epoch, address = %spec.public_ip, clients = clients.len(), "slot taken over");
                let public_if = self.public_if.clone();
                self.announce(spec.public_ip, &public_if, clients);
                if let Some(ip) = spec.inside_ip {
                    let inside_if = self.inside_if.clone();
                    self.announce(ip, &inside_if, Vec::new());
                }
            }
            Job::Restore { spec } => self.add_addresses(&spec),
            Job::Drop { spec, was_live, why } => self.drop_addresses(&spec, was_live, why),
            Job::Crash { specs } => {
                takeover::fence_for_crash(&specs, &self.public_if, &self.inside_if);
                tracing::warn!("drill: crashing now");
                std::process::exit(137);
            }
            Job::Barrier(done) => {
                let _ = done.send(());
            }
        }
    }

    fn add_addresses(&self, spec: &SlotSpec) {
        if let Err(e) = takeover::add_address(spec.public_ip, spec.public_prefix, &self.public_if) {
            tracing::error!(slot = spec.id, "cannot add the public address: {e}");
        }
        if let Some(ip) = spec.inside_ip {
            if let Err(e) = takeover::add_address(ip, spec.inside_prefix, &self.inside_if) {
                tracing::error!(slot = spec.id, "cannot add the inside address: {e}");
            }
        }
    }

    fn drop_addresses(&self, spec: &SlotSpec, was_live: bool, why: &str) {
        if !was_live && !takeover::has_address(spec.public_ip) {
            return;
        }
        if let Err(e) =
            takeover::remove_address(spec.public_ip, spec.public_prefix, &self.public_if)
        {
            tracing::error!(slot = spec.id, "cannot remove the public address: {e}");
        }
        if let Some(ip) = spec.inside_ip {
            if let Err(e) = takeover::remove_address(ip, spec.inside_prefix, &self.inside_if) {
                tracing::error!(slot = spec.id, "cannot remove the inside address: {e}");
            }
        }
        tracing::info!(slot = spec.id, address = %spec.public_ip, why, "slot addresses removed");
    }

    /// Gratuitous ARP for `addr` on `dev` now, then the tickle rounds for `clients`.
    fn announce(&mut self, addr: Ipv4Addr, dev: &str, clients: Vec<Client>) {
        match takeover::gratuitous_arp(addr, dev) {
            Ok(child) => self.arpings.push(child),
            Err(e) => tracing::warn!(
                "gratuitous ARP for {addr} not sent (is iputils-arping installed?): {e}"
            ),
        }
        if !clients.is_empty() {
            let at = self.clock.instant_now() + FIRST_TICKLE;
            self.tickles.push(Tickles { at, addr, clients, rounds_left: TICKLE_ROUNDS });
        }
    }

    fn send_due_tickles(&mut self) {
        let now = self.clock.instant_now();
        for t in self.tickles.iter_mut().filter(|t| t.at <= now) {
            match takeover::tickle(t.addr, &t.clients) {
                Ok(n) => tracing::debug!(address = %t.addr, tickles = n, "tickled clients"),
                Err(e) => tracing::warn!(address = %t.addr, "could not tickle clients: {e}"),
            }
            t.rounds_left -= 1;
            t.at = now + NEXT_TICKLE;
        }
        self.tickles.retain(|t| t.rounds_left > 0);
    }
}
