//! SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966), plus opaque URIs of other schemes.
//!
//! Components are stored as received, escapes included, so that a B2BUA forwards what it
//! was given; [`SipUri::user_unescaped`] and [`SipUri::matches`] apply the decoding rules
//! when a comparison needs them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::params::Params;
use crate::scan::{self, is_escaped_text, is_unreserved};

/// Why a URI did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    #[error("uri is empty")]
    Empty,
    #[error("uri has no scheme")]
    MissingScheme,
    #[error("uri contains white space or a forbidden character")]
    ForbiddenCharacter,
    #[error("invalid user part")]
    BadUser,
    #[error("invalid password")]
    BadPassword,
    #[error("invalid host")]
    BadHost,
    #[error("invalid port")]
    BadPort,
    #[error("invalid uri parameter")]
    BadParam,
    #[error("invalid uri header")]
    BadHeader,
    #[error("invalid telephone number")]
    BadTelephoneNumber,
}

/// Any URI that may appear in a Request-URI or a name-addr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    Sip(SipUri),
    Tel(TelUri),
    /// A syntactically valid absolute URI of a scheme this crate does not interpret
    /// (RFC 4475 §3.3.2 to §3.3.4). Servers answer 416 when it is a Request-URI.
    Other(OtherUri),
}

impl Uri {
    /// The scheme in lowercase for known schemes, as received otherwise.
    pub fn scheme(&self) -> &str {
        match self {
            Self::Sip(u) if u.secure => "sips",
            Self::Sip(_) => "sip",
            Self::Tel(_) => "tel",
            Self::Other(u) => &u.scheme,
        }
    }

    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Self::Sip(u) => Some(u),
            _ => None,
        }
    }

    pub fn as_sip_mut(&mut self) -> Option<&mut SipUri> {
        match self {
            Self::Sip(u) => Some(u),
            _ => None,
        }
    }
}

impl FromStr for Uri {
    type Err = UriError;

    fn from_str(s: &str) -> Result<Self, UriError> {
        if s.is_empty() {
            return Err(UriError::Empty);
        }
        if s.bytes().any(|b| b <= b' ' || b >= 0x7f || b"<>\"".contains(&b)) {
            return Err(UriError::ForbiddenCharacter);
        }
        let (scheme, rest) = s.split_once(':').ok_or(UriError::MissingScheme)?;
        if !is_scheme(scheme) {
            return Err(UriError::MissingScheme);
        }
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            SipUri::parse_after_scheme(scheme.eq_ignore_ascii_case("sips"), rest).map(Self::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            TelUri::parse_after_scheme(rest).map(Self::Tel)
        } else if rest.is_empty() {
            Err(UriError::Empty)
        } else {
            Ok(Self::Other(OtherUri { scheme: scheme.to_owned(), rest: rest.to_owned() }))
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sip(u) => u.fmt(f),
            Self::Tel(u) => u.fmt(f),
            Self::Other(u) => write!(f, "{}:{}", u.scheme, u.rest),
        }
    }
}

impl From<SipUri> for Uri {
    fn from(u: SipUri) -> Self {
        Self::Sip(u)
    }
}

fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

/// The host part of a SIP URI or Via sent-by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A host name, as received (compare case-insensitively).
    Domain(String),
    Ipv4(Ipv4Addr),
    /// Written as an IPv6 reference, `[::1]`.
    Ipv6(Ipv6Addr),
}

impl Host {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        if let Some(inner) = s.strip_prefix('[') {
            return Ipv6Addr::from_str(inner.strip_suffix(']')?).ok().map(Self::Ipv6);
        }
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') && s.bytes().any(|b| b == b'.') {
            // A name made of digits and dots can only be an IPv4 address: a top label
            // must start with a letter (RFC 3261 §25.1).
            return Ipv4Addr::from_str(s).ok().map(Self::Ipv4);
        }
        // Underscores are not in the grammar but real deployments use them in host names.
        let valid = !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
            && !s.starts_with('.')
            && !s.starts_with('-');
        valid.then(|| Self::Domain(s.to_owned()))
    }

    /// The address, if the host is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Self::Domain(_) => None,
            Self::Ipv4(a) => Some(IpAddr::V4(*a)),
            Self::Ipv6(a) => Some(IpAddr::V6(*a)),
        }
    }

    /// Compares hosts the way RFC 3261 §19.1.4 does: names case-insensitively.
    pub fn eq_host(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Domain(a), Self::Domain(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a == b,
        }
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Self::Ipv4(a),
            IpAddr::V6(a) => Self::Ipv6(a),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Domain(d) => f.write_str(d),
            Self::Ipv4(a) => a.fmt(f),
            Self::Ipv6(a) => write!(f, "[{a}]"),
        }
    }
}

/// A `sip:` or `sips:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// The user part, escapes kept.
    pub user: Option<String>,
    /// The password, escapes kept. Its use is deprecated but it must parse.
    pub password: Option<String>,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
    /// `?name=value&...` headers, escapes kept.
    pub headers: Vec<(String, String)>,
}

