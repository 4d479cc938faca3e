//! `gh-fleet`: many AnyConnect/CSTP sessions held open at once, for failover benchmarks. It
//! logs in N sessions against one address (a slot address), attaches each session's tunnel and
//! holds it: DPD requests are answered, a keepalive goes out every 5 s. When a tunnel drops
//! (EOF, RST, error, server DISCONNECT) it notes the time and re-attaches at once with the same
//! cookie, retrying every 20 ms, as openconnect does after a reset; a `401` means the session
//! is gone (counted as lost, the session stops). Certificates are not verified: it only ever
//! talks to test nodes inside the test's own namespaces.
//!
//! ```text
//! gh-fleet HOST:PORT USER PASS N SECONDS [CONC]
//! ```
//! Holds the tunnels until SECONDS after the start (logins included) or until SIGINT/SIGTERM,
//! then logs every attached session out (DISCONNECT 0xb0; env `FLEET_LOGOUT=0` leaves them)
//! and prints one JSON line on stdout:
//!
//! ```text
//! {"sessions":N,"logged_in":K,"attached":A,"drops":D,"lost":L,"pending":P,
//!  "gaps_ms":[...],"events":[[drop_epoch,reattach_epoch,session],...]}
//! ```
//! `gaps_ms` holds every drop→reattach gap (client side: from the moment the drop was seen);
//! `events` the same pairs as Unix epoch seconds with the session's number (0..N), so a caller can measure from its own event
//! (e.g. the start of a kill drill). `pending` counts drops still not re-attached at the end.
//!
//! With `FLEET_PROBE_MS=P` every held tunnel also sends a DPD request every P ms, and a drop
//! counts from the last frame heard from the gateway instead of from the moment it was seen:
//! the gap is then the blackout as the client lived it (like the largest gap in a ping every
//! P ms), whether the tunnel died with a reset or went silent.
//! While it runs, a progress line `fleet: logged_in=K attached=A drops=D lost=L` goes to
//! stderr whenever a figure changed (at most every 100 ms).
#![allow(clippy::print_stdout)]

use anyhow::{bail, Context, Result};
use gatehouse_proto::cstp::{self, FrameType};
use gatehouse_tests::anyconnect;
use gatehouse_tests::clock;
use rustls::pki_types::ServerName;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::client::TlsStream;

/// How this client names itself (User-Agent, XML version).
const AGENT: &str = "gh-fleet";
use tokio_rustls::TlsConnector;

/// Keepalive period of a held tunnel.
const KEEPALIVE: Duration = Duration::from_secs(5);
/// Pause between two re-attach attempts.
const RETRY: Duration = Duration::from_millis(20);
/// TCP connect bound of one attempt: a SYN sent while nobody holds the address is lost, and
/// the kernel would only retransmit it after 1 s.
const TCP_CONNECT: Duration = Duration::from_millis(300);
/// TLS handshake + CONNECT answer bound of one attempt (generous: a re-attach storm of
/// 1,000 sessions queues on the node's CPU).
const HANDSHAKE: Duration = Duration::from_secs(5);
/// A re-attach slower than this is reported on stderr.
const SLOW: Duration = Duration::from_secs(3);
/// Login bound (TLS + two POSTs + argon2id on the node, queued behind the others).
const LOGIN: Duration = Duration::from_secs(30);
/// Largest frame accepted from the gateway.
const MAX_DATA: usize = 16384;

type Tls = TlsStream<TcpStream>;

/// Everything a session task needs, shared.
struct Fleet {
    addr: String,
    user: String,
    pass: String,
    tls: TlsConnector,
    logged_in: AtomicUsize,
    attached: AtomicUsize,
    drops: AtomicUsize,
    lost: AtomicUsize,
    pending: AtomicUsize,
    /// (gap ms, drop epoch s, reattach epoch s, session number)
    gaps: Mutex<Vec<(f64, f64, f64, usize)>>,
    logout: bool,
    /// Send a DPD request this often on every held tunnel (`FLEET_PROBE_MS`).
    probe: Option<Duration>,
}

