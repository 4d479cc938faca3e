//! The client-facing TLS identity: it lives in gatehouse-runtime (the director loads one
//! too), re-exported here at its old path.

pub use gatehouse_runtime::tls::{load_or_generate, spki_of_cert, write_private, Identity};
