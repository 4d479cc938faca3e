//! The replicated state machine: `S` in memory, snapshots persisted in sled.

use std::io::Cursor;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{ReplicatedState, StoreError, TypeConfig};

const SNAPSHOT_TREE: &str = "snapshot";
const KEY_META: &[u8] = b"meta";
const KEY_DATA: &[u8] = b"data";
const KEY_SEQ: &[u8] = b"seq";

type Meta = SnapshotMeta<u64, BasicNode>;
type Membership = StoredMembership<u64, BasicNode>;
type Error = StorageError<u64>;

/// Read access to the replicated state, shared with the state machine owned by Raft.
pub struct SharedState<S>(Arc<RwLock<S>>);

impl<S> Clone for SharedState<S> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<S> SharedState<S> {
    /// Run `f` on the current state. Keep `f` short: it holds off `apply`.
    pub fn read<R>(&self, f: impl FnOnce(&S) -> R) -> R {
        f(&self.read_guard())
    }

    fn read_guard(&self) -> RwLockReadGuard<'_, S> {
        // A poisoned lock means an `apply` panicked; the state is still the last one written,
        // and refusing every later read would not help anyone.
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_guard(&self) -> RwLockWriteGuard<'_, S> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a snapshot holds: the serialized form of the whole state machine.
#[derive(Serialize, Deserialize)]
struct SnapshotPayload<S> {
    last_applied: Option<LogId<u64>>,
    last_membership: Membership,
    state: S,
}

/// The persisted-snapshot half of the state machine, shared by the state machine and its
/// snapshot builders.
#[derive(Clone)]
struct SnapshotStore {
    db: sled::Db,
    tree: sled::Tree,
    /// Serializes snapshot writes so an older build never replaces a newer snapshot.
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl SnapshotStore {
    fn read_meta(&self) -> Result<Option<Meta>, StoreError> {
        match self.tree.get(KEY_META)? {
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|source| StoreError::Decode { what: "snapshot metadata", source }),
            None => Ok(None),
        }
    }

    fn read(&self) -> Result<Option<(Meta, Vec<u8>)>, StoreError> {
        let Some(meta) = self.read_meta()? else { return Ok(None) };
        let data = self.tree.get(KEY_DATA)?.map(|v| v.to_vec()).unwrap_or_default();
        Ok(Some((meta, data)))
    }

    /// Persist `data` as the current snapshot unless a newer one is already stored, and flush.
    async fn write(&self, meta: &Meta, data: &[u8]) -> Result<(), Error> {
        let err = |e: &dyn std::fmt::Display| {
            StorageIOError::write_snapshot(Some(meta.signature()), openraft::AnyError::error(e))
        };
        let _guard = self.lock.lock().await;
        let current = self.read_meta().map_err(|e| err(&e))?;
        if current.is_some_and(|c| c.last_log_id > meta.last_log_id) {
            tracing::debug!(snapshot = %meta.snapshot_id, "a newer snapshot is already stored");
            return Ok(());
        }
        let meta_bytes = serde_json::to_vec(meta).map_err(|e| err(&e))?;
        let mut batch = sled::Batch::default();
        batch.insert(KEY_META, meta_bytes);
        batch.insert(KEY_DATA, data);
        self.tree.apply_batch(batch).map_err(|e| err(&e))?;
        // openraft purges the log up to the snapshot right after this returns.
        self.db.flush_async().await.map_err(|e| err(&e))?;
        Ok(())
    }

    /// A snapshot id unique within this node's store, surviving restarts.
    fn next_id(&self, last: Option<LogId<u64>>) -> Result<String, sled::Error> {
        let seq = self
            .tree
            .update_and_fetch(KEY_SEQ, |old| {
                let n = old.and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0);
                Some(n.wrapping_add(1).to_be_bytes().to_vec())
            })?
            .and_then(|b| b.as_ref().try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        Ok(match last {
            Some(l) => format!("{}-{}-{}-{}", l.leader_id.term, l.leader_id.node_id, l.index, seq),
            None => format!("none-{seq}"),
        })
    }
}

/// The replicated state machine: `S` in memory plus the last applied log id and membership.
///
/// Snapshots are serialized with serde_json and persisted in sled's `snapshot` tree; on open the
/// state is restored from the last snapshot and openraft replays the committed log after it.
/// Take [`Self::shared`] and [`Self::applied_watch`] before handing this to `Raft::new`.
pub struct SledStateMachine<S: ReplicatedState> {
    state: SharedState<S>,
    last_applied: Option<LogId<u64>>,
    last_membership: Membership,
    applied_tx: watch::Sender<u64>,
    snapshots: SnapshotStore,
}

impl<S: ReplicatedState> SledStateMachine<S> {
    /// Open the snapshot tree of `db` and restore the state from the persisted snapshot.
    pub(crate) fn new(db: &sled::Db) -> Result<Self, StoreError> {
        let snapshots = SnapshotStore {
            db: db.clone(),
            tree: db.open_tree(SNAPSHOT_TREE)?,
            lock: Arc::new(tokio::sync::Mutex::new(())),
        };
        let (state, last_applied, last_membership) = match snapshots.read()? {
            Some((meta, data)) => {
                let payload: SnapshotPayload<S> = serde_json::from_slice(&data)
                    .map_err(|source| StoreError::Decode { what: "snapshot", source })?;
                tracing::debug!(snapshot = %meta.snapshot_id, "state restored from snapshot");
                (payload.state, meta.last_log_id, meta.last_membership)
            }
            None => (S::default(), None, Membership::default()),
        };
        let (applied_tx, _) = watch::channel(last_applied.map_or(0, |l| l.index));
        Ok(Self {
            state: SharedState(Arc::new(RwLock::new(state))),
            last_applied,
            last_membership,
            applied_tx,
            snapshots,
        })
    }

