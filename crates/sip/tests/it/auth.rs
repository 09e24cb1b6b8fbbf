//! Digest authentication: known answers from the RFCs and the server's nonce handling.

use std::time::{Duration, SystemTime};

use sip::auth::{
    Algorithm, AuthConfig, AuthError, AuthFailure, Authenticator, Challenge, Credentials, DigestClient,
    DigestInput, NonceSecret, Qop, Verification, ha1, request_digest,
};
use sip::{HeaderName, Message, Method, Request, StatusCode, parse_datagram};

#[test]
fn rfc2617_section_3_5_known_answer() {
    let ha1 = ha1(Algorithm::Md5, "Mufasa", "testrealm@host.com", "Circle Of Life");
    let digest = request_digest(
        &ha1,
        &DigestInput {
            algorithm: Algorithm::Md5,
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            cnonce: Some("0a4f113b"),
            qop: Some(Qop::Auth),
            nc: Some("00000001"),
            method: "GET",
            uri: "/dir/index.html",
            body: b"",
        },
    );
    assert_eq!(digest, "6629fae49393a05397450978507c4ef1");
}

#[test]
fn rfc7616_section_3_9_1_known_answers() {
    for (algorithm, expected) in [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ] {
        let challenge: Challenge = format!(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm={algorithm}, \
             nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
        )
        .parse()
        .unwrap();
        let mut client = DigestClient::new("Mufasa", "Circle of Life");
        let credentials = client.authorize(
            &challenge,
            &Method::Other("GET".into()),
            "/dir/index.html",
            b"",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        );
        assert_eq!(credentials.response, expected, "{algorithm}");
        assert_eq!(credentials.nc.as_deref(), Some("00000001"));
        assert_eq!(credentials.qop, Some(Qop::Auth));
        assert_eq!(credentials.opaque, challenge.opaque);
        // The header form parses back to the same credentials.
        let reparsed: Credentials = credentials.to_string().parse().unwrap();
        assert_eq!(reparsed, credentials);
    }
}

#[test]
fn challenge_round_trips_and_reads_stale() {
    let c: Challenge = "Digest realm=\"atlanta.com\", domain=\"sip:ss1.carrier.com\", qop=\"auth\", \
         nonce=\"f84f1cec41e6cbe5aea9c8e88d359\", opaque=\"\", stale=TRUE, algorithm=MD5"
        .parse()
        .unwrap();
    assert!(c.stale);
    assert_eq!(c.qop, [Qop::Auth]);
    assert_eq!(c.to_string().parse::<Challenge>().unwrap(), c);
}

#[test]
fn unknown_scheme_and_malformed_params_are_typed_errors() {
    assert_eq!(
        "NoOneKnowsThisScheme opaque-data=here".parse::<Credentials>(),
        Err(AuthError::UnknownScheme("NoOneKnowsThisScheme".into()))
    );
    assert_eq!(
        "Digest username=\"a\", realm=\"b\"".parse::<Credentials>(),
        Err(AuthError::MissingParam("nonce"))
    );
    assert_eq!("Digest realm=\"unterminated".parse::<Challenge>(), Err(AuthError::Malformed));
    assert_eq!(
        "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-1".parse::<Challenge>(),
        Err(AuthError::UnsupportedAlgorithm("SHA-1".into()))
    );
}

#[test]
fn a_nonce_count_is_eight_hex_digits_even_without_qop() {
    // Found by the digest fuzz target: a quoted nc that is no token was accepted without qop,
    // then written back bare, and the written credentials no longer parsed.
    let base = "Digest username=\"a\", realm=\"b\", nonce=\"n\", uri=\"sip:b\", response=\"00\"";
    assert_eq!(
        format!("{base}, nc=\"0Y4f11\u{13}b\"").parse::<Credentials>(),
        Err(AuthError::InvalidParam("nc"))
    );
    assert_eq!(format!("{base}, nc=1").parse::<Credentials>(), Err(AuthError::InvalidParam("nc")));
    // A quoted one is tolerated and written back as the token it should have been.
    let c: Credentials = format!("{base}, nc=\"0000000a\"").parse().unwrap();
    assert_eq!(c.nc.as_deref(), Some("0000000a"));
    assert_eq!(c.to_string().parse::<Credentials>().unwrap(), c);
}

