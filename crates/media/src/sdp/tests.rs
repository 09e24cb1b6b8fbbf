//! SDP tests: real-world bodies from the UAs SIVO meets, round trips, offer/answer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::*;

/// `sipp -sn uac` (sip-tester 3.6).
const SIPP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// baresip 1.0 offer (opus first, then G.711, telephone-events).
const BARESIP: &str = "v=0\r
o=- 1234215367 3471452962 IN IP4 192.168.1.20\r
s=-\r
c=IN IP4 192.168.1.20\r
t=0 0\r
a=tool:baresip 1.0.0\r
m=audio 10358 RTP/AVP 96 0 8 101\r
b=AS:96\r
a=rtpmap:96 opus/48000/2\r
a=fmtp:96 stereo=1;sprop-stereo=1\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-15\r
a=rtcp-rsize\r
a=ptime:20\r
a=sendrecv\r
a=label:1\r
a=ssrc:1873243598 cname:4c1a2b5e-7b44-4a1c-a4b4-09e3c5b6d8e7\r
";

/// Chrome offer as JsSIP sends it over WSS: ICE, DTLS, BUNDLE, rtcp-mux, a data channel.
const CHROME: &str = "v=0\r
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
a=group:BUNDLE 0 1\r
a=extmap-allow-mixed\r
a=msid-semantic: WMS 5a4b2a7c-8d1e-4e5f-9a0b-1c2d3e4f5a6b\r
m=audio 54100 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r
c=IN IP4 192.168.1.5\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=candidate:1467250027 1 udp 2122260223 192.168.1.5 54100 typ host generation 0 network-id 1\r
a=candidate:842163049 1 udp 1686052607 198.51.100.7 54100 typ srflx raddr 192.168.1.5 rport 54100 generation 0 network-id 1\r
a=ice-ufrag:4ZcD\r
a=ice-pwd:2/1muCWoOi3uLifh0NuRHlmn\r
a=ice-options:trickle\r
a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r
a=setup:actpass\r
a=mid:0\r
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r
a=sendrecv\r
a=msid:5a4b2a7c-8d1e-4e5f-9a0b-1c2d3e4f5a6b 7d4e0c0a-5b7c-4d3e-8f9a-0b1c2d3e4f5a\r
a=rtcp-mux\r
a=rtpmap:111 opus/48000/2\r
a=rtcp-fb:111 transport-cc\r
a=fmtp:111 minptime=10;useinbandfec=1\r
a=rtpmap:63 red/48000/2\r
a=fmtp:63 111/111\r
a=rtpmap:9 G722/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:13 CN/8000\r
a=rtpmap:110 telephone-event/48000\r
a=rtpmap:126 telephone-event/8000\r
a=ssrc:3570614608 cname:4TOk42mSjXCkVIa6\r
a=ssrc:3570614608 msid:5a4b2a7c-8d1e-4e5f-9a0b-1c2d3e4f5a6b 7d4e0c0a-5b7c-4d3e-8f9a-0b1c2d3e4f5a\r
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r
c=IN IP4 0.0.0.0\r
a=ice-ufrag:4ZcD\r
a=ice-pwd:2/1muCWoOi3uLifh0NuRHlmn\r
a=ice-options:trickle\r
a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r
a=setup:actpass\r
a=mid:1\r
a=sctp-port:5000\r
a=max-message-size:262144\r
";

/// Asterisk 18 (chan_pjsip) offer towards a phone: PCMA first, GSM, events 0-16.
const ASTERISK: &str = "v=0\r
o=- 1234567890 1234567892 IN IP4 203.0.113.10\r
s=Asterisk\r
c=IN IP4 203.0.113.10\r
t=0 0\r
m=audio 17548 RTP/AVP 8 0 3 101\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:3 GSM/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-16\r
a=ptime:20\r
a=maxptime:150\r
a=sendrecv\r
";

/// An old phone putting the call on hold the RFC 2543 way, LF line ends, session-level direction.
const OLD_HOLD: &str = "v=0\no=phone 1 2 IN IP4 10.0.0.9\ns=call\nc=IN IP4 0.0.0.0\nt=0 0\na=sendonly\nm=audio 4000 RTP/AVP 0 101\na=rtpmap:101 telephone-event/8000\n";

