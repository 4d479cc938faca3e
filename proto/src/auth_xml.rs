//! AnyConnect aggregate-auth XML messages (PROTOCOL.md §1).
//!
//! Gatehouse shows one form with a `username` text input, a `password` password input and, when
//! more than one tunnel group is offered, a `group_list` select. The client answers with a
//! `config-auth type="auth-reply"` XML body, or with an urlencoded body in the legacy flow
//! (§1.4); both parse into [`ClientAuth`].

use std::fmt;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// Largest auth body accepted (XML or urlencoded). openconnect's are well under 4 KiB.
pub const MAX_AUTH_BODY: usize = 64 * 1024;

/// Deepest element nesting accepted; openconnect's bodies nest three deep.
const MAX_DEPTH: usize = 32;

/// What the client sent: the opening request or a filled-in form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuthKind {
    /// `type="init"` (or a legacy request without credentials): show the form.
    #[default]
    Init,
    /// `type="auth-reply"` (or a legacy form post): check the credentials.
    Reply,
}

/// The fields Gatehouse reads from a client auth message.
///
/// `Debug` redacts the password, so a logged `ClientAuth` never leaks it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ClientAuth {
    /// Init or reply.
    pub kind: ClientAuthKind,
    /// `<auth><username>` or `username=`.
    pub username: Option<String>,
    /// `<auth><password>` or `password=`.
    pub password: Option<String>,
    /// Root-level `<group-select>`, `<auth><group_list>` or `group_list=`.
    pub group_select: Option<String>,
    /// Client version, `<version who="vpn">` (e.g. `v9.01-3`).
    pub version: Option<String>,
    /// `<device-id>` (e.g. `linux-64`).
    pub device_id: Option<String>,
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuth")
            .field("kind", &self.kind)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("group_select", &self.group_select)
            .field("version", &self.version)
            .field("device_id", &self.device_id)
            .finish()
    }
}

/// An auth body Gatehouse refuses.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AuthParseError {
    /// The body is larger than [`MAX_AUTH_BODY`].
    #[error("auth body of {0} bytes exceeds {MAX_AUTH_BODY}")]
    TooLarge(usize),
    /// Not well-formed XML, or a bad urlencoded body (the text says what was wrong).
    #[error("malformed auth body: {0}")]
    Malformed(String),
    /// A DOCTYPE (and so possible entity declarations) was present; refused to rule out XXE.
    #[error("DOCTYPE is not allowed in auth bodies")]
    DocType,
    /// The root element is not `config-auth`.
    #[error("auth body root is <{0}>, expected <config-auth>")]
    WrongRoot(String),
    /// `config-auth` has a `type` other than `init` or `auth-reply`.
    #[error("config-auth type {0:?} is not init or auth-reply")]
    WrongType(String),
}

impl AuthParseError {
    /// Short stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthParseError::TooLarge(_) => "too_large",
            AuthParseError::Malformed(_) => "malformed",
            AuthParseError::DocType => "doctype",
            AuthParseError::WrongRoot(_) => "wrong_root",
            AuthParseError::WrongType(_) => "wrong_type",
        }
    }
}

/// What a text or attribute with a bad entity reference is called (its content never is: it
/// may be a password).
const UNDECODABLE: &str = "an undecodable entity or character reference";

fn malformed(e: impl fmt::Display) -> AuthParseError {
    AuthParseError::Malformed(e.to_string())
}

/// Which [`ClientAuth`] field an element at a given position fills.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Username,
    Password,
    Group,
    Version,
    DeviceId,
}

/// `stack` holds the open elements above `name` (root first).
fn field_for(stack: &[Vec<u8>], name: &[u8]) -> Option<Field> {
    match (stack, name) {
        ([_root], b"version") => Some(Field::Version),
        ([_root], b"device-id") => Some(Field::DeviceId),
        ([_root], b"group-select") => Some(Field::Group),
        ([_root, auth], b"username") if auth == b"auth" => Some(Field::Username),
        ([_root, auth], b"password") if auth == b"auth" => Some(Field::Password),
        ([_root, auth], b"group_list") if auth == b"auth" => Some(Field::Group),
        _ => None,
    }
}

impl ClientAuth {
    fn slot(&mut self, field: Field) -> &mut Option<String> {
        match field {
            Field::Username => &mut self.username,
            Field::Password => &mut self.password,
            Field::Group => &mut self.group_select,
            Field::Version => &mut self.version,
            Field::DeviceId => &mut self.device_id,
        }
    }

    /// Store a value unless the field was already set: the first occurrence wins.
    fn set_first(&mut self, field: Field, value: String) {
        let slot = self.slot(field);
        if slot.is_none() {
            *slot = Some(value);
        }
    }
}

