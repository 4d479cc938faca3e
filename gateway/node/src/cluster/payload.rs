//! The JSON payload every cluster RPC carries (proto/proto/cluster.proto), and the message
//! size limit of the cluster port.

use super::pb::Payload;
use serde::Serialize;
use tonic::{Response, Status};

/// Largest message on the cluster port either way (a snapshot travels in one message).
pub(crate) const MAX_MESSAGE: usize = 256 << 20;

/// A request's JSON payload.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(p: &Payload) -> Result<T, Status> {
    serde_json::from_slice(&p.json)
        .map_err(|e| Status::invalid_argument(format!("undecodable payload: {e}")))
}

/// An answer as a JSON payload.
pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Response<Payload>, Status> {
    serde_json::to_vec(v)
        .map(|json| Response::new(Payload { json }))
        .map_err(|e| Status::internal(e.to_string()))
}
