//! The session db is what Gatehouse replicates: `SessionDb` itself is the state machine, with
//! no wrapper type. One log entry carries a batch of commands — every write proposed on a node
//! while its previous batches were committing (group commit) — applied in order, each at its
//! own timestamp.

use crate::ReplicatedState;
use gatehouse_core::{Command, Outcome, SessionDb};

impl ReplicatedState for SessionDb {
    type Command = Vec<Command>;
    type Outcome = Vec<Outcome>;
    fn apply(&mut self, index: u64, cmds: &Vec<Command>) -> Vec<Outcome> {
        cmds.iter().map(|c| self.apply_entry(index, c)).collect()
    }
}
