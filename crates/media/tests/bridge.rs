//! The media driver on real loopback sockets: two fake endpoints talk G.711 through a bridge.
//!
//! Each test starts its own [`Media`] on its own port range so tests can run in parallel.

use std::f64::consts::TAU;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use media::dtmf::{TelephoneEvent, digit_packets};
use media::rtp::{self, RtpPacket};
use media::tone::rms;
use media::wav::{Wav, encode_pcm16};
use media::{Codec, CodecKind, Media, MediaConfig, MediaError, MediaEvent, Playback};
use tokio::net::UdpSocket;
use tokio::time::{Instant, sleep, timeout};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn start(port_min: u16, port_max: u16, shards: usize) -> Media {
    Media::start(MediaConfig { bind_ip: LOCALHOST, advertised_ip: None, port_min, port_max, shards }).unwrap()
}

async fn socket() -> UdpSocket {
    UdpSocket::bind((LOCALHOST, 0)).await.unwrap()
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sivo-media-{}-{name}", std::process::id()))
}

/// 20 ms of a sine at `frequency`, continuing from frame `index`.
fn tone_frame(frequency: f64, index: usize) -> Vec<i16> {
    (0..160).map(|i| ((TAU * frequency * (index * 160 + i) as f64 / 8000.0).sin() * 8000.0) as i16).collect()
}

/// Energy at `frequency` (Goertzel), normalised by length.
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

/// Sends `frames` packets of a tone in `codec`, one every 20 ms, from `from` to `to`.
async fn send_tone(from: &UdpSocket, to: SocketAddr, codec: Codec, frequency: f64, ssrc: u32, frames: usize) {
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    for i in 0..frames {
        ticker.tick().await;
        let mut payload = Vec::new();
        codec.kind.encode(&tone_frame(frequency, i), &mut payload);
        let mut packet = Vec::new();
        let seq = 1000u16.wrapping_add(i as u16);
        rtp::write_simple(
            i == 0,
            codec.payload_type,
            seq,
            50_000 + 160 * i as u32,
            ssrc,
            &payload,
            &mut packet,
        );
        from.send_to(&packet, to).await.unwrap();
    }
}

/// Sends one key press as RFC 4733 packets, 20 ms apart.
async fn send_digit(
    from: &UdpSocket,
    to: SocketAddr,
    payload_type: u8,
    digit: char,
    seq: u16,
    ts: u32,
    ssrc: u32,
) {
    for (i, event) in digit_packets(digit, 100, 10).unwrap().into_iter().enumerate() {
        let mut packet = Vec::new();
        rtp::write_simple(event.marker, payload_type, seq + i as u16, ts, ssrc, &event.payload, &mut packet);
        from.send_to(&packet, to).await.unwrap();
        sleep(Duration::from_millis(20)).await;
    }
}

/// Reads datagrams until none arrives for `idle`.
async fn collect(socket: &UdpSocket, idle: Duration) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut buf = vec![0u8; 2048];
    while let Ok(Ok((len, _))) = timeout(idle, socket.recv_from(&mut buf)).await {
        packets.push(buf[..len].to_vec());
    }
    packets
}

/// Reads for exactly `duration`.
async fn collect_for(socket: &UdpSocket, duration: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + duration;
    let mut packets = Vec::new();
    let mut buf = vec![0u8; 2048];
    while let Ok(Ok((len, _))) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
        packets.push(buf[..len].to_vec());
    }
    packets
}

fn parse_all(packets: &[Vec<u8>]) -> Vec<RtpPacket<'_>> {
    packets.iter().filter(|p| !rtp::is_rtcp(p)).map(|p| RtpPacket::parse(p).unwrap()).collect()
}

