//! The real `openconnect` client in the client namespace, with a minimal vpnc-compatible script
//! that only touches the namespace (never /etc/resolv.conf or the host) and records each script
//! invocation in an events file.

use std::fs::File;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::clock;
use crate::process::{self, kill_and_reap, signal_pid, tool, wait_timeout};
use crate::topology::{Role, Topology};

/// The script openconnect runs for each state change (`$reason`). Env from us: GH_EVENTS (the
/// events file), GH_ROUTES (space-separated CIDRs routed into the tunnel).
const VPNC_SCRIPT: &str = r#"#!/bin/bash
# gatehouse-tests vpnc script: configures the tun device inside the client namespace only.
case "$reason" in
  connect)
    ip link set dev "$TUNDEV" up mtu "${INTERNAL_IP4_MTU:-1400}"
    ip addr add "$INTERNAL_IP4_ADDRESS/32" dev "$TUNDEV"
    for r in $GH_ROUTES; do ip route replace "$r" dev "$TUNDEV"; done
    ;;
  *) ;;  # pre-init, attempt-reconnect, reconnect, disconnect: log only (the tun persists)
esac
echo "$(date +%s.%N) $reason ${INTERNAL_IP4_ADDRESS:-}" >> "$GH_EVENTS"
exit 0
"#;

/// How openconnect proves who it is.
#[derive(Clone, Debug)]
enum Credential {
    /// `-u USER --passwd-on-stdin`.
    Password { user: String, password: String },
    /// `--cookie-on-stdin`.
    Cookie(String),
}

/// Signals a test sends to openconnect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Freeze the client (no DPD, no reads): a silent client.
    Stop,
    /// Resume after `Stop`.
    Cont,
    /// Log off: openconnect sends a BYE and exits.
    Int,
    /// Like `Int`.
    Term,
    /// Detach: no BYE, the session stays reusable with the cookie.
    Hup,
    /// Force a reconnect.
    Usr2,
    /// Die without a word.
    Kill,
}

impl Signal {
    /// The name `kill -s` takes.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Stop => "STOP",
            Signal::Cont => "CONT",
            Signal::Int => "INT",
            Signal::Term => "TERM",
            Signal::Hup => "HUP",
            Signal::Usr2 => "USR2",
            Signal::Kill => "KILL",
        }
    }
}

/// Builder for an [`Openconnect`] run; see [`Openconnect::builder`].
#[derive(Clone, Debug)]
pub struct OpenconnectBuilder {
    ns: String,
    url: String,
    pin: String,
    credential: Credential,
    reconnect_timeout: u32,
    tun: String,
    routes: Vec<String>,
    extra: Vec<String>,
}

/// What `openconnect --authenticate` prints.
#[derive(Clone, Debug, Default)]
pub struct AuthInfo {
    /// `COOKIE=` (the `webvpn` cookie value).
    pub cookie: String,
    /// `HOST=`.
    pub host: String,
    /// `CONNECT_URL=`.
    pub connect_url: String,
    /// `FINGERPRINT=` (the server certificate's pin).
    pub fingerprint: String,
    /// `RESOLVE=` (host:ip), may be empty.
    pub resolve: String,
    /// openconnect's exit code.
    pub exit_code: Option<i32>,
    /// Everything openconnect printed.
    pub log: String,
}

impl OpenconnectBuilder {
    /// Log in with a username and password (default: `test` / `testpass`).
    pub fn password(mut self, user: &str, password: &str) -> Self {
        self.credential =
            Credential::Password { user: user.to_string(), password: password.to_string() };
        self
    }
    /// Connect with a cookie from [`OpenconnectBuilder::authenticate`] (`--cookie-on-stdin`).
    pub fn cookie(mut self, cookie: &str) -> Self {
        self.credential = Credential::Cookie(cookie.to_string());
        self
    }
    /// `--reconnect-timeout` in seconds (default 60).
    pub fn reconnect_timeout(mut self, secs: u32) -> Self {
        self.reconnect_timeout = secs;
        self
    }
    /// Tun device name (default `ghtun0`; at most 15 characters).
    pub fn tun_name(mut self, name: &str) -> Self {
        self.tun = name.to_string();
        self
    }
    /// Replaces the routes put on the tun at `connect` (default: the topology's lan /24).
    pub fn routes(mut self, cidrs: &[&str]) -> Self {
        self.routes = cidrs.iter().map(|s| s.to_string()).collect();
        self
    }
    /// Extra command-line argument(s), placed before the URL.
    pub fn arg(mut self, a: &str) -> Self {
        self.extra.push(a.to_string());
        self
    }