fn round_trip(text: &str) -> SessionDescription {
    let parsed = SessionDescription::parse(text).expect("parses");
    let written = parsed.to_string();
    assert!(written.ends_with("\r\n"));
    assert!(!written.replace("\r\n", "").contains('\n'), "bare LF in output");
    let reparsed = SessionDescription::parse(&written).expect("re-parses");
    assert_eq!(parsed, reparsed, "round trip changed the description:\n{written}");
    parsed
}

#[test]
fn sipp_offer() {
    let sdp = round_trip(SIPP);
    assert_eq!(sdp.origin.username, "user1");
    assert_eq!(sdp.origin.session_id, 53655765);
    assert_eq!(sdp.origin.version, 2353687637);
    assert_eq!(sdp.origin.address, "127.0.0.1");
    let audio = sdp.audio().unwrap();
    assert_eq!(audio.formats, vec![0]);
    assert_eq!(audio.direction, Direction::SendRecv);
    assert_eq!(audio.remote_addr(&sdp), Some("127.0.0.1:6000".parse().unwrap()));
    assert_eq!(
        negotiate(&sdp, &[CodecKind::Pcmu, CodecKind::Pcma]),
        Some(Codec { kind: CodecKind::Pcmu, payload_type: 0, dtmf_payload_type: None })
    );
    assert_eq!(negotiate(&sdp, &[CodecKind::Pcma]), None);
}

#[test]
fn baresip_offer() {
    let sdp = round_trip(BARESIP);
    assert_eq!(sdp.attributes, vec![("tool".to_owned(), Some("baresip 1.0.0".to_owned()))]);
    let audio = sdp.audio().unwrap();
    assert_eq!(audio.bandwidths, vec!["AS:96"]);
    assert_eq!(
        audio.rtpmap(96),
        Some(&RtpMap { payload_type: 96, encoding: "opus".into(), clock_rate: 48000, channels: Some(2) })
    );
    assert_eq!(audio.fmtp(101), Some("0-15"));
    assert_eq!(audio.ptime, Some(20));
    assert!(audio.has_attribute("rtcp-rsize"));
    assert_eq!(audio.attribute("label"), Some("1"));
    // Opus is first but unsupported: PCMU is the first format we speak.
    assert_eq!(
        negotiate(&sdp, &[CodecKind::Pcma, CodecKind::Pcmu]),
        Some(Codec::new(CodecKind::Pcmu).with_dtmf(101))
    );
}

#[test]
fn chrome_webrtc_offer_parses() {
    let sdp = round_trip(CHROME);
    assert_eq!(sdp.origin.session_id, 4611731400430051336);
    assert_eq!(sdp.connection, None);
    assert_eq!(sdp.media.len(), 2);
    let audio = sdp.audio().unwrap();
    assert_eq!(audio.protocol, "UDP/TLS/RTP/SAVPF");
    assert_eq!(audio.formats, vec![111, 63, 9, 0, 8, 13, 110, 126]);
    assert_eq!(audio.attribute("ice-ufrag"), Some("4ZcD"));
    assert_eq!(audio.attribute("setup"), Some("actpass"));
    assert!(audio.has_attribute("rtcp-mux"));
    assert_eq!(audio.attributes.iter().filter(|(n, _)| n == "candidate").count(), 2);
    assert_eq!(audio.remote_addr(&sdp), Some("192.168.1.5:54100".parse().unwrap()));
    let data = &sdp.media[1];
    assert_eq!(data.kind, "application");
    assert!(data.formats.is_empty());
    assert_eq!(data.other_formats, vec!["webrtc-datachannel"]);
    assert_eq!(data.remote_addr(&sdp), None, "c=0.0.0.0");
    // A plain RTP leg cannot serve DTLS-SRTP.
    assert_eq!(negotiate(&sdp, &[CodecKind::Pcmu]), None);
}

#[test]
fn asterisk_offer() {
    let sdp = round_trip(ASTERISK);
    assert_eq!(sdp.session_name, "Asterisk");
    let audio = sdp.audio().unwrap();
    assert_eq!(audio.attribute("maxptime"), Some("150"));
    assert_eq!(
        negotiate(&sdp, &[CodecKind::Pcmu, CodecKind::Pcma]),
        Some(Codec { kind: CodecKind::Pcma, payload_type: 8, dtmf_payload_type: Some(101) })
    );
}

