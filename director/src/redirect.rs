//! The client-facing listener: TLS with the cluster's shared server certificate, ONE request
//! (the client's init POST, or the legacy GET), and a redirect to a slot's public address
//! (PROTOCOL.md §1.5: openconnect follows `302 Location: https://IP:PORT/` to another host,
//! clears its cookies, re-POSTs the init there and keeps that address for every reconnect).

use crate::metrics as m;
use crate::placer::Placer;
use gatehouse_proto::http::{self, HttpError};
use gatehouse_proto::slots::SlotView;
use gatehouse_runtime::accept::{refusal, Handler, HandshakeError, ServerStream, TlsListener};
use gatehouse_runtime::Clock;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Bound on the TLS handshake, and separately on reading the request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the director shares with every connection.
#[derive(Clone)]
pub struct Redirector {
    /// The slot tables and pending redirects.
    pub placer: Arc<Mutex<Placer>>,
    /// The clock.
    pub clock: Clock,
    /// TLS with the shared server certificate.
    pub tls: TlsAcceptor,
}

/// Accept clients forever.
pub async fn serve(listener: TcpListener, r: Redirector) {
    let l = TlsListener {
        listener,
        tls: r.tls.clone(),
        handshake_timeout: REQUEST_TIMEOUT,
        marks: None,
    };
    l.serve(Arc::new(r), std::future::pending()).await;
}

impl Handler for Redirector {
    async fn connection(self: Arc<Self>, mut tls: ServerStream, peer: SocketAddr) {
        self.respond(&mut tls, peer).await;
        let _ = tls.shutdown().await;
    }

    fn refused(&self, _peer: SocketAddr, e: &HandshakeError) {
        match e {
            HandshakeError::Failed(_) => m::bad_request("tls"),
            HandshakeError::TimedOut => m::bad_request("timeout"),
        }
    }
}

impl Redirector {
    /// Read one request from `s` and answer it: a redirect, a 503, or the refusal of a bad
    /// request. The caller closes the connection.
    pub async fn respond<S: AsyncRead + AsyncWrite + Unpin>(&self, s: &mut S, peer: SocketAddr) {
        let resp = match tokio::time::timeout(REQUEST_TIMEOUT, read_request(s)).await {
            Ok(Ok(path)) => {
                let choice = match self.placer.lock() {
                    Ok(mut p) => p.choose(self.clock.mono().0, Some(peer.ip())),
                    Err(_) => None,
                };
                match &choice {
                    Some(slot) => {
                        metrics::counter!(m::REDIRECTS, "slot" => slot.id.to_string()).increment(1);
                        tracing::debug!(%peer, %path, slot = slot.id, "redirect");
                    }
                    None => {
                        metrics::counter!(m::NO_SLOT).increment(1);
                        tracing::debug!(%peer, "no slot available: answered 503");
                    }
                }
                answer(choice.as_ref())
            }
            Ok(Err(ReadError::Closed)) => {
                m::bad_request("closed");
                return;
            }
            Ok(Err(ReadError::Http(e))) => {
                tracing::debug!(%peer, "refused request: {e}");
                m::bad_request(e.reason());
                refusal(&e)
            }
            Err(_) => {
                tracing::debug!(%peer, "request timed out");
                m::bad_request("timeout");
                http::response(408, "Request Timeout", &[("Connection", "close")], b"")
            }
        };
        let _ = s.write_all(&resp).await;
        let _ = s.flush().await;
    }
}

/// The response to a placed client: `302 Found` to the slot, or `503` when none is available.
pub fn answer(slot: Option<&SlotView>) -> Vec<u8> {
    match slot {
        Some(s) => {
            let location = format!("https://{}:{}/", s.public_ip, s.port);
            http::response(302, "Found", &[("Location", &location), ("Connection", "close")], b"")
        }
        None => http::response(
            503,
            "Service Unavailable",
            &[("X-Reason", "no slot available"), ("Connection", "close")],
            b"",
        ),
    }
}

enum ReadError {
    Http(HttpError),
    /// The client closed or reset before a whole request.
    Closed,
}

