//! The client-facing TLS identity: the configured certificate, or a self-signed one generated
//! on first start and kept in the data directory. Prints the `pin-sha256:` openconnect needs.

use anyhow::{bail, Context, Result};
use base64::Engine;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// A loaded server identity.
pub struct Identity {
    /// rustls server config (TLS 1.2 and 1.3, ring provider).
    pub server_config: Arc<rustls::ServerConfig>,
    /// `pin-sha256:<base64 SHA-256 of the SPKI>` for `openconnect --servercert`.
    pub pin: String,
    /// Where the certificate came from.
    pub cert_path: std::path::PathBuf,
}

/// Load `cert`/`key`, or generate a self-signed pair under `data_dir/tls/` on first start.
pub fn load_or_generate(
    configured: Option<&(std::path::PathBuf, std::path::PathBuf)>,
    data_dir: &Path,
) -> Result<Identity> {
    let (cert_path, key_path) = match configured {
        Some((c, k)) => (c.clone(), k.clone()),
        None => {
            let dir = data_dir.join("tls");
            let c = dir.join("cert.pem");
            let k = dir.join("key.pem");
            if !c.exists() || !k.exists() {
                generate_self_signed(&dir, &c, &k)?;
            }
            (c, k)
        }
    };
    let cert_pem =
        std::fs::read(&cert_path).with_context(|| format!("reading {}", cert_path.display()))?;
    let key_pem = std::fs::read_to_string(&key_path)
        .with_context(|| format!("reading {}", key_path.display()))?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", cert_path.display()))?;
    if certs.is_empty() {
        bail!("{}: no certificate found", cert_path.display());
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .with_context(|| format!("parsing {}", key_path.display()))?
        .with_context(|| format!("{}: no private key found", key_path.display()))?;
    let kp = rcgen::KeyPair::from_pem(&key_pem)
        .with_context(|| format!("{}: unsupported key", key_path.display()))?;
    let spki = kp.public_key_der();
    let pin = format!(
        "pin-sha256:{}",
        base64::engine::general_purpose::STANDARD
            .encode(ring::digest::digest(&ring::digest::SHA256, &spki))
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key do not match")?;
    Ok(Identity { server_config: Arc::new(server_config), pin, cert_path })
}

/// Read one DER TLV at the front of `b`: (tag, header + content length, content).
fn der_tlv(b: &[u8]) -> Option<(u8, usize, &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, hdr) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut l = 0usize;
        for i in 0..n {
            l = (l << 8) | usize::from(*b.get(2 + i)?);
        }
        (l, 2 + n)
    };
    let content = b.get(hdr..hdr.checked_add(len)?)?;
    Some((tag, hdr + len, content))
}

/// The DER SubjectPublicKeyInfo of an X.509 certificate (what `pin-sha256:` hashes), found
/// by walking `Certificate → tbsCertificate → [version] serial signature issuer validity
/// subject subjectPublicKeyInfo`. Works for any key type and key file format.
pub fn spki_of_cert(cert: &[u8]) -> Option<Vec<u8>> {
    let (_, _, certificate) = der_tlv(cert)?;
    let (_, _, mut tbs) = der_tlv(certificate)?;
    // Optional explicit version [0].
    if tbs.first() == Some(&0xa0) {
        let (_, used, _) = der_tlv(tbs)?;
        tbs = &tbs[used..];
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        let (_, used, _) = der_tlv(tbs)?;
        tbs = &tbs[used..];
    }
    let (tag, used, _) = der_tlv(tbs)?;
    (tag == 0x30).then(|| tbs[..used].to_vec())
}

fn generate_self_signed(dir: &Path, cert: &Path, key: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "gatehouse".into());
    let mut params =
        rcgen::CertificateParams::new(vec![host.trim().to_string(), "localhost".into()])
            .context("certificate parameters")?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "Gatehouse self-signed");
    let kp =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("generating key")?;
    let c = params.self_signed(&kp).context("self-signing")?;
    std::fs::write(cert, c.pem()).with_context(|| format!("writing {}", cert.display()))?;
    write_private(key, kp.serialize_pem().as_bytes())?;
    Ok(())
}

/// Write a secret file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    // `mode` applies only when the file is created: an existing file keeps its mode, so set
    // it on every write (before the secret goes in).
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {} private", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_0600_on_every_write() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.pem");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&p, b"secret").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "an existing file is made private too");
        assert_eq!(std::fs::read(&p).unwrap(), b"secret");
    }

    #[test]
    fn pin_comes_from_the_certificate_whatever_the_key_format() {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert =
            rcgen::CertificateParams::new(vec!["x".into()]).unwrap().self_signed(&kp).unwrap();
        assert_eq!(spki_of_cert(cert.der()).unwrap(), kp.public_key_der());
        assert_eq!(spki_of_cert(&[0x30, 0x03, 0x02, 0x01]), None, "truncated DER");
    }

    #[test]
    fn self_signed_is_generated_once_and_pin_is_stable() {
        let d = tempfile::tempdir().unwrap();
        let a = load_or_generate(None, d.path()).unwrap();
        let b = load_or_generate(None, d.path()).unwrap();
        assert!(a.pin.starts_with("pin-sha256:"));
        assert_eq!(a.pin, b.pin, "restart keeps the certificate");
        assert_eq!(a.pin.len(), "pin-sha256:".len() + 44);
    }
}
