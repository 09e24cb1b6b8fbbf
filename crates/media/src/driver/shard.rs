//! One media shard: a current-thread tokio runtime owning a set of legs, their sockets,
//! bridges, playbacks and recordings.
//!
//! All state sits in one `Shard` behind an `Rc<RefCell<_>>` shared by the tasks of this thread
//! (a reader per socket, a 20 ms ticker, the command loop). Every handler borrows it, works
//! synchronously (UDP sends are non-blocking `try_send_to`; a full socket buffer drops the
//! packet as the network would) and returns before the next `.await`, so borrows never
//! overlap and nothing is locked.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::BufWriter;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::runtime::Runtime;
use tokio::sync::{broadcast, mpsc};
use tokio::task::{JoinHandle, LocalSet};

use super::{Command, Leg, LegId, LegStats, MediaError, MediaEvent, RecordingInfo};
use crate::codec::{CLOCK_RATE, Codec, CodecKind, Decoder, Encoder, FRAME_SAMPLES};
use crate::dtmf::{self, DtmfReceiver, EventPacket};
use crate::jitter::{JitterBuffer, Release};
use crate::latch::Latch;
use crate::reframe::Reframer;
use crate::rtp::{self, ReceiveStats, Rewriter, Rewritten, RtpPacket, SenderInfo};
use crate::tone::FrameSource;
use crate::wav::StereoWavWriter;

#[cfg(feature = "webrtc")]
use super::webrtc::{Inbound, WebRtcLeg};

/// How often playback, DTMF and recording advance.
const TICK: Duration = Duration::from_millis(20);
/// RTCP report interval (RFC 3550's 5 s minimum).
const RTCP_INTERVAL: Duration = Duration::from_secs(5);
/// The first report goes out after half the interval (RFC 3550 §6.2).
const RTCP_FIRST: Duration = Duration::from_millis(2500);
/// Datagrams read per wake-up of a reader before yielding.
const READ_BATCH: usize = 32;
/// Ticks of silence between two queued key presses.
const DTMF_GAP_TICKS: u8 = 3;
/// Decoded pieces one packet can release at most, in the usual case (more just reallocate).
const REORDER_SEGMENTS: usize = 4;
/// Recording buffers hold at most this much per side; older audio is dropped.
const RECORD_MAX_BUFFER: usize = FRAME_SAMPLES * 10;

pub(super) struct Settings {
    pub(super) index: u32,
    pub(super) shard_count: usize,
    pub(super) bind_ip: IpAddr,
    pub(super) advertised: IpAddr,
    pub(super) port_min: u16,
    pub(super) port_max: u16,
    pub(super) events: broadcast::Sender<MediaEvent>,
}

type Shared = Rc<RefCell<Shard>>;

pub(super) fn run(runtime: Runtime, settings: Settings, commands: mpsc::UnboundedReceiver<Command>) {
    let local = LocalSet::new();
    local.block_on(&runtime, shard_main(settings, commands));
}

async fn shard_main(settings: Settings, mut commands: mpsc::UnboundedReceiver<Command>) {
    let shard = Rc::new(RefCell::new(Shard::new(settings)));
    let ticker = tokio::task::spawn_local(tick_loop(shard.clone()));
    while let Some(command) = commands.recv().await {
        if matches!(command, Command::Shutdown) {
            break;
        }
        handle(&shard, command).await;
    }
    ticker.abort();
    let tasks = shard.borrow_mut().close_all();
    for task in tasks {
        task.abort();
        let _ = task.await;
    }
}

async fn tick_loop(shard: Shared) {
    let mut interval = tokio::time::interval(TICK);
    loop {
        interval.tick().await;
        shard.borrow_mut().on_tick(Instant::now(), SystemTime::now());
    }
}

/// Reads one socket of a leg until the leg is closed (the task is aborted).
async fn read_loop(shard: Shared, index: u64, socket: Rc<UdpSocket>, is_rtcp_port: bool) {
    let mut buf = vec![0u8; 2048];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(error) => {
                // Transient (e.g. an ICMP error surfaced by the OS); do not spin on it.
                tracing::debug!(%error, "media socket receive failed");
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let now = Instant::now();
        let mut state = shard.borrow_mut();
        state.on_datagram(index, is_rtcp_port, buf.get(..len).unwrap_or_default(), from, now);
        // Drain what is already queued under the same borrow: fewer wake-ups under load.
        for _ in 0..READ_BATCH {
            match socket.try_recv_from(&mut buf) {
                Ok((len, from)) => {
                    state.on_datagram(index, is_rtcp_port, buf.get(..len).unwrap_or_default(), from, now)
                }
                Err(_) => break,
            }
        }
    }
}

async fn handle(shard: &Shared, command: Command) {
    match command {
        Command::OpenLeg { reply } => {
            let _ = reply.send(open_leg(shard));
        }
        #[cfg(feature = "webrtc")]
        Command::OpenWebRtcLeg { offer, reply } => {
            let _ = reply.send(open_webrtc_leg(shard, &offer));
        }
        Command::CloseLeg { leg, reply } => {
            let closed = shard.borrow_mut().close_leg(leg);
            let result = match closed {
                Ok((stats, tasks, port)) => {
                    // Wait for the readers to be dropped so both sockets are closed before we answer.
                    for task in tasks {
                        task.abort();
                        let _ = task.await;
                    }
                    shard.borrow_mut().ports.release(port);
                    Ok(stats)
                }
                Err(e) => Err(e),
            };
            let _ = reply.send(result);
        }
        Command::SetRemote { leg, remote, codec, reply } => {
            let _ = reply.send(shard.borrow_mut().set_remote(leg, remote, codec));
        }
        Command::Play { leg, source, reply } => {
            let _ = reply.send(shard.borrow_mut().play(leg, source));
        }
        Command::StopPlay { leg, reply } => {
            let _ = reply.send(shard.borrow_mut().stop_play(leg));
        }
        Command::Bridge { a, b, reply } => {
            let _ = reply.send(shard.borrow_mut().bridge(a, b));
        }
        Command::Unbridge { a, b, reply } => {
            let _ = reply.send(shard.borrow_mut().unbridge(a, b));
        }
        Command::Conference { legs, reply } => {
            let _ = reply.send(shard.borrow_mut().conference(&legs));
        }
        Command::Record { left, right, path, reply } => {
            let _ = reply.send(shard.borrow_mut().record(left, right, path));
        }
        Command::StopRecord { left, reply } => {
            let _ = reply.send(shard.borrow_mut().stop_record(left));
        }
        Command::SendDtmf { leg, digit, reply } => {
            let _ = reply.send(shard.borrow_mut().send_dtmf(leg, digit));
        }
        Command::Stats { leg, reply } => {
            let _ = reply.send(shard.borrow_mut().leg(leg).map(|l| l.stats()));
        }
        Command::Shutdown => {}
    }
}

