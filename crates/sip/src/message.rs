//! Requests, responses and their canonical serialization.

use std::fmt;

use crate::header::{HeaderName, Headers};
use crate::method::Method;
use crate::uri::Uri;

/// The SIP version of a start line. Anything but 2.0 is answered with 505.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version {
    pub major: u16,
    pub minor: u16,
}

impl Version {
    pub const SIP_2_0: Self = Self { major: 2, minor: 0 };

    /// Parses `SIP/<digits>.<digits>`; "SIP" is case-insensitive.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let rest = s.get(..4).filter(|p| p.eq_ignore_ascii_case("SIP/"))?;
        let rest = s.get(rest.len()..)?;
        let (major, minor) = rest.split_once('.')?;
        Some(Self {
            major: crate::scan::parse_u64(major).and_then(|v| u16::try_from(v).ok())?,
            minor: crate::scan::parse_u64(minor).and_then(|v| u16::try_from(v).ok())?,
        })
    }
}

impl Default for Version {
    fn default() -> Self {
        Self::SIP_2_0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/{}.{}", self.major, self.minor)
    }
}

/// A response status code, always in `100..=699`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatusCode(u16);

impl StatusCode {
    pub const TRYING: Self = Self(100);
    pub const RINGING: Self = Self(180);
    pub const SESSION_PROGRESS: Self = Self(183);
    pub const OK: Self = Self(200);
    pub const ACCEPTED: Self = Self(202);
    pub const MOVED_TEMPORARILY: Self = Self(302);
    pub const BAD_REQUEST: Self = Self(400);
    pub const UNAUTHORIZED: Self = Self(401);
    pub const FORBIDDEN: Self = Self(403);
    pub const NOT_FOUND: Self = Self(404);
    pub const METHOD_NOT_ALLOWED: Self = Self(405);
    pub const NOT_ACCEPTABLE: Self = Self(406);
    pub const PROXY_AUTHENTICATION_REQUIRED: Self = Self(407);
    pub const REQUEST_TIMEOUT: Self = Self(408);
    pub const REQUEST_ENTITY_TOO_LARGE: Self = Self(413);
    pub const UNSUPPORTED_MEDIA_TYPE: Self = Self(415);
    pub const UNSUPPORTED_URI_SCHEME: Self = Self(416);
    pub const BAD_EXTENSION: Self = Self(420);
    pub const INTERVAL_TOO_BRIEF: Self = Self(423);
    pub const TEMPORARILY_UNAVAILABLE: Self = Self(480);
    pub const CALL_TRANSACTION_DOES_NOT_EXIST: Self = Self(481);
    pub const LOOP_DETECTED: Self = Self(482);
    pub const TOO_MANY_HOPS: Self = Self(483);
    pub const BUSY_HERE: Self = Self(486);
    pub const REQUEST_TERMINATED: Self = Self(487);
    pub const NOT_ACCEPTABLE_HERE: Self = Self(488);
    pub const REQUEST_PENDING: Self = Self(491);
    pub const SERVER_INTERNAL_ERROR: Self = Self(500);
    pub const NOT_IMPLEMENTED: Self = Self(501);
    pub const SERVICE_UNAVAILABLE: Self = Self(503);
    pub const VERSION_NOT_SUPPORTED: Self = Self(505);
    pub const MESSAGE_TOO_LARGE: Self = Self(513);
    pub const DECLINE: Self = Self(603);

    /// `None` outside `100..=699`.
    pub const fn new(code: u16) -> Option<Self> {
        if code >= 100 && code <= 699 { Some(Self(code)) } else { None }
    }

    pub const fn as_u16(self) -> u16 {
        self.0
    }

    pub const fn is_provisional(self) -> bool {
        self.0 < 200
    }

    pub const fn is_success(self) -> bool {
        self.0 >= 200 && self.0 < 300
    }

    pub const fn is_final(self) -> bool {
        self.0 >= 200
    }

    /// The class, 1 to 6.
    pub const fn class(self) -> u16 {
        self.0 / 100
    }

    /// The reason phrase RFC 3261 §21 suggests; a generic one for unknown codes.
    pub fn canonical_reason(self) -> &'static str {
        match self.0 {
            100 => "Trying",
            180 => "Ringing",
            181 => "Call Is Being Forwarded",
            182 => "Queued",
            183 => "Session Progress",
            199 => "Early Dialog Terminated",
            200 => "OK",
            202 => "Accepted",
            204 => "No Notification",
            300 => "Multiple Choices",
            301 => "Moved Permanently",
            302 => "Moved Temporarily",
            305 => "Use Proxy",
            380 => "Alternative Service",
            400 => "Bad Request",
            401 => "Unauthorized",
            402 => "Payment Required",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            406 => "Not Acceptable",
            407 => "Proxy Authentication Required",
            408 => "Request Timeout",
            410 => "Gone",
            412 => "Conditional Request Failed",
            413 => "Request Entity Too Large",
            414 => "Request-URI Too Long",
            415 => "Unsupported Media Type",
            416 => "Unsupported URI Scheme",
            420 => "Bad Extension",
            421 => "Extension Required",
            422 => "Session Interval Too Small",
            423 => "Interval Too Brief",
            428 => "Use Identity Header",
            429 => "Provide Referrer Identity",
            433 => "Anonymity Disallowed",
            480 => "Temporarily Unavailable",
            481 => "Call/Transaction Does Not Exist",
            482 => "Loop Detected",
            483 => "Too Many Hops",
            484 => "Address Incomplete",
            485 => "Ambiguous",
            486 => "Busy Here",
            487 => "Request Terminated",
            488 => "Not Acceptable Here",
            489 => "Bad Event",
            491 => "Request Pending",
            493 => "Undecipherable",
            494 => "Security Agreement Required",
            500 => "Server Internal Error",
            501 => "Not Implemented",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Server Time-out",
            505 => "Version Not Supported",
            513 => "Message Too Large",
            580 => "Precondition Failure",
            600 => "Busy Everywhere",
            603 => "Decline",
            604 => "Does Not Exist Anywhere",
            606 => "Not Acceptable",
            607 => "Unwanted",
            c if c < 200 => "Provisional",
            c if c < 300 => "Success",
            c if c < 400 => "Redirection",
            c if c < 500 => "Client Error",
            c if c < 600 => "Server Error",
            _ => "Global Failure",
        }
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub version: Version,
    pub status: StatusCode,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// Either kind of message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

impl Request {
    pub fn new(method: Method, uri: Uri) -> Self {
        Self { method, uri, version: Version::SIP_2_0, headers: Headers::new(), body: Vec::new() }
    }

