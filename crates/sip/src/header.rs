//! Header names (with compact forms) and the ordered header list of a message.
//!
//! Values are stored as received after unfolding, so unknown headers pass through a B2BUA
//! verbatim. Typed views ([`Headers::vias`], [`Headers::cseq`], ...) parse on demand; they
//! are cheap, and keeping one representation means an edited header can never disagree with
//! a cached parse.

use std::fmt;
use std::hash::{Hash, Hasher};

use crate::method::Method;
use crate::name_addr::{Contacts, NameAddr};
use crate::scan::{self, is_token};
use crate::typed::{CSeq, MediaType, parse_call_id, parse_option_tags};
use crate::via::Via;

macro_rules! header_names {
    ($( $variant:ident => $canonical:literal $(, $compact:literal)? ;)*) => {
        /// A header field name. Known names are variants; anything else is kept verbatim in
        /// [`HeaderName::Other`]. Comparison is case-insensitive and compact forms map to
        /// their long form (RFC 3261 §7.3.3).
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub enum HeaderName {
            $( $variant, )*
            Other(String),
        }

        impl HeaderName {
            /// The canonical (long) spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $canonical, )*
                    Self::Other(s) => s,
                }
            }

            fn known(name: &str) -> Option<Self> {
                $(
                    if name.eq_ignore_ascii_case($canonical)
                        $( || name.eq_ignore_ascii_case($compact) )?
                    {
                        return Some(Self::$variant);
                    }
                )*
                None
            }
        }
    };
}

header_names! {
    Accept => "Accept";
    AcceptContact => "Accept-Contact", "a";
    AcceptEncoding => "Accept-Encoding";
    AcceptLanguage => "Accept-Language";
    AlertInfo => "Alert-Info";
    Allow => "Allow";
    AllowEvents => "Allow-Events", "u";
    AuthenticationInfo => "Authentication-Info";
    Authorization => "Authorization";
    CallId => "Call-ID", "i";
    CallInfo => "Call-Info";
    Contact => "Contact", "m";
    ContentDisposition => "Content-Disposition";
    ContentEncoding => "Content-Encoding", "e";
    ContentLanguage => "Content-Language";
    ContentLength => "Content-Length", "l";
    ContentType => "Content-Type", "c";
    CSeq => "CSeq";
    Date => "Date";
    ErrorInfo => "Error-Info";
    Event => "Event", "o";
    Expires => "Expires";
    From => "From", "f";
    Identity => "Identity", "y";
    InReplyTo => "In-Reply-To";
    MaxForwards => "Max-Forwards";
    MimeVersion => "MIME-Version";
    MinExpires => "Min-Expires";
    MinSe => "Min-SE";
    Organization => "Organization";
    PAssertedIdentity => "P-Asserted-Identity";
    PPreferredIdentity => "P-Preferred-Identity";
    Priority => "Priority";
    Privacy => "Privacy";
    ProxyAuthenticate => "Proxy-Authenticate";
    ProxyAuthorization => "Proxy-Authorization";
    ProxyRequire => "Proxy-Require";
    RAck => "RAck";
    Reason => "Reason";
    RecordRoute => "Record-Route";
    ReferTo => "Refer-To", "r";
    ReferredBy => "Referred-By", "b";
    RejectContact => "Reject-Contact", "j";
    Replaces => "Replaces";
    ReplyTo => "Reply-To";
    RequestDisposition => "Request-Disposition", "d";
    Require => "Require";
    RetryAfter => "Retry-After";
    Route => "Route";
    RSeq => "RSeq";
    Server => "Server";
    SessionExpires => "Session-Expires", "x";
    Subject => "Subject", "s";
    SubscriptionState => "Subscription-State";
    Supported => "Supported", "k";
    Timestamp => "Timestamp";
    To => "To", "t";
    Unsupported => "Unsupported";
    UserAgent => "User-Agent";
    Via => "Via", "v";
    Warning => "Warning";
    WwwAuthenticate => "WWW-Authenticate";
}