fn open_leg(shard: &Shared) -> Result<Leg, MediaError> {
    let mut state = shard.borrow_mut();
    let bind_ip = state.settings.bind_ip;
    let (port, rtp_socket, rtcp_socket) = state.ports.allocate(bind_ip)?;
    let index = state.next_index;
    state.next_index += 1;
    let id = LegId { shard: state.settings.index, index };
    let rtp_socket = Rc::new(rtp_socket);
    let rtcp_socket = Rc::new(rtcp_socket);
    let tasks = vec![
        tokio::task::spawn_local(read_loop(shard.clone(), index, rtp_socket.clone(), false)),
        tokio::task::spawn_local(read_loop(shard.clone(), index, rtcp_socket.clone(), true)),
    ];
    let local = SocketAddr::new(state.settings.advertised, port);
    let transport = Transport::Rtp { rtp: rtp_socket, rtcp: rtcp_socket };
    state.legs.insert(index, LegState::new(id, port, transport, tasks, Instant::now()));
    Ok(Leg { id, local })
}

/// Opens a WebRTC leg: one socket (BUNDLE + rtcp-mux), the offer answered by str0m.
#[cfg(feature = "webrtc")]
fn open_webrtc_leg(shard: &Shared, offer: &str) -> Result<(Leg, String), MediaError> {
    let mut state = shard.borrow_mut();
    let bind_ip = state.settings.bind_ip;
    // A whole pair keeps the pool simple; the odd port goes unused (rtcp-mux).
    let (port, socket, _rtcp) = state.ports.allocate(bind_ip)?;
    let local = SocketAddr::new(state.settings.advertised, port);
    let socket = Rc::new(socket);
    let now = Instant::now();
    let (webrtc, answer, codec) = match WebRtcLeg::accept(offer, socket.clone(), local, now) {
        Ok(accepted) => accepted,
        Err(error) => {
            state.ports.release(port);
            return Err(error);
        }
    };
    let index = state.next_index;
    state.next_index += 1;
    let id = LegId { shard: state.settings.index, index };
    let tasks = vec![tokio::task::spawn_local(read_loop(shard.clone(), index, socket, false))];
    let mut leg = LegState::new(id, port, Transport::WebRtc(Box::new(webrtc)), tasks, now);
    if let Some(codec) = codec {
        leg.set_codec(codec);
    }
    state.legs.insert(index, leg);
    Ok((Leg { id, local }, answer))
}

/// The even RTP ports of the range that belong to this shard (pair k goes to shard k % n).
struct PortPool {
    first: u16,
    shard: u32,
    shards: u32,
    /// How many pairs this shard owns.
    count: u32,
    cursor: u32,
    in_use: HashSet<u16>,
}

impl PortPool {
    fn new(settings: &Settings) -> Self {
        let first = settings.port_min.saturating_add(settings.port_min & 1);
        let pairs =
            if settings.port_max > first { u32::from(settings.port_max - first).div_ceil(2) } else { 0 };
        // RTCP needs port + 1 <= port_max: the last pair must fit whole.
        let pairs = if pairs > 0 && u32::from(first) + 2 * (pairs - 1) + 1 > u32::from(settings.port_max) {
            pairs - 1
        } else {
            pairs
        };
        let shards = settings.shard_count.max(1) as u32;
        let count = if pairs > settings.index { (pairs - settings.index).div_ceil(shards) } else { 0 };
        Self { first, shard: settings.index, shards, count, cursor: 0, in_use: HashSet::new() }
    }

    /// Binds the next free pair, going round the range so a freed port rests before reuse.
    fn allocate(&mut self, ip: IpAddr) -> Result<(u16, UdpSocket, UdpSocket), MediaError> {
        for attempt in 0..self.count {
            let j = (self.cursor + attempt) % self.count;
            let pair = self.shard + j * self.shards;
            let Some(port) = u16::try_from(u32::from(self.first) + 2 * pair).ok() else { continue };
            if self.in_use.contains(&port) {
                continue;
            }
            let Ok(rtp) = bind(ip, port) else { continue };
            let Ok(rtcp) = bind(ip, port + 1) else { continue };
            self.cursor = j + 1;
            self.in_use.insert(port);
            return Ok((port, rtp, rtcp));
        }
        Err(MediaError::NoFreePort)
    }

    fn release(&mut self, port: u16) {
        self.in_use.remove(&port);
    }
}

fn bind(ip: IpAddr, port: u16) -> std::io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(SocketAddr::new(ip, port))?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

struct Playing {
    source: Box<dyn FrameSource + Send>,
    sequence: u16,
    timestamp: u32,
}

struct OutgoingDigit {
    packets: VecDeque<EventPacket>,
    /// Fixed when the first packet goes out: every packet of an event carries its start.
    timestamp: Option<u32>,
}

/// How a received packet's payload type relates to the leg's codec.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PayloadKind {
    Audio(CodecKind),
    Event,
    Other,
}

/// How a leg's media travels.
enum Transport {
    /// Plain RTP on an even port, RTCP on the odd one above.
    Rtp { rtp: Rc<UdpSocket>, rtcp: Rc<UdpSocket> },
    /// WebRTC (str0m): ICE, DTLS-SRTP and RTCP inside, one socket.
    #[cfg(feature = "webrtc")]
    WebRtc(Box<WebRtcLeg>),
}

/// The PCM decoded from one released packet (or concealed for a lost one): its place in the
/// shard's PCM scratch buffer and the packet's RTP timestamp.
struct Segment {
    timestamp: u32,
    marker: bool,
    start: usize,
    end: usize,
}

