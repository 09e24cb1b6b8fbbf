//! Parsing and serializing ordinary messages.

use sip::{
    Disposition, HeaderName, Host, Message, Method, ParseErrorKind, Request, Response, StartLineError,
    StatusCode, Transport, Uri, parse_datagram, parse_datagram_with,
};

const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

fn request(text: &str) -> Request {
    match parse_datagram(text.as_bytes()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => panic!("expected a request"),
    }
}

#[test]
fn parses_rfc3261_invite() {
    let r = request(INVITE);
    assert_eq!(r.method, Method::Invite);
    assert_eq!(r.uri.to_string(), "sip:bob@biloxi.example.com");
    let via = r.headers.top_via().unwrap();
    assert_eq!(via.transport, Transport::Udp);
    assert_eq!(via.host, Host::Domain("pc33.atlanta.example.com".into()));
    assert_eq!(via.rport(), Some(None));
    assert_eq!(r.headers.from().unwrap().tag(), Some("1928301774"));
    assert_eq!(r.headers.to().unwrap().display_name.as_deref(), Some("Bob"));
    assert_eq!(r.headers.call_id().unwrap(), "a84b4c76e66710@pc33.atlanta.example.com");
    assert_eq!(r.headers.cseq().unwrap().method, Method::Invite);
    assert_eq!(r.body, b"v=0\n");
    sip::check_request(&r).unwrap();
}

#[test]
fn serializes_canonically_and_round_trips() {
    let compact = "INVITE sip:bob@example.com SIP/2.0\r\n\
v: SIP/2.0/TCP  client.example.com:5060 ; branch=z9hG4bK74bf9\r\n\
f: \"Alice\"<sip:alice@example.com>;tag=9fxced76sl\r\n\
t: sip:bob@example.com\r\n\
i: 3848276298220188511@example.com\r\n\
CSeq: 1 INVITE\r\n\
m: <sip:alice@client.example.com;transport=tcp>\r\n\
k: 100rel, timer\r\n\
l: 0\r\n\r\n";
    let message = parse_datagram(compact.as_bytes()).unwrap();
    let bytes = message.to_bytes();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert_eq!(
        text,
        "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP  client.example.com:5060 ; branch=z9hG4bK74bf9\r\n\
From: \"Alice\"<sip:alice@example.com>;tag=9fxced76sl\r\n\
To: sip:bob@example.com\r\n\
Call-ID: 3848276298220188511@example.com\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@client.example.com;transport=tcp>\r\n\
Supported: 100rel, timer\r\n\
Content-Length: 0\r\n\r\n"
    );
    assert_eq!(parse_datagram(&bytes).unwrap(), message);
}

#[test]
fn folded_headers_unfold_to_single_spaces() {
    let text = "OPTIONS sip:a@b SIP/2.0\r\nSubject: first\r\n   second\r\n\tthird\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n";
    let r = request(text);
    assert_eq!(r.headers.get(&HeaderName::Subject), Some("first second third"));
}

#[test]
fn bare_lf_line_ends_are_tolerated() {
    let text = INVITE.replace("\r\n", "\n");
    let r = request(&text);
    assert_eq!(r.headers.len(), 9);
    assert_eq!(r.body, b"v=0\n");
}

#[test]
fn leading_crlf_is_skipped_and_crlf_alone_is_a_keepalive() {
    let mut with_crlf = String::from("\r\n\r\n");
    with_crlf.push_str(INVITE);
    assert!(parse_datagram(with_crlf.as_bytes()).is_ok());
    let err = parse_datagram(b"\r\n\r\n").unwrap_err();
    assert_eq!(err.kind(), &ParseErrorKind::Keepalive);
    assert_eq!(err.disposition(), Disposition::Drop);
}

#[test]
fn garbage_is_dropped_not_answered() {
    for input in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"\x00\x01\x00\x00\x21\x12\xa4\x42 stun",
        b"hello",
        b"\xff\xfe\xfd",
    ] {
        let err = parse_datagram(input).unwrap_err();
        assert_eq!(err.kind(), &ParseErrorKind::NotSip);
        assert_eq!(err.disposition(), Disposition::Drop);
    }
}

