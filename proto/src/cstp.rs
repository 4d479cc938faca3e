//! CSTP framing: the 8-byte-header packets carried inside the TLS stream after the
//! `200 CONNECTED` reply (PROTOCOL.md §3).
//!
//! Header layout: bytes 0–3 `S T F 0x01`, bytes 4–5 payload length (big-endian, header not
//! counted), byte 6 type, byte 7 zero. The decoder works on a byte stream (TLS plaintext), so a
//! frame may arrive split across reads; it reports malformed input as early as the bytes allow.

/// Length of the CSTP header that precedes every payload.
pub const HEADER_LEN: usize = 8;

/// The four magic bytes every CSTP header starts with (`S T F 0x01`).
pub const MAGIC: [u8; 4] = *b"STF\x01";

/// Upper bound for control-frame payloads (keepalive, disconnect, terminate). openconnect sends
/// at most a short ASCII reason; anything bigger is not a client we want to keep talking to.
pub const MAX_CONTROL_PAYLOAD: usize = 1024;

/// The first byte of a DISCONNECT payload carrying a reason; ocserv treats it as "the user logged
/// out" and invalidates the session (PROTOCOL.md §3).
pub const DISCONNECT_REASON_MARKER: u8 = 0xb0;

/// CSTP packet type (byte 6 of the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// `0x00`: one raw IPv4/IPv6 packet.
    Data,
    /// `0x03`: dead-peer-detection request; the peer answers with a DPD-RESP.
    DpdReq,
    /// `0x04`: dead-peer-detection response.
    DpdResp,
    /// `0x05`: disconnect, optionally `0xb0` + ASCII reason.
    Disconnect,
    /// `0x07`: keepalive; openconnect does not answer it.
    Keepalive,
    /// `0x08`: compressed data, only after a Content-Encoding was negotiated.
    Compressed,
    /// `0x09`: the server is shutting down.
    Terminate,
}

impl FrameType {
    /// Every frame type, in code order.
    pub const ALL: [FrameType; 7] = [
        FrameType::Data,
        FrameType::DpdReq,
        FrameType::DpdResp,
        FrameType::Disconnect,
        FrameType::Keepalive,
        FrameType::Compressed,
        FrameType::Terminate,
    ];

    /// The wire code of this type.
    pub fn code(self) -> u8 {
        match self {
            FrameType::Data => 0x00,
            FrameType::DpdReq => 0x03,
            FrameType::DpdResp => 0x04,
            FrameType::Disconnect => 0x05,
            FrameType::Keepalive => 0x07,
            FrameType::Compressed => 0x08,
            FrameType::Terminate => 0x09,
        }
    }

    /// The type for a wire code, `None` for codes openconnect would call "Unknown packet".
    pub fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0x00 => FrameType::Data,
            0x03 => FrameType::DpdReq,
            0x04 => FrameType::DpdResp,
            0x05 => FrameType::Disconnect,
            0x07 => FrameType::Keepalive,
            0x08 => FrameType::Compressed,
            0x09 => FrameType::Terminate,
            _ => return None,
        })
    }

    /// Largest payload accepted for this type when the data bound is `max_data`.
    ///
    /// DATA/COMPRESSED are bounded by the negotiated MTU; DPD frames may be MTU probes so they
    /// get the larger of the two bounds; other control frames get [`MAX_CONTROL_PAYLOAD`].
    pub fn max_payload(self, max_data: usize) -> usize {
        match self {
            FrameType::Data | FrameType::Compressed => max_data,
            FrameType::DpdReq | FrameType::DpdResp => max_data.max(MAX_CONTROL_PAYLOAD),
            FrameType::Disconnect | FrameType::Keepalive | FrameType::Terminate => {
                MAX_CONTROL_PAYLOAD
            }
        }
    }
}

/// One decoded CSTP frame, borrowing its payload from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Packet type.
    pub kind: FrameType,
    /// Payload (without the header).
    pub payload: &'a [u8],
}

