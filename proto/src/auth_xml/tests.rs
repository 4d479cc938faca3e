use super::*;

/// The init body openconnect 9.01 POSTs (PROTOCOL.md §1.1), as libxml2 serializes it.
const OC_INIT: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<config-auth client=\"vpn\" type=\"init\" aggregate-auth-version=\"2\">\
<version who=\"vpn\">v9.01-3</version>\
<device-id>linux-64</device-id>\
<capabilities><auth-method>single-sign-on-v2</auth-method>\
<auth-method>single-sign-on-external-browser</auth-method></capabilities>\
<group-access>https://127.0.0.1:8443/</group-access>\
</config-auth>\n";

/// The reply after filling our form (PROTOCOL.md §1.2): opaque copied back, one element per
/// input, the group choice as a root-level `<group-select>`.
const OC_REPLY: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<config-auth client=\"vpn\" type=\"auth-reply\" aggregate-auth-version=\"2\">\
<version who=\"vpn\">v9.01-3</version>\
<device-id>linux-64</device-id>\
<capabilities><auth-method>single-sign-on-v2</auth-method>\
<auth-method>single-sign-on-external-browser</auth-method></capabilities>\
<opaque is-for=\"sg\"><tunnel-group>staff</tunnel-group></opaque>\
<auth><username>test</username><password>p&amp;w</password></auth>\
<group-select>staff</group-select>\
</config-auth>\n";

#[test]
fn parses_openconnect_init() {
    let a = parse_config_auth(OC_INIT.as_bytes()).unwrap();
    assert_eq!(
        a,
        ClientAuth {
            kind: ClientAuthKind::Init,
            username: None,
            password: None,
            group_select: None,
            version: Some("v9.01-3".into()),
            device_id: Some("linux-64".into()),
        }
    );
}

#[test]
fn parses_init_with_authgroup_and_device_attributes() {
    let body = OC_INIT.replace(
        "<device-id>linux-64</device-id>",
        "<device-id computer-name=\"host\" device-type=\"x\" unique-id=\"AB\">linux-64</device-id>",
    );
    let body = body.replace("</group-access>", "</group-access><group-select>eng</group-select>");
    let a = parse_config_auth(body.as_bytes()).unwrap();
    assert_eq!(a.kind, ClientAuthKind::Init);
    assert_eq!(a.device_id.as_deref(), Some("linux-64"));
    assert_eq!(a.group_select.as_deref(), Some("eng"));
}

#[test]
fn parses_openconnect_reply_with_entities() {
    let a = parse_config_auth(OC_REPLY.as_bytes()).unwrap();
    assert_eq!(a.kind, ClientAuthKind::Reply);
    assert_eq!(a.username.as_deref(), Some("test"));
    assert_eq!(a.password.as_deref(), Some("p&w"));
    assert_eq!(a.group_select.as_deref(), Some("staff"));
    assert_eq!(a.version.as_deref(), Some("v9.01-3"));
    assert_eq!(a.device_id.as_deref(), Some("linux-64"));
}

#[test]
fn decodes_all_entities_and_keeps_spaces() {
    let body = "<config-auth type=\"auth-reply\"><auth>\
<username>a&lt;b&gt;c&quot;d&apos;e</username>\
<password> x&#38;y&#x41;\u{e9} </password></auth></config-auth>";
    let a = parse_config_auth(body.as_bytes()).unwrap();
    assert_eq!(a.username.as_deref(), Some("a<b>c\"d'e"));
    assert_eq!(a.password.as_deref(), Some(" x&yA\u{e9} "));
}

#[test]
fn cdata_is_taken_literally() {
    let body = "<config-auth type=\"auth-reply\"><auth><password><![CDATA[a&amp;<b>]]></password>\
</auth></config-auth>";
    let a = parse_config_auth(body.as_bytes()).unwrap();
    assert_eq!(a.password.as_deref(), Some("a&amp;<b>"));
}

