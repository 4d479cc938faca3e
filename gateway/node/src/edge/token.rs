//! Session tokens: where a token is made and where a presented cookie is checked.
//! A token is 32 bytes from ring's CSPRNG, sent as the `webvpn` cookie (base64url, no
//! padding). Only its SHA-256 is stored and replicated; the token never reaches a log.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gatehouse_core::TokenHash;
use ring::rand::{SecureRandom, SystemRandom};

/// A freshly minted token: the cookie text for the client and the hash for the session db.
pub struct MintedToken {
    /// The `webvpn` cookie value. Never log it.
    pub cookie: String,
    /// Its SHA-256.
    pub hash: TokenHash,
}

impl std::fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MintedToken({:?})", self.hash)
    }
}

/// Why a presented cookie is refused before it reaches the session db.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    /// No `webvpn` cookie in the request.
    #[error("no webvpn cookie")]
    Missing,
    /// Not base64url of exactly 32 bytes (wrong, truncated or padded).
    #[error("malformed webvpn cookie")]
    Malformed,
}

impl CookieError {
    /// Metric label.
    pub fn reason(self) -> &'static str {
        match self {
            CookieError::Missing => "cookie_missing",
            CookieError::Malformed => "cookie_malformed",
        }
    }
}

/// Mint a new session token.
pub fn mint(rng: &SystemRandom) -> anyhow::Result<MintedToken> {
    let mut raw = [0u8; 32];
    rng.fill(&mut raw).map_err(|_| anyhow::anyhow!("system randomness unavailable"))?;
    Ok(MintedToken { cookie: URL_SAFE_NO_PAD.encode(raw), hash: hash_raw(&raw) })
}

fn hash_raw(raw: &[u8; 32]) -> TokenHash {
    let d = ring::digest::digest(&ring::digest::SHA256, raw);
    let mut h = [0u8; 32];
    h.copy_from_slice(d.as_ref());
    TokenHash(h)
}

/// Check a presented cookie's form and return its hash for lookup.
pub fn check_cookie(cookie: Option<&str>) -> Result<TokenHash, CookieError> {
    let c = cookie.ok_or(CookieError::Missing)?;
    if c.len() != 43 {
        return Err(CookieError::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD.decode(c).map_err(|_| CookieError::Malformed)?;
    let raw: [u8; 32] = bytes.try_into().map_err(|_| CookieError::Malformed)?;
    Ok(hash_raw(&raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_cookie_checks_to_its_hash_and_damage_is_refused() {
        let rng = SystemRandom::new();
        let t = mint(&rng).unwrap();
        assert_eq!(check_cookie(Some(&t.cookie)), Ok(t.hash));
        assert_eq!(check_cookie(Some(&t.cookie[..42])), Err(CookieError::Malformed));
        assert_eq!(check_cookie(Some(&format!("{}=", t.cookie))), Err(CookieError::Malformed));
        assert_eq!(check_cookie(None), Err(CookieError::Missing));
        assert_ne!(mint(&rng).unwrap().hash, t.hash);
    }
}
