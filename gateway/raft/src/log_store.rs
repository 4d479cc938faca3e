//! The Raft log and vote in sled.

use std::fmt::Debug;
use std::io;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    LogId, LogState, OptionalSend, RaftLogId, RaftLogReader, RaftTypeConfig, StorageError,
    StorageIOError, Vote,
};
use serde::de::DeserializeOwned;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::{Arrivals, StoreError};

const LOGS_TREE: &str = "logs";
const META_TREE: &str = "meta";
const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

/// Raft log entries and vote in sled: log entries keyed by big-endian index in the `logs` tree,
/// vote, committed log id and last purged log id in the `meta` tree.
///
/// Every write that openraft must see persisted (append, vote, truncate, purge) is flushed to
/// disk before it is acknowledged. Cloning shares the same trees (this is also the log reader).
pub struct SledLogStore<C> {
    db: sled::Db,
    logs: sled::Tree,
    meta: sled::Tree,
    /// Bytes of the entries in the log (encoded), shared with `log_bytes()` handles.
    bytes: Arc<AtomicU64>,
    /// When recent entries arrived, shared with `arrivals()` handles.
    arrivals: Arrivals,
    _config: PhantomData<fn() -> C>,
}

impl<C> Clone for SledLogStore<C> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            logs: self.logs.clone(),
            meta: self.meta.clone(),
            bytes: self.bytes.clone(),
            arrivals: self.arrivals.clone(),
            _config: PhantomData,
        }
    }
}

impl<C> SledLogStore<C> {
    /// A live count of the bytes the log's entries take (as encoded): a node triggers a
    /// snapshot when it grows large, since openraft's snapshot policy counts entries and one
    /// entry may carry many commands.
    pub fn log_bytes(&self) -> Arc<AtomicU64> {
        self.bytes.clone()
    }

