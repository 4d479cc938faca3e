//! A small replicated state for the storage tests: counters by name.
#![allow(dead_code)]

use std::collections::BTreeMap;

use gatehouse_raft::ReplicatedState;
use serde::{Deserialize, Serialize};

/// Named counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub values: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CounterCmd {
    Add { name: String, by: u64 },
    Reset { name: String },
}

impl CounterCmd {
    pub fn add(name: &str, by: u64) -> Self {
        CounterCmd::Add { name: name.to_string(), by }
    }
}

/// The counter's value after the command.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterOutcome(pub u64);

impl ReplicatedState for Counters {
    type Command = CounterCmd;
    type Outcome = CounterOutcome;

    fn apply(&mut self, _index: u64, cmd: &CounterCmd) -> CounterOutcome {
        match cmd {
            CounterCmd::Add { name, by } => {
                let v = self.values.entry(name.clone()).or_default();
                *v += by;
                CounterOutcome(*v)
            }
            CounterCmd::Reset { name } => {
                self.values.remove(name);
                CounterOutcome(0)
            }
        }
    }
}

pub type C = gatehouse_raft::TypeConfig<Counters>;