/// One received media packet, whatever the transport.
struct MediaIn<'a> {
    ssrc: u32,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    marker: bool,
    payload: &'a [u8],
}

struct LegState {
    id: LegId,
    port: u16,
    transport: Transport,
    tasks: Vec<JoinHandle<()>>,
    codec: Option<Codec>,
    /// For the codec: decodes what we receive when it is recorded, mixed or transcoded.
    decoder: Option<Decoder>,
    /// For the codec: encodes playback, conference mixes and transcoded audio we send.
    encoder: Option<Encoder>,
    /// Puts received packets in order before `decoder` (only while something decodes).
    jitter: JitterBuffer,
    /// Audio from a bridged peer of another codec family, gathered into frames for `encoder`.
    reframer: Reframer,
    latch: Latch,
    rtcp_latch: Latch,
    stats: ReceiveStats,
    dtmf_receiver: DtmfReceiver,
    dtmf_received: String,
    packets_received: u64,
    bytes_received: u64,
    packets_sent: u64,
    bytes_sent: u64,
    payload_bytes_sent: u64,
    rtcp_received: u64,
    /// Outgoing stream: our SSRC, continuous numbering whatever feeds it.
    rewriter: Rewriter,
    /// Bumped whenever what feeds the outgoing stream changes; part of rewriter source keys.
    epoch: u64,
    bridge: Option<u64>,
    playback: Option<Playing>,
    dtmf_out: VecDeque<OutgoingDigit>,
    dtmf_pause: u8,
    /// The recording this leg feeds: (left leg index of the recording, channel 0 or 1).
    recording: Option<(u64, usize)>,
    /// The conference this leg is a member of.
    conference: Option<u64>,
    next_rtcp: Instant,
    cname: String,
}

impl LegState {
    fn new(id: LegId, port: u16, transport: Transport, tasks: Vec<JoinHandle<()>>, now: Instant) -> Self {
        Self {
            id,
            port,
            transport,
            tasks,
            codec: None,
            decoder: None,
            encoder: None,
            jitter: JitterBuffer::new(),
            reframer: Reframer::new(),
            latch: Latch::new(),
            rtcp_latch: Latch::new(),
            stats: ReceiveStats::new(CLOCK_RATE),
            dtmf_receiver: DtmfReceiver::new(),
            dtmf_received: String::new(),
            packets_received: 0,
            bytes_received: 0,
            packets_sent: 0,
            bytes_sent: 0,
            payload_bytes_sent: 0,
            rtcp_received: 0,
            rewriter: Rewriter::new(rand::random(), rand::random(), rand::random(), CLOCK_RATE),
            epoch: 0,
            bridge: None,
            playback: None,
            dtmf_out: VecDeque::new(),
            dtmf_pause: 0,
            recording: None,
            conference: None,
            next_rtcp: now + RTCP_FIRST,
            cname: format!("sivo-{id}@{:08x}", rand::random::<u32>()),
        }
    }

    /// Sets the negotiated codec; a new codec kind gets a fresh encoder and decoder, and the
    /// stream counters move to its RTP clock.
    fn set_codec(&mut self, codec: Codec) {
        if self.codec.map(|c| c.kind) != Some(codec.kind) {
            let coder = Decoder::new(codec.kind).and_then(|d| Ok((d, Encoder::new(codec.kind)?)));
            match coder {
                Ok((decoder, encoder)) => {
                    self.decoder = Some(decoder);
                    self.encoder = Some(encoder);
                }
                Err(error) => {
                    tracing::warn!(%error, leg = %self.id, "codec state could not be created");
                    self.decoder = None;
                    self.encoder = None;
                }
            }
            let clock_rate = codec.kind.clock_rate();
            self.stats.set_clock_rate(clock_rate);
            self.rewriter.set_clock_rate(clock_rate);
        }
        self.codec = Some(codec);
    }

    /// What feeds the outgoing stream changed: start a new segment.
    fn switch_output(&mut self) {
        self.epoch += 1;
        self.rewriter.detach();
    }

    fn classify(&self, payload_type: u8) -> PayloadKind {
        match self.codec {
            Some(codec) if codec.payload_type == payload_type => PayloadKind::Audio(codec.kind),
            Some(codec) if codec.dtmf_payload_type == Some(payload_type) => PayloadKind::Event,
            _ => PayloadKind::Other,
        }
    }

    /// Where media goes: the latched or signalled address, or the ICE-selected one.
    fn destination(&self) -> Option<SocketAddr> {
        match &self.transport {
            Transport::Rtp { .. } => self.latch.destination(),
            #[cfg(feature = "webrtc")]
            Transport::WebRtc(webrtc) => webrtc.remote(),
        }
    }

    /// Whether there is anywhere to send media.
    fn can_send(&self) -> bool {
        match &self.transport {
            Transport::Rtp { .. } => self.latch.destination().is_some(),
            #[cfg(feature = "webrtc")]
            Transport::WebRtc(webrtc) => webrtc.is_alive(),
        }
    }

    /// Queues one key press (100 ms of RFC 4733 events) on our outgoing stream.
    fn queue_digit(&mut self, digit: char) {
        if let Some(packets) = dtmf::digit_packets(digit, dtmf::DIGIT_MS, dtmf::DIGIT_VOLUME) {
            self.dtmf_out.push_back(OutgoingDigit { packets: packets.into(), timestamp: None });
        }
    }

    /// Sends audio of a bridged peer whose codec family differs (G.711 ↔ Opus): its decoded
    /// PCM is re-framed into 20 ms frames in our clock and encoded in our codec.
    /// `source` is the rewriter key and RTP clock rate of the audio's sender.
    fn relay_transcoded(
        &mut self,
        (source, source_rate): (u64, u32),
        segment: &Segment,
        pcm: &[i16],
        now: Instant,
        payload: &mut Vec<u8>,
        packet: &mut Vec<u8>,
    ) {
        let Some(codec) = self.codec.filter(|_| self.encoder.is_some()) else { return };
        let target_rate = codec.kind.clock_rate();
        self.reframer.push(source, source_rate, segment.timestamp, segment.marker, pcm, target_rate);
        while let Some(frame) = self.reframer.pop() {
            let Some(encoder) = &mut self.encoder else { continue };
            payload.clear();
            if let Err(error) = encoder.encode(&frame.samples, payload) {
                tracing::debug!(%error, leg = %self.id, "transcoded frame not encoded");
                continue;
            }
            let Some(out) = self.rewriter.forward(source, frame.sequence, frame.timestamp, frame.marker, now)
            else {
                continue;
            };
            self.send_media(out, codec.payload_type, payload, now, packet);
        }
    }

