//! Cluster members as the session db sees them: heartbeats, the leader's verdict that a
//! silent member is down (which detaches its tunnels, so their sessions' timers run), and a
//! stopping member's turn to leave ([`crate::leaving`]).

use super::outcome::Rejection;
use super::SessionDb;
use crate::session::TunnelId;
use crate::time::UnixMillis;
use serde::{Deserialize, Serialize};

/// A cluster member as the session db sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Node id.
    pub id: u64,
    /// Timestamp of the last committed heartbeat (for display: liveness is judged on
    /// [`heartbeats`](Self::heartbeats), see [`crate::health`]).
    pub last_heartbeat: UnixMillis,
    /// Committed heartbeats so far.
    #[serde(default)]
    pub heartbeats: u64,
    /// Set when the leader declared it down; cleared by its next heartbeat.
    pub down_since: Option<UnixMillis>,
    /// Its last heartbeat said it is stopping and waits for its turn to leave.
    #[serde(default)]
    pub leaving: bool,
    /// It took its turn to leave ([`Depart`](crate::Depart)) and has not come back (a
    /// heartbeat that is not `leaving` clears it): no other member may leave meanwhile.
    #[serde(default)]
    pub departed: bool,
    /// It led Raft when it left and stops Raft now ([`RaftStops`](crate::RaftStops)).
    #[serde(default)]
    pub raft_stopping: bool,
    /// Who calls the election first when it stops Raft.
    #[serde(default)]
    pub raft_successor: Option<u64>,
}

impl SessionDb {
    pub(super) fn heartbeat(&mut self, at: UnixMillis, node: u64, leaving: bool) {
        let m = self.members.entry(node).or_insert(Member { id: node, ..Member::default() });
        m.last_heartbeat = m.last_heartbeat.max(at);
        m.heartbeats += 1;
        m.down_since = None;
        m.leaving = leaving;
        if !leaving {
            m.departed = false;
            m.raft_stopping = false;
            m.raft_successor = None;
        }
    }

    /// `node` takes its turn to leave: refused while another member that departed has not
    /// come back, so members that all stop at once (`docker-compose restart`) leave one by
    /// one and the cluster keeps its quorum and a home for every slot.
    pub(super) fn depart(&mut self, node: u64) -> Result<(), Rejection> {
        if self.members.values().any(|m| m.departed && m.id != node) {
            return Err(Rejection::MemberAway);
        }
        let m = self.members.entry(node).or_insert(Member { id: node, ..Member::default() });
        m.leaving = true;
        m.departed = true;
        Ok(())
    }

    pub(super) fn raft_stops(&mut self, node: u64, successor: Option<u64>) {
        let m = self.members.entry(node).or_insert(Member { id: node, ..Member::default() });
        m.raft_stopping = true;
        m.raft_successor = successor;
    }

    pub(super) fn node_down(
        &mut self,
        at: UnixMillis,
        node: u64,
        seen_heartbeats: u64,
    ) -> Result<Vec<TunnelId>, Rejection> {
        // Compare-and-set: a heartbeat that committed since the leader judged is proof of life.
        if self.members.get(&node).is_some_and(|m| m.heartbeats != seen_heartbeats) {
            return Err(Rejection::NodeAlive);
        }
        let affected: Vec<u64> = self
            .sessions
            .values()
            .filter(|s| s.tunnels.iter().any(|t| t.node == node))
            .map(|s| s.index)
            .collect();
        let mut detached = Vec::new();
        for index in affected {
            let before = self.before(index);
            if let Some(s) = self.sessions.get_mut(&index) {
                detached.extend(s.tunnels.iter().filter(|t| t.node == node).map(|t| t.id));
                s.tunnels.retain(|t| t.node != node);
                if !s.has_ssl() && s.inactive_since.is_none() {
                    s.inactive_since = Some(at);
                    s.tunnels.clear();
                }
            }
            self.reindex(index, before);
        }
        let m = self.members.entry(node).or_insert(Member { id: node, ..Member::default() });
        m.down_since.get_or_insert(at);
        Ok(detached)
    }
}
