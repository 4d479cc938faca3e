//! HTTP/1.1 request heads and responses for the headend (PROTOCOL.md §1, §2).
//!
//! This is not a general web server: it parses bounded request heads with `httparse`, reads
//! Content-Length bodies only (openconnect never sends chunked requests), and serializes the
//! handful of responses the headend sends, including the `200 CONNECTED` that switches the
//! stream to CSTP.

/// Largest request head accepted (request line + headers + blank line).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest number of header lines accepted. openconnect sends about a dozen on CONNECT.
pub const MAX_HEADERS: usize = 64;
/// Largest request body accepted; the auth XML bodies are well under 4 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Request method as sent (`GET`, `POST`, `CONNECT`, ...).
    pub method: String,
    /// Request target as sent (`/`, `/CSCOSSLC/tunnel`, ...).
    pub path: String,
    /// Minor HTTP version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub version_minor: u8,
    /// Headers in wire order, names lower-cased, values as sent.
    pub headers: Vec<(String, String)>,
    /// Number of bytes of the input the head used; the body (or CSTP) starts here.
    pub head_len: usize,
}

impl RequestHead {
    /// The first value of header `name_lower` (a lower-case name).
    pub fn header(&self, name_lower: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name_lower).map(|(_, v)| v.as_str())
    }

    /// Every value of header `name_lower` (a lower-case name), in wire order.
    pub fn headers_all<'a>(&'a self, name_lower: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers.iter().filter(move |(n, _)| n == name_lower).map(|(_, v)| v.as_str())
    }

    /// Body length announced by the request: 0 when no Content-Length is present.
    ///
    /// Errors: a non-numeric or conflicting Content-Length is [`HttpError::Malformed`], a value
    /// above [`MAX_BODY_BYTES`] is [`HttpError::BodyTooLarge`], and any Transfer-Encoding other
    /// than `identity` (chunked in practice) is [`HttpError::Unsupported`].
    pub fn content_length(&self) -> Result<usize, HttpError> {
        for te in self.headers_all("transfer-encoding") {
            if !te.trim().eq_ignore_ascii_case("identity") {
                return Err(HttpError::Unsupported("transfer-encoding"));
            }
        }
        let mut found: Option<usize> = None;
        for raw in self.headers_all("content-length") {
            let v = raw.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HttpError::Malformed(format!("bad Content-Length {v:?}")));
            }
            // All digits: the only possible parse failure is overflow.
            let n = v.parse::<usize>().unwrap_or(usize::MAX);
            if found.is_some_and(|prev| prev != n) {
                return Err(HttpError::Malformed("conflicting Content-Length headers".into()));
            }
            found = Some(n);
        }
        match found {
            Some(n) if n > MAX_BODY_BYTES => Err(HttpError::BodyTooLarge(n)),
            Some(n) => Ok(n),
            None => Ok(0),
        }
    }

    /// The value of cookie `name` (case-sensitive) from all Cookie headers
    /// (`Cookie: a=1; webvpn=XYZ`). The first occurrence wins; surrounding double quotes are
    /// removed.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers_all("cookie").flat_map(|h| h.split(';')).find_map(|pair| {
            let (n, v) = pair.split_once('=')?;
            if n.trim() != name {
                return None;
            }
            let v = v.trim();
            Some(v.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(v))
        })
    }

    /// Whether the connection stays open after this request: HTTP/1.1 unless
    /// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        let has_token = |tok: &str| {
            self.headers_all("connection")
                .flat_map(|v| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case(tok))
        };
        if self.version_minor >= 1 {
            !has_token("close")
        } else {
            has_token("keep-alive")
        }
    }
}

/// A request the headend refuses to parse.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The request is not valid HTTP/1.x (the text says what was wrong).
    #[error("malformed HTTP request: {0}")]
    Malformed(String),
    /// The head is larger than [`MAX_HEAD_BYTES`].
    #[error("HTTP request head exceeds {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    /// More than [`MAX_HEADERS`] header lines.
    #[error("HTTP request has more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    /// The announced body is larger than [`MAX_BODY_BYTES`].
    #[error("HTTP request body of {0} bytes exceeds {MAX_BODY_BYTES}")]
    BodyTooLarge(usize),
    /// A feature the headend does not implement (named).
    #[error("unsupported HTTP feature: {0}")]
    Unsupported(&'static str),
}

