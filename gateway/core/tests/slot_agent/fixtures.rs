//! The shared fixtures: a virtual clock, slot specs, agents, tables and reading actions back.

use gatehouse_core::slot_agent::{
    AddReason, ClusterView, DropReason, Now, ProposalResult, SlotAction, SlotAgent, SlotAgentConfig,
};
use gatehouse_core::{Member, MonoMillis, PoolRange, SlotCommand, SlotSpec, SlotTable, UnixMillis};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Wall-clock time at monotonic zero.
pub(crate) const WALL0: u64 = 1_700_000_000_000;
pub(crate) const RENEW: u64 = 150;
pub(crate) const LEASE: u64 = 600;
pub(crate) const DOWN_AFTER: u64 = 3_000;

pub(crate) fn at(ms: u64) -> Now {
    Now { mono: MonoMillis(ms), wall: UnixMillis(WALL0 + ms) }
}

pub(crate) fn wall(ms: u64) -> UnixMillis {
    UnixMillis(WALL0 + ms)
}

pub(crate) fn spec(id: u32, preferred_owner: u64, standby: u64) -> SlotSpec {
    SlotSpec {
        id,
        public_ip: Ipv4Addr::new(192, 0, 2, id as u8),
        public_prefix: 24,
        inside_ip: None,
        inside_prefix: 24,
        pool: PoolRange {
            name: "pool".into(),
            first: Ipv4Addr::new(10, 0, id as u8, 1),
            last: Ipv4Addr::new(10, 0, id as u8, 254),
        },
        preferred_owner,
        standby,
        capacity: 100,
    }
}

pub(crate) fn agent(me: u64, specs: &[SlotSpec]) -> SlotAgent {
    let cfg = SlotAgentConfig {
        node: me,
        slots: specs.to_vec(),
        renew_interval: Duration::from_millis(RENEW),
        lease: Duration::from_millis(LEASE),
        node_down_after: Some(Duration::from_millis(DOWN_AFTER)),
    };
    SlotAgent::new(cfg, at(0))
}

pub(crate) fn member(id: u64, heartbeats: u64) -> Member {
    Member { id, last_heartbeat: wall(0), heartbeats, ..Member::default() }
}

pub(crate) fn follower() -> ClusterView {
    ClusterView { is_leader: false, ..ClusterView::default() }
}

pub(crate) fn leader(members: Vec<Member>) -> ClusterView {
    ClusterView { is_leader: true, members, ..ClusterView::default() }
}

pub(crate) fn defined(specs: &[SlotSpec]) -> SlotTable {
    let mut t = SlotTable::default();
    for s in specs {
        t.apply(wall(0), 0, &SlotCommand::Define { spec: s.clone() }).unwrap();
    }
    t
}

pub(crate) fn assign(t: &mut SlotTable, now_ms: u64, slot: u32, node: u64) {
    let s = t.get(slot).unwrap();
    let (from_epoch, seen_renewals) = (s.epoch, s.renewals);
    t.apply(wall(now_ms), 0, &SlotCommand::Assign { slot, node, from_epoch, seen_renewals })
        .unwrap();
}

pub(crate) fn renew(t: &mut SlotTable, now_ms: u64, slot: u32) {
    let s = t.get(slot).unwrap();
    let (node, epoch) = (s.owner.unwrap(), s.epoch);
    t.apply(wall(now_ms), 0, &SlotCommand::Renew { slot, node, epoch }).unwrap();
}

pub(crate) fn drain(a: &mut SlotAgent) -> Vec<SlotAction> {
    std::iter::from_fn(|| a.poll_action()).collect()
}

/// Follow the agent's timer up to and including `until`, as a driver would; every action
/// with the time it came out.
pub(crate) fn run_until(a: &mut SlotAgent, until: u64) -> Vec<(u64, SlotAction)> {
    let mut out = Vec::new();
    while let Some((t, _)) = a.poll_timeout() {
        if t.0 > until {
            break;
        }
        a.handle_timeout(at(t.0));
        out.extend(drain(a).into_iter().map(|x| (t.0, x)));
    }
    out
}

pub(crate) fn renewals(actions: &[(u64, SlotAction)]) -> Vec<u64> {
    actions
        .iter()
        .filter(|(_, x)| matches!(x, SlotAction::ProposeRenew { .. }))
        .map(|(t, _)| *t)
        .collect()
}

pub(crate) fn drops(actions: &[(u64, SlotAction)]) -> Vec<(u64, DropReason)> {
    actions
        .iter()
        .filter_map(|(t, x)| match x {
            SlotAction::DropAddresses { reason, .. } => Some((*t, *reason)),
            _ => None,
        })
        .collect()
}

pub(crate) fn applied(epoch: u64) -> ProposalResult {
    ProposalResult::Applied { epoch }
}

pub(crate) fn add(epoch: u64, reason: AddReason, fence_at: u64) -> SlotAction {
    SlotAction::AddAddresses { slot: 1, epoch, reason, fence_at: MonoMillis(fence_at) }
}

/// Node 1 was assigned slot 1 (epoch 1) at time 0 and proposed its first renewal at once;
/// it committed at 3, so the addresses are up with the deadline 0 + 600 (fence at 450).
pub(crate) fn owner_at_zero() -> (SlotAgent, SlotTable) {
    let specs = [spec(1, 1, 2)];
    let mut a = agent(1, &specs);
    let mut t = defined(&specs);
    assign(&mut t, 0, 1, 1);
    a.handle_table(at(0), &t, follower());
    let first = run_until(&mut a, 0);
    assert!(!first.iter().any(|(_, x)| matches!(x, SlotAction::AddAddresses { .. })));
    assert_eq!(renewals(&first), vec![0]);
    a.handle_renewed(at(3), 1, 1, MonoMillis(0), applied(1));
    assert_eq!(drain(&mut a), vec![add(1, AddReason::TakeOver, 450)]);
    (a, t)
}
