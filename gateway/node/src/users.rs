//! Local users: a TOML file of argon2id hashes. `gatehousectl user add` writes it; the node
//! re-reads it when it changes, so adding a user needs no restart.

use anyhow::{Context, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

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
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// The users file, reloaded when its modification time changes.
pub struct Users {
    path: PathBuf,
    cache: Mutex<(Option<SystemTime>, BTreeMap<String, String>)>,
}

impl Users {
    /// Open (and validate) the users file. A missing file is an empty user list.
    pub fn open(path: &Path) -> Result<Users> {
        let u = Users { path: path.to_path_buf(), cache: Mutex::new((None, BTreeMap::new())) };
        u.reload_if_changed()?;
        Ok(u)
    }

    fn reload_if_changed(&self) -> Result<()> {
        let mtime = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        let mut c = self.cache.lock().map_err(|_| anyhow::anyhow!("users cache poisoned"))?;
        if mtime.is_some() && c.0 == mtime {
            return Ok(());
        }
        let map = match std::fs::read_to_string(&self.path) {
            Ok(t) => {
                let f: UsersFile = toml::from_str(&t)
                    .with_context(|| format!("parsing {}", self.path.display()))?;
                for u in &f.user {
                    PasswordHash::new(&u.password_hash).map_err(|e| {
                        anyhow::anyhow!(
                            "{}: user {:?}: bad password_hash: {e}",
                            self.path.display(),
                            u.name
                        )
                    })?;
                }
                f.user.into_iter().map(|u| (u.name, u.password_hash)).collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.path.display())),
        };
        *c = (mtime, map);
        Ok(())
    }

    /// Check a password. Slow on purpose (argon2id): call from a blocking thread.
    /// An unknown user costs the same as a wrong password, so names cannot be probed by timing.
    pub fn verify(&self, name: &str, password: &str) -> bool {
        if let Err(e) = self.reload_if_changed() {
            tracing::warn!("users file not reloaded, keeping the previous one: {e:#}");
        }
        let hash = self.cache.lock().ok().and_then(|c| c.1.get(name).cloned());
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_string());
        let ok = PasswordHash::new(&hash)
            .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
            .unwrap_or(false);
        ok && hash != DUMMY_HASH
    }
}

/// A valid argon2id hash of a random string, verified for unknown users.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0Zb4Jm4q1i7Xq0hU1mR2m0rS7Q8p0Y1yQz2xWv3u4tA";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_then_verify_and_reload() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("users.toml");
        let u = Users::open(&p).unwrap();
        assert!(!u.verify("alice", "pw"));
        add_user(&p, "alice", "correct horse").unwrap();
        assert!(u.verify("alice", "correct horse"), "reloaded without restart");
        assert!(!u.verify("alice", "wrong"));
        assert!(!u.verify("bob", "correct horse"));
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("$argon2id$"));
        assert!(!text.contains("correct horse"));
    }
}