fn assert_continuous(packets: &[RtpPacket<'_>]) {
    for pair in packets.windows(2) {
        assert_eq!(pair[1].header.sequence, pair[0].header.sequence.wrapping_add(1), "sequence gap");
        assert_eq!(pair[1].header.ssrc, pair[0].header.ssrc, "SSRC changed");
    }
}

#[tokio::test]
async fn bridge_relays_transcodes_latches_dtmf_records_and_holds() {
    let media = start(41000, 41099, 2);
    let mut media_events = media.events();
    let caller = media.open_leg(7).await.unwrap();
    let agent = media.open_leg(7).await.unwrap();
    assert_eq!(caller.id.shard(), agent.id.shard(), "one group, one shard");
    for leg in [caller, agent] {
        assert_eq!(leg.local.ip(), LOCALHOST);
        assert_eq!(leg.local.port() % 2, 0);
        assert!((41000..41099).contains(&leg.local.port()));
    }

    // The caller's SDP names one address but it sends (NAT) from another.
    let caller_sdp = socket().await;
    let caller_real = socket().await;
    let caller_rtcp = socket().await;
    let agent_ep = socket().await;
    let intruder = socket().await;
    let caller_codec = Codec::new(CodecKind::Pcmu).with_dtmf(101);
    let agent_codec = Codec::new(CodecKind::Pcma).with_dtmf(96);
    media.set_remote(caller.id, caller_sdp.local_addr().unwrap(), caller_codec).await.unwrap();
    media.set_remote(agent.id, agent_ep.local_addr().unwrap(), agent_codec).await.unwrap();
    media.bridge(caller.id, agent.id).await.unwrap();
    let recording = temp_path("bridge.wav");
    media.record(caller.id, agent.id, recording.clone()).await.unwrap();
    assert!(matches!(
        media.record(agent.id, caller.id, temp_path("again.wav")).await,
        Err(MediaError::AlreadyRecording)
    ));

    // The caller speaks first so its real source is latched before the agent's audio flows.
    let caller_ssrc = 0xC0FFEE;
    let agent_ssrc = 0xA6E47;
    let mut first = Vec::new();
    rtp::write_simple(true, 0, 999, 49_840, caller_ssrc, &[0xFF; 160], &mut first);
    caller_real.send_to(&first, caller.local).await.unwrap();
    sleep(Duration::from_millis(50)).await;

    // RTCP from the caller on the RTCP port, and one multiplexed on the RTP port.
    let mut report = Vec::new();
    rtp::build_report(caller_ssrc, None, &[], "caller", &mut report);
    let caller_rtcp_port = SocketAddr::new(LOCALHOST, caller.local.port() + 1);
    caller_rtcp.send_to(&report, caller_rtcp_port).await.unwrap();
    caller_real.send_to(&report, caller.local).await.unwrap();

    let frames = 50;
    let caller_side = async {
        send_tone(&caller_real, caller.local, caller_codec, 400.0, caller_ssrc, frames).await;
        send_digit(&caller_real, caller.local, 101, '5', 1050, 70_000, caller_ssrc).await;
    };
    let agent_side = send_tone(&agent_ep, agent.local, agent_codec, 600.0, agent_ssrc, frames);
    // Someone else sends to the caller's port while the caller talks: ignored.
    let intrusion = async {
        sleep(Duration::from_millis(300)).await;
        for i in 0..5u16 {
            let mut packet = Vec::new();
            rtp::write_simple(false, 0, i, 0, 0xBAD, &[0x00; 160], &mut packet);
            intruder.send_to(&packet, caller.local).await.unwrap();
        }
    };
    let collect_agent = collect(&agent_ep, Duration::from_millis(400));
    let collect_caller = collect(&caller_real, Duration::from_millis(400));
    let collect_sdp = collect(&caller_sdp, Duration::from_millis(400));
    let ((), (), (), at_agent, at_caller, at_sdp) =
        tokio::join!(caller_side, agent_side, intrusion, collect_agent, collect_caller, collect_sdp);

    // Caller → agent: PCMU transcoded to PCMA, re-numbered as the agent leg's stream.
    let at_agent = parse_all(&at_agent);
    let (audio, events): (Vec<_>, Vec<_>) =
        at_agent.iter().cloned().partition(|p| p.header.payload_type == 8);
    assert_eq!(audio.len(), frames + 1, "every caller packet relayed once, none of the intruder's");
    assert_eq!(events.len(), 7, "a press is 7 event packets");
    assert!(events.iter().all(|p| p.header.payload_type == 96), "renumbered to the agent's DTMF PT");
    assert_continuous(&at_agent);
    assert_ne!(at_agent[0].header.ssrc, caller_ssrc);
    assert!(at_agent[0].header.marker, "first packet of the stream is marked");
    let event = TelephoneEvent::parse(events[0].payload).unwrap();
    assert_eq!(event.event, 5);
    assert!(events.iter().all(|p| p.header.timestamp == events[0].header.timestamp));
    // The relayed tone decodes (A-law) close to what the caller sent.
    let mut pcm = Vec::new();
    CodecKind::Pcma.decode(audio[10].payload, &mut pcm);
    let sent = tone_frame(400.0, 9);
    let max_error = pcm.iter().zip(&sent).map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs()).max().unwrap();
    assert!(max_error < 400, "transcoding error {max_error}");

    // Agent → caller: to the latched source, not the SDP address; PCMA → PCMU.
    assert!(at_sdp.is_empty(), "nothing went to the SDP address after latching");
    let at_caller = parse_all(&at_caller);
    assert_eq!(at_caller.len(), frames);
    assert!(at_caller.iter().all(|p| p.header.payload_type == 0));
    assert_continuous(&at_caller);
    let mut pcm = Vec::new();
    CodecKind::Pcmu.decode(at_caller[20].payload, &mut pcm);
    assert!(tone_power(&pcm, 600.0) > 10.0 * tone_power(&pcm, 400.0));

    let caller_stats = media.stats(caller.id).await.unwrap();
    assert_eq!(caller_stats.packets_received, (frames + 1 + 7) as u64);
    assert_eq!(caller_stats.packets_sent, frames as u64);
    assert_eq!(caller_stats.packets_lost, 0);
    assert_eq!(caller_stats.dtmf_received, "5");
    assert_eq!(
        media_events.try_recv().unwrap(),
        MediaEvent::Dtmf { leg: caller.id, digit: '5' },
        "reported once, as it came"
    );
    assert!(media_events.try_recv().is_err());
    assert_eq!(caller_stats.rtcp_received, 2);
    assert_eq!(caller_stats.remote, Some(caller_real.local_addr().unwrap()));
    assert_eq!(caller_stats.codec.as_deref(), Some("PCMU/8000"));
    assert!(caller_stats.jitter_ms < 20.0, "{}", caller_stats.jitter_ms);
    let agent_stats = media.stats(agent.id).await.unwrap();
    assert_eq!(agent_stats.packets_received, frames as u64);
    assert_eq!(agent_stats.packets_sent, (frames + 1 + 7) as u64);
    assert_eq!(agent_stats.bytes_sent, (frames as u64 + 1) * 172 + 7 * 16);
    let json = serde_json::to_value(&agent_stats).unwrap();
    assert_eq!(json["codec"], "PCMA/8000");

    // The recording: caller (400 Hz) on the left, agent (600 Hz) on the right.
    let info = media.stop_record(caller.id).await.unwrap().expect("a recording");
    assert_eq!(info.path, recording);
    assert!((900..3000).contains(&info.duration_ms), "{}", info.duration_ms);
    let bytes = std::fs::read(&recording).unwrap();
    assert_eq!(bytes.len() as u64, info.bytes);
    let wav = Wav::parse(&bytes).unwrap();
    assert_eq!((wav.sample_rate, wav.channels), (8000, 2));
    let (left, right) = (wav.channel(0), wav.channel(1));
    assert!(rms(&left) > 1500.0 && rms(&right) > 1500.0, "{} {}", rms(&left), rms(&right));
    assert!(tone_power(&left, 400.0) > 10.0 * tone_power(&left, 600.0), "left is the caller");
    assert!(tone_power(&right, 600.0) > 10.0 * tone_power(&right, 400.0), "right is the agent");
    std::fs::remove_file(&recording).unwrap();
    assert!(media.stop_record(caller.id).await.unwrap().is_none());

    // Hold: music replaces the agent's audio in the caller's stream, which continues.
    let last_seq = at_caller.last().unwrap().header.sequence;
    media.play(caller.id, Playback::MusicOnHold).await.unwrap();
    let held = collect_for(&caller_real, Duration::from_millis(500)).await;
    let held: Vec<_> = parse_all(&held);
    assert!(held.len() >= 15, "music paced at 20 ms: {}", held.len());
    assert_eq!(held[0].header.sequence, last_seq.wrapping_add(1));
    assert_eq!(held[0].header.ssrc, at_caller[0].header.ssrc);
    assert!(held[0].header.marker);
    assert_continuous(&held);
    let mut music = Vec::new();
    for p in &held {
        assert_eq!(p.header.payload_type, 0);
        CodecKind::Pcmu.decode(p.payload, &mut music);
    }
    assert!(rms(&music) > 1000.0, "hold music is not silence: {}", rms(&music));

    // Our RTCP reports reached the caller's RTCP source (latched) by now.
    let mut report = vec![0u8; 1500];
    let len = timeout(Duration::from_millis(2500), caller_rtcp.recv(&mut report))
        .await
        .expect("an RTCP report within 2.5 s of opening")
        .unwrap();
    let info = rtp::parse_rtcp(&report[..len]).unwrap();
    assert_eq!(info.packet_types.first(), Some(&200), "SR: we have sent media");
    assert_eq!(info.report_blocks.first().map(|b| b.ssrc), Some(caller_ssrc));

    // DTMF we generate goes out with the leg's own numbering.
    media.stop_play(caller.id).await.unwrap();
    media.send_dtmf(agent.id, '#').await.unwrap();
    let sent = parse_all(&collect(&agent_ep, Duration::from_millis(300)).await)
        .into_iter()
        .map(|p| (p.header.payload_type, TelephoneEvent::parse(p.payload).unwrap(), p.header.ssrc))
        .collect::<Vec<_>>();
    assert_eq!(sent.len(), 7);
    assert!(sent.iter().all(|(pt, e, ssrc)| *pt == 96 && e.event == 11 && *ssrc == at_agent[0].header.ssrc));
    assert_eq!(sent.iter().filter(|(_, e, _)| e.end).count(), 3);

    // Close frees the ports.
    media.unbridge(caller.id, agent.id).await.unwrap();
    let closed = media.close_leg(caller.id).await.unwrap();
    assert_eq!(closed.dtmf_received, "5");
    assert!(matches!(media.stats(caller.id).await, Err(MediaError::UnknownLeg)));
    std::net::UdpSocket::bind(caller.local).expect("RTP port free after close");
    std::net::UdpSocket::bind(caller_rtcp_port).expect("RTCP port free after close");
    media.close_leg(agent.id).await.unwrap();
    media.shutdown();
    assert!(matches!(media.open_leg(7).await, Err(MediaError::ShardGone)));
}

