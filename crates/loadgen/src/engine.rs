//! The RTP side: streams of 20 ms PCMU packets sent from a few sockets with `sendmmsg`,
//! received with `recvmmsg` and kernel receive timestamps, and measured per stream.
//!
//! Every packet carries, at the start of its 160-byte payload, a magic word, the id of the
//! stream that sent it, a counter and its send time (CLOCK_REALTIME, ns). A relay rewrites
//! SSRC, sequence numbers and timestamps but passes PCMU payloads through, so the receiver
//! knows for each packet which stream sent it and when. Loss is counted per sending stream
//! over a measurement window (packets sent in the window that never arrived); jitter is the
//! RFC 3550 interarrival jitter computed with the real send times, i.e. only what the path
//! (relay, kernel, scheduling) adds; delay is receive time minus send time.
//!
//! Streams are spread evenly over the 20 ms period (20 slots of 1 ms), as independent phones
//! would be, so the relay sees a steady packet rate rather than one burst every 20 ms.

use std::io::{IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrIn, recvmmsg, sendmmsg, setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;

const SLOTS: usize = 20;
const SLOT: Duration = Duration::from_millis(1);
const HEADER: usize = 12;
const PAYLOAD: usize = 160;
const PACKET: usize = HEADER + PAYLOAD;
const MAGIC: [u8; 4] = *b"LGEN";
const BATCH: usize = 64;
/// recvmmsg calls per socket per service round, so one busy socket cannot starve the rest.
const RECV_ROUNDS: usize = 8;
/// Delay histogram: 50 µs buckets up to 2 s.
const BUCKET_NS: u64 = 50_000;
const BUCKETS: usize = 40_000;
const SOCKET_BUFFER: usize = 32 << 20;

struct Stream {
    socket: usize,
    dest: Option<SockaddrIn>,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    counter: u32,
    /// Counted in the current window (set when the window starts for bridged streams).
    in_window: bool,
    /// Bridged end to end: its packets must arrive.
    bridged: bool,
    sent_window: u64,
    received_window: u64,
    jitter_ns: f64,
    last_transit: Option<i64>,
}

/// What one measurement window saw.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct WindowReport {
    pub(crate) streams: usize,
    /// Counted streams of which nothing arrived in the window.
    pub(crate) silent_streams: usize,
    pub(crate) sent: u64,
    pub(crate) received: u64,
    pub(crate) loss_pct: f64,
    /// RFC 3550 interarrival jitter per stream at the end of the window: mean, 99th
    /// percentile and maximum over streams, in ms.
    pub(crate) jitter_mean_ms: f64,
    pub(crate) jitter_p99_ms: f64,
    pub(crate) jitter_max_ms: f64,
    /// One-way delay (send → receive) over all packets, in ms.
    pub(crate) delay_p50_ms: f64,
    pub(crate) delay_p99_ms: f64,
    pub(crate) delay_max_ms: f64,
    /// Sends the kernel refused (full socket buffer); counted as lost too.
    pub(crate) send_errors: u64,
    /// The load generator's own lateness: how far behind schedule its sends went (ms).
    pub(crate) loadgen_max_late_ms: f64,
}

pub(crate) struct Engine {
    sockets: Vec<UdpSocket>,
    streams: Vec<Stream>,
    slot_members: Vec<Vec<u32>>,
    slot: usize,
    next_slot_at: Instant,
    window: Option<(u64, u64)>,
    histogram: Vec<u64>,
    send_errors: u64,
    max_late: Duration,
    /// Datagrams without our magic (hold music, RTCP, ...).
    pub(crate) foreign: u64,
    pending: Vec<Vec<(SockaddrIn, [u8; PACKET])>>,
    recv_buffers: Vec<[u8; 2048]>,
    recv_headers: MultiHeaders<SockaddrIn>,
    send_headers: MultiHeaders<SockaddrIn>,
}

pub(crate) fn realtime_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn bind(ip: Ipv4Addr) -> anyhow::Result<UdpSocket> {
    let socket = UdpSocket::bind(SocketAddrV4::new(ip, 0))?;
    socket.set_nonblocking(true)?;
    // Root may exceed rmem_max/wmem_max; otherwise the plain options, capped by the kernel.
    if setsockopt(&socket, sockopt::RcvBufForce, &SOCKET_BUFFER).is_err() {
        let _ = setsockopt(&socket, sockopt::RcvBuf, &SOCKET_BUFFER);
    }
    if setsockopt(&socket, sockopt::SndBufForce, &SOCKET_BUFFER).is_err() {
        let _ = setsockopt(&socket, sockopt::SndBuf, &SOCKET_BUFFER);
    }
    setsockopt(&socket, sockopt::ReceiveTimestampns, &true)?;
    Ok(socket)
}