#[test]
fn broken_responses_are_dropped() {
    let err = parse_datagram(b"SIP/2.0 99 Too Low\r\nVia: SIP/2.0/UDP h\r\n\r\n").unwrap_err();
    assert_eq!(err.kind(), &ParseErrorKind::BadStartLine(StartLineError::InvalidStatusCode));
    assert_eq!(err.disposition(), Disposition::Drop);
}

#[test]
fn malformed_header_line_is_a_400_naming_the_problem() {
    let text = INVITE.replace("Max-Forwards: 70", "Max-Forwards 70");
    let err = parse_datagram(text.as_bytes()).unwrap_err();
    assert_eq!(err.kind(), &ParseErrorKind::BadHeaderLine { line: 3 });
    let Disposition::Reply { status, reason } = err.disposition() else { panic!("expected a reply") };
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reason, "Malformed Header Line");
    // The other headers are still there to build the answer from.
    let answer = Response::for_headers(err.headers().unwrap(), status).with_reason(reason);
    assert_eq!(answer.headers.call_id().unwrap(), "a84b4c76e66710@pc33.atlanta.example.com");
}

#[test]
fn invalid_typed_header_is_a_400_naming_the_header() {
    let text = INVITE.replace("CSeq: 314159 INVITE", "CSeq: x INVITE");
    let r = request(&text);
    let defect = sip::check_request(&r).unwrap_err();
    assert_eq!(defect.status(), StatusCode::BAD_REQUEST);
    assert_eq!(defect.reason_phrase(), "Invalid CSeq Header");
}

#[test]
fn oversized_headers_get_513_and_oversized_bodies_413() {
    let limits = sip::Limits { max_message_size: 200, ..Default::default() };
    let err = parse_datagram_with(INVITE.as_bytes(), &limits).unwrap_err();
    assert_eq!(err.kind(), &ParseErrorKind::TooLarge { limit: 200 });
    let status = |e: &sip::ParseError| match e.disposition() {
        Disposition::Reply { status, .. } => status,
        Disposition::Drop => panic!("expected a reply"),
    };
    assert_eq!(status(&err), StatusCode::MESSAGE_TOO_LARGE);
    let limit = INVITE.len() - 2;
    let limits = sip::Limits { max_message_size: limit, ..Default::default() };
    let err = parse_datagram_with(INVITE.as_bytes(), &limits).unwrap_err();
    assert_eq!(err.kind(), &ParseErrorKind::BodyTooLarge { limit });
    assert_eq!(status(&err), StatusCode::REQUEST_ENTITY_TOO_LARGE);
}

#[test]
fn too_many_headers_get_513() {
    let mut text = String::from("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n");
    for i in 0..300 {
        text.push_str(&format!("X-H{i}: v\r\n"));
    }
    text.push_str("\r\n");
    let err = parse_datagram(text.as_bytes()).unwrap_err();
    assert_eq!(err.kind(), &ParseErrorKind::TooManyHeaders { limit: 256 });
}

#[test]
fn ipv6_references_parse_in_uri_and_via() {
    let text = "REGISTER sip:[2001:db8::10]:5070 SIP/2.0\r\n\
To: sip:user@example.com\r\n\
From: sip:user@example.com;tag=81x2\r\n\
Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111;received=2001:db8::9:255\r\n\
Call-ID: SSG9559905523997077@hlau_4100\r\n\
Max-Forwards: 70\r\n\
Contact: \"Caller\" <sip:caller@[2001:db8::9:1]>\r\n\
CSeq: 98176 REGISTER\r\n\
Content-Length: 0\r\n\r\n";
    let r = request(text);
    let Uri::Sip(uri) = &r.uri else { panic!() };
    assert_eq!(uri.host, Host::Ipv6("2001:db8::10".parse().unwrap()));
    assert_eq!(uri.port, Some(5070));
    sip::check_request(&r).unwrap();
    // RFC 5118 §4.2: an IPv6 address without brackets is not a valid Request-URI host.
    let bad = text.replace("sip:[2001:db8::10]:5070", "sip:2001:db8::10");
    assert!(parse_datagram(bad.as_bytes()).is_err());
}

