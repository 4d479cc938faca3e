//! Cluster members as the session db sees them: heartbeats, and the leader's verdict that a
//! silent member is down (which detaches its tunnels, so their sessions' timers run).

use super::outcome::Rejection;
use super::SessionDb;
use crate::session::TunnelId;
use crate::time::UnixMillis;
use serde::{Deserialize, Serialize};

/// A cluster member as the session db sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl SessionDb {
    pub(super) fn heartbeat(&mut self, at: UnixMillis, node: u64) {
        let m = self.members.entry(node).or_insert(Member {
            id: node,
            last_heartbeat: at,
            heartbeats: 0,
            down_since: None,
        });
        m.last_heartbeat = m.last_heartbeat.max(at);
        m.heartbeats += 1;
        m.down_since = None;
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
        let m = self.members.entry(node).or_insert(Member {
            id: node,
            last_heartbeat: UnixMillis(0),
            heartbeats: 0,
            down_since: None,
        });
        m.down_since.get_or_insert(at);
        Ok(detached)
    }
}
