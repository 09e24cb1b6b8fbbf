//! Parsing bytes into a [`Message`] (RFC 3261 §7, §18.3).
//!
//! Parsing is two-level. This module frames the message and checks the grammar of the start
//! line and header lines; it keeps every header value as text. Typed views of individual
//! headers are checked later, by [`crate::check_request`] or on access, so that an
//! unknown header can carry anything a header line may carry (RFC 4475 §3.1.1.1) while a
//! malformed Via still earns a 400 that names it.
//!
//! A failed parse says what to do about it: [`ParseError::disposition`] is either a status
//! and reason phrase to answer with, or "drop" for input that is not SIP, or is a response.

use crate::header::{Header, HeaderName, Headers};
use crate::message::{Message, Request, Response, StatusCode, Version};
use crate::method::Method;
use crate::scan::{is_lws, is_token, trim_lws};
use crate::uri::{Uri, UriError};

/// Size limits applied while parsing, to bound the work a peer can cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted message, start line to end of body.
    pub max_message_size: usize,
    /// Most header lines accepted in one message.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_message_size: 64 * 1024, max_headers: 256 }
    }
}

/// What was wrong with the start line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartLineError {
    /// Not exactly `Method SP Request-URI SP SIP-Version` (extra, missing or trailing SP).
    #[error("malformed request line")]
    MalformedRequestLine,
    #[error("invalid method")]
    InvalidMethod,
    #[error("invalid request-uri: {0}")]
    InvalidRequestUri(UriError),
    #[error("invalid sip version")]
    InvalidVersion,
    #[error("malformed status line")]
    MalformedStatusLine,
    /// Not three digits in `100..=699` (RFC 4475 §3.1.2.19).
    #[error("invalid status code")]
    InvalidStatusCode,
}

/// Why bytes could not be turned into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// Only CRLFs: a keep-alive, not an error worth reporting.
    #[error("keep-alive")]
    Keepalive,
    /// The first line is not a SIP start line at all (e.g. HTTP, STUN, random bytes).
    #[error("not a sip message")]
    NotSip,
    #[error("{0}")]
    BadStartLine(StartLineError),
    /// A header line is not `token HCOLON value`, or is a continuation with nothing before.
    #[error("malformed header line {line}")]
    BadHeaderLine { line: usize },
    #[error("line {line} is not valid utf-8")]
    InvalidUtf8 { line: usize },
    /// The empty line ending the headers is missing (truncated datagram, RFC 3261 §7.5).
    #[error("missing empty line after the headers")]
    MissingEmptyLine,
    #[error("invalid content-length")]
    InvalidContentLength,
    #[error("conflicting content-length headers")]
    ConflictingContentLength,
    /// The datagram ends before Content-Length bytes of body (RFC 3261 §18.3).
    #[error("body is {actual} bytes, content-length says {expected}")]
    BodyTooShort { expected: usize, actual: usize },
    /// The start line and headers alone exceed the limit: 513.
    #[error("message larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The headers fit but the body announced by Content-Length does not: 413.
    #[error("body makes the message larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("more than {limit} header lines")]
    TooManyHeaders { limit: usize },
}

/// Whether a failed message was a request, a response, or unrecognisable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartKind {
    Request,
    Response,
    Unknown,
}

/// What a server should do with input that failed to parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Discard silently: not SIP, a response, or a request without a Via to answer to.
    Drop,
    /// Answer with this status and reason phrase, built with
    /// [`Response::for_headers`] from [`ParseError::headers`].
    Reply { status: StatusCode, reason: String },
}

/// A parse failure, with the headers that could be read so the request can be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ParseError {
    kind: ParseErrorKind,
    start: StartKind,
    headers: Option<Box<Headers>>,
}