    /// A read handle on the state, usable concurrently with Raft.
    pub fn shared(&self) -> SharedState<S> {
        self.state.clone()
    }

    /// The index of the last applied log entry (0 before any), updated after every applied batch.
    pub fn applied_watch(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    /// The last applied log id.
    pub fn last_applied(&self) -> Option<LogId<u64>> {
        self.last_applied
    }
}

impl<S: ReplicatedState> RaftStateMachine<TypeConfig<S>> for SledStateMachine<S> {
    type SnapshotBuilder = SledSnapshotBuilder<S>;

    async fn applied_state(&mut self) -> Result<(Option<LogId<u64>>, Membership), Error> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<S::Outcome>, Error>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig<S>>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let shared = self.state.clone();
        let mut state = shared.write_guard();
        let mut outcomes = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            let outcome = match entry.payload {
                EntryPayload::Blank => S::Outcome::default(),
                EntryPayload::Normal(request) => state.apply(entry.log_id.index, &request.0),
                EntryPayload::Membership(membership) => {
                    self.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                    S::Outcome::default()
                }
            };
            outcomes.push(outcome);
        }
        drop(state);
        if let Some(last) = self.last_applied {
            self.applied_tx.send_replace(last.index);
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Copying a large state takes tens of milliseconds (100,000 sessions: ~70 ms). On a
        // multi-threaded runtime, hand this worker's other tasks (Raft's heartbeats among them)
        // to another worker meanwhile.
        let copy = || self.state.read(S::clone);
        let state = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(copy),
            _ => copy(),
        };
        SledSnapshotBuilder {
            payload: SnapshotPayload {
                last_applied: self.last_applied,
                last_membership: self.last_membership.clone(),
                state,
            },
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, Error> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), Error> {
        let data = snapshot.into_inner();
        let payload: SnapshotPayload<S> = serde_json::from_slice(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        self.snapshots.write(meta, &data).await?;
        *self.state.write_guard() = payload.state;
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        self.applied_tx.send_replace(self.last_applied.map_or(0, |l| l.index));
        tracing::info!(snapshot = %meta.snapshot_id, "installed snapshot from leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig<S>>>, Error> {
        let stored = self.snapshots.read().map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(stored.map(|(meta, data)| Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}

/// Builds a snapshot from a copy of the state taken when the builder was created.
pub struct SledSnapshotBuilder<S: ReplicatedState> {
    payload: SnapshotPayload<S>,
    snapshots: SnapshotStore,
}

impl<S: ReplicatedState> RaftSnapshotBuilder<TypeConfig<S>> for SledSnapshotBuilder<S> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig<S>>, Error> {
        let last_log_id = self.payload.last_applied;
        // Encoding a large state takes long: keep it off the async workers, so Raft's
        // heartbeats and the node's tunnels keep running meanwhile.
        let placeholder = SnapshotPayload {
            last_applied: self.payload.last_applied,
            last_membership: self.payload.last_membership.clone(),
            state: S::default(),
        };
        let payload = std::mem::replace(&mut self.payload, placeholder);
        let (data, payload) =
            tokio::task::spawn_blocking(move || (serde_json::to_vec(&payload), payload))
                .await
                .map_err(|e| {
                    StorageIOError::write_snapshot(None, &std::io::Error::other(e.to_string()))
                })?;
        self.payload = payload;
        let data = data.map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let meta = Meta {
            last_log_id,
            last_membership: self.payload.last_membership.clone(),
            snapshot_id: self
                .snapshots
                .next_id(last_log_id)
                .map_err(|e| StorageIOError::write_snapshot(None, &e))?,
        };
        self.snapshots.write(&meta, &data).await?;
        tracing::debug!(snapshot = %meta.snapshot_id, bytes = data.len(), "snapshot built");
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}
