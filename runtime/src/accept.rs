//! The client-facing TLS accept loop of the node and of the director: accept (backing off when
//! the process runs out of file descriptors), one task per connection, the TLS handshake
//! bounded by a timeout, until a stop signal. Also the one map from a refused HTTP request
//! head to its status line.

use gatehouse_proto::http::{self, HttpError};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use crate::client_tcp::{ClientTcp, Marks};

/// The TLS stream of an accepted client connection.
pub type ServerStream = tokio_rustls::server::TlsStream<ClientTcp>;

/// After a failed `accept` (EMFILE and friends), wait this long instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Why a connection ended before its TLS handshake finished.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The client sent something that is not a TLS handshake we accept, or went away.
    #[error("TLS handshake failed: {0}")]
    Failed(#[source] std::io::Error),
    /// No complete handshake within the listener's handshake timeout.
    #[error("TLS handshake timed out")]
    TimedOut,
}

/// What a listener does with its connections.
pub trait Handler: Send + Sync + 'static {
    /// Serve one connection whose TLS handshake succeeded; runs in its own task.
    fn connection(
        self: Arc<Self>,
        tls: ServerStream,
        peer: SocketAddr,
    ) -> impl Future<Output = ()> + Send;

    /// A connection ended before its handshake finished (already logged at DEBUG): count it.
    fn refused(&self, peer: SocketAddr, e: &HandshakeError);
}

/// A bound TCP listener and the TLS configuration of its connections.
pub struct TlsListener {
    /// The bound socket.
    pub listener: TcpListener,
    /// The server certificate and TLS settings.
    pub tls: TlsAcceptor,
    /// Bound on the TLS handshake.
    pub handshake_timeout: Duration,
    /// The socket marks of accepted connections ([`ClientTcp`]); `None` leaves marks alone.
    pub marks: Option<Marks>,
}

impl TlsListener {
    /// Accept connections and hand each to `handler` until `stop` resolves. Connections
    /// already accepted carry on.
    pub async fn serve<H: Handler>(self, handler: Arc<H>, stop: impl Future<Output = ()>) {
        let TlsListener { listener, tls, handshake_timeout, marks } = self;
        tokio::pin!(stop);
        loop {
            tokio::select! {
                r = listener.accept() => match r {
                    Ok((tcp, peer)) => {
                        let tcp = ClientTcp::new(tcp, marks);
                        let (handler, tls) = (handler.clone(), tls.clone());
                        tokio::spawn(async move {
                            if let Some(s) = handshake(&tls, tcp, peer, handshake_timeout, &*handler).await {
                                handler.connection(s, peer).await;
                            }
                        });
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                () = &mut stop => return,
            }
        }
    }
}

async fn handshake<H: Handler>(
    tls: &TlsAcceptor,
    tcp: ClientTcp,
    peer: SocketAddr,
    limit: Duration,
    handler: &H,
) -> Option<ServerStream> {
    let _ = tcp.tcp().set_nodelay(true);
    let e = match tokio::time::timeout(limit, tls.accept(tcp)).await {
        Ok(Ok(s)) => return Some(s),
        Ok(Err(e)) => HandshakeError::Failed(e),
        Err(_) => HandshakeError::TimedOut,
    };
    tracing::debug!(%peer, "{e}");
    handler.refused(peer, &e);
    None
}

/// The status line a refused request head is answered with.
pub fn refusal_status(e: &HttpError) -> (u16, &'static str) {
    match e {
        HttpError::HeadTooLarge | HttpError::TooManyHeaders => {
            (431, "Request Header Fields Too Large")
        }
        HttpError::BodyTooLarge(_) => (413, "Payload Too Large"),
        HttpError::Unsupported(_) => (501, "Not Implemented"),
        HttpError::Malformed(_) => (400, "Bad Request"),
    }
}

/// The whole response to a refused request head: its status and `Connection: close`.
pub fn refusal(e: &HttpError) -> Vec<u8> {
    let (code, reason) = refusal_status(e);
    http::response(code, reason, &[("Connection", "close")], b"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refused_head_gets_its_status() {
        assert_eq!(refusal_status(&HttpError::HeadTooLarge).0, 431);
        assert_eq!(refusal_status(&HttpError::TooManyHeaders).0, 431);
        assert_eq!(refusal_status(&HttpError::BodyTooLarge(1 << 30)).0, 413);
        let r = String::from_utf8(refusal(&HttpError::HeadTooLarge)).unwrap();
        assert!(r.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{r}");
        assert!(r.contains("\r\nConnection: close\r\n"), "{r}");
    }
}
