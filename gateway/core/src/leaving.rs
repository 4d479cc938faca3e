//! How a stopping member leaves the cluster (DESIGN.md §5): one at a time, so that stopping
//! every node at once (`docker-compose restart`, a rolling upgrade gone impatient) becomes a
//! rolling restart the clients see as switchovers.
//!
//! - A member told to stop says so in its heartbeats ([`Heartbeat::leaving`]); no vacant slot
//!   goes to a leaving member while another member can take it ([`successor_pool`]).
//! - It then asks for its turn ([`Depart`]): `apply` grants it to one member at a time,
//!   refusing while another member that departed has not come back (a heartbeat of its new
//!   start, not `leaving`, ends a departure). With its turn, the member hands its slots over
//!   (a switchover each) and stops.
//! - So when every member stops at once, one leaves while the others hold the Raft quorum and
//!   its slots; the next leaves only once it is back, and takes its slots.
//! - A leaving member that leads Raft stops Raft last, after recording that it does
//!   ([`RaftStops`]); the follower it saw furthest along, then each other member in turn
//!   ([`electors`]), calls the election as soon as the others will vote, instead of everyone
//!   waiting for an election timeout while the other slots' owners cannot renew.
//! - A member that never comes back (stopped for good) holds the others until their own
//!   waiting limit (`cluster.leave_wait`): they then leave without a turn, as they did before
//!   there were turns.
//!
//! [`Heartbeat::leaving`]: crate::Heartbeat::leaving
//! [`Depart`]: crate::Depart
//! [`RaftStops`]: crate::RaftStops

use crate::Member;

/// Whom a vacant slot last held by `prev` may go to, of the `healthy` members: those that are
/// not leaving; when only leaving members could take it (the whole cluster stops), those that
/// have not departed, so the slot stays served until its new owner's turn; failing those, all
/// of `healthy` (the caller's rules decide).
pub fn successor_pool(healthy: &[u64], members: &[Member], prev: Option<u64>) -> Vec<u64> {
    let member = |n: u64| members.iter().find(|m| m.id == n);
    let usable = |pool: &[u64]| pool.iter().any(|n| Some(*n) != prev);
    let staying: Vec<u64> =
        healthy.iter().copied().filter(|n| !member(*n).is_some_and(|m| m.leaving)).collect();
    if usable(&staying) {
        return staying;
    }
    let present: Vec<u64> =
        healthy.iter().copied().filter(|n| !member(*n).is_some_and(|m| m.departed)).collect();
    if usable(&present) {
        return present;
    }
    healthy.to_vec()
}

/// Who calls the election, in turn, when the Raft leader `leader` stops Raft as it leaves
/// ([`crate::RaftStops`]): the successor it named, then the other members that have not
/// departed, by id. Empty unless `leader` recorded that it stops. (The first may lose: a
/// follower whose log is shorter than another's gets no vote from it; the next one wins.)
pub fn electors(members: &[Member], leader: u64) -> Vec<u64> {
    let Some(l) = members.iter().find(|m| m.id == leader && m.raft_stopping) else {
        return Vec::new();
    };
    let here = |id: u64| members.iter().any(|m| m.id == id && id != leader && !m.departed);
    let first = l.raft_successor.filter(|s| here(*s));
    let rest = members.iter().map(|m| m.id).filter(|id| here(*id) && Some(*id) != first);
    first.into_iter().chain(rest).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: u64, leaving: bool, departed: bool) -> Member {
        Member { id, heartbeats: 1, leaving, departed, ..Member::default() }
    }

    #[test]
    fn staying_members_first_then_those_still_here() {
        let all = [1, 2, 3];
        let members = [m(1, true, true), m(2, false, false), m(3, true, false)];
        assert_eq!(successor_pool(&all, &members, Some(1)), vec![2]);
        // Everyone is stopping: node 1 leaves first; its slot goes to one that stays longer.
        let members = [m(1, true, true), m(2, true, false), m(3, true, false)];
        assert_eq!(successor_pool(&all, &members, Some(1)), vec![2, 3]);
        // Only the previous holder stays: the leaving ones that are still here.
        let members = [m(1, false, false), m(2, true, false), m(3, true, true)];
        assert_eq!(successor_pool(&all, &members, Some(1)), vec![1, 2]);
        // Nobody else: the caller decides (gives it back, or leaves it vacant).
        assert_eq!(successor_pool(&[1], &members, Some(1)), vec![1]);
    }

    #[test]
    fn the_named_successor_calls_the_election_first_then_the_others_by_id() {
        let mut members =
            [m(1, false, false), m(2, true, true), m(3, true, false), m(4, false, false)];
        assert_eq!(electors(&members, 2), Vec::<u64>::new(), "node 2 has not said it stops Raft");
        members[1].raft_stopping = true;
        assert_eq!(electors(&members, 2), vec![1, 3, 4]);
        members[1].raft_successor = Some(4);
        assert_eq!(electors(&members, 2), vec![4, 1, 3]);
        // A successor that has departed meanwhile is skipped.
        members[3].departed = true;
        assert_eq!(electors(&members, 2), vec![1, 3]);
    }
}