#[test]
fn old_style_hold_and_session_direction() {
    let sdp = round_trip(OLD_HOLD);
    let audio = sdp.audio().unwrap();
    assert_eq!(sdp.direction, Some(Direction::SendOnly));
    assert_eq!(audio.direction, Direction::SendOnly, "inherited from the session");
    assert_eq!(audio.remote_addr(&sdp), None, "c=0.0.0.0 means nowhere to send");
    assert_eq!(audio.direction.answer_to(), Direction::RecvOnly);
    // Static PT 0 without an rtpmap still counts.
    assert_eq!(negotiate(&sdp, &[CodecKind::Pcmu]), Some(Codec::new(CodecKind::Pcmu).with_dtmf(101)));
}

#[test]
fn media_connection_overrides_session_and_port_zero_is_none() {
    let text = "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                m=audio 5004 RTP/AVP 0\r\nc=IN IP6 2001:db8::5\r\n\
                m=audio 0 RTP/AVP 8\r\nm=video 5006/2 RTP/AVP 31\r\nc=IN IP4 233.252.0.1/127/2\r\n";
    let sdp = round_trip(text);
    assert_eq!(sdp.media[0].remote_addr(&sdp), Some("[2001:db8::5]:5004".parse().unwrap()));
    assert_eq!(sdp.media[1].remote_addr(&sdp), None);
    assert_eq!(sdp.media[2].port_count, Some(2));
    assert_eq!(sdp.media[2].connection, Some("233.252.0.1".parse().unwrap()));
    assert!(sdp.to_string().contains("o=- 1 1 IN IP6 ::1\r\n"));
}

#[test]
fn dynamic_payload_types_and_rtpmap_overrides() {
    let text = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                m=audio 5004 RTP/AVPF 97 98 99\r\na=rtpmap:97 speex/8000\r\na=rtpmap:98 pcma/8000\r\n\
                a=rtpmap:99 TELEPHONE-EVENT/8000\r\n";
    let sdp = round_trip(text);
    assert_eq!(
        negotiate(&sdp, &[CodecKind::Pcmu, CodecKind::Pcma]),
        Some(Codec { kind: CodecKind::Pcma, payload_type: 98, dtmf_payload_type: Some(99) })
    );
    // PCMU at 16 kHz is not our PCMU.
    let odd = text.replace("pcma/8000", "PCMU/16000");
    assert_eq!(negotiate(&SessionDescription::parse(&odd).unwrap(), &[CodecKind::Pcmu]), None);
}

#[test]
fn malformed_attributes_are_kept_not_fatal() {
    let text = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\n\
                a=rtpmap:x PCMU\r\na=ptime:twenty\r\na=fmtp:zz\r\n";
    let sdp = round_trip(text);
    let audio = sdp.audio().unwrap();
    assert!(audio.rtpmaps.is_empty());
    assert_eq!(audio.ptime, None);
    assert_eq!(audio.attributes.len(), 3);
}

#[test]
fn structural_errors() {
    assert_eq!(SessionDescription::parse(""), Err(SdpError::MissingVersion));
    assert_eq!(SessionDescription::parse("v=0\r\ns=-\r\n"), Err(SdpError::MissingOrigin));
    assert_eq!(
        SessionDescription::parse("v=0\r\nhello\r\n"),
        Err(SdpError::Line { line: 2, reason: "not a <type>=<value> line" })
    );
    assert!(matches!(
        SessionDescription::parse("v=0\r\no=- 1 1 IN IP4 a\r\nm=audio port RTP/AVP 0\r\n"),
        Err(SdpError::Line { line: 3, .. })
    ));
    assert!(SessionDescription::parse("v=0\r\no=- 1 1 IN IP4 a\r\nc=IN IP4 example.com\r\n").is_err());
    assert!(SessionDescription::parse("v=1\r\no=- 1 1 IN IP4 a\r\n").is_err());
    assert!(SessionDescription::parse("v=0\r\no=- x 1 IN IP4 a\r\n").is_err());
}

