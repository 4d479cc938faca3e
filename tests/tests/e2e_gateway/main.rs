//! End to end, one node: the real openconnect client in a client namespace, a Gatehouse node
//! in the gateway namespace with a real tun device, a lan host behind it. Needs root;
//! fails under CI=true when it cannot run.
#![allow(clippy::unwrap_used)]

mod bad_input;
mod fixtures;
mod login;
mod node;
mod timers;
