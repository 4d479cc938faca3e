//! The answer to `CONNECT /CSCOSSLC/tunnel`: the `X-CSTP-*` headers of PROTOCOL.md §2.3, as
//! a pure function of the session, its policy, the negotiated MTU and `now`.

use super::ip::prefix_mask;
use crate::policy::GroupPolicy;
use crate::session::ParentSession;
use crate::time::UnixMillis;
use std::time::Duration;

/// What the client asked for in its `CONNECT` request (the two headers that matter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientMtu<'a> {
    /// `X-CSTP-MTU` as sent.
    pub mtu: Option<&'a str>,
    /// `X-CSTP-Base-MTU` as sent.
    pub base_mtu: Option<&'a str>,
}

impl<'a> ClientMtu<'a> {
    /// The two values taken from a parsed request head.
    pub fn from_head(head: &'a gatehouse_proto::http::RequestHead) -> Self {
        ClientMtu { mtu: head.header("x-cstp-mtu"), base_mtu: head.header("x-cstp-base-mtu") }
    }
}

/// The tunnel MTU: the client's `X-CSTP-MTU` caps ours (it knows its path); ours caps the tun
/// device. A value below 576 (or not a number) is ignored.
pub fn negotiate_mtu(client: ClientMtu<'_>, ours: u16) -> u16 {
    client
        .mtu
        .and_then(|v| v.trim().parse::<u16>().ok())
        .filter(|&v| v >= 576)
        .map_or(ours, |v| v.min(ours))
}

/// Seconds as the headers carry them: at least 1, `none` for no limit.
fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "none".to_string(), |d| d.as_secs().max(1).to_string())
}

/// The `X-CSTP-*` answer of PROTOCOL.md §2.3, in wire order. No DTLS headers: the node offers
/// CSTP only.
///
/// `prefix_len` is the length of the session's address pool (32 when unknown), `mtu` the
/// result of [`negotiate_mtu`]; `X-CSTP-Session-Timeout-Remaining` counts from `now`.
pub fn connect_headers(
    now: UnixMillis,
    s: &ParentSession,
    policy: Option<&GroupPolicy>,
    prefix_len: u8,
    mtu: u16,
    client: ClientMtu<'_>,
) -> Vec<(&'static str, String)> {
    let mut h: Vec<(&'static str, String)> = Vec::new();
    h.push(("X-CSTP-Version", "1".into()));
    h.push(("X-CSTP-Server-Name", "Gatehouse".into()));
    if let Some(p) = policy {
        h.push(("X-CSTP-DPD", secs(p.dpd_interval_client)));
        if let Some(d) = &p.default_domain {
            h.push(("X-CSTP-Default-Domain", d.clone()));
        }
    }
    h.push(("X-CSTP-Address", s.address.to_string()));
    h.push(("X-CSTP-Netmask", prefix_mask(prefix_len).to_string()));
    if let Some(p) = policy {
        for d in &p.dns {
            h.push(("X-CSTP-DNS", d.to_string()));
        }
        for (net, len) in &p.split_include {
            h.push(("X-CSTP-Split-Include", format!("{net}/{}", prefix_mask(*len))));
        }
        h.push(("X-CSTP-Keepalive", secs(p.keepalive)));
    }
    h.push(("X-CSTP-Idle-Timeout", secs(s.timers.idle_timeout)));
    h.push(("X-CSTP-Disconnected-Timeout", secs(s.timers.disconnected_timeout)));
    let remaining = s.max_connect_deadline().map(|t| t.since(now));
    h.push(("X-CSTP-Session-Timeout", secs(s.timers.max_connect_time)));
    if let Some(r) = remaining {
        h.push(("X-CSTP-Session-Timeout-Remaining", r.as_secs().to_string()));
    }
    h.push(("X-CSTP-Rekey-Method", "none".into()));
    let base = client
        .base_mtu
        .and_then(|v| v.trim().parse::<u16>().ok())
        .filter(|&v| v >= 1280)
        .map_or(1500, |v| v.min(1500));
    h.push(("X-CSTP-Base-MTU", base.to_string()));
    h.push(("X-CSTP-MTU", mtu.to_string()));
    h
}
