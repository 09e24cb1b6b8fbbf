//! RFC 4475 torture messages: every one must get the verdict the RFC gives it.
//!
//! The `.dat` files in `tests/torture/` are the bit-exact messages from the archive in
//! RFC 4475 Appendix A (the `test.dat` file in that archive belongs to no section and is not
//! included). Each runs through the pipeline a UAS applies: parse, the RFC 3261 checks, then
//! a UAS application policy (known methods, no extensions, SDP bodies, Digest auth).

use sip::auth::{AuthError, Credentials};
use sip::{
    Disposition, HeaderName, Message, Method, Request, StatusCode, check_register, check_request,
    check_response, parse_datagram, unsupported_extensions,
};

/// The outcome a message must reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Parses, passes every check, and the UAS would process it.
    Accept,
    /// Parses and is well formed, but the UAS application answers with this status.
    App(u16),
    /// Rejected by the parser or the RFC 3261 checks with this status.
    Reject(u16),
    /// Silently discarded (a response that is broken or not for a UA).
    Drop,
}

use Verdict::{Accept, App, Drop, Reject};

/// (file name, RFC 4475 section, verdict).
const TABLE: &[(&str, &str, Verdict)] = &[
    // 3.1.1 Valid messages.
    ("wsinv", "3.1.1.1 short tortuous INVITE", Accept),
    // A valid but unknown method: 501 from a UAS (RFC 3261 §8.2.1).
    ("intmeth", "3.1.1.2 wide range of valid characters", App(501)),
    ("esc01", "3.1.1.3 valid use of the % escaping mechanism", Accept),
    ("escnull", "3.1.1.4 escaped nulls in URIs", Accept),
    // RE%47IST%45R is not REGISTER: methods are not unescaped.
    ("esc02", "3.1.1.5 use of % when it is not an escape", App(501)),
    ("lwsdisp", "3.1.1.6 no LWS between display name and <", Accept),
    ("longreq", "3.1.1.7 long values in header fields", Accept),
    // Only the first message counts; the trailing INVITE is discarded.
    ("dblreq", "3.1.1.8 extra trailing octets in a UDP datagram", Accept),
    ("semiuri", "3.1.1.9 semicolon-separated parameters in URI user part", Accept),
    ("transports", "3.1.1.10 varied and unknown transport types", Accept),
    ("mpart01", "3.1.1.11 multipart MIME message", Accept),
    ("unreason", "3.1.1.12 unusual reason phrase", Accept),
    ("noreason", "3.1.1.13 empty reason phrase", Accept),
    // 3.1.2 Invalid messages.
    ("badinv01", "3.1.2.1 extraneous header field separators", Reject(400)),
    ("clerr", "3.1.2.2 content length larger than message", Reject(400)),
    ("ncl", "3.1.2.3 negative Content-Length", Reject(400)),
    ("scalar02", "3.1.2.4 request scalar fields with overlarge values", Reject(400)),
    ("scalarlg", "3.1.2.5 response scalar fields with overlarge values", Drop),
    ("quotbal", "3.1.2.6 unterminated quoted string in display name", Reject(400)),
    ("ltgtruri", "3.1.2.7 <> enclosing Request-URI", Reject(400)),
    ("lwsruri", "3.1.2.8 malformed SIP Request-URI (embedded LWS)", Reject(400)),
    ("lwsstart", "3.1.2.9 multiple SP separating Request-Line elements", Reject(400)),
    ("trws", "3.1.2.10 SP characters at end of Request-Line", Reject(400)),
    ("escruri", "3.1.2.11 escaped headers in SIP Request-URI", Reject(400)),
    // The RFC allows ignoring a Date the element does not use; this crate never reads Date.
    ("baddate", "3.1.2.12 invalid time zone in Date header field", Accept),
    ("regbadct", "3.1.2.13 failure to enclose name-addr URI in <>", Reject(400)),
    ("badaspec", "3.1.2.14 spaces within addr-spec", Reject(400)),
    // The archive's copy also lacks the empty line after the headers; either fault is a 400.
    ("baddn", "3.1.2.15 non-token characters in display name", Reject(400)),
    ("badvers", "3.1.2.16 unknown protocol version", Reject(505)),
    ("mismatch01", "3.1.2.17 start line and CSeq method mismatch", Reject(400)),
    // The RFC prefers 501 but accepts 400; the CSeq mismatch is found first.
    ("mismatch02", "3.1.2.18 unknown method with CSeq method mismatch", Reject(400)),
    ("bigcode", "3.1.2.19 overlarge response code", Drop),
    // 3.2 Transaction layer: parses; the transaction layer falls back to RFC 2543 matching.
    ("badbranch", "3.2.1 missing transaction identifier", Accept),
    // 3.3 Application layer.
    ("insuf", "3.3.1 missing required header fields", Reject(400)),
    ("unkscm", "3.3.2 Request-URI with unknown scheme", Reject(416)),
    ("novelsc", "3.3.3 Request-URI with known but atypical scheme", Reject(416)),
    // A registrar needs a SIP or SIPS AOR in To.
    ("unksm2", "3.3.4 unknown URI schemes in header fields", App(400)),
    ("bext01", "3.3.5 Proxy-Require and Require", App(420)),
    ("invut", "3.3.6 unknown Content-Type", App(415)),
    ("regaut01", "3.3.7 unknown authorization scheme", App(401)),
    ("multi01", "3.3.8 multiple values in single value required fields", Reject(400)),
    ("mcl01", "3.3.9 multiple Content-Length values", Reject(400)),
    // A UAC discards a response with more than one Via (RFC 3261 §8.1.3.3).
    ("bcast", "3.3.10 200 OK with broadcast Via header field value", Drop),
    // An endpoint processes the request as if Max-Forwards were positive.
    ("zeromf", "3.3.11 Max-Forwards of zero", Accept),
    ("cparam01", "3.3.12 REGISTER with a Contact header parameter", Accept),
    ("cparam02", "3.3.13 REGISTER with a url-parameter", Accept),
    ("regescrt", "3.3.14 REGISTER with a URL escaped header", Accept),
    ("sdp01", "3.3.15 unacceptable Accept offering", App(406)),
    // 3.4 Backward compatibility.
    ("inv2543", "3.4.1 INVITE with RFC 2543 syntax", Accept),
];

