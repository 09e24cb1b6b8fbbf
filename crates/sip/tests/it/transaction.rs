//! The four transaction state machines, in simulated time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip::transaction::{CancelError, Endpoint, EndpointConfig, Event, Peer, TransactionId, Transmit};
use sip::{HeaderName, Message, Method, Request, Response, StatusCode, Transport, parse_datagram};

/// The origin of simulated time. Tests need one real `Instant` to start from; everything
/// after it is computed, never read from the clock.
#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

type Timeline = (Vec<(Duration, Transmit)>, Vec<(Duration, Event)>);

fn counter() -> Box<dyn FnMut() -> u64 + Send> {
    let mut n = 0u64;
    Box::new(move || {
        n += 1;
        n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    })
}

fn endpoint() -> Endpoint {
    Endpoint::new(EndpointConfig::default(), counter())
}

fn udp_peer() -> Peer {
    Peer::udp("192.0.2.20:5060".parse().unwrap())
}

fn tcp_peer() -> Peer {
    Peer {
        transport: Transport::Tcp,
        addr: "192.0.2.20:5060".parse().unwrap(),
        connection: Some(sip::transaction::ConnectionId(7)),
    }
}

fn parse(bytes: &[u8]) -> Message {
    parse_datagram(bytes).unwrap()
}

