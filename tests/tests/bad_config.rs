//! A bad config stops the node before it binds anything: exit code 64 and a message naming the
//! file, the key and what is accepted. No root needed.
#![allow(clippy::unwrap_used)]

use std::process::Command;

/// `gatehouse <cmd> --config FILE` on `cfg` written to a temporary `node.toml`: the exit code
/// and stderr (the directory shown as `DIR`).
fn gatehouse(cmd: &str, cfg: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(&path, cfg).unwrap();
    let out = Command::new(gatehouse_tests::cargo_bin("gatehouse"))
        .args([cmd, "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).replace(&dir.path().display().to_string(), "DIR"),
    )
}

const GOOD: &str = r#"
[node]
listen = "127.0.0.1:1"
[[pool]]
name = "p"
cidr = "10.99.0.0/24"
[[group_policy]]
name = "g"
address_pool = "p"
[[tunnel_group]]
name = "t"
group_policy = "g"
"#;

#[test]
fn bad_configs_exit_64_naming_file_key_and_accepted_values() {
    let cases = [
        (GOOD.replace("10.99.0.0/24", "10.99.0.0/33"), "pool[0].cidr"),
        (GOOD.replace("address_pool = \"p\"", "address_pool = \"p\"\nidle_timeout = \"ten minutes\""), "group_policy[0].idle_timeout"),
        (GOOD.replace("[node]", "[node]\nmode = \"bridge\""), "node.mode"),
        (GOOD.replace("[node]", "[node]\nadmin_listen = \"0.0.0.0:8444\""), "node.admin_listen"),
        (GOOD.replace("group_policy = \"g\"", "group_policy = \"missing\""), "tunnel_group[0].group_policy"),
        (GOOD.to_string() + "\n[[slot]]\nid = 1\npublic_address = \"10.0.0.1/24\"\npool = \"10.98.0.0/24\"\nowner = 1\nstandby = 1\n", "slot[0].standby"),
        (GOOD.to_string() + "\n[cluster]\nname = \"c\"\nlisten = \"nowhere\"\nca_cert = \"a\"\ncert = \"b\"\nkey = \"c\"\n", "cluster.listen"),
        ("this is not toml".to_string(), "line 1"),
    ];
    for (cfg, key) in cases {
        let (code, err) = gatehouse("run", &cfg);
        assert_eq!(code, Some(64), "{key}: {err}");
        assert!(err.contains("DIR/node.toml"), "names the file: {err}");
        assert!(err.contains(key), "names {key}: {err}");
    }
}

#[test]
fn check_accepts_a_good_config() {
    let (code, err) = gatehouse("check", GOOD);
    assert_eq!(code, Some(0), "{err}");
}
