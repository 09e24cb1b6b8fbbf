//! Small typed header values: CSeq, Call-ID, media types and option-tag lists.

use std::fmt;
use std::str::FromStr;

use crate::header::{HeaderError, HeaderName, Headers};
use crate::method::Method;
use crate::params::Params;
use crate::scan::{self, Cursor, is_token, is_word_char};

/// The CSeq header: a sequence number and the request's method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

/// Error for typed header values parsed with [`FromStr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid {0} value")]
pub struct InvalidValue(pub &'static str);

impl CSeq {
    /// RFC 3261 §8.1.1.5: the sequence number must be less than 2**31.
    pub const MAX_SEQ: u32 = (1 << 31) - 1;
}

impl FromStr for CSeq {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        let err = InvalidValue("CSeq");
        let mut c = Cursor::new(scan::trim_lws(s));
        let seq = c.take_while(|b| b.is_ascii_digit());
        let seq = scan::parse_u32(seq).filter(|&n| n <= Self::MAX_SEQ).ok_or(err)?;
        if !c.skip_lws() {
            return Err(err);
        }
        let method = Method::parse(c.rest()).ok_or(err)?;
        Ok(Self { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// Validates `callid = word [ "@" word ]` and returns it.
pub(crate) fn parse_call_id(s: &str) -> Option<&str> {
    let (a, b) = match s.split_once('@') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let is_word = |w: &str| !w.is_empty() && w.bytes().all(is_word_char);
    (is_word(a) && b.is_none_or(is_word)).then_some(s)
}

/// A media type such as `application/sdp;charset=utf-8` (Content-Type, Accept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    pub kind: String,
    pub subtype: String,
    pub params: Params,
}

impl MediaType {
    pub fn new(kind: &str, subtype: &str) -> Self {
        Self { kind: kind.to_owned(), subtype: subtype.to_owned(), params: Params::new() }
    }

    /// Case-insensitive comparison of type and subtype, ignoring parameters.
    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind) && self.subtype.eq_ignore_ascii_case(subtype)
    }
}

impl FromStr for MediaType {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        let err = InvalidValue("media type");
        let mut c = Cursor::new(scan::trim_lws(s));
        let kind = c.token().ok_or(err)?;
        if !c.eat_sep(b'/') {
            return Err(err);
        }
        let subtype = c.token().ok_or(err)?;
        let params = Params::parse_header_params(c.rest()).ok_or(err)?;
        Ok(Self { kind: kind.to_owned(), subtype: subtype.to_owned(), params })
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}{}", self.kind, self.subtype, self.params)
    }
}

/// Parses an option-tag list header (Require, Proxy-Require, Supported, Unsupported).
pub(crate) fn parse_option_tags(headers: &Headers, name: HeaderName) -> Result<Vec<String>, HeaderError> {
    let mut tags = Vec::new();
    for tag in headers.list(&name)? {
        // An empty Supported header is legal and means "no extensions".
        if tag.is_empty() {
            continue;
        }
        if !is_token(tag) {
            return Err(HeaderError::Invalid(name));
        }
        tags.push(tag.to_owned());
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq_accepts_leading_zeros_and_lws() {
        let c: CSeq = "0009\t INVITE".parse().unwrap();
        assert_eq!(c, CSeq { seq: 9, method: Method::Invite });
        assert_eq!(c.to_string(), "9 INVITE");
    }

    #[test]
    fn cseq_rejects_overlarge_and_missing_method() {
        assert!("36893488147419103232 REGISTER".parse::<CSeq>().is_err());
        assert!("2147483648 INVITE".parse::<CSeq>().is_err());
        assert!("2147483647 INVITE".parse::<CSeq>().is_ok());
        assert!("12".parse::<CSeq>().is_err());
        assert!("12INVITE".parse::<CSeq>().is_err());
    }

    #[test]
    fn call_id_is_word_at_word() {
        assert!(parse_call_id("abc@192.0.2.1").is_some());
        assert!(parse_call_id("a b").is_none());
        assert!(parse_call_id("a@").is_none());
        assert!(parse_call_id("").is_none());
    }

    #[test]
    fn media_type_parses_params() {
        let m: MediaType = "multipart/mixed;boundary=7a9cbec02ceef655".parse().unwrap();
        assert!(m.is("Multipart", "MIXED"));
        assert_eq!(m.params.value("boundary"), Some("7a9cbec02ceef655"));
    }
}