async fn tls(f: &Fleet) -> Result<Tls> {
    let tcp = tokio::time::timeout(TCP_CONNECT, TcpStream::connect(&f.addr))
        .await
        .context("TCP connect timed out")?
        .with_context(|| format!("connecting {}", f.addr))?;
    tcp.set_nodelay(true)?;
    let ip = f.addr.rsplit_once(':').map_or(f.addr.as_str(), |x| x.0).to_string();
    let name = ServerName::try_from(ip).context("server name")?;
    Ok(f.tls.connect(name, tcp).await?)
}

/// Read an HTTP response head (and a Content-Length body); returns (status line, head).
/// Reads byte-wise up to the blank line so that nothing after the head (CSTP frames after a
/// `200` to CONNECT) is consumed.
async fn read_response(s: &mut Tls) -> Result<(String, String)> {
    let mut head = Vec::with_capacity(1024);
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).await? == 0 {
            bail!("closed");
        }
        head.push(b[0]);
        if head.len() > 64 * 1024 {
            bail!("response head too long");
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let (status, len) = anyconnect::status_and_length(&head);
    if len > 0 {
        let mut body = vec![0u8; len.min(1024 * 1024)];
        s.read_exact(&mut body).await?;
    }
    Ok((status, head))
}

/// Aggregate-auth login: the `webvpn` cookie.
async fn login(f: &Fleet) -> Result<String> {
    let mut s = tls(f).await?;
    s.write_all(anyconnect::init_request(AGENT).as_bytes()).await?;
    let (st, _) = read_response(&mut s).await?;
    if !st.contains(" 200 ") {
        bail!("init refused: {st}");
    }
    s.write_all(anyconnect::reply_request(AGENT, &f.user, &f.pass).as_bytes()).await?;
    let (st, head) = read_response(&mut s).await?;
    let cookie = anyconnect::webvpn_cookie(&head);
    let reason = head.lines().find_map(|l| l.strip_prefix("X-Reason: ")).unwrap_or("");
    match cookie {
        Some(c) => Ok(c),
        None => bail!("login refused: {st} {reason}"),
    }
}

/// Result of one CONNECT attempt.
enum Attach {
    Ok(Box<Tls>),
    /// 401: the session does not exist (any more).
    Gone,
    /// Anything else (503, a connection error, a timeout): try again.
    Retry(String),
}

