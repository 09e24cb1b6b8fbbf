//! A WebRTC leg bridged to a plain RTP leg on loopback. The "browser" is a full-ICE str0m
//! peer (what Chrome is to us: offerer, controlling, DTLS, SRTP) driven on its own thread.

use std::f64::consts::TAU;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use media::dtmf::{TelephoneEvent, digit_packets};
use media::rtp::{self, RtpPacket};
use media::{Codec, CodecKind, Media, MediaConfig, MediaError, MediaEvent};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::{Codec as WebRtcCodec, CodecExtra, FormatParams};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, TelephoneEvent as WebRtcEvent};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn tone_frame(frequency: f64, index: usize) -> Vec<i16> {
    (0..160).map(|i| ((TAU * frequency * (index * 160 + i) as f64 / 8000.0).sin() * 8000.0) as i16).collect()
}

fn tone_power(samples: &[i16], frequency: f64) -> f64 {
    let coeff = 2.0 * (TAU * frequency / 8000.0).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2).sqrt() / samples.len() as f64
}

/// What the browser heard.
#[derive(Default)]
struct Heard {
    connected: bool,
    audio: Vec<Vec<u8>>,
    events: Vec<WebRtcEvent>,
}

struct Browser {
    /// Speaks Opus only (encodes a 48 kHz tone), not G.711.
    opus: bool,
    rtc: Rtc,
    socket: std::net::UdpSocket,
    local: SocketAddr,
    mid: Mid,
    pending: SdpPendingOffer,
}

/// A browser-like peer offering PCMU, PCMA and telephone-event/8000, as SIVO's softphone does.
fn browser() -> (Browser, String) {
    browser_speaking(false)
}

/// With `opus`, a peer offering only Opus and telephone-event/8000.
fn browser_speaking(opus: bool) -> (Browser, String) {
    let socket = std::net::UdpSocket::bind((LOCALHOST, 0)).unwrap();
    let local = socket.local_addr().unwrap();
    let mut config = RtcConfig::new().clear_codecs();
    {
        let codecs = config.codec_config();
        if opus {
            codecs.enable_opus(true, false);
        } else {
            codecs.enable_pcmu(true, false);
            codecs.enable_pcma(true, false);
        }
        codecs.add_config(
            101.into(),
            None,
            WebRtcCodec::Tele,
            Frequency::EIGHT_KHZ,
            None,
            FormatParams::parse_line("0-16"),
        );
        if opus {
            // As Chrome does: events at the Opus clock too.
            codecs.add_config(
                110.into(),
                None,
                WebRtcCodec::Tele,
                Frequency::FORTY_EIGHT_KHZ,
                None,
                FormatParams::parse_line("0-16"),
            );
        }
    }
    let mut rtc = config.build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
    let mut change = rtc.sdp_api();
    let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let (offer, pending) = change.apply().unwrap();
    (Browser { opus, rtc, socket, local, mid, pending }, offer.to_sdp_string())
}

