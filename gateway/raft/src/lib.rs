//! Gatehouse's openraft storage: the Raft log, the vote and state-machine snapshots in sled.
//!
//! This crate is the only code in Gatehouse that knows sled. The storage is generic over the
//! replicated state ([`ReplicatedState`]); `session_db` implements that trait for the one state
//! Gatehouse replicates, `gatehouse_core::SessionDb`, so the node needs no wrapper type.
//!
//! One sled database per node directory holds three trees:
//! - `logs`: Raft log entries keyed by big-endian `u64` index, serde_json values;
//! - `meta`: vote, committed log id and last purged log id;
//! - `snapshot`: the current snapshot (metadata and bytes).
//!
//! Appends, votes, truncations and purges are flushed to disk before they are acknowledged. The
//! state machine itself lives in memory; a restart restores it from the last snapshot and openraft
//! replays the committed log after it.
//!
//! ```ignore
//! let (log_store, state_machine) = gatehouse_raft::open::<MyState>(dir)?;
//! let state = state_machine.shared();
//! let applied = state_machine.applied_watch();
//! let raft = openraft::Raft::<TypeConfig<MyState>>::new(id, config, network, log_store, state_machine).await?;
//! ```
#![warn(missing_docs)]

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod arrivals;
mod log_store;
mod session_db;
mod state_machine;

pub use arrivals::Arrivals;
pub use log_store::SledLogStore;
pub use state_machine::{SharedState, SledSnapshotBuilder, SledStateMachine};

/// What a replicated state machine must provide. `apply` is pure: no clock, no randomness.
pub trait ReplicatedState:
    Default + Clone + serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static
{
    /// A command proposed through Raft and applied on every replica.
    type Command: Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static;
    /// What applying a command returns to the proposer.
    type Outcome: Clone
        + std::fmt::Debug
        + Default
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static;
    /// Apply one committed command, carried by the log entry at `index`. Must be
    /// deterministic: every replica computes the same state (the index is the same on all).
    fn apply(&mut self, index: u64, cmd: &Self::Command) -> Self::Outcome;
}

/// The application data carried by a Raft log entry: one command of the replicated state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Request<C>(pub C);

/// openraft type configuration for a replicated state `S`.
///
/// `D = Request<S::Command>`, `R = S::Outcome`, `NodeId = u64`, `Node = BasicNode`.
pub struct TypeConfig<S>(PhantomData<S>);

// openraft wants the config type to be Copy/Ord/...; it is a zero-sized marker, so these hold
// for every `S` and must not require anything of `S` (a derive would).
impl<S> fmt::Debug for TypeConfig<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TypeConfig")
    }
}
impl<S> Clone for TypeConfig<S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S> Copy for TypeConfig<S> {}
impl<S> Default for TypeConfig<S> {
    fn default() -> Self {
        Self(PhantomData)
    }
}
impl<S> PartialEq for TypeConfig<S> {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}
impl<S> Eq for TypeConfig<S> {}
impl<S> PartialOrd for TypeConfig<S> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<S> Ord for TypeConfig<S> {
    fn cmp(&self, _other: &Self) -> Ordering {
        Ordering::Equal
    }
}
impl<S> Hash for TypeConfig<S> {
    fn hash<H: Hasher>(&self, _state: &mut H) {}
}

impl<S: ReplicatedState> openraft::RaftTypeConfig for TypeConfig<S> {
    type D = Request<S::Command>;
    type R = S::Outcome;
    type NodeId = u64;
    type Node = openraft::BasicNode;
    type Entry = openraft::Entry<Self>;
    type SnapshotData = std::io::Cursor<Vec<u8>>;
    type AsyncRuntime = openraft::TokioRuntime;
    type Responder = openraft::impls::OneshotResponder<Self>;
}

/// The openraft node type for a replicated state `S`.
pub type GatehouseRaft<S> = openraft::Raft<TypeConfig<S>>;

/// Errors opening the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The sled database in the node directory could not be opened.
    #[error(
        "cannot open the raft store in {path}: {source}; check that the directory is writable \
         and that no other gatehouse node is using it"
    )]
    Open {
        /// The node directory.
        path: PathBuf,
        /// What sled reported.
        source: sled::Error,
    },
    /// sled failed while reading or writing the store.
    #[error("raft store I/O failed: {0}")]
    Sled(#[from] sled::Error),
    /// A persisted record could not be decoded (corrupt store or incompatible version).
    #[error("cannot decode the persisted {what} in the raft store: {source}")]
    Decode {
        /// Which record.
        what: &'static str,
        /// What serde_json reported.
        source: serde_json::Error,
    },
}

/// Open (or create) the node's store in `dir`: one sled database shared by the log store and the
/// state machine. The state machine is restored from the last persisted snapshot.
pub fn open<S: ReplicatedState>(
    dir: &Path,
) -> Result<(SledLogStore<TypeConfig<S>>, SledStateMachine<S>), StoreError> {
    let db = sled::Config::new()
        .path(dir)
        .open()
        .map_err(|source| StoreError::Open { path: dir.to_path_buf(), source })?;
    let log_store = SledLogStore::new(&db)?;
    let state_machine = SledStateMachine::new(&db)?;
    tracing::debug!(path = %dir.display(), "raft store opened");
    Ok((log_store, state_machine))
}
