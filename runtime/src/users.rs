//! The users file: a TOML list of names and argon2id password hashes. `gatehousectl user add`
//! writes it (offline, with no node running); the node reads it and re-reads it when it
//! changes (`gatehouse_node::users::Users`).

use anyhow::{Context, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Default, Serialize, Deserialize)]
struct UsersFile {
    #[serde(default)]
    user: Vec<UserEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserEntry {
    name: String,
    password_hash: String,
}

/// Hash a password with argon2id and a 16-byte random salt from ring's CSPRNG.
pub fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| anyhow::anyhow!("no randomness available"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
        .to_string())
}

/// Add or replace a user in the users file (created if missing), atomically.
pub fn add_user(path: &Path, name: &str, password: &str) -> Result<()> {
    if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control() || c == '"') {
        anyhow::bail!("user name must be 1-64 printable characters without quotes");
    }
    let mut f: UsersFile = match std::fs::read_to_string(path) {
        Ok(t) => toml::from_str(&t).with_context(|| format!("parsing {}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => UsersFile::default(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let hash = hash_password(password)?;
    f.user.retain(|u| u.name != name);
    f.user.push(UserEntry { name: name.to_string(), password_hash: hash });
    let text = toml::to_string(&f).context("serializing users")?;
    let tmp = path.with_extension("tmp");
    // Password hashes: 0600 whatever the umask (and whatever mode a leftover .tmp had).
    crate::tls::write_private(&tmp, text.as_bytes())?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// Read the users file: name → password hash, every hash checked to be a valid PHC string.
/// A missing file is an empty list.
pub fn read_users(path: &Path) -> Result<BTreeMap<String, String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => {
            let f: UsersFile =
                toml::from_str(&t).with_context(|| format!("parsing {}", path.display()))?;
            for u in &f.user {
                PasswordHash::new(&u.password_hash).map_err(|e| {
                    anyhow::anyhow!("{}: user {:?}: bad password_hash: {e}", path.display(), u.name)
                })?;
            }
            Ok(f.user.into_iter().map(|u| (u.name, u.password_hash)).collect())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_user_is_read_back_hashed_and_replaced_by_name() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("users.toml");
        assert!(read_users(&p).unwrap().is_empty(), "a missing file is no users");
        add_user(&p, "alice", "one").unwrap();
        add_user(&p, "alice", "two").unwrap();
        let users = read_users(&p).unwrap();
        assert_eq!(users.len(), 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "password hashes are private whatever the umask");
        assert!(users["alice"].starts_with("$argon2id$"));
        assert!(add_user(&p, "a\"b", "x").is_err());
        std::fs::write(&p, "[[user]]\nname = \"bob\"\npassword_hash = \"plain\"\n").unwrap();
        let e = read_users(&p).unwrap_err().to_string();
        assert!(e.contains("user \"bob\": bad password_hash"), "{e}");
    }
}
