//! The crate boundaries the compiler cannot see: the director and gatehousectl must not pull in
//! the node's Raft, storage or tun device, and the pure codecs must stay free of tonic. Reads
//! `cargo tree` of the workspace (no build, no network: the lockfile is complete).

use std::path::Path;
use std::process::Command;

/// The packages `package` depends on (normal dependencies, host target), by name.
fn dependencies(package: &str) -> Vec<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let run = |offline: bool| {
        let mut c = Command::new(&cargo);
        c.current_dir(&workspace).args(["tree", "-p", package, "-e", "normal", "--prefix", "none"]);
        if offline {
            c.arg("--offline");
        }
        c.output().expect("running cargo tree")
    };
    // Offline first (a build has fetched everything); online if the cache lacks something.
    let out = match run(true) {
        o if o.status.success() => o,
        _ => run(false),
    };
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn assert_free_of(package: &str, forbidden: &[&str]) {
    let deps = dependencies(package);
    assert!(deps.iter().any(|d| d == package), "{package}: cargo tree printed {deps:?}");
    let found: Vec<&str> =
        forbidden.iter().copied().filter(|f| deps.iter().any(|d| d == f)).collect();
    assert!(
        found.is_empty(),
        "{package} depends on {found:?}; `cargo tree -p {package} -i <name>` shows the path"
    );
}

#[test]
fn director_has_no_raft_storage_or_tun() {
    assert_free_of(
        "gatehouse-director",
        &["sled", "openraft", "tun", "gatehouse-node", "gatehouse-raft"],
    );
}

#[test]
fn gatehousectl_has_no_raft_storage_or_tun() {
    assert_free_of(
        "gatehouse-ctl",
        &["sled", "openraft", "tun", "gatehouse-node", "gatehouse-raft"],
    );
}

#[test]
fn runtime_has_no_raft_storage_or_tun() {
    assert_free_of("gatehouse-runtime", &["sled", "openraft", "tun", "gatehouse-raft"]);
}

#[test]
fn pure_codecs_have_no_grpc() {
    assert_free_of("gatehouse-proto", &["tonic", "prost", "tokio"]);
}
