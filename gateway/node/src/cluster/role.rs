//! Who may call what on the cluster port. Every caller presents a certificate of the cluster
//! CA (mutual TLS checks the chain); its name (subject alternative name) says its role:
//! `node-<id>` a gateway node, `director-<name>` a director, `operator-<name>` an operator's
//! remote tool. Only the CA key makes such a name, and `gatehouse init` keeps that key off
//! every node and director, so a role cannot be forged with a certificate the cluster holds.
//!
//! Each service allows the roles it serves ([`Allowed`]): Raft RPCs only from the node whose
//! id the request carries, forwarded writes only from nodes, slot watches from nodes and
//! directors, drill moves from nodes. Every refusal is counted
//! (`gatehouse_cluster_refused_total{rpc, role}`) and written to the audit log (tracing target
//! `gatehouse::audit`), as is every drill move (`drill_service`).

use rustls::pki_types::CertificateDer;
use std::fmt;
use tonic::{Request, Status};

/// The tracing target of the audit log.
pub const AUDIT: &str = "gatehouse::audit";

/// A caller's role, from its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Gateway node `id`.
    Node(u64),
    /// A director.
    Director(String),
    /// An operator's remote tool.
    Operator(String),
}

impl Role {
    /// The role's kind, as the metrics label it.
    pub fn kind(&self) -> &'static str {
        match self {
            Role::Node(_) => "node",
            Role::Director(_) => "director",
            Role::Operator(_) => "operator",
        }
    }

    /// The role a certificate name gives, if any.
    pub fn from_name(name: &str) -> Option<Role> {
        if let Some(id) = name.strip_prefix("node-") {
            return id.parse().ok().filter(|id| *id > 0).map(Role::Node);
        }
        let named = |rest: &str| {
            (!rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
                .then(|| rest.to_string())
        };
        if let Some(rest) = name.strip_prefix("director-") {
            return named(rest).map(Role::Director);
        }
        name.strip_prefix("operator-").and_then(named).map(Role::Operator)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Node(id) => write!(f, "node-{id}"),
            Role::Director(n) => write!(f, "director-{n}"),
            Role::Operator(n) => write!(f, "operator-{n}"),
        }
    }
}

/// Why a caller has no role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoRole {
    /// No client certificate (a connection without mutual TLS).
    #[error("no client certificate")]
    NoCertificate,
    /// The certificate could not be parsed.
    #[error("unreadable client certificate")]
    Unreadable,
    /// No name of the certificate is a role's (or two are, of different roles).
    #[error("the certificate names no single role")]
    NoRoleName,
}

/// The role of the certificate chain a caller presented (its end-entity certificate first).
pub fn role_of(certs: Option<&[CertificateDer<'_>]>) -> Result<Role, NoRole> {
    let der = certs.and_then(|c| c.first()).ok_or(NoRole::NoCertificate)?;
    let ee = webpki::EndEntityCert::try_from(der).map_err(|_| NoRole::Unreadable)?;
    let mut roles = ee.valid_dns_names().filter_map(Role::from_name);
    let role = roles.next().ok_or(NoRole::NoRoleName)?;
    if roles.any(|r| r != role) {
        return Err(NoRole::NoRoleName);
    }
    Ok(role)
}

/// Which roles a service serves.
#[derive(Debug, Clone, Copy)]
pub struct Allowed {
    /// The RPC's name (metrics label, audit log).
    pub rpc: &'static str,
    /// Gateway nodes.
    pub node: bool,
    /// Directors.
    pub director: bool,
}

impl Allowed {
    /// Only gateway nodes.
    pub const fn nodes(rpc: &'static str) -> Allowed {
        Allowed { rpc, node: true, director: false }
    }

    fn allows(&self, role: &Role) -> bool {
        match role {
            Role::Node(_) => self.node,
            Role::Director(_) => self.director,
            // No cluster RPC serves operators yet (their tools use the local admin API).
            Role::Operator(_) => false,
        }
    }
}

/// The caller's role if `allowed` serves it; otherwise `PERMISSION_DENIED` (or
/// `UNAUTHENTICATED` without a role), counted and audited.
pub fn check<T>(r: &Request<T>, allowed: Allowed) -> Result<Role, Status> {
    let certs = r.peer_certs();
    let role = match role_of(certs.as_deref().map(|c| c.as_slice())) {
        Ok(role) => role,
        Err(e) => return Err(refuse(allowed.rpc, "none", &r.remote_addr(), &e.to_string(), true)),
    };
    if !allowed.allows(&role) {
        let why = format!("{role} may not call {}", allowed.rpc);
        return Err(refuse(allowed.rpc, role.kind(), &r.remote_addr(), &why, false));
    }
    Ok(role)
}

/// A Raft RPC: only from gateway node `sender`, the node the request says sent it.
pub fn check_raft_sender<T>(r: &Request<T>, rpc: &'static str, sender: u64) -> Result<(), Status> {
    match check(r, Allowed::nodes(rpc))? {
        Role::Node(id) if id == sender => Ok(()),
        role => {
            let why = format!("{role} sent a {rpc} as node {sender}");
            Err(refuse(rpc, role.kind(), &r.remote_addr(), &why, false))
        }
    }
}

fn refuse(
    rpc: &'static str,
    kind: &'static str,
    from: &Option<std::net::SocketAddr>,
    why: &str,
    unauthenticated: bool,
) -> Status {
    metrics::counter!(crate::metrics::CLUSTER_REFUSED, "rpc" => rpc, "role" => kind).increment(1);
    let from = from.map_or_else(|| "?".to_string(), |a| a.to_string());
    tracing::warn!(target: AUDIT, %from, rpc, "refused: {why}");
    if unauthenticated {
        Status::unauthenticated(why.to_string())
    } else {
        Status::permission_denied(why.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_give_roles() {
        assert_eq!(Role::from_name("node-3"), Some(Role::Node(3)));
        assert_eq!(Role::from_name("node-0"), None);
        assert_eq!(Role::from_name("node-x"), None);
        assert_eq!(Role::from_name("director-1"), Some(Role::Director("1".into())));
        assert_eq!(Role::from_name("operator-alice"), Some(Role::Operator("alice".into())));
        assert_eq!(Role::from_name("operator-"), None);
        assert_eq!(Role::from_name("director-a.b"), None);
        assert_eq!(Role::from_name("gatehouse"), None);
    }

    #[test]
    fn certificates_give_roles() {
        let ca = super::super::pki::ClusterCa::generate("t").unwrap();
        let ip = std::net::IpAddr::from([127, 0, 0, 1]);
        let der = |pem: &str| {
            use rustls::pki_types::pem::PemObject;
            CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
        };
        let (node, _) = ca.node_cert(2, ip).unwrap();
        assert_eq!(role_of(Some(&[der(&node)])), Ok(Role::Node(2)));
        let (dir, _) = ca.named_cert("director-1", ip).unwrap();
        assert_eq!(role_of(Some(&[der(&dir)])), Ok(Role::Director("1".into())));
        let (gw, _) = ca.gateway_cert(vec!["gatehouse".into()], &[ip]).unwrap();
        assert_eq!(role_of(Some(&[der(&gw)])), Err(NoRole::NoRoleName));
        assert_eq!(role_of(None), Err(NoRole::NoCertificate));
        assert_eq!(role_of(Some(&[CertificateDer::from(vec![1, 2, 3])])), Err(NoRole::Unreadable));
    }
}