/// Read one request head and discard its Content-Length body; returns the request path.
async fn read_request<S: AsyncRead + Unpin>(s: &mut S) -> Result<String, ReadError> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let head = loop {
        if let Some(h) = http::parse_request_head(&buf).map_err(ReadError::Http)? {
            break h;
        }
        let n = s.read(&mut chunk).await.map_err(|_| ReadError::Closed)?;
        if n == 0 {
            return Err(ReadError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let len = head.content_length().map_err(ReadError::Http)?;
    let mut have = buf.len() - head.head_len;
    while have < len {
        let n = s.read(&mut chunk).await.map_err(|_| ReadError::Closed)?;
        if n == 0 {
            return Err(ReadError::Closed);
        }
        have += n;
    }
    Ok(head.path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_proto::slots::SlotTableView;
    use std::net::Ipv4Addr;

    fn redirector(slots: Vec<(u32, bool)>) -> Redirector {
        let mut p = Placer::new(false);
        let slots = slots
            .into_iter()
            .map(|(id, available)| SlotView {
                id,
                public_ip: Ipv4Addr::new(192, 0, 2, 100 + id as u8),
                port: 443,
                owner: Some(1),
                epoch: 1,
                sessions: 0,
                capacity: 10,
                available,
                late: false,
            })
            .collect();
        p.on_table(0, SlotTableView { node: 1, slots });
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::server::ResolvesServerCertUsingSni::new()));
        Redirector {
            placer: Arc::new(Mutex::new(p)),
            clock: Clock::new(),
            tls: TlsAcceptor::from(Arc::new(cfg)),
        }
    }

    /// Send `req` to the director over an in-memory stream; returns the whole answer.
    async fn exchange(r: &Redirector, req: &[u8]) -> String {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        client.write_all(req).await.unwrap();
        let peer: SocketAddr = "198.51.100.1:40000".parse().unwrap();
        r.respond(&mut server, peer).await;
        drop(server);
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        out
    }

    const INIT: &str = "<?xml version=\"1.0\"?><config-auth client=\"vpn\" type=\"init\"/>";

    fn post() -> Vec<u8> {
        format!(
            "POST / HTTP/1.1\r\nHost: 192.0.2.200\r\nX-Aggregate-Auth: 1\r\nContent-Length: {}\r\n\r\n{INIT}",
            INIT.len()
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn init_post_is_redirected_to_the_least_loaded_slot() {
        let r = redirector(vec![(1, true), (2, true)]);
        let a = exchange(&r, &post()).await;
        assert!(a.starts_with("HTTP/1.1 302 Found\r\n"), "{a}");
        assert!(a.contains("\r\nLocation: https://192.0.2.101:443/\r\n"), "{a}");
        assert!(
            a.contains("\r\nConnection: close\r\n") && a.ends_with("Content-Length: 0\r\n\r\n"),
            "{a}"
        );
        // Slot 1 now counts the pending client: the next one goes to slot 2.
        let b = exchange(&r, &post()).await;
        assert!(b.contains("Location: https://192.0.2.102:443/"), "{b}");
    }

    #[tokio::test]
    async fn nothing_available_is_503_with_a_reason() {
        let r = redirector(vec![(1, false), (2, false)]);
        let a = exchange(&r, &post()).await;
        assert!(a.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{a}");
        assert!(a.contains("\r\nX-Reason: no slot available\r\n"), "{a}");
    }

    #[tokio::test]
    async fn garbage_is_refused_without_a_redirect() {
        let r = redirector(vec![(1, true)]);
        let a = exchange(&r, b"\x16\x03\x01garbage\r\n\r\n").await;
        assert!(a.starts_with("HTTP/1.1 400 "), "{a}");
        let a = exchange(&r, b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n").await;
        assert!(a.starts_with("HTTP/1.1 413 "), "{a}");
        assert_eq!(r.placer.lock().unwrap().pending_on(1), 0);
    }

    #[test]
    fn answer_without_a_slot_is_503() {
        let a = String::from_utf8(answer(None)).unwrap();
        assert!(a.starts_with("HTTP/1.1 503 "), "{a}");
    }
}
