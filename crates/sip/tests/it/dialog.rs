//! Dialog state, routing and in-dialog requests, and a whole call between two endpoints
//! over a lossy simulated network.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip::dialog::{Dialog, DialogError, DialogId, DialogState, RequestParts, new_request};
use sip::transaction::{Endpoint, EndpointConfig, Event, Peer};
use sip::{HeaderName, Host, Message, Method, NameAddr, Request, Response, StatusCode, Transport, Uri, Via};

fn na(s: &str) -> NameAddr {
    s.parse().unwrap()
}

fn uri(s: &str) -> Uri {
    s.parse().unwrap()
}

fn via(branch: &str) -> Via {
    Via::new(Transport::Udp, Host::Ipv4("192.0.2.10".parse().unwrap()), Some(5060), branch)
}

fn invite() -> Request {
    new_request(RequestParts {
        method: Method::Invite,
        uri: uri("sip:bob@biloxi.example.com"),
        from: na("Alice <sip:alice@atlanta.example.com>;tag=a1"),
        to: na("<sip:bob@biloxi.example.com>"),
        call_id: "call-7@192.0.2.10".into(),
        cseq: 10,
        via: via("z9hG4bKinv"),
        contact: Some(na("<sip:alice@192.0.2.10:5060>")),
        routes: vec![],
    })
}

fn answer(request: &Request, status: u16, record_route: &[&str], contact: &str) -> Response {
    let mut r = Response::for_request(request, StatusCode::new(status).unwrap());
    r.set_to_tag("b1");
    for rr in record_route {
        r.headers.push(HeaderName::RecordRoute, *rr);
    }
    r.headers.push(HeaderName::Contact, contact);
    r
}

#[test]
fn uac_dialog_goes_from_early_to_confirmed_with_reversed_route_set() {
    let invite = invite();
    let ringing =
        answer(&invite, 180, &["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"], "<sip:bob@192.0.2.20>");
    let contact = na("<sip:alice@192.0.2.10:5060>");
    let mut dialog = Dialog::new_uac(&invite, &ringing, contact).unwrap();
    assert_eq!(dialog.state(), DialogState::Early);
    assert_eq!(dialog.id().remote_tag, "b1");
    let routes: Vec<String> = dialog.route_set().iter().map(|r| r.uri.to_string()).collect();
    assert_eq!(routes, ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]);
    // The 2xx confirms, and its Contact and Record-Route win.
    let ok = answer(&invite, 200, &["<sip:p1.example.com;lr>"], "<sip:bob@192.0.2.21>");
    dialog.handle_response(&Method::Invite, &ok).unwrap();
    assert_eq!(dialog.state(), DialogState::Confirmed);
    assert_eq!(dialog.remote_target(), &uri("sip:bob@192.0.2.21"));
    assert_eq!(dialog.route_set().len(), 1);
}

#[test]
fn in_dialog_requests_use_loose_routing_and_increment_cseq() {
    let invite = invite();
    let ok =
        answer(&invite, 200, &["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"], "<sip:bob@192.0.2.20>");
    let mut dialog = Dialog::new_uac(&invite, &ok, na("<sip:alice@192.0.2.10:5060>")).unwrap();
    let ack = dialog.create_ack(10, &via("z9hG4bKack"));
    assert_eq!(ack.headers.cseq().unwrap().to_string(), "10 ACK");
    assert_eq!(ack.uri, uri("sip:bob@192.0.2.20"));
    let reinvite = dialog.create_request(Method::Invite, &via("z9hG4bKre"));
    assert_eq!(reinvite.headers.cseq().unwrap().seq, 11);
    assert_eq!(reinvite.uri, uri("sip:bob@192.0.2.20"));
    let routes: Vec<&str> = reinvite.headers.get_all(&HeaderName::Route).collect();
    assert_eq!(routes, ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]);
    assert_eq!(reinvite.headers.to().unwrap().tag(), Some("b1"));
    assert_eq!(reinvite.headers.from().unwrap().tag(), Some("a1"));
    assert!(reinvite.headers.contains(&HeaderName::Contact));
    let bye = dialog.create_request(Method::Bye, &via("z9hG4bKbye"));
    assert_eq!(bye.headers.cseq().unwrap().seq, 12);
    assert!(!bye.headers.contains(&HeaderName::Contact));
    sip::check_request(&bye).unwrap();
}

