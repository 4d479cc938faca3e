//! The Prometheus endpoint of the node and of the director: one global recorder, and its
//! exposition text served in plain HTTP.

use anyhow::{Context, Result};
use gatehouse_proto::http;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Install the global recorder, with histogram buckets for the metrics named in `buckets`
/// (the others use the exporter's summaries); returns the handle that renders the text.
pub fn install(buckets: &[(&str, &[f64])]) -> Result<PrometheusHandle> {
    let mut b = PrometheusBuilder::new();
    for (name, bounds) in buckets {
        b = b
            .set_buckets_for_metric(Matcher::Full((*name).into()), bounds)
            .context("histogram buckets")?;
    }
    b.install_recorder().context("installing the metrics recorder")
}

/// Largest request head the endpoint reads.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Serve `GET /metrics` (any path, really) on `addr` in plain HTTP.
pub async fn serve(addr: SocketAddr, handle: PrometheusHandle) -> Result<()> {
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding metrics on {addr}"))?;
    serve_on(l, handle).await
}

/// Serve on a bound listener: each connection's request head is read to its end (a head may
/// come in several segments), then the exposition text is sent and the connection closed.
pub async fn serve_on(l: tokio::net::TcpListener, handle: PrometheusHandle) -> Result<()> {
    loop {
        let (mut s, _) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!("metrics accept: {e}");
                continue;
            }
        };
        let h = handle.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut s)).await {
                Ok(Ok(true)) => {}
                // Closed, too long, broken or too slow: no answer.
                _ => return,
            }
            let answer = http::response(
                200,
                "OK",
                &[("Content-Type", "text/plain; version=0.0.4"), ("Connection", "close")],
                h.render().as_bytes(),
            );
            let _ = s.write_all(&answer).await;
            let _ = s.shutdown().await;
        });
    }
}

/// Read a request head up to its blank line; false if the peer closed first or the head is
/// over [`MAX_HEAD`].
async fn read_head(s: &mut tokio::net::TcpStream) -> std::io::Result<bool> {
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 1024];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(false);
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(true);
        }
        if head.len() > MAX_HEAD {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_head_in_two_segments_gets_the_metrics() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(serve_on(l, handle));
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.set_nodelay(true).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        c.write_all(b"\r\n").await.unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:?}");
    }

    #[tokio::test]
    async fn an_endless_head_gets_no_answer() {
        let handle = PrometheusBuilder::new().build_recorder().handle();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(serve_on(l, handle));
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = c.write_all(&[b'a'; MAX_HEAD + 2048]).await;
        let mut answer = Vec::new();
        let _ = c.read_to_end(&mut answer).await;
        assert!(answer.is_empty(), "answered a head over the limit");
    }
}
