//! gh-tcp-probe: a one-connection TCP transfer checker, run by the harness inside a namespace
//! (`ip netns exec NS gh-tcp-probe ...`). Unlike iperf3, whose receiver stops counting when the
//! sender says "done", the receiver here reads to EOF, checks every byte against a fixed
//! pattern, and tells the sender what it got.
//!
//! ```text
//! gh-tcp-probe listen  ADDR:PORT  send BYTES | recv   TIMEOUT_SECS
//! gh-tcp-probe connect ADDR:PORT  send BYTES | recv   TIMEOUT_SECS
//! ```
//! The receiving side replies with its byte count (8 bytes, big endian) after EOF. Both sides
//! print one line `bytes=<received> corrupt_at=<offset|none>` and exit 0 (1 on error).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Byte `i` of the stream.
fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match run(&args) {
        Ok(line) => {
            let _ = writeln!(std::io::stdout(), "{line}");
        }
        Err(e) => {
            eprintln!("gh-tcp-probe: {e}");
            std::process::exit(1);
        }
    }
}

fn run(args: &[String]) -> Result<String, String> {
    let usage = "usage: gh-tcp-probe listen|connect ADDR:PORT send BYTES|recv TIMEOUT_SECS";
    let (mode, addr, rest) = match args {
        [_, mode, addr, rest @ ..] => (mode.as_str(), addr, rest),
        _ => return Err(usage.into()),
    };
    let addr: SocketAddr = addr.parse().map_err(|e| format!("bad address {addr}: {e}"))?;
    let (send, timeout) = match rest {
        [s, n, t] if s == "send" => (Some(n.parse::<u64>().map_err(|e| e.to_string())?), t),
        [r, t] if r == "recv" => (None, t),
        _ => return Err(usage.into()),
    };
    let timeout = Duration::from_secs(timeout.parse().map_err(|_| usage.to_string())?);
    let stream = match mode {
        "listen" => {
            let l = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
            // The harness polls `ss -ltn` for the listener; it bounds the accept by killing us.
            l.accept().map_err(|e| format!("accept: {e}"))?.0
        }
        "connect" => TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| format!("connect {addr}: {e}"))?,
        _ => return Err(usage.into()),
    };
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    match send {
        Some(n) => sender(stream, n),
        None => receiver(stream),
    }
}

fn sender(mut s: TcpStream, n: u64) -> Result<String, String> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut off = 0u64;
    while off < n {
        let len = (n - off).min(buf.len() as u64) as usize;
        for (j, b) in buf[..len].iter_mut().enumerate() {
            *b = pattern(off + j as u64);
        }
        s.write_all(&buf[..len]).map_err(|e| format!("write at {off}: {e}"))?;
        off += len as u64;
    }
    s.shutdown(std::net::Shutdown::Write).map_err(|e| format!("shutdown: {e}"))?;
    let mut reply = [0u8; 9];
    s.read_exact(&mut reply).map_err(|e| format!("reading the receiver's count: {e}"))?;
    let got = u64::from_be_bytes(reply[..8].try_into().map_err(|_| "reply")?);
    let corrupt = if reply[8] == 0 { "none".to_string() } else { "yes".to_string() };
    Ok(format!("bytes={got} corrupt_at={corrupt}"))
}

fn receiver(mut s: TcpStream) -> Result<String, String> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    let mut corrupt_at: Option<u64> = None;
    loop {
        let k = s.read(&mut buf).map_err(|e| format!("read after {total} bytes: {e}"))?;
        if k == 0 {
            break;
        }
        if corrupt_at.is_none() {
            corrupt_at = buf[..k]
                .iter()
                .enumerate()
                .find(|(j, b)| **b != pattern(total + *j as u64))
                .map(|(j, _)| total + j as u64);
        }
        total += k as u64;
    }
    let mut reply = total.to_be_bytes().to_vec();
    reply.push(u8::from(corrupt_at.is_some()));
    s.write_all(&reply).map_err(|e| format!("writing the count: {e}"))?;
    let c = corrupt_at.map(|o| o.to_string()).unwrap_or_else(|| "none".into());
    Ok(format!("bytes={total} corrupt_at={c}"))
}
