//! The slot agent's event loop: one sleep for the agent's one timer, and a small handler per
//! source (applied table, proposal results, switch requests, stop). It reads the clocks
//! once per wake-up and passes them in; the rules are the agent's.

use super::local::{Control, Handles};
use super::worker::{Job, Worker};
use super::SlotCtx;
use crate::config::SlotsConfig;
use crate::db::ProposeError;
use gatehouse_core::slot_agent::{
    AddReason, ClusterView, DropReason, Now, ProposalResult, SlotAction, SlotAgent, SlotAgentConfig,
};
use gatehouse_core::{MonoMillis, Rejection, SlotChange, SlotSpec};
use std::net::Ipv4Addr;
use tokio::sync::{mpsc, oneshot};

/// A proposal the agent asked for, and what became of it.
struct Done {
    action: SlotAction,
    result: Result<u64, ProposeError>,
}

/// What the loop needs besides the agent.
struct Driver {
    node: SlotCtx,
    sc: SlotsConfig,
    worker: Worker,
    done: mpsc::UnboundedSender<Done>,
}

/// Run the slot manager until the node stops. Without `[[slot]]` it returns at once.
pub async fn run(node: SlotCtx) {
    let Some(sc) = node.cfg.slots.clone() else { return };
    let worker = match Worker::start(&sc, node.clock) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(
                "cannot fence slot addresses ({e}); this node takes no slot (it needs \
                 CAP_NET_ADMIN, CAP_NET_RAW and the nftables package)"
            );
            return;
        }
    };
    let (control, mut requests) = mpsc::unbounded_channel();
    node.local_slots.attach(Handles { control, worker: worker.clone() });
    let cfg = SlotAgentConfig {
        node: node.db.node_id(),
        slots: sc.slots.clone(),
        renew_interval: sc.renew_interval,
        lease: sc.lease,
        node_down_after: node.cfg.cluster.as_ref().map(|c| c.node_down_after),
    };
    let mut agent = SlotAgent::new(cfg, now(&node));
    let (done, mut results) = mpsc::unbounded_channel();
    let d = Driver { node: node.clone(), sc, worker, done };
    let mut stopping = node.stopping.clone();
    let mut applied = node.db.applied();
    d.feed_table(&mut agent);
    let sleep = tokio::time::sleep(std::time::Duration::ZERO);
    tokio::pin!(sleep);
    let mut armed: Option<MonoMillis> = None;
    loop {
        d.perform(&mut agent);
        let Some((deadline, what)) = agent.poll_timeout() else { return };
        if armed != Some(deadline) {
            tracing::trace!(deadline = deadline.0, what, "slot agent timer");
            sleep.as_mut().reset(node.clock.instant_of(deadline));
            armed = Some(deadline);
        }
        tokio::select! {
            Some(r) = results.recv() => d.on_done(&mut agent, r),
            r = applied.changed() => {
                if r.is_err() {
                    return;
                }
                d.feed_table(&mut agent);
            }
            () = &mut sleep => {
                armed = None;
                // Leadership and membership change without an apply of ours: look again.
                d.feed_table(&mut agent);
                agent.handle_timeout(now(&node));
            }
            Some(Control::Switch { slot, done }) = requests.recv() => {
                agent.handle_switch(now(&node), slot);
                d.perform(&mut agent);
                d.worker.send(Job::Barrier(done));
            }
            _ = stopping.changed() => {
                agent.handle_stop();
                d.perform(&mut agent);
                let (done, gone) = oneshot::channel();
                if d.worker.send(Job::Barrier(done)) {
                    let _ = gone.await;
                }
                return;
            }
        }
    }
}

fn now(node: &SlotCtx) -> Now {
    Now { mono: node.clock.mono(), wall: node.db.now() }
}

/// The agent's view of a proposal's outcome.
fn proposal_result(r: &Result<u64, ProposeError>) -> ProposalResult {
    match r {
        Ok(epoch) => ProposalResult::Applied { epoch: *epoch },
        Err(ProposeError::Refused(Rejection::Slot(why))) => ProposalResult::Refused(*why),
        Err(_) => ProposalResult::NotApplied,
    }
}

