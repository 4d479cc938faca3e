//! `gh-cstp-probe`: a lightweight AnyConnect/CSTP client for tests and benchmarks. It speaks
//! just enough of the protocol to log in, attach a tunnel and misbehave on purpose, and prints
//! one result line per scenario on stdout. Certificates are not verified: it only ever talks
//! to the test node inside the test's own namespaces.
//!
//! Usage: gh-cstp-probe HOST:PORT SCENARIO [ARGS]
//!   login USER PASS            -> `cookie <value>` or `refused <status>`
//!   connect COOKIE             -> `status <line>`
//!   frame COOKIE HEX           -> CONNECT, send raw bytes, `frame <type> <reason>` or `closed`
//!   split COOKIE               -> CONNECT, a DPD-REQ split across two TLS records, `frame ...`
//!   truncated COOKIE           -> CONNECT, half a frame then silence, `frame ...` or `closed`
//!   raw HEX                    -> TLS, send bytes, `status <line>` or `closed`
//!   plaintext                  -> no TLS: send HTTP in clear, `closed`
//!   silent                     -> TLS handshake, then nothing: `status <line>` or `closed` + seconds
//!   silent-tcp                 -> TCP only, nothing: `closed` + seconds
//!   resume-loop COOKIE N C     -> N CONNECTs with C in flight: `ok K fail F secs S rate R`
//!   login-loop USER PASS N C   -> N logins with C in flight: `ok K fail F secs S rate R`
//!   director-login USER PASS   -> init to a director, follow its 302 to the member, log in
//!                                 there: `cookie <value> slot-ip <IP>`
//!   director-spread USER PASS N C -> N director logins with C in flight:
//!                                 `spread <ip>=<count> ...` (sorted by ip; ` fail F` if any)
//!
//! For the director scenarios HOST:PORT may be a comma-separated list: successive logins
//! alternate between those directors.
#![allow(clippy::print_stdout)]

use anyhow::{bail, Context, Result};
use gatehouse_proto::cstp::{self, FrameType};
use gatehouse_tests::anyconnect;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// How this client names itself (User-Agent, XML version).
const AGENT: &str = "gh-cstp-probe";
use tokio_rustls::TlsConnector;

async fn tls(addr: &str, c: &TlsConnector) -> Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await.with_context(|| format!("connecting {addr}"))?;
    tcp.set_nodelay(true)?;
    let ip = addr.rsplit_once(':').map(|x| x.0).unwrap_or(addr).to_string();
    let name = ServerName::try_from(ip).context("server name")?;
    Ok(c.connect(name, tcp).await?)
}

/// Read an HTTP response head (and a Content-Length body); returns (status line, head, body).
async fn read_response<S: AsyncReadExt + Unpin>(s: &mut S) -> Result<(String, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut b = [0u8; 4096];
    let end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = s.read(&mut b).await?;
        if n == 0 {
            bail!("closed");
        }
        buf.extend_from_slice(&b[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let (status, len) = anyconnect::status_and_length(&head);
    let mut body = buf[end..].to_vec();
    while body.len() < len {
        let n = s.read(&mut b).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&b[..n]);
    }
    Ok((status, head, body))
}

async fn login(
    addr: &str,
    c: &TlsConnector,
    user: &str,
    pass: &str,
) -> Result<std::result::Result<String, String>> {
    let mut s = tls(addr, c).await?;
    s.write_all(anyconnect::init_request(AGENT).as_bytes()).await?;
    let (st, _, _) = read_response(&mut s).await?;
    if !st.contains(" 200 ") {
        return Ok(Err(st));
    }
    s.write_all(anyconnect::reply_request(AGENT, user, pass).as_bytes()).await?;
    let (st, head, _) = read_response(&mut s).await?;
    Ok(anyconnect::webvpn_cookie(&head).ok_or(st))
}

/// POST the init to a director and return the member `IP:PORT` of its
/// `302 Location: https://IP:PORT/...` (PROTOCOL.md §1.5).
async fn redirected(addr: &str, c: &TlsConnector) -> Result<String> {
    let mut s = tls(addr, c).await?;
    s.write_all(anyconnect::init_request(AGENT).as_bytes()).await?;
    let (st, head, _) = read_response(&mut s).await?;
    if !st.contains(" 302 ") {
        bail!("director {addr} answered {st:?}");
    }
    let location = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim().eq_ignore_ascii_case("location").then(|| value.trim().to_string())
        })
        .context("302 without Location")?;
    let member = location
        .strip_prefix("https://")
        .and_then(|r| r.split('/').next())
        .filter(|hp| hp.contains(':'))
        .with_context(|| format!("Location {location:?} is not https://IP:PORT/"))?;
    Ok(member.to_string())
}

