//! The session db as openraft's replicated state, and openraft's type configuration: what
//! the store, the Raft network and the cluster services share.

use gatehouse_core::{Command, Outcome, SessionDb};
use gatehouse_raft::TypeConfig;
use serde::{Deserialize, Serialize};

/// `SessionDb` as openraft's replicated state (a newtype: the trait and the type live in
/// different crates). One log entry carries a batch of commands — every write proposed on a
/// node while its previous batches were committing (see `run_batcher`) — applied in order,
/// each at its own timestamp.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Replicated(pub SessionDb);

impl gatehouse_raft::ReplicatedState for Replicated {
    type Command = Vec<Command>;
    type Outcome = Vec<Outcome>;
    fn apply(&mut self, cmds: &Vec<Command>) -> Vec<Outcome> {
        cmds.iter().map(|c| self.0.apply(c)).collect()
    }
}

/// openraft type configuration of the session db.
pub type Tc = TypeConfig<Replicated>;