#[test]
fn strict_route_moves_the_remote_target_to_the_last_route() {
    let invite = invite();
    let ok = answer(&invite, 200, &["<sip:strict.example.com;transport=tcp>"], "<sip:bob@192.0.2.20>");
    let mut dialog = Dialog::new_uac(&invite, &ok, na("<sip:alice@192.0.2.10>")).unwrap();
    let bye = dialog.create_request(Method::Bye, &via("z9hG4bKbye"));
    assert_eq!(bye.uri, uri("sip:strict.example.com"));
    let routes: Vec<&str> = bye.headers.get_all(&HeaderName::Route).collect();
    assert_eq!(routes, ["<sip:bob@192.0.2.20>"]);
}

fn incoming_invite() -> Request {
    let mut r = invite();
    r.headers.push(HeaderName::RecordRoute, "<sip:p1.example.com;lr>");
    r
}

#[test]
fn uas_dialog_checks_cseq_order_and_refreshes_target() {
    let request = incoming_invite();
    let mut dialog = Dialog::new_uas(&request, "b9", na("<sip:bob@192.0.2.20>")).unwrap();
    assert_eq!(dialog.state(), DialogState::Early);
    assert_eq!(dialog.remote_seq(), Some(10));
    assert_eq!(dialog.local_seq(), None);
    let ringing = dialog.create_response(&request, StatusCode::RINGING);
    assert_eq!(ringing.headers.to().unwrap().tag(), Some("b9"));
    assert_eq!(ringing.headers.get(&HeaderName::RecordRoute), Some("<sip:p1.example.com;lr>"));
    assert!(ringing.headers.contains(&HeaderName::Contact));
    dialog.confirm();
    assert_eq!(dialog.state(), DialogState::Confirmed);

    // A re-INVITE from the caller with a new Contact refreshes the target.
    let mut reinvite = invite();
    reinvite.headers.set(HeaderName::To, "<sip:bob@biloxi.example.com>;tag=b9");
    reinvite.headers.set(HeaderName::CSeq, "11 INVITE");
    reinvite.headers.set(HeaderName::Contact, "<sip:alice@198.51.100.7:5060>");
    dialog.handle_request(&reinvite).unwrap();
    assert_eq!(dialog.remote_target(), &uri("sip:alice@198.51.100.7:5060"));
    assert_eq!(dialog.handle_request(&reinvite), Err(DialogError::OutOfOrder { received: 11, last: 11 }));
    // Our own first request starts the local sequence.
    let bye = dialog.create_request(Method::Bye, &via("z9hG4bKb"));
    assert_eq!(bye.headers.cseq().unwrap().seq, 1);
    assert_eq!(bye.headers.get_all(&HeaderName::Route).collect::<Vec<_>>(), ["<sip:p1.example.com;lr>"]);
}

#[test]
fn requests_of_other_dialogs_are_refused() {
    let request = incoming_invite();
    let mut dialog = Dialog::new_uas(&request, "b9", na("<sip:bob@192.0.2.20>")).unwrap();
    let mut other = invite();
    other.headers.set(HeaderName::To, "<sip:bob@biloxi.example.com>;tag=zz");
    assert_eq!(dialog.handle_request(&other), Err(DialogError::WrongDialog));
}

#[test]
fn non_2xx_final_ends_an_early_dialog() {
    let invite = invite();
    let ringing = answer(&invite, 180, &[], "<sip:bob@192.0.2.20>");
    let mut dialog = Dialog::new_uac(&invite, &ringing, na("<sip:alice@192.0.2.10>")).unwrap();
    let busy = answer(&invite, 486, &[], "<sip:bob@192.0.2.20>");
    dialog.handle_response(&Method::Invite, &busy).unwrap();
    assert_eq!(dialog.state(), DialogState::Terminated);
}

// ---- A whole call over a lossy network ------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Alice,
    Bob,
}

/// Two endpoints and the packets between them, advanced in simulated time.
struct Pair {
    alice: Endpoint,
    bob: Endpoint,
    now: Instant,
    start: Instant,
    in_flight: Vec<(Instant, Side, Vec<u8>)>,
    /// First lines of messages to drop, once each.
    drop_once: Vec<String>,
    log: Vec<(Duration, Side, String)>,
}