    fn base_args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--protocol=anyconnect".into(),
            "--servercert".into(),
            self.pin.clone(),
            "--non-inter".into(),
            "--no-dtls".into(),
            "--timestamp".into(),
            "-vv".into(),
        ];
        match &self.credential {
            Credential::Password { user, .. } => {
                a.extend(["-u".into(), user.clone(), "--passwd-on-stdin".into()])
            }
            Credential::Cookie(_) => a.push("--cookie-on-stdin".into()),
        }
        a
    }

    fn stdin_text(&self) -> String {
        match &self.credential {
            Credential::Password { password, .. } => format!("{password}\n"),
            Credential::Cookie(c) => format!("{c}\n"),
        }
    }

    fn start(&self, args: &[String], dir: &Path) -> Result<Child> {
        let log = File::create(dir.join("openconnect.log")).context("creating log")?;
        let mut cmd = Command::new(tool("ip"));
        cmd.args(["netns", "exec", &self.ns])
            .arg(tool("openconnect"))
            .args(args)
            .env("GH_EVENTS", dir.join("events"))
            .env("GH_ROUTES", self.routes.join(" "))
            .stdin(Stdio::piped())
            .stdout(log.try_clone().context("dup log")?)
            .stderr(log);
        let mut child =
            cmd.spawn().with_context(|| format!("spawning {}", process::describe(&cmd)))?;
        if let Some(mut stdin) = child.stdin.take() {
            // openconnect may already have exited; its log says why.
            let _ = stdin.write_all(self.stdin_text().as_bytes());
        } // dropping stdin closes it
        Ok(child)
    }

    /// Starts openconnect; returns at once (use [`Openconnect::wait_event`] for `connect`).
    pub fn spawn(self) -> Result<Openconnect> {
        let dir = tempfile::Builder::new().prefix("gh-oc-").tempdir().context("tempdir")?;
        let script = dir.path().join("vpnc-script");
        std::fs::write(&script, VPNC_SCRIPT).context("writing vpnc script")?;
        set_mode(&script, 0o755)?;
        File::create(dir.path().join("events")).context("creating events file")?;
        let mut args = self.base_args();
        args.extend([
            "--reconnect-timeout".into(),
            self.reconnect_timeout.to_string(),
            "--script".into(),
            script.to_string_lossy().into_owned(),
            "--interface".into(),
            self.tun.clone(),
        ]);
        args.extend(self.extra.iter().cloned());
        args.push(self.url.clone());
        let child = self.start(&args, dir.path())?;
        Ok(Openconnect { ns: self.ns, tun: self.tun, child, dir })
    }

    /// Runs `openconnect --authenticate` to completion (bounded by `timeout`) and returns what
    /// it printed. No tunnel is made.
    pub fn authenticate(self, timeout: Duration) -> Result<AuthInfo> {
        let dir = tempfile::Builder::new().prefix("gh-oca-").tempdir().context("tempdir")?;
        let mut args = self.base_args();
        args.push("--authenticate".into());
        args.extend(self.extra.iter().cloned());
        args.push(self.url.clone());
        let mut child = self.start(&args, dir.path())?;
        let st = wait_timeout(&mut child, timeout)?;
        if st.is_none() {
            kill_and_reap(&mut child);
        }
        let log = std::fs::read_to_string(dir.path().join("openconnect.log")).unwrap_or_default();
        let Some(st) = st else {
            bail!("openconnect --authenticate did not finish within {timeout:?}; log:\n{log}");
        };
        let mut info = AuthInfo { exit_code: st.code(), ..AuthInfo::default() };
        for line in log.lines() {
            for (key, slot) in [
                ("COOKIE=", &mut info.cookie),
                ("HOST=", &mut info.host),
                ("CONNECT_URL=", &mut info.connect_url),
                ("FINGERPRINT=", &mut info.fingerprint),
                ("RESOLVE=", &mut info.resolve),
            ] {
                if let Some(v) = line.strip_prefix(key) {
                    *slot = v.trim().trim_matches('\'').to_string();
                }
            }
        }
        info.log = log;
        Ok(info)
    }
}