impl ParseError {
    fn new(kind: ParseErrorKind, start: StartKind) -> Self {
        Self { kind, start, headers: None }
    }

    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }

    pub fn start_kind(&self) -> StartKind {
        self.start
    }

    /// The header lines that parsed, if the header section could be delimited.
    pub fn headers(&self) -> Option<&Headers> {
        self.headers.as_deref()
    }

    /// How a server should react (RFC 3261 §8.2, §18.3; RFC 4475 §3.1.2).
    pub fn disposition(&self) -> Disposition {
        let answerable = self.start == StartKind::Request
            && self.headers.as_deref().is_some_and(|h| h.contains(&HeaderName::Via));
        if !answerable {
            return Disposition::Drop;
        }
        let (status, reason) = match &self.kind {
            ParseErrorKind::Keepalive | ParseErrorKind::NotSip => return Disposition::Drop,
            ParseErrorKind::TooLarge { .. } | ParseErrorKind::TooManyHeaders { .. } => {
                (StatusCode::MESSAGE_TOO_LARGE, "Message Too Large")
            }
            ParseErrorKind::BodyTooLarge { .. } => {
                (StatusCode::REQUEST_ENTITY_TOO_LARGE, "Request Entity Too Large")
            }
            ParseErrorKind::BadStartLine(StartLineError::InvalidRequestUri(_)) => {
                (StatusCode::BAD_REQUEST, "Malformed Request-URI")
            }
            ParseErrorKind::BadStartLine(StartLineError::InvalidVersion) => {
                (StatusCode::BAD_REQUEST, "Malformed SIP-Version")
            }
            ParseErrorKind::BadStartLine(_) => (StatusCode::BAD_REQUEST, "Malformed Request-Line"),
            ParseErrorKind::BadHeaderLine { .. } => (StatusCode::BAD_REQUEST, "Malformed Header Line"),
            ParseErrorKind::InvalidUtf8 { .. } => (StatusCode::BAD_REQUEST, "Invalid UTF-8"),
            ParseErrorKind::MissingEmptyLine => (StatusCode::BAD_REQUEST, "Missing Empty Line After Headers"),
            ParseErrorKind::InvalidContentLength | ParseErrorKind::ConflictingContentLength => {
                (StatusCode::BAD_REQUEST, "Invalid Content-Length")
            }
            ParseErrorKind::BodyTooShort { .. } => {
                (StatusCode::BAD_REQUEST, "Body Shorter Than Content-Length")
            }
        };
        Disposition::Reply { status, reason: reason.to_owned() }
    }
}

pub(crate) fn bare_error(kind: ParseErrorKind, start: StartKind) -> ParseError {
    ParseError::new(kind, start)
}

/// Parses one message from a datagram (UDP, or one WebSocket message per RFC 7118).
///
/// Leading CRLFs are skipped (RFC 3261 §7.5). Octets beyond Content-Length are discarded
/// (§18.3, RFC 4475 §3.1.1.8); without Content-Length the body runs to the end.
pub fn parse_datagram(bytes: &[u8]) -> Result<Message, ParseError> {
    parse_datagram_with(bytes, &Limits::default())
}

/// [`parse_datagram`] with explicit limits.
pub fn parse_datagram_with(bytes: &[u8], limits: &Limits) -> Result<Message, ParseError> {
    let start = skip_leading_crlf(bytes);
    let bytes = bytes.get(start..).unwrap_or_default();
    if bytes.is_empty() {
        return Err(ParseError::new(ParseErrorKind::Keepalive, StartKind::Unknown));
    }
    let head_end = find_head_end(bytes, 0);
    let head_bytes = bytes.get(..head_end.unwrap_or(bytes.len())).unwrap_or_default();
    let head = parse_head(head_bytes, limits)?;
    let Some(head_end) = head_end else {
        return Err(head.fail(ParseErrorKind::MissingEmptyLine));
    };
    let available = bytes.get(head_end..).unwrap_or_default();
    let body = match head.content_length() {
        Err(kind) => return Err(head.fail(kind)),
        Ok(Some(len)) => match available.get(..len) {
            Some(body) => body,
            None => {
                let kind = ParseErrorKind::BodyTooShort { expected: len, actual: available.len() };
                return Err(head.fail(kind));
            }
        },
        Ok(None) => available,
    };
    let limit = limits.max_message_size;
    if head_end > limit {
        return Err(head.fail(ParseErrorKind::TooLarge { limit }));
    }
    if head_end + body.len() > limit {
        return Err(head.fail(ParseErrorKind::BodyTooLarge { limit }));
    }
    head.into_message(body.to_vec())
}