/// A malformed CSTP frame. Each one closes that client's tunnel (openconnect itself quits on
/// the first three).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The first four bytes are not `S T F 0x01`.
    #[error("bad CSTP magic {0:02x?}, expected 53 54 46 01")]
    BadMagic([u8; 4]),
    /// Header byte 7 must be zero.
    #[error("CSTP header reserved byte is {0:#04x}, expected 0")]
    NonZeroReserved(u8),
    /// Header byte 6 is not a known packet type.
    #[error("unknown CSTP packet type {0:#04x}")]
    UnknownType(u8),
    /// The payload is longer than allowed for its type.
    #[error("CSTP payload of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Announced (or supplied) payload length.
        len: usize,
        /// The limit that applied.
        max: usize,
    },
}

impl FrameError {
    /// Short stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::BadMagic(_) => "bad_magic",
            FrameError::NonZeroReserved(_) => "reserved",
            FrameError::UnknownType(_) => "unknown_type",
            FrameError::TooLong { .. } => "too_long",
        }
    }
}

/// Decode one frame from the front of a byte stream (a TLS plaintext stream, so a frame may
/// arrive split across reads).
///
/// Returns `Ok(None)` when more bytes are needed, otherwise the frame and the number of bytes it
/// used. `max_data` bounds DATA/COMPRESSED payloads (the negotiated MTU); control frames
/// (keepalive, disconnect, terminate) are bounded by [`MAX_CONTROL_PAYLOAD`], except DPD-REQ and
/// DPD-RESP which may carry up to `max_data` (MTU probes).
///
/// Errors are reported as soon as the bytes that prove them are present: a bad magic once four
/// bytes are buffered, a bad type/reserved byte or an excessive length once the header is
/// complete, without waiting for the payload.
pub fn decode(buf: &[u8], max_data: usize) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let Some(magic) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    if *magic != MAGIC {
        return Err(FrameError::BadMagic(*magic));
    }
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let kind = FrameType::from_code(header[6]).ok_or(FrameError::UnknownType(header[6]))?;
    if header[7] != 0 {
        return Err(FrameError::NonZeroReserved(header[7]));
    }
    let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let max = kind.max_payload(max_data);
    if len > max {
        return Err(FrameError::TooLong { len, max });
    }
    let total = HEADER_LEN + len;
    match buf.get(HEADER_LEN..total) {
        Some(payload) => Ok(Some((Frame { kind, payload }, total))),
        None => Ok(None),
    }
}

/// The 8-byte header for a frame of `kind` carrying `payload_len` bytes.
pub fn encode_header(kind: FrameType, payload_len: u16) -> [u8; HEADER_LEN] {
    let [hi, lo] = payload_len.to_be_bytes();
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], hi, lo, kind.code(), 0]
}

/// Append one whole frame (header + payload) to `out`.
///
/// openconnect wants one CSTP packet per TLS record, so callers should hand each encoded frame
/// to the TLS layer as its own write. A payload longer than `u16::MAX` is a caller bug and
/// returns [`FrameError::TooLong`] without touching `out`.
pub fn encode_into(kind: FrameType, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    let len = u16::try_from(payload.len())
        .map_err(|_| FrameError::TooLong { len: payload.len(), max: usize::from(u16::MAX) })?;
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&encode_header(kind, len));
    out.extend_from_slice(payload);
    Ok(())
}

/// DISCONNECT payload: `0xb0` followed by the ASCII reason (what openconnect sends and logs).
///
/// Non-ASCII and control characters are replaced by `?` and the reason is cut so the payload
/// stays within [`MAX_CONTROL_PAYLOAD`].
pub fn disconnect_payload(reason: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + reason.len().min(MAX_CONTROL_PAYLOAD - 1));
    out.push(DISCONNECT_REASON_MARKER);
    out.extend(
        reason
            .chars()
            .map(|c| if c.is_ascii() && !c.is_ascii_control() { c as u8 } else { b'?' })
            .take(MAX_CONTROL_PAYLOAD - 1),
    );
    out
}

