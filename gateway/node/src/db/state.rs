//! openraft's type configuration of the session db: what the store, the Raft network and the
//! cluster services share. The replicated state is `gatehouse_core::SessionDb` itself
//! (gatehouse-raft implements its state-machine trait).

use gatehouse_core::SessionDb;
use gatehouse_raft::TypeConfig;

/// openraft type configuration of the session db.
pub type Tc = TypeConfig<SessionDb>;
