//! The slot agent on a virtual clock (DESIGN.md §5): renewal, fencing, take-over, the
//! leader's assignments and the settling delay, member health. No sockets, no sleeps.
#![allow(clippy::unwrap_used)]

mod addresses;
mod fixtures;
mod health;
mod leader;
mod renewal;