fn load(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/torture/{name}.dat", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// The application policy of a plain UAS: the methods it knows, no extensions, SDP and
/// multipart bodies, Digest authentication for REGISTER.
fn uas_policy(request: &Request) -> Option<u16> {
    if let Method::Other(_) = request.method {
        return Some(501);
    }
    if request.method == Method::Register {
        if let Err(defect) = check_register(request) {
            return Some(defect.status().as_u16());
        }
        // Credentials that are not Digest are answered with a fresh Digest challenge.
        if let Some(Err(AuthError::UnknownScheme(_))) =
            Credentials::find(&request.headers, "example.com", false)
        {
            return Some(401);
        }
    }
    let unsupported = unsupported_extensions(request, &[]).expect("checked Require");
    if !unsupported.is_empty() {
        return Some(420);
    }
    if let Some(ct) = request.headers.content_type().expect("checked Content-Type")
        && !(ct.is("application", "sdp") || ct.is("multipart", "mixed"))
    {
        return Some(415);
    }
    if request.method == Method::Invite {
        let accepts_sdp = request
            .headers
            .list(&HeaderName::Accept)
            .expect("Accept splits")
            .iter()
            .any(|v| v.parse::<sip::MediaType>().is_ok_and(|m| m.is("application", "sdp")));
        if request.headers.contains(&HeaderName::Accept) && !accepts_sdp {
            return Some(406);
        }
    }
    None
}

fn verdict(bytes: &[u8]) -> Verdict {
    let message = match parse_datagram(bytes) {
        Ok(m) => m,
        Err(e) => {
            return match e.disposition() {
                Disposition::Drop => Drop,
                Disposition::Reply { status, .. } => Reject(status.as_u16()),
            };
        }
    };
    match message {
        Message::Request(request) => {
            if let Err(defect) = check_request(&request) {
                return Reject(defect.status().as_u16());
            }
            match uas_policy(&request) {
                Some(status) => App(status),
                None => Accept,
            }
        }
        Message::Response(response) => {
            if check_response(&response).is_err() {
                return Drop;
            }
            let vias = response.headers.vias().expect("checked Via");
            if vias.len() != 1 { Drop } else { Accept }
        }
    }
}

#[test]
fn table_covers_all_49_messages_on_disk() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/torture");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".dat").map(str::to_owned))
        .collect();
    on_disk.sort();
    let mut in_table: Vec<String> = TABLE.iter().map(|(n, ..)| (*n).to_owned()).collect();
    in_table.sort();
    assert_eq!(on_disk, in_table);
    assert_eq!(TABLE.len(), 49);
}