    /// Note when each entry arrives in this log, read from `clock` (see [`Arrivals`]); the
    /// handle answers for the recent ones.
    pub fn track_arrivals(
        &self,
        clock: impl Fn() -> std::time::Instant + Send + Sync + 'static,
    ) -> Arrivals {
        self.arrivals.set_clock(Box::new(clock));
        self.arrivals.clone()
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn io_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl<C: RaftTypeConfig> SledLogStore<C> {
    /// Open the log trees of `db`, removing entries a crash left behind a finished purge.
    pub(crate) fn new(db: &sled::Db) -> Result<Self, StoreError> {
        let store = Self {
            db: db.clone(),
            logs: db.open_tree(LOGS_TREE)?,
            meta: db.open_tree(META_TREE)?,
            bytes: Arc::new(AtomicU64::new(0)),
            arrivals: Arrivals::default(),
            _config: PhantomData,
        };
        // purge() records the purged id before deleting; finish a deletion a crash interrupted.
        let purged: Option<LogId<C::NodeId>> = store
            .meta
            .get(KEY_LAST_PURGED)?
            .map(|v| serde_json::from_slice(&v))
            .transpose()
            .map_err(|source| StoreError::Decode { what: "last purged log id", source })?;
        if let Some(purged) = purged {
            store.remove_range(..=index_key(purged.index))?;
        }
        let mut total = 0u64;
        for v in store.logs.iter().values() {
            total += v?.len() as u64;
        }
        store.bytes.store(total, Ordering::Relaxed);
        Ok(store)
    }

    fn remove_range<R: RangeBounds<[u8; 8]>>(&self, range: R) -> Result<(), sled::Error> {
        let mut batch = sled::Batch::default();
        let mut removed = 0u64;
        for item in self.logs.range(range) {
            let (key, value) = item?;
            removed += value.len() as u64;
            batch.remove(key);
        }
        self.logs.apply_batch(batch)?;
        let _ = self.bytes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
            Some(b.saturating_sub(removed))
        });
        Ok(())
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, io::Error> {
        match self.meta.get(key).map_err(io_error)? {
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(io_error),
            None => Ok(None),
        }
    }

    async fn flush(&self) -> Result<(), sled::Error> {
        self.db.flush_async().await.map(|_| ())
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for SledLogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => i.checked_add(1),
            Bound::Excluded(i) => Some(*i),
            Bound::Unbounded => None,
        };
        let iter = match end {
            Some(end) if end <= start => return Ok(Vec::new()),
            Some(end) => self.logs.range(index_key(start)..index_key(end)),
            None => self.logs.range(index_key(start)..),
        };
        let mut entries = Vec::new();
        for item in iter {
            let (key, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            let entry: C::Entry = serde_json::from_slice(&value).map_err(|e| {
                let index = key.as_ref().try_into().map(u64::from_be_bytes).unwrap_or_default();
                StorageIOError::read_log_at_index(index, &e)
            })?;
            entries.push(entry);
        }
        Ok(entries)
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for SledLogStore<C> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let last_purged_log_id: Option<LogId<C::NodeId>> =
            self.read_meta(KEY_LAST_PURGED).map_err(|e| StorageIOError::read_logs(&e))?;
        let last = match self.logs.last().map_err(|e| StorageIOError::read_logs(&e))? {
            Some((_, value)) => {
                let entry: C::Entry =
                    serde_json::from_slice(&value).map_err(|e| StorageIOError::read_logs(&e))?;
                Some(entry.get_log_id().clone())
            }
            None => None,
        };
        let last_log_id = last.or_else(|| last_purged_log_id.clone());
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let bytes = serde_json::to_vec(vote).map_err(|e| StorageIOError::write_vote(&e))?;
        self.meta.insert(KEY_VOTE, bytes).map_err(|e| StorageIOError::write_vote(&e))?;
        // A vote counts only once it survives a crash: a node must never vote twice in a term.
        self.flush().await.map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        self.read_meta(KEY_VOTE).map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        // Not flushed on its own: it only lets a restart re-apply the committed log sooner, and
        // the next append or vote flush carries it to disk.
        let bytes = serde_json::to_vec(&committed).map_err(|e| StorageIOError::write(&e))?;
        self.meta.insert(KEY_COMMITTED, bytes).map_err(|e| StorageIOError::write(&e))?;
        Ok(())
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        let committed: Option<Option<LogId<C::NodeId>>> =
            self.read_meta(KEY_COMMITTED).map_err(|e| StorageIOError::read(&e))?;
        Ok(committed.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let arrived = self.arrivals.now();
        // One batch: sled applies it atomically, so a crash never leaves a hole inside it.
        let mut batch = sled::Batch::default();
        let mut added = 0u64;
        // The entries of one append are contiguous: their first and last index say which.
        let mut span: Option<(u64, u64)> = None;
        for entry in entries {
            let log_id = entry.get_log_id();
            span = Some((span.map_or(log_id.index, |s| s.0), log_id.index));
            let bytes = serde_json::to_vec(&entry)
                .map_err(|e| StorageIOError::write_log_entry(log_id.clone(), &e))?;
            added += bytes.len() as u64;
            batch.insert(&index_key(log_id.index), bytes);
        }
        self.logs.apply_batch(batch).map_err(|e| StorageIOError::write_logs(&e))?;
        self.bytes.fetch_add(added, Ordering::Relaxed);
        if let (Some(at), Some((first, last))) = (arrived, span) {
            self.arrivals.record(first..=last, at);
        }
        // Acknowledge only what is on disk.
        match self.flush().await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(io_error(&e)));
                Err(StorageIOError::write_logs(&e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        tracing::debug!(%log_id, "truncating raft log");
        self.remove_range(index_key(log_id.index)..).map_err(|e| StorageIOError::write_logs(&e))?;
        self.arrivals.truncate(log_id.index);
        self.flush().await.map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        tracing::debug!(%log_id, "purging raft log");
        // Record the purge point first so that a crash mid-deletion is finished on open and
        // get_log_state never reports a last log id below it.
        let bytes = serde_json::to_vec(&log_id).map_err(|e| StorageIOError::write_logs(&e))?;
        self.meta.insert(KEY_LAST_PURGED, bytes).map_err(|e| StorageIOError::write_logs(&e))?;
        self.remove_range(..=index_key(log_id.index))
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.arrivals.purge(log_id.index);
        self.flush().await.map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}
