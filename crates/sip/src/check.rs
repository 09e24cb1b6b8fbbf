//! Checks a parsed message against what RFC 3261 requires before it may be processed, and
//! maps each defect to the response a server sends (§8.2, RFC 4475 §3.1.2 and §3.3).

use crate::header::{HeaderError, HeaderName};
use crate::message::{Request, Response, StatusCode, Version};
use crate::method::Method;
use crate::name_addr::Contacts;
use crate::uri::Uri;

/// Something wrong with a message that parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Defect {
    #[error("unsupported sip version {0}")]
    UnsupportedVersion(Version),
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("cseq method does not match the request method")]
    CSeqMethodMismatch,
    /// RFC 3261 §19.1.1: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11).
    #[error("request-uri contains headers")]
    RequestUriHeaders,
    /// RFC 3261 §8.2.2.1 (RFC 4475 §3.3.2, §3.3.3).
    #[error("unsupported uri scheme {0:?}")]
    UnsupportedUriScheme(String),
    /// A REGISTER that breaks RFC 3261 §10.3.
    #[error("invalid register: {0}")]
    InvalidRegister(&'static str),
}

impl Defect {
    /// The status a server answers with. Responses with defects are dropped instead.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnsupportedVersion(_) => StatusCode::VERSION_NOT_SUPPORTED,
            Self::UnsupportedUriScheme(_) => StatusCode::UNSUPPORTED_URI_SCHEME,
            Self::Header(_)
            | Self::CSeqMethodMismatch
            | Self::RequestUriHeaders
            | Self::InvalidRegister(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// A reason phrase naming the problem, e.g. `Invalid CSeq Header`.
    pub fn reason_phrase(&self) -> String {
        match self {
            Self::UnsupportedVersion(_) => "Version Not Supported".to_owned(),
            Self::Header(e) => e.reason_phrase(),
            Self::CSeqMethodMismatch => "CSeq Method Does Not Match Request".to_owned(),
            Self::RequestUriHeaders => "Request-URI Must Not Contain Headers".to_owned(),
            Self::UnsupportedUriScheme(_) => "Unsupported URI Scheme".to_owned(),
            Self::InvalidRegister(why) => format!("Invalid REGISTER: {why}"),
        }
    }

    /// The response to `request` for this defect (To tag not added).
    pub fn response_to(&self, request: &Request) -> Response {
        Response::for_request(request, self.status()).with_reason(self.reason_phrase())
    }
}

/// The checks every request must pass before the transaction layer sees it: version,
/// mandatory headers and their syntax, CSeq method, Request-URI form and scheme.
pub fn check_request(request: &Request) -> Result<(), Defect> {
    if request.version != Version::SIP_2_0 {
        return Err(Defect::UnsupportedVersion(request.version));
    }
    check_common(&request.headers)?;
    let cseq = request.headers.cseq()?;
    if cseq.method != request.method {
        return Err(Defect::CSeqMethodMismatch);
    }
    match &request.uri {
        Uri::Sip(u) if !u.headers.is_empty() => Err(Defect::RequestUriHeaders),
        Uri::Sip(_) | Uri::Tel(_) => Ok(()),
        Uri::Other(u) => Err(Defect::UnsupportedUriScheme(u.scheme.clone())),
    }
}

/// The checks a response must pass; a response that fails is discarded (§18.1.2).
pub fn check_response(response: &Response) -> Result<(), Defect> {
    if response.version != Version::SIP_2_0 {
        return Err(Defect::UnsupportedVersion(response.version));
    }
    check_common(&response.headers)
}

fn check_common(headers: &crate::header::Headers) -> Result<(), Defect> {
    let vias = headers.vias()?;
    if vias.is_empty() {
        return Err(HeaderError::Missing(HeaderName::Via).into());
    }
    headers.from()?;
    headers.to()?;
    headers.call_id()?;
    headers.cseq()?;
    headers.max_forwards()?;
    headers.content_type()?;
    for name in [HeaderName::Expires, HeaderName::MinExpires] {
        headers.optional(&name)?;
    }
    if headers.contains(&HeaderName::Contact) {
        headers.contacts()?;
    }
    headers.routes()?;
    headers.record_routes()?;
    Ok(())
}

/// Option tags of Require that are not in `supported`: if any, a UAS answers 420 with them
/// in Unsupported (RFC 3261 §8.2.2.3). ACK and CANCEL are exempt. A proxy checks
/// [`crate::Headers::proxy_require`] the same way.
pub fn unsupported_extensions(request: &Request, supported: &[&str]) -> Result<Vec<String>, HeaderError> {
    if matches!(request.method, Method::Ack | Method::Cancel) {
        return Ok(Vec::new());
    }
    Ok(request
        .headers
        .require()?
        .into_iter()
        .filter(|tag| !supported.iter().any(|s| s.eq_ignore_ascii_case(tag)))
        .collect())
}

/// A 420 Bad Extension response listing the unsupported option tags.
pub fn bad_extension_response(request: &Request, unsupported: &[String]) -> Response {
    let mut response = Response::for_request(request, StatusCode::BAD_EXTENSION);
    response.headers.push(HeaderName::Unsupported, unsupported.join(", "));
    response
}

/// Registrar checks of RFC 3261 §10.3 that do not need the location service: the To
/// header is an address of record (SIP or SIPS URI), and a wildcard Contact comes alone with
/// `Expires: 0`.
pub fn check_register(request: &Request) -> Result<(), Defect> {
    let to = request.headers.to()?;
    if to.uri.as_sip().is_none() {
        return Err(Defect::InvalidRegister("to is not a sip or sips uri"));
    }
    if let Contacts::Wildcard = request.headers.contacts()? {
        let expires = request.headers.expires()?;
        if expires != Some(0) {
            return Err(Defect::InvalidRegister("wildcard contact needs expires 0"));
        }
    }
    Ok(())
}