impl Browser {
    /// Runs the peer for `duration`: once connected, 50 frames of a 400 Hz tone in PCMU (or
    /// Opus from 48 kHz), then the key 7.
    fn run(mut self, answer: &str, duration: Duration) -> Heard {
        self.rtc.sdp_api().accept_answer(self.pending, SdpAnswer::from_sdp_string(answer).unwrap()).unwrap();
        let start = Instant::now();
        let mut heard = Heard::default();
        let mut buf = vec![0u8; 2000];
        let mut connected_at = None;
        let mut frames_sent = 0usize;
        let mut key_sent = false;
        let mut opus = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
        let (audio_pt, frame_ticks, clock) =
            if self.opus { (111, 960, Frequency::FORTY_EIGHT_KHZ) } else { (0, 160, Frequency::EIGHT_KHZ) };
        loop {
            let timeout = loop {
                match self.rtc.poll_output().unwrap() {
                    Output::Timeout(at) => break at,
                    Output::Transmit(t) => {
                        self.socket.send_to(&t.contents, t.destination).unwrap();
                    }
                    Output::Event(Event::Connected) => {
                        heard.connected = true;
                        connected_at = Some(Instant::now());
                    }
                    Output::Event(Event::MediaData(data)) => match data.codec_extra {
                        CodecExtra::Tele(event) => heard.events.push(event),
                        _ => heard.audio.push(data.data.to_vec()),
                    },
                    Output::Event(_) => {}
                }
            };
            let now = Instant::now();
            if now - start > duration {
                return heard;
            }
            let mut next_frame = timeout;
            if let Some(connected) = connected_at {
                let due = connected + Duration::from_millis(20) * frames_sent as u32;
                if frames_sent < 50 && now >= due {
                    let mut payload = Vec::new();
                    if self.opus {
                        let wideband: Vec<i16> = (0..960)
                            .map(|i| {
                                let n = (frames_sent * 960 + i) as f64;
                                ((TAU * 400.0 * n / 48_000.0).sin() * 8000.0) as i16
                            })
                            .collect();
                        payload = opus.encode_vec(&wideband, 1500).unwrap();
                    } else {
                        CodecKind::Pcmu.encode(&tone_frame(400.0, frames_sent), &mut payload);
                    }
                    let time = MediaTime::new(frames_sent as u64 * frame_ticks, clock);
                    self.rtc.writer(self.mid).unwrap().write(audio_pt.into(), now, time, payload).unwrap();
                    frames_sent += 1;
                    continue;
                }
                if frames_sent == 50 && !key_sent {
                    let time = MediaTime::new(50 * frame_ticks, clock);
                    let event =
                        WebRtcEvent { event: 7, end: true, volume: 10, duration: Duration::from_millis(100) };
                    self.rtc
                        .writer(self.mid)
                        .unwrap()
                        .telephone_event(event)
                        .write(audio_pt.into(), now, time, Vec::new())
                        .unwrap();
                    key_sent = true;
                    continue;
                }
                if frames_sent < 50 {
                    next_frame = next_frame.min(due);
                }
            }
            let wait = next_frame.saturating_duration_since(now).max(Duration::from_millis(1));
            self.socket.set_read_timeout(Some(wait)).unwrap();
            let input_time;
            match self.socket.recv_from(&mut buf) {
                Ok((len, from)) => {
                    input_time = Instant::now();
                    let receive = Receive::new(Protocol::Udp, from, self.local, &buf[..len]).unwrap();
                    self.rtc.handle_input(Input::Receive(input_time, receive)).unwrap();
                }
                Err(_) => {
                    input_time = Instant::now();
                    self.rtc.handle_input(Input::Timeout(input_time)).unwrap();
                }
            }
        }
    }
}