    /// Serializes the request. See [`Message::to_bytes`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(512);
        out.push_str(self.method.as_str());
        out.push(' ');
        out.push_str(&self.uri.to_string());
        out.push(' ');
        out.push_str(&self.version.to_string());
        out.push_str("\r\n");
        finish(out, &self.headers, &self.body)
    }
}

impl Response {
    /// A bare response; see [`Response::for_request`] to answer a request.
    pub fn new(status: StatusCode) -> Self {
        Self {
            version: Version::SIP_2_0,
            status,
            reason: status.canonical_reason().to_owned(),
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// A response to `request` (RFC 3261 §8.2.6.2): copies Via, From, To, Call-ID and CSeq,
    /// plus Timestamp for a 100. The To tag is the caller's business.
    pub fn for_request(request: &Request, status: StatusCode) -> Self {
        Self::for_headers(&request.headers, status)
    }

    /// Like [`Response::for_request`] but from a header list alone, for answering a request
    /// whose start line did not parse (see [`crate::ParseError::headers`]).
    pub fn for_headers(headers: &Headers, status: StatusCode) -> Self {
        let mut response = Self::new(status);
        for h in headers {
            let copy = matches!(
                h.name,
                HeaderName::Via | HeaderName::From | HeaderName::To | HeaderName::CallId | HeaderName::CSeq
            ) || (status == StatusCode::TRYING && h.name == HeaderName::Timestamp);
            if copy {
                response.headers.push(h.name.clone(), h.value.clone());
            }
        }
        response
    }

    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }

    /// Adds a tag to the To header unless it already has one. Leaves an unparsable To alone.
    pub fn set_to_tag(&mut self, tag: &str) {
        if let Ok(mut to) = self.headers.to()
            && to.tag().is_none()
        {
            to.set_tag(tag);
            self.headers.set(HeaderName::To, to.to_string());
        }
    }

    /// Serializes the response. See [`Message::to_bytes`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(512);
        out.push_str(&self.version.to_string());
        out.push(' ');
        out.push_str(&self.status.to_string());
        out.push(' ');
        push_sanitized(&mut out, &self.reason);
        out.push_str("\r\n");
        finish(out, &self.headers, &self.body)
    }
}

impl Message {
    /// Canonical wire form: long header names, one header per line as stored, CRLF line
    /// ends, and a Content-Length that always matches the body (it replaces the first
    /// Content-Length line, or is appended).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Request(r) => r.to_bytes(),
            Self::Response(r) => r.to_bytes(),
        }
    }

    pub fn headers(&self) -> &Headers {
        match self {
            Self::Request(r) => &r.headers,
            Self::Response(r) => &r.headers,
        }
    }

    pub fn headers_mut(&mut self) -> &mut Headers {
        match self {
            Self::Request(r) => &mut r.headers,
            Self::Response(r) => &mut r.headers,
        }
    }

    pub fn body(&self) -> &[u8] {
        match self {
            Self::Request(r) => &r.body,
            Self::Response(r) => &r.body,
        }
    }
}

impl From<Request> for Message {
    fn from(r: Request) -> Self {
        Self::Request(r)
    }
}

impl From<Response> for Message {
    fn from(r: Response) -> Self {
        Self::Response(r)
    }
}

fn finish(mut out: String, headers: &Headers, body: &[u8]) -> Vec<u8> {
    let mut wrote_length = false;
    for h in headers {
        if h.name == HeaderName::ContentLength {
            if wrote_length {
                continue;
            }
            wrote_length = true;
            out.push_str("Content-Length: ");
            out.push_str(&body.len().to_string());
        } else {
            out.push_str(h.name.as_str());
            out.push_str(": ");
            push_sanitized(&mut out, &h.value);
        }
        out.push_str("\r\n");
    }
    if !wrote_length {
        out.push_str("Content-Length: ");
        out.push_str(&body.len().to_string());
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Values built by callers could carry CR or LF; writing them raw would let a value inject
/// header lines, so they become spaces.
fn push_sanitized(out: &mut String, value: &str) {
    if value.contains(['\r', '\n']) {
        out.extend(value.chars().map(|c| if c == '\r' || c == '\n' { ' ' } else { c }));
    } else {
        out.push_str(value);
    }
}

impl fmt::Display for Request {
    /// The serialized request; the body is shown lossily if it is not UTF-8.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

impl fmt::Display for Response {
    /// The serialized response; the body is shown lossily if it is not UTF-8.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}
