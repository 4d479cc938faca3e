//! The client-facing edge: the TLS listener and its HTTP requests (`listener`), login
//! (`login`, `throttle`, `users`), where a token is made and checked (`token`), the CSTP
//! tunnel (`cstp` admission, `cstp_driver` loop around `gatehouse_core::tunnel`), the local
//! tunnel registry (`tunnels`) and the tun device (`dataplane`).

pub mod cstp;
pub mod cstp_driver;
pub mod dataplane;
pub mod listener;
pub mod login;
pub mod throttle;
pub mod token;
pub mod tunnels;
pub mod users;

/// The TLS stream of a client connection.
pub type ClientStream = gatehouse_runtime::accept::ServerStream;

/// Count a refused input (`gatehouse_bad_input_total`).
pub fn bad_input(stage: &'static str, reason: &'static str) {
    metrics::counter!(crate::metrics::BAD_INPUT, "stage" => stage, "reason" => reason).increment(1);
}