    /// Sends one packet of our outgoing stream: audio, or (plain RTP only) a telephone-event.
    fn send_media(
        &mut self,
        out: Rewritten,
        payload_type: u8,
        payload: &[u8],
        now: Instant,
        packet: &mut Vec<u8>,
    ) {
        let sent = match &mut self.transport {
            Transport::Rtp { rtp, .. } => {
                let Some(destination) = self.latch.destination() else { return };
                packet.clear();
                rtp::write_simple(
                    out.marker,
                    payload_type,
                    out.sequence,
                    out.timestamp,
                    out.ssrc,
                    payload,
                    packet,
                );
                match rtp.try_send_to(packet, destination) {
                    Ok(_) => true,
                    Err(error) => {
                        tracing::trace!(%error, "RTP send dropped");
                        false
                    }
                }
            }
            #[cfg(feature = "webrtc")]
            Transport::WebRtc(webrtc) => {
                webrtc.write_audio(payload_type, out.timestamp, out.marker, payload, now)
            }
        };
        let _ = now;
        if sent {
            self.packets_sent += 1;
            self.bytes_sent += (12 + payload.len()) as u64;
            self.payload_bytes_sent += payload.len() as u64;
        }
    }

    /// Relays a telephone-event packet: as is on plain RTP, as a whole event on WebRTC.
    fn send_event(
        &mut self,
        out: Rewritten,
        payload_type: u8,
        payload: &[u8],
        now: Instant,
        packet: &mut Vec<u8>,
    ) {
        #[cfg(feature = "webrtc")]
        if let Transport::WebRtc(webrtc) = &mut self.transport {
            if webrtc.relay_event(payload, out.timestamp, now) {
                self.packets_sent += 1;
            }
            return;
        }
        self.send_media(out, payload_type, payload, now, packet);
    }

    fn on_rtcp(&mut self, datagram: &[u8], from: SocketAddr, now: Instant, is_rtcp_port: bool) {
        if is_rtcp_port && !self.rtcp_latch.on_packet(from, now) {
            return;
        }
        let Ok(info) = rtp::parse_rtcp(datagram) else { return };
        self.rtcp_received += 1;
        if let Some(sender) = info.sender_info {
            self.stats.sender_report_received(sender.ntp, now);
        }
    }

    fn tick_playback(&mut self, now: Instant, payload: &mut Vec<u8>, packet: &mut Vec<u8>) {
        let Some(codec) = self.codec.filter(|_| self.can_send()) else { return };
        let Some(playing) = &mut self.playback else { return };
        payload.clear();
        match &mut self.encoder {
            Some(encoder @ Encoder::Opus(_)) => {
                let mut frame = [0i16; FRAME_SAMPLES];
                playing.source.next_frame(&mut frame);
                if let Err(error) = encoder.encode(&frame, payload) {
                    tracing::debug!(%error, "playback frame not encoded");
                }
            }
            // G.711: sources may hand out frames they encoded once (hold music).
            _ => playing.source.next_encoded(codec.kind, payload),
        }
        let (sequence, timestamp) = (playing.sequence, playing.timestamp);
        playing.sequence = sequence.wrapping_add(1);
        playing.timestamp = timestamp.wrapping_add(codec.kind.frame_ticks());
        let Some(out) = self.rewriter.forward(self.epoch << 32, sequence, timestamp, false, now) else {
            return;
        };
        self.send_media(out, codec.payload_type, payload, now, packet);
    }

    fn tick_dtmf(&mut self, now: Instant, packet: &mut Vec<u8>) {
        if self.dtmf_pause > 0 {
            self.dtmf_pause -= 1;
            return;
        }
        let Some(codec) = self.codec.filter(|_| self.can_send()) else { return };
        let Some(payload_type) = codec.dtmf_payload_type else {
            self.dtmf_out.clear();
            return;
        };
        let Some(digit) = self.dtmf_out.front_mut() else { return };
        let timestamp = *digit.timestamp.get_or_insert_with(|| self.rewriter.timestamp_at(now));
        #[cfg(feature = "webrtc")]
        if let Transport::WebRtc(webrtc) = &mut self.transport {
            // str0m sends whole events: hand it the press once, with its final duration.
            let last = digit.packets.back().and_then(|p| dtmf::TelephoneEvent::parse(&p.payload));
            let Some(last) = last else {
                self.dtmf_out.pop_front();
                return;
            };
            let duration =
                Duration::from_micros(u64::from(last.duration) * 1_000_000 / u64::from(CLOCK_RATE));
            if webrtc.write_event(last.event, last.volume, duration, timestamp, now) {
                self.packets_sent += digit.packets.len() as u64;
                self.dtmf_out.pop_front();
            }
            return;
        }
        let next = digit.packets.pop_front();
        if digit.packets.is_empty() {
            self.dtmf_out.pop_front();
            self.dtmf_pause = DTMF_GAP_TICKS;
        }
        let Some(event) = next else { return };
        let sequence = self.rewriter.next_local_sequence(now);
        let out = Rewritten { ssrc: self.rewriter.ssrc(), sequence, timestamp, marker: event.marker };
        self.send_media(out, payload_type, &event.payload, now, packet);
    }

