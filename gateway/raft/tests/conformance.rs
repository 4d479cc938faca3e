//! openraft's storage conformance suite against the sled store.

mod common;

use common::{Counters, C};
use gatehouse_raft::{SledLogStore, SledStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{StorageError, StorageIOError};
use tempfile::TempDir;

struct SledBuilder;

impl StoreBuilder<C, SledLogStore<C>, SledStateMachine<Counters>, TempDir> for SledBuilder {
    async fn build(
        &self,
    ) -> Result<(TempDir, SledLogStore<C>, SledStateMachine<Counters>), StorageError<u64>> {
        let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(&e))?;
        let (log, sm) =
            gatehouse_raft::open::<Counters>(dir.path()).map_err(|e| StorageIOError::write(&e))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn sled_store_passes_openraft_storage_suite() -> anyhow::Result<()> {
    Suite::test_all(SledBuilder)?;
    Ok(())
}
