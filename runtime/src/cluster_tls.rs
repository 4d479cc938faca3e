//! The cluster's mutual TLS: every node and director holds a certificate from the cluster CA,
//! and a node's certificate names it (`node-<id>`), which its peers check.

use anyhow::{Context, Result};
use std::path::Path;

/// The TLS name a node's cluster certificate carries, checked by its peers.
pub fn node_name(id: u64) -> String {
    format!("node-{id}")
}

/// Where a cluster identity is on disk: the node's `[cluster]` section, the director's
/// `[cluster]` section.
pub trait ClusterTlsFiles {
    /// The cluster CA certificate (PEM).
    fn ca_cert(&self) -> &Path;
    /// Our certificate (PEM).
    fn cert(&self) -> &Path;
    /// Its key (PEM).
    fn key(&self) -> &Path;
}

/// Client and server TLS settings for the cluster port: our certificate, and the cluster CA
/// that every peer's certificate must chain to.
#[derive(Clone)]
pub struct ClusterTls {
    /// Our identity.
    pub identity: tonic::transport::Identity,
    /// The cluster CA.
    pub ca: tonic::transport::Certificate,
}

impl ClusterTls {
    /// Load the files a config names; an unreadable file is named in the error.
    pub fn load<F: ClusterTlsFiles + ?Sized>(files: &F) -> Result<ClusterTls> {
        let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        let cert = read(files.cert())?;
        let key = read(files.key())?;
        let ca = read(files.ca_cert())?;
        Ok(ClusterTls {
            identity: tonic::transport::Identity::from_pem(cert, key),
            ca: tonic::transport::Certificate::from_pem(ca),
        })
    }

    /// Server side: present our certificate, require one from the cluster CA.
    pub fn server(&self) -> tonic::transport::ServerTlsConfig {
        tonic::transport::ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
    }

    /// Client side towards node `target`: its certificate must name it.
    pub fn client(&self, target: u64) -> tonic::transport::ClientTlsConfig {
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.clone())
            .domain_name(node_name(target))
    }
}