#[test]
fn never_panics_on_damaged_input() {
    for text in [SIPP, BARESIP, CHROME, ASTERISK, OLD_HOLD] {
        let bytes = text.as_bytes();
        for cut in 0..bytes.len() {
            let _ = SessionDescription::parse(&String::from_utf8_lossy(bytes.get(..cut).unwrap()));
        }
        // Deterministic byte flips (a tiny LCG, no RNG needed).
        let mut state = 0x2545_f491_u32;
        for _ in 0..2000 {
            let mut damaged = bytes.to_vec();
            for _ in 0..4 {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let at = (state as usize >> 8) % damaged.len();
                damaged[at] = (state >> 3) as u8;
            }
            if let Ok(sdp) = SessionDescription::parse(&String::from_utf8_lossy(&damaged)) {
                let _ = sdp.to_string();
                let _ = negotiate(&sdp, &[CodecKind::Pcmu, CodecKind::Pcma]);
            }
        }
    }
}

#[test]
fn our_offer() {
    let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 4)), 20000);
    let text = offer(42, 1, local, &[CodecKind::Pcmu, CodecKind::Pcma], Some(101), Direction::SendRecv);
    assert_eq!(
        text,
        "v=0\r\no=- 42 1 IN IP4 198.51.100.4\r\ns=SIVO\r\nc=IN IP4 198.51.100.4\r\nt=0 0\r\n\
         m=audio 20000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    );
    // The far end negotiating our offer gets what we meant.
    let parsed = SessionDescription::parse(&text).unwrap();
    assert_eq!(
        negotiate(&parsed, &[CodecKind::Pcma, CodecKind::Pcmu]),
        Some(Codec::new(CodecKind::Pcmu).with_dtmf(101))
    );
    assert_eq!(parsed.audio().unwrap().remote_addr(&parsed), Some(local));

    let v6 =
        offer(1, 2, "[2001:db8::1]:30000".parse().unwrap(), &[CodecKind::Pcma], None, Direction::SendOnly);
    assert!(v6.contains("c=IN IP6 2001:db8::1\r\n"));
    assert!(v6.contains("m=audio 30000 RTP/AVP 8\r\n"));
    assert!(v6.contains("a=sendonly\r\n"));
    assert!(!v6.contains("telephone-event"));
}

#[test]
fn our_answer_mirrors_direction() {
    let offer_sdp =
        SessionDescription::parse(ASTERISK).unwrap().to_string().replace("a=sendrecv", "a=sendonly");
    let offer_sdp = SessionDescription::parse(&offer_sdp).unwrap();
    let codec = negotiate(&offer_sdp, &[CodecKind::Pcmu, CodecKind::Pcma]).unwrap();
    let direction = offer_sdp.audio().unwrap().direction.answer_to();
    let local: SocketAddr = "192.0.2.7:20002".parse().unwrap();
    let text = answer(7, 8, local, codec, direction);
    let parsed = SessionDescription::parse(&text).unwrap();
    let audio = parsed.audio().unwrap();
    assert_eq!(audio.formats, vec![8, 101]);
    assert_eq!(audio.direction, Direction::RecvOnly);
    assert_eq!(audio.fmtp(101), Some("0-16"));
    assert_eq!(audio.ptime, Some(20));
    assert_eq!(negotiate(&parsed, &[CodecKind::Pcmu, CodecKind::Pcma]), Some(codec));

    assert_eq!(Direction::SendRecv.answer_to(), Direction::SendRecv);
    assert_eq!(Direction::Inactive.answer_to(), Direction::Inactive);
    assert_eq!(Direction::RecvOnly.answer_to(), Direction::SendOnly);
    assert!(Direction::SendOnly.sends() && !Direction::SendOnly.receives());
}

#[test]
fn answer_keeps_the_number_of_sections() {
    let offered = SessionDescription::parse(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
         m=video 5006 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=audio 5004 RTP/AVP 0\r\n",
    )
    .unwrap();
    let codec = negotiate(&offered, &[CodecKind::Pcmu]).unwrap();
    let text =
        answer_to_offer(&offered, 1, 1, "192.0.2.9:20000".parse().unwrap(), codec, Direction::SendRecv);
    let parsed = SessionDescription::parse(&text).unwrap();
    assert_eq!(parsed.media.len(), 2);
    assert_eq!((parsed.media[0].kind.as_str(), parsed.media[0].port), ("video", 0));
    assert_eq!((parsed.media[1].kind.as_str(), parsed.media[1].port), ("audio", 20000));
}
