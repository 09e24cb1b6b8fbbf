//! Stream framing for TCP and TLS.

use sip::{Frame, Framer, Limits, Message, ParseErrorKind};

const OPTIONS: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\n\
Via: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\
Content-Length: 5\r\n\r\nhello";

fn message(frame: Option<Frame>) -> Message {
    match frame {
        Some(Frame::Message(m)) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

#[test]
fn yields_nothing_until_the_body_is_complete() {
    let mut framer = Framer::default();
    framer.push(&OPTIONS[..OPTIONS.len() - 1]);
    assert_eq!(framer.next_frame().unwrap(), None);
    framer.push(&OPTIONS[OPTIONS.len() - 1..]);
    assert_eq!(message(framer.next_frame().unwrap()).body(), b"hello");
    assert_eq!(framer.next_frame().unwrap(), None);
    assert_eq!(framer.buffered(), 0);
}

#[test]
fn one_byte_at_a_time_gives_the_same_messages() {
    let mut stream = Vec::new();
    for _ in 0..3 {
        stream.extend_from_slice(OPTIONS);
    }
    let mut framer = Framer::default();
    let mut got = Vec::new();
    for b in &stream {
        framer.push(std::slice::from_ref(b));
        while let Some(frame) = framer.next_frame().unwrap() {
            got.push(frame);
        }
    }
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|f| matches!(f, Frame::Message(_))));
}

#[test]
fn several_messages_in_one_read() {
    let mut stream = OPTIONS.to_vec();
    stream.extend_from_slice(OPTIONS);
    let mut framer = Framer::default();
    framer.push(&stream);
    message(framer.next_frame().unwrap());
    message(framer.next_frame().unwrap());
    assert_eq!(framer.next_frame().unwrap(), None);
}

#[test]
fn keepalive_ping_and_pong_are_reported() {
    let mut framer = Framer::default();
    framer.push(b"\r\n\r\n");
    assert_eq!(framer.next_frame().unwrap(), Some(Frame::Ping));
    framer.push(b"\r\n");
    assert_eq!(framer.next_frame().unwrap(), Some(Frame::Pong));
    framer.push(b"\r\n\r\n");
    framer.push(OPTIONS);
    assert_eq!(framer.next_frame().unwrap(), Some(Frame::Ping));
    message(framer.next_frame().unwrap());
}

#[test]
fn half_a_ping_waits_for_the_rest() {
    let mut framer = Framer::default();
    framer.push(b"\r\n\r");
    assert_eq!(framer.next_frame().unwrap(), None);
    framer.push(b"\n");
    assert_eq!(framer.next_frame().unwrap(), Some(Frame::Ping));
}

#[test]
fn a_broken_message_is_skipped_and_the_stream_continues() {
    let mut stream =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\nBroken line\r\nContent-Length: 0\r\n\r\n".to_vec();
    stream.extend_from_slice(OPTIONS);
    let mut framer = Framer::default();
    framer.push(&stream);
    let err = framer.next_frame().unwrap_err();
    assert_eq!(err.kind(), &ParseErrorKind::BadHeaderLine { line: 3 });
    assert!(!framer.is_broken());
    message(framer.next_frame().unwrap());
}

#[test]
fn an_invalid_content_length_breaks_the_stream() {
    let mut framer = Framer::default();
    framer.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\nContent-Length: -1\r\n\r\n");
    let err = framer.next_frame().unwrap_err();
    assert_eq!(err.kind(), &ParseErrorKind::InvalidContentLength);
    assert!(framer.is_broken());
    assert!(err.headers().is_some());
    framer.push(OPTIONS);
    assert!(framer.next_frame().is_err());
}

#[test]
fn oversized_heads_and_bodies_are_refused_without_buffering_forever() {
    let limits = Limits { max_message_size: 100, ..Limits::default() };
    let mut framer = Framer::new(limits);
    framer.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n");
    assert_eq!(framer.next_frame().unwrap(), None);
    framer.push(&[b'X'; 100]);
    let err = framer.next_frame().unwrap_err();
    assert_eq!(err.kind(), &ParseErrorKind::TooLarge { limit: 100 });
    assert!(framer.is_broken());
    // The headers read so far allow a 513 answer.
    assert!(matches!(err.disposition(), sip::Disposition::Reply { .. }));

    let mut framer = Framer::new(limits);
    framer.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1000\r\n\r\n");
    let kind = framer.next_frame().unwrap_err().kind().clone();
    assert_eq!(kind, ParseErrorKind::BodyTooLarge { limit: 100 });
}

#[test]
fn garbage_on_a_stream_breaks_it() {
    let mut framer = Framer::default();
    framer.push(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(framer.next_frame().unwrap_err().kind(), &ParseErrorKind::NotSip);
    assert!(framer.is_broken());
}
