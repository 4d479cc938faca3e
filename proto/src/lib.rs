//! Gatehouse wire formats for the AnyConnect protocol spoken by the stock `openconnect` client:
//! CSTP framing ([`cstp`]), the aggregate-auth XML messages ([`auth_xml`]) and the HTTP/1.1
//! request heads and responses of the headend ([`http`]); and the slot table a node streams to
//! directors ([`slots`]).
//!
//! Pure encoding and decoding: no I/O, no clock, no async runtime. The wire facts come from
//! `PROTOCOL.md` (§1 auth, §2 tunnel request, §3 CSTP framing).
//!
//! With the `grpc` feature, also the generated gRPC code: the admin API [`admin`]
//! (`gatehousectl` ⇄ node) and the cluster services [`cluster`] (node ⇄ node, director ⇄ node).
#![warn(missing_docs)]

pub mod auth_xml;
pub mod cstp;
pub mod http;
pub mod slots;

/// The admin API `gatehouse.admin.v1` (proto/admin.proto): messages, client and server.
#[cfg(feature = "grpc")]
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod admin {
    tonic::include_proto!("gatehouse.admin.v1");
}

/// The cluster services `gatehouse.cluster.v1` (proto/cluster.proto): `Raft`,
/// `ForwardedWrites`, `SlotWatch` and `Drill`, their one `Payload` message, clients and servers.
#[cfg(feature = "grpc")]
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod cluster {
    tonic::include_proto!("gatehouse.cluster.v1");
}