impl SipUri {
    /// A `sip:` URI with only a host.
    pub fn new(host: Host) -> Self {
        Self {
            secure: false,
            user: None,
            password: None,
            host,
            port: None,
            params: Params::new(),
            headers: Vec::new(),
        }
    }

    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    pub fn with_param(mut self, name: impl Into<String>, value: Option<String>) -> Self {
        self.params.set(name, value);
        self
    }

    fn parse_after_scheme(secure: bool, s: &str) -> Result<Self, UriError> {
        // '@' cannot appear unescaped after the userinfo, so the first one ends it; the user
        // part itself may hold ';', '?' and '/' (RFC 4475 §3.1.1.2, §3.1.1.9).
        let (userinfo, rest) = match s.split_once('@') {
            Some((ui, rest)) => (Some(ui), rest),
            None => (None, s),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                let (user, password) = match ui.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (ui, None),
                };
                if user.is_empty() || !is_escaped_text(user, is_user_char) {
                    return Err(UriError::BadUser);
                }
                if let Some(p) = password
                    && !is_escaped_text(p, is_password_char)
                {
                    return Err(UriError::BadPassword);
                }
                (Some(user.to_owned()), password.map(str::to_owned))
            }
        };

        let (before_headers, headers) = match rest.split_once('?') {
            Some((b, h)) => (b, Some(h)),
            None => (rest, None),
        };
        let (hostport, params) = match before_headers.split_once(';') {
            Some((hp, p)) => (hp, Some(p)),
            None => (before_headers, None),
        };
        let (host, port) = split_host_port(hostport).ok_or(UriError::BadHost)?;
        let host = Host::parse(host).ok_or(UriError::BadHost)?;
        let port = match port {
            Some(p) => Some(parse_port(p).ok_or(UriError::BadPort)?),
            None => None,
        };
        let params = match params {
            Some(p) => Params::parse_uri_params(p).ok_or(UriError::BadParam)?,
            None => Params::new(),
        };
        let headers = match headers {
            Some(h) => parse_uri_headers(h).ok_or(UriError::BadHeader)?,
            None => Vec::new(),
        };
        Ok(Self { secure, user, password, host, port, params, headers })
    }

    /// The user part with `%HH` escapes decoded.
    pub fn user_unescaped(&self) -> Option<Vec<u8>> {
        self.user.as_deref().map(scan::unescape)
    }

    /// The `transport` parameter, lowercased.
    pub fn transport_param(&self) -> Option<String> {
        self.params.value("transport").map(str::to_ascii_lowercase)
    }

    /// Whether the URI carries the loose-routing flag `;lr` (RFC 3261 §16.12).
    pub fn is_loose_route(&self) -> bool {
        self.params.contains("lr")
    }

    /// URI equivalence per RFC 3261 §19.1.4.
    pub fn matches(&self, other: &Self) -> bool {
        if self.secure != other.secure
            || self.user_unescaped() != other.user_unescaped()
            || self.password.as_deref().map(scan::unescape) != other.password.as_deref().map(scan::unescape)
            || !self.host.eq_host(&other.host)
            || self.port != other.port
        {
            return false;
        }
        // These parameters must match when present in either URI.
        for name in ["user", "ttl", "method", "maddr", "transport"] {
            if !param_eq(self.params.value(name), other.params.value(name)) {
                return false;
            }
        }
        // Any other parameter present in both must match.
        for p in &self.params {
            if let Some(v) = other.params.get(&p.name)
                && !param_eq(p.value.as_deref(), v)
            {
                return false;
            }
        }
        // Headers are compared as a set and must all match.
        self.headers.len() == other.headers.len()
            && self.headers.iter().all(|(n, v)| {
                other
                    .headers
                    .iter()
                    .any(|(on, ov)| on.eq_ignore_ascii_case(n) && scan::unescape(ov) == scan::unescape(v))
            })
    }
}

fn param_eq(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => scan::unescape(a).eq_ignore_ascii_case(&scan::unescape(b)),
        _ => false,
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(pw) = &self.password {
                write!(f, ":{pw}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write!(f, "{}", self.params)?;
        for (i, (name, value)) in self.headers.iter().enumerate() {
            f.write_str(if i == 0 { "?" } else { "&" })?;
            write!(f, "{name}={value}")?;
        }
        Ok(())
    }
}

/// Splits `host[:port]`, keeping an IPv6 reference intact.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if s.starts_with('[') {
        let end = s.find(']')?;
        let (host, rest) = s.split_at(end + 1);
        return match rest {
            "" => Some((host, None)),
            _ => Some((host, Some(rest.strip_prefix(':')?))),
        };
    }
    Some(match s.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    })
}

pub(crate) fn parse_port(s: &str) -> Option<u16> {
    scan::parse_u64(s).and_then(|p| u16::try_from(p).ok())
}

