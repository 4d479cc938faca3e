//! Wiring: load the certificates, start the metrics endpoint, one watch per node, the
//! redirect listener, and run until SIGINT or SIGTERM.

use crate::config::DirectorConfig;
use crate::metrics as m;
use crate::placer::Placer;
use crate::redirect::{self, Redirector};
use anyhow::{Context, Result};
use gatehouse_runtime::{Clock, ClusterTls};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Run the director until it is told to stop.
pub async fn run(cfg: DirectorConfig) -> Result<()> {
    let clock = Clock::new();
    let base = cfg.tls_cert.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    let identity = gatehouse_runtime::tls::load_or_generate(
        Some(&(cfg.tls_cert.clone(), cfg.tls_key.clone())),
        &base,
    )
    .context("client-facing certificate")?;
    let cluster_tls = ClusterTls::load(&cfg)?;
    if let Some(addr) = cfg.metrics_listen {
        let handle = m::install()?;
        tokio::spawn(async move {
            if let Err(e) = m::serve(addr, handle).await {
                tracing::warn!("metrics endpoint stopped: {e:#}");
            }
        });
    }
    let placer = Arc::new(Mutex::new(Placer::new(cfg.affinity)));
    for (id, addr) in &cfg.nodes {
        tokio::spawn(crate::watch::watch(*id, *addr, cluster_tls.clone(), placer.clone(), clock));
    }
    let p = placer.clone();
    tokio::spawn(async move {
        loop {
            let age = p.lock().ok().and_then(|p| p.table_age_ms(clock.mono().0));
            if let Some(ms) = age {
                metrics::gauge!(m::TABLE_AGE).set(ms as f64 / 1000.0);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let r = Redirector {
        placer,
        clock,
        tls: tokio_rustls::TlsAcceptor::from(identity.server_config.clone()),
    };
    tokio::spawn(redirect::serve(listener, r));
    tracing::info!(
        listen = %cfg.listen,
        nodes = cfg.nodes.len(),
        affinity = cfg.affinity,
        pin = %identity.pin,
        "gatehouse director ready"
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("gatehouse director stopping");
    Ok(())
}
