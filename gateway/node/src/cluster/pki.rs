//! The cluster PKI and `gatehouse init`: a cluster CA, and per node a certificate naming it
//! (`node-<id>`, plus its cluster IP) that serves both as TLS server and client identity, and
//! a ready config.

use crate::tls::write_private;
use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::net::IpAddr;
use std::path::Path;

/// A CA able to sign node certificates. (An operator with their own CA skips `gatehouse init`
/// and points `[cluster]` at their CA and node certificates directly.)
pub struct ClusterCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl ClusterCa {
    /// A new self-signed cluster CA.
    pub fn generate(cluster: &str) -> Result<ClusterCa> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, format!("Gatehouse cluster CA {cluster}"));
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = p.self_signed(&key)?;
        Ok(ClusterCa { cert, key })
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The client-facing certificate every node and director presents, so a client keeps
    /// one `pin-sha256:` whichever member answers (PEM cert, PEM key).
    pub fn gateway_cert(&self, names: Vec<String>, ips: &[IpAddr]) -> Result<(String, String)> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut p = CertificateParams::new(names)?;
        for ip in ips {
            p.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        p.distinguished_name.push(DnType::CommonName, "Gatehouse gateway");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = p.signed_by(&key, &self.cert, &self.key)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// A node certificate and key (PEM) for node `id` at `ip`.
    pub fn node_cert(&self, id: u64, ip: IpAddr) -> Result<(String, String)> {
        self.named_cert(&super::node_name(id), ip)
    }

    /// A cluster certificate (client and server) named `name`, for `ip`.
    pub fn named_cert(&self, name: &str, ip: IpAddr) -> Result<(String, String)> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut p = CertificateParams::new(vec![name.to_string()])?;
        p.subject_alt_names.push(SanType::IpAddress(ip));
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &self.cert, &self.key)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// Where `gatehouse init` puts things, and with which addresses.
pub struct InitPlan<'a> {
    /// Cluster name.
    pub cluster: &'a str,
    /// Output directory.
    pub dir: &'a Path,
    /// One address per node (node ids are 1..=N in this order).
    pub addrs: Vec<IpAddr>,
    /// Client-facing port.
    pub client_port: u16,
    /// Cluster port.
    pub cluster_port: u16,
    /// Pool shared by the cluster.
    pub pool: &'a str,
    /// Director addresses (one `director-<j>/` each).
    pub directors: Vec<IpAddr>,
}

/// Write `DIR/ca.pem`, `ca.key`, the shared client-facing `server.pem`/`server.key`, and
/// `DIR/node-<id>/` with `cluster.pem`, `cluster.key`, `server.pem`, `server.key` and
/// `node.toml` for every node.
pub fn init(plan: InitPlan<'_>) -> Result<()> {
    std::fs::create_dir_all(plan.dir)
        .with_context(|| format!("creating {}", plan.dir.display()))?;
    let ca = ClusterCa::generate(plan.cluster)?;
    std::fs::write(plan.dir.join("ca.pem"), ca.cert_pem())?;
    // The CA key is only needed to add nodes later; keep it away from the nodes.
    write_private(&plan.dir.join("ca.key"), ca.key.serialize_pem().as_bytes())?;
    let mut all_ips = plan.addrs.clone();
    all_ips.extend(plan.directors.iter().copied());
    let (gw_cert, gw_key) = ca.gateway_cert(vec![plan.cluster.to_string()], &all_ips)?;
    std::fs::write(plan.dir.join("server.pem"), &gw_cert)?;
    write_private(&plan.dir.join("server.key"), gw_key.as_bytes())?;
    for (i, ip) in plan.addrs.iter().enumerate() {
        let id = i as u64 + 1;
        let nd = plan.dir.join(super::node_name(id));
        std::fs::create_dir_all(&nd)?;
        let (cert, key) = ca.node_cert(id, *ip)?;
        std::fs::write(nd.join("cluster.pem"), cert)?;
        write_private(&nd.join("cluster.key"), key.as_bytes())?;
        std::fs::copy(plan.dir.join("ca.pem"), nd.join("ca.pem"))?;
        std::fs::write(nd.join("server.pem"), &gw_cert)?;
        write_private(&nd.join("server.key"), gw_key.as_bytes())?;
        let peers: Vec<String> = plan
            .addrs
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(j, a)| {
                format!(
                    "{{ id = {}, addr = \"{}\" }}",
                    j + 1,
                    std::net::SocketAddr::new(*a, plan.cluster_port)
                )
            })
            .collect();
        let cfg = crate::config::demo_config("data", &std::net::SocketAddr::new(*ip, plan.client_port).to_string())
            .replace("id = 1\n", &format!("id = {id}\ntls_cert = \"server.pem\"\ntls_key = \"server.key\"\n"))
            .replace("cidr = \"10.99.0.0/24\"", &format!("cidr = \"{}\"", plan.pool))
            .replace("mode = \"routed\"", "mode = \"nat\"\nnat_interface = \"eth1\"")
            + &format!(
                "\n[cluster]\nname = \"{}\"\nlisten = \"{}\"\nca_cert = \"ca.pem\"\ncert = \"cluster.pem\"\nkey = \"cluster.key\"\npeers = [{}]\n",
                plan.cluster,
                std::net::SocketAddr::new(*ip, plan.cluster_port),
                peers.join(", ")
            );
        std::fs::write(nd.join("node.toml"), cfg)?;
    }
    for (j, ip) in plan.directors.iter().enumerate() {
        let name = format!("director-{}", j + 1);
        let dd = plan.dir.join(&name);
        std::fs::create_dir_all(&dd)?;
        let (cert, key) = ca.named_cert(&name, *ip)?;
        std::fs::write(dd.join("cluster.pem"), cert)?;
        write_private(&dd.join("cluster.key"), key.as_bytes())?;
        std::fs::copy(plan.dir.join("ca.pem"), dd.join("ca.pem"))?;
        std::fs::write(dd.join("server.pem"), &gw_cert)?;
        write_private(&dd.join("server.key"), gw_key.as_bytes())?;
        let nodes: Vec<String> = plan
            .addrs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                format!(
                    "{{ id = {}, addr = \"{}\" }}",
                    i + 1,
                    std::net::SocketAddr::new(*a, plan.cluster_port)
                )
            })
            .collect();
        let cfg = format!(
            "# gatehouse-director configuration (generated by `gatehouse init`)\n[director]\nlisten = \"{}\"\ntls_cert = \"server.pem\"\ntls_key = \"server.key\"\nmetrics_listen = \"127.0.0.1:9465\"\naffinity = false\n\n[cluster]\nca_cert = \"ca.pem\"\ncert = \"cluster.pem\"\nkey = \"cluster.key\"\nnodes = [{}]\n",
            std::net::SocketAddr::new(*ip, plan.client_port),
            nodes.join(", ")
        );
        std::fs::write(dd.join("director.toml"), cfg)?;
    }
    Ok(())
}