fn parse_uri_headers(s: &str) -> Option<Vec<(String, String)>> {
    s.split('&')
        .map(|h| {
            let (name, value) = h.split_once('=')?;
            let ok =
                !name.is_empty() && is_escaped_text(name, is_hnv_char) && is_escaped_text(value, is_hnv_char);
            ok.then(|| (name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// `unreserved / user-unreserved`.
fn is_user_char(b: u8) -> bool {
    is_unreserved(b) || b"&=+$,;?/".contains(&b)
}

fn is_password_char(b: u8) -> bool {
    is_unreserved(b) || b"&=+$,".contains(&b)
}

/// `hnv-unreserved / unreserved`.
fn is_hnv_char(b: u8) -> bool {
    is_unreserved(b) || b"[]/?:+$".contains(&b)
}

/// A `tel:` URI (RFC 3966).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelUri {
    /// The subscriber number as received, `+` and visual separators included.
    pub number: String,
    pub params: Params,
}

impl TelUri {
    fn parse_after_scheme(s: &str) -> Result<Self, UriError> {
        let (number, params) = match s.split_once(';') {
            Some((n, p)) => (n, Some(p)),
            None => (s, None),
        };
        let digits = number.strip_prefix('+').unwrap_or(number);
        let valid =
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit() || b"*#-.()".contains(&b));
        if !valid {
            return Err(UriError::BadTelephoneNumber);
        }
        let params = match params {
            Some(p) => Params::parse_uri_params(p).ok_or(UriError::BadParam)?,
            None => Params::new(),
        };
        Ok(Self { number: number.to_owned(), params })
    }

    /// Whether the number is in global (`+E.164`) form.
    pub fn is_global(&self) -> bool {
        self.number.starts_with('+')
    }
}

impl fmt::Display for TelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tel:{}{}", self.number, self.params)
    }
}

/// An absolute URI of a scheme this crate does not interpret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherUri {
    pub scheme: String,
    /// Everything after the first `:`.
    pub rest: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri {
        match s.parse::<Uri>().unwrap() {
            Uri::Sip(u) => u,
            other => panic!("not a sip uri: {other:?}"),
        }
    }

    #[test]
    fn parses_full_sip_uri() {
        let u = sip("sips:alice:secret@Example.COM:5061;transport=tcp;lr?subject=x&priority=u");
        assert!(u.secure);
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("secret"));
        assert_eq!(u.host, Host::Domain("Example.COM".into()));
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport_param().as_deref(), Some("tcp"));
        assert!(u.is_loose_route());
        assert_eq!(u.headers.len(), 2);
        assert_eq!(u.to_string(), "sips:alice:secret@Example.COM:5061;transport=tcp;lr?subject=x&priority=u");
    }

    #[test]
    fn parses_ipv6_reference_with_port() {
        let u = sip("sip:[2001:db8::10]:5070");
        assert_eq!(u.host, Host::Ipv6("2001:db8::10".parse().unwrap()));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.to_string(), "sip:[2001:db8::10]:5070");
    }

    #[test]
    fn rejects_unbracketed_ipv6_and_bad_ports() {
        assert!("sip:2001:db8::10".parse::<Uri>().is_err());
        assert_eq!("sip:host:70000".parse::<Uri>(), Err(UriError::BadPort));
        assert_eq!("sip:256.1.1.1".parse::<Uri>(), Err(UriError::BadHost));
    }

    #[test]
    fn user_part_may_hold_semicolons_and_escapes() {
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
        assert_eq!(u.user_unescaped().unwrap(), b"user;par=u@example.net".to_vec());
        assert!(u.params.is_empty());
    }

    #[test]
    fn escaped_nulls_decode() {
        let u = sip("sip:null-%00-null@example.com");
        assert_eq!(u.user_unescaped().unwrap(), b"null-\0-null".to_vec());
    }

    #[test]
    fn tel_and_other_schemes() {
        let t: Uri = "tel:+1-201-555-0123;phone-context=example.com".parse().unwrap();
        assert_eq!(t.scheme(), "tel");
        assert_eq!(t.to_string(), "tel:+1-201-555-0123;phone-context=example.com");
        let o: Uri = "soap.beep://192.0.2.103:3002".parse().unwrap();
        assert_eq!(o.scheme(), "soap.beep");
        assert!("tel:abc-xyz".parse::<Uri>().is_err());
    }

    #[test]
    fn uri_comparison_follows_rfc3261() {
        assert!(
            sip("sip:%61lice@atlanta.com;transport=TCP").matches(&sip("sip:alice@AtLanTa.CoM;Transport=tcp"))
        );
        assert!(!sip("sip:alice@atlanta.com").matches(&sip("sip:ALICE@atlanta.com")));
        assert!(!sip("sip:bob@biloxi.com").matches(&sip("sip:bob@biloxi.com:5060")));
        assert!(!sip("sip:bob@biloxi.com").matches(&sip("sip:bob@biloxi.com;transport=udp")));
        assert!(sip("sip:carol@chicago.com").matches(&sip("sip:carol@chicago.com;newparam=5")));
    }

    #[test]
    fn rejects_whitespace_and_brackets() {
        assert_eq!("sip:user@example.com >".parse::<Uri>(), Err(UriError::ForbiddenCharacter));
        assert!("<sip:user@example.com>".parse::<Uri>().is_err());
    }
}