#[tokio::test]
async fn same_codec_relays_payload_untouched_and_rewrites_on_transfer() {
    let media = start(41100, 41199, 1);
    let caller = media.open_leg(1).await.unwrap();
    let first_agent = media.open_leg(1).await.unwrap();
    let second_agent = media.open_leg(1).await.unwrap();
    let (caller_ep, agent1_ep, agent2_ep) = (socket().await, socket().await, socket().await);
    let codec = Codec::new(CodecKind::Pcmu);
    media.set_remote(caller.id, caller_ep.local_addr().unwrap(), codec).await.unwrap();
    media.set_remote(first_agent.id, agent1_ep.local_addr().unwrap(), codec).await.unwrap();
    media.set_remote(second_agent.id, agent2_ep.local_addr().unwrap(), codec).await.unwrap();

    media.bridge(caller.id, first_agent.id).await.unwrap();
    let first = async {
        send_tone(&agent1_ep, first_agent.local, codec, 500.0, 111, 10).await;
    };
    let (_, got_first) = tokio::join!(first, collect(&caller_ep, Duration::from_millis(300)));
    // Transfer: the caller is bridged to another agent without an explicit unbridge.
    media.bridge(caller.id, second_agent.id).await.unwrap();
    let second = send_tone(&agent2_ep, second_agent.local, codec, 700.0, 222, 10);
    let (_, got_second) = tokio::join!(second, collect(&caller_ep, Duration::from_millis(300)));

    let got_first = parse_all(&got_first);
    let got_second = parse_all(&got_second);
    assert_eq!((got_first.len(), got_second.len()), (10, 10));
    let mut expected = Vec::new();
    CodecKind::Pcmu.encode(&tone_frame(500.0, 3), &mut expected);
    assert_eq!(got_first[3].payload, expected.as_slice(), "same codec: bytes untouched");
    let all: Vec<_> = got_first.iter().chain(&got_second).cloned().collect();
    assert_continuous(&all);
    assert!(got_second[0].header.marker, "the switch is marked");
    let gap = got_second[0].header.timestamp.wrapping_sub(got_first[9].header.timestamp);
    assert!((160..8000).contains(&gap), "timestamp follows the wall clock across the switch: {gap}");
    // The first agent is detached: its audio goes nowhere.
    send_tone(&agent1_ep, first_agent.local, codec, 500.0, 111, 3).await;
    assert!(parse_all(&collect(&caller_ep, Duration::from_millis(150)).await).is_empty());

    // Legs of different shards cannot be bridged.
    let two = start(41200, 41299, 2);
    let a = two.open_leg(0).await.unwrap();
    let b = two.open_leg(1).await.unwrap();
    assert!(matches!(two.bridge(a.id, b.id).await, Err(MediaError::DifferentShards)));
    assert!(matches!(two.bridge(a.id, a.id).await, Err(MediaError::SameLeg)));
}