/// Bound on one login through a director (a slot that moves mid-login must count as a failed
/// login, not hang the run).
const DIRECTOR_LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Log in through a director: (cookie, member IP). Login `i` says on stderr which member it
/// was sent to and when (`login I member IP at EPOCH`), so a caller can tell a login that was
/// in flight at some instant from one that started after it.
async fn director_login(
    i: usize,
    addr: &str,
    c: &TlsConnector,
    user: &str,
    pass: &str,
) -> Result<(String, String)> {
    tokio::time::timeout(DIRECTOR_LOGIN_TIMEOUT, director_login_unbounded(i, addr, c, user, pass))
        .await
        .with_context(|| format!("no login through {addr} within {DIRECTOR_LOGIN_TIMEOUT:?}"))?
}

async fn director_login_unbounded(
    i: usize,
    addr: &str,
    c: &TlsConnector,
    user: &str,
    pass: &str,
) -> Result<(String, String)> {
    let member = redirected(addr, c).await?;
    let ip = member.rsplit_once(':').map_or(member.as_str(), |x| x.0).to_string();
    eprintln!("login {i} member {ip} at {:.3}", gatehouse_tests::clock::epoch_secs());
    match login(&member, c, user, pass).await? {
        Ok(cookie) => Ok((cookie, ip)),
        Err(st) => bail!("member {member} refused the login: {st}"),
    }
}

async fn connect(
    addr: &str,
    c: &TlsConnector,
    cookie: &str,
) -> Result<(String, TlsStream<TcpStream>)> {
    let mut s = tls(addr, c).await?;
    let req = format!(
        "CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nHost: gw\r\nUser-Agent: Open AnyConnect VPN Agent gh-cstp-probe\r\nCookie: webvpn={cookie}\r\nX-CSTP-Version: 1\r\nX-CSTP-Hostname: probe\r\nX-CSTP-Base-MTU: 1500\r\nX-CSTP-MTU: 1399\r\nX-CSTP-Address-Type: IPv4\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let (st, _, _) = read_response(&mut s).await?;
    Ok((st, s))
}

/// Read frames until one that is not DPD/keepalive, or close.
async fn next_frame(s: &mut TlsStream<TcpStream>, limit: Duration) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 65536];
    let r = tokio::time::timeout(limit, async {
        loop {
            while let Ok(Some((f, used))) = cstp::decode(&buf, 65535) {
                let kind = f.kind;
                let payload = f.payload.to_vec();
                buf.drain(..used);
                match kind {
                    FrameType::Keepalive | FrameType::DpdReq => continue,
                    FrameType::Disconnect => {
                        let reason =
                            String::from_utf8_lossy(payload.get(1..).unwrap_or(&[])).into_owned();
                        return format!("frame disconnect {reason}");
                    }
                    k => return format!("frame {k:?} len={}", payload.len()),
                }
            }
            match s.read(&mut b).await {
                Ok(0) | Err(_) => return "closed".to_string(),
                Ok(n) => buf.extend_from_slice(&b[..n]),
            }
        }
    })
    .await;
    r.unwrap_or_else(|_| "timeout".into())
}

fn hex(s: &str) -> Result<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2).context("odd hex")?, 16).context("hex"))
        .collect()
}

async fn closed_after<S: AsyncReadExt + Unpin>(s: &mut S, t0: std::time::Instant) -> String {
    let mut b = [0u8; 4096];
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(30), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&b[..n]),
            Err(_) => return "timeout".into(),
        }
    }
    let st = String::from_utf8_lossy(&got).lines().next().unwrap_or("").to_string();
    format!("closed {:.1} {st}", t0.elapsed().as_secs_f64())
}

