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
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, LocalSet};

use super::{Command, Leg, LegId, LegStats, MediaError, RecordingInfo};
use crate::codec::{CLOCK_RATE, Codec, CodecKind, FRAME_SAMPLES};
use crate::dtmf::{self, DtmfReceiver, EventPacket};
use crate::latch::Latch;
use crate::rtp::{self, ReceiveStats, Rewriter, RtpPacket, SenderInfo};
use crate::tone::FrameSource;
use crate::wav::StereoWavWriter;

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
/// Recording buffers hold at most this much per side; older audio is dropped.
const RECORD_MAX_BUFFER: usize = FRAME_SAMPLES * 10;

pub(super) struct Settings {
    pub(super) index: u32,
    pub(super) shard_count: usize,
    pub(super) bind_ip: IpAddr,
    pub(super) advertised: IpAddr,
    pub(super) port_min: u16,
    pub(super) port_max: u16,
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
    let tasks = [
        tokio::task::spawn_local(read_loop(shard.clone(), index, rtp_socket.clone(), false)),
        tokio::task::spawn_local(read_loop(shard.clone(), index, rtcp_socket.clone(), true)),
    ];
    let local = SocketAddr::new(state.settings.advertised, port);
    let now = Instant::now();
    state.legs.insert(index, LegState::new(id, port, rtp_socket, rtcp_socket, tasks, now));
    Ok(Leg { id, local })
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

struct LegState {
    id: LegId,
    port: u16,
    rtp: Rc<UdpSocket>,
    rtcp: Rc<UdpSocket>,
    tasks: [JoinHandle<()>; 2],
    codec: Option<Codec>,
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
    next_rtcp: Instant,
    cname: String,
}

impl LegState {
    fn new(
        id: LegId,
        port: u16,
        rtp: Rc<UdpSocket>,
        rtcp: Rc<UdpSocket>,
        tasks: [JoinHandle<()>; 2],
        now: Instant,
    ) -> Self {
        Self {
            id,
            port,
            rtp,
            rtcp,
            tasks,
            codec: None,
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
            next_rtcp: now + RTCP_FIRST,
            cname: format!("sivo-{id}@{:08x}", rand::random::<u32>()),
        }
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

    fn send_rtp(&mut self, packet: &[u8], destination: SocketAddr) {
        match self.rtp.try_send_to(packet, destination) {
            Ok(_) => {
                self.packets_sent += 1;
                self.bytes_sent += packet.len() as u64;
                self.payload_bytes_sent += packet.len().saturating_sub(12) as u64;
            }
            Err(error) => tracing::trace!(%error, "RTP send dropped"),
        }
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
        let (Some(codec), Some(destination)) = (self.codec, self.latch.destination()) else { return };
        let Some(playing) = &mut self.playback else { return };
        payload.clear();
        playing.source.next_encoded(codec.kind, payload);
        let (sequence, timestamp) = (playing.sequence, playing.timestamp);
        playing.sequence = sequence.wrapping_add(1);
        playing.timestamp = timestamp.wrapping_add(FRAME_SAMPLES as u32);
        let Some(out) = self.rewriter.forward(self.epoch << 32, sequence, timestamp, false, now) else {
            return;
        };
        packet.clear();
        rtp::write_simple(
            out.marker,
            codec.payload_type,
            out.sequence,
            out.timestamp,
            out.ssrc,
            payload,
            packet,
        );
        self.send_rtp(packet, destination);
    }

    fn tick_dtmf(&mut self, now: Instant, packet: &mut Vec<u8>) {
        if self.dtmf_pause > 0 {
            self.dtmf_pause -= 1;
            return;
        }
        let (Some(codec), Some(destination)) = (self.codec, self.latch.destination()) else { return };
        let Some(payload_type) = codec.dtmf_payload_type else {
            self.dtmf_out.clear();
            return;
        };
        let Some(digit) = self.dtmf_out.front_mut() else { return };
        let timestamp = *digit.timestamp.get_or_insert_with(|| self.rewriter.timestamp_at(now));
        let next = digit.packets.pop_front();
        let finished = digit.packets.is_empty();
        if finished {
            self.dtmf_out.pop_front();
            self.dtmf_pause = DTMF_GAP_TICKS;
        }
        let Some(event) = next else { return };
        let sequence = self.rewriter.next_local_sequence(now);
        packet.clear();
        rtp::write_simple(
            event.marker,
            payload_type,
            sequence,
            timestamp,
            self.rewriter.ssrc(),
            &event.payload,
            packet,
        );
        self.send_rtp(packet, destination);
    }

    fn send_rtcp(&mut self, now: Instant, wall: SystemTime, packet: &mut Vec<u8>) {
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
        if let Err(error) = self.rtcp.try_send_to(packet, destination) {
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
            remote: self.latch.destination(),
            codec: self.codec.map(|c| format!("{}/{CLOCK_RATE}", c.kind.encoding_name())),
            dtmf_received: self.dtmf_received.clone(),
            rtcp_received: self.rtcp_received,
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
        file.into_inner().map_err(|e| MediaError::Io(e.into_error()))?.sync_all()?;
        Ok(RecordingInfo { path: self.path, duration_ms: summary.duration_ms, bytes: summary.file_bytes })
    }
}

struct Shard {
    settings: Settings,
    ports: PortPool,
    legs: HashMap<u64, LegState>,
    /// By the index of the recording's left leg.
    recordings: HashMap<u64, Recording>,
    next_index: u64,
    packet: Vec<u8>,
    payload: Vec<u8>,
    pcm: Vec<i16>,
}

impl Shard {
    fn new(settings: Settings) -> Self {
        Self {
            ports: PortPool::new(&settings),
            settings,
            legs: HashMap::new(),
            recordings: HashMap::new(),
            next_index: 0,
            packet: Vec::with_capacity(1500),
            payload: Vec::with_capacity(FRAME_SAMPLES),
            pcm: Vec::with_capacity(FRAME_SAMPLES),
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
        let Self { legs, recordings, packet: out, pcm, .. } = self;
        let Some(leg) = legs.get_mut(&index) else { return };
        if is_rtcp_port || rtp::is_rtcp(datagram) {
            leg.on_rtcp(datagram, from, now, is_rtcp_port);
            return;
        }
        let Ok(packet) = RtpPacket::parse(datagram) else { return };
        if !leg.latch.on_packet(from, now) {
            return;
        }
        let header = &packet.header;
        leg.packets_received += 1;
        leg.bytes_received += datagram.len() as u64;
        let kind = leg.classify(header.payload_type);
        match kind {
            PayloadKind::Audio(codec) => {
                leg.stats.record(header.ssrc, header.sequence, header.timestamp, now);
                if let Some((recording, channel)) = leg.recording
                    && let Some(recording) = recordings.get_mut(&recording)
                    && let Some(channel) = recording.channels.get_mut(channel)
                {
                    pcm.clear();
                    codec.decode(packet.payload, pcm);
                    channel.push(pcm);
                }
            }
            PayloadKind::Event => {
                leg.stats.record_untimed(header.ssrc, header.sequence);
                if let Some(digit) = leg.dtmf_receiver.on_packet(header.timestamp, packet.payload) {
                    leg.dtmf_received.push(digit);
                }
            }
            PayloadKind::Other => {
                leg.stats.record_untimed(header.ssrc, header.sequence);
                return;
            }
        }
        let Some(peer_index) = leg.bridge else { return };

        // Relay into the peer, as the peer's own outgoing stream.
        let Some(peer) = legs.get_mut(&peer_index) else { return };
        if peer.playback.is_some() || peer.bridge != Some(index) {
            return;
        }
        let (Some(peer_codec), Some(destination)) = (peer.codec, peer.latch.destination()) else { return };
        let (payload_type, transcode) = match kind {
            PayloadKind::Audio(from_kind) => (peer_codec.payload_type, Some((from_kind, peer_codec.kind))),
            PayloadKind::Event => match peer_codec.dtmf_payload_type {
                Some(pt) => (pt, None),
                None => return,
            },
            PayloadKind::Other => return,
        };
        let key = peer.epoch << 32 | u64::from(header.ssrc);
        let Some(rewritten) =
            peer.rewriter.forward(key, header.sequence, header.timestamp, header.marker, now)
        else {
            return;
        };
        out.clear();
        rtp::write_simple(
            rewritten.marker,
            payload_type,
            rewritten.sequence,
            rewritten.timestamp,
            rewritten.ssrc,
            packet.payload,
            out,
        );
        if let Some((from_kind, to_kind)) = transcode
            && let Some(payload) = out.get_mut(12..)
        {
            from_kind.transcode_in_place(to_kind, payload);
        }
        peer.send_rtp(out, destination);
    }

    fn on_tick(&mut self, now: Instant, wall: SystemTime) {
        let Self { legs, recordings, packet, payload, .. } = self;
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

    fn set_remote(&mut self, id: LegId, remote: SocketAddr, codec: Codec) -> Result<(), MediaError> {
        let leg = self.leg(id)?;
        leg.codec = Some(codec);
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

    fn record(&mut self, left: LegId, right: LegId, path: PathBuf) -> Result<(), MediaError> {
        let (left, right) = (self.index_of(left)?, self.index_of(right)?);
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
        let packets = dtmf::digit_packets(digit, dtmf::DIGIT_MS, dtmf::DIGIT_VOLUME)
            .ok_or(MediaError::InvalidDigit(digit))?;
        leg.dtmf_out.push_back(OutgoingDigit { packets: packets.into(), timestamp: None });
        Ok(())
    }

    /// Removes a leg; the caller aborts and awaits its reader tasks, then releases the port.
    fn close_leg(&mut self, id: LegId) -> Result<(LegStats, [JoinHandle<()>; 2], u16), MediaError> {
        let index = self.index_of(id)?;
        self.detach_bridge(index);
        let recording = self.legs.get(&index).and_then(|l| l.recording).map(|(left, _)| left);
        if let Some(left) = recording
            && let Some(Err(error)) = self.finish_recording(left)
        {
            tracing::warn!(%error, "recording could not be finished");
        }
        let leg = self.legs.remove(&index).ok_or(MediaError::UnknownLeg)?;
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
