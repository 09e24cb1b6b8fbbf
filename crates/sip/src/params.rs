//! Ordered `;name=value` parameter lists, shared by URIs, Via and name-addr headers.

use std::fmt;

use crate::scan::{self, quoted_string, trim_lws};

/// One parameter. Names and values are kept as received (escapes and quotes included) so that
/// a forwarded message carries them unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    /// `None` for a flag parameter such as `;lr`. A quoted value keeps its quotes.
    pub value: Option<String>,
}

/// An ordered parameter list. Lookups compare names case-insensitively (RFC 3261 §7.3.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<Param>);

impl Params {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Param> {
        self.0.iter()
    }

    /// Whether the parameter is present, with or without a value.
    pub fn contains(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// `Some(None)` for a flag parameter, `Some(Some(v))` for a valued one.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.find(name).map(|p| p.value.as_deref())
    }

    /// The value of a valued parameter, with surrounding quotes removed.
    pub fn value(&self, name: &str) -> Option<&str> {
        let v = self.find(name)?.value.as_deref()?;
        Some(v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v))
    }

    /// Sets a parameter, replacing an existing one of the same name in place.
    pub fn set(&mut self, name: impl Into<String>, value: Option<String>) {
        let name = name.into();
        match self.0.iter_mut().find(|p| p.name.eq_ignore_ascii_case(&name)) {
            Some(p) => p.value = value,
            None => self.0.push(Param { name, value }),
        }
    }

    /// Removes every parameter with this name; returns whether one was present.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|p| !p.name.eq_ignore_ascii_case(name));
        before != self.0.len()
    }

    fn find(&self, name: &str) -> Option<&Param> {
        self.0.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// Parses URI parameters: the text after the first `;`, without any `?headers`.
    /// `pname = 1*paramchar`, `pvalue = 1*paramchar`; no white space is allowed.
    pub(crate) fn parse_uri_params(s: &str) -> Option<Self> {
        let mut params = Vec::new();
        for part in s.split(';') {
            let (name, value) = match part.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (part, None),
            };
            if name.is_empty() || !scan::is_escaped_text(name, is_param_char) {
                return None;
            }
            if let Some(v) = value
                && (v.is_empty() || !scan::is_escaped_text(v, is_param_char))
            {
                return None;
            }
            params.push(Param { name: name.to_owned(), value: value.map(str::to_owned) });
        }
        Some(Self(params))
    }

    /// Parses header parameters: `*( SEMI generic-param )` where `s` starts at the first `;`
    /// (leading LWS allowed). Values are tokens, hosts (incl. `[v6]`) or quoted strings; LWS
    /// is allowed around `;` and `=`.
    pub(crate) fn parse_header_params(s: &str) -> Option<Self> {
        let mut params = Vec::new();
        let mut rest = trim_lws(s);
        while !rest.is_empty() {
            rest = trim_lws(rest.strip_prefix(';')?);
            let name_len = rest.bytes().take_while(|&b| scan::is_token_char(b)).count();
            let name = rest.get(..name_len)?;
            if name.is_empty() {
                return None;
            }
            rest = trim_lws(rest.get(name_len..)?);
            let mut value = None;
            if let Some(after_eq) = rest.strip_prefix('=') {
                let after_eq = trim_lws(after_eq);
                let len = if after_eq.starts_with('"') {
                    quoted_string(after_eq)?.1
                } else {
                    after_eq.bytes().take_while(|&b| is_gen_value_char(b)).count()
                };
                if len == 0 {
                    return None;
                }
                value = Some(after_eq.get(..len)?.to_owned());
                rest = trim_lws(after_eq.get(len..)?);
            }
            params.push(Param { name: name.to_owned(), value });
        }
        Some(Self(params))
    }

    /// Writes `;name=value` for each parameter.
    pub(crate) fn write(&self, out: &mut String) {
        for p in &self.0 {
            out.push(';');
            out.push_str(&p.name);
            if let Some(v) = &p.value {
                out.push('=');
                out.push_str(v);
            }
        }
    }
}

impl<'a> IntoIterator for &'a Params {
    type Item = &'a Param;
    type IntoIter = std::slice::Iter<'a, Param>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.write(&mut s);
        f.write_str(&s)
    }
}

/// `paramchar` without the escape: `param-unreserved / unreserved`.
pub(crate) fn is_param_char(b: u8) -> bool {
    scan::is_unreserved(b) || b"[]/:&+$".contains(&b)
}

/// `gen-value` when unquoted: a token or a host (which adds `:` and `[` `]` for IPv6).
fn is_gen_value_char(b: u8) -> bool {
    scan::is_token_char(b) || b == b':' || b == b'[' || b == b']'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_params_allow_lws_around_separators() {
        let p = Params::parse_header_params(" ;   tag    = 1918181833n ;q = 0.33; lr").unwrap();
        assert_eq!(p.value("tag"), Some("1918181833n"));
        assert_eq!(p.value("q"), Some("0.33"));
        assert_eq!(p.get("lr"), Some(None));
    }

    #[test]
    fn header_params_reject_empty_names() {
        assert!(Params::parse_header_params(";;").is_none());
        assert!(Params::parse_header_params(";a=").is_none());
    }

    #[test]
    fn header_params_keep_quoted_values() {
        let p = Params::parse_header_params(r#";x="a;b""#).unwrap();
        assert_eq!(p.get("x"), Some(Some(r#""a;b""#)));
        assert_eq!(p.value("x"), Some("a;b"));
    }

    #[test]
    fn uri_params_accept_escapes_and_reject_spaces() {
        let p = Params::parse_uri_params("%6C%72;n%61me=v%61lue%25%34%31").unwrap();
        assert_eq!(p.len(), 2);
        assert!(Params::parse_uri_params("a b").is_none());
        assert!(Params::parse_uri_params("a;;b").is_none());
    }
}
