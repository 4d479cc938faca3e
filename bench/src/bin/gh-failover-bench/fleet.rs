//! `gh-fleet` in the client namespace: start it, follow its progress, stop it for its report.

use crate::wait::check_abort;
use anyhow::{bail, Context, Result};
use gatehouse_tests::cluster::{ClusterTopology, PORT};
use gatehouse_tests::process::{signal_pid, wait_timeout};
use gatehouse_tests::{cargo_bin, clock};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The latest progress line of a fleet.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FleetStatus {
    pub(crate) logged_in: usize,
    pub(crate) attached: usize,
    pub(crate) drops: usize,
    pub(crate) lost: usize,
}

/// A running `gh-fleet` in the client namespace.
pub(crate) struct Fleet {
    child: Child,
    status: Arc<Mutex<FleetStatus>>,
    out: Option<std::thread::JoinHandle<String>>,
    err: Option<std::thread::JoinHandle<()>>,
}

impl Fleet {
    pub(crate) fn start(
        topo: &ClusterTopology,
        slot: usize,
        n: usize,
        secs: u64,
        conc: usize,
    ) -> Result<Fleet> {
        let mut cmd = topo.exec(&topo.client_ns(), &[]);
        cmd.arg(cargo_bin("gh-fleet"))
            .arg(format!("{}:{PORT}", topo.slot_ip(slot)))
            .args([gatehouse_tests::gatehouse::USER, gatehouse_tests::gatehouse::PASSWORD])
            .args([n.to_string(), secs.to_string(), conc.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("starting gh-fleet")?;
        let mut stdout = child.stdout.take().context("fleet stdout")?;
        let stderr = child.stderr.take().context("fleet stderr")?;
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let status = Arc::new(Mutex::new(FleetStatus::default()));
        let st = status.clone();
        let err = std::thread::spawn(move || {
            let mut other = 0usize;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("fleet: logged_in=") {
                    let nums: Vec<usize> = std::iter::once(rest)
                        .flat_map(|r| r.split_whitespace())
                        .filter_map(|w| w.rsplit('=').next()?.parse().ok())
                        .collect();
                    if let ([l, a, d, x, ..], Ok(mut s)) = (nums.as_slice(), st.lock()) {
                        *s = FleetStatus { logged_in: *l, attached: *a, drops: *d, lost: *x };
                    }
                } else if other < 200 {
                    other += 1;
                    eprintln!("  {line}");
                }
            }
        });
        Ok(Fleet { child, status, out: Some(out), err: Some(err) })
    }

    pub(crate) fn status(&self) -> FleetStatus {
        self.status.lock().map(|s| *s).unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait until the fleet has `want` tunnels attached.
    pub(crate) fn wait_attached(&mut self, want: usize, timeout: Duration) -> Result<()> {
        let end = clock::now() + timeout;
        loop {
            check_abort()?;
            let s = self.status();
            if s.attached >= want {
                return Ok(());
            }
            if !self.running() {
                bail!("gh-fleet exited early ({s:?})");
            }
            if clock::now() >= end {
                bail!("fleet: {want} tunnels not attached within {timeout:?} ({s:?})");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGINT, wait for the JSON report.
    pub(crate) fn stop(mut self) -> Result<Value> {
        let _ = signal_pid(self.child.id(), "INT");
        if wait_timeout(&mut self.child, Duration::from_secs(30))?.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            bail!("gh-fleet did not stop within 30 s of SIGINT");
        }
        let out = self.out.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        if let Some(h) = self.err.take() {
            let _ = h.join();
        }
        let line = out.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
        serde_json::from_str(line).with_context(|| format!("gh-fleet output: {out:?}"))
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