    #[cfg_attr(not(feature = "webrtc"), expect(irrefutable_let_patterns))]
    fn send_rtcp(&mut self, now: Instant, wall: SystemTime, packet: &mut Vec<u8>) {
        // WebRTC legs: str0m sends its own reports.
        let Transport::Rtp { rtcp, .. } = &self.transport else { return };
        let rtcp = rtcp.clone();
        let destination = self.rtcp_latch.destination();
        let sender = (self.packets_sent > 0).then(|| SenderInfo {
            ntp: rtp::ntp_from_unix(wall.duration_since(UNIX_EPOCH).unwrap_or_default()),
            rtp_timestamp: self.rewriter.timestamp_at(now),
            packets: self.packets_sent as u32,
            octets: self.payload_bytes_sent as u32,
        });
        let block = self.stats.report_block(now);
        let Some(destination) = destination else { return };
        packet.clear();
        rtp::build_report(self.rewriter.ssrc(), sender, block.as_slice(), &self.cname, packet);
        if let Err(error) = rtcp.try_send_to(packet, destination) {
            tracing::trace!(%error, "RTCP send dropped");
        }
    }

    fn stats(&self) -> LegStats {
        LegStats {
            packets_received: self.packets_received,
            packets_sent: self.packets_sent,
            bytes_received: self.bytes_received,
            bytes_sent: self.bytes_sent,
            packets_lost: self.stats.lost(),
            jitter_ms: self.stats.jitter_ms(),
            remote: self.destination(),
            codec: self.codec.map(|c| c.kind.rtpmap_name()),
            dtmf_received: self.dtmf_received.clone(),
            rtcp_received: self.rtcp_received,
        }
    }
}

impl Conference {
    /// One 20 ms round: every member that can hear gets the sum of the others' frames.
    fn tick(
        &mut self,
        legs: &mut HashMap<u64, LegState>,
        now: Instant,
        payload: &mut Vec<u8>,
        packet: &mut Vec<u8>,
        mix: &mut Vec<i16>,
    ) {
        let mut frames: Vec<(u64, [i16; FRAME_SAMPLES])> = Vec::with_capacity(self.inputs.len());
        for (&index, input) in &mut self.inputs {
            let mut frame = [0i16; FRAME_SAMPLES];
            if input.take_frame(&mut frame) {
                frames.push((index, frame));
            }
        }
        for (&index, (sequence, timestamp)) in &mut self.outputs {
            let Some(leg) = legs.get_mut(&index) else { continue };
            let Some(codec) = leg.codec.filter(|_| leg.can_send() && leg.playback.is_none()) else {
                continue;
            };
            let Some(encoder) = &mut leg.encoder else { continue };
            mix.clear();
            mix.resize(FRAME_SAMPLES, 0);
            for (_, frame) in frames.iter().filter(|(from, _)| *from != index) {
                for (sum, sample) in mix.iter_mut().zip(frame) {
                    *sum = sum.saturating_add(*sample);
                }
            }
            payload.clear();
            if let Err(error) = encoder.encode(mix, payload) {
                tracing::debug!(%error, "conference frame not encoded");
                continue;
            }
            let (seq, ts) = (*sequence, *timestamp);
            *sequence = seq.wrapping_add(1);
            *timestamp = ts.wrapping_add(codec.kind.frame_ticks());
            if let Some(out) = leg.rewriter.forward(leg.epoch << 32, seq, ts, false, now) {
                leg.send_media(out, codec.payload_type, payload, now, packet);
            }
        }
    }
}

/// Received audio of one side of a recording, waiting for the next 20 ms tick.
#[derive(Default)]
struct RecordChannel {
    queue: VecDeque<i16>,
    /// Whether enough is buffered to play out: two frames absorb one packet of jitter
    /// against the tick, so a steady stream does not alternate between a frame and a gap.
    primed: bool,
}

impl RecordChannel {
    fn push(&mut self, pcm: &[i16]) {
        self.queue.extend(pcm);
        while self.queue.len() > RECORD_MAX_BUFFER {
            self.queue.pop_front();
        }
    }

    fn take_frame(&mut self, frame: &mut [i16; FRAME_SAMPLES]) -> bool {
        if !self.primed {
            if self.queue.len() < 2 * FRAME_SAMPLES {
                return false;
            }
            self.primed = true;
        }
        if self.queue.is_empty() {
            self.primed = false;
            return false;
        }
        for s in frame.iter_mut() {
            *s = self.queue.pop_front().unwrap_or(0);
        }
        true
    }
}

struct Recording {
    left: u64,
    right: u64,
    path: PathBuf,
    writer: Option<StereoWavWriter<BufWriter<File>>>,
    channels: [RecordChannel; 2],
    error: Option<std::io::Error>,
}

impl Recording {
    fn tick(&mut self) {
        let Some(writer) = &mut self.writer else { return };
        let mut left = [0i16; FRAME_SAMPLES];
        let mut right = [0i16; FRAME_SAMPLES];
        let [l, r] = &mut self.channels;
        let has_left = l.take_frame(&mut left);
        let has_right = r.take_frame(&mut right);
        let result =
            writer.write_frame(has_left.then_some(left.as_slice()), has_right.then_some(right.as_slice()));
        if let Err(error) = result {
            tracing::warn!(%error, "recording write failed; recording stopped");
            self.error = Some(error);
            self.writer = None;
        }
    }

    fn finish(mut self) -> Result<RecordingInfo, MediaError> {
        if let Some(error) = self.error.take() {
            return Err(MediaError::Io(error));
        }
        let writer = self.writer.take().ok_or(MediaError::UnknownLeg)?;
        let (file, summary) = writer.finish()?;
        // Flushed here; made durable by `Media::stop_record` off this thread (an fsync on a
        // busy disk can take seconds, and this thread carries every call of the shard).
        drop(file.into_inner().map_err(|e| MediaError::Io(e.into_error()))?);
        Ok(RecordingInfo { path: self.path, duration_ms: summary.duration_ms, bytes: summary.file_bytes })
    }
}

/// Legs that hear each other mixed.
struct Conference {
    /// Member leg index → its received audio, waiting for the next tick.
    inputs: HashMap<u64, RecordChannel>,
    /// Member leg index → the numbering of the mix we send it.
    outputs: HashMap<u64, (u16, u32)>,
}

struct Shard {
    settings: Settings,
    conferences: HashMap<u64, Conference>,
    next_conference: u64,
    ports: PortPool,
    legs: HashMap<u64, LegState>,
    /// By the index of the recording's left leg.
    recordings: HashMap<u64, Recording>,
    next_index: u64,
    packet: Vec<u8>,
    payload: Vec<u8>,
    pcm: Vec<i16>,
    segments: Vec<Segment>,
    #[cfg(feature = "webrtc")]
    inbound: Vec<Inbound>,
}