impl Engine {
    /// `per_side` sockets on each of the two addresses.
    pub(crate) fn new(sides: &[Ipv4Addr], per_side: usize) -> anyhow::Result<Self> {
        let mut sockets = Vec::new();
        for ip in sides {
            for _ in 0..per_side.max(1) {
                sockets.push(bind(*ip)?);
            }
        }
        let count = sockets.len();
        Ok(Self {
            sockets,
            streams: Vec::new(),
            slot_members: vec![Vec::new(); SLOTS],
            slot: 0,
            next_slot_at: Instant::now(),
            window: None,
            histogram: vec![0; BUCKETS],
            send_errors: 0,
            max_late: Duration::ZERO,
            foreign: 0,
            pending: vec![Vec::with_capacity(BATCH); count],
            recv_buffers: vec![[0; 2048]; BATCH],
            recv_headers: MultiHeaders::preallocate(BATCH, Some(nix::cmsg_space!(TimeSpec))),
            send_headers: MultiHeaders::preallocate(BATCH, None),
        })
    }

    /// The local address of socket `index`.
    pub(crate) fn local(&self, socket: usize) -> anyhow::Result<SocketAddrV4> {
        match self.sockets.get(socket).map(UdpSocket::local_addr) {
            Some(Ok(std::net::SocketAddr::V4(a))) => Ok(a),
            _ => anyhow::bail!("no IPv4 socket {socket}"),
        }
    }

    /// A new, silent stream sending from socket `socket`; returns its id.
    pub(crate) fn add_stream(&mut self, socket: usize) -> usize {
        let id = self.streams.len();
        self.streams.push(Stream {
            socket: socket % self.sockets.len(),
            dest: None,
            ssrc: rand::random(),
            sequence: rand::random(),
            timestamp: rand::random(),
            counter: 0,
            in_window: false,
            bridged: false,
            sent_window: 0,
            received_window: 0,
            jitter_ns: 0.0,
            last_transit: None,
        });
        // 7 is prime to 20: consecutive ids land in different slots.
        if let Some(slot) = self.slot_members.get_mut(id * 7 % SLOTS) {
            slot.push(id as u32);
        }
        id
    }

    /// Starts sending to `dest` (or changes where to).
    pub(crate) fn start(&mut self, id: usize, dest: SocketAddrV4) {
        if let Some(s) = self.streams.get_mut(id) {
            s.dest = Some(SockaddrIn::from(dest));
        }
    }

    /// Stops sending and takes the stream out of any window.
    pub(crate) fn stop(&mut self, id: usize) {
        if let Some(s) = self.streams.get_mut(id) {
            s.dest = None;
            s.bridged = false;
            s.in_window = false;
        }
    }

    /// Marks the stream as relayed end to end: windows that start from now on count it.
    pub(crate) fn set_bridged(&mut self, id: usize) {
        if let Some(s) = self.streams.get_mut(id) {
            s.bridged = true;
        }
    }

    /// Counts packets sent from `start_ns` to `end_ns` by bridged streams.
    pub(crate) fn begin_window(&mut self, start_ns: u64, end_ns: u64) {
        self.window = Some((start_ns, end_ns));
        for s in &mut self.streams {
            s.in_window = s.bridged && s.dest.is_some();
            s.sent_window = 0;
            s.received_window = 0;
            s.jitter_ns = 0.0;
            s.last_transit = None;
        }
        self.histogram.iter_mut().for_each(|b| *b = 0);
        self.send_errors = 0;
        self.max_late = Duration::ZERO;
    }

    pub(crate) fn end_window(&mut self) -> WindowReport {
        self.window = None;
        let counted: Vec<&Stream> = self.streams.iter().filter(|s| s.in_window).collect();
        let sent: u64 = counted.iter().map(|s| s.sent_window).sum();
        let received: u64 = counted.iter().map(|s| s.received_window.min(s.sent_window)).sum();
        let mut jitters: Vec<f64> = counted.iter().map(|s| s.jitter_ns / 1e6).collect();
        jitters.sort_by(f64::total_cmp);
        let pick = |v: &[f64], q: f64| -> f64 {
            if v.is_empty() {
                return 0.0;
            }
            let i = ((v.len() as f64 - 1.0) * q).round() as usize;
            v.get(i).copied().unwrap_or(0.0)
        };
        let total: u64 = self.histogram.iter().sum();
        let quantile = |q: f64| -> f64 {
            if total == 0 {
                return 0.0;
            }
            let target = (total as f64 * q).ceil() as u64;
            let mut seen = 0;
            for (i, n) in self.histogram.iter().enumerate() {
                seen += n;
                if seen >= target {
                    return (i as u64 + 1) as f64 * BUCKET_NS as f64 / 1e6;
                }
            }
            BUCKETS as f64 * BUCKET_NS as f64 / 1e6
        };
        let max_bucket = self.histogram.iter().rposition(|n| *n > 0).map_or(0, |i| i + 1);
        WindowReport {
            streams: counted.len(),
            silent_streams: counted.iter().filter(|s| s.sent_window > 0 && s.received_window == 0).count(),
            sent,
            received,
            loss_pct: if sent == 0 { 0.0 } else { (sent - received) as f64 * 100.0 / sent as f64 },
            jitter_mean_ms: if jitters.is_empty() {
                0.0
            } else {
                jitters.iter().sum::<f64>() / jitters.len() as f64
            },
            jitter_p99_ms: pick(&jitters, 0.99),
            jitter_max_ms: jitters.last().copied().unwrap_or(0.0),
            delay_p50_ms: quantile(0.5),
            delay_p99_ms: quantile(0.99),
            delay_max_ms: max_bucket as f64 * BUCKET_NS as f64 / 1e6,
            send_errors: self.send_errors,
            loadgen_max_late_ms: self.max_late.as_secs_f64() * 1e3,
        }
    }

