//! Traffic helpers: ping, a bounded TCP transfer (iperf3), and `ss -K`.

use std::net::Ipv4Addr;
use std::process::{Child, Stdio};

use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::clock;
use crate::process::{kill_and_reap, output_with_timeout, run_ok, wait_timeout};
use crate::topology::{Role, Topology};

/// Outcome of [`ping`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PingResult {
    /// Echo requests sent.
    pub sent: u32,
    /// Echo replies received.
    pub received: u32,
    /// ping's output, for assertion messages.
    pub output: String,
}

impl PingResult {
    /// At least one request went out and every one was answered.
    pub fn all_received(&self) -> bool {
        self.sent > 0 && self.received == self.sent
    }
}

/// Sends `count` ICMP echo requests from `from` to `dst`, `interval` apart (root may go below
/// 0.2 s), waiting at most 1 s for the last reply.
pub fn ping(
    topo: &Topology,
    from: Role,
    dst: Ipv4Addr,
    count: u32,
    interval: Duration,
) -> Result<PingResult> {
    let secs = interval.as_secs_f64().max(0.002);
    let deadline = (secs * f64::from(count)).ceil() as u64 + 2;
    let mut cmd = topo.exec(
        from,
        [
            "ping".to_string(),
            "-n".into(),
            "-q".into(),
            "-c".into(),
            count.to_string(),
            "-i".into(),
            format!("{secs:.3}"),
            "-W".into(),
            "1".into(),
            "-w".into(),
            deadline.to_string(),
            dst.to_string(),
        ],
    );
    let out = output_with_timeout(&mut cmd, Duration::from_secs(deadline + 10))?;
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // "5 packets transmitted, 5 received, 0% packet loss, time 4005ms"
    let mut res = PingResult { sent: 0, received: 0, output: text.clone() };
    let line = text.lines().find(|l| l.contains("packets transmitted"));
    match line {
        Some(l) => {
            let nums: Vec<u32> =
                l.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
            res.sent = nums.first().copied().unwrap_or(0);
            res.received = nums.get(1).copied().unwrap_or(0);
        }
        None => {
            // e.g. "connect: Network is unreachable": nothing could be sent.
            res.sent = count;
        }
    }
    Ok(res)
}

/// Direction of a [`tcp_transfer_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The client namespace sends to the lan host.
    Upload,
    /// The lan host sends to the client namespace.
    Download,
}

/// The port the lan host listens on for [`tcp_transfer`].
pub const TRANSFER_PORT: u16 = 5201;

/// Sends `bytes` over one TCP connection from the client namespace to the lan host (through
/// whatever route the client has, i.e. the tunnel) and returns how many bytes the receiver read
/// before EOF. Every byte is checked against a pattern; corruption is an error. 60 s limit.
pub fn tcp_transfer(topo: &Topology, bytes: u64) -> Result<u64> {
    tcp_transfer_with(topo, bytes, Direction::Upload, Duration::from_secs(60))
}

/// [`tcp_transfer`] with a direction and a time limit. Uses the `gh-tcp-probe` binary of this
/// crate (see [`crate::cargo_bin`]); one transfer per topology at a time.
pub fn tcp_transfer_with(
    topo: &Topology,
    bytes: u64,
    dir: Direction,
    timeout: Duration,
) -> Result<u64> {
    let probe = crate::cargo_bin("gh-tcp-probe");
    let target = format!("{}:{TRANSFER_PORT}", topo.lan_ip());
    let secs = timeout.as_secs().max(1).to_string();
    let n = bytes.to_string();
    let (lan_args, client_args): (Vec<&str>, Vec<&str>) = match dir {
        Direction::Upload => (vec!["recv"], vec!["send", &n]),
        Direction::Download => (vec!["send", &n], vec!["recv"]),
    };
    let out_dir = tempfile::Builder::new().prefix("gh-xfer-").tempdir().context("tempdir")?;
    let lan_out = out_dir.path().join("lan.out");
    let mut listener: Child = topo
        .exec(Role::Lan, [probe.as_os_str(), "listen".as_ref(), target.as_ref()])
        .args(&lan_args)
        .arg(&secs)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&lan_out).context("lan.out")?)
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {} in the lan namespace", probe.display()))?;
    let result = (|| -> Result<u64> {
        let filter = format!("sport = :{TRANSFER_PORT}");
        let listening =
            clock::poll_until(Duration::from_secs(5), Duration::from_millis(20), || {
                let out = run_ok(&mut topo.exec(Role::Lan, ["ss", "-Hltn", &filter]), timeout);
                matches!(out, Ok(o) if !o.trim().is_empty()).then_some(())
            });
        if listening.is_none() {
            bail!("gh-tcp-probe in the lan namespace is not listening on {target}");
        }
        let mut client_cmd =
            topo.exec(Role::Client, [probe.as_os_str(), "connect".as_ref(), target.as_ref()]);
        client_cmd.args(&client_args).arg(&secs);
        let out = output_with_timeout(&mut client_cmd, timeout + Duration::from_secs(5))?;
        let client_line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() {
            bail!(
                "TCP transfer ({dir:?}, {bytes} bytes) failed on the client side: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let lan_status = wait_timeout(&mut listener, Duration::from_secs(5))?;
        let lan_line = std::fs::read_to_string(&lan_out).unwrap_or_default().trim().to_string();
        if lan_status.map(|s| s.success()) != Some(true) {
            bail!("TCP transfer ({dir:?}): the lan side failed ({lan_status:?}): {lan_line}");
        }
        // The receiver's own line: it counted and checked the bytes.
        let receiver_line = if dir == Direction::Upload { &lan_line } else { &client_line };
        let got = receiver_line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("bytes="))
            .and_then(|v| v.parse::<u64>().ok())
            .with_context(|| format!("unexpected gh-tcp-probe output {receiver_line:?}"))?;
        if !receiver_line.contains("corrupt_at=none") {
            bail!("TCP transfer ({dir:?}) delivered corrupted data: {receiver_line}");
        }
        Ok(got)
    })();
    if !matches!(listener.try_wait(), Ok(Some(_))) {
        kill_and_reap(&mut listener);
    }
    result
}

/// Kills (`ss -K`, i.e. SOCK_DESTROY: the peer sees a RST) every established TCP connection in
/// namespace `ns` whose local port is `sport`. Returns how many were killed.
pub fn ss_kill(topo: &Topology, ns: Role, sport: u16) -> Result<usize> {
    let filter = format!("( sport = :{sport} )");
    let out = topo
        .run(ns, ["ss", "-K", "-Htn", "state", "established", &filter])
        .context("ss -K (needs a kernel with CONFIG_INET_DIAG_DESTROY)")?;
    Ok(out.lines().filter(|l| !l.trim().is_empty()).count())
}