impl Shard {
    fn new(settings: Settings) -> Self {
        Self {
            conferences: HashMap::new(),
            next_conference: 0,
            ports: PortPool::new(&settings),
            settings,
            legs: HashMap::new(),
            recordings: HashMap::new(),
            next_index: 0,
            packet: Vec::with_capacity(1500),
            payload: Vec::with_capacity(FRAME_SAMPLES),
            pcm: Vec::with_capacity(FRAME_SAMPLES),
            segments: Vec::with_capacity(REORDER_SEGMENTS),
            #[cfg(feature = "webrtc")]
            inbound: Vec::new(),
        }
    }

    fn index_of(&self, id: LegId) -> Result<u64, MediaError> {
        if id.shard == self.settings.index && self.legs.contains_key(&id.index) {
            Ok(id.index)
        } else {
            Err(MediaError::UnknownLeg)
        }
    }

    fn leg(&mut self, id: LegId) -> Result<&mut LegState, MediaError> {
        let index = self.index_of(id)?;
        self.legs.get_mut(&index).ok_or(MediaError::UnknownLeg)
    }

    fn on_datagram(
        &mut self,
        index: u64,
        is_rtcp_port: bool,
        datagram: &[u8],
        from: SocketAddr,
        now: Instant,
    ) {
        let Some(leg) = self.legs.get_mut(&index) else { return };
        match &mut leg.transport {
            Transport::Rtp { .. } => {
                if is_rtcp_port || rtp::is_rtcp(datagram) {
                    leg.on_rtcp(datagram, from, now, is_rtcp_port);
                    return;
                }
                let Ok(packet) = RtpPacket::parse(datagram) else { return };
                if !leg.latch.on_packet(from, now) {
                    return;
                }
                leg.bytes_received += datagram.len() as u64;
                let header = &packet.header;
                let media = MediaIn {
                    ssrc: header.ssrc,
                    payload_type: header.payload_type,
                    sequence: header.sequence,
                    timestamp: header.timestamp,
                    marker: header.marker,
                    payload: packet.payload,
                };
                self.on_media(index, &media, now);
            }
            #[cfg(feature = "webrtc")]
            Transport::WebRtc(webrtc) => {
                leg.bytes_received += datagram.len() as u64;
                webrtc.handle_datagram(from, datagram, now);
                self.take_webrtc_media(index, now);
            }
        }
    }

    /// Runs media str0m produced for a WebRTC leg through the common pipeline.
    #[cfg(feature = "webrtc")]
    fn take_webrtc_media(&mut self, index: u64, now: Instant) {
        let mut inbound = std::mem::take(&mut self.inbound);
        if let Some(LegState { id, transport: Transport::WebRtc(webrtc), .. }) = self.legs.get_mut(&index) {
            webrtc.take_pending(&mut inbound);
            if let Some(connected) = webrtc.take_connection_change() {
                let leg = *id;
                let event = if connected {
                    MediaEvent::WebRtcConnected { leg }
                } else {
                    MediaEvent::WebRtcDisconnected { leg }
                };
                let _ = self.settings.events.send(event);
            }
        }
        for packet in inbound.drain(..) {
            let media = MediaIn {
                // str0m's frame API does not expose the SSRC; one per leg is what browsers send.
                ssrc: 0,
                payload_type: packet.payload_type,
                sequence: packet.sequence,
                timestamp: packet.timestamp,
                marker: packet.marker,
                payload: &packet.data,
            };
            self.on_media(index, &media, now);
        }
        self.inbound = inbound;
    }