const ALICE: &str = "192.0.2.10:5060";
const BOB: &str = "192.0.2.20:5060";
const LATENCY: Duration = Duration::from_millis(20);

fn rng(seed: u64) -> Box<dyn FnMut() -> u64 + Send> {
    let mut s = seed;
    Box::new(move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        s
    })
}

impl Pair {
    fn new() -> Self {
        #[allow(clippy::disallowed_methods)]
        let start = Instant::now();
        Self {
            alice: Endpoint::new(EndpointConfig::default(), rng(1)),
            bob: Endpoint::new(EndpointConfig::default(), rng(2)),
            now: start,
            start,
            in_flight: Vec::new(),
            drop_once: Vec::new(),
            log: Vec::new(),
        }
    }

    fn peer_of(side: Side) -> Peer {
        Peer::udp(match side {
            Side::Alice => ALICE.parse::<SocketAddr>().unwrap(),
            Side::Bob => BOB.parse::<SocketAddr>().unwrap(),
        })
    }

    fn endpoint(&mut self, side: Side) -> &mut Endpoint {
        match side {
            Side::Alice => &mut self.alice,
            Side::Bob => &mut self.bob,
        }
    }

    /// Moves transmits into the network, dropping the ones scheduled to be lost.
    fn flush(&mut self) {
        for from in [Side::Alice, Side::Bob] {
            while let Some(t) = self.endpoint(from).poll_transmit() {
                let to = if from == Side::Alice { Side::Bob } else { Side::Alice };
                let line = String::from_utf8_lossy(&t.payload).lines().next().unwrap_or("").to_owned();
                let lost = match self.drop_once.iter().position(|d| *d == line) {
                    Some(i) => {
                        self.drop_once.remove(i);
                        true
                    }
                    None => false,
                };
                self.log.push((
                    self.now - self.start,
                    from,
                    format!("{}{line}", if lost { "LOST " } else { "" }),
                ));
                if !lost {
                    self.in_flight.push((self.now + LATENCY, to, t.payload));
                }
            }
        }
    }

    /// Runs until `until` past the start, returning the events each side saw.
    fn drive(&mut self, until: Duration) -> Vec<(Side, Event)> {
        let mut events = Vec::new();
        loop {
            self.flush();
            let deadline = self.start + until;
            let next_packet = self.in_flight.iter().map(|(t, ..)| *t).min();
            let next_timer = [self.alice.poll_timeout(), self.bob.poll_timeout()].into_iter().flatten().min();
            let Some(next) = [next_packet, next_timer].into_iter().flatten().min() else {
                break;
            };
            if next > deadline {
                self.now = deadline;
                break;
            }
            self.now = next;
            if next_packet == Some(next) {
                let idx = self.in_flight.iter().position(|(t, ..)| *t == next).unwrap();
                let (_, to, bytes) = self.in_flight.remove(idx);
                let from = if to == Side::Alice { Side::Bob } else { Side::Alice };
                let now = self.now;
                self.endpoint(to).handle_datagram(now, Self::peer_of(from), &bytes);
            } else {
                let now = self.now;
                self.alice.handle_timeout(now);
                self.bob.handle_timeout(now);
            }
            for side in [Side::Alice, Side::Bob] {
                while let Some(e) = self.endpoint(side).poll_event() {
                    events.push((side, e));
                }
            }
        }
        events
    }
}

fn bob_uri() -> Uri {
    uri(&format!("sip:bob@{BOB}"))
}

