//! The reference headend, ocserv, in the gw namespace: used to check the harness itself (and
//! for side-by-side comparisons), never by the gateway's own tests.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::clock;
use crate::openconnect::tail;
use crate::pki::{self, CertFiles};
use crate::process::{kill_and_reap, run_ok, signal_pid, tool, wait_timeout};
use crate::topology::{parse_cidr, Role, Topology};

/// Settings of an [`Ocserv`] instance.
#[derive(Clone, Debug)]
pub struct OcservConfig {
    /// TCP port on the gw's outside address.
    pub port: u16,
    /// Login.
    pub user: String,
    /// Password.
    pub password: String,
    /// Dead-peer-detection interval (ocserv `dpd`).
    pub dpd_secs: u32,
}

impl Default for OcservConfig {
    fn default() -> Self {
        OcservConfig { port: 443, user: "test".into(), password: "testpass".into(), dpd_secs: 90 }
    }
}

/// A running ocserv (`-f -d 1`), with its PKI, password file and config in a tempdir.
#[derive(Debug)]
pub struct Ocserv {
    child: Child,
    dir: tempfile::TempDir,
    cert: CertFiles,
    pin: String,
    port: u16,
}

impl Ocserv {
    /// Writes a self-signed certificate, an `ocpasswd` file and a config (pool = the topology's
    /// pool, split route = its lan), starts ocserv in the gw namespace and waits (10 s at most)
    /// until it accepts connections.
    pub fn start(topo: &Topology, cfg: &OcservConfig) -> Result<Ocserv> {
        let dir = tempfile::Builder::new().prefix("gh-ocserv-").tempdir().context("tempdir")?;
        // ocserv's workers run as user `ocserv` and must reach the socket in this directory.
        chmod(dir.path(), 0o755)?;
        let d = dir.path();
        let cert = pki::self_signed_cert(d, topo.gw_outside_ip())?;
        let pin = pki::pin_sha256_of_cert_pem(&cert.cert)?;
        let passwd = d.join("ocpasswd");
        let script = "printf '%s\\n%s\\n' \"$2\" \"$2\" | ocpasswd -c \"$1\" \"$3\"";
        run_ok(
            Command::new(tool("bash"))
                .args(["-c", script, "ocpasswd"])
                .arg(&passwd)
                .args([&cfg.password, &cfg.user]),
            Duration::from_secs(10),
        )
        .context("ocpasswd")?;
        let (pool_net, pool_len) = parse_cidr(topo.pool_cidr())?;
        let (lan_net, lan_len) = parse_cidr(&topo.lan_cidr())?;
        let conf = format!(
            "# gatehouse-tests ocserv config (modelled on bench/ocserv-baseline)
auth = \"plain[passwd={passwd}]\"
listen-host = {listen}
tcp-port = {port}
run-as-user = ocserv
run-as-group = ocserv
socket-file = {dir}/ocserv.sock
use-occtl = false
pid-file = {dir}/ocserv.pid
server-cert = {cert}
server-key = {key}
isolate-workers = false
max-clients = 0
max-same-clients = 0
rate-limit-ms = 0
max-ban-score = 0
keepalive = 32400
dpd = {dpd}
mobile-dpd = 1800
try-mtu-discovery = false
auth-timeout = 240
cookie-timeout = 300
deny-roaming = false
rekey-time = 172800
rekey-method = ssl
log-level = 1
device = vpns
predictable-ips = true
ipv4-network = {pool_net}/{pool_len}
route = {lan_net}/{lan_len}
ping-leases = false
cisco-client-compat = true
dtls-legacy = true
",
            passwd = passwd.display(),
            listen = topo.gw_outside_ip(),
            port = cfg.port,
            dir = d.display(),
            cert = cert.cert.display(),
            key = cert.key.display(),
            dpd = cfg.dpd_secs,
        );
        let conf_path = d.join("ocserv.conf");
        std::fs::write(&conf_path, conf).context("writing ocserv.conf")?;
        let log = File::create(d.join("ocserv.log")).context("ocserv.log")?;
        let child = topo
            .exec(
                Role::Gw,
                [tool("ocserv").as_os_str(), "-f".as_ref(), "-d".as_ref(), "1".as_ref()],
            )
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("dup")?)
            .stderr(log)
            .spawn()
            .context("spawning ocserv")?;
        let mut me = Ocserv { child, dir, cert, pin, port: cfg.port };
        let filter = format!("sport = :{}", cfg.port);
        let up = clock::poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
            if !matches!(me.child.try_wait(), Ok(None)) {
                return Some(false);
            }
            let ss = topo.run(Role::Gw, ["ss", "-Hltn", &filter]);
            let listening = matches!(ss, Ok(o) if !o.trim().is_empty());
            (listening && me.log().contains("sec-mod initialized")).then_some(true)
        });
        if up != Some(true) {
            bail!("ocserv did not come up; log:\n{}", tail(&me.log(), 30));
        }
        Ok(me)
    }

    /// The server key's pin for openconnect's `--servercert`.
    pub fn pin(&self) -> &str {
        &self.pin
    }
    /// The listening port.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The certificate files.
    pub fn cert(&self) -> &CertFiles {
        &self.cert
    }
    /// ocserv's main pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    /// The config/log directory.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
    /// ocserv's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ocserv.log")).unwrap_or_default()
    }
}

impl Drop for Ocserv {
    fn drop(&mut self) {
        // TERM lets ocserv reap its workers; the topology's drop kills anything left.
        let _ = signal_pid(self.child.id(), "TERM");
        if !matches!(wait_timeout(&mut self.child, Duration::from_secs(2)), Ok(Some(_))) {
            kill_and_reap(&mut self.child);
        }
        if std::thread::panicking() {
            eprintln!("---- ocserv log (last 40 lines):\n{}", tail(&self.log(), 40));
        }
    }
}

fn chmod(p: &std::path::Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", p.display()))
}
