//! Fuzzes the datagram parser: it must never panic, every typed view of a parsed message
//! must be safe to read, and the canonical serialization must parse back to the same message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::{HeaderName, Message, parse_datagram};

fuzz_target!(|data: &[u8]| {
    let message = match parse_datagram(data) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.disposition();
            if let Some(headers) = e.headers() {
                let _ = sip::Response::for_headers(headers, sip::StatusCode::BAD_REQUEST).to_bytes();
            }
            return;
        }
    };
    let headers = message.headers();
    let _ = headers.vias();
    let _ = headers.top_via();
    let _ = headers.from();
    let _ = headers.to();
    let _ = headers.call_id();
    let _ = headers.cseq();
    let _ = headers.max_forwards();
    let _ = headers.expires();
    let _ = headers.contacts();
    let _ = headers.routes();
    let _ = headers.record_routes();
    let _ = headers.content_type();
    let _ = headers.require();
    let _ = headers.supported();
    let _ = headers.allow();
    for value in headers.get_all(&HeaderName::Authorization) {
        let _ = value.parse::<sip::auth::Credentials>();
    }
    match &message {
        Message::Request(r) => {
            let _ = sip::check_request(r);
            let _ = sip::check_register(r);
        }
        Message::Response(r) => {
            let _ = sip::check_response(r);
        }
    }
    let bytes = message.to_bytes();
    let mut again = parse_datagram(&bytes).expect("canonical output must parse");
    let mut original = message;
    original.headers_mut().remove(&HeaderName::ContentLength);
    again.headers_mut().remove(&HeaderName::ContentLength);
    assert_eq!(original, again, "round trip changed the message");
});
