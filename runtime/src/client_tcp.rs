//! An accepted client TCP connection that says, in its socket mark, whether the process
//! closed it: a listener may give its connections an *open mark*, set when the connection
//! is accepted, and a *close mark* that replaces it right before the process closes or
//! half-closes the connection. A FIN or RST that still carries the first mark was sent by
//! the kernel for a process that died without closing (`kill -9`, an OOM kill), and the
//! node's kernel fence drops it (gatehouse node, `kernel::fence`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The socket marks of a listener's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marks {
    /// Set when a connection is accepted.
    pub open: u32,
    /// Set right before the process closes or half-closes it.
    pub close: u32,
}

/// See the [module documentation](self).
#[derive(Debug)]
pub struct ClientTcp {
    tcp: TcpStream,
    close_mark: Option<u32>,
}

impl ClientTcp {
    /// `tcp`, marked with `marks` (`None`: left alone).
    pub fn new(tcp: TcpStream, marks: Option<Marks>) -> ClientTcp {
        if let Some(m) = marks {
            if let Err(e) = socket2::SockRef::from(&tcp).set_mark(m.open) {
                tracing::debug!("cannot mark an accepted connection: {e}");
            }
        }
        ClientTcp { tcp, close_mark: marks.map(|m| m.close) }
    }

    /// The TCP stream.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The local address the client connected to.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.tcp.local_addr()
    }

    fn mark_closing(&mut self) {
        if let Some(mark) = self.close_mark.take() {
            if let Err(e) = socket2::SockRef::from(&self.tcp).set_mark(mark) {
                tracing::debug!("cannot mark a closing connection: {e}");
            }
        }
    }
}

impl Drop for ClientTcp {
    fn drop(&mut self) {
        self.mark_closing();
    }
}

impl AsyncRead for ClientTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.mark_closing();
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
