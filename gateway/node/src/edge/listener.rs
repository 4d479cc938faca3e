//! The client-facing listener: TLS handshake (gatehouse-runtime's accept loop), then HTTP
//! requests on the connection until it becomes a CSTP tunnel (`CONNECT /CSCOSSLC/tunnel`) or
//! closes. Every stage is bounded by `request_timeout`, and every refusal is counted in
//! `gatehouse_bad_input_total`.

use super::{cstp, login};
use crate::node::Node;
use bytes::BytesMut;
use gatehouse_proto::http::{self, HttpError, RequestHead};
use gatehouse_runtime::accept::{refusal, Handler, HandshakeError, TlsListener};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub use super::{bad_input, ClientStream};

/// Accept clients until the node stops.
pub async fn serve(node: Arc<Node>, listener: TcpListener) {
    let mut stopping = node.stopping.clone();
    let stop = async move {
        let _ = stopping.changed().await;
    };
    let l = TlsListener {
        listener,
        tls: node.tls.clone(),
        handshake_timeout: node.cfg.request_timeout,
        // With slots, the kernel fence tells a connection the node closed from one a dead
        // process left (kernel::fence); the listener itself carries MARK_LISTEN (app.rs).
        marks: node.cfg.slots.is_some().then_some(gatehouse_runtime::accept::Marks {
            open: crate::kernel::fence::MARK_OPEN,
            close: crate::kernel::fence::MARK_CLOSED,
        }),
    };
    l.serve(node, stop).await;
}

impl Handler for Node {
    fn connection(
        self: Arc<Self>,
        tls: ClientStream,
        peer: SocketAddr,
    ) -> impl std::future::Future<Output = ()> + Send {
        handle(self, tls, peer)
    }

    fn refused(&self, _peer: SocketAddr, e: &HandshakeError) {
        match e {
            HandshakeError::Failed(_) => bad_input("tls", "handshake"),
            HandshakeError::TimedOut => bad_input("tls", "timeout"),
        }
    }
}

async fn handle(node: Arc<Node>, mut tls: ClientStream, peer: SocketAddr) {
    let local = tls.get_ref().0.local_addr().ok();
    let local_port = local.map_or(0, |a| a.port());
    let local_ip = match local.map(|a| a.ip()) {
        Some(std::net::IpAddr::V4(ip)) => Some(ip),
        _ => None,
    };
    let limit = node.cfg.request_timeout;
    // One CSTP frame per TLS record: never let rustls split a write for lack of buffer
    // (openconnect rejects a frame split across records). Backpressure comes from flush.
    tls.get_mut().1.set_buffer_limit(None);
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let req = match tokio::time::timeout(limit, read_request(&mut tls, &mut buf)).await {
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) => return,
            Ok(Err(ReadError::Http(e))) => {
                tracing::info!(%peer, "refused request: {e}");
                bad_input("http", e.reason());
                let _ = tls.write_all(&refusal(&e)).await;
                let _ = tls.shutdown().await;
                return;
            }
            Ok(Err(ReadError::Io)) => return,
            Err(_) => {
                tracing::debug!(%peer, "request timed out");
                bad_input("http", "timeout");
                let _ = tls
                    .write_all(&http::response(
                        408,
                        "Request Timeout",
                        &[("Connection", "close")],
                        b"",
                    ))
                    .await;
                let _ = tls.shutdown().await;
                return;
            }
        };
        let (head, body) = req;
        if head.method == "CONNECT" {
            if head.path == "/CSCOSSLC/tunnel" {
                cstp::run(node, tls, buf, head, peer, local_ip, local_port).await;
            } else {
                bad_input("http", "connect_path");
                let _ = tls
                    .write_all(&http::response(404, "Not Found", &[("Connection", "close")], b""))
                    .await;
            }
            return;
        }
        let keep = head.keep_alive();
        let resp = login::handle(&node, &head, &body, peer, local_ip).await;
        if tls.write_all(&resp).await.is_err() || !keep {
            let _ = tls.shutdown().await;
            return;
        }
    }
}

enum ReadError {
    Http(HttpError),
    Io,
}

/// Read one request head and its body. `Ok(None)` on a clean close between requests.
async fn read_request<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut BytesMut,
) -> Result<Option<(RequestHead, Vec<u8>)>, ReadError> {
    let head = loop {
        if let Some(h) = http::parse_request_head(buf).map_err(ReadError::Http)? {
            break h;
        }
        let n = s.read_buf(buf).await.map_err(|_| ReadError::Io)?;
        if n == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(ReadError::Io);
        }
    };
    let _ = buf.split_to(head.head_len);
    let len = head.content_length().map_err(ReadError::Http)?;
    while buf.len() < len {
        let n = s.read_buf(buf).await.map_err(|_| ReadError::Io)?;
        if n == 0 {
            return Err(ReadError::Io);
        }
    }
    let body = buf.split_to(len).to_vec();
    Ok(Some((head, body)))
}