impl HttpError {
    /// Short stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            HttpError::Malformed(_) => "malformed",
            HttpError::HeadTooLarge => "head_too_large",
            HttpError::TooManyHeaders => "too_many_headers",
            HttpError::BodyTooLarge(_) => "body_too_large",
            HttpError::Unsupported(_) => "unsupported",
        }
    }
}

/// Parse a request head from the front of `buf`.
///
/// `Ok(None)` means the head is incomplete and more bytes are needed; once `buf` holds more than
/// [`MAX_HEAD_BYTES`] without a complete head the result is [`HttpError::HeadTooLarge`]. Header
/// values that are not UTF-8 are [`HttpError::Malformed`].
pub fn parse_request_head(buf: &[u8]) -> Result<Option<RequestHead>, HttpError> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut storage);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_HEAD_BYTES {
                Err(HttpError::HeadTooLarge)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    if head_len > MAX_HEAD_BYTES {
        return Err(HttpError::HeadTooLarge);
    }
    // httparse guarantees these are set on Complete; stay defensive anyway.
    let (Some(method), Some(path), Some(version_minor)) = (req.method, req.path, req.version)
    else {
        return Err(HttpError::Malformed("incomplete request line".into()));
    };
    let headers = req
        .headers
        .iter()
        .map(|h| {
            let value = std::str::from_utf8(h.value)
                .map_err(|_| HttpError::Malformed(format!("header {} is not UTF-8", h.name)))?;
            Ok((h.name.to_ascii_lowercase(), value.to_owned()))
        })
        .collect::<Result<Vec<_>, HttpError>>()?;
    Ok(Some(RequestHead {
        method: method.to_owned(),
        path: path.to_owned(),
        version_minor,
        headers,
        head_len,
    }))
}

/// Append `s` with CR and LF removed, so no caller-supplied text can split a header.
fn push_field(out: &mut Vec<u8>, s: &str) {
    out.extend(s.bytes().filter(|&b| b != b'\r' && b != b'\n'));
}

fn push_status_and_headers<'a>(
    out: &mut Vec<u8>,
    code: u16,
    reason: &str,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
) {
    out.extend_from_slice(format!("HTTP/1.1 {code} ").as_bytes());
    push_field(out, reason);
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        push_field(out, name);
        out.extend_from_slice(b": ");
        push_field(out, value);
        out.extend_from_slice(b"\r\n");
    }
}

/// Serialize a response: status line `HTTP/1.1 {code} {reason}`, the given headers,
/// `Content-Length: {body.len()}`, blank line, body.
///
/// CR and LF in the reason or in header names/values are dropped. Do not pass a
/// Content-Length header; it is always added here.
pub fn response(code: u16, reason: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + body.len());
    push_status_and_headers(&mut out, code, reason, headers.iter().copied());
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// `HTTP/1.1 200 CONNECTED`, the given headers and a blank line, with no Content-Length:
/// binary CSTP follows immediately (openconnect requires exactly `HTTP/1.1 200 `, §2.2).
pub fn connect_ok(headers: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + headers.len() * 40);
    push_status_and_headers(
        &mut out,
        200,
        "CONNECTED",
        headers.iter().map(|(n, v)| (*n, v.as_str())),
    );
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CONNECT openconnect 9.01 sends (PROTOCOL.md §2.1), cookie redacted.
    const CONNECT: &[u8] = b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\n\
