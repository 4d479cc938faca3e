//! Test certificates and their openconnect pins.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::process::{run_ok, tool};

/// The `pin-sha256:<base64 of SHA-256 of the SubjectPublicKeyInfo>` openconnect's
/// `--servercert` takes, computed as PROTOCOL.md §7 shows:
/// `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256
/// -binary | base64`.
pub fn pin_sha256_of_cert_pem(pem_path: &Path) -> Result<String> {
    let script = "set -o pipefail; openssl x509 -in \"$1\" -pubkey -noout \
                  | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64";
    let out = run_ok(
        Command::new(tool("bash")).args(["-c", script, "pin"]).arg(pem_path),
        Duration::from_secs(20),
    )
    .with_context(|| format!("computing the pin of {}", pem_path.display()))?;
    let b64 = out.trim();
    ensure!(b64.len() == 44, "unexpected pin {b64:?} for {}", pem_path.display());
    Ok(format!("pin-sha256:{b64}"))
}

/// A certificate and its private key, PEM files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    /// Certificate (PEM).
    pub cert: PathBuf,
    /// Private key (PEM, PKCS#8).
    pub key: PathBuf,
}

/// Writes a self-signed ECDSA P-256 server certificate for `ip` (CN and IP SAN) into `dir`
/// as `server-cert.pem` / `server-key.pem`, using the `openssl` command.
pub fn self_signed_cert(dir: &Path, ip: Ipv4Addr) -> Result<CertFiles> {
    let cert = dir.join("server-cert.pem");
    let key = dir.join("server-key.pem");
    run_ok(
        Command::new(tool("openssl"))
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .args(["-nodes", "-days", "30", "-subj", &format!("/CN={ip}/O=gatehouse-tests")])
            .args(["-addext", &format!("subjectAltName=IP:{ip}")])
            .args(["-addext", "extendedKeyUsage=serverAuth"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
        Duration::from_secs(20),
    )
    .context("openssl req -x509")?;
    Ok(CertFiles { cert, key })
}