    /// When the next slot is due.
    pub(crate) fn next_due(&self) -> Instant {
        self.next_slot_at
    }

    /// Sends every slot that is due.
    pub(crate) fn send_due(&mut self, now: Instant) {
        // After a long pause do not replay missed slots in a burst (the lateness is kept).
        let behind = now.saturating_duration_since(self.next_slot_at);
        if behind > Duration::from_millis(200) {
            self.max_late = self.max_late.max(behind);
            self.next_slot_at = now;
        }
        while self.next_slot_at <= now {
            let late = now.saturating_duration_since(self.next_slot_at);
            if late > self.max_late {
                self.max_late = late;
            }
            self.send_slot(self.slot);
            self.slot = (self.slot + 1) % SLOTS;
            self.next_slot_at += SLOT;
        }
    }

    fn send_slot(&mut self, slot: usize) {
        let Some(members) = self.slot_members.get_mut(slot).map(std::mem::take) else { return };
        let stamp = realtime_ns();
        let window = self.window;
        for &id in &members {
            let Some(s) = self.streams.get_mut(id as usize) else { continue };
            let Some(dest) = s.dest else { continue };
            let mut packet = [0xffu8; PACKET];
            packet[0] = 0x80;
            packet[1] = if s.counter == 0 { 0x80 } else { 0 };
            packet[2..4].copy_from_slice(&s.sequence.to_be_bytes());
            packet[4..8].copy_from_slice(&s.timestamp.to_be_bytes());
            packet[8..12].copy_from_slice(&s.ssrc.to_be_bytes());
            packet[12..16].copy_from_slice(&MAGIC);
            packet[16..20].copy_from_slice(&id.to_be_bytes());
            packet[20..24].copy_from_slice(&s.counter.to_be_bytes());
            packet[24..32].copy_from_slice(&stamp.to_be_bytes());
            s.sequence = s.sequence.wrapping_add(1);
            s.timestamp = s.timestamp.wrapping_add(PAYLOAD as u32);
            s.counter = s.counter.wrapping_add(1);
            if s.in_window && window.is_some_and(|(a, b)| stamp >= a && stamp < b) {
                s.sent_window += 1;
            }
            let socket = s.socket;
            if let Some(queue) = self.pending.get_mut(socket) {
                queue.push((dest, packet));
                if queue.len() >= BATCH {
                    self.flush(socket);
                }
            }
        }
        for socket in 0..self.pending.len() {
            self.flush(socket);
        }
        if let Some(slot) = self.slot_members.get_mut(slot) {
            *slot = members;
        }
    }