#[tokio::test]
async fn port_range_exhaustion_file_playback_and_errors() {
    // Two pairs: 41300/41301 and 41302/41303.
    let media = start(41300, 41303, 1);
    let one = media.open_leg(0).await.unwrap();
    let two = media.open_leg(0).await.unwrap();
    assert!(matches!(media.open_leg(0).await, Err(MediaError::NoFreePort)));
    media.close_leg(one.id).await.unwrap();
    let three = media.open_leg(0).await.unwrap();
    assert_eq!(three.local.port(), one.local.port(), "the freed pair is reused");

    let endpoint = socket().await;
    media.set_remote(two.id, endpoint.local_addr().unwrap(), Codec::new(CodecKind::Pcma)).await.unwrap();

    // Garbage on both ports (truncated headers, lying lengths, random bytes) is survived and ignored.
    let rtcp_port = SocketAddr::new(LOCALHOST, two.local.port() + 1);
    let mut state = 0x1234_5678u32;
    for len in 0..200usize {
        let datagram: Vec<u8> = (0..len)
            .map(|i| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                if i == 0 { 0x80 | (state >> 24) as u8 & 0x3F } else { (state >> 16) as u8 }
            })
            .collect();
        endpoint.send_to(&datagram, two.local).await.unwrap();
        endpoint.send_to(&datagram, rtcp_port).await.unwrap();
    }
    sleep(Duration::from_millis(50)).await;
    let after_garbage = media.stats(two.id).await.unwrap();
    assert_eq!(after_garbage.dtmf_received, "");
    assert_eq!(after_garbage.rtcp_received, 0, "nothing there was valid RTCP");
    assert!(matches!(media.send_dtmf(two.id, '1').await, Err(MediaError::NoDtmf)));
    assert!(matches!(media.send_dtmf(two.id, 'x').await, Err(MediaError::InvalidDigit('x'))));

    let samples: Vec<i16> = (0..400).map(|i| if (i / 20) % 2 == 0 { 6000 } else { -6000 }).collect();
    let good = temp_path("prompt.wav");
    std::fs::write(&good, encode_pcm16(8000, 1, &samples)).unwrap();
    let wideband = temp_path("wideband.wav");
    std::fs::write(&wideband, encode_pcm16(16000, 1, &samples)).unwrap();
    let err = media.play(two.id, Playback::File(wideband.clone())).await.unwrap_err();
    assert!(err.to_string().contains("8000 Hz mono"), "{err}");
    assert!(matches!(
        media.play(two.id, Playback::File(temp_path("missing.wav"))).await,
        Err(MediaError::Io(_))
    ));

    media.play(two.id, Playback::File(good.clone())).await.unwrap();
    let got = collect_for(&endpoint, Duration::from_millis(300)).await;
    let got = parse_all(&got);
    assert!(got.len() >= 8);
    let mut pcm = Vec::new();
    for p in &got {
        CodecKind::Pcma.decode(p.payload, &mut pcm);
    }
    // The square wave comes back (A-law quantisation aside) and loops every 400 samples.
    assert!(pcm.iter().all(|s| (5800..=6200).contains(&s.abs())), "not the file's samples");
    assert_eq!(pcm[..400], pcm[400..800]);

    media.play(two.id, Playback::Ringback).await.unwrap();
    let ring = collect_for(&endpoint, Duration::from_millis(200)).await;
    let ring = parse_all(&ring);
    let mut pcm = Vec::new();
    for p in &ring {
        CodecKind::Pcma.decode(p.payload, &mut pcm);
    }
    assert!(rms(&pcm) > 2000.0, "ringback starts with tone");
    media.stop_play(two.id).await.unwrap();
    sleep(Duration::from_millis(60)).await;
    let _ = collect(&endpoint, Duration::from_millis(30)).await;
    assert!(parse_all(&collect(&endpoint, Duration::from_millis(100)).await).is_empty(), "stopped");

    let stats = media.close_leg(two.id).await.unwrap();
    assert!(stats.packets_sent >= 18);
    assert!(matches!(media.close_leg(two.id).await, Err(MediaError::UnknownLeg)));
    for path in [good, wideband] {
        std::fs::remove_file(path).unwrap();
    }
}