/// Number of CR and LF bytes at the start.
pub(crate) fn skip_leading_crlf(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|&&b| b == b'\r' || b == b'\n').count()
}

/// Finds the end of the header section (the index just past the empty line), searching
/// from `from`. Accepts bare LF line ends as well as CRLF.
pub(crate) fn find_head_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        let lf = i + bytes.get(i..)?.iter().position(|&b| b == b'\n')?;
        match bytes.get(lf + 1) {
            Some(b'\n') => return Some(lf + 2),
            Some(b'\r') if bytes.get(lf + 2) == Some(&b'\n') => return Some(lf + 3),
            _ => i = lf + 1,
        }
    }
}

enum StartLine {
    Request { method: Method, uri: Uri, version: Version },
    Response { version: Version, status: StatusCode, reason: String },
}

/// A parsed header section; the first error found is kept so that every valid header
/// line is still available for an error response.
pub(crate) struct Head {
    start: Result<StartLine, ParseErrorKind>,
    kind: StartKind,
    headers: Headers,
    error: Option<ParseErrorKind>,
}

impl Head {
    fn fail(self, kind: ParseErrorKind) -> ParseError {
        ParseError { kind, start: self.kind, headers: Some(Box::new(self.headers)) }
    }

    /// The Content-Length, if present. Repeated identical values are tolerated.
    pub(crate) fn content_length(&self) -> Result<Option<usize>, ParseErrorKind> {
        let mut found = None;
        for value in self.headers.get_all(&HeaderName::ContentLength) {
            let len = crate::scan::parse_u64(value)
                .and_then(|v| usize::try_from(v).ok())
                .ok_or(ParseErrorKind::InvalidContentLength)?;
            if found.is_some_and(|f| f != len) {
                return Err(ParseErrorKind::ConflictingContentLength);
            }
            found = Some(len);
        }
        Ok(found)
    }

    pub(crate) fn into_message(self, body: Vec<u8>) -> Result<Message, ParseError> {
        if let Some(kind) = self.error.clone() {
            return Err(self.fail(kind));
        }
        let kind = self.kind;
        match self.start {
            Err(e) => Err(ParseError { kind: e, start: kind, headers: Some(Box::new(self.headers)) }),
            Ok(StartLine::Request { method, uri, version }) => {
                Ok(Message::Request(Request { method, uri, version, headers: self.headers, body }))
            }
            Ok(StartLine::Response { version, status, reason }) => {
                Ok(Message::Response(Response { version, status, reason, headers: self.headers, body }))
            }
        }
    }

    pub(crate) fn into_error(self, kind: ParseErrorKind) -> ParseError {
        self.fail(kind)
    }
}