async fn attach(f: &Fleet, cookie: &str) -> Attach {
    let r = async {
        let mut s = tls(f).await?;
        let req = format!(
            "CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nHost: gw\r\nUser-Agent: Open AnyConnect VPN Agent gh-fleet\r\nCookie: webvpn={cookie}\r\nX-CSTP-Version: 1\r\nX-CSTP-Hostname: fleet\r\nX-CSTP-Base-MTU: 1500\r\nX-CSTP-MTU: 1399\r\nX-CSTP-Address-Type: IPv4\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await?;
        s.flush().await?;
        let (st, _) = read_response(&mut s).await?;
        anyhow::Ok((st, s))
    };
    match tokio::time::timeout(HANDSHAKE + TCP_CONNECT, r).await {
        Err(_) => Attach::Retry("timeout".into()),
        Ok(Err(e)) => Attach::Retry(format!("{e:#}")),
        Ok(Ok((st, s))) if st.starts_with("HTTP/1.1 200") => Attach::Ok(Box::new(s)),
        Ok(Ok((st, _))) if st.starts_with("HTTP/1.1 401") => Attach::Gone,
        Ok(Ok((st, _))) => Attach::Retry(st),
    }
}

fn frame(kind: FrameType, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(cstp::HEADER_LEN + payload.len());
    // Our payloads are short (DPD echoes, a logout reason).
    let _ = cstp::encode_into(kind, payload, &mut v);
    v
}

/// Why holding a tunnel ended.
enum Held {
    /// The fleet is stopping; the tunnel is still up.
    Stop,
    /// The tunnel dropped.
    Dropped,
}

/// When a tunnel last heard from the gateway: a monotonic instant and the Unix epoch.
type Heard = (Instant, f64);

/// Hold one tunnel: answer DPD, send keepalives (and probes), until it drops or the fleet
/// stops. `heard` is kept at the last frame received.
async fn hold(
    s: &mut Tls,
    stop: &mut watch::Receiver<bool>,
    probe: Option<Duration>,
    heard: &mut Heard,
) -> Held {
    let mut buf: Vec<u8> = Vec::with_capacity(256);
    let mut b = [0u8; 2048];
    let mut ka = tokio::time::interval(KEEPALIVE);
    ka.tick().await;
    // Without probing the timer is there but never fires.
    let mut pr = tokio::time::interval(probe.unwrap_or(Duration::from_secs(86_400)));
    pr.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    pr.tick().await;
    loop {
        if *stop.borrow() {
            return Held::Stop;
        }
        tokio::select! {
            r = s.read(&mut b) => {
                let n = match r {
                    Ok(0) | Err(_) => return Held::Dropped,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&b[..n]);
                loop {
                    let (kind, used, payload) = match cstp::decode(&buf, MAX_DATA) {
                        Ok(Some((fr, used))) => (fr.kind, used, fr.payload.to_vec()),
                        Ok(None) => break,
                        Err(_) => return Held::Dropped,
                    };
                    buf.drain(..used);
                    *heard = (clock::now(), clock::epoch_secs());
                    match kind {
                        FrameType::DpdReq
                            if s.write_all(&frame(FrameType::DpdResp, &payload)).await.is_err()
                                || s.flush().await.is_err() =>
                        {
                            return Held::Dropped;
                        }
                        FrameType::Disconnect | FrameType::Terminate => return Held::Dropped,
                        _ => {}
                    }
                }
                if buf.capacity() > 64 * 1024 && buf.is_empty() {
                    buf = Vec::with_capacity(256);
                }
            }
            _ = pr.tick(), if probe.is_some() => {
                if s.write_all(&frame(FrameType::DpdReq, &[])).await.is_err()
                    || s.flush().await.is_err()
                {
                    return Held::Dropped;
                }
            }
            _ = ka.tick() => {
                if s.write_all(&frame(FrameType::Keepalive, &[])).await.is_err()
                    || s.flush().await.is_err()
                {
                    return Held::Dropped;
                }
            }
            _ = stop.changed() => {}
        }
    }
}

/// One session: log in, attach, hold, re-attach after every drop.
async fn session(
    f: Arc<Fleet>,
    gate: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    id: usize,
) -> Result<()> {
    let permit = tokio::select! {
        p = gate.acquire() => p?,
        _ = stop.changed() => return Ok(()),
    };
    // Log in (a few tries: the node may be busy), then the first attach.
    let mut cookie = None;
    for attempt in 0..3 {
        if *stop.borrow() {
            return Ok(());
        }
        match tokio::time::timeout(LOGIN, login(&f)).await {
            Ok(Ok(c)) => {
                cookie = Some(c);
                break;
            }
            Ok(Err(e)) => eprintln!("fleet: session {id}: login attempt {attempt}: {e:#}"),
            Err(_) => eprintln!("fleet: session {id}: login attempt {attempt}: timeout"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let Some(cookie) = cookie else { return Ok(()) };
    f.logged_in.fetch_add(1, Ordering::Relaxed);
    let mut stream = loop {
        if *stop.borrow() {
            return Ok(());
        }
        match attach(&f, &cookie).await {
            Attach::Ok(s) => break s,
            Attach::Gone => {
                eprintln!("fleet: session {id}: first CONNECT answered 401");
                f.lost.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Attach::Retry(e) => {
                eprintln!("fleet: session {id}: first CONNECT: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    drop(permit);
    f.attached.fetch_add(1, Ordering::Relaxed);
    let mut heard: Heard = (clock::now(), clock::epoch_secs());
    loop {
        match hold(&mut stream, &mut stop, f.probe, &mut heard).await {
            Held::Stop => {
                if f.logout {
                    let bye = frame(
                        FrameType::Disconnect,
                        &cstp::disconnect_payload("Client connection terminated"),
                    );
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        let _ = stream.write_all(&bye).await;
                        let _ = stream.flush().await;
                        let _ = stream.shutdown().await;
                    })
                    .await;
                }
                return Ok(());
            }
            Held::Dropped => {}
        }
        // Probing: the blackout began when the gateway was last heard.
        let (t_drop, e_drop) =
            if f.probe.is_some() { heard } else { (clock::now(), clock::epoch_secs()) };
        f.attached.fetch_sub(1, Ordering::Relaxed);
        f.drops.fetch_add(1, Ordering::Relaxed);
        drop(stream);
        let (mut attempts, mut last_err, mut warned) = (0u32, String::new(), false);
        stream = loop {
            if *stop.borrow() {
                eprintln!(
                    "fleet: session {id}: not re-attached at the end ({attempts} attempts, last: {last_err})"
                );
                f.pending.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            attempts += 1;
            match attach(&f, &cookie).await {
                Attach::Ok(s) => break s,
                Attach::Gone => {
                    eprintln!("fleet: session {id}: re-attach answered 401 (session lost)");
                    f.lost.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Attach::Retry(e) => {
                    last_err = e;
                    if !warned && t_drop.elapsed() > SLOW {
                        warned = true;
                        eprintln!(
                            "fleet: session {id}: still detached after {SLOW:?} ({attempts} attempts, last: {last_err})"
                        );
                    }
                    tokio::time::sleep(RETRY).await
                }
            }
        };
        let gap_ms = t_drop.elapsed().as_secs_f64() * 1000.0;
        if warned {
            eprintln!(
                "fleet: session {id}: re-attached after {gap_ms:.0} ms ({attempts} attempts)"
            );
        }
        if let Ok(mut g) = f.gaps.lock() {
            g.push((gap_ms, e_drop, clock::epoch_secs(), id));
        }
        heard = (clock::now(), clock::epoch_secs());
        f.attached.fetch_add(1, Ordering::Relaxed);
    }
}

fn progress(f: &Fleet) -> String {
    format!(
        "fleet: logged_in={} attached={} drops={} lost={}",
        f.logged_in.load(Ordering::Relaxed),
        f.attached.load(Ordering::Relaxed),
        f.drops.load(Ordering::Relaxed),
        f.lost.load(Ordering::Relaxed)
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: gh-fleet HOST:PORT USER PASS N SECONDS [CONC]";
    if args.len() < 6 {
        bail!("{usage}");
    }
    let n: usize = args[4].parse().context(usage)?;
    let secs: u64 = args[5].parse().context(usage)?;
    let conc: usize = args.get(6).map(|c| c.parse()).transpose().context(usage)?.unwrap_or(16);
    let start: Instant = clock::now();
    let f = Arc::new(Fleet {
        addr: args[1].clone(),
        user: args[2].clone(),
        pass: args[3].clone(),
        tls: anyconnect::connector()?,
        logged_in: AtomicUsize::new(0),
        attached: AtomicUsize::new(0),
        drops: AtomicUsize::new(0),
        lost: AtomicUsize::new(0),
        pending: AtomicUsize::new(0),
        gaps: Mutex::new(Vec::new()),
        logout: std::env::var("FLEET_LOGOUT").map_or(true, |v| v != "0"),
        probe: match std::env::var("FLEET_PROBE_MS") {
            Ok(v) => {
                let ms: u64 = v.parse().context("FLEET_PROBE_MS: milliseconds")?;
                (ms > 0).then(|| Duration::from_millis(ms))
            }
            Err(_) => None,
        },
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(conc.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..n {
        tasks.spawn(session(f.clone(), gate.clone(), stop_rx.clone(), id));
    }
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let hold_until = tokio::time::sleep(Duration::from_secs(secs));
    tokio::pin!(hold_until);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last = String::new();
    loop {
        tokio::select! {
            _ = &mut hold_until => break,
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = tick.tick() => {
                let p = progress(&f);
                if p != last {
                    eprintln!("{p}");
                    last = p;
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    // Tasks log out (bounded by 2 s each) and end; do not wait for ever.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    eprintln!("{} (stopped after {:.1} s)", progress(&f), start.elapsed().as_secs_f64());
    let gaps = f.gaps.lock().map(|g| g.clone()).unwrap_or_default();
    let out = serde_json::json!({
        "sessions": n,
        "logged_in": f.logged_in.load(Ordering::Relaxed),
        "attached": f.attached.load(Ordering::Relaxed),
        "drops": f.drops.load(Ordering::Relaxed),
        "lost": f.lost.load(Ordering::Relaxed),
        "pending": f.pending.load(Ordering::Relaxed),
        "gaps_ms": gaps.iter().map(|g| (g.0 * 10.0).round() / 10.0).collect::<Vec<f64>>(),
        "events": gaps
            .iter()
            .map(|g| {
                serde_json::json!([(g.1 * 1000.0).round() / 1000.0, (g.2 * 1000.0).round() / 1000.0, g.3])
            })
            .collect::<Vec<_>>(),
    });
    println!("{out}");
    Ok(())
}
