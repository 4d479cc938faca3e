//! Model test of the session database (STYLE.md "Model tests").
//!
//! proptest drives random sequences of logins, tunnel attaches and detaches, logoffs, timer
//! expiries, clock jumps, node restarts (a serde round trip of the whole state) and follower
//! snapshot installs against a plain reference model, and checks after every step:
//! - one address ↔ one session, and the lease table is exactly the live sessions;
//! - no token is accepted once its session's ending committed;
//! - every acknowledged session stays live until something named it in an ending;
//! - deadlines: `Expire` succeeds exactly when the model's deadline has passed, and `expired`
//!   and `next_deadline` agree with the model;
//! - never more than `simultaneous_logins` live sessions per user;
//! - session indices and per-session tunnel ids only grow;
//! - every outcome is the one the model predicts, and the journal of endings matches;
//! - a follower applying the same commands holds an equal state after every step.
//!
//! Failing seeds are persisted in `tests/regressions/model.proptest-regressions` and replayed
//! first on every run.
#![allow(clippy::unwrap_used)]

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($fmt:tt)+) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err(format!("{}\n  db:    {:?}\n  model: {:?}", format!($($fmt)+), l, r));
        }
    }};
}

mod fixtures;
mod harness;
mod invariants;
mod ops;
mod reference;

use fixtures::policy;
use gatehouse_core::TunnelKind;
use harness::Harness;
use ops::{op, Op, TokenPick};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut h = Harness::new();
    for op in ops {
        if let Err(e) = h.step(op).and_then(|()| h.check()) {
            let trace = h.trace.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n");
            return Err(TestCaseError::fail(format!("{e}\ncommands applied:\n{trace}")));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/regressions/model.proptest-regressions",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn session_db_matches_reference_model(ops in prop::collection::vec(op(), 1..200)) {
        run(&ops)?;
    }
}

/// The shrunk form of the committed regression seed, spelled out: with `auto_reconnect` off, the
/// datagram tunnel that joins the session's first ssl tunnel is refused as if it were a
/// reconnect (DESIGN.md §2.2: the client opens `ssl`, then optionally a datagram tunnel; §2.6:
/// a resume is a new `ssl` tunnel).
#[test]
fn datagram_tunnel_joining_the_first_ssl_tunnel_is_not_a_reconnect() {
    let mut h = Harness::new();
    let ops = [
        Op::Login { user: 0, policy: 3, small: false },
        Op::Attach { token: TokenPick::Live(0), kind: TunnelKind::Ssl, node: 1, ip: 0, port: 1 },
        Op::Attach { token: TokenPick::Live(0), kind: TunnelKind::Dtls, node: 1, ip: 0, port: 2 },
    ];
    assert!(!policy(3).auto_reconnect);
    for op in &ops {
        if let Err(e) = h.step(op).and_then(|()| h.check()) {
            panic!("{e}\ncommands applied:\n  {}", h.trace.join("\n  "));
        }
    }
}