#[test]
fn a_call_survives_a_lost_invite_and_a_lost_200() {
    let mut pair = Pair::new();
    pair.drop_once.push(format!("INVITE {} SIP/2.0", bob_uri()));
    pair.drop_once.push("SIP/2.0 200 OK".into());

    // Alice calls.
    let branch = pair.alice.new_branch();
    let tag = pair.alice.new_tag();
    let call_id = pair.alice.new_call_id(Some("192.0.2.10"));
    let alice_contact = na(&format!("<sip:alice@{ALICE}>"));
    let invite = new_request(RequestParts {
        method: Method::Invite,
        uri: bob_uri(),
        from: na(&format!("<sip:alice@{ALICE}>;tag={tag}")),
        to: na(&format!("<{}>", bob_uri())),
        call_id,
        cseq: 1,
        via: via(&branch),
        contact: Some(alice_contact.clone()),
        routes: vec![],
    });
    let now = pair.now;
    let invite_tx = pair.alice.send_request(now, invite.clone(), Pair::peer_of(Side::Bob)).unwrap();

    // Bob sees it only after Timer A retransmits it.
    let events = pair.drive(Duration::from_millis(600));
    let (bob_tx, bob_request) = events
        .into_iter()
        .find_map(|(side, e)| match e {
            Event::Request { transaction, request, .. } if side == Side::Bob => Some((transaction, request)),
            _ => None,
        })
        .expect("bob got the retransmitted INVITE");
    let bob_tag = pair.bob.new_tag();
    let mut bob_dialog = Dialog::new_uas(&bob_request, &bob_tag, na(&format!("<{}>", bob_uri()))).unwrap();
    let now = pair.now;
    pair.bob.respond(now, bob_tx, bob_dialog.create_response(&bob_request, StatusCode::RINGING)).unwrap();
    pair.bob.respond(now, bob_tx, bob_dialog.create_response(&bob_request, StatusCode::OK)).unwrap();
    bob_dialog.confirm();

    // Alice gets 180, then the 200 that Bob retransmits after the first was lost.
    let events = pair.drive(Duration::from_millis(1500));
    let responses: Vec<Response> = events
        .into_iter()
        .filter_map(|(side, e)| match e {
            Event::Response { transaction, response } if side == Side::Alice && transaction == invite_tx => {
                Some(response)
            }
            _ => None,
        })
        .collect();
    let statuses: Vec<u16> = responses.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(statuses, [180, 200]);
    let mut alice_dialog = Dialog::new_uac(&invite, &responses[0], alice_contact).unwrap();
    alice_dialog.handle_response(&Method::Invite, &responses[1]).unwrap();
    assert_eq!(alice_dialog.state(), DialogState::Confirmed);
    assert_eq!(
        alice_dialog.id(),
        &DialogId {
            call_id: bob_dialog.id().call_id.clone(),
            local_tag: bob_dialog.id().remote_tag.clone(),
            remote_tag: bob_dialog.id().local_tag.clone(),
        }
    );

    // The ACK for the 2xx goes outside any transaction and stops Bob's retransmissions.
    let ack_branch = pair.alice.new_branch();
    let ack = alice_dialog.create_ack(1, &via(&ack_branch));
    pair.alice.send_stateless(Pair::peer_of(Side::Bob), &Message::Request(ack));
    let events = pair.drive(Duration::from_secs(3));
    assert!(events.iter().any(|(side, e)| *side == Side::Bob
        && matches!(e, Event::Ack { transaction: Some(t), .. } if *t == bob_tx)));

    // Alice hangs up.
    let bye_branch = pair.alice.new_branch();
    let bye = alice_dialog.create_request(Method::Bye, &via(&bye_branch));
    let now = pair.now;
    let bye_tx = pair.alice.send_request(now, bye, Pair::peer_of(Side::Bob)).unwrap();
    let events = pair.drive(Duration::from_secs(4));
    let (bob_bye_tx, bob_bye) = events
        .into_iter()
        .find_map(|(side, e)| match e {
            Event::Request { transaction, request, .. } if side == Side::Bob => Some((transaction, request)),
            _ => None,
        })
        .expect("bob got the BYE");
    bob_dialog.handle_request(&bob_bye).unwrap();
    assert_eq!(bob_dialog.state(), DialogState::Terminated);
    let now = pair.now;
    pair.bob.respond(now, bob_bye_tx, bob_dialog.create_response(&bob_bye, StatusCode::OK)).unwrap();
    let events = pair.drive(Duration::from_secs(60));
    assert!(events.iter().any(|(side, e)| *side == Side::Alice
        && matches!(e, Event::Response { transaction, response } if *transaction == bye_tx && response.status == StatusCode::OK)));
    assert!(
        !events.iter().any(|(_, e)| matches!(e, Event::AckTimeout { .. } | Event::Timeout { .. })),
        "{events:?}"
    );
    assert_eq!(pair.alice.transaction_count(), 0);
    assert_eq!(pair.bob.transaction_count(), 0);

    let lost: Vec<_> = pair.log.iter().filter(|(_, _, l)| l.starts_with("LOST")).collect();
    assert_eq!(lost.len(), 2);
}