fn request(method: &str, branch: &str, transport: &str) -> Request {
    let text = format!(
        "{method} sip:bob@192.0.2.20 SIP/2.0\r\n\
Via: SIP/2.0/{transport} 192.0.2.10:5060;branch={branch};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@192.0.2.10>;tag=a1\r\n\
To: <sip:bob@192.0.2.20>\r\n\
Call-ID: call-1@192.0.2.10\r\n\
CSeq: 1 {method}\r\n\
Contact: <sip:alice@192.0.2.10:5060>\r\n\
Content-Length: 0\r\n\r\n"
    );
    match parse(text.as_bytes()) {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

fn response_to(request: &Request, status: u16, tag: &str) -> Response {
    let mut r = Response::for_request(request, StatusCode::new(status).unwrap());
    if status > 100 {
        r.set_to_tag(tag);
    }
    r
}

fn transmits(ep: &mut Endpoint) -> Vec<Transmit> {
    std::iter::from_fn(|| ep.poll_transmit()).collect()
}

fn events(ep: &mut Endpoint) -> Vec<Event> {
    std::iter::from_fn(|| ep.poll_event()).collect()
}

fn first_line(t: &Transmit) -> String {
    String::from_utf8_lossy(&t.payload).lines().next().unwrap_or("").to_owned()
}

/// Runs timers up to `until`, returning (offset from `start`, transmit) pairs.
fn run_until(ep: &mut Endpoint, start: Instant, until: Duration) -> Timeline {
    let mut sent = Vec::new();
    let mut evs = Vec::new();
    while let Some(at) = ep.poll_timeout() {
        if at > start + until {
            break;
        }
        ep.handle_timeout(at);
        for t in transmits(ep) {
            sent.push((at - start, t));
        }
        for e in events(ep) {
            evs.push((at - start, e));
        }
    }
    (sent, evs)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn invite_client_retransmits_on_timer_a_until_timer_b() {
    let mut ep = endpoint();
    let start = epoch();
    let invite = request("INVITE", "z9hG4bKinv1", "UDP");
    let id = ep.send_request(start, invite, udp_peer()).unwrap();
    assert_eq!(transmits(&mut ep).len(), 1);
    let (sent, evs) = run_until(&mut ep, start, Duration::from_secs(40));
    let times: Vec<_> = sent.iter().map(|(t, _)| *t).collect();
    assert_eq!(times, [ms(500), ms(1500), ms(3500), ms(7500), ms(15500), ms(31500)]);
    assert_eq!(
        evs,
        [(ms(32000), Event::Timeout { transaction: id }), (ms(32000), Event::Terminated { transaction: id }),]
    );
    assert_eq!(ep.transaction_count(), 0);
}

#[test]
fn invite_client_over_tcp_does_not_retransmit() {
    let mut ep = endpoint();
    let start = epoch();
    let id = ep.send_request(start, request("INVITE", "z9hG4bKinv2", "TCP"), tcp_peer()).unwrap();
    assert_eq!(transmits(&mut ep)[0].peer, tcp_peer());
    let (sent, evs) = run_until(&mut ep, start, Duration::from_secs(40));
    assert!(sent.is_empty());
    assert_eq!(evs[0], (ms(32000), Event::Timeout { transaction: id }));
}

#[test]
fn invite_client_stops_timer_b_on_provisional() {
    let mut ep = endpoint();
    let start = epoch();
    let invite = request("INVITE", "z9hG4bKinv3", "UDP");
    let id = ep.send_request(start, invite.clone(), udp_peer()).unwrap();
    transmits(&mut ep);
    ep.handle_message(start + ms(100), udp_peer(), response_to(&invite, 180, "b1").into());
    assert!(matches!(&events(&mut ep)[..], [Event::Response { transaction, .. }] if *transaction == id));
    let (sent, evs) = run_until(&mut ep, start, Duration::from_secs(300));
    assert!(sent.is_empty(), "no retransmission in Proceeding");
    assert!(evs.is_empty(), "no Timer B in Proceeding");
    assert_eq!(ep.transaction_count(), 1);
}

#[test]
fn non_invite_client_timer_e_caps_at_t2_until_timer_f() {
    let mut ep = endpoint();
    let start = epoch();
    let id = ep.send_request(start, request("OPTIONS", "z9hG4bKopt1", "UDP"), udp_peer()).unwrap();
    transmits(&mut ep);
    let (sent, evs) = run_until(&mut ep, start, Duration::from_secs(40));
    let times: Vec<_> = sent.iter().map(|(t, _)| t.as_millis()).collect();
    assert_eq!(times, [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]);
    assert_eq!(evs[0], (ms(32000), Event::Timeout { transaction: id }));
}

#[test]
fn non_invite_client_retransmits_at_t2_in_proceeding_then_completes_with_timer_k() {
    let mut ep = endpoint();
    let start = epoch();
    let register = request("REGISTER", "z9hG4bKreg1", "UDP");
    let id = ep.send_request(start, register.clone(), udp_peer()).unwrap();
    transmits(&mut ep);
    ep.handle_message(start + ms(10), udp_peer(), response_to(&register, 100, "").into());
    let (sent, _) = run_until(&mut ep, start, ms(9000));
    let times: Vec<_> = sent.iter().map(|(t, _)| t.as_millis()).collect();
    assert_eq!(times, [500, 4500, 8500]);
    let now = start + ms(9000);
    ep.handle_message(now, udp_peer(), response_to(&register, 200, "r1").into());
    let evs = events(&mut ep);
    assert!(matches!(&evs[..], [Event::Response { response, .. }] if response.status == StatusCode::OK));
    // Retransmitted 200s are absorbed in Completed.
    ep.handle_message(now + ms(1), udp_peer(), response_to(&register, 200, "r1").into());
    assert!(events(&mut ep).is_empty());
    let (sent, evs) = run_until(&mut ep, start, Duration::from_secs(20));
    assert!(sent.is_empty());
    assert_eq!(evs, [(ms(14000), Event::Terminated { transaction: id })]);
}

#[test]
fn invite_client_acks_non_2xx_and_reacks_retransmissions() {
    let mut ep = endpoint();
    let start = epoch();
    let invite = request("INVITE", "z9hG4bKinv4", "UDP");
    let id = ep.send_request(start, invite.clone(), udp_peer()).unwrap();
    transmits(&mut ep);
    let busy = response_to(&invite, 486, "b2");
    ep.handle_message(start + ms(50), udp_peer(), busy.clone().into());
    let sent = transmits(&mut ep);
    assert_eq!(sent.len(), 1);
    let Message::Request(ack) = parse(&sent[0].payload) else { panic!() };
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.uri, invite.uri);
    assert_eq!(ack.headers.top_via().unwrap().branch(), Some("z9hG4bKinv4"));
    assert_eq!(ack.headers.to().unwrap().tag(), Some("b2"));
    assert_eq!(ack.headers.cseq().unwrap().method, Method::Ack);
    assert_eq!(ack.headers.cseq().unwrap().seq, 1);
    assert!(
        matches!(&events(&mut ep)[..], [Event::Response { response, .. }] if response.status.as_u16() == 486)
    );
    ep.handle_message(start + ms(600), udp_peer(), busy.into());
    assert_eq!(transmits(&mut ep).len(), 1, "ACK resent");
    assert!(events(&mut ep).is_empty(), "retransmission not passed up");
    // Timer D: 32 s on UDP.
    let (_, evs) = run_until(&mut ep, start, Duration::from_secs(40));
    assert_eq!(evs, [(ms(32050), Event::Terminated { transaction: id })]);
}

#[test]
fn invite_client_passes_every_2xx_to_the_tu_until_timer_m() {
    let mut ep = endpoint();
    let start = epoch();
    let invite = request("INVITE", "z9hG4bKinv5", "UDP");
    let id = ep.send_request(start, invite.clone(), udp_peer()).unwrap();
    transmits(&mut ep);
    let ok = response_to(&invite, 200, "b3");
    ep.handle_message(start + ms(100), udp_peer(), ok.clone().into());
    assert_eq!(events(&mut ep).len(), 1);
    assert!(transmits(&mut ep).is_empty(), "the TU ACKs a 2xx, not the transaction");
    ep.handle_message(start + ms(600), udp_peer(), ok.clone().into());
    assert!(matches!(&events(&mut ep)[..], [Event::Response { transaction, .. }] if *transaction == id));
    let (_, evs) = run_until(&mut ep, start, Duration::from_secs(40));
    assert_eq!(evs, [(ms(32100), Event::Terminated { transaction: id })]);
    // After Timer M the 2xx still reaches the TU, as a stray.
    ep.handle_message(start + Duration::from_secs(41), udp_peer(), ok.into());
    assert!(matches!(&events(&mut ep)[..], [Event::StrayResponse { .. }]));
}

fn receive(ep: &mut Endpoint, now: Instant, peer: Peer, request: &Request) -> Option<TransactionId> {
    ep.handle_datagram(now, peer, &request.to_bytes());
    events(ep).into_iter().find_map(|e| match e {
        Event::Request { transaction, .. } => Some(transaction),
        _ => None,
    })
}

#[test]
fn invite_server_sends_100_trying_after_200ms_and_absorbs_retransmissions() {
    let mut ep = endpoint();
    let start = epoch();
    let invite = request("INVITE", "z9hG4bKsrv1", "UDP");
    let id = receive(&mut ep, start, udp_peer(), &invite).unwrap();
    assert!(transmits(&mut ep).is_empty());
    let (sent, _) = run_until(&mut ep, start, ms(300));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, ms(200));
    assert_eq!(first_line(&sent[0].1), "SIP/2.0 100 Trying");
    // A retransmitted INVITE gets the last provisional again and is not passed up.
    assert_eq!(receive(&mut ep, start + ms(500), udp_peer(), &invite), None);
    assert_eq!(first_line(&transmits(&mut ep)[0]), "SIP/2.0 100 Trying");
    ep.respond(start + ms(600), id, response_to(&invite, 180, "s1")).unwrap();
    assert_eq!(first_line(&transmits(&mut ep)[0]), "SIP/2.0 180 Ringing");
    receive(&mut ep, start + ms(1500), udp_peer(), &invite);
    assert_eq!(first_line(&transmits(&mut ep)[0]), "SIP/2.0 180 Ringing");
}

#[test]
fn invite_server_retransmits_non_2xx_on_timer_g_until_ack() {
    let mut ep = endpoint();
    let start = epoch();
    let invite = request("INVITE", "z9hG4bKsrv2", "UDP");
    let id = receive(&mut ep, start, udp_peer(), &invite).unwrap();
    ep.respond(start, id, response_to(&invite, 486, "s2")).unwrap();
    transmits(&mut ep);
    let (sent, _) = run_until(&mut ep, start, ms(8000));
    let times: Vec<_> = sent.iter().map(|(t, _)| t.as_millis()).collect();
    assert_eq!(times, [500, 1500, 3500, 7500]);
    // The ACK (same branch) confirms; Timer I (T4) then ends the transaction silently.
    let mut ack = request("ACK", "z9hG4bKsrv2", "UDP");
    ack.headers.set(HeaderName::To, "<sip:bob@192.0.2.20>;tag=s2");
    ep.handle_datagram(start + ms(8000), udp_peer(), &ack.to_bytes());
    assert!(events(&mut ep).is_empty(), "the ACK for a non-2xx is absorbed");
    let (sent, evs) = run_until(&mut ep, start, Duration::from_secs(60));
    assert!(sent.is_empty());
    assert_eq!(evs, [(ms(13000), Event::Terminated { transaction: id })]);
}

#[test]
fn invite_server_gives_up_on_timer_h_without_ack() {
    let mut ep = endpoint();
    let start = epoch();
    let invite = request("INVITE", "z9hG4bKsrv3", "UDP");
    let id = receive(&mut ep, start, udp_peer(), &invite).unwrap();
    ep.respond(start, id, response_to(&invite, 603, "s3")).unwrap();
    transmits(&mut ep);
    let (sent, evs) = run_until(&mut ep, start, Duration::from_secs(60));
    // G: 0.5, 1.5, 3.5, 7.5, then every T2 until H at 32 s.
    assert_eq!(sent.len(), 10);
    assert_eq!(evs[0], (ms(32000), Event::Timeout { transaction: id }));
}

#[test]
fn invite_server_retransmits_2xx_until_the_ack_arrives() {
    let mut ep = endpoint();
    let start = epoch();
    let invite = request("INVITE", "z9hG4bKsrv4", "UDP");
    let id = receive(&mut ep, start, udp_peer(), &invite).unwrap();
    ep.respond(start, id, response_to(&invite, 200, "s4")).unwrap();
    assert_eq!(transmits(&mut ep).len(), 1);
    let (sent, _) = run_until(&mut ep, start, ms(4000));
    let times: Vec<_> = sent.iter().map(|(t, _)| t.as_millis()).collect();
    assert_eq!(times, [500, 1500, 3500]);
    // A retransmitted INVITE is absorbed in Accepted (RFC 6026).
    assert_eq!(receive(&mut ep, start + ms(3600), udp_peer(), &invite), None);
    assert!(transmits(&mut ep).is_empty());
    // The ACK for a 2xx has its own branch; it is matched by dialog identifiers.
    let mut ack = request("ACK", "z9hG4bKack4", "UDP");
    ack.headers.set(HeaderName::To, "<sip:bob@192.0.2.20>;tag=s4");
    ep.handle_datagram(start + ms(4000), udp_peer(), &ack.to_bytes());
    assert!(matches!(
        &events(&mut ep)[..],
        [Event::Ack { transaction: Some(t), .. }] if *t == id
    ));
    let (sent, evs) = run_until(&mut ep, start, Duration::from_secs(60));
    assert!(sent.is_empty(), "no 2xx retransmission after the ACK");
    assert_eq!(evs, [(ms(32000), Event::Terminated { transaction: id })]);
}

#[test]
fn unacknowledged_2xx_reports_ack_timeout_at_timer_l() {
    let mut ep = endpoint();
    let start = epoch();
    let invite = request("INVITE", "z9hG4bKsrv5", "UDP");
    let id = receive(&mut ep, start, udp_peer(), &invite).unwrap();
    ep.respond(start, id, response_to(&invite, 200, "s5")).unwrap();
    transmits(&mut ep);
    let (sent, evs) = run_until(&mut ep, start, Duration::from_secs(60));
    // T1-doubling capped at T2 from 0.5 s to 32 s.
    assert_eq!(sent.len(), 10);
    assert_eq!(
        evs,
        [
            (ms(32000), Event::AckTimeout { transaction: id }),
            (ms(32000), Event::Terminated { transaction: id }),
        ]
    );
}

#[test]
fn non_invite_server_resends_final_response_until_timer_j() {
    let mut ep = endpoint();
    let start = epoch();
    let options = request("OPTIONS", "z9hG4bKsrv6", "UDP");
    let id = receive(&mut ep, start, udp_peer(), &options).unwrap();
    // In Trying a retransmission is absorbed.
    assert_eq!(receive(&mut ep, start + ms(500), udp_peer(), &options), None);
    assert!(transmits(&mut ep).is_empty());
    ep.respond(start + ms(600), id, response_to(&options, 200, "s6")).unwrap();
    assert_eq!(transmits(&mut ep).len(), 1);
    assert_eq!(receive(&mut ep, start + ms(1500), udp_peer(), &options), None);
    assert_eq!(first_line(&transmits(&mut ep)[0]), "SIP/2.0 200 OK");
    assert_eq!(
        ep.respond(start + ms(1600), id, response_to(&options, 500, "s6")),
        Err(sip::transaction::RespondError::InvalidState)
    );
    let (_, evs) = run_until(&mut ep, start, Duration::from_secs(60));
    assert_eq!(evs, [(ms(32600), Event::Terminated { transaction: id })]);
}

#[test]
fn reliable_transports_use_zero_wait_timers() {
    let mut ep = endpoint();
    let start = epoch();
    let options = request("OPTIONS", "z9hG4bKsrv7", "TCP");
    let id = receive(&mut ep, start, tcp_peer(), &options).unwrap();
    ep.respond(start, id, response_to(&options, 200, "s7")).unwrap();
    assert_eq!(transmits(&mut ep)[0].peer.connection, tcp_peer().connection);
    assert_eq!(ep.poll_timeout(), Some(start));
    ep.handle_timeout(start);
    assert_eq!(events(&mut ep), [Event::Terminated { transaction: id }]);
}

#[test]
fn cancel_for_a_pending_invite_is_answered_and_reported() {
    let mut ep = endpoint();
    let start = epoch();
    let invite = request("INVITE", "z9hG4bKsrv8", "UDP");
    let id = receive(&mut ep, start, udp_peer(), &invite).unwrap();
    ep.respond(start, id, response_to(&invite, 180, "s8")).unwrap();
    transmits(&mut ep);
    let cancel = request("CANCEL", "z9hG4bKsrv8", "UDP");
    ep.handle_datagram(start + ms(10), udp_peer(), &cancel.to_bytes());
    let sent = transmits(&mut ep);
    assert_eq!(first_line(&sent[0]), "SIP/2.0 200 OK");
    let Message::Response(ok) = parse(&sent[0].payload) else { panic!() };
    assert_eq!(ok.headers.to().unwrap().tag(), Some("s8"), "same To tag as the INVITE's responses");
    assert_eq!(ok.headers.cseq().unwrap().method, Method::Cancel);
    assert!(matches!(&events(&mut ep)[..], [Event::Cancelled { invite, .. }] if *invite == id));
    ep.respond(start + ms(20), id, response_to(&invite, 487, "s8")).unwrap();
    assert_eq!(first_line(&transmits(&mut ep)[0]), "SIP/2.0 487 Request Terminated");
}

#[test]
fn cancel_matching_nothing_gets_481() {
    let mut ep = endpoint();
    let cancel = request("CANCEL", "z9hG4bKnothing", "UDP");
    ep.handle_datagram(epoch(), udp_peer(), &cancel.to_bytes());
    assert_eq!(first_line(&transmits(&mut ep)[0]), "SIP/2.0 481 Call/Transaction Does Not Exist");
    assert!(events(&mut ep).is_empty());
}

#[test]
fn cancel_waits_for_a_provisional_response() {
    let mut ep = endpoint();
    let start = epoch();
    let invite = request("INVITE", "z9hG4bKinv6", "UDP");
    let id = ep.send_request(start, invite.clone(), udp_peer()).unwrap();
    transmits(&mut ep);
    let cancel_id = ep.cancel(start + ms(10), id).unwrap();
    assert!(transmits(&mut ep).is_empty(), "no CANCEL before a provisional (§9.1)");
    assert_eq!(ep.cancel(start + ms(11), id), Ok(cancel_id));
    ep.handle_message(start + ms(50), udp_peer(), response_to(&invite, 180, "b6").into());
    let sent = transmits(&mut ep);
    assert_eq!(sent.len(), 1);
    let Message::Request(cancel) = parse(&sent[0].payload) else { panic!() };
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(cancel.headers.top_via().unwrap().branch(), Some("z9hG4bKinv6"));
    assert_eq!(cancel.headers.to().unwrap().tag(), None);
    assert_eq!(cancel.headers.cseq().unwrap().seq, 1);
    assert_eq!(ep.client_request(cancel_id).map(|r| r.method.clone()), Some(Method::Cancel));
    // Its 200 and the INVITE's 487 are both reported, on their own transactions.
    let mut ok = Response::for_request(&cancel, StatusCode::OK);
    ok.set_to_tag("b6");
    ep.handle_message(start + ms(60), udp_peer(), ok.into());
    ep.handle_message(start + ms(61), udp_peer(), response_to(&invite, 487, "b6").into());
    let evs = events(&mut ep);
    assert!(evs.iter().any(|e| matches!(e, Event::Response { transaction, response } if *transaction == cancel_id && response.status == StatusCode::OK)));
    assert!(evs.iter().any(|e| matches!(e, Event::Response { transaction, response } if *transaction == id && response.status.as_u16() == 487)));
    assert_eq!(ep.cancel(start + ms(70), id), Err(CancelError::AlreadyFinal));
}

#[test]
fn pending_cancel_is_dropped_when_a_final_response_arrives_first() {
    let mut ep = endpoint();
    let start = epoch();
    let invite = request("INVITE", "z9hG4bKinv7", "UDP");
    let id = ep.send_request(start, invite.clone(), udp_peer()).unwrap();
    let cancel_id = ep.cancel(start, id).unwrap();
    transmits(&mut ep);
    ep.handle_message(start + ms(50), udp_peer(), response_to(&invite, 200, "b7").into());
    assert!(transmits(&mut ep).is_empty());
    assert!(events(&mut ep).contains(&Event::Terminated { transaction: cancel_id }));
}

#[test]
fn invalid_requests_get_a_stateless_400_naming_the_header() {
    let mut ep = endpoint();
    let mut options = request("OPTIONS", "z9hG4bKbad", "UDP");
    options.headers.set(HeaderName::CSeq, "x OPTIONS");
    ep.handle_datagram(epoch(), udp_peer(), &options.to_bytes());
    let sent = transmits(&mut ep);
    assert_eq!(first_line(&sent[0]), "SIP/2.0 400 Invalid CSeq Header");
    assert_eq!(sent[0].transaction, None);
    let Message::Response(r) = parse(&sent[0].payload) else { panic!() };
    assert!(r.headers.to().unwrap().tag().is_some());
    assert!(events(&mut ep).is_empty());
    // Garbage is dropped without an answer.
    ep.handle_datagram(epoch(), udp_peer(), b"\x16\x03\x01 not sip");
    assert!(transmits(&mut ep).is_empty());
}

#[test]
fn responses_with_two_vias_are_discarded() {
    let mut ep = endpoint();
    let start = epoch();
    let invite = request("INVITE", "z9hG4bKinv8", "UDP");
    ep.send_request(start, invite.clone(), udp_peer()).unwrap();
    let mut ok = response_to(&invite, 200, "b8");
    ok.headers.push(HeaderName::Via, "SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23");
    ep.handle_message(start, udp_peer(), ok.into());
    assert!(events(&mut ep).is_empty());
}

#[test]
fn rfc2543_requests_match_retransmissions_without_a_branch() {
    let mut ep = endpoint();
    let start = epoch();
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/torture/badbranch.dat")).unwrap();
    ep.handle_datagram(start, udp_peer(), &bytes);
    ep.handle_datagram(start + ms(500), udp_peer(), &bytes);
    let requests = events(&mut ep).into_iter().filter(|e| matches!(e, Event::Request { .. })).count();
    assert_eq!(requests, 1, "the retransmission matched by RFC 2543 rules");
}

#[test]
fn received_and_rport_are_stamped_on_the_top_via() {
    let mut ep = endpoint();
    let source: SocketAddr = "203.0.113.9:40123".parse().unwrap();
    let invite = request("INVITE", "z9hG4bKnat", "UDP");
    ep.handle_datagram(epoch(), Peer::udp(source), &invite.to_bytes());
    let Some(Event::Request { request, .. }) = ep.poll_event() else { panic!() };
    let via = request.headers.top_via().unwrap();
    assert_eq!(via.received(), Some(source.ip()));
    assert_eq!(via.rport(), Some(Some(40123)));
    let answer = Response::for_request(&request, StatusCode::TRYING);
    assert_eq!(answer.headers.top_via().unwrap().rport(), Some(Some(40123)));
}

#[test]
fn send_request_requires_a_magic_cookie_branch() {
    let mut ep = endpoint();
    let now = epoch();
    let bad = request("OPTIONS", "abc", "UDP");
    assert_eq!(ep.send_request(now, bad, udp_peer()), Err(sip::transaction::SendError::MissingBranch));
    let ack = request("ACK", "z9hG4bKx", "UDP");
    assert_eq!(ep.send_request(now, ack, udp_peer()), Err(sip::transaction::SendError::Ack));
    let branch = ep.new_branch();
    assert!(branch.starts_with("z9hG4bK") && branch.len() == 39);
}

#[test]
fn a_request_flood_beyond_the_limit_gets_503() {
    let config = EndpointConfig { max_server_transactions: 2, ..EndpointConfig::default() };
    let mut ep = Endpoint::new(config, counter());
    let now = epoch();
    for branch in ["z9hG4bKf1", "z9hG4bKf2", "z9hG4bKf3"] {
        ep.handle_datagram(now, udp_peer(), &request("INVITE", branch, "UDP").to_bytes());
    }
    let requests = events(&mut ep).iter().filter(|e| matches!(e, Event::Request { .. })).count();
    assert_eq!(requests, 2);
    let sent = transmits(&mut ep);
    assert_eq!(first_line(&sent[0]), "SIP/2.0 503 Service Unavailable");
    assert!(String::from_utf8_lossy(&sent[0].payload).contains("Retry-After: 5\r\n"));
}
