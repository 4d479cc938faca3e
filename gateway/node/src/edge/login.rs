//! Login: the AnyConnect XML aggregate-auth flow and the legacy form flow (PROTOCOL.md §1).
//! This is the only place a password is checked. On success a parent session is created in
//! one Raft entry and its token goes to the client as the `webvpn` cookie.

use crate::db::ProposeError;
use crate::edge::bad_input;
use crate::edge::token;
use crate::metrics as m;
use crate::node::Node;
use gatehouse_core::{LoggedIn, NewSession};
use gatehouse_proto::auth_xml::{self, ClientAuth, ClientAuthKind, FormSpec};
use gatehouse_proto::http::{self, RequestHead};
use std::net::SocketAddr;
use std::sync::Arc;

const FORM_MESSAGE: &str = "Please enter your username and password.";

fn xml_response(body: String) -> Vec<u8> {
    http::response(
        200,
        "OK",
        &[("Content-Type", "text/xml; charset=utf-8"), ("X-Transcend-Version", "1")],
        body.as_bytes(),
    )
}

fn form(node: &Node, error: Option<&str>, selected: Option<&str>) -> Vec<u8> {
    let groups: Vec<&str> = node.cfg.tunnel_groups.iter().map(|g| g.name.as_str()).collect();
    let shown: &[&str] = if groups.len() > 1 { &groups } else { &[] };
    xml_response(auth_xml::auth_request(&FormSpec {
        message: FORM_MESSAGE,
        error,
        groups: shown,
        selected_group: selected.or(groups.first().copied()),
        action: "/",
    }))
}

/// Answer one HTTP request that is not a CONNECT.
pub async fn handle(
    node: &Arc<Node>,
    head: &RequestHead,
    body: &[u8],
    peer: SocketAddr,
    local_ip: Option<std::net::Ipv4Addr>,
) -> Vec<u8> {
    match head.method.as_str() {
        // Legacy flow (and XML fallback) starts with GET: answer with the form.
        "GET" => form(node, None, None),
        "POST" => {
            let trimmed = body
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .map_or(&body[..0], |i| &body[i..]);
            let parsed = if trimmed.first() == Some(&b'<') {
                auth_xml::parse_config_auth(body)
            } else {
                auth_xml::parse_form_urlencoded(body)
            };
            match parsed {
                Ok(a) => post(node, a, peer, local_ip).await,
                Err(e) => {
                    tracing::info!(%peer, "refused login request: {e}");
                    bad_input("auth", e.reason());
                    http::response(400, "Bad Request", &[("Connection", "close")], b"")
                }
            }
        }
        _ => {
            bad_input("http", "method");
            http::response(405, "Method Not Allowed", &[("Allow", "GET, POST, CONNECT")], b"")
        }
    }
}

async fn post(
    node: &Arc<Node>,
    a: ClientAuth,
    peer: SocketAddr,
    local_ip: Option<std::net::Ipv4Addr>,
) -> Vec<u8> {
    let group = a.group_select.clone();
    if let Some(g) = &group {
        if !node.cfg.tunnel_groups.iter().any(|t| &t.name == g) {
            return form(node, Some("Unknown group; choose one from the list."), None);
        }
    }
    let (Some(user), Some(password)) = (a.username.clone(), a.password.clone()) else {
        if a.kind == ClientAuthKind::Reply {
            return form(node, Some("Username and password are required."), group.as_deref());
        }
        return form(node, None, group.as_deref());
    };
    if node.is_stopping() {
        metrics::counter!(m::LOGINS, "result" => "refused").increment(1);
        return http::response(
            503,
            "Service Unavailable",
            &[("X-Reason", "node is shutting down")],
            b"",
        );
    }
    let group = group.unwrap_or_else(|| node.cfg.tunnel_groups[0].name.clone());
    let delay = node.throttle.delay(node.clock.mono(), peer.ip(), &user);
    if !delay.is_zero() {
        metrics::counter!(m::LOGINS, "result" => "throttled").increment(1);
        tracing::info!(user = %user, source = %peer.ip(), delay_ms = delay.as_millis() as u64, "login slowed down after repeated failures");
        tokio::time::sleep(delay).await;
    }
    let users = node.users.clone();
    let u = user.clone();
    let ok =
        tokio::task::spawn_blocking(move || users.verify(&u, &password)).await.unwrap_or(false);
    if !ok {
        node.throttle.failed(node.clock.mono(), peer.ip(), &user);
        metrics::counter!(m::LOGINS, "result" => "failed").increment(1);
        tracing::info!(user = %user, source = %peer.ip(), "login failed: wrong username or password");
        return form(node, Some("Login failed."), Some(&group));
    }
    node.throttle.succeeded(&user);
    let Some(policy) = node.cfg.policy_of(&group) else {
        return form(node, Some("Unknown group."), None);
    };
    let Some(pool) = node.cfg.pools.get(&policy.address_pool).cloned() else {
        return form(node, Some("Group has no address pool."), None);
    };
    // Which slot the client came in on (the director sent it to that address).
    let slot = match node.local_slots.slot_for(local_ip) {
        Ok(slot) => slot,
        Err(gatehouse_core::slot_agent::SlotMoved) => {
            metrics::counter!(m::LOGINS, "result" => "refused").increment(1);
            return http::response(
                503,
                "Service Unavailable",
                &[("X-Reason", "slot moved to another node")],
                b"",
            );
        }
    };
    let tok = match token::mint(&node.rng) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("cannot mint a token: {e}");
            metrics::counter!(m::LOGINS, "result" => "error").increment(1);
            return http::response(
                503,
                "Service Unavailable",
                &[("X-Reason", "no randomness")],
                b"",
            );
        }
    };
    let cmd = NewSession {
        at: node.db.now(),
        user: user.clone(),
        tunnel_group: group.clone(),
        group_policy: policy.name.clone(),
        timers: policy.session_timers(),
        pool,
        token_hash: tok.hash,
        client_version: a.version.clone().unwrap_or_default(),
        public_ip: peer.ip().to_string(),
        slot,
    };
    match node.db.propose(cmd).await {
        Ok(LoggedIn { index, address, evicted }) => {
            metrics::counter!(m::LOGINS, "result" => "ok").increment(1);
            tracing::info!(session = index, user = %user, %address, source = %peer.ip(), evicted = ?evicted, "login");
            let cookie = format!("webvpn={}; Secure; HttpOnly", tok.cookie);
            http::response(
                200,
                "OK",
                &[
                    ("Content-Type", "text/xml; charset=utf-8"),
                    ("X-Transcend-Version", "1"),
                    ("Set-Cookie", &cookie),
                ],
                auth_xml::auth_success(&tok.cookie, node.cfg.banner.as_deref()).as_bytes(),
            )
        }
        Err(ProposeError::Refused(r)) => {
            metrics::counter!(m::LOGINS, "result" => "refused").increment(1);
            tracing::info!(user = %user, "login refused: {}", r.text());
            form(node, Some(r.text()), Some(&group))
        }
        Err(ProposeError::Unavailable(e)) => {
            tracing::warn!(user = %user, "login not committed: {e}");
            metrics::counter!(m::LOGINS, "result" => "error").increment(1);
            http::response(
                503,
                "Service Unavailable",
                &[("X-Reason", "session database unavailable")],
                b"",
            )
        }
    }
}
