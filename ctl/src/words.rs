//! The headend's command words after `show vpn-sessiondb` and `vpn-sessiondb logoff`, parsed
//! into admin API requests. Kept apart from clap so the grammar is tested on its own.

use gatehouse_proto::admin::logoff_request::Selector;
use gatehouse_proto::admin::show_sessions_request::Filter;
use std::fmt;

/// Usage of `show vpn-sessiondb`.
pub const SHOW_USAGE: &str = "gatehousectl show vpn-sessiondb [detail] [anyconnect] \
     [filter inactive | filter name U | filter ipaddress A | filter tunnel-group G]";

/// Usage of `vpn-sessiondb logoff`.
pub const LOGOFF_USAGE: &str = "gatehousectl vpn-sessiondb logoff index N | name U | \
     tunnel-group G | protocol P | inactive | all [noconfirm | --noconfirm]";

/// Words that do not form a command; the message says which word and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A parsed `show vpn-sessiondb`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShowQuery {
    /// `detail`: per-tunnel blocks.
    pub detail: bool,
    /// The filter, if any.
    pub filter: Option<Filter>,
}

/// Parse the words after `show vpn-sessiondb`. `anyconnect` is accepted and ignored (every
/// Gatehouse session is an AnyConnect session), so the reference headend's
/// `show vpn-sessiondb detail anyconnect filter name bob` works unchanged.
pub fn parse_show(words: &[String]) -> Result<ShowQuery, UsageError> {
    let mut q = ShowQuery::default();
    let mut it = words.iter().map(String::as_str);
    while let Some(w) = it.next() {
        match w {
            "detail" if !q.detail && q.filter.is_none() => q.detail = true,
            "anyconnect" if q.filter.is_none() => {}
            "filter" if q.filter.is_none() => {
                let what = it.next().ok_or_else(|| {
                    UsageError(
                        "filter needs one of: inactive, name U, ipaddress A, tunnel-group G".into(),
                    )
                })?;
                let mut arg = |name: &str| {
                    it.next()
                        .map(str::to_string)
                        .ok_or_else(|| UsageError(format!("filter {name} needs a value")))
                };
                q.filter = Some(match what {
                    "inactive" => Filter::Inactive(true),
                    "name" => Filter::Name(arg("name")?),
                    "ipaddress" => Filter::Ipaddress(arg("ipaddress")?),
                    "tunnel-group" => Filter::TunnelGroup(arg("tunnel-group")?),
                    other => {
                        return Err(UsageError(format!(
                            "unknown filter {other:?}; accepted: inactive, name, ipaddress, tunnel-group"
                        )))
                    }
                });
            }
            other => return Err(UsageError(format!("unexpected word {other:?}"))),
        }
    }
    Ok(q)
}

/// What a logoff names, with the headend's wording for the result line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoffQuery {
    /// The selector sent to the node.
    pub selector: Selector,
    /// `noconfirm` given as a word (the headend's spelling of `--noconfirm`).
    pub noconfirm: bool,
}

/// Parse the words after `vpn-sessiondb logoff`.
pub fn parse_logoff(words: &[String]) -> Result<LogoffQuery, UsageError> {
    let mut words: Vec<&str> = words.iter().map(String::as_str).collect();
    let noconfirm = words.last() == Some(&"noconfirm");
    if noconfirm {
        words.pop();
    }
    let value = |name: &str, rest: &[&str]| -> Result<String, UsageError> {
        match rest {
            [v] => Ok((*v).to_string()),
            [] => Err(UsageError(format!("logoff {name} needs a value"))),
            [_, extra, ..] => Err(UsageError(format!("unexpected word {extra:?}"))),
        }
    };
    let selector = match words.as_slice() {
        [] => return Err(UsageError("logoff needs a selector".into())),
        ["index", rest @ ..] => {
            let v = value("index", rest)?;
            Selector::Index(
                v.parse().map_err(|_| UsageError(format!("index {v:?} is not a session index")))?,
            )
        }
        ["name", rest @ ..] => Selector::Name(value("name", rest)?),
        ["tunnel-group", rest @ ..] => Selector::TunnelGroup(value("tunnel-group", rest)?),
        ["protocol", rest @ ..] => Selector::Protocol(value("protocol", rest)?),
        ["inactive"] => Selector::Inactive(true),
        ["all"] => Selector::All(true),
        ["inactive" | "all", extra, ..] => {
            return Err(UsageError(format!("unexpected word {extra:?}")))
        }
        [other, ..] => {
            return Err(UsageError(format!(
                "unknown selector {other:?}; accepted: index, name, tunnel-group, protocol, inactive, all"
            )))
        }
    };
    Ok(LogoffQuery { selector, noconfirm })
}

/// The selector as the result line names it:
/// `INFO: Number of sessions from name "alice" logged off : 1`.
pub struct SelectorText<'a>(pub &'a Selector);

impl fmt::Display for SelectorText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Selector::Index(i) => write!(f, "index {i}"),
            Selector::Name(n) => write!(f, "name {n:?}"),
            Selector::TunnelGroup(g) => write!(f, "TunnelGroup {g:?}"),
            Selector::Protocol(p) => write!(f, "protocol {p:?}"),
            Selector::Inactive(_) => f.write_str("inactive sessions"),
            Selector::All(_) => f.write_str("all sessions"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn show_words() {
        assert_eq!(parse_show(&[]).unwrap(), ShowQuery::default());
        let q = parse_show(&w("detail filter name alice")).unwrap();
        assert_eq!(q, ShowQuery { detail: true, filter: Some(Filter::Name("alice".into())) });
        let q = parse_show(&w("detail anyconnect filter tunnel-group eng")).unwrap();
        assert_eq!(q.filter, Some(Filter::TunnelGroup("eng".into())));
        let q = parse_show(&w("filter inactive")).unwrap();
        assert_eq!(q, ShowQuery { detail: false, filter: Some(Filter::Inactive(true)) });
        let q = parse_show(&w("filter ipaddress 10.99.0.2")).unwrap();
        assert_eq!(q.filter, Some(Filter::Ipaddress("10.99.0.2".into())));
        for bad in [
            "filter",
            "filter name",
            "filter colour red",
            "detail detail",
            "bogus",
            "filter inactive filter name a",
            "filter name a b",
        ] {
            assert!(parse_show(&w(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn logoff_words() {
        let p = |s: &str| parse_logoff(&w(s)).map(|q| (q.selector, q.noconfirm));
        assert_eq!(p("index 1436").unwrap(), (Selector::Index(1436), false));
        assert_eq!(p("name bob noconfirm").unwrap(), (Selector::Name("bob".into()), true));
        assert_eq!(p("tunnel-group eng").unwrap(), (Selector::TunnelGroup("eng".into()), false));
        assert_eq!(
            p("protocol anyconnect").unwrap(),
            (Selector::Protocol("anyconnect".into()), false)
        );
        assert_eq!(p("inactive").unwrap(), (Selector::Inactive(true), false));
        assert_eq!(p("all noconfirm").unwrap(), (Selector::All(true), true));
        for bad in ["", "index", "index x", "name", "name a b", "all now", "everyone", "noconfirm"]
        {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn selector_wording() {
        let t = |s: Selector| SelectorText(&s).to_string();
        assert_eq!(t(Selector::Name("bob".into())), "name \"bob\"");
        assert_eq!(t(Selector::TunnelGroup("eng".into())), "TunnelGroup \"eng\"");
        assert_eq!(t(Selector::Index(7)), "index 7");
        assert_eq!(t(Selector::All(true)), "all sessions");
    }
}
