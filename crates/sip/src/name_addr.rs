//! `name-addr` / `addr-spec` values: From, To, Contact, Route, Record-Route (RFC 3261 §20).

use std::fmt;
use std::str::FromStr;

use crate::header::{HeaderError, HeaderName, Headers};
use crate::params::Params;
use crate::scan::{self, find_top_level, is_lws, is_token_char, quoted_string, trim_lws};
use crate::uri::Uri;

/// A URI with an optional display name and header parameters (`tag`, `expires`, `q`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name, unquoted and unescaped.
    pub display_name: Option<String>,
    pub uri: Uri,
    /// Header parameters, i.e. those outside the angle brackets.
    pub params: Params,
}

/// Error for [`NameAddr::from_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid name-addr")]
pub struct InvalidNameAddr;

impl NameAddr {
    pub fn new(uri: Uri) -> Self {
        Self { display_name: None, uri, params: Params::new() }
    }

    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }

    pub fn set_tag(&mut self, tag: &str) {
        self.params.set("tag", Some(tag.to_owned()));
    }

    /// The Contact `expires` parameter, if it is a valid number.
    pub fn expires(&self) -> Option<u32> {
        self.params.value("expires").and_then(scan::parse_u32)
    }

    /// The Contact `q` parameter.
    pub fn q(&self) -> Option<f32> {
        self.params.value("q").and_then(|q| q.parse().ok()).filter(|q: &f32| (0.0..=1.0).contains(q))
    }
}

impl FromStr for NameAddr {
    type Err = InvalidNameAddr;

    fn from_str(s: &str) -> Result<Self, InvalidNameAddr> {
        let s = trim_lws(s);
        let (display_name, rest) = if s.starts_with('"') {
            let (name, len) = quoted_string(s).ok_or(InvalidNameAddr)?;
            let rest = trim_lws(s.get(len..).ok_or(InvalidNameAddr)?);
            if !rest.starts_with('<') {
                return Err(InvalidNameAddr);
            }
            (Some(name), rest)
        } else if let Some(lt) = find_top_level(s, b'<') {
            let name = trim_lws(s.get(..lt).ok_or(InvalidNameAddr)?);
            // An unquoted display name is a sequence of tokens (RFC 4475 §3.1.2.15).
            if !name.bytes().all(|b| is_token_char(b) || is_lws(b)) {
                return Err(InvalidNameAddr);
            }
            let name = (!name.is_empty()).then(|| name.to_owned());
            (name, s.get(lt..).ok_or(InvalidNameAddr)?)
        } else {
            return parse_addr_spec(s);
        };

        let inner = rest.strip_prefix('<').ok_or(InvalidNameAddr)?;
        let gt = inner.find('>').ok_or(InvalidNameAddr)?;
        // No trimming: white space inside the brackets is invalid (RFC 4475 §3.1.2.14).
        let uri = inner.get(..gt).ok_or(InvalidNameAddr)?.parse().map_err(|_| InvalidNameAddr)?;
        let params = Params::parse_header_params(inner.get(gt + 1..).ok_or(InvalidNameAddr)?)
            .ok_or(InvalidNameAddr)?;
        Ok(Self { display_name, uri, params })
    }
}

/// `addr-spec` form: without brackets, everything after the first `;` is a header parameter,
/// and the URI may not contain `,`, `?` or `;` (RFC 3261 §20).
fn parse_addr_spec(s: &str) -> Result<NameAddr, InvalidNameAddr> {
    let (uri, params) = match s.find(';') {
        Some(idx) => s.split_at(idx),
        None => (s, ""),
    };
    let uri = trim_lws(uri);
    if uri.contains([',', '?']) {
        return Err(InvalidNameAddr);
    }
    Ok(NameAddr {
        display_name: None,
        uri: uri.parse().map_err(|_| InvalidNameAddr)?,
        params: Params::parse_header_params(params).ok_or(InvalidNameAddr)?,
    })
}

impl fmt::Display for NameAddr {
    /// Always writes the bracketed form, which is unambiguous whatever the URI holds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.display_name {
            let mut quoted = String::with_capacity(name.len() + 2);
            scan::write_quoted(&mut quoted, name);
            write!(f, "{quoted} ")?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// The Contact header(s) of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts {
    /// `Contact: *`, only meaningful in a REGISTER that removes all bindings.
    Wildcard,
    /// Zero or more contact addresses.
    List(Vec<NameAddr>),
}

impl Contacts {
    pub(crate) fn from_headers(headers: &Headers) -> Result<Self, HeaderError> {
        let name = HeaderName::Contact;
        let values = headers.list(&name)?;
        if values.len() == 1 && values.first() == Some(&"*") {
            return Ok(Self::Wildcard);
        }
        values
            .into_iter()
            .map(|v| v.parse().map_err(|_| HeaderError::Invalid(name.clone())))
            .collect::<Result<Vec<_>, _>>()
            .map(Self::List)
    }

    /// The addresses; empty for the wildcard.
    pub fn addresses(&self) -> &[NameAddr] {
        match self {
            Self::Wildcard => &[],
            Self::List(v) => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn na(s: &str) -> NameAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_quoted_display_name_with_escapes() {
        let n = na(r#""J Rosenberg \\\""       <sip:jdrosen@example.com> ; tag = 98asjd8"#);
        assert_eq!(n.display_name.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(n.tag(), Some("98asjd8"));
        assert_eq!(n.to_string(), r#""J Rosenberg \\\"" <sip:jdrosen@example.com>;tag=98asjd8"#);
    }

    #[test]
    fn addr_spec_params_belong_to_the_header() {
        let n = na("sip:+19725552222@gw1.example.net;unknownparam");
        assert!(n.uri.as_sip().unwrap().params.is_empty());
        assert!(n.params.contains("unknownparam"));
        let n = na("<sip:+19725552222@gw1.example.net;unknownparam>");
        assert!(n.uri.as_sip().unwrap().params.contains("unknownparam"));
        assert!(n.params.is_empty());
    }

    #[test]
    fn token_display_name_without_space_before_bracket() {
        let n = na("caller<sip:caller@example.com>;tag=323");
        assert_eq!(n.display_name.as_deref(), Some("caller"));
    }

    #[test]
    fn rejects_malformed_forms() {
        // Unquoted comma in a display name.
        assert!("Bell, Alexander <sip:a.g.bell@example.com>".parse::<NameAddr>().is_err());
        // Spaces inside the brackets.
        assert!("\"W\" < sip:t.watson@example.org >".parse::<NameAddr>().is_err());
        // Headers in an unbracketed URI.
        assert!("sip:user@example.com?Route=%3Csip:sip.example.com%3E".parse::<NameAddr>().is_err());
        // Unterminated quote.
        assert!("\"Mr. J. User <sip:j.user@example.com>".parse::<NameAddr>().is_err());
    }

    #[test]
    fn contact_params() {
        let n = na("<sip:a@b>;expires=60;q=0.5");
        assert_eq!(n.expires(), Some(60));
        assert_eq!(n.q(), Some(0.5));
    }
}
