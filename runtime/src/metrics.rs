//! The Prometheus endpoint of the node and of the director: one global recorder, and its
//! exposition text served in plain HTTP.

use anyhow::{Context, Result};
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

/// Serve `GET /metrics` (any path, really) on `addr` in plain HTTP.
pub async fn serve(addr: SocketAddr, handle: PrometheusHandle) -> Result<()> {
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding metrics on {addr}"))?;
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
            let mut buf = [0u8; 1024];
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf)).await;
            let body = h.render();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(body.as_bytes()).await;
        });
    }
}
