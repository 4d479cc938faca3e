//! The client side of the AnyConnect exchange shared by the test clients (`gh-cstp-probe`,
//! `gh-fleet`): a TLS connector that accepts any server certificate (the clients only talk to
//! test nodes in the tests' own namespaces) and the aggregate-auth requests.

use anyhow::Result;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::DigitallySignedStruct;
use std::sync::Arc;
use tokio_rustls::TlsConnector;

#[derive(Debug)]
struct AnyCert;

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS connector (ring, TLS 1.2/1.3) that does not verify the server certificate.
pub fn connector() -> Result<TlsConnector> {
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AnyCert))
    .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(cfg)))
}

/// `POST /` with an aggregate-auth XML body, as openconnect sends it; `agent` names the client.
pub fn post(agent: &str, body: &str) -> String {
    format!(
        "POST / HTTP/1.1\r\nHost: gw\r\nUser-Agent: Open AnyConnect VPN Agent {agent}\r\nX-Aggregate-Auth: 1\r\nX-Transcend-Version: 1\r\nContent-Type: application/xml; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The `init` request that starts a login.
pub fn init_request(agent: &str) -> String {
    post(
        agent,
        &format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<config-auth client="vpn" type="init" aggregate-auth-version="2"><version who="vpn">{agent}</version><device-id>linux-64</device-id><group-access>https://gw/</group-access></config-auth>"#
        ),
    )
}

/// The `auth-reply` request carrying the username and password.
pub fn reply_request(agent: &str, user: &str, pass: &str) -> String {
    post(
        agent,
        &format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><config-auth client="vpn" type="auth-reply" aggregate-auth-version="2"><version who="vpn">{agent}</version><device-id>linux-64</device-id><auth><username>{user}</username><password>{pass}</password></auth></config-auth>"#
        ),
    )
}

/// The `webvpn` cookie of a response head, if it sets a non-empty one.
pub fn webvpn_cookie(head: &str) -> Option<String> {
    head.lines()
        .find_map(|l| Some(l.strip_prefix("Set-Cookie: webvpn=")?.split(';').next()?.to_string()))
        .filter(|c| !c.is_empty())
}

/// The status line and the `Content-Length` (0 if absent) of a response head.
pub fn status_and_length(head: &str) -> (String, usize) {
    let status = head.lines().next().unwrap_or("").to_string();
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    (status, len)
}