#[test]
fn group_list_inside_auth() {
    let body = "<config-auth type=\"auth-reply\"><auth><username>u</username>\
<group_list>ops</group_list></auth></config-auth>";
    let a = parse_config_auth(body.as_bytes()).unwrap();
    assert_eq!(a.group_select.as_deref(), Some("ops"));
    assert_eq!(a.password, None);
}

#[test]
fn missing_fields_are_none_and_empty_elements_empty() {
    let a = parse_config_auth(b"<config-auth type=\"auth-reply\"/>").unwrap();
    assert_eq!(a, ClientAuth { kind: ClientAuthKind::Reply, ..Default::default() });
    let a = parse_config_auth(b"<config-auth type=\"auth-reply\"><auth><username/><password></password></auth></config-auth>").unwrap();
    assert_eq!(a.username.as_deref(), Some(""));
    assert_eq!(a.password.as_deref(), Some(""));
}

#[test]
fn fields_only_count_in_their_place() {
    // <username> outside <auth>, and <password> nested in something else, are not credentials.
    let body = "<config-auth type=\"auth-reply\"><username>root-level</username>\
<opaque is-for=\"sg\"><auth><password>nested</password></auth></opaque>\
<auth><x><username>deep</username></x></auth></config-auth>";
    let a = parse_config_auth(body.as_bytes()).unwrap();
    assert_eq!(a.username, None);
    assert_eq!(a.password, None);
}

#[test]
fn first_occurrence_wins() {
    let body = "<config-auth type=\"auth-reply\"><auth><username>first</username>\
<username>second</username></auth></config-auth>";
    assert_eq!(parse_config_auth(body.as_bytes()).unwrap().username.as_deref(), Some("first"));
}

#[test]
fn rejects_doctype_and_xxe() {
    let xxe =
        "<?xml version=\"1.0\"?><!DOCTYPE config-auth [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\
<config-auth type=\"auth-reply\"><auth><username>&x;</username></auth></config-auth>";
    assert_eq!(parse_config_auth(xxe.as_bytes()), Err(AuthParseError::DocType));
    let plain = "<!DOCTYPE config-auth><config-auth type=\"init\"/>";
    assert_eq!(parse_config_auth(plain.as_bytes()), Err(AuthParseError::DocType));
}

#[test]
fn a_bad_entity_in_a_password_is_not_quoted_in_the_error() {
    for body in [
        "<config-auth type=\"auth-reply\"><auth><password>&hunter2;</password></auth></config-auth>",
        "<config-auth type=\"auth-reply\"><auth><password>x&#xhunter2;</password></auth></config-auth>",
        "<config-auth type=\"&hunter2;\"><auth/></config-auth>",
    ] {
        let e = parse_config_auth(body.as_bytes()).unwrap_err();
        assert_eq!(e.reason(), "malformed", "{body}");
        assert!(!e.to_string().contains("hunter2"), "the error quotes the secret: {e}");
        assert!(!format!("{e:?}").contains("hunter2"), "the error quotes the secret: {e:?}");
    }
}

#[test]
fn undefined_entity_is_malformed() {
    let body =
        "<config-auth type=\"auth-reply\"><auth><username>&x;</username></auth></config-auth>";
    assert_eq!(parse_config_auth(body.as_bytes()).map_err(|e| e.reason()), Err("malformed"));
}