fn root_kind(e: &BytesStart<'_>) -> Result<ClientAuthKind, AuthParseError> {
    let name = e.name();
    if name.as_ref() != b"config-auth" {
        return Err(AuthParseError::WrongRoot(String::from_utf8_lossy(name.as_ref()).into_owned()));
    }
    // Iterating all attributes (rather than looking one up) also rejects duplicates.
    let mut ty = String::new();
    for attr in e.attributes() {
        let attr = attr.map_err(malformed)?;
        if attr.key.as_ref() == b"type" {
            ty = attr.unescape_value().map_err(|_| malformed(UNDECODABLE))?.into_owned();
        }
    }
    match ty.as_str() {
        "init" => Ok(ClientAuthKind::Init),
        "auth-reply" => Ok(ClientAuthKind::Reply),
        _ => Err(AuthParseError::WrongType(ty)),
    }
}

/// Parse a `config-auth` body (`type="init"` or `type="auth-reply"`).
///
/// Reply fields live in `<auth><username>` and `<auth><password>`; the group is the root-level
/// `<group-select>` or `<auth><group_list>`. Entities are decoded; text is kept exactly
/// (no trimming, passwords may have spaces). A DOCTYPE is refused (no XXE), as are bodies larger
/// than [`MAX_AUTH_BODY`]. Unknown elements are ignored; for a repeated field the first wins.
pub fn parse_config_auth(body: &[u8]) -> Result<ClientAuth, AuthParseError> {
    if body.len() > MAX_AUTH_BODY {
        return Err(AuthParseError::TooLarge(body.len()));
    }
    let mut reader = Reader::from_reader(body);
    let mut out = ClientAuth::default();
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut root_done = false;
    // The field being captured, the depth of its element, and the text so far.
    let mut capture: Option<(Field, usize, String)> = None;

    loop {
        let event = reader.read_event().map_err(malformed)?;
        let is_start = matches!(event, Event::Start(_));
        match event {
            Event::DocType(_) => return Err(AuthParseError::DocType),
            Event::Start(e) | Event::Empty(e) if stack.is_empty() => {
                if root_done {
                    return Err(malformed("more than one root element"));
                }
                out.kind = root_kind(&e)?;
                if is_start {
                    stack.push(e.name().as_ref().to_vec());
                } else {
                    root_done = true;
                }
            }
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(malformed("elements nested too deeply"));
                }
                let name = e.name().as_ref().to_vec();
                if capture.is_none() {
                    if let Some(field) = field_for(&stack, &name) {
                        capture = Some((field, stack.len() + 1, String::new()));
                    }
                }
                stack.push(name);
            }
            Event::Empty(e) => {
                if let Some(field) = field_for(&stack, e.name().as_ref()) {
                    if capture.is_none() {
                        out.set_first(field, String::new());
                    }
                }
            }
            Event::End(_) => {
                if let Some((field, depth, text)) = capture.take() {
                    if depth == stack.len() {
                        out.set_first(field, text);
                    } else {
                        capture = Some((field, depth, text));
                    }
                }
                stack.pop();
                if stack.is_empty() {
                    root_done = true;
                }
            }
            Event::Text(t) => {
                // The unescape error quotes the text (a password, say): never pass it on.
                let text = t.unescape().map_err(|_| malformed(UNDECODABLE))?;
                match &mut capture {
                    Some((_, depth, buf)) if *depth == stack.len() => buf.push_str(&text),
                    _ if stack.is_empty() && !text.trim().is_empty() => {
                        return Err(malformed("text outside the root element"));
                    }
                    _ => {}
                }
            }
            Event::CData(c) => {
                if stack.is_empty() {
                    return Err(malformed("CDATA outside the root element"));
                }
                if let Some((_, depth, buf)) = &mut capture {
                    if *depth == stack.len() {
                        let raw = c.into_inner();
                        buf.push_str(std::str::from_utf8(&raw).map_err(malformed)?);
                    }
                }
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !root_done {
        return Err(if stack.is_empty() {
            malformed("no root element")
        } else {
            malformed("unexpected end of body inside <config-auth>")
        });
    }
    Ok(out)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decode one `application/x-www-form-urlencoded` component (`+` is a space, `%XX` a byte).
fn url_decode(raw: &[u8]) -> Result<String, AuthParseError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = raw.get(i + 1).copied().and_then(hex_val);
                let lo = raw.get(i + 2).copied().and_then(hex_val);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(malformed("bad percent-escape in form body"));
                };
                out.push(hi << 4 | lo);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| malformed("form field is not UTF-8"))
}

