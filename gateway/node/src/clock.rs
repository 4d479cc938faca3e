//! The one clock: it lives in gatehouse-runtime (the director reads it too), re-exported here
//! at its old path.

pub use gatehouse_runtime::clock::Clock;
