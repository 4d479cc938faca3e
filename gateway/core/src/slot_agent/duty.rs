//! The Raft leader's slot duties: define the configured slots, then hand each vacant slot to
//! a successor. One duty runs at a time, one proposal at a time: each assignment counts the
//! ones committed before it when it picks the least-loaded node.

use super::{lapsed, ProposalResult, SlotAction};
use crate::health::{healthy_members, MemberSilence, Silence};
use crate::leaving::successor_pool;
use crate::slot::successor;
use crate::time::{MonoMillis, UnixMillis};
use crate::{Member, SlotSpec, SlotTable};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// What a duty needs from the agent's configuration.
pub(super) struct DutyConfig<'a> {
    pub me: u64,
    pub lease_ms: u64,
    pub node_down_after: Option<Duration>,
    pub members: &'a [Member],
    pub slot_silence: &'a Silence<u32, (u64, u64)>,
    pub member_silence: &'a MemberSilence,
}

/// One round of leader duties, started from the table as one pass saw it.
#[derive(Debug)]
pub(super) struct Duty {
    /// The duty's timestamp: every command carries it.
    at: UnixMillis,
    /// The table the duty was started from.
    table: SlotTable,
    /// When this node became leader (the settling delay counts from it).
    since: MonoMillis,
    /// Configured slots the table does not hold as configured, still to define.
    defines: VecDeque<SlotSpec>,
    /// Set once the definitions are done.
    assign: Option<AssignPhase>,
}

#[derive(Debug)]
struct AssignPhase {
    /// Vacant slots not looked at yet.
    vacant: VecDeque<u32>,
    healthy: Vec<u64>,
    /// Slots per node, counting the assignments this duty committed.
    owned: BTreeMap<u64, usize>,
    settling: bool,
}

impl Duty {
    pub(super) fn new(
        at: UnixMillis,
        table: SlotTable,
        since: MonoMillis,
        specs: &[SlotSpec],
    ) -> Self {
        let defines = specs
            .iter()
            .filter(|s| table.get(s.id).map(|t| &t.spec) != Some(*s))
            .cloned()
            .collect();
        Duty { at, table, since, defines, assign: None }
    }

    /// The next proposal of this duty, or `None` when it is done. Called when the duty
    /// starts and after each result.
    pub(super) fn next(&mut self, now: MonoMillis, cfg: &DutyConfig<'_>) -> Option<SlotAction> {
        if let Some(spec) = self.defines.pop_front() {
            return Some(SlotAction::ProposeDefine { spec, at: self.at });
        }
        let at = self.at;
        let table = &self.table;
        let vacant = |s: &crate::Slot| lapsed(s, cfg.slot_silence, now, cfg.lease_ms);
        let phase = self.assign.get_or_insert_with(|| {
            let healthy =
                healthy_members(cfg.members, cfg.me, cfg.member_silence, now, cfg.node_down_after);
            let mut owned: BTreeMap<u64, usize> = BTreeMap::new();
            for s in table.iter() {
                if let (Some(o), false) = (s.owner, vacant(s)) {
                    *owned.entry(o).or_default() += 1;
                }
            }
            // A fresh cluster gives its preferred owner a moment to start before anyone
            // else gets a never-assigned slot.
            let settling = cfg.node_down_after.is_some_and(|d| now.since(self.since) < d * 2);
            let vacant = table.iter().filter(|s| vacant(s)).map(|s| s.spec.id).collect();
            AssignPhase { vacant, healthy, owned, settling }
        });
        while let Some(id) = phase.vacant.pop_front() {
            let Some(s) = table.get(id) else { continue };
            if s.epoch == 0 && phase.settling && !phase.healthy.contains(&s.spec.preferred_owner) {
                continue;
            }
            let pool = successor_pool(&phase.healthy, cfg.members, s.owner.or(s.released_by));
            let Some(to) = successor(s, &pool, &phase.owned) else { continue };
            return Some(SlotAction::ProposeAssign {
                slot: id,
                node: to,
                from_epoch: s.epoch,
                seen_renewals: s.renewals,
                at,
                from: s.owner.or(s.released_by),
            });
        }
        None
    }

    /// An assignment of this duty came back.
    pub(super) fn assigned(&mut self, node: u64, result: ProposalResult) {
        if let (Some(p), ProposalResult::Applied { .. }) = (self.assign.as_mut(), result) {
            *p.owned.entry(node).or_default() += 1;
        }
    }
}