impl HeaderName {
    /// Parses a field name; `None` if it is not a token.
    pub fn parse(name: &str) -> Option<Self> {
        if !is_token(name) {
            return None;
        }
        Some(Self::known(name).unwrap_or_else(|| Self::Other(name.to_owned())))
    }

    /// Headers whose values may be combined or split at commas (RFC 3261 §7.3.1).
    /// Authentication headers, Date and free-text headers are not among them.
    pub fn is_list(&self) -> bool {
        matches!(
            self,
            Self::Accept
                | Self::AcceptEncoding
                | Self::AcceptLanguage
                | Self::AlertInfo
                | Self::Allow
                | Self::AllowEvents
                | Self::CallInfo
                | Self::Contact
                | Self::ContentEncoding
                | Self::ContentLanguage
                | Self::ErrorInfo
                | Self::InReplyTo
                | Self::ProxyRequire
                | Self::RecordRoute
                | Self::Require
                | Self::Route
                | Self::Supported
                | Self::Unsupported
                | Self::Via
                | Self::Warning
        )
    }

    /// Headers that may appear at most once (RFC 3261 §20, table 2 and 3).
    pub fn is_single(&self) -> bool {
        matches!(
            self,
            Self::CallId
                | Self::ContentLength
                | Self::ContentType
                | Self::CSeq
                | Self::Expires
                | Self::From
                | Self::MaxForwards
                | Self::MinExpires
                | Self::To
        )
    }
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Other(_), _) | (_, Self::Other(_)) => {
                // A caller may have built `Other("Via")` by hand; compare by spelling.
                self.as_str().eq_ignore_ascii_case(other.as_str())
            }
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl Eq for HeaderName {}

impl Hash for HeaderName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for b in self.as_str().bytes() {
            state.write_u8(b.to_ascii_lowercase());
        }
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    /// The value after unfolding, without leading or trailing white space.
    pub value: String,
}

/// Why a typed header view failed. Carries the header name so a server can answer
/// `400 Invalid <name> Header`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("missing {0} header")]
    Missing(HeaderName),
    #[error("more than one {0} header")]
    Multiple(HeaderName),
    #[error("invalid {0} header")]
    Invalid(HeaderName),
}

impl HeaderError {
    pub fn name(&self) -> &HeaderName {
        match self {
            Self::Missing(n) | Self::Multiple(n) | Self::Invalid(n) => n,
        }
    }

    /// A reason phrase for the 400 response, e.g. `Invalid Via Header`.
    pub fn reason_phrase(&self) -> String {
        match self {
            Self::Missing(n) => format!("Missing {n} Header"),
            Self::Multiple(n) => format!("Multiple {n} Headers"),
            Self::Invalid(n) => format!("Invalid {n} Header"),
        }
    }
}

/// The ordered header list of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

impl Headers {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    /// Appends a header line.
    pub fn push(&mut self, name: HeaderName, value: impl Into<String>) {
        self.0.push(Header { name, value: value.into() });
    }