impl Driver {
    /// The applied table and the cluster view, as of now.
    fn feed_table(&self, agent: &mut SlotAgent) {
        let now = now(&self.node);
        let is_leader = self.node.db.is_leader();
        self.node.db.read(|db| {
            let lease_heard = db
                .slots()
                .iter()
                .filter_map(|s| {
                    let t = self.node.db.arrived(s.lease_index)?;
                    Some((s.spec.id, self.node.clock.mono_of(t)))
                })
                .collect();
            let members = db.members().cloned().collect();
            let cluster = ClusterView { is_leader, members, lease_heard };
            agent.handle_table(now, db.slots(), cluster);
        });
    }

    /// Publish the listener's view (a drop is visible before the address goes), then carry
    /// out the agent's actions in order.
    fn perform(&self, agent: &mut SlotAgent) {
        if let Some(view) = agent.poll_view() {
            self.node.local_slots.publish(view);
        }
        while let Some(action) = agent.poll_action() {
            match action {
                SlotAction::ExtendFence { slot, fence_at } => {
                    let Some(spec) = self.spec(slot) else { continue };
                    self.worker.send(Job::Extend { spec, fence_at });
                }
                SlotAction::AddAddresses { slot, epoch, reason, fence_at } => {
                    let Some(spec) = self.spec(slot) else { continue };
                    let job = match reason {
                        AddReason::TakeOver => {
                            self.node.local_slots.note_take_over(self.node.clock.mono());
                            Job::TakeOver { clients: self.clients(&spec), spec, epoch, fence_at }
                        }
                        AddReason::Restore => {
                            tracing::info!(
                                slot,
                                "slot lease renewed again; restoring its addresses"
                            );
                            Job::Restore { spec, fence_at }
                        }
                    };
                    self.worker.send(job);
                }
                SlotAction::DropAddresses { slot, reason, was_live } => {
                    let Some(spec) = self.spec(slot) else { continue };
                    match reason {
                        DropReason::LeaseNotRenewed => tracing::warn!(
                            slot,
                            "slot lease not renewed in time; removing its addresses"
                        ),
                        DropReason::EpochMovedOn => tracing::warn!(
                            slot,
                            "slot lost (epoch moved on); removing its addresses"
                        ),
                        _ => {}
                    }
                    self.worker.send(Job::Drop { spec, was_live, reason });
                }
                proposal => self.propose(proposal),
            }
        }
    }

    /// Propose on a task of its own; the result comes back through `done`.
    fn propose(&self, action: SlotAction) {
        let Some((at, cmd)) = action.command() else { return };
        let (node, done) = (self.node.clone(), self.done.clone());
        tokio::spawn(async move {
            let result = node.db.propose(SlotChange { at, cmd }).await;
            let _ = done.send(Done { action, result });
        });
    }

    fn on_done(&self, agent: &mut SlotAgent, d: Done) {
        let now = now(&self.node);
        let result = proposal_result(&d.result);
        match d.action {
            SlotAction::ProposeRenew { slot, epoch, proposed_at, .. } => {
                if let Err(e) = &d.result {
                    tracing::debug!(slot, "slot renewal not committed: {e}");
                }
                agent.handle_renewed(now, slot, epoch, proposed_at, result);
            }
            SlotAction::ProposeDefine { spec, .. } => {
                if let Err(e) = &d.result {
                    tracing::debug!(slot = spec.id, "slot definition not committed: {e}");
                }
                agent.handle_defined(now, spec.id, result);
            }
            SlotAction::ProposeAssign { slot, node: to, from, .. } => {
                match &d.result {
                    Ok(epoch) => {
                        metrics::counter!(crate::metrics::FAILOVERS).increment(1);
                        tracing::info!(slot, to, epoch, from = ?from, "slot assigned");
                    }
                    Err(ProposeError::Refused(_)) => {}
                    Err(e) => tracing::debug!(slot, "slot assignment not committed: {e}"),
                }
                agent.handle_assigned(now, slot, to, result);
            }
            _ => {}
        }
    }

    fn spec(&self, slot: u32) -> Option<SlotSpec> {
        self.sc.slots.iter().find(|s| s.id == slot).cloned()
    }

    /// Clients whose tunnel was on another node sit on a dead TCP connection: the take-over
    /// tickles them so it resets now.
    fn clients(&self, spec: &SlotSpec) -> Vec<(Ipv4Addr, u16, u16)> {
        let me = self.node.db.node_id();
        self.node.db.read(|db| {
            db.sessions()
                .filter(|s| s.slot == Some(spec.id))
                .flat_map(|s| s.tunnels.iter())
                .filter(|t| t.node != me)
                .filter_map(|t| Some((t.public_ip.parse().ok()?, t.src_port, t.dst_port)))
                .collect()
        })
    }
}