fn epoch() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn register() -> Request {
    let text = "REGISTER sip:pbx.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKreg1\r\n\
From: <sip:1001@pbx.example.com>;tag=a1\r\n\
To: <sip:1001@pbx.example.com>\r\n\
Call-ID: reg-1@192.0.2.10\r\n\
CSeq: 1 REGISTER\r\n\
Contact: <sip:1001@192.0.2.10:5060>\r\n\
Content-Length: 0\r\n\r\n";
    match parse_datagram(text.as_bytes()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

struct Harness {
    server: Authenticator,
    rng: u64,
}

impl Harness {
    fn new() -> Self {
        let config =
            AuthConfig::new("pbx.example.com", NonceSecret::new(*b"0123456789abcdef0123456789abcdef"));
        Self { server: Authenticator::new(config), rng: 7 }
    }

    fn challenge(&mut self, now: SystemTime) -> sip::Response {
        let request = register();
        let mut rng = {
            let mut state = self.rng;
            move || {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                state
            }
        };
        self.rng = rng();
        self.server.challenge_response(now, &mut rng, &request, false, false)
    }

    fn verify(&mut self, now: SystemTime, request: &Request, password: &str) -> Verification {
        let credentials = Credentials::find(&request.headers, "pbx.example.com", false).unwrap().unwrap();
        let ha1 = ha1(credentials.algorithm, &credentials.username, &credentials.realm, password);
        self.server.verify(now, request, &credentials, &ha1)
    }
}

fn authorized_register(client: &mut DigestClient, challenge_response: &sip::Response) -> Request {
    let challenge = DigestClient::select_challenge(challenge_response).unwrap();
    let mut request = register();
    client.authorize_request(&mut request, &challenge, false, "0a4f113b");
    request
}

#[test]
fn server_challenges_with_sha256_first_and_md5() {
    let mut h = Harness::new();
    let response = h.challenge(epoch());
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    let challenges: Vec<Challenge> =
        response.headers.get_all(&HeaderName::WwwAuthenticate).map(|v| v.parse().unwrap()).collect();
    assert_eq!(challenges.len(), 2);
    assert_eq!(challenges[0].algorithm, Algorithm::Sha256);
    assert_eq!(challenges[1].algorithm, Algorithm::Md5);
    assert_eq!(challenges[0].nonce, challenges[1].nonce);
    assert!(challenges[0].opaque.is_some());
    // Clients pick the strongest.
    assert_eq!(DigestClient::select_challenge(&response).unwrap().algorithm, Algorithm::Sha256);
}

#[test]
fn correct_password_is_authorized_and_wrong_one_fails() {
    let mut h = Harness::new();
    let challenge = h.challenge(epoch());
    let mut client = DigestClient::new("1001", "s3cret");
    let request = authorized_register(&mut client, &challenge);
    assert_eq!(h.verify(epoch(), &request, "s3cret"), Verification::Authorized);

    let mut intruder = DigestClient::new("1001", "guess");
    let request = authorized_register(&mut intruder, &challenge);
    assert_eq!(h.verify(epoch(), &request, "s3cret"), Verification::Failed(AuthFailure::WrongResponse));
}

#[test]
fn replayed_nonce_count_is_stale_and_next_count_passes() {
    let mut h = Harness::new();
    let challenge = h.challenge(epoch());
    let mut client = DigestClient::new("1001", "s3cret");
    let first = authorized_register(&mut client, &challenge);
    assert_eq!(h.verify(epoch(), &first, "s3cret"), Verification::Authorized);
    assert_eq!(h.verify(epoch(), &first, "s3cret"), Verification::Stale);
    let second = authorized_register(&mut client, &challenge);
    assert!(second.headers.get(&HeaderName::Authorization).unwrap().contains("nc=00000002"));
    assert_eq!(h.verify(epoch(), &second, "s3cret"), Verification::Authorized);
}

#[test]
fn expired_nonce_is_stale_with_the_right_password_only() {
    let mut h = Harness::new();
    let challenge = h.challenge(epoch());
    let mut client = DigestClient::new("1001", "s3cret");
    let request = authorized_register(&mut client, &challenge);
    let later = epoch() + Duration::from_secs(301);
    assert_eq!(h.verify(later, &request, "s3cret"), Verification::Stale);
    assert_eq!(h.verify(later, &request, "other"), Verification::Failed(AuthFailure::WrongResponse));
    // Within the lifetime it is still fresh.
    assert_eq!(h.verify(epoch() + Duration::from_secs(299), &request, "s3cret"), Verification::Authorized);
}

#[test]
fn nonce_from_another_secret_is_stale() {
    let mut h = Harness::new();
    let config = AuthConfig::new("pbx.example.com", NonceSecret::new(*b"another secret"));
    let other = Authenticator::new(config);
    let mut rng = || 42;
    let foreign = other.challenge_response(epoch(), &mut rng, &register(), false, false);
    let mut client = DigestClient::new("1001", "s3cret");
    let mut request = authorized_register(&mut client, &foreign);
    // Our opaque differs too; drop it so the nonce itself is what is judged.
    let mut credentials = Credentials::find(&request.headers, "pbx.example.com", false).unwrap().unwrap();
    credentials.opaque = None;
    request.headers.set(HeaderName::Authorization, credentials.to_string());
    assert_eq!(h.verify(epoch(), &request, "s3cret"), Verification::Stale);
}

#[test]
fn digest_uri_must_match_the_request_uri() {
    let mut h = Harness::new();
    let challenge = DigestClient::select_challenge(&h.challenge(epoch())).unwrap();
    let mut client = DigestClient::new("1001", "s3cret");
    let credentials = client.authorize(&challenge, &Method::Register, "sip:elsewhere.example.com", b"", "c");
    let mut request = register();
    request.headers.push(HeaderName::Authorization, credentials.to_string());
    assert_eq!(h.verify(epoch(), &request, "s3cret"), Verification::Failed(AuthFailure::UriMismatch));
}

#[test]
fn unseen_nonce_with_high_count_is_stale() {
    // A nonce the server no longer tracks may only restart at nc=1.
    let mut h = Harness::new();
    let challenge = h.challenge(epoch());
    let mut client = DigestClient::new("1001", "s3cret");
    let _ = authorized_register(&mut client, &challenge);
    let second = authorized_register(&mut client, &challenge);
    assert_eq!(h.verify(epoch(), &second, "s3cret"), Verification::Stale);
}

#[test]
fn credentials_without_qop_are_refused_by_default() {
    let mut h = Harness::new();
    let mut challenge = DigestClient::select_challenge(&h.challenge(epoch())).unwrap();
    challenge.qop.clear();
    let mut client = DigestClient::new("1001", "s3cret");
    let mut request = register();
    client.authorize_request(&mut request, &challenge, false, "c");
    assert_eq!(h.verify(epoch(), &request, "s3cret"), Verification::Failed(AuthFailure::MissingQop));
}