    fn flush(&mut self, socket: usize) {
        let Some(queue) = self.pending.get_mut(socket) else { return };
        if queue.is_empty() {
            return;
        }
        let Some(fd) = self.sockets.get(socket).map(AsRawFd::as_raw_fd) else { return };
        let mut offset = 0;
        // Bounded: each round sends at least one datagram or stops.
        while offset < queue.len() {
            let rest = queue.get(offset..).unwrap_or_default();
            let iovs: Vec<[IoSlice<'_>; 1]> = rest.iter().map(|(_, p)| [IoSlice::new(p)]).collect();
            let addrs: Vec<Option<SockaddrIn>> = rest.iter().map(|(a, _)| Some(*a)).collect();
            let sent = match sendmmsg(fd, &mut self.send_headers, &iovs, addrs, [], MsgFlags::MSG_DONTWAIT) {
                Ok(results) => results.count(),
                Err(_) => 0,
            };
            if sent == 0 {
                // The first datagram was refused: drop it, as a network would, and go on.
                self.send_errors += 1;
                offset += 1;
            } else {
                offset += sent;
            }
        }
        queue.clear();
    }

    /// Reads what every socket has queued (bounded per socket).
    pub(crate) fn receive(&mut self) {
        for socket in 0..self.sockets.len() {
            for _ in 0..RECV_ROUNDS {
                if self.receive_batch(socket) < BATCH {
                    break;
                }
            }
        }
    }

    fn receive_batch(&mut self, socket: usize) -> usize {
        let Some(fd) = self.sockets.get(socket).map(AsRawFd::as_raw_fd) else { return 0 };
        let mut meta: Vec<(usize, Option<u64>)> = Vec::with_capacity(BATCH);
        {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> =
                self.recv_buffers.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
            let Ok(results) =
                recvmmsg(fd, &mut self.recv_headers, iovs.iter_mut(), MsgFlags::MSG_DONTWAIT, None)
            else {
                return 0;
            };
            for message in results {
                let mut at = None;
                if let Ok(cmsgs) = message.cmsgs() {
                    for cmsg in cmsgs {
                        if let ControlMessageOwned::ScmTimestampns(ts) = cmsg {
                            at = Some(ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64);
                        }
                    }
                }
                meta.push((message.bytes, at));
            }
        }
        let count = meta.len();
        for (i, (len, at)) in meta.into_iter().enumerate() {
            let received_ns = at.unwrap_or_else(realtime_ns);
            let Some(buffer) = self.recv_buffers.get(i) else { continue };
            let datagram = buffer.get(..len).unwrap_or_default();
            match parse(datagram) {
                Some((id, send_ns)) => self.on_packet(id, send_ns, received_ns),
                None => self.foreign += 1,
            }
        }
        count
    }

    fn on_packet(&mut self, id: usize, send_ns: u64, received_ns: u64) {
        let Some((start, end)) = self.window else { return };
        if send_ns < start || send_ns >= end {
            return;
        }
        let Some(s) = self.streams.get_mut(id) else { return };
        if !s.in_window {
            return;
        }
        s.received_window += 1;
        let transit = received_ns as i64 - send_ns as i64;
        if let Some(last) = s.last_transit {
            let d = (transit - last).unsigned_abs() as f64;
            s.jitter_ns += (d - s.jitter_ns) / 16.0;
        }
        s.last_transit = Some(transit);
        let bucket = (transit.max(0) as u64 / BUCKET_NS) as usize;
        if let Some(b) = self.histogram.get_mut(bucket.min(BUCKETS - 1)) {
            *b += 1;
        }
    }
}

/// The sending stream's id and send time of one of our packets, whatever the relay did to
/// the RTP header.
fn parse(datagram: &[u8]) -> Option<(usize, u64)> {
    let first = *datagram.first()?;
    if first >> 6 != 2 {
        return None;
    }
    let csrc = usize::from(first & 0x0f);
    let mut offset = HEADER + 4 * csrc;
    if first & 0x10 != 0 {
        let ext = datagram.get(offset + 2..offset + 4)?;
        offset += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let payload = datagram.get(offset..offset + 20)?;
    if payload.get(..4)? != MAGIC {
        return None;
    }
    let id = u32::from_be_bytes(payload.get(4..8)?.try_into().ok()?) as usize;
    let send_ns = u64::from_be_bytes(payload.get(12..20)?.try_into().ok()?);
    Some((id, send_ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_finds_our_payload_behind_a_rewritten_header() {
        let mut packet = [0xffu8; PACKET];
        packet[0] = 0x80;
        packet[12..16].copy_from_slice(&MAGIC);
        packet[16..20].copy_from_slice(&7u32.to_be_bytes());
        packet[24..32].copy_from_slice(&123u64.to_be_bytes());
        assert_eq!(parse(&packet), Some((7, 123)));
        packet[14] = 0;
        assert_eq!(parse(&packet), None);
        assert_eq!(parse(&[0x80, 0, 1]), None);
        assert_eq!(parse(&[]), None);
    }

    #[test]
    fn streams_relayed_through_loopback_are_measured() {
        let mut engine = Engine::new(&[Ipv4Addr::LOCALHOST], 2).unwrap();
        let a = engine.add_stream(0);
        let b = engine.add_stream(1);
        let (la, lb) = (engine.local(0).unwrap(), engine.local(1).unwrap());
        engine.start(a, lb);
        engine.start(b, la);
        engine.set_bridged(a);
        engine.set_bridged(b);
        let now = realtime_ns();
        engine.begin_window(now, now + 200_000_000);
        let until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < until {
            engine.send_due(Instant::now());
            engine.receive();
            std::thread::sleep(Duration::from_micros(500));
        }
        let report = engine.end_window();
        assert_eq!(report.streams, 2);
        assert!(report.sent >= 16, "{report:?}");
        assert_eq!(report.received, report.sent, "{report:?}");
    }
}
