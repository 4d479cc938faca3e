//! `director.toml` (written by `gatehouse init --directors ...`). Parsed into raw serde structs,
//! then validated; every error names the file, the key and what is accepted (exit 64 in `main`).

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A configuration error: which file, which key, what was wrong and what is accepted.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct ConfigError {
    /// The config file.
    pub file: String,
    /// The offending key, dotted (`cluster.nodes[0].addr`).
    pub key: String,
    /// What was wrong and what is accepted.
    pub message: String,
}

/// A validated director configuration.
#[derive(Debug, Clone)]
pub struct DirectorConfig {
    /// Client-facing TLS listener.
    pub listen: SocketAddr,
    /// The certificate every node presents to clients (one pin for the whole cluster).
    pub tls_cert: PathBuf,
    /// Its key.
    pub tls_key: PathBuf,
    /// Prometheus endpoint; `None` when set to "none".
    pub metrics_listen: Option<SocketAddr>,
    /// Place by rendezvous hashing on the client's address instead of by load.
    pub affinity: bool,
    /// Cluster CA: every node's certificate must chain to it.
    pub ca_cert: PathBuf,
    /// Our cluster identity (`director-<j>`).
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// Nodes to watch the slot table from: (node id, cluster address), in config order.
    pub nodes: Vec<(u64, SocketAddr)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    director: RawDirector,
    cluster: RawCluster,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirector {
    listen: Option<String>,
    tls_cert: String,
    tls_key: String,
    metrics_listen: Option<String>,
    #[serde(default)]
    affinity: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    ca_cert: String,
    cert: String,
    key: String,
    nodes: Vec<RawNode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: u64,
    addr: String,
}

impl DirectorConfig {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<DirectorConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            key: "-".into(),
            message: format!("cannot read: {e}"),
        })?;
        DirectorConfig::parse(path, &text)
    }

    /// Validate config text; `path` names the file in errors and anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<DirectorConfig, ConfigError> {
        let file = path.display().to_string();
        let err = |key: &str, message: String| ConfigError {
            file: file.clone(),
            key: key.to_string(),
            message,
        };
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let key = e.span().map(|sp| {
                let line = text[..sp.start.min(text.len())].lines().count().max(1);
                format!("line {line}")
            });
            err(&key.unwrap_or_else(|| "-".into()), e.message().to_string())
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let rel = |p: &str| -> PathBuf {
            let p = PathBuf::from(p);
            if p.is_absolute() {
                p
            } else {
                base.join(p)
            }
        };
        let sock = |key: &str, s: &str| -> Result<SocketAddr, ConfigError> {
            s.parse()
                .map_err(|_| err(key, format!("{s:?} is not an address:port like \"0.0.0.0:443\"")))
        };
        let d = &raw.director;
        let listen = sock("director.listen", d.listen.as_deref().unwrap_or("0.0.0.0:443"))?;
        let metrics_listen = match d.metrics_listen.as_deref() {
            Some("none") => None,
            other => Some(sock("director.metrics_listen", other.unwrap_or("127.0.0.1:9465"))?),
        };
        let c = &raw.cluster;
        if c.nodes.is_empty() {
            return Err(err(
                "cluster.nodes",
                "empty: list at least one node, e.g. [{ id = 1, addr = \"10.0.0.1:7443\" }]".into(),
            ));
        }
        let mut nodes = Vec::with_capacity(c.nodes.len());
        for (i, n) in c.nodes.iter().enumerate() {
            let addr = sock(&format!("cluster.nodes[{i}].addr"), &n.addr)?;
            if nodes.iter().any(|(id, _)| *id == n.id) {
                return Err(err(
                    &format!("cluster.nodes[{i}].id"),
                    format!("{} is listed twice; accepted: one entry per node id", n.id),
                ));
            }
            nodes.push((n.id, addr));
        }
        Ok(DirectorConfig {
            listen,
            tls_cert: rel(&d.tls_cert),
            tls_key: rel(&d.tls_key),
            metrics_listen,
            affinity: d.affinity,
            ca_cert: rel(&c.ca_cert),
            cert: rel(&c.cert),
            key: rel(&c.key),
            nodes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `gatehouse init --directors` writes (gateway/node/src/cluster/pki.rs).
    const GENERATED: &str = r#"# gatehouse-director configuration (generated by `gatehouse init`)
[director]
listen = "10.0.0.200:443"
tls_cert = "server.pem"
tls_key = "server.key"
metrics_listen = "127.0.0.1:9465"
affinity = false

[cluster]
ca_cert = "ca.pem"
cert = "cluster.pem"
key = "cluster.key"
nodes = [{ id = 1, addr = "10.0.0.1:7443" }, { id = 2, addr = "10.0.0.2:7443" }]
"#;

    fn parse(t: &str) -> Result<DirectorConfig, ConfigError> {
        DirectorConfig::parse(Path::new("/etc/gatehouse/director.toml"), t)
    }

    #[test]
    fn generated_config_is_valid_and_paths_are_relative_to_it() {
        let c = parse(GENERATED).unwrap();
        assert_eq!(c.listen, "10.0.0.200:443".parse().unwrap());
        assert_eq!(c.tls_cert, PathBuf::from("/etc/gatehouse/server.pem"));
        assert_eq!(c.ca_cert, PathBuf::from("/etc/gatehouse/ca.pem"));
        assert_eq!(
            c.nodes,
            vec![(1, "10.0.0.1:7443".parse().unwrap()), (2, "10.0.0.2:7443".parse().unwrap())]
        );
        assert!(!c.affinity);
        let none = parse(&GENERATED.replace("\"127.0.0.1:9465\"", "\"none\"")).unwrap();
        assert_eq!(none.metrics_listen, None);
    }

    #[test]
    fn errors_name_file_key_and_accepted_values() {
        let e = parse(&GENERATED.replace("10.0.0.200:443", "nonsense")).unwrap_err().to_string();
        assert!(e.starts_with("/etc/gatehouse/director.toml: director.listen:"), "{e}");
        assert!(e.contains("address:port"), "{e}");
        let e = parse(&GENERATED.replace("10.0.0.2:7443", "10.0.0.2")).unwrap_err().to_string();
        assert!(e.contains("cluster.nodes[1].addr"), "{e}");
        let e = parse(&GENERATED.replace("id = 2", "id = 1")).unwrap_err().to_string();
        assert!(e.contains("cluster.nodes[1].id") && e.contains("listed twice"), "{e}");
        let e = parse(&GENERATED.replace("affinity = false", "affinity = \"yes\"")).unwrap_err();
        assert!(e.to_string().contains("line 7"), "{e}");
        let e = parse(&(GENERATED.to_string() + "\n[bogus]\n")).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        let e = parse(&GENERATED.replace("tls_key = \"server.key\"\n", "")).unwrap_err();
        assert!(e.to_string().contains("tls_key"), "{e}");
        let empty = GENERATED.lines().filter(|l| !l.starts_with("nodes")).collect::<Vec<_>>();
        let e = parse(&(empty.join("\n") + "\nnodes = []\n")).unwrap_err().to_string();
        assert!(e.contains("cluster.nodes") && e.contains("at least one"), "{e}");
        let e = DirectorConfig::load(Path::new("/nonexistent/director.toml")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/director.toml: -: cannot read"), "{e}");
    }
}