#[test]
fn malformed_xml() {
    for body in [
        &b""[..],
        b"   ",
        b"not xml",
        b"<config-auth type=\"init\">",
        b"<config-auth type=\"init\"><auth></config-auth>",
        b"<config-auth type=\"init\"></config-auth><config-auth type=\"init\"/>",
        b"<config-auth type=\"init\"/>trailing",
        b"<config-auth type=\"init\"><auth><username>\xff</username></auth></config-auth>",
        b"<config-auth type=\"init\" type=\"init\"/>",
    ] {
        assert_eq!(
            parse_config_auth(body).map_err(|e| e.reason()),
            Err("malformed"),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn too_deep_is_malformed() {
    let mut body = String::from("<config-auth type=\"init\">");
    body.push_str(&"<a>".repeat(40));
    body.push_str(&"</a>".repeat(40));
    body.push_str("</config-auth>");
    assert_eq!(parse_config_auth(body.as_bytes()).map_err(|e| e.reason()), Err("malformed"));
}

#[test]
fn wrong_root_and_type() {
    assert_eq!(
        parse_config_auth(b"<html><body/></html>"),
        Err(AuthParseError::WrongRoot("html".into()))
    );
    assert_eq!(
        parse_config_auth(b"<config-auth type=\"complete\"/>"),
        Err(AuthParseError::WrongType("complete".into()))
    );
    assert_eq!(
        parse_config_auth(b"<config-auth client=\"vpn\"/>"),
        Err(AuthParseError::WrongType(String::new()))
    );
}

#[test]
fn oversized_body_rejected_before_parsing() {
    let mut body = OC_INIT.as_bytes().to_vec();
    body.resize(MAX_AUTH_BODY, b' ');
    assert!(parse_config_auth(&body).is_ok());
    body.push(b' ');
    assert_eq!(parse_config_auth(&body), Err(AuthParseError::TooLarge(MAX_AUTH_BODY + 1)));
    assert_eq!(parse_form_urlencoded(&body), Err(AuthParseError::TooLarge(MAX_AUTH_BODY + 1)));
}

#[test]
fn error_reasons_are_stable_labels() {
    assert_eq!(AuthParseError::TooLarge(1).reason(), "too_large");
    assert_eq!(AuthParseError::Malformed(String::new()).reason(), "malformed");
    assert_eq!(AuthParseError::DocType.reason(), "doctype");
    assert_eq!(AuthParseError::WrongRoot(String::new()).reason(), "wrong_root");
    assert_eq!(AuthParseError::WrongType(String::new()).reason(), "wrong_type");
}

#[test]
fn debug_redacts_password() {
    let a = parse_config_auth(OC_REPLY.as_bytes()).unwrap();
    let dbg = format!("{a:?}");
    assert!(!dbg.contains("p&w"), "{dbg}");
    assert!(dbg.contains("<redacted>") && dbg.contains("test"));
}

#[test]
fn urlencoded_legacy_reply() {
    let a = parse_form_urlencoded(b"username=te+st&password=p%26w%20%2B&group_list=R%26D").unwrap();
    assert_eq!(a.kind, ClientAuthKind::Reply);
    assert_eq!(a.username.as_deref(), Some("te st"));
    assert_eq!(a.password.as_deref(), Some("p&w +"));
    assert_eq!(a.group_select.as_deref(), Some("R&D"));
    assert_eq!(a.version, None);
}

#[test]
fn urlencoded_steps_and_init() {
    // openconnect's legacy flow posts the fields one form at a time
    let a = parse_form_urlencoded(b"username=test").unwrap();
    assert_eq!(
        (a.kind, a.username.as_deref(), a.password.as_deref()),
        (ClientAuthKind::Reply, Some("test"), None)
    );
    let a = parse_form_urlencoded(b"password=").unwrap();
    assert_eq!((a.kind, a.password.as_deref()), (ClientAuthKind::Reply, Some("")));
    // GET / with Content-Length: 0
    assert_eq!(parse_form_urlencoded(b"").unwrap(), ClientAuth::default());
    let a = parse_form_urlencoded(b"group_list=eng&other=1&&").unwrap();
    assert_eq!((a.kind, a.group_select.as_deref()), (ClientAuthKind::Init, Some("eng")));
}

#[test]
fn urlencoded_edge_cases() {
    let a = parse_form_urlencoded(b"username=a=b&username=second&password\r\n").unwrap();
    assert_eq!(a.username.as_deref(), Some("a=b"));
    assert_eq!(a.password.as_deref(), Some(""));
    let a = parse_form_urlencoded("username=caf%C3%A9".as_bytes()).unwrap();
    assert_eq!(a.username.as_deref(), Some("caf\u{e9}"));
    let a = parse_form_urlencoded(b"user%6eame=x").unwrap();
    assert_eq!(a.username.as_deref(), Some("x"));
    for bad in [&b"username=%"[..], b"username=%4", b"username=%zz", b"password=%ff"] {
        assert_eq!(parse_form_urlencoded(bad).map_err(|e| e.reason()), Err("malformed"));
    }
}

#[test]
fn escape_covers_markup_and_drops_illegal_controls() {
    assert_eq!(xml_escape("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
    assert_eq!(xml_escape("x\u{0}\u{1b}y\tz\n"), "xy\tz\n");
    assert_eq!(xml_escape("caf\u{e9}"), "caf\u{e9}");
}

/// One element of a generated document: slash-joined path from the root, attributes, text.
struct El {
    path: String,
    attrs: Vec<(String, String)>,
    text: String,
}

/// Walk a generated document (asserting it is well-formed) and list its elements.
fn elements(xml: &str) -> Vec<El> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<String> = Vec::new();
    let mut out: Vec<El> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    loop {
        let event = reader.read_event().unwrap();
        let is_empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(e) | Event::Empty(e) => {
                stack.push(String::from_utf8(e.name().as_ref().to_vec()).unwrap());
                let attrs = e
                    .attributes()
                    .map(|a| {
                        let a = a.unwrap();
                        let key = String::from_utf8(a.key.as_ref().to_vec()).unwrap();
                        (key, a.unescape_value().unwrap().into_owned())
                    })
                    .collect();
                out.push(El { path: stack.join("/"), attrs, text: String::new() });
                open.push(out.len() - 1);
                if is_empty {
                    stack.pop();
                    open.pop();
                }
            }
            Event::Text(t) => {
                if let Some(&i) = open.last() {
                    out[i].text.push_str(&t.unescape().unwrap());
                }
            }
            Event::End(_) => {
                stack.pop();
                open.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(stack.is_empty());
    out
}

fn find<'a>(els: &'a [El], path: &str) -> Vec<&'a El> {
    els.iter().filter(|e| e.path == path).collect()
}

fn attr<'a>(el: &'a El, key: &str) -> Option<&'a str> {
    el.attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[test]
fn auth_request_single_group_is_the_minimal_form() {
    let xml = auth_request(&FormSpec {
        message: "Please enter your username and password.",
        error: None,
        groups: &["default"],
        selected_group: None,
        action: "/",
    });
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><config-auth client=\"vpn\" type=\"auth-request\" aggregate-auth-version=\"2\">"));
    let els = elements(&xml);
    let auth = find(&els, "config-auth/auth");
    assert_eq!(auth.len(), 1);
    assert_eq!(attr(auth[0], "id"), Some("main"));
    assert_eq!(find(&els, "config-auth/opaque/tunnel-group")[0].text, "default");
    assert_eq!(
        find(&els, "config-auth/auth/message")[0].text,
        "Please enter your username and password."
    );
    assert!(find(&els, "config-auth/auth/error").is_empty());
    let form = find(&els, "config-auth/auth/form")[0];
    assert_eq!((attr(form, "method"), attr(form, "action")), (Some("post"), Some("/")));
    let inputs = find(&els, "config-auth/auth/form/input");
    let inputs: Vec<_> = inputs.iter().map(|i| (attr(i, "type"), attr(i, "name"))).collect();
    assert_eq!(inputs, [(Some("text"), Some("username")), (Some("password"), Some("password"))]);
    assert!(find(&els, "config-auth/auth/form/select").is_empty(), "one group: no select");
}

#[test]
fn auth_request_with_groups_error_and_escaping() {
    let xml = auth_request(&FormSpec {
        message: "Hi <there> & welcome",
        error: Some("Login failed: \"bad\" password"),
        groups: &["staff", "R&D"],
        selected_group: Some("R&D"),
        action: "/auth?x=1&y=2",
    });
    let els = elements(&xml);
    assert_eq!(find(&els, "config-auth/auth/message")[0].text, "Hi <there> & welcome");
    let err = find(&els, "config-auth/auth/error")[0];
    assert_eq!(err.text, "Login failed: \"bad\" password");
    assert_eq!(attr(err, "id"), Some("88"));
    assert_eq!(attr(err, "param1"), Some("Login failed: \"bad\" password"));
    assert_eq!(attr(find(&els, "config-auth/auth/form")[0], "action"), Some("/auth?x=1&y=2"));
    assert_eq!(find(&els, "config-auth/opaque/tunnel-group")[0].text, "R&D");
    let select = find(&els, "config-auth/auth/form/select")[0];
    assert_eq!(attr(select, "name"), Some("group_list"));
    let options = find(&els, "config-auth/auth/form/select/option");
    let opts: Vec<_> =
        options.iter().map(|o| (o.text.as_str(), attr(o, "value"), attr(o, "selected"))).collect();
    assert_eq!(opts, [("staff", Some("staff"), None), ("R&D", Some("R&D"), Some("true"))]);
}

#[test]
fn auth_request_without_groups_has_empty_opaque() {
    let xml = auth_request(&FormSpec {
        message: "m",
        error: None,
        groups: &[],
        selected_group: None,
        action: "/",
    });
    assert!(xml.contains("<opaque is-for=\"sg\"></opaque>"));
    assert!(!xml.contains("<select"));
}

#[test]
fn auth_success_carries_token_and_success_id() {
    let xml = auth_success("ab+/cd==", Some("Welcome & be nice"));
    let els = elements(&xml);
    let root = find(&els, "config-auth")[0];
    assert_eq!(attr(root, "type"), Some("complete"));
    assert_eq!(find(&els, "config-auth/session-token")[0].text, "ab+/cd==");
    assert_eq!(attr(find(&els, "config-auth/auth")[0], "id"), Some("success"));
    assert_eq!(find(&els, "config-auth/auth/title")[0].text, "SSL VPN Service");
    assert_eq!(find(&els, "config-auth/auth/message")[0].text, "Welcome & be nice");
    assert_eq!(attr(find(&els, "config-auth/config")[0], "type"), Some("private"));
    let plain = auth_success("T", None);
    assert!(!plain.contains("<message>"));
    assert!(plain.contains("<session-token>T</session-token><auth id=\"success\">"));
}

#[test]
fn generated_form_answer_round_trips_through_parser() {
    // What openconnect would send back for our form, with hostile characters in the fields.
    let user = "o'brien <admin>";
    let pass = "]]> & \"x\"";
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" type=\"auth-reply\" \
aggregate-auth-version=\"2\"><auth><username>{}</username><password>{}</password></auth>\
<group-select>{}</group-select></config-auth>",
        xml_escape(user),
        xml_escape(pass),
        xml_escape("R&D")
    );
    let a = parse_config_auth(body.as_bytes()).unwrap();
    assert_eq!(a.username.as_deref(), Some(user));
    assert_eq!(a.password.as_deref(), Some(pass));
    assert_eq!(a.group_select.as_deref(), Some("R&D"));
}

mod props {
    use super::super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn escaped_text_round_trips(user in "\\PC*", pass in "[ -~\u{a0}-\u{2fff}]*") {
            let body = format!(
                "<config-auth type=\"auth-reply\"><auth><username>{}</username><password>{}</password></auth></config-auth>",
                xml_escape(&user), xml_escape(&pass)
            );
            let a = parse_config_auth(body.as_bytes()).unwrap();
            prop_assert_eq!(a.username, Some(user));
            prop_assert_eq!(a.password, Some(pass));
        }

        #[test]
        fn parsers_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_config_auth(&body);
            let _ = parse_form_urlencoded(&body);
        }
    }
}