/// Parse the legacy urlencoded form body (`username=..&password=..&group_list=..`) of the
/// GET/POST fallback flow (§1.4), percent- and `+`-decoding.
///
/// The kind is [`ClientAuthKind::Reply`] if a username or password is present, otherwise
/// [`ClientAuthKind::Init`]. Unknown fields are ignored; for a repeated field the first wins.
pub fn parse_form_urlencoded(body: &[u8]) -> Result<ClientAuth, AuthParseError> {
    if body.len() > MAX_AUTH_BODY {
        return Err(AuthParseError::TooLarge(body.len()));
    }
    let mut out = ClientAuth::default();
    let mut body = body;
    while let Some((b'\r' | b'\n', rest)) = body.split_last() {
        body = rest;
    }
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &[][..]),
        };
        let field = match url_decode(key)?.as_str() {
            "username" => Field::Username,
            "password" => Field::Password,
            "group_list" => Field::Group,
            _ => continue,
        };
        out.set_first(field, url_decode(value)?);
    }
    if out.username.is_some() || out.password.is_some() {
        out.kind = ClientAuthKind::Reply;
    }
    Ok(out)
}

/// What to put in the login form sent by [`auth_request`].
#[derive(Debug, Clone, Copy)]
pub struct FormSpec<'a> {
    /// Text shown above the form (`<message>`).
    pub message: &'a str,
    /// Error from the previous attempt (`<error>`), e.g. "Login failed".
    pub error: Option<&'a str>,
    /// Tunnel groups offered; a `group_list` select is shown only when there are two or more.
    pub groups: &'a [&'a str],
    /// The group pre-selected in the select and named in `<opaque>`.
    pub selected_group: Option<&'a str>,
    /// Form action path the client POSTs the reply to (openconnect defaults to `/`).
    pub action: &'a str,
}

/// Escape text for XML content or a double-quoted attribute.
///
/// Control characters that XML 1.0 forbids are dropped (libxml2 would reject the whole
/// document); tab, CR and LF are kept.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() && (c as u32) < 0x20 => {}
            '\u{fffe}' | '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

const XML_DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

/// The login form: `config-auth type="auth-request"` with `<auth id="main">` holding a
/// `username` text input, a `password` password input and, for two or more groups, a
/// `group_list` select. Every piece of text is XML-escaped.
pub fn auth_request(spec: &FormSpec<'_>) -> String {
    let mut x = String::with_capacity(1024);
    x.push_str(XML_DECL);
    x.push_str(r#"<config-auth client="vpn" type="auth-request" aggregate-auth-version="2">"#);
    x.push_str(r#"<opaque is-for="sg">"#);
    if let Some(group) = spec.selected_group.or_else(|| spec.groups.first().copied()) {
        x.push_str("<tunnel-group>");
        x.push_str(&xml_escape(group));
        x.push_str("</tunnel-group>");
    }
    x.push_str("</opaque>");
    x.push_str(r#"<auth id="main"><title>Login</title><message>"#);
    x.push_str(&xml_escape(spec.message));
    x.push_str("</message>");
    if let Some(err) = spec.error {
        let err = xml_escape(err);
        x.push_str(r#"<error id="88" param1=""#);
        x.push_str(&err);
        x.push_str(r#"" param2="">"#);
        x.push_str(&err);
        x.push_str("</error>");
    }
    x.push_str(r#"<form method="post" action=""#);
    x.push_str(&xml_escape(spec.action));
    x.push_str(r#"">"#);
    x.push_str(r#"<input type="text" name="username" label="Username:"/>"#);
    x.push_str(r#"<input type="password" name="password" label="Password:"/>"#);
    if spec.groups.len() > 1 {
        x.push_str(r#"<select name="group_list" label="GROUP:">"#);
        for g in spec.groups {
            let g_esc = xml_escape(g);
            // openconnect takes the choice name from `value`, falling back to the content.
            x.push_str(r#"<option value=""#);
            x.push_str(&g_esc);
            x.push('"');
            if spec.selected_group == Some(*g) {
                x.push_str(r#" selected="true""#);
            }
            x.push('>');
            x.push_str(&g_esc);
            x.push_str("</option>");
        }
        x.push_str("</select>");
    }
    x.push_str("</form></auth></config-auth>");
    x
}

/// The success body: `config-auth type="complete"` with `<session-token>` (openconnect stores
/// its text as the `webvpn` cookie) and `<auth id="success">` (what marks success, §1.3).
/// `banner`, when given, is shown as the success message.
pub fn auth_success(session_token: &str, banner: Option<&str>) -> String {
    let mut x = String::with_capacity(512);
    x.push_str(XML_DECL);
    x.push_str(r#"<config-auth client="vpn" type="complete" aggregate-auth-version="2">"#);
    x.push_str("<session-token>");
    x.push_str(&xml_escape(session_token));
    x.push_str("</session-token>");
    x.push_str(r#"<auth id="success"><title>SSL VPN Service</title>"#);
    if let Some(b) = banner {
        x.push_str("<message>");
        x.push_str(&xml_escape(b));
        x.push_str("</message>");
    }
    x.push_str("</auth>");
    x.push_str(
        r#"<config client="vpn" type="private"><opaque is-for="vpn-client"></opaque></config>"#,
    );
    x.push_str("</config-auth>");
    x
}

#[cfg(test)]
mod tests;
