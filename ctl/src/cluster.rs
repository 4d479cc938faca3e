//! `show cluster` output.

use gatehouse_proto::admin as pb;
use serde::Serialize;
use std::fmt::Write;

/// `show cluster` as text.
pub fn render(r: &pb::ClusterReply) -> String {
    let mut o = String::new();
    let leader = r.leader.map_or_else(|| "none".to_string(), |l| format!("node {l}"));
    let _ =
        writeln!(o, "Node {} : {}    Term : {}    Leader : {}", r.node_id, r.state, r.term, leader);
    let _ = writeln!(
        o,
        "Last log index : {}    Commit index : {}    Applied index : {}    Snapshot index : {}",
        r.last_log_index, r.commit_index, r.applied_index, r.snapshot_index
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<6} {:<22} {:<8} {:>9} {:>6} {:<6}",
        "Node", "Address", "Role", "Matched", "Lag", "Status"
    );
    for m in &r.members {
        let role = if Some(m.id) == r.leader {
            "leader"
        } else if m.voter {
            "voter"
        } else {
            "learner"
        };
        let matched = m.matched_index.map_or_else(|| "-".to_string(), |x| x.to_string());
        let lag = m.lag.map_or_else(|| "-".to_string(), |x| x.to_string());
        let status = match (m.down, m.departed, m.leaving) {
            (true, _, _) => "down",
            (_, true, _) => "left",
            (_, _, true) => "leaving",
            _ => "up",
        };
        let _ = writeln!(
            o,
            "{:<6} {:<22} {:<8} {:>9} {:>6} {:<6}",
            m.id, m.addr, role, matched, lag, status
        );
    }
    o
}

/// `show cluster --json`.
#[derive(Debug, Serialize)]
pub struct ClusterJson {
    /// The answering node.
    pub node_id: u64,
    /// Its Raft state.
    pub state: String,
    /// Current term.
    pub term: u64,
    /// Current leader.
    pub leader: Option<u64>,
    /// Last log index here.
    pub last_log_index: u64,
    /// Commit index (leader) or applied index.
    pub commit_index: u64,
    /// Applied index here.
    pub applied_index: u64,
    /// Members.
    pub members: Vec<MemberJson>,
}

/// One member in `show cluster --json`.
#[derive(Debug, Serialize)]
pub struct MemberJson {
    /// Node id.
    pub id: u64,
    /// Cluster address.
    pub addr: String,
    /// Voter (else learner).
    pub voter: bool,
    /// Replicated up to (leader's view).
    pub matched_index: Option<u64>,
    /// Entries behind the leader.
    pub lag: Option<u64>,
    /// Declared down by the leader.
    pub down: bool,
    /// Stopping: waits for its turn to leave (or took it).
    pub leaving: bool,
    /// Took its turn to leave and is not back yet.
    pub departed: bool,
}

impl From<&pb::ClusterReply> for ClusterJson {
    fn from(r: &pb::ClusterReply) -> Self {
        ClusterJson {
            node_id: r.node_id,
            state: r.state.clone(),
            term: r.term,
            leader: r.leader,
            last_log_index: r.last_log_index,
            commit_index: r.commit_index,
            applied_index: r.applied_index,
            members: r
                .members
                .iter()
                .map(|m| MemberJson {
                    id: m.id,
                    addr: m.addr.clone(),
                    voter: m.voter,
                    matched_index: m.matched_index,
                    lag: m.lag,
                    down: m.down,
                    leaving: m.leaving,
                    departed: m.departed,
                })
                .collect(),
        }
    }
}