    /// Inserts a header line before the first line of the same name, or at the top if
    /// there is none (how a Via or Record-Route is added).
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<String>) {
        let idx = self.0.iter().position(|h| h.name == name).unwrap_or(0);
        self.0.insert(idx, Header { name, value: value.into() });
    }

    /// Replaces every line of this name with one line, at the position of the first.
    pub fn set(&mut self, name: HeaderName, value: impl Into<String>) {
        let value = value.into();
        match self.0.iter().position(|h| h.name == name) {
            Some(idx) => {
                if let Some(h) = self.0.get_mut(idx) {
                    h.value = value;
                }
                let mut i = 0;
                self.0.retain(|h| {
                    let keep = i <= idx || h.name != name;
                    i += 1;
                    keep
                });
            }
            None => self.push(name, value),
        }
    }

    /// Replaces the value of the first line of this name; returns whether there was one.
    pub fn replace_first(&mut self, name: &HeaderName, value: impl Into<String>) -> bool {
        match self.0.iter_mut().find(|h| &h.name == name) {
            Some(h) => {
                h.value = value.into();
                true
            }
            None => false,
        }
    }

    /// Removes every line of this name; returns how many were removed.
    pub fn remove(&mut self, name: &HeaderName) -> usize {
        let before = self.0.len();
        self.0.retain(|h| &h.name != name);
        before - self.0.len()
    }

    /// Removes and returns the first line of this name.
    pub fn remove_first(&mut self, name: &HeaderName) -> Option<String> {
        let idx = self.0.iter().position(|h| &h.name == name)?;
        Some(self.0.remove(idx).value)
    }

    /// The first value of this name.
    pub fn get(&self, name: &HeaderName) -> Option<&str> {
        self.0.iter().find(|h| &h.name == name).map(|h| h.value.as_str())
    }

    /// Every line of this name, in order.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |h| &h.name == name).map(|h| h.value.as_str())
    }

    pub fn contains(&self, name: &HeaderName) -> bool {
        self.get(name).is_some()
    }

    pub fn count(&self, name: &HeaderName) -> usize {
        self.0.iter().filter(|h| &h.name == name).count()
    }

    /// The only value of a single-valued header: errors if missing or repeated.
    pub fn single(&self, name: &HeaderName) -> Result<&str, HeaderError> {
        let mut values = self.0.iter().filter(|h| &h.name == name).map(|h| h.value.as_str());
        let first = values.next().ok_or_else(|| HeaderError::Missing(name.clone()))?;
        if values.next().is_some() {
            return Err(HeaderError::Multiple(name.clone()));
        }
        Ok(first)
    }

    /// Like [`Headers::single`], but absence is `Ok(None)`.
    pub fn optional(&self, name: &HeaderName) -> Result<Option<&str>, HeaderError> {
        match self.single(name) {
            Ok(v) => Ok(Some(v)),
            Err(HeaderError::Missing(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The elements of a list header across all of its lines, split at top-level commas.
    pub fn list<'a>(&'a self, name: &'a HeaderName) -> Result<Vec<&'a str>, HeaderError> {
        let mut out = Vec::new();
        for value in self.get_all(name) {
            let parts = scan::split_commas(value).ok_or_else(|| HeaderError::Invalid(name.clone()))?;
            out.extend(parts);
        }
        Ok(out)
    }

    fn parse_list<T>(
        &self,
        name: HeaderName,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Vec<T>, HeaderError> {
        self.list(&name)?
            .into_iter()
            .map(|v| parse(v).ok_or_else(|| HeaderError::Invalid(name.clone())))
            .collect()
    }

    fn parse_single<T>(&self, name: HeaderName, parse: impl Fn(&str) -> Option<T>) -> Result<T, HeaderError> {
        let value = self.single(&name)?;
        parse(value).ok_or(HeaderError::Invalid(name))
    }

    fn parse_optional<T>(
        &self,
        name: HeaderName,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, HeaderError> {
        match self.optional(&name)? {
            Some(value) => parse(value).map(Some).ok_or(HeaderError::Invalid(name)),
            None => Ok(None),
        }
    }

    /// All Via values, topmost first.
    pub fn vias(&self) -> Result<Vec<Via>, HeaderError> {
        self.parse_list(HeaderName::Via, |v| v.parse().ok())
    }

    /// The topmost Via (the one a transaction is keyed on).
    pub fn top_via(&self) -> Result<Via, HeaderError> {
        let name = HeaderName::Via;
        let first = self.get(&name).ok_or(HeaderError::Missing(HeaderName::Via))?;
        let top = scan::split_commas(first)
            .and_then(|parts| parts.into_iter().next())
            .ok_or(HeaderError::Invalid(HeaderName::Via))?;
        top.parse().map_err(|_| HeaderError::Invalid(name))
    }

    pub fn from(&self) -> Result<NameAddr, HeaderError> {
        self.parse_single(HeaderName::From, |v| v.parse().ok())
    }

    pub fn to(&self) -> Result<NameAddr, HeaderError> {
        self.parse_single(HeaderName::To, |v| v.parse().ok())
    }

    pub fn call_id(&self) -> Result<&str, HeaderError> {
        let value = self.single(&HeaderName::CallId)?;
        parse_call_id(value).ok_or(HeaderError::Invalid(HeaderName::CallId))
    }

    pub fn cseq(&self) -> Result<CSeq, HeaderError> {
        self.parse_single(HeaderName::CSeq, |v| v.parse().ok())
    }

    /// Max-Forwards, `None` when absent (RFC 3261 allows elements to tolerate that).
    pub fn max_forwards(&self) -> Result<Option<u8>, HeaderError> {
        self.parse_optional(HeaderName::MaxForwards, |v| {
            scan::parse_u64(v).and_then(|n| u8::try_from(n).ok())
        })
    }

    /// The Expires header in seconds.
    pub fn expires(&self) -> Result<Option<u32>, HeaderError> {
        self.parse_optional(HeaderName::Expires, scan::parse_u32)
    }

    pub fn contacts(&self) -> Result<Contacts, HeaderError> {
        Contacts::from_headers(self)
    }

    pub fn routes(&self) -> Result<Vec<NameAddr>, HeaderError> {
        self.parse_list(HeaderName::Route, |v| v.parse().ok())
    }

    pub fn record_routes(&self) -> Result<Vec<NameAddr>, HeaderError> {
        self.parse_list(HeaderName::RecordRoute, |v| v.parse().ok())
    }

    pub fn content_type(&self) -> Result<Option<MediaType>, HeaderError> {
        self.parse_optional(HeaderName::ContentType, |v| v.parse().ok())
    }

    /// Option tags of Require.
    pub fn require(&self) -> Result<Vec<String>, HeaderError> {
        parse_option_tags(self, HeaderName::Require)
    }

    /// Option tags of Proxy-Require.
    pub fn proxy_require(&self) -> Result<Vec<String>, HeaderError> {
        parse_option_tags(self, HeaderName::ProxyRequire)
    }

    /// Option tags of Supported.
    pub fn supported(&self) -> Result<Vec<String>, HeaderError> {
        parse_option_tags(self, HeaderName::Supported)
    }

    /// Methods of Allow.
    pub fn allow(&self) -> Result<Vec<Method>, HeaderError> {
        self.parse_list(HeaderName::Allow, Method::parse)
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromIterator<Header> for Headers {
    fn from_iter<I: IntoIterator<Item = Header>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_forms_map_to_long_names() {
        for (compact, long) in [
            ("i", "Call-ID"),
            ("m", "Contact"),
            ("v", "Via"),
            ("f", "From"),
            ("t", "To"),
            ("l", "Content-Length"),
            ("c", "Content-Type"),
            ("k", "Supported"),
            ("s", "Subject"),
            ("e", "Content-Encoding"),
            ("o", "Event"),
            ("u", "Allow-Events"),
            ("r", "Refer-To"),
            ("b", "Referred-By"),
        ] {
            assert_eq!(HeaderName::parse(compact).unwrap().as_str(), long);
        }
    }

    #[test]
    fn names_compare_case_insensitively() {
        assert_eq!(HeaderName::parse("mAx-FoRwArDs").unwrap(), HeaderName::MaxForwards);
        assert_eq!(HeaderName::parse("X-Custom").unwrap(), HeaderName::parse("x-custom").unwrap());
        assert!(HeaderName::parse("Bad Name").is_none());
    }

    #[test]
    fn set_replaces_all_lines_in_place() {
        let mut h = Headers::new();
        h.push(HeaderName::Via, "a");
        h.push(HeaderName::Supported, "x");
        h.push(HeaderName::Supported, "y");
        h.push(HeaderName::To, "b");
        h.set(HeaderName::Supported, "z");
        let lines: Vec<_> = h.iter().map(|h| h.value.as_str()).collect();
        assert_eq!(lines, ["a", "z", "b"]);
    }

    #[test]
    fn single_reports_missing_and_multiple() {
        let mut h = Headers::new();
        assert_eq!(h.call_id(), Err(HeaderError::Missing(HeaderName::CallId)));
        h.push(HeaderName::CallId, "a@b");
        h.push(HeaderName::CallId, "c@d");
        assert_eq!(h.call_id(), Err(HeaderError::Multiple(HeaderName::CallId)));
    }
}
