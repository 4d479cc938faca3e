//! The operations proptest generates, and the strategies that generate them.

use crate::fixtures::{POLICIES, S, USERS};
use gatehouse_core::TunnelKind;
use proptest::prelude::*;

/// Picks are resolved against the model at the time the operation runs, so a shrunk sequence
/// still means something.
#[derive(Debug, Clone)]
pub(crate) enum TokenPick {
    /// The token of a live session.
    Live(usize),
    /// The token of a session that ended.
    Ended(usize),
    /// A token no login ever carried.
    Never(u32),
}

#[derive(Debug, Clone)]
pub(crate) enum TunnelPick {
    /// A tunnel the model says is attached.
    Current(usize),
    /// Any tunnel id ever handed out (maybe replaced, detached, or of an ended session).
    Issued(usize),
    /// An id nothing handed out (maybe later).
    Bogus(u64, u32),
}

#[derive(Debug, Clone)]
pub(crate) enum IndexPick {
    /// A live session.
    Live(usize),
    /// A live session whose deadline has passed (falls back to any live one).
    Due(usize),
    /// Any index ever handed out (maybe ended).
    Issued(usize),
    /// An index past the last one handed out.
    Unknown(u8),
}

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Login {
        user: u8,
        policy: u8,
        small: bool,
    },
    /// The same login proposal applied again (a retried proposal).
    ReplayLogin(usize),
    Attach {
        token: TokenPick,
        kind: TunnelKind,
        node: u64,
        ip: u8,
        port: u16,
    },
    Detach {
        tunnel: TunnelPick,
        bytes: u64,
    },
    End {
        indices: Vec<IndexPick>,
        admin: bool,
    },
    Expire(IndexPick),
    /// Move the virtual clock forward.
    Advance(u64),
    /// Move the clock to the earliest model deadline plus `delta` ms (boundaries).
    ToDeadline(i8),
    /// Node kill and restart: the state is serialized and deserialized.
    Restart,
    /// The follower installs the leader's snapshot.
    FollowerSnapshot,
}

/// Picks index into whatever exists when the operation runs (modulo its length); small numbers
/// keep shrunk sequences readable.
pub(crate) fn pick() -> impl Strategy<Value = usize> {
    0..16usize
}

pub(crate) fn token_pick() -> impl Strategy<Value = TokenPick> {
    prop_oneof![
        6 => pick().prop_map(TokenPick::Live),
        2 => pick().prop_map(TokenPick::Ended),
        1 => (0..4u32).prop_map(TokenPick::Never),
    ]
}

pub(crate) fn tunnel_pick() -> impl Strategy<Value = TunnelPick> {
    prop_oneof![
        5 => pick().prop_map(TunnelPick::Current),
        2 => pick().prop_map(TunnelPick::Issued),
        1 => (0..40u64, 0..6u32).prop_map(|(i, n)| TunnelPick::Bogus(i, n)),
    ]
}

pub(crate) fn index_pick() -> impl Strategy<Value = IndexPick> {
    prop_oneof![
        4 => pick().prop_map(IndexPick::Live),
        3 => pick().prop_map(IndexPick::Due),
        2 => pick().prop_map(IndexPick::Issued),
        1 => any::<u8>().prop_map(IndexPick::Unknown),
    ]
}

pub(crate) fn kind() -> impl Strategy<Value = TunnelKind> {
    prop_oneof![3 => Just(TunnelKind::Ssl), 1 => Just(TunnelKind::Dtls), 1 => Just(TunnelKind::Quic)]
}

pub(crate) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..USERS, 0..POLICIES, prop::bool::weighted(0.5))
            .prop_map(|(user, policy, small)| Op::Login { user, policy, small }),
        1 => pick().prop_map(Op::ReplayLogin),
        7 => (token_pick(), kind(), 1..4u64, 0..2u8, any::<u16>())
            .prop_map(|(token, kind, node, ip, port)| Op::Attach { token, kind, node, ip, port }),
        4 => (tunnel_pick(), 0..1000u64).prop_map(|(tunnel, bytes)| Op::Detach { tunnel, bytes }),
        2 => (prop::collection::vec(index_pick(), 0..4), any::<bool>())
            .prop_map(|(indices, admin)| Op::End { indices, admin }),
        3 => index_pick().prop_map(Op::Expire),
        3 => (0..=120 * S).prop_map(Op::Advance),
        1 => (0..=7200 * S).prop_map(Op::Advance),
        2 => (-1..=1i8).prop_map(Op::ToDeadline),
        1 => Just(Op::Restart),
        1 => Just(Op::FollowerSnapshot),
    ]
}
