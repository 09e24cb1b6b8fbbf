//! Transaction identification (RFC 3261 §17.1.3, §17.2.3, and §17.2.3's RFC 2543 fallback).

use crate::message::{Request, Response};
use crate::method::Method;
use crate::uri::Host;

/// Identifies a client transaction: the branch we generated and the CSeq method, which
/// keeps a CANCEL apart from the INVITE it shares a branch with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey {
    branch: String,
    method: Method,
}

impl ClientKey {
    pub(crate) fn from_request(request: &Request) -> Option<Self> {
        let via = request.headers.top_via().ok()?;
        Some(Self { branch: via.branch()?.to_owned(), method: request.method.clone() })
    }

    pub(crate) fn from_response(response: &Response) -> Option<Self> {
        let via = response.headers.top_via().ok()?;
        Some(Self { branch: via.branch()?.to_owned(), method: response.headers.cseq().ok()?.method })
    }
}

/// Identifies a server transaction. ACK maps to INVITE so that the ACK for a non-2xx
/// final response finds its INVITE transaction; CANCEL keeps its own method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ServerKey {
    Rfc3261 {
        branch: String,
        sent_by_host: String,
        sent_by_port: u16,
        method: Method,
    },
    /// For requests whose branch lacks the magic cookie (RFC 4475 §3.2.1, §3.4.1).
    Rfc2543 {
        request_uri: String,
        call_id: String,
        from_tag: Option<String>,
        cseq: u32,
        top_via: String,
        method: Method,
    },
}

impl ServerKey {
    pub(crate) fn from_request(request: &Request) -> Option<Self> {
        let via = request.headers.top_via().ok()?;
        let method = match request.method {
            Method::Ack => Method::Invite,
            ref m => m.clone(),
        };
        if via.has_rfc3261_branch() {
            let sent_by_host = match &via.host {
                Host::Domain(d) => d.to_ascii_lowercase(),
                other => other.to_string(),
            };
            return Some(Self::Rfc3261 {
                branch: via.branch()?.to_owned(),
                sent_by_host,
                sent_by_port: via.port_or_default(),
                method,
            });
        }
        Some(Self::Rfc2543 {
            request_uri: request.uri.to_string(),
            call_id: request.headers.call_id().ok()?.to_owned(),
            from_tag: request.headers.from().ok()?.tag().map(str::to_owned),
            cseq: request.headers.cseq().ok()?.seq,
            top_via: via.to_string(),
            method,
        })
    }

    /// The key of the transaction with the same identity but another method (the INVITE
    /// a CANCEL refers to).
    pub(crate) fn with_method(&self, method: Method) -> Self {
        let mut key = self.clone();
        match &mut key {
            Self::Rfc3261 { method: m, .. } | Self::Rfc2543 { method: m, .. } => *m = method,
        }
        key
    }
}

/// Finds the INVITE server transaction an ACK for a 2xx belongs to: that ACK is a new
/// transaction with its own branch, so only dialog identifiers tie it to the INVITE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct AckKey {
    call_id: String,
    cseq: u32,
    from_tag: Option<String>,
}

impl AckKey {
    pub(crate) fn from_request(request: &Request) -> Option<Self> {
        Some(Self {
            call_id: request.headers.call_id().ok()?.to_owned(),
            cseq: request.headers.cseq().ok()?.seq,
            from_tag: request.headers.from().ok()?.tag().map(str::to_owned),
        })
    }
}