    /// The common receive path: stats, DTMF, recording tap, relay into the bridged peer.
    fn on_media(&mut self, index: u64, media: &MediaIn<'_>, now: Instant) {
        let Self {
            legs,
            recordings,
            conferences,
            packet: out,
            payload: scratch,
            pcm,
            segments,
            settings,
            ..
        } = self;
        // The bridged peer's codec decides whether payloads relay as they are or are transcoded.
        let peer_kind = legs
            .get(&index)
            .and_then(|l| l.bridge)
            .and_then(|p| legs.get(&p))
            .and_then(|p| p.codec)
            .map(|c| c.kind);
        let Some(leg) = legs.get_mut(&index) else { return };
        leg.packets_received += 1;
        let kind = leg.classify(media.payload_type);
        let own_kind = leg.codec.map(|c| c.kind);
        let mut digit = None;
        match kind {
            PayloadKind::Audio(codec) => {
                leg.stats.record(media.ssrc, media.sequence, media.timestamp, now);
                pcm.clear();
                segments.clear();
                let transcode =
                    leg.conference.is_none() && peer_kind.is_some_and(|peer| !codec.relays_to(peer));
                // Decoded once, for everything that needs PCM (Opus decoder state advances), in
                // sequence order, lost packets concealed.
                if leg.recording.is_some() || leg.conference.is_some() || transcode {
                    let (decoder, id) = (&mut leg.decoder, leg.id);
                    let clock = u64::from(codec.clock_rate());
                    leg.jitter.push(
                        media.ssrc,
                        media.sequence,
                        media.timestamp,
                        media.marker,
                        media.payload,
                        |release| {
                            let Some(decoder) = decoder.as_mut() else { return };
                            let start = pcm.len();
                            let (timestamp, marker) = match release {
                                Release::Packet { timestamp, marker, payload, .. } => {
                                    if let Err(error) = decoder.decode(payload, pcm) {
                                        tracing::trace!(%error, leg = %id, "payload not decodable");
                                    }
                                    (timestamp, marker)
                                }
                                Release::Lost { timestamp, duration, .. } => {
                                    let samples = u64::from(duration) * u64::from(CLOCK_RATE) / clock;
                                    decoder.conceal(samples as usize, pcm);
                                    (timestamp, false)
                                }
                            };
                            if pcm.len() > start {
                                segments.push(Segment { timestamp, marker, start, end: pcm.len() });
                            }
                        },
                    );
                } else {
                    leg.jitter.reset();
                }
                if let Some((recording, channel)) = leg.recording
                    && let Some(recording) = recordings.get_mut(&recording)
                    && let Some(channel) = recording.channels.get_mut(channel)
                {
                    channel.push(pcm);
                }
                if let Some(conference) = leg.conference
                    && let Some(input) =
                        conferences.get_mut(&conference).and_then(|c| c.inputs.get_mut(&index))
                {
                    input.push(pcm);
                }
            }
            PayloadKind::Event => {
                leg.stats.record_untimed(media.ssrc, media.sequence);
                if let Some(key) = leg.dtmf_receiver.on_packet(media.timestamp, media.payload) {
                    leg.dtmf_received.push(key);
                    digit = Some(key);
                    // Nobody listening is fine: the digit is in the stats too.
                    let _ = settings.events.send(MediaEvent::Dtmf { leg: leg.id, digit: key });
                }
            }
            PayloadKind::Other => {
                leg.stats.record_untimed(media.ssrc, media.sequence);
                return;
            }
        }
        if leg.conference.is_some() {
            return;
        }
        let Some(peer_index) = leg.bridge else { return };

        // Relay into the peer, as the peer's own outgoing stream.
        let Some(peer) = legs.get_mut(&peer_index) else { return };
        if peer.playback.is_some() || peer.bridge != Some(index) || !peer.can_send() {
            return;
        }
        let Some(peer_codec) = peer.codec else { return };
        let key = peer.epoch << 32 | u64::from(media.ssrc);
        match kind {
            PayloadKind::Audio(from_kind) if !from_kind.relays_to(peer_codec.kind) => {
                for segment in segments.iter() {
                    let Some(samples) = pcm.get(segment.start..segment.end) else { continue };
                    let source = (key, from_kind.clock_rate());
                    peer.relay_transcoded(source, segment, samples, now, scratch, out);
                }
                return;
            }
            // Another codec family has another RTP clock: the key press is sent again as the
            // peer's own event (100 ms), not relayed packet by packet.
            PayloadKind::Event if own_kind.is_some_and(|k| !k.relays_to(peer_codec.kind)) => {
                if let Some(digit) = digit {
                    peer.queue_digit(digit);
                }
                return;
            }
            _ => {}
        }
        let Some(rewritten) = peer.rewriter.forward(key, media.sequence, media.timestamp, media.marker, now)
        else {
            return;
        };
        match kind {
            PayloadKind::Audio(from_kind) => {
                scratch.clear();
                scratch.extend_from_slice(media.payload);
                from_kind.transcode_in_place(peer_codec.kind, scratch);
                peer.send_media(rewritten, peer_codec.payload_type, scratch, now, out);
            }
            PayloadKind::Event => {
                if let Some(payload_type) = peer_codec.dtmf_payload_type {
                    peer.send_event(rewritten, payload_type, media.payload, now, out);
                }
            }
            PayloadKind::Other => {}
        }
    }

    fn on_tick(&mut self, now: Instant, wall: SystemTime) {
        #[cfg(feature = "webrtc")]
        self.tick_webrtc(now);
        let Self { legs, recordings, conferences, packet, payload, pcm, .. } = self;
        for conference in conferences.values_mut() {
            conference.tick(legs, now, payload, packet, pcm);
        }
        for leg in legs.values_mut() {
            leg.tick_playback(now, payload, packet);
            leg.tick_dtmf(now, packet);
            if now >= leg.next_rtcp {
                leg.send_rtcp(now, wall, packet);
                leg.next_rtcp += RTCP_INTERVAL;
                if leg.next_rtcp < now {
                    leg.next_rtcp = now + RTCP_INTERVAL;
                }
            }
        }
        for recording in recordings.values_mut() {
            recording.tick();
        }
    }

    /// Feeds due timeouts to WebRTC legs and relays media their writes produced.
    #[cfg(feature = "webrtc")]
    fn tick_webrtc(&mut self, now: Instant) {
        let mut ready = Vec::new();
        for (index, leg) in &mut self.legs {
            if let Transport::WebRtc(webrtc) = &mut leg.transport {
                if webrtc.due(now) {
                    webrtc.handle_timeout(now);
                }
                if webrtc.has_pending() || webrtc.has_connection_change() {
                    ready.push(*index);
                }
            }
        }
        for index in ready {
            self.take_webrtc_media(index, now);
        }
    }

    fn set_remote(&mut self, id: LegId, remote: SocketAddr, codec: Codec) -> Result<(), MediaError> {
        let leg = self.leg(id)?;
        leg.set_codec(codec);
        leg.latch.set_signalled(remote);
        leg.rtcp_latch.set_signalled(SocketAddr::new(remote.ip(), remote.port().wrapping_add(1)));
        Ok(())
    }

    fn play(&mut self, id: LegId, source: Box<dyn FrameSource + Send>) -> Result<(), MediaError> {
        let leg = self.leg(id)?;
        leg.playback = Some(Playing { source, sequence: rand::random(), timestamp: rand::random() });
        leg.switch_output();
        Ok(())
    }

    fn stop_play(&mut self, id: LegId) -> Result<(), MediaError> {
        let leg = self.leg(id)?;
        if leg.playback.take().is_some() {
            leg.switch_output();
        }
        Ok(())
    }

    /// Detaches `index` from its bridge partner, if any.
    fn detach_bridge(&mut self, index: u64) {
        let Some(leg) = self.legs.get_mut(&index) else { return };
        let Some(peer_index) = leg.bridge.take() else { return };
        leg.switch_output();
        if let Some(peer) = self.legs.get_mut(&peer_index)
            && peer.bridge == Some(index)
        {
            peer.bridge = None;
            peer.switch_output();
        }
    }

    fn bridge(&mut self, a: LegId, b: LegId) -> Result<(), MediaError> {
        let (a, b) = (self.index_of(a)?, self.index_of(b)?);
        self.leave_conference(a);
        self.leave_conference(b);
        for (this, other) in [(a, b), (b, a)] {
            if self.legs.get(&this).is_some_and(|l| l.bridge.is_some_and(|p| p != other)) {
                self.detach_bridge(this);
            }
        }
        for (this, other) in [(a, b), (b, a)] {
            if let Some(leg) = self.legs.get_mut(&this) {
                leg.bridge = Some(other);
                leg.playback = None;
                leg.switch_output();
            }
        }
        Ok(())
    }