/// Parses the start line and header lines. `bytes` starts at the start line and runs to the
/// end of the header section (the empty line may be absent). Fails without headers only
/// when the input is not SIP at all.
pub(crate) fn parse_head(bytes: &[u8], limits: &Limits) -> Result<Head, ParseError> {
    let mut lines = bytes.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first = lines.next().unwrap_or_default();
    let kind = classify(first);
    if kind == StartKind::Unknown {
        return Err(ParseError::new(ParseErrorKind::NotSip, StartKind::Unknown));
    }
    let start = match std::str::from_utf8(first) {
        Ok(line) => parse_start_line(line, kind).map_err(ParseErrorKind::BadStartLine),
        Err(_) => Err(ParseErrorKind::InvalidUtf8 { line: 1 }),
    };

    let mut headers = Vec::new();
    let mut error = None;
    let mut current: Option<(HeaderName, String)> = None;
    for (idx, raw) in lines.enumerate() {
        let line_no = idx + 2;
        if raw.is_empty() {
            break;
        }
        let Ok(line) = std::str::from_utf8(raw) else {
            error.get_or_insert(ParseErrorKind::InvalidUtf8 { line: line_no });
            continue;
        };
        // A CR that does not end the line cannot be represented after unfolding.
        if line.contains('\r') {
            error.get_or_insert(ParseErrorKind::BadHeaderLine { line: line_no });
            continue;
        }
        if line.starts_with([' ', '\t']) {
            // Folded continuation of the previous header (RFC 3261 §7.3.1).
            match current.as_mut() {
                Some((_, value)) => {
                    let more = trim_lws(line);
                    if !more.is_empty() {
                        if !value.is_empty() {
                            value.truncate(value.trim_end_matches([' ', '\t']).len());
                            value.push(' ');
                        }
                        value.push_str(more);
                    }
                }
                None => {
                    error.get_or_insert(ParseErrorKind::BadHeaderLine { line: line_no });
                }
            }
            continue;
        }
        if let Some((name, value)) = current.take() {
            headers.push(Header { name, value });
        }
        if headers.len() >= limits.max_headers {
            let limit = limits.max_headers;
            error = Some(ParseErrorKind::TooManyHeaders { limit });
            break;
        }
        match split_header_line(line) {
            Some((name, value)) => current = Some((name, value.to_owned())),
            None => {
                error.get_or_insert(ParseErrorKind::BadHeaderLine { line: line_no });
            }
        }
    }
    if let Some((name, value)) = current.take() {
        headers.push(Header { name, value });
    }
    for h in &mut headers {
        let trimmed = trim_lws(&h.value);
        if trimmed.len() != h.value.len() {
            h.value = trimmed.to_owned();
        }
    }
    Ok(Head { start, kind, headers: headers.into_iter().collect(), error })
}

/// `field-name *(SP / HTAB) ":" value`.
fn split_header_line(line: &str) -> Option<(HeaderName, &str)> {
    let (name, value) = line.split_once(':')?;
    let name = name.trim_end_matches([' ', '\t']);
    if !is_token(name) {
        return None;
    }
    Some((HeaderName::parse(name)?, trim_lws(value)))
}

/// Decides from the first line whether this is meant to be SIP at all. A line that does not
/// mention `SIP/` is not worth an answer (RFC 4475 leaves garbage to be dropped).
fn classify(line: &[u8]) -> StartKind {
    let starts_sip = line.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"));
    if starts_sip {
        StartKind::Response
    } else if line.windows(4).any(|w| w.eq_ignore_ascii_case(b"SIP/")) {
        StartKind::Request
    } else {
        StartKind::Unknown
    }
}

fn parse_start_line(line: &str, kind: StartKind) -> Result<StartLine, StartLineError> {
    if kind == StartKind::Response {
        return parse_status_line(line);
    }
    // Exactly single spaces: RFC 4475 §3.1.2.8 to §3.1.2.10 are rejected here.
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(StartLineError::MalformedRequestLine);
    };
    let method = Method::parse(method).ok_or(StartLineError::InvalidMethod)?;
    let uri = uri.parse().map_err(StartLineError::InvalidRequestUri)?;
    let version = Version::parse(version).ok_or(StartLineError::InvalidVersion)?;
    Ok(StartLine::Request { method, uri, version })
}

fn parse_status_line(line: &str) -> Result<StartLine, StartLineError> {
    let (version, rest) = line.split_once(' ').ok_or(StartLineError::MalformedStatusLine)?;
    let version = Version::parse(version).ok_or(StartLineError::InvalidVersion)?;
    // The reason phrase may be empty, with or without the SP before it (RFC 4475 §3.1.1.13).
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StartLineError::InvalidStatusCode);
    }
    let status = code.parse().ok().and_then(StatusCode::new).ok_or(StartLineError::InvalidStatusCode)?;
    if reason.bytes().any(|b| b.is_ascii_control() && !is_lws(b)) {
        return Err(StartLineError::MalformedStatusLine);
    }
    Ok(StartLine::Response { version, status, reason: reason.to_owned() })
}
