//! Local users: a TOML file of argon2id hashes. `gatehousectl user add` writes it; the node
//! re-reads it when it changes, so adding a user needs no restart.

use anyhow::Result;
use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// The users-file format and hashing live in gatehouse-runtime, shared with `gatehousectl`.
pub use gatehouse_runtime::users::{add_user, hash_password};

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
        let map = gatehouse_runtime::users::read_users(&self.path)?;
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