/// The trunk side of both tests: once the browser had time to connect, 50 frames of a 600 Hz
/// tone in PCMA (payload type 8) and then the key 3 (telephone-events on payload type 96), sent
/// to `to`; returns every RTP packet the trunk received within 3 s.
async fn trunk_talks_and_listens(trunk_ep: &tokio::net::UdpSocket, to: SocketAddr) -> Vec<Vec<u8>> {
    let trunk_side = async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let mut ticker = tokio::time::interval(Duration::from_millis(20));
        for i in 0..50usize {
            ticker.tick().await;
            let mut payload = Vec::new();
            CodecKind::Pcma.encode(&tone_frame(600.0, i), &mut payload);
            let mut packet = Vec::new();
            rtp::write_simple(i == 0, 8, i as u16, 160 * i as u32, 0x7777, &payload, &mut packet);
            trunk_ep.send_to(&packet, to).await.unwrap();
        }
        for (i, event) in digit_packets('3', 100, 10).unwrap().into_iter().enumerate() {
            let mut packet = Vec::new();
            rtp::write_simple(event.marker, 96, 50 + i as u16, 8000, 0x7777, &event.payload, &mut packet);
            trunk_ep.send_to(&packet, to).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let trunk_hears = async {
        let mut packets = Vec::new();
        let mut buf = vec![0u8; 2048];
        let deadline = tokio::time::Instant::now() + Duration::from_millis(3000);
        while let Ok(Ok((len, _))) = tokio::time::timeout_at(deadline, trunk_ep.recv_from(&mut buf)).await {
            if !rtp::is_rtcp(&buf[..len]) {
                packets.push(buf[..len].to_vec());
            }
        }
        packets
    };
    let ((), at_trunk) = tokio::join!(trunk_side, trunk_hears);
    at_trunk
}

#[tokio::test]
async fn browser_leg_bridged_to_rtp_leg_both_ways_with_dtmf() {
    let media = Media::start(MediaConfig {
        bind_ip: LOCALHOST,
        advertised_ip: None,
        port_min: 41400,
        port_max: 41499,
        shards: 1,
    })
    .unwrap();
    let mut media_events = media.events();

    assert!(matches!(media.open_webrtc_leg(3, "not sdp").await, Err(MediaError::WebRtc(_))));

    let (browser, offer) = browser();
    let (web_leg, answer) = media.open_webrtc_leg(3, &offer).await.unwrap();
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(answer.contains("a=fingerprint:sha-256"));
    assert!(answer.contains(&format!(" {} typ host", web_leg.local.port())), "our host candidate: {answer}");
    assert!(answer.contains("PCMU/8000"));
    let web_stats = media.stats(web_leg.id).await.unwrap();
    assert_eq!(web_stats.codec.as_deref(), Some("PCMU/8000"), "the browser's first choice");

    // The trunk side speaks PCMA: the bridge transcodes.
    let trunk = media.open_leg(3).await.unwrap();
    let trunk_ep = tokio::net::UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let trunk_codec = Codec::new(CodecKind::Pcma).with_dtmf(96);
    media.set_remote(trunk.id, trunk_ep.local_addr().unwrap(), trunk_codec).await.unwrap();
    media.bridge(web_leg.id, trunk.id).await.unwrap();

    let browser_thread = std::thread::spawn(move || browser.run(&answer, Duration::from_millis(2800)));

    // The trunk talks (600 Hz) once the browser had time to connect, then presses 3.
    let at_trunk = trunk_talks_and_listens(&trunk_ep, trunk.local).await;
    let heard = tokio::task::spawn_blocking(move || browser_thread.join().unwrap()).await.unwrap();

    // Browser → trunk: SRTP decrypted, PCMU transcoded to PCMA, one continuous stream.
    assert!(heard.connected, "ICE + DTLS completed");
    let at_trunk: Vec<_> = at_trunk.iter().map(|p| RtpPacket::parse(p).unwrap()).collect();
    let audio: Vec<_> = at_trunk.iter().filter(|p| p.header.payload_type == 8).collect();
    assert!(audio.len() >= 45, "browser audio relayed: {}", audio.len());
    let mut pcm = Vec::new();
    for p in &audio {
        CodecKind::Pcma.decode(p.payload, &mut pcm);
    }
    assert!(tone_power(&pcm, 400.0) > 10.0 * tone_power(&pcm, 600.0), "the browser's 400 Hz");
    for pair in at_trunk.windows(2) {
        assert_eq!(pair[1].header.sequence, pair[0].header.sequence.wrapping_add(1));
    }
    let events: Vec<_> = at_trunk
        .iter()
        .filter(|p| p.header.payload_type == 96)
        .map(|p| TelephoneEvent::parse(p.payload).unwrap())
        .collect();
    assert!(events.len() >= 4 && events.iter().all(|e| e.event == 7), "{events:?}");
    assert!(events.iter().any(|e| e.end));

    // Trunk → browser: PCMA transcoded to PCMU and sent over SRTP; the key arrives as an event.
    assert!(heard.audio.len() >= 45, "trunk audio at the browser: {}", heard.audio.len());
    let mut pcm = Vec::new();
    for frame in &heard.audio {
        CodecKind::Pcmu.decode(frame, &mut pcm);
    }
    assert!(tone_power(&pcm, 600.0) > 10.0 * tone_power(&pcm, 400.0), "the trunk's 600 Hz");
    assert!(heard.events.iter().any(|e| e.event == 3 && e.end), "{:?}", heard.events);

    let mut seen = Vec::new();
    while let Ok(event) = media_events.try_recv() {
        seen.push(event);
    }
    assert!(seen.contains(&MediaEvent::WebRtcConnected { leg: web_leg.id }), "{seen:?}");
    assert!(seen.contains(&MediaEvent::Dtmf { leg: web_leg.id, digit: '7' }), "{seen:?}");
    assert!(seen.contains(&MediaEvent::Dtmf { leg: trunk.id, digit: '3' }), "{seen:?}");

    let web_stats = media.close_leg(web_leg.id).await.unwrap();
    assert!(web_stats.packets_received >= 50, "{web_stats:?}");
    assert_eq!(web_stats.dtmf_received, "7");
    assert!(web_stats.remote.is_some());
    let trunk_stats = media.close_leg(trunk.id).await.unwrap();
    assert_eq!(trunk_stats.dtmf_received, "3");
    std::net::UdpSocket::bind(web_leg.local).expect("WebRTC port free after close");
    media.shutdown();
}

/// A browser that speaks only Opus, bridged to a PCMA trunk leg: both directions are decoded,
/// re-framed and encoded (G.711 ↔ Opus), key presses are sent again as the other side's events,
/// and the recording holds both voices.
#[tokio::test]
async fn opus_browser_leg_transcoded_to_g711_rtp_leg() {
    let media = Media::start(MediaConfig {
        bind_ip: LOCALHOST,
        advertised_ip: None,
        port_min: 41500,
        port_max: 41599,
        shards: 1,
    })
    .unwrap();
    let (browser, offer) = browser_speaking(true);
    let (web_leg, answer) = media.open_webrtc_leg(4, &offer).await.unwrap();
    assert!(answer.contains("opus/48000/2"), "{answer}");
    assert!(!answer.contains("PCMU"), "{answer}");
    assert_eq!(media.stats(web_leg.id).await.unwrap().codec.as_deref(), Some("opus/48000/2"));

    let trunk = media.open_leg(4).await.unwrap();
    let trunk_ep = tokio::net::UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    media
        .set_remote(trunk.id, trunk_ep.local_addr().unwrap(), Codec::new(CodecKind::Pcma).with_dtmf(96))
        .await
        .unwrap();
    media.bridge(web_leg.id, trunk.id).await.unwrap();
    let dir = std::env::temp_dir().join(format!("sivo-opus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("opus.wav");
    media.record(trunk.id, web_leg.id, path.clone()).await.unwrap();

    let browser_thread = std::thread::spawn(move || browser.run(&answer, Duration::from_millis(2800)));
    let at_trunk = trunk_talks_and_listens(&trunk_ep, trunk.local).await;
    let heard = tokio::task::spawn_blocking(move || browser_thread.join().unwrap()).await.unwrap();
    assert!(heard.connected, "ICE + DTLS completed");

    // Browser (Opus, 48 kHz) → trunk: decoded to 8 kHz, PCMA, 20 ms frames, one stream.
    let at_trunk: Vec<_> = at_trunk.iter().map(|p| RtpPacket::parse(p).unwrap()).collect();
    let audio: Vec<_> = at_trunk.iter().filter(|p| p.header.payload_type == 8).collect();
    assert!(audio.len() >= 45, "browser audio transcoded: {}", audio.len());
    assert!(audio.iter().all(|p| p.payload.len() == 160), "20 ms PCMA frames");
    for pair in audio.windows(2) {
        assert_eq!(pair[1].header.timestamp.wrapping_sub(pair[0].header.timestamp), 160, "8 kHz clock");
    }
    let mut pcm = Vec::new();
    for p in &audio[audio.len() / 3..] {
        CodecKind::Pcma.decode(p.payload, &mut pcm);
    }
    assert!(tone_power(&pcm, 400.0) > 10.0 * tone_power(&pcm, 600.0), "the browser's 400 Hz");
    let events: Vec<_> = at_trunk
        .iter()
        .filter(|p| p.header.payload_type == 96)
        .map(|p| TelephoneEvent::parse(p.payload).unwrap())
        .collect();
    assert!(events.iter().any(|e| e.event == 7 && e.end), "the browser's key, sent again: {events:?}");

    // Trunk → browser: PCMA decoded and encoded as Opus; the browser decodes the 600 Hz.
    assert!(heard.audio.len() >= 45, "trunk audio at the browser: {}", heard.audio.len());
    let mut decoder = media::Decoder::new(CodecKind::Opus).unwrap();
    let mut pcm = Vec::new();
    for frame in &heard.audio[heard.audio.len() / 3..] {
        decoder.decode(frame, &mut pcm).unwrap();
    }
    assert!(tone_power(&pcm, 600.0) > 10.0 * tone_power(&pcm, 400.0), "the trunk's 600 Hz");
    assert!(heard.events.iter().any(|e| e.event == 3 && e.end), "{:?}", heard.events);

    let info = media.stop_record(trunk.id).await.unwrap().unwrap();
    let wav = std::fs::read(&info.path).unwrap();
    let samples: Vec<i16> = wav[44..].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    assert!(tone_power(&left, 600.0) > 10.0 * tone_power(&left, 400.0), "caller channel: the trunk");
    assert!(tone_power(&right, 400.0) > 10.0 * tone_power(&right, 600.0), "agent channel: the Opus browser");
    let web_stats = media.close_leg(web_leg.id).await.unwrap();
    assert_eq!(web_stats.dtmf_received, "7");
    media.close_leg(trunk.id).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    media.shutdown();
}