/// A running `openconnect` (killed on drop; its log is printed if the test is panicking).
#[derive(Debug)]
pub struct Openconnect {
    ns: String,
    tun: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Openconnect {
    /// A builder for a client in `topo`'s client namespace connecting to `https://ip:port/`,
    /// trusting only the server key `pin` (`pin-sha256:...`, see
    /// [`crate::pin_sha256_of_cert_pem`]).
    pub fn builder(topo: &Topology, server: Ipv4Addr, port: u16, pin: &str) -> OpenconnectBuilder {
        Self::builder_in(topo.ns_name(Role::Client), &topo.lan_cidr(), server, port, pin)
    }

    /// A builder for a client in namespace `ns` that routes `lan_cidr` into the tunnel.
    pub fn builder_in(
        ns: &str,
        lan_cidr: &str,
        server: Ipv4Addr,
        port: u16,
        pin: &str,
    ) -> OpenconnectBuilder {
        OpenconnectBuilder {
            ns: ns.to_string(),
            url: format!("https://{server}:{port}/"),
            pin: pin.to_string(),
            credential: Credential::Password {
                user: "test".to_string(),
                password: "testpass".to_string(),
            },
            reconnect_timeout: 60,
            tun: "ghtun0".to_string(),
            routes: vec![lan_cidr.to_string()],
            extra: Vec::new(),
        }
    }

    /// openconnect's pid (`ip netns exec` execs it, so it is the child's pid).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The tun device name.
    pub fn tun_name(&self) -> &str {
        &self.tun
    }

    /// Every script invocation so far: (epoch seconds, reason, INTERNAL_IP4_ADDRESS or "").
    pub fn events(&self) -> Vec<(f64, String, String)> {
        let text = std::fs::read_to_string(self.dir.path().join("events")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let mut it = l.splitn(3, ' ');
                let t = it.next()?.parse().ok()?;
                let reason = it.next()?.to_string();
                let ip = it.next().unwrap_or("").trim().to_string();
                Some((t, reason, ip))
            })
            .collect()
    }

    /// How many times the script ran with `reason`.
    pub fn count_event(&self, reason: &str) -> usize {
        self.events().iter().filter(|e| e.1 == reason).count()
    }

    /// Waits until the script has run with `reason` (e.g. `connect`, `reconnect`) and returns
    /// the address it was given. `None` after `timeout`, or as soon as openconnect has exited
    /// without such an event.
    pub fn wait_event(&mut self, reason: &str, timeout: Duration) -> Option<String> {
        self.wait_nth_event(reason, 1, timeout)
    }

    /// Like [`Openconnect::wait_event`], for the `n`-th (1-based) event with `reason`.
    pub fn wait_nth_event(&mut self, reason: &str, n: usize, timeout: Duration) -> Option<String> {
        let find =
            |me: &Self| me.events().into_iter().filter(|e| e.1 == reason).nth(n.saturating_sub(1));
        let mut exited = false;
        let r = clock::poll_until(timeout, Duration::from_millis(20), || {
            if let Some(e) = find(self) {
                return Some(Some(e.2));
            }
            if exited {
                return Some(None);
            }
            // Check the events file once more after the exit is seen.
            exited = !matches!(self.child.try_wait(), Ok(None));
            None
        });
        r.flatten()
    }

    /// Sends a signal (through `kill -s`).
    pub fn send_signal(&self, sig: Signal) -> Result<()> {
        signal_pid(self.pid(), sig.name())
    }

    /// Waits for openconnect to exit and returns its exit code (128+N if killed by signal N);
    /// `None` if it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        let st = wait_timeout(&mut self.child, timeout).ok()??;
        st.code().or_else(|| st.signal().map(|s| 128 + s))
    }

    /// True while openconnect runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// openconnect's stdout and stderr so far (`--timestamp -vv`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Path of the log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("openconnect.log")
    }

    /// The IPv4 address on the tun device (`ip -n NS -4 -o addr show dev TUN`), if any.
    pub fn tun_addr(&self) -> Option<Ipv4Addr> {
        let out = process::output_with_timeout(
            Command::new(tool("ip"))
                .args(["-n", &self.ns, "-4", "-o", "addr", "show", "dev", &self.tun]),
            Duration::from_secs(10),
        )
        .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut words = text.split_whitespace();
        words.find(|w| *w == "inet")?;
        words.next()?.split('/').next()?.parse().ok()
    }

    /// Stops openconnect: SIGTERM (it sends a BYE), then SIGKILL after `grace`. Returns the
    /// exit code as [`Openconnect::wait_exit`] does.
    pub fn stop(&mut self, grace: Duration) -> Option<i32> {
        if self.is_running() {
            let _ = self.send_signal(Signal::Term);
            let _ = self.send_signal(Signal::Cont); // a stopped process cannot act on TERM
        }
        if let Some(c) = self.wait_exit(grace) {
            return Some(c);
        }
        kill_and_reap(&mut self.child);
        self.wait_exit(Duration::from_secs(1))
    }
}

impl Drop for Openconnect {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
        if std::thread::panicking() {
            eprintln!(
                "---- openconnect (pid {}) events:\n{:?}\n\
                 ---- openconnect log (last 60 lines):\n{}",
                self.pid(),
                self.events(),
                tail(&self.log(), 60)
            );
        }
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", p.display()))
}
