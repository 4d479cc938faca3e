//! What every Gatehouse config file shares: one error type naming the file, the key and what is
//! accepted, TOML parsing with line numbers, paths relative to the file, durations and IPv4
//! prefixes as operators write them.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration error: which file, which key, what was wrong and what is accepted.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct ConfigError {
    /// The config file.
    pub file: String,
    /// The offending key, dotted (`group_policy[0].idle_timeout`).
    pub key: String,
    /// What was wrong and what is accepted.
    pub message: String,
}

/// Parse `"30s"`, `"5m"`, `"2h"`, `"1d"`, `"500ms"`; `"none"`/`"0"` mean disabled (`None`).
pub fn parse_duration(s: &str) -> Result<Option<Duration>, String> {
    let t = s.trim();
    if t == "none" || t == "0" || t == "unlimited" {
        return Ok(None);
    }
    let (num, unit) = t
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| t.split_at(i))
        .ok_or_else(|| format!("{s:?} has no unit; use e.g. \"30s\", \"5m\", \"2h\", \"1d\", \"500ms\" or \"none\""))?;
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a number followed by a unit"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?}; accepted: ms, s, m, h, d, or \"none\""
            ))
        }
    };
    Ok(if ms == 0 { None } else { Some(Duration::from_millis(ms)) })
}

/// Parse `a.b.c.d/len`.
pub fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (a, l) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not an IPv4 prefix like \"10.0.0.0/24\""))?;
    let addr: Ipv4Addr = a.parse().map_err(|_| format!("{a:?} is not an IPv4 address"))?;
    let len: u8 = l
        .parse()
        .ok()
        .filter(|l| *l <= 32)
        .ok_or_else(|| format!("{l:?} is not a prefix length 0-32"))?;
    Ok((addr, len))
}

/// Parse TOML text into `T`; a syntax or shape error names the file and the line.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let key = e.span().map_or_else(
            || "-".to_string(),
            |sp| format!("line {}", text[..sp.start.min(text.len())].lines().count().max(1)),
        );
        ConfigError { file: path.display().to_string(), key, message: e.message().to_string() }
    })
}

/// `p` as written in the config at `config`: absolute, or relative to the config's directory.
pub fn relative_to(config: &Path, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() {
        p
    } else {
        config.parent().map(Path::to_path_buf).unwrap_or_default().join(p)
    }
}

/// Read a config file (node or director); the error names the file.
pub fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.display().to_string(),
        key: "-".into(),
        message: format!("cannot read: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_to_the_config_file() {
        let cfg = Path::new("/etc/gatehouse/node.toml");
        assert_eq!(relative_to(cfg, "ca.pem"), PathBuf::from("/etc/gatehouse/ca.pem"));
        assert_eq!(relative_to(cfg, "/srv/ca.pem"), PathBuf::from("/srv/ca.pem"));
    }

    #[test]
    fn toml_errors_name_file_and_line() {
        #[derive(Debug, serde::Deserialize)]
        struct T {
            #[allow(dead_code)]
            a: u32,
        }
        let e = parse_toml::<T>(Path::new("x.toml"), "\n\na = \"no\"\n").unwrap_err();
        assert_eq!((e.file.as_str(), e.key.as_str()), ("x.toml", "line 3"), "{e}");
        assert_eq!(parse_cidr("10.0.0.0/24").unwrap(), (Ipv4Addr::new(10, 0, 0, 0), 24));
        assert!(parse_cidr("10.0.0.0/33").is_err());
    }
}
