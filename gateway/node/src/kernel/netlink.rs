//! A blocking netlink socket and the message layout every netlink family shares: a 16-byte
//! header, a family header, then type-length-value attributes aligned to 4 bytes.
//!
//! Only what the node needs to talk to the kernel without subprocesses: route (addresses,
//! links), netfilter (nftables set elements) and sock_diag (destroying sockets). Blocking on
//! purpose: only the slot worker thread uses it, never an async task.

use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, Read};
use std::time::Duration;

/// `NLM_F_REQUEST`: a request to the kernel.
pub const F_REQUEST: u16 = 0x1;
/// `NLM_F_ACK`: answer with an error message whose code is 0 on success.
pub const F_ACK: u16 = 0x4;
/// `NLM_F_DUMP` (`ROOT | MATCH`): return every object.
pub const F_DUMP: u16 = 0x300;
/// `NLM_F_REPLACE`.
pub const F_REPLACE: u16 = 0x100;
/// `NLM_F_CREATE`.
pub const F_CREATE: u16 = 0x400;
/// `NLA_F_NESTED`: the attribute holds attributes.
pub const NESTED: u16 = 0x8000;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// How long the kernel may take to answer before the call fails instead of hanging.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// One netlink message being built: header, family header, attributes.
#[derive(Debug, Clone)]
pub struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    /// A message of `kind` with `flags`, whose family header is `family_header`.
    pub fn new(kind: u16, flags: u16, family_header: &[u8]) -> Msg {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&[0; 4]); // length, set by `finish`
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&[0; 8]); // sequence (set by `Netlink::talk`) and port id
        buf.extend_from_slice(family_header);
        pad(&mut buf);
        Msg { buf, nests: Vec::new() }
    }

    /// Append attribute `kind` holding `value`.
    pub fn attr(&mut self, kind: u16, value: &[u8]) -> &mut Msg {
        let len = 4 + value.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        pad(&mut self.buf);
        self
    }

    /// A NUL-terminated string attribute.
    pub fn attr_str(&mut self, kind: u16, value: &str) -> &mut Msg {
        let mut v = value.as_bytes().to_vec();
        v.push(0);
        self.attr(kind, &v)
    }

    /// Open a nested attribute; close it with [`end`](Msg::end).
    pub fn begin(&mut self, kind: u16) -> &mut Msg {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&(kind | NESTED).to_ne_bytes());
        self
    }

    /// Close the innermost nested attribute.
    pub fn end(&mut self) -> &mut Msg {
        if let Some(at) = self.nests.pop() {
            let len = (self.buf.len() - at) as u16;
            self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }

    fn wants_answer(&self) -> bool {
        let flags = u16::from_ne_bytes([self.buf[6], self.buf[7]]);
        flags & (F_ACK | F_DUMP) != 0
    }
}

fn pad(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// A message the kernel sent back: its type and its payload after the netlink header.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Message type.
    pub kind: u16,
    /// Family header and attributes.
    pub payload: Vec<u8>,
}

/// The attributes in `data` (after a family header of `skip` bytes), as (type, value).
pub fn attrs(data: &[u8], skip: usize) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = skip;
    while at + 4 <= data.len() {
        let len = u16::from_ne_bytes([data[at], data[at + 1]]) as usize;
        let kind = u16::from_ne_bytes([data[at + 2], data[at + 3]]) & !NESTED;
        if len < 4 || at + len > data.len() {
            break;
        }
        out.push((kind, &data[at + 4..at + len]));
        at += (len + 3) & !3;
    }
    out
}

/// A netlink socket of one protocol (`NETLINK_ROUTE`, `NETLINK_NETFILTER`, …).
#[derive(Debug)]
pub struct Netlink {
    sock: Socket,
    seq: u32,
}

impl Netlink {
    /// Open a socket for netlink `protocol`.
    pub fn open(protocol: i32) -> io::Result<Netlink> {
        let sock =
            Socket::new(Domain::from(libc::AF_NETLINK), Type::RAW, Some(Protocol::from(protocol)))?;
        sock.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        Ok(Netlink { sock, seq: 1 })
    }

    /// Send `msgs` in one datagram and gather the answers: every reply of a dump until its
    /// end, and the acknowledgement of each message that asked for one. The first error the
    /// kernel reports fails the call with that errno; what it still sends about this call is
    /// skipped by the next one (by sequence number).
    pub fn talk(&mut self, msgs: Vec<Msg>) -> io::Result<Vec<Reply>> {
        let mut out = Vec::new();
        let mut waiting = std::collections::BTreeSet::new();
        let first = self.seq.wrapping_add(1);
        for m in msgs {
            self.seq = self.seq.wrapping_add(1);
            if m.wants_answer() {
                waiting.insert(self.seq);
            }
            out.extend(m.finish(self.seq));
        }
        self.sock.send(&out)?;
        let mut replies = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while !waiting.is_empty() {
            let n = (&self.sock).read(&mut buf)?;
            let mut at = 0;
            while at + 16 <= n {
                let h = &buf[at..at + 16];
                let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
                let kind = u16::from_ne_bytes([h[4], h[5]]);
                let seq = u32::from_ne_bytes([h[8], h[9], h[10], h[11]]);
                if len < 16 || at + len > n {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "short netlink reply"));
                }
                let body = &buf[at + 16..at + len];
                at += (len + 3) & !3;
                // Answers to an earlier call that failed early (a failed batch reports every
                // message it refused) are not this call's.
                if seq.wrapping_sub(first) > self.seq.wrapping_sub(first) {
                    continue;
                }
                match kind {
                    NLMSG_ERROR => {
                        let code = body
                            .get(0..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .unwrap_or(0);
                        if code != 0 {
                            return Err(io::Error::from_raw_os_error(-code));
                        }
                        waiting.remove(&seq);
                    }
                    NLMSG_DONE => {
                        waiting.remove(&seq);
                    }
                    _ => replies.push(Reply { kind, payload: body.to_vec() }),
                }
            }
        }
        Ok(replies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_attributes_carry_their_length_and_are_read_back() {
        let mut m = Msg::new(20, F_REQUEST, &[1, 2, 3, 4]);
        m.begin(3).attr(1, &[9, 9, 9]).end().attr_str(2, "ab");
        let bytes = m.finish(7);
        assert_eq!(
            u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize,
            bytes.len()
        );
        let top = attrs(&bytes[16..], 4);
        assert_eq!(top.len(), 2);
        assert_eq!(top[0].0, 3, "the nested flag is not part of the type");
        assert_eq!(attrs(top[0].1, 0), vec![(1u16, &[9u8, 9, 9][..])]);
        assert_eq!(top[1], (2, &b"ab\0"[..]));
    }
}