    fn unbridge(&mut self, a: LegId, b: LegId) -> Result<(), MediaError> {
        let (a, b) = (self.index_of(a)?, self.index_of(b)?);
        if self.legs.get(&a).is_some_and(|l| l.bridge == Some(b)) {
            self.detach_bridge(a);
        }
        Ok(())
    }

    fn conference(&mut self, ids: &[LegId]) -> Result<(), MediaError> {
        let mut members = Vec::with_capacity(ids.len());
        for id in ids {
            let index = self.index_of(*id)?;
            if members.contains(&index) {
                return Err(MediaError::SameLeg);
            }
            members.push(index);
        }
        for &index in &members {
            self.detach_bridge(index);
            self.leave_conference(index);
        }
        let id = self.next_conference;
        self.next_conference += 1;
        let mut conference = Conference { inputs: HashMap::new(), outputs: HashMap::new() };
        for &index in &members {
            if let Some(leg) = self.legs.get_mut(&index) {
                leg.conference = Some(id);
                leg.playback = None;
                leg.switch_output();
            }
            conference.inputs.insert(index, RecordChannel::default());
            conference.outputs.insert(index, (rand::random(), rand::random()));
        }
        self.conferences.insert(id, conference);
        Ok(())
    }

    /// Takes `index` out of its conference (which ends with its last member).
    fn leave_conference(&mut self, index: u64) {
        let Some(leg) = self.legs.get_mut(&index) else { return };
        let Some(id) = leg.conference.take() else { return };
        leg.switch_output();
        if let Some(conference) = self.conferences.get_mut(&id) {
            conference.inputs.remove(&index);
            conference.outputs.remove(&index);
            if conference.inputs.is_empty() {
                self.conferences.remove(&id);
            }
        }
    }

    fn record(&mut self, left: LegId, right: LegId, path: PathBuf) -> Result<(), MediaError> {
        let (left, right) = (self.index_of(left)?, self.index_of(right)?);
        // The caller's recording goes on with another agent on the right channel.
        if let Some(recording) = self.recordings.get_mut(&left) {
            if self.legs.get(&right).is_some_and(|l| l.recording.is_some()) {
                return Err(MediaError::AlreadyRecording);
            }
            let old = std::mem::replace(&mut recording.right, right);
            if let Some(leg) = self.legs.get_mut(&old) {
                leg.recording = None;
            }
            if let Some(leg) = self.legs.get_mut(&right) {
                leg.recording = Some((left, 1));
            }
            return Ok(());
        }
        if [left, right].iter().any(|i| self.legs.get(i).is_some_and(|l| l.recording.is_some())) {
            return Err(MediaError::AlreadyRecording);
        }
        let writer = StereoWavWriter::new(BufWriter::new(File::create(&path)?))?;
        self.recordings.insert(
            left,
            Recording { left, right, path, writer: Some(writer), channels: Default::default(), error: None },
        );
        for (index, channel) in [(left, 0), (right, 1)] {
            if let Some(leg) = self.legs.get_mut(&index) {
                leg.recording = Some((left, channel));
            }
        }
        Ok(())
    }

    fn finish_recording(&mut self, left: u64) -> Option<Result<RecordingInfo, MediaError>> {
        let recording = self.recordings.remove(&left)?;
        for index in [recording.left, recording.right] {
            if let Some(leg) = self.legs.get_mut(&index) {
                leg.recording = None;
            }
        }
        Some(recording.finish())
    }

    fn stop_record(&mut self, left: LegId) -> Result<Option<RecordingInfo>, MediaError> {
        if left.shard != self.settings.index {
            return Err(MediaError::UnknownLeg);
        }
        match self.finish_recording(left.index) {
            Some(result) => result.map(Some),
            None if self.legs.contains_key(&left.index) => Ok(None),
            None => Err(MediaError::UnknownLeg),
        }
    }

    fn send_dtmf(&mut self, id: LegId, digit: char) -> Result<(), MediaError> {
        let leg = self.leg(id)?;
        if leg.codec.and_then(|c| c.dtmf_payload_type).is_none() {
            return Err(MediaError::NoDtmf);
        }
        if dtmf::digit_to_event(digit).is_none() {
            return Err(MediaError::InvalidDigit(digit));
        }
        leg.queue_digit(digit);
        Ok(())
    }

    /// Removes a leg; the caller aborts and awaits its reader tasks, then releases the port.
    fn close_leg(&mut self, id: LegId) -> Result<(LegStats, Vec<JoinHandle<()>>, u16), MediaError> {
        let index = self.index_of(id)?;
        self.detach_bridge(index);
        self.leave_conference(index);
        // The caller's leg ends the recording; an agent's leg only leaves its channel.
        match self.legs.get(&index).and_then(|l| l.recording) {
            Some((left, 0)) => {
                if let Some(Err(error)) = self.finish_recording(left) {
                    tracing::warn!(%error, "recording could not be finished");
                }
            }
            Some((left, _)) => {
                if let Some(recording) = self.recordings.get_mut(&left) {
                    recording.right = u64::MAX;
                }
            }
            None => {}
        }
        #[cfg_attr(not(feature = "webrtc"), expect(unused_mut))]
        let mut leg = self.legs.remove(&index).ok_or(MediaError::UnknownLeg)?;
        #[cfg(feature = "webrtc")]
        if let Transport::WebRtc(webrtc) = &mut leg.transport {
            webrtc.close();
        }
        let stats = leg.stats();
        tracing::debug!(leg = %leg.id, "media leg closed");
        Ok((stats, leg.tasks, leg.port))
    }

    /// Shutdown: finish recordings, drop every leg, hand back the reader tasks to abort.
    fn close_all(&mut self) -> Vec<JoinHandle<()>> {
        let lefts: Vec<u64> = self.recordings.keys().copied().collect();
        for left in lefts {
            if let Some(Err(error)) = self.finish_recording(left) {
                tracing::warn!(%error, "recording could not be finished at shutdown");
            }
        }
        self.legs.drain().flat_map(|(_, leg)| leg.tasks).collect()
    }
}
