//! Gatehouse wire formats for the AnyConnect protocol spoken by the stock `openconnect` client:
//! CSTP framing ([`cstp`]), the aggregate-auth XML messages ([`auth_xml`]) and the HTTP/1.1
//! request heads and responses of the headend ([`http`]).
//!
//! Pure encoding and decoding: no I/O, no clock, no async runtime. The wire facts come from
//! `PROTOCOL.md` (§1 auth, §2 tunnel request, §3 CSTP framing).
#![warn(missing_docs)]

pub mod auth_xml;
pub mod cstp;
pub mod http;