#[test]
fn every_torture_message_gets_the_rfc_verdict() {
    let mut failures = Vec::new();
    for (name, section, expected) in TABLE {
        let got = verdict(&load(name));
        if got != *expected {
            failures.push(format!("{name} ({section}): expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rejected_requests_can_be_answered_with_their_own_headers() {
    for (name, _, expected) in TABLE {
        let Reject(status) = expected else { continue };
        let response = match parse_datagram(&load(name)) {
            Err(e) => sip::Response::for_headers(e.headers().unwrap(), StatusCode::new(*status).unwrap()),
            Ok(Message::Request(r)) => check_request(&r).unwrap_err().response_to(&r),
            Ok(Message::Response(_)) => panic!("{name} is a response"),
        };
        assert_eq!(response.status.as_u16(), *status, "{name}");
        assert!(response.headers.contains(&HeaderName::Via), "{name} answer lacks Via");
        let reparsed = parse_datagram(&response.to_bytes()).unwrap();
        assert!(matches!(reparsed, Message::Response(_)), "{name}");
    }
}

#[test]
fn accepted_messages_round_trip_through_the_serializer() {
    for (name, _, expected) in TABLE {
        if !matches!(expected, Accept | App(_)) {
            continue;
        }
        let first = parse_datagram(&load(name)).unwrap();
        let bytes = first.to_bytes();
        let second = parse_datagram(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(bytes, second.to_bytes(), "{name}: serializer is not idempotent");
        // Equal apart from the Content-Length the serializer always writes.
        let strip = |mut m: Message| {
            m.headers_mut().remove(&HeaderName::ContentLength);
            m
        };
        assert_eq!(strip(first), strip(second), "{name}");
    }
}

#[test]
fn torture_messages_survive_every_truncation() {
    // Prefixes of real messages are the likeliest malformed input: none may panic.
    for (name, ..) in TABLE {
        let bytes = load(name);
        for len in 0..=bytes.len() {
            let _ = parse_datagram(&bytes[..len]);
        }
    }
}

#[test]
fn dblreq_keeps_only_the_first_message() {
    let Message::Request(r) = parse_datagram(&load("dblreq")).unwrap() else { panic!("not a request") };
    assert_eq!(r.method, Method::Register);
    assert!(r.body.is_empty());
}

#[test]
fn wsinv_headers_are_unfolded_and_typed() {
    let Message::Request(r) = parse_datagram(&load("wsinv")).unwrap() else { panic!("not a request") };
    let h = &r.headers;
    assert_eq!(h.to().unwrap().tag(), Some("1918181833n"));
    assert_eq!(h.from().unwrap().display_name.as_deref(), Some("J Rosenberg \\\""));
    assert_eq!(h.max_forwards().unwrap(), Some(68));
    assert_eq!(h.cseq().unwrap().seq, 9);
    let vias = h.vias().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(
        h.get(&HeaderName::parse("NewFangledHeader").unwrap()),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(h.get(&HeaderName::parse("UnknownHeaderWithUnusualValue").unwrap()), Some(";;,,;;,;"));
    assert_eq!(h.get(&HeaderName::Subject), Some(""));
    let contacts = h.contacts().unwrap();
    assert_eq!(contacts.addresses()[0].q(), Some(0.33));
    assert_eq!(r.body.len(), 150);
}

#[test]
fn bext01_lists_both_require_and_proxy_require_tags() {
    let Message::Request(r) = parse_datagram(&load("bext01")).unwrap() else { panic!("not a request") };
    let unsupported = unsupported_extensions(&r, &["100rel"]).unwrap();
    assert_eq!(unsupported, ["nothingSupportsThis", "nothingSupportsThisEither"]);
    let answer = sip::bad_extension_response(&r, &unsupported);
    assert_eq!(
        answer.headers.get(&HeaderName::Unsupported),
        Some("nothingSupportsThis, nothingSupportsThisEither")
    );
    assert_eq!(r.headers.proxy_require().unwrap().len(), 2);
}
