//! The sample configurations in deploy/ are valid: every `*.toml` there passes
//! `gatehouse check` (node configs) or `gatehouse-director --check` (director configs).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn tomls(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            tomls(&p, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
}

#[test]
fn every_sample_config_in_deploy_is_valid() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let mut files = Vec::new();
    tomls(&deploy, &mut files);
    files.sort();
    assert!(files.len() >= 5, "sample configs: {files:?}");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let out = if text.contains("[director]") {
            Command::new(gatehouse_tests::cargo_bin("gatehouse-director"))
                .arg("--check")
                .arg("--config")
                .arg(f)
                .output()
                .unwrap()
        } else {
            Command::new(gatehouse_tests::cargo_bin("gatehouse"))
                .args(["check", "--config"])
                .arg(f)
                .output()
                .unwrap()
        };
        assert!(out.status.success(), "{}: {}", f.display(), String::from_utf8_lossy(&out.stderr));
    }
}
