//! The CSTP tunnel's rules on a virtual clock: no sockets, no sleeps, no root.
#![allow(clippy::unwrap_used)]

mod closing;
mod connect;
mod fixtures;
mod frames;
mod timers;