#[test]
fn multiple_values_split_across_commas_and_lines() {
    let text = "INVITE sip:a@b SIP/2.0\r\n\
Via: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/TCP b;branch=z9hG4bK2\r\n\
Via: SIP/2.0/UDP c;branch=z9hG4bK3\r\n\
Contact: \"Smith, John\" <sip:j@x;p=a>;h=\"a,b\", <sip:k@y>;q=0.1\r\n\
Route: <sip:p1;lr>,<sip:p2;lr>\r\n\
\r\n";
    let r = request(text);
    let branches: Vec<_> = r.headers.vias().unwrap().iter().map(|v| v.branch().unwrap().to_owned()).collect();
    assert_eq!(branches, ["z9hG4bK1", "z9hG4bK2", "z9hG4bK3"]);
    let contacts = r.headers.contacts().unwrap();
    assert_eq!(contacts.addresses().len(), 2);
    assert_eq!(contacts.addresses()[0].display_name.as_deref(), Some("Smith, John"));
    assert_eq!(r.headers.routes().unwrap().len(), 2);
}

#[test]
fn built_messages_serialize_with_content_length() {
    let mut response = Response::new(StatusCode::RINGING);
    response.headers.push(HeaderName::Via, "SIP/2.0/UDP h;branch=z9hG4bK1");
    response.body = b"abc".to_vec();
    let text = String::from_utf8(response.to_bytes()).unwrap();
    assert_eq!(
        text,
        "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Length: 3\r\n\r\nabc"
    );
}

#[test]
fn header_values_cannot_inject_lines() {
    let mut response = Response::new(StatusCode::OK);
    response.headers.push(HeaderName::Subject, "x\r\nEvil: 1");
    let text = String::from_utf8(response.to_bytes()).unwrap();
    assert!(text.contains("Subject: x  Evil: 1\r\n"));
}

#[test]
fn response_for_request_copies_dialog_headers_and_sets_tag() {
    let r = request(INVITE);
    let mut response = Response::for_request(&r, StatusCode::RINGING);
    response.set_to_tag("as8d7f");
    assert_eq!(response.headers.to().unwrap().tag(), Some("as8d7f"));
    assert_eq!(response.headers.cseq().unwrap(), r.headers.cseq().unwrap());
    assert_eq!(response.headers.vias().unwrap(), r.headers.vias().unwrap());
    assert!(!response.headers.contains(&HeaderName::Contact));
}

#[test]
fn unsupported_version_is_505() {
    let text = INVITE.replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia");
    let r = request(&text);
    assert_eq!(sip::check_request(&r).unwrap_err().status(), StatusCode::VERSION_NOT_SUPPORTED);
}

#[test]
fn rfc5118_ipv6_references() {
    // (Request-URI, valid?) after the cases of RFC 5118 §4.
    let cases = [
        ("sip:[2001:db8::10]", true),
        ("sip:2001:db8::10", false),
        // §4.3: without a port outside the brackets, ":5070" is part of the address.
        ("sip:[2001:db8::10:5070]", true),
        ("sip:[2001:db8::10]:5070", true),
        ("sip:[::ffff:192.0.2.10]", true),
        ("sip:[2001:db8::192.0.2.1]", true),
        ("sip:[2001:db8:::192.0.2.1]", false),
        ("sip:user@[2001:db8::10", false),
    ];
    for (uri, valid) in cases {
        assert_eq!(uri.parse::<Uri>().is_ok(), valid, "{uri}");
    }
    let Ok(Uri::Sip(u)) = "sip:[2001:db8::10:5070]".parse::<Uri>() else { panic!() };
    assert_eq!(u.port, None);
    // §4.5: received with or without brackets.
    for received in ["2001:db8::9:255", "[2001:db8::9:255]"] {
        let via: sip::Via =
            format!("SIP/2.0/UDP [2001:db8::9:1];received={received};branch=z9hG4bKas3").parse().unwrap();
        assert_eq!(via.received(), Some("2001:db8::9:255".parse().unwrap()));
    }
}