/// What a received DISCONNECT means for the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectKind {
    /// `0xb0` + reason: the user logged out; the session ends.
    UserLogout(String),
    /// Empty (or not `0xb0`): a temporary disconnect; the session is kept.
    Temporary,
}

/// Interpret a received DISCONNECT payload (ocserv's rule, PROTOCOL.md §3).
///
/// A payload starting with `0xb0` is a user logout carrying the (lossily decoded) reason; an
/// empty payload or any other first byte is a temporary disconnect.
pub fn parse_disconnect(payload: &[u8]) -> DisconnectKind {
    match payload.split_first() {
        Some((&DISCONNECT_REASON_MARKER, reason)) => {
            let reason = String::from_utf8_lossy(reason);
            DisconnectKind::UserLogout(reason.trim_end_matches('\0').to_owned())
        }
        _ => DisconnectKind::Temporary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MTU: usize = 1406;

    fn frame(kind: FrameType, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_into(kind, payload, &mut v).unwrap();
        v
    }

    #[test]
    fn codes_round_trip_and_match_protocol() {
        let expected = [0x00, 0x03, 0x04, 0x05, 0x07, 0x08, 0x09];
        for (kind, code) in FrameType::ALL.iter().zip(expected) {
            assert_eq!(kind.code(), code);
            assert_eq!(FrameType::from_code(code), Some(*kind));
        }
        for c in [0x01, 0x02, 0x06, 0x0a, 0xff] {
            assert_eq!(FrameType::from_code(c), None);
        }
    }

    #[test]
    fn header_layout_matches_wire() {
        assert_eq!(
            encode_header(FrameType::DpdReq, 0x0102),
            [b'S', b'T', b'F', 0x01, 0x01, 0x02, 0x03, 0x00]
        );
    }

    #[test]
    fn keepalive_as_openconnect_sends_it() {
        let wire = [b'S', b'T', b'F', 1, 0, 0, 7, 0];
        let (f, used) = decode(&wire, MTU).unwrap().unwrap();
        assert_eq!(f, Frame { kind: FrameType::Keepalive, payload: &[] });
        assert_eq!(used, 8);
    }

    #[test]
    fn every_type_round_trips() {
        for kind in FrameType::ALL {
            let payload = b"\x45\x00hello";
            let wire = frame(kind, payload);
            assert_eq!(wire.len(), HEADER_LEN + payload.len());
            let (f, used) = decode(&wire, MTU).unwrap().unwrap();
            assert_eq!(f.kind, kind);
            assert_eq!(f.payload, payload);
            assert_eq!(used, wire.len());
        }
    }

    #[test]
    fn split_at_every_offset_needs_more_then_decodes() {
        let payload: Vec<u8> = (0..200u8).collect();
        let wire = frame(FrameType::Data, &payload);
        for cut in 0..wire.len() {
            assert_eq!(decode(&wire[..cut], MTU), Ok(None), "cut at {cut}");
        }
        let (f, used) = decode(&wire, MTU).unwrap().unwrap();
        assert_eq!(f.payload, &payload[..]);
        assert_eq!(used, wire.len());
    }

    #[test]
    fn two_frames_in_one_buffer() {
        let mut wire = frame(FrameType::DpdReq, b"");
        wire.extend(frame(FrameType::Data, b"abc"));
        wire.extend_from_slice(b"ST"); // start of a third frame
        let (f1, n1) = decode(&wire, MTU).unwrap().unwrap();
        assert_eq!((f1.kind, f1.payload, n1), (FrameType::DpdReq, &b""[..], 8));
        let (f2, n2) = decode(&wire[n1..], MTU).unwrap().unwrap();
        assert_eq!((f2.kind, f2.payload, n2), (FrameType::Data, &b"abc"[..], 11));
        assert_eq!(decode(&wire[n1 + n2..], MTU), Ok(None));
    }

    #[test]
    fn bad_magic_detected_at_four_bytes() {
        assert_eq!(decode(b"GET", MTU), Ok(None));
        assert_eq!(decode(b"GET ", MTU), Err(FrameError::BadMagic(*b"GET ")));
        assert_eq!(decode(b"STF\x02\0\0\0\0", MTU), Err(FrameError::BadMagic(*b"STF\x02")));
    }

    #[test]
    fn reserved_byte_must_be_zero() {
        let mut wire = frame(FrameType::Data, b"x");
        wire[7] = 1;
        assert_eq!(decode(&wire, MTU), Err(FrameError::NonZeroReserved(1)));
        // detected with the header alone
        assert_eq!(decode(&wire[..8], MTU), Err(FrameError::NonZeroReserved(1)));
    }

    #[test]
    fn unknown_type_rejected_with_header_alone() {
        let wire = [b'S', b'T', b'F', 1, 0, 5, 0x06, 0];
        assert_eq!(decode(&wire, MTU), Err(FrameError::UnknownType(6)));
    }

    #[test]
    fn too_long_detected_before_payload_arrives() {
        let hdr = encode_header(FrameType::Data, (MTU + 1) as u16);
        assert_eq!(decode(&hdr, MTU), Err(FrameError::TooLong { len: MTU + 1, max: MTU }));
    }

    #[test]
    fn data_length_boundary() {
        let ok = vec![0u8; MTU];
        let wire = frame(FrameType::Data, &ok);
        assert_eq!(decode(&wire, MTU).unwrap().unwrap().0.payload.len(), MTU);
        let wire = frame(FrameType::Compressed, &[0u8; MTU + 1]);
        assert_eq!(decode(&wire, MTU), Err(FrameError::TooLong { len: MTU + 1, max: MTU }));
    }

    #[test]
    fn control_frames_bounded_at_1024() {
        for kind in [FrameType::Keepalive, FrameType::Disconnect, FrameType::Terminate] {
            let wire = frame(kind, &[b'a'; MAX_CONTROL_PAYLOAD]);
            assert!(decode(&wire, 65535).unwrap().is_some());
            let hdr = encode_header(kind, MAX_CONTROL_PAYLOAD as u16 + 1);
            assert_eq!(
                decode(&hdr, 65535),
                Err(FrameError::TooLong { len: 1025, max: MAX_CONTROL_PAYLOAD })
            );
        }
    }

    #[test]
    fn dpd_may_carry_mtu_sized_probe() {
        for kind in [FrameType::DpdReq, FrameType::DpdResp] {
            let wire = frame(kind, &vec![0u8; MTU]);
            assert_eq!(decode(&wire, MTU).unwrap().unwrap().0.payload.len(), MTU);
            let hdr = encode_header(kind, MTU as u16 + 1);
            assert_eq!(decode(&hdr, MTU), Err(FrameError::TooLong { len: MTU + 1, max: MTU }));
            // a small MTU never pushes DPD below the control bound
            let wire = frame(kind, &[0u8; 1000]);
            assert!(decode(&wire, 500).unwrap().is_some());
        }
    }

    #[test]
    fn max_u16_payload_round_trips() {
        let payload = vec![7u8; usize::from(u16::MAX)];
        let wire = frame(FrameType::Data, &payload);
        let (f, used) = decode(&wire, usize::from(u16::MAX)).unwrap().unwrap();
        assert_eq!(f.payload.len(), usize::from(u16::MAX));
        assert_eq!(used, wire.len());
    }

    #[test]
    fn encode_rejects_oversized_payload_untouched() {
        let mut out = vec![1, 2, 3];
        let big = vec![0u8; usize::from(u16::MAX) + 1];
        assert_eq!(
            encode_into(FrameType::Data, &big, &mut out),
            Err(FrameError::TooLong { len: 65536, max: 65535 })
        );
        assert_eq!(out, [1, 2, 3]);
    }

    #[test]
    fn encode_appends() {
        let mut out = b"prefix".to_vec();
        encode_into(FrameType::Keepalive, b"", &mut out).unwrap();
        assert_eq!(&out[..6], b"prefix");
        assert_eq!(&out[6..], &encode_header(FrameType::Keepalive, 0));
    }

    #[test]
    fn error_reasons_are_stable_labels() {
        assert_eq!(FrameError::BadMagic([0; 4]).reason(), "bad_magic");
        assert_eq!(FrameError::NonZeroReserved(1).reason(), "reserved");
        assert_eq!(FrameError::UnknownType(6).reason(), "unknown_type");
        assert_eq!(FrameError::TooLong { len: 2, max: 1 }.reason(), "too_long");
        assert!(FrameError::UnknownType(6).to_string().contains("0x06"));
    }

    #[test]
    fn disconnect_payload_is_b0_plus_reason() {
        assert_eq!(disconnect_payload("Server request"), b"\xb0Server request");
        assert_eq!(disconnect_payload(""), b"\xb0");
        assert_eq!(disconnect_payload("caf\u{e9}\n"), b"\xb0caf??");
        assert_eq!(disconnect_payload(&"x".repeat(5000)).len(), MAX_CONTROL_PAYLOAD);
    }

    #[test]
    fn parse_disconnect_follows_ocserv_rule() {
        assert_eq!(
            parse_disconnect(b"\xb0Aborted by caller"),
            DisconnectKind::UserLogout("Aborted by caller".into())
        );
        assert_eq!(
            parse_disconnect(&disconnect_payload("Client connection terminated")),
            DisconnectKind::UserLogout("Client connection terminated".into())
        );
        assert_eq!(parse_disconnect(b"\xb0"), DisconnectKind::UserLogout(String::new()));
        assert_eq!(parse_disconnect(b""), DisconnectKind::Temporary);
        assert_eq!(parse_disconnect(b"\x00bye"), DisconnectKind::Temporary);
    }

    #[test]
    fn disconnect_with_max_reason_decodes_as_control_frame() {
        let payload = disconnect_payload(&"r".repeat(2000));
        let wire = frame(FrameType::Disconnect, &payload);
        let (f, _) = decode(&wire, 0).unwrap().unwrap();
        assert!(
            matches!(parse_disconnect(f.payload), DisconnectKind::UserLogout(r) if r.len() == 1023)
        );
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        fn kind() -> impl Strategy<Value = FrameType> {
            proptest::sample::select(FrameType::ALL.to_vec())
        }

        proptest! {
            #[test]
            fn round_trip_any_split(
                frames in proptest::collection::vec((kind(), proptest::collection::vec(any::<u8>(), 0..=MAX_CONTROL_PAYLOAD)), 1..5),
                chunk in 1usize..64,
            ) {
                let max_data = 1100;
                let mut wire = Vec::new();
                for (k, p) in &frames {
                    encode_into(*k, p, &mut wire).unwrap();
                }
                // Feed the stream in chunks, like TLS reads, and decode greedily.
                let mut buf = Vec::new();
                let mut got = Vec::new();
                for piece in wire.chunks(chunk) {
                    buf.extend_from_slice(piece);
                    loop {
                        match decode(&buf, max_data) {
                            Ok(Some((f, used))) => {
                                got.push((f.kind, f.payload.to_vec()));
                                buf.drain(..used);
                            }
                            Ok(None) => break,
                            Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
                        }
                    }
                }
                prop_assert!(buf.is_empty());
                prop_assert_eq!(got, frames);
            }

            #[test]
            fn decode_never_panics_and_never_overreads(data in proptest::collection::vec(any::<u8>(), 0..64), max in 0usize..70000) {
                if let Ok(Some((f, used))) = decode(&data, max) {
                    prop_assert!(used <= data.len());
                    prop_assert_eq!(used, HEADER_LEN + f.payload.len());
                }
            }
        }
    }
}