async fn run_loop<F, Fut>(n: usize, conc: usize, f: F) -> String
where
    F: Fn() -> Fut + Send + Sync + 'static + Clone,
    Fut: std::future::Future<Output = bool> + Send,
{
    let t0 = gatehouse_tests::clock::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let f = f.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut fail) = (0usize, 0usize);
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                if f().await {
                    ok += 1
                } else {
                    fail += 1
                }
            }
            (ok, fail)
        }));
    }
    let (mut ok, mut fail) = (0, 0);
    for t in tasks {
        if let Ok((o, f)) = t.await {
            ok += o;
            fail += f;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    format!("ok {ok} fail {fail} secs {secs:.3} rate {:.1}", ok as f64 / secs)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (addr, scen) =
        (args.get(1).context("HOST:PORT")?.clone(), args.get(2).context("scenario")?.as_str());
    let arg = |i: usize| args.get(i).cloned().context("missing argument");
    let c = anyconnect::connector()?;
    let out = match scen {
        "login" => match login(&addr, &c, &arg(3)?, &arg(4)?).await? {
            Ok(cookie) => format!("cookie {cookie}"),
            Err(st) => format!("refused {st}"),
        },
        "connect" => match connect(&addr, &c, &arg(3)?).await {
            Ok((st, _)) => format!("status {st}"),
            Err(e) => format!("closed {e}"),
        },
        "frame" | "split" | "truncated" => {
            let (st, mut s) = connect(&addr, &c, &arg(3)?).await?;
            if !st.contains(" 200 ") {
                bail!("CONNECT refused: {st}");
            }
            match scen {
                "frame" => {
                    s.write_all(&hex(&arg(4)?)?).await?;
                }
                "split" => {
                    let mut f = Vec::new();
                    cstp::encode_into(FrameType::DpdReq, b"split-probe", &mut f)?;
                    s.write_all(&f[..5]).await?;
                    s.flush().await?;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    s.write_all(&f[5..]).await?;
                }
                _ => {
                    let mut f = Vec::new();
                    cstp::encode_into(FrameType::DpdReq, b"never-finished", &mut f)?;
                    s.write_all(&f[..10]).await?;
                }
            }
            s.flush().await?;
            next_frame(&mut s, Duration::from_secs(20)).await
        }
        "raw" => {
            let mut s = tls(&addr, &c).await?;
            s.write_all(&hex(&arg(3)?)?).await?;
            s.flush().await?;
            match tokio::time::timeout(Duration::from_secs(20), read_response(&mut s)).await {
                Ok(Ok((st, _, _))) => format!("status {st}"),
                _ => "closed".into(),
            }
        }
        "plaintext" => {
            let mut s = TcpStream::connect(&addr).await?;
            let t0 = gatehouse_tests::clock::now();
            s.write_all(b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n").await?;
            closed_after(&mut s, t0).await
        }
        "silent" => {
            let mut s = tls(&addr, &c).await?;
            let t0 = gatehouse_tests::clock::now();
            closed_after(&mut s, t0).await
        }
        "silent-tcp" => {
            let mut s = TcpStream::connect(&addr).await?;
            let t0 = gatehouse_tests::clock::now();
            closed_after(&mut s, t0).await
        }
        "resume-loop" => {
            let cookie = arg(3)?;
            let (n, conc) = (arg(4)?.parse()?, arg(5)?.parse()?);
            let (a, c2) = (addr.clone(), c.clone());
            run_loop(n, conc, move || {
                let (a, c2, cookie) = (a.clone(), c2.clone(), cookie.clone());
                async move {
                    matches!(connect(&a, &c2, &cookie).await, Ok((st, _)) if st.contains(" 200 "))
                }
            })
            .await
        }
        "login-loop" => {
            let (user, pass) = (arg(3)?, arg(4)?);
            let (n, conc) = (arg(5)?.parse()?, arg(6)?.parse()?);
            let (a, c2) = (addr.clone(), c.clone());
            run_loop(n, conc, move || {
                let (a, c2, user, pass) = (a.clone(), c2.clone(), user.clone(), pass.clone());
                async move { matches!(login(&a, &c2, &user, &pass).await, Ok(Ok(_))) }
            })
            .await
        }
        "director-login" => {
            let first = addr.split(',').next().unwrap_or(&addr);
            let (cookie, ip) = director_login(0, first, &c, &arg(3)?, &arg(4)?).await?;
            format!("cookie {cookie} slot-ip {ip}")
        }
        "director-spread" => {
            let (user, pass) = (arg(3)?, arg(4)?);
            let (n, conc): (usize, usize) = (arg(5)?.parse()?, arg(6)?.parse()?);
            let directors: Arc<Vec<String>> =
                Arc::new(addr.split(',').map(str::to_string).collect());
            let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for _ in 0..conc.max(1) {
                let (directors, next, c) = (directors.clone(), next.clone(), c.clone());
                let (user, pass) = (user.clone(), pass.clone());
                tasks.push(tokio::spawn(async move {
                    let mut got: Vec<Option<String>> = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= n {
                            return got;
                        }
                        let d = &directors[i % directors.len()];
                        match director_login(i, d, &c, &user, &pass).await {
                            Ok((_, ip)) => {
                                eprintln!("login {i} ok");
                                got.push(Some(ip))
                            }
                            Err(e) => {
                                eprintln!("login {i} via {d}: {e:#}");
                                got.push(None);
                            }
                        }
                    }
                }));
            }
            let mut counts: std::collections::BTreeMap<std::net::IpAddr, usize> =
                std::collections::BTreeMap::new();
            let mut fail = 0;
            for t in tasks {
                for r in t.await? {
                    match r.and_then(|ip| ip.parse().ok()) {
                        Some(ip) => *counts.entry(ip).or_default() += 1,
                        None => fail += 1,
                    }
                }
            }
            let mut out = String::from("spread");
            for (ip, k) in &counts {
                out.push_str(&format!(" {ip}={k}"));
            }
            if fail > 0 {
                out.push_str(&format!(" fail {fail}"));
            }
            out
        }
        other => bail!("unknown scenario {other}"),
    };
    println!("{out}");
    Ok(())
}