/// Decoded audio of the packets `endpoint` got.
fn decoded(packets: &[Vec<u8>], codec: CodecKind) -> Vec<i16> {
    let mut pcm = Vec::new();
    for p in parse_all(packets) {
        codec.decode(p.payload, &mut pcm);
    }
    pcm
}

#[tokio::test]
async fn conference_mixes_the_others_for_each_member_and_recording_follows_a_transfer() {
    let media = start(41400, 41499, 1);
    let caller = media.open_leg(9).await.unwrap();
    let agent = media.open_leg(9).await.unwrap();
    let expert = media.open_leg(9).await.unwrap();
    let (caller_ep, agent_ep, expert_ep) = (socket().await, socket().await, socket().await);
    // Mixed codecs: the expert speaks PCMA, the others PCMU.
    let (pcmu, pcma) = (Codec::new(CodecKind::Pcmu), Codec::new(CodecKind::Pcma));
    media.set_remote(caller.id, caller_ep.local_addr().unwrap(), pcmu).await.unwrap();
    media.set_remote(agent.id, agent_ep.local_addr().unwrap(), pcmu).await.unwrap();
    media.set_remote(expert.id, expert_ep.local_addr().unwrap(), pcma).await.unwrap();
    media.bridge(caller.id, agent.id).await.unwrap();
    let path = temp_path("conference.wav");
    media.record(caller.id, agent.id, path.clone()).await.unwrap();
    media.conference(&[caller.id, agent.id, expert.id]).await.unwrap();

    // Each speaks its own tone; each must hear the other two and not itself.
    let talk = async {
        tokio::join!(
            send_tone(&caller_ep, caller.local, pcmu, 500.0, 1, 40),
            send_tone(&agent_ep, agent.local, pcmu, 700.0, 2, 40),
            send_tone(&expert_ep, expert.local, pcma, 900.0, 3, 40),
        )
    };
    let listen = Duration::from_millis(1000);
    let (_, heard_caller, heard_agent, heard_expert) = tokio::join!(
        talk,
        collect_for(&caller_ep, listen),
        collect_for(&agent_ep, listen),
        collect_for(&expert_ep, listen),
    );
    for (name, packets, codec, own, others) in [
        ("caller", &heard_caller, CodecKind::Pcmu, 500.0, [700.0, 900.0]),
        ("agent", &heard_agent, CodecKind::Pcmu, 700.0, [500.0, 900.0]),
        ("expert", &heard_expert, CodecKind::Pcma, 900.0, [500.0, 700.0]),
    ] {
        let rtp = parse_all(packets);
        assert!(rtp.len() >= 30, "{name} got {} packets", rtp.len());
        assert_continuous(&rtp);
        let pcm = decoded(packets, codec);
        let own_power = tone_power(&pcm, own);
        for other in others {
            let power = tone_power(&pcm, other);
            assert!(
                power > 10.0 * own_power.max(1.0),
                "{name}: {other} Hz {power:.1} vs own {own} Hz {own_power:.1}"
            );
        }
    }

    // Out of the conference by a new bridge (the expert takes the call over; recording follows).
    media.bridge(caller.id, expert.id).await.unwrap();
    media.record(caller.id, expert.id, path.clone()).await.unwrap();
    media.close_leg(agent.id).await.unwrap();
    let (_, got) = tokio::join!(
        send_tone(&expert_ep, expert.local, pcma, 900.0, 3, 10),
        collect(&caller_ep, Duration::from_millis(300))
    );
    // (A mix packet from the last conference tick may still be in flight.)
    assert!((10..=12).contains(&parse_all(&got).len()), "plain relay again: {}", parse_all(&got).len());
    let info = media.stop_record(caller.id).await.unwrap().expect("one recording all along");
    assert!(info.duration_ms >= 800, "{info:?}");
    let wav = Wav::parse(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(wav.channels, 2);
    let _ = std::fs::remove_file(path);
}

/// Where we decode (here: the recorder), packets are put back in order and a lost one leaves
/// a concealed gap instead of the stream going backwards.
#[tokio::test]
async fn decoding_reorders_packets_and_conceals_a_lost_one() {
    let media = start(41700, 41799, 1);
    let caller = media.open_leg(9).await.unwrap();
    let agent = media.open_leg(9).await.unwrap();
    let (caller_ep, agent_ep) = (socket().await, socket().await);
    let pcmu = Codec::new(CodecKind::Pcmu);
    media.set_remote(caller.id, caller_ep.local_addr().unwrap(), pcmu).await.unwrap();
    media.set_remote(agent.id, agent_ep.local_addr().unwrap(), pcmu).await.unwrap();
    media.bridge(caller.id, agent.id).await.unwrap();
    let path = temp_path("reorder.wav");
    media.record(caller.id, agent.id, path.clone()).await.unwrap();

    // Packet i carries the constant level 1000 + 300 i; 3 and 4 swap places, 7 never comes.
    let level = |i: usize| 1000 + 300 * i as i16;
    let order = [0usize, 1, 2, 4, 3, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15];
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    for &i in &order {
        ticker.tick().await;
        let mut payload = Vec::new();
        CodecKind::Pcmu.encode(&[level(i); 160], &mut payload);
        let mut packet = Vec::new();
        rtp::write_simple(i == 0, 0, 500 + i as u16, 160 * i as u32, 0x4242, &payload, &mut packet);
        caller_ep.send_to(&packet, caller.local).await.unwrap();
    }
    sleep(Duration::from_millis(200)).await;
    let info = media.stop_record(caller.id).await.unwrap().unwrap();
    let wav = Wav::parse(&std::fs::read(&info.path).unwrap()).unwrap();
    let left = wav.channel(0);

    // The levels as recorded, each run once, silence skipped.
    let mut runs: Vec<i16> = Vec::new();
    for &s in &left {
        if s != 0 && runs.last() != Some(&s) {
            runs.push(s);
        }
    }
    let quantised = |i: usize| {
        let mut code = Vec::new();
        CodecKind::Pcmu.encode(&[level(i)], &mut code);
        let mut back = Vec::new();
        CodecKind::Pcmu.decode(&code, &mut back);
        back[0]
    };
    let expected: Vec<i16> = (0..16).filter(|&i| i != 7).map(quantised).collect();
    assert_eq!(runs, expected, "in sequence order, 7 missing");
    // Relaying is not held back: the agent got all 15 packets as they came.
    let at_agent = collect(&agent_ep, Duration::from_millis(100)).await;
    let relayed = parse_all(&at_agent).iter().filter(|p| p.header.payload_type == 0).count();
    assert_eq!(relayed, 15);
    std::fs::remove_file(&path).unwrap();
    media.shutdown();
}
