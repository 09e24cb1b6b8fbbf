//! Dialogs (RFC 3261 §12): identity, early/confirmed state, route set, remote target and
//! sequence numbers, and building the requests and responses that belong to a dialog.
//!
//! A dialog does not send anything. The TU builds a request here, hands it to
//! [`crate::transaction::Endpoint::send_request`] (or `send_stateless` for the ACK of a 2xx),
//! and feeds what comes back into [`Dialog::handle_response`] / [`Dialog::handle_request`].

use crate::header::{HeaderError, HeaderName, Headers};
use crate::message::{Request, Response, StatusCode};
use crate::method::Method;
use crate::name_addr::NameAddr;
use crate::uri::Uri;
use crate::via::Via;

/// What identifies a dialog at one end (§12): Call-ID and both tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

impl DialogId {
    /// The id of the dialog an incoming request belongs to at this end (To tag is ours).
    /// `None` without both tags, i.e. for a request outside a dialog.
    pub fn for_incoming_request(request: &Request) -> Option<Self> {
        let h = &request.headers;
        Some(Self {
            call_id: h.call_id().ok()?.to_owned(),
            local_tag: h.to().ok()?.tag()?.to_owned(),
            remote_tag: h.from().ok()?.tag()?.to_owned(),
        })
    }

    /// The id of the dialog an incoming response belongs to at this end (From tag is ours).
    pub fn for_incoming_response(response: &Response) -> Option<Self> {
        let h = &response.headers;
        Some(Self {
            call_id: h.call_id().ok()?.to_owned(),
            local_tag: h.from().ok()?.tag()?.to_owned(),
            remote_tag: h.to().ok()?.tag()?.to_owned(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// Created by a provisional response with a To tag.
    Early,
    Confirmed,
    Terminated,
}

/// Why a dialog could not be created or a message applied to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialogError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("the response has no to tag")]
    MissingRemoteTag,
    #[error("no contact to use as the remote target")]
    MissingContact,
    #[error("only provisional and 2xx responses create dialogs")]
    NotDialogCreating,
    #[error("the message does not belong to this dialog")]
    WrongDialog,
    /// §12.2.2: answer 500.
    #[error("cseq {received} is lower than the last one seen, {last}")]
    OutOfOrder { received: u32, last: u32 },
}

/// One dialog, seen from this end. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    id: DialogId,
    state: DialogState,
    /// `None` until this end sends its first request (a UAS dialog starts that way).
    local_seq: Option<u32>,
    remote_seq: Option<u32>,
    local_uri: NameAddr,
    remote_uri: NameAddr,
    remote_target: Uri,
    /// Record-Route values in the order requests must visit them.
    route_set: Vec<NameAddr>,
    /// Our Contact, sent in target refresh requests and dialog-creating responses.
    local_contact: NameAddr,
    /// Set when the dialog was created over TLS with a SIPS Request-URI (§12.1).
    secure: bool,
}

/// Methods whose requests and 2xx responses may change the remote target (§12.2, RFC 3311,
/// RFC 6665).
fn is_target_refresh(method: &Method) -> bool {
    matches!(method, Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer)
}

fn first_contact_uri(headers: &Headers) -> Result<Option<Uri>, DialogError> {
    Ok(headers.contacts()?.addresses().first().map(|c| c.uri.clone()))
}

impl Dialog {
    /// The UAC's dialog, created by a provisional (with To tag) or 2xx `response` to our
    /// `request` (§12.1.2).
    pub fn new_uac(
        request: &Request,
        response: &Response,
        local_contact: NameAddr,
    ) -> Result<Self, DialogError> {
        let status = response.status;
        if status == StatusCode::TRYING || status.as_u16() >= 300 {
            return Err(DialogError::NotDialogCreating);
        }
        let remote_uri = response.headers.to()?;
        let remote_tag = remote_uri.tag().ok_or(DialogError::MissingRemoteTag)?.to_owned();
        let local_uri = request.headers.from()?;
        let local_tag = local_uri.tag().ok_or(HeaderError::Invalid(HeaderName::From))?.to_owned();
        let mut route_set = response.headers.record_routes()?;
        route_set.reverse();
        let remote_target = first_contact_uri(&response.headers)?.ok_or(DialogError::MissingContact)?;
        Ok(Self {
            id: DialogId { call_id: request.headers.call_id()?.to_owned(), local_tag, remote_tag },
            state: if status.is_success() { DialogState::Confirmed } else { DialogState::Early },
            local_seq: Some(request.headers.cseq()?.seq),
            remote_seq: None,
            local_uri,
            remote_uri,
            remote_target,
            route_set,
            local_contact,
            secure: matches!(&request.uri, Uri::Sip(u) if u.secure),
        })
    }

    /// The UAS's dialog for a dialog-creating `request`, with the To tag this end picked.
    /// It is early until [`Dialog::confirm`] (after sending a 2xx).
    pub fn new_uas(request: &Request, local_tag: &str, local_contact: NameAddr) -> Result<Self, DialogError> {
        let remote_uri = request.headers.from()?;
        // An RFC 2543 peer may omit the From tag; an empty remote tag stands for it.
        let remote_tag = remote_uri.tag().unwrap_or_default().to_owned();
        let mut local_uri = request.headers.to()?;
        local_uri.set_tag(local_tag);
        let remote_target = first_contact_uri(&request.headers)?.ok_or(DialogError::MissingContact)?;
        Ok(Self {
            id: DialogId {
                call_id: request.headers.call_id()?.to_owned(),
                local_tag: local_tag.to_owned(),
                remote_tag,
            },
            state: DialogState::Early,
            local_seq: None,
            remote_seq: Some(request.headers.cseq()?.seq),
            local_uri,
            remote_uri,
            remote_target,
            route_set: request.headers.record_routes()?,
            local_contact,
            secure: matches!(&request.uri, Uri::Sip(u) if u.secure),
        })
    }

    pub fn id(&self) -> &DialogId {
        &self.id
    }

    pub fn state(&self) -> DialogState {
        self.state
    }

    pub fn remote_target(&self) -> &Uri {
        &self.remote_target
    }

    pub fn route_set(&self) -> &[NameAddr] {
        &self.route_set
    }

    pub fn local_seq(&self) -> Option<u32> {
        self.local_seq
    }

    pub fn remote_seq(&self) -> Option<u32> {
        self.remote_seq
    }

    pub fn local_uri(&self) -> &NameAddr {
        &self.local_uri
    }

    pub fn remote_uri(&self) -> &NameAddr {
        &self.remote_uri
    }

    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Marks the dialog confirmed (the UAS sent its 2xx).
    pub fn confirm(&mut self) {
        if self.state == DialogState::Early {
            self.state = DialogState::Confirmed;
        }
    }

    pub fn terminate(&mut self) {
        self.state = DialogState::Terminated;
    }

    /// Applies a response to a request this end sent in the dialog (or to the request that
    /// created it): confirms an early dialog on 2xx, refreshes the remote target and, for
    /// the 2xx that confirms, the route set (§12.1.2, §13.2.2.4); a non-2xx final to the
    /// dialog-creating INVITE terminates an early dialog.
    pub fn handle_response(
        &mut self,
        request_method: &Method,
        response: &Response,
    ) -> Result<(), DialogError> {
        if DialogId::for_incoming_response(response).as_ref() != Some(&self.id) {
            return Err(DialogError::WrongDialog);
        }
        let status = response.status;
        if status.is_success() && is_target_refresh(request_method) {
            if let Some(target) = first_contact_uri(&response.headers)? {
                self.remote_target = target;
            }
            if self.state == DialogState::Early {
                let mut route_set = response.headers.record_routes()?;
                route_set.reverse();
                self.route_set = route_set;
            }
        }
        match self.state {
            DialogState::Early if status.is_success() => self.state = DialogState::Confirmed,
            DialogState::Early if status.as_u16() >= 300 && *request_method == Method::Invite => {
                self.state = DialogState::Terminated;
            }
            _ => {}
        }
        // 481 and 408 to an in-dialog request end the dialog (§12.2.1.2).
        if self.state == DialogState::Confirmed
            && (status == StatusCode::CALL_TRANSACTION_DOES_NOT_EXIST
                || status == StatusCode::REQUEST_TIMEOUT)
        {
            self.state = DialogState::Terminated;
        }
        Ok(())
    }

    /// Applies a request received in the dialog (§12.2.2): checks and records its CSeq,
    /// refreshes the remote target, and ends the dialog on BYE. An `OutOfOrder` error is
    /// answered with 500.
    pub fn handle_request(&mut self, request: &Request) -> Result<(), DialogError> {
        if DialogId::for_incoming_request(request).as_ref() != Some(&self.id) {
            return Err(DialogError::WrongDialog);
        }
        let seq = request.headers.cseq()?.seq;
        // ACK and CANCEL reuse the CSeq number of the INVITE they belong to.
        if !matches!(request.method, Method::Ack | Method::Cancel) {
            if let Some(last) = self.remote_seq
                && seq <= last
            {
                return Err(DialogError::OutOfOrder { received: seq, last });
            }
            self.remote_seq = Some(seq);
        }
        if is_target_refresh(&request.method)
            && let Some(target) = first_contact_uri(&request.headers)?
        {
            self.remote_target = target;
        }
        if request.method == Method::Bye {
            self.state = DialogState::Terminated;
        }
        Ok(())
    }

    /// A new in-dialog request (re-INVITE, BYE, UPDATE, INFO, REFER, ...) with the next
    /// local CSeq. `via` is the caller's Via with a fresh branch. Not for ACK or CANCEL.
    pub fn create_request(&mut self, method: Method, via: &Via) -> Request {
        let seq = self.local_seq.map_or(1, |s| s.saturating_add(1)).min(crate::typed::CSeq::MAX_SEQ);
        self.local_seq = Some(seq);
        let with_contact = is_target_refresh(&method);
        let mut request = self.base_request(method.clone(), via, seq, &method);
        if with_contact {
            request.headers.push(HeaderName::Contact, self.local_contact.to_string());
        }
        request
    }

    /// The ACK for a 2xx to the INVITE with CSeq `invite_seq` (§13.2.2.4). It is sent with
    /// [`crate::transaction::Endpoint::send_stateless`] to the remote target (or first
    /// route), and re-sent for every retransmitted 2xx.
    pub fn create_ack(&self, invite_seq: u32, via: &Via) -> Request {
        self.base_request(Method::Ack, via, invite_seq, &Method::Ack)
    }

    fn base_request(&self, method: Method, via: &Via, seq: u32, cseq_method: &Method) -> Request {
        let (uri, routes) = self.request_target();
        let mut request = Request::new(method, uri);
        let h = &mut request.headers;
        h.push(HeaderName::Via, via.to_string());
        h.push(HeaderName::MaxForwards, "70");
        for route in routes {
            h.push(HeaderName::Route, route.to_string());
        }
        h.push(HeaderName::From, self.local_uri.to_string());
        h.push(HeaderName::To, self.remote_uri.to_string());
        h.push(HeaderName::CallId, self.id.call_id.clone());
        h.push(HeaderName::CSeq, format!("{seq} {cseq_method}"));
        request
    }

    /// The Request-URI and Route headers for the next request (§12.2.1.1): loose routing
    /// when the first route has `;lr`, strict routing otherwise.
    fn request_target(&self) -> (Uri, Vec<NameAddr>) {
        let Some(first) = self.route_set.first() else {
            return (self.remote_target.clone(), Vec::new());
        };
        let loose = matches!(&first.uri, Uri::Sip(u) if u.is_loose_route());
        if loose {
            return (self.remote_target.clone(), self.route_set.clone());
        }
        // Strict routing: the first route becomes the Request-URI and the remote target
        // goes last in the Route set.
        let mut uri = first.uri.clone();
        if let Uri::Sip(u) = &mut uri {
            for p in ["method", "maddr", "ttl", "transport", "lr"] {
                u.params.remove(p);
            }
            u.headers.clear();
        }
        let mut routes: Vec<NameAddr> = self.route_set.iter().skip(1).cloned().collect();
        routes.push(NameAddr::new(self.remote_target.clone()));
        (uri, routes)
    }

    /// A response to a request in this dialog, with our To tag. Dialog-creating and target
    /// refresh responses (1xx with tag and 2xx to INVITE, SUBSCRIBE, ...) get our Contact,
    /// and those to the dialog-creating request copy its Record-Route (§12.1.1).
    pub fn create_response(&self, request: &Request, status: StatusCode) -> Response {
        let mut response = Response::for_request(request, status);
        if status != StatusCode::TRYING {
            response.set_to_tag(&self.id.local_tag);
        }
        let refresh =
            is_target_refresh(&request.method) && status != StatusCode::TRYING && status.as_u16() < 300;
        if refresh {
            let creating = request.headers.to().map(|to| to.tag().is_none()).unwrap_or(false);
            if creating {
                for rr in request.headers.get_all(&HeaderName::RecordRoute) {
                    response.headers.push(HeaderName::RecordRoute, rr);
                }
            }
            response.headers.push(HeaderName::Contact, self.local_contact.to_string());
        }
        response
    }
}

/// What an out-of-dialog request needs (§8.1.1).
#[derive(Debug, Clone)]
pub struct RequestParts {
    pub method: Method,
    pub uri: Uri,
    /// Our address with our tag.
    pub from: NameAddr,
    pub to: NameAddr,
    pub call_id: String,
    pub cseq: u32,
    pub via: Via,
    /// Our Contact; required for INVITE, SUBSCRIBE, REFER and REGISTER.
    pub contact: Option<NameAddr>,
    /// A preloaded route set, e.g. an outbound proxy.
    pub routes: Vec<NameAddr>,
}

/// Builds an out-of-dialog request, such as the INVITE of an outbound leg or a REGISTER.
pub fn new_request(parts: RequestParts) -> Request {
    let mut request = Request::new(parts.method.clone(), parts.uri);
    let h = &mut request.headers;
    h.push(HeaderName::Via, parts.via.to_string());
    h.push(HeaderName::MaxForwards, "70");
    for route in &parts.routes {
        h.push(HeaderName::Route, route.to_string());
    }
    h.push(HeaderName::From, parts.from.to_string());
    h.push(HeaderName::To, parts.to.to_string());
    h.push(HeaderName::CallId, parts.call_id);
    h.push(HeaderName::CSeq, format!("{} {}", parts.cseq, parts.method));
    if let Some(contact) = parts.contact {
        h.push(HeaderName::Contact, contact.to_string());
    }
    request
}