Host: vpn.example.com\r\n\
User-Agent: Open AnyConnect VPN Agent v9.01-3\r\n\
Cookie: webvpn=SESSIONTOKEN\r\n\
X-CSTP-Version: 1\r\n\
X-CSTP-Hostname: laptop\r\n\
X-CSTP-Accept-Encoding: oc-lz4,lzs\r\n\
X-CSTP-Base-MTU: 1406\r\n\
X-CSTP-MTU: 1316\r\n\
X-CSTP-Address-Type: IPv6,IPv4\r\n\
X-CSTP-Full-IPv6-Capability: true\r\n\
X-CSTP-Address: 10.0.0.5\r\n\
X-CSTP-Address: fd00::5\r\n\
X-DTLS-Master-Secret: 00112233\r\n\
\r\n";

    fn head(raw: &[u8]) -> RequestHead {
        parse_request_head(raw).unwrap().unwrap()
    }

    #[test]
    fn parses_openconnect_connect() {
        let mut raw = CONNECT.to_vec();
        raw.extend_from_slice(b"STF\x01"); // CSTP may follow in the same read
        let h = head(&raw);
        assert_eq!(h.method, "CONNECT");
        assert_eq!(h.path, "/CSCOSSLC/tunnel");
        assert_eq!(h.version_minor, 1);
        assert_eq!(h.head_len, CONNECT.len());
        assert_eq!(h.header("x-cstp-mtu"), Some("1316"));
        assert_eq!(h.header("host"), Some("vpn.example.com"));
        assert_eq!(h.headers_all("x-cstp-address").collect::<Vec<_>>(), ["10.0.0.5", "fd00::5"]);
        assert_eq!(h.cookie("webvpn"), Some("SESSIONTOKEN"));
        assert_eq!(h.content_length(), Ok(0));
        assert!(h.keep_alive());
        assert_eq!(h.header("X-CSTP-MTU"), None, "lookups take lower-case names");
    }

    #[test]
    fn incomplete_at_every_prefix() {
        for cut in 0..CONNECT.len() {
            assert_eq!(parse_request_head(&CONNECT[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn xml_post_with_body() {
        let raw = b"POST / HTTP/1.1\r\nHost: h:8443\r\nX-Aggregate-Auth: 1\r\n\
Content-Type: application/xml; charset=utf-8\r\nContent-Length: 5\r\n\r\n<x/>\n";
        let h = head(raw);
        assert_eq!(h.method, "POST");
        assert_eq!(h.content_length(), Ok(5));
        assert_eq!(&raw[h.head_len..], b"<x/>\n");
    }

    #[test]
    fn head_too_large_without_terminator() {
        let mut raw = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        raw.resize(MAX_HEAD_BYTES, b'0');
        assert_eq!(parse_request_head(&raw), Ok(None));
        raw.push(b'0');
        assert_eq!(parse_request_head(&raw), Err(HttpError::HeadTooLarge));
    }

    #[test]
    fn complete_head_over_limit_rejected() {
        let mut raw = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        raw.resize(MAX_HEAD_BYTES + 10, b'0');
        raw.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_request_head(&raw), Err(HttpError::HeadTooLarge));
    }

    #[test]
    fn too_many_headers() {
        let mut raw = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            raw.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        let ok = [raw.clone(), b"\r\n".to_vec()].concat();
        assert_eq!(head(&ok).headers.len(), MAX_HEADERS);
        raw.extend_from_slice(b"X-One-More: v\r\n\r\n");
        assert_eq!(parse_request_head(&raw), Err(HttpError::TooManyHeaders));
    }

    #[test]
    fn malformed_request_line() {
        let e = parse_request_head(b"GET /\x01 HTTP/1.1\r\n\r\n").unwrap_err();
        assert_eq!(e.reason(), "malformed");
        assert!(parse_request_head(b"\x16\x03\x01\x02\x00").is_err(), "TLS on a plain port");
        assert!(parse_request_head(b"GET / HTTP/2.0\r\n\r\n").is_err());
    }

    #[test]
    fn non_utf8_header_value_is_malformed() {
        let raw = b"GET / HTTP/1.1\r\nX-Name: caf\xe9\r\n\r\n";
        assert!(
            matches!(parse_request_head(raw), Err(HttpError::Malformed(m)) if m.contains("x-name") || m.contains("X-Name"))
        );
    }

    #[test]
    fn content_length_errors() {
        let cl = |v: &str| {
            head(format!("POST / HTTP/1.1\r\nContent-Length: {v}\r\n\r\n").as_bytes())
                .content_length()
        };
        assert_eq!(cl("0"), Ok(0));
        assert_eq!(cl(&MAX_BODY_BYTES.to_string()), Ok(MAX_BODY_BYTES));
        assert_eq!(cl(&(MAX_BODY_BYTES + 1).to_string()), Err(HttpError::BodyTooLarge(65537)));
        assert_eq!(cl("99999999999999999999999"), Err(HttpError::BodyTooLarge(usize::MAX)));
        assert_eq!(cl("12a").map_err(|e| e.reason()), Err("malformed"));
        assert_eq!(cl("-1").map_err(|e| e.reason()), Err("malformed"));
        assert_eq!(cl("+1").map_err(|e| e.reason()), Err("malformed"));
        let dup = head(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n");
        assert_eq!(dup.content_length().map_err(|e| e.reason()), Err("malformed"));
        let same = head(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(same.content_length(), Ok(3));
    }

    #[test]
    fn chunked_unsupported() {
        let h = head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(h.content_length(), Err(HttpError::Unsupported("transfer-encoding")));
        assert_eq!(HttpError::Unsupported("x").reason(), "unsupported");
    }

    #[test]
    fn legacy_get_quirk_has_zero_length() {
        let h = head(
            b"GET / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
Content-Length: 0\r\n\r\n",
        );
        assert_eq!(h.content_length(), Ok(0));
    }

    #[test]
    fn cookies_across_headers() {
        let h = head(
            b"GET / HTTP/1.1\r\nCookie: a=1; webvpncontext=CTX\r\nCookie: webvpn=\"XYZ\"; webvpn=second\r\n\r\n",
        );
        assert_eq!(h.cookie("a"), Some("1"));
        assert_eq!(h.cookie("webvpn"), Some("XYZ"));
        assert_eq!(h.cookie("webvpncontext"), Some("CTX"));
        assert_eq!(h.cookie("WEBVPN"), None);
        assert_eq!(h.cookie("missing"), None);
        let none = head(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(none.cookie("webvpn"), None);
    }

    #[test]
    fn cookie_value_with_base64_padding() {
        let h = head(b"GET / HTTP/1.1\r\nCookie: webvpn=ab+/cd==\r\n\r\n");
        assert_eq!(h.cookie("webvpn"), Some("ab+/cd=="));
    }

    #[test]
    fn keep_alive_rules() {
        let ka = |raw: &[u8]| head(raw).keep_alive();
        assert!(ka(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nConnection: upgrade, close\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn error_reasons_are_stable_labels() {
        assert_eq!(HttpError::Malformed(String::new()).reason(), "malformed");
        assert_eq!(HttpError::HeadTooLarge.reason(), "head_too_large");
        assert_eq!(HttpError::TooManyHeaders.reason(), "too_many_headers");
        assert_eq!(HttpError::BodyTooLarge(1).reason(), "body_too_large");
        assert_eq!(HttpError::Unsupported("x").reason(), "unsupported");
    }

    #[test]
    fn response_has_content_length() {
        let r = response(401, "Unauthorized", &[("X-Reason", "bad password")], b"no");
        assert_eq!(
            r,
            b"HTTP/1.1 401 Unauthorized\r\nX-Reason: bad password\r\nContent-Length: 2\r\n\r\nno"
        );
        let empty = response(200, "OK", &[], b"");
        assert_eq!(empty, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    }

    #[test]
    fn response_strips_header_injection() {
        let r = response(503, "Busy\r\nX-Evil: 1", &[("X-Reason", "a\r\nSet-Cookie: x=1")], b"");
        let text = String::from_utf8(r).unwrap();
        assert_eq!(text.matches("\r\n").count(), 4, "{text:?}");
        assert!(text.starts_with("HTTP/1.1 503 BusyX-Evil: 1\r\n"));
    }

    #[test]
    fn connect_ok_has_no_content_length() {
        let r = connect_ok(&[
            ("X-CSTP-Address", "10.0.0.5".to_string()),
            ("X-CSTP-MTU", "1316".to_string()),
        ]);
        assert_eq!(
            r,
            b"HTTP/1.1 200 CONNECTED\r\nX-CSTP-Address: 10.0.0.5\r\nX-CSTP-MTU: 1316\r\n\r\n"
        );
        assert!(r.starts_with(b"HTTP/1.1 200 "), "openconnect requires this exact prefix");
    }
}
