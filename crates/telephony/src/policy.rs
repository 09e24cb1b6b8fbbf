//! What a UAS answers before any application logic (RFC 3261 §8.2): methods it does not
//! implement, extensions it does not support, bodies it cannot read.

use sip::{HeaderName, Method, Request, Response, StatusCode};

/// Methods this server handles outside a dialog, for `Allow`.
pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER";

/// The response that ends the request here, if any.
pub(crate) fn precheck(request: &Request) -> Option<Response> {
    if let Method::Other(_) = request.method {
        return Some(with_allow(Response::for_request(request, StatusCode::NOT_IMPLEMENTED)));
    }
    if request.method == Method::Register
        && let Err(defect) = sip::check_register(request)
    {
        return Some(defect.response_to(request));
    }
    // We implement no option tags; Require/Proxy-Require naming any is refused (§8.2.2.3).
    match sip::unsupported_extensions(request, &[]) {
        Ok(tags) if !tags.is_empty() => return Some(sip::bad_extension_response(request, &tags)),
        Ok(_) => {}
        Err(e) => {
            return Some(
                Response::for_request(request, StatusCode::BAD_REQUEST).with_reason(e.reason_phrase()),
            );
        }
    }
    if let Ok(proxy) = request.headers.proxy_require()
        && !proxy.is_empty()
    {
        return Some(sip::bad_extension_response(request, &proxy));
    }
    if let Ok(Some(ct)) = request.headers.content_type()
        && !(ct.is("application", "sdp") || ct.is("multipart", "mixed"))
    {
        let mut r = Response::for_request(request, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        r.headers.push(HeaderName::Accept, "application/sdp");
        return Some(r);
    }
    if request.method == Method::Invite && request.headers.contains(&HeaderName::Accept) {
        let accepts_sdp = request.headers.list(&HeaderName::Accept).is_ok_and(|values| {
            values.iter().any(|v| {
                v.parse::<sip::MediaType>()
                    .is_ok_and(|m| m.is("application", "sdp") || m.is("application", "*") || m.is("*", "*"))
            })
        });
        if !accepts_sdp {
            let mut r = Response::for_request(request, StatusCode::NOT_ACCEPTABLE);
            r.headers.push(HeaderName::Accept, "application/sdp");
            return Some(r);
        }
    }
    None
}

/// Answers methods that need no application state.
pub(crate) fn simple(request: &Request) -> Option<Response> {
    match request.method {
        Method::Options => {
            let mut r = with_allow(Response::for_request(request, StatusCode::OK));
            r.headers.push(HeaderName::Accept, "application/sdp");
            Some(r)
        }
        // In-dialog methods outside any dialog we know (there are no dialogs yet).
        Method::Bye | Method::Info | Method::Update | Method::Prack | Method::Notify => {
            Some(Response::for_request(request, StatusCode::CALL_TRANSACTION_DOES_NOT_EXIST))
        }
        Method::Subscribe | Method::Refer | Method::Message | Method::Publish => {
            Some(with_allow(Response::for_request(request, StatusCode::METHOD_NOT_ALLOWED)))
        }
        _ => None,
    }
}

pub(crate) fn with_allow(mut response: Response) -> Response {
    response.headers.push(HeaderName::Allow, ALLOW);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> Request {
        match sip::parse_datagram(text.replace('\n', "\r\n").as_bytes()).unwrap() {
            sip::Message::Request(r) => r,
            sip::Message::Response(_) => panic!("response"),
        }
    }

    const HEAD: &str = "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: <sip:c@d>\nCall-ID: x\nMax-Forwards: 70\n";

    #[test]
    fn unknown_methods_get_501_and_extensions_420() {
        let r = req(&format!("FOO sip:x@y SIP/2.0\n{HEAD}CSeq: 1 FOO\nContent-Length: 0\n\n"));
        assert_eq!(precheck(&r).unwrap().status.as_u16(), 501);
        let r = req(&format!(
            "OPTIONS sip:x@y SIP/2.0\n{HEAD}CSeq: 1 OPTIONS\nRequire: foo\nContent-Length: 0\n\n"
        ));
        let answer = precheck(&r).unwrap();
        assert_eq!(answer.status.as_u16(), 420);
        assert_eq!(answer.headers.get(&HeaderName::Unsupported), Some("foo"));
        let r = req(&format!("OPTIONS sip:x@y SIP/2.0\n{HEAD}CSeq: 1 OPTIONS\nContent-Length: 0\n\n"));
        assert!(precheck(&r).is_none());
        assert_eq!(simple(&r).unwrap().status.as_u16(), 200);
    }
}
