//! The media driver: [`Media`] and its shards, the only part of this crate that does I/O.
//!
//! [`Media`] is a cheap handle. Each method sends a command to the shard that owns the leg and
//! waits for its answer; the shard thread owns every socket and all per-leg state, so relaying
//! a packet is one `recv_from`, a few table lookups and one `send_to` with no locks and no
//! channel hop. Commands and packets are handled on the same thread, one at a time.

mod shard;
#[cfg(feature = "webrtc")]
mod webrtc;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::codec::Codec;
use crate::tone::{FilePlayback, FrameSource, MusicOnHold, Ringback};
use crate::wav::WavError;

/// Where and how the media plane binds.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Address RTP sockets bind to.
    pub bind_ip: IpAddr,
    /// Address written into SDP (the public address behind 1:1 NAT). When `None`, the bind
    /// address, or 127.0.0.1 (::1) if that is a wildcard.
    pub advertised_ip: Option<IpAddr>,
    /// RTP uses even ports in `port_min..=port_max`, RTCP the odd port above each.
    pub port_min: u16,
    pub port_max: u16,
    /// Media threads; a call's legs all live on shard `group % shards`.
    pub shards: usize,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            advertised_ip: None,
            port_min: 20000,
            port_max: 30000,
            shards: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// A leg's id; it names the shard that owns the leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct LegId {
    shard: u32,
    index: u64,
}

impl LegId {
    /// The shard that owns this leg.
    pub fn shard(self) -> usize {
        self.shard as usize
    }
}

impl fmt::Display for LegId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.shard, self.index)
    }
}

/// An opened leg: its id and the address to put in SDP (`c=` and `m=` port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leg {
    pub id: LegId,
    pub local: SocketAddr,
}

/// What to play into a leg. Playback loops until stopped, replaced, or the leg is bridged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playback {
    MusicOnHold,
    /// North American ringback (440 + 480 Hz, 2 s on, 4 s off).
    Ringback,
    /// An 8 kHz mono 16-bit PCM WAV file, read when `play` is called.
    File(PathBuf),
}

/// Counters of one leg, for the CDR's technical timeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LegStats {
    /// RTP packets accepted from the latched peer.
    pub packets_received: u64,
    pub packets_sent: u64,
    /// UDP payload bytes (RTP header included). On WebRTC legs, received counts every
    /// datagram (STUN, DTLS, SRTP) and sent counts RTP as 12 + payload bytes (before SRTP).
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// RFC 3550 cumulative loss: expected − received.
    pub packets_lost: u64,
    /// RFC 3550 interarrival jitter of the received stream.
    pub jitter_ms: f64,
    /// Where we send: the latched source, else the SDP address.
    pub remote: Option<SocketAddr>,
    /// `PCMU/8000`, `PCMA/8000` or `opus/48000/2` once negotiated.
    pub codec: Option<String>,
    /// Keys received as RFC 4733 events, in order.
    pub dtmf_received: String,
    /// RTCP packets received (on the RTCP port or multiplexed on the RTP port). Always 0 on
    /// WebRTC legs, where str0m consumes RTCP itself.
    pub rtcp_received: u64,
}

/// A finished recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordingInfo {
    pub path: PathBuf,
    pub duration_ms: u64,
    /// Size of the file.
    pub bytes: u64,
}

/// Something that happened on a leg, for whoever listens ([`Media::events`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum MediaEvent {
    /// A key press received as RFC 4733 events, reported once per press (also in
    /// [`LegStats::dtmf_received`]).
    Dtmf { leg: LegId, digit: char },
    /// A WebRTC leg completed ICE and DTLS: media flows from now on.
    WebRtcConnected { leg: LegId },
    /// A WebRTC leg lost ICE connectivity (the browser went away or its network changed).
    WebRtcDisconnected { leg: LegId },
}

/// Events kept for a slow listener before it starts missing some.
const EVENT_CAPACITY: usize = 1024;

/// Why a media command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    #[error("unknown media leg")]
    UnknownLeg,
    #[error("no free RTP port pair in the configured range")]
    NoFreePort,
    #[error("media I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("media shard is gone (shut down or crashed)")]
    ShardGone,
    #[error("legs live on different media shards; open them with the same group")]
    DifferentShards,
    #[error("a leg cannot be bridged or recorded with itself")]
    SameLeg,
    #[error("the leg has no negotiated telephone-event payload type")]
    NoDtmf,
    #[error("not a DTMF key: {0:?}")]
    InvalidDigit(char),
    #[error("the leg is already being recorded")]
    AlreadyRecording,
    #[error(transparent)]
    Wav(#[from] WavError),
    /// The WebRTC offer could not be accepted (malformed, no common codec, ...).
    #[error("WebRTC: {0}")]
    WebRtc(String),
}

/// What a shard is asked to do. Replies go back on the oneshot.
enum Command {
    OpenLeg {
        reply: oneshot::Sender<Result<Leg, MediaError>>,
    },
    #[cfg(feature = "webrtc")]
    OpenWebRtcLeg {
        offer: String,
        reply: oneshot::Sender<Result<(Leg, String), MediaError>>,
    },
    SetRemote {
        leg: LegId,
        remote: SocketAddr,
        codec: Codec,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    Play {
        leg: LegId,
        source: Box<dyn FrameSource + Send>,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    StopPlay {
        leg: LegId,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    Bridge {
        a: LegId,
        b: LegId,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    Unbridge {
        a: LegId,
        b: LegId,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    Conference {
        legs: Vec<LegId>,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    Record {
        left: LegId,
        right: LegId,
        path: PathBuf,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    StopRecord {
        left: LegId,
        reply: oneshot::Sender<Result<Option<RecordingInfo>, MediaError>>,
    },
    SendDtmf {
        leg: LegId,
        digit: char,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    Stats {
        leg: LegId,
        reply: oneshot::Sender<Result<LegStats, MediaError>>,
    },
    CloseLeg {
        leg: LegId,
        reply: oneshot::Sender<Result<LegStats, MediaError>>,
    },
    Shutdown,
}

struct Inner {
    shards: Vec<mpsc::UnboundedSender<Command>>,
    events: broadcast::Sender<MediaEvent>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Handle to the media plane. Clones share the same shards; when the last clone is dropped
/// (or [`Media::shutdown`] is called) the shards finish their recordings and stop.
#[derive(Clone)]
pub struct Media {
    inner: Arc<Inner>,
}

impl fmt::Debug for Media {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Media").field("shards", &self.inner.shards.len()).finish()
    }
}

impl Media {
    /// Starts `config.shards` media threads (at least one).
    pub fn start(config: MediaConfig) -> std::io::Result<Self> {
        let shard_count = config.shards.max(1);
        let advertised = config.advertised_ip.unwrap_or(if config.bind_ip.is_unspecified() {
            match config.bind_ip {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            }
        } else {
            config.bind_ip
        });
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let mut senders = Vec::with_capacity(shard_count);
        let mut threads = Vec::with_capacity(shard_count);
        for index in 0..shard_count {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (tx, rx) = mpsc::unbounded_channel();
            let settings = shard::Settings {
                index: index as u32,
                shard_count,
                bind_ip: config.bind_ip,
                advertised,
                port_min: config.port_min,
                port_max: config.port_max,
                events: events.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("media-{index}"))
                .spawn(move || shard::run(runtime, settings, rx))?;
            senders.push(tx);
            threads.push(thread);
        }
        Ok(Self { inner: Arc::new(Inner { shards: senders, events, threads: Mutex::new(threads) }) })
    }

    /// Subscribes to leg events from every shard. Events are sent only while someone listens;
    /// a listener more than 1024 events behind misses the oldest (`RecvError::Lagged`).
    pub fn events(&self) -> broadcast::Receiver<MediaEvent> {
        self.inner.events.subscribe()
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.inner.shards.len()
    }

    fn shard_of_group(&self, group: u128) -> usize {
        (group % self.inner.shards.len() as u128) as usize
    }

    async fn ask<T>(
        &self,
        shard: usize,
        make: impl FnOnce(oneshot::Sender<Result<T, MediaError>>) -> Command,
    ) -> Result<T, MediaError> {
        let sender = self.inner.shards.get(shard).ok_or(MediaError::UnknownLeg)?;
        let (reply, answer) = oneshot::channel();
        sender.send(make(reply)).map_err(|_| MediaError::ShardGone)?;
        answer.await.map_err(|_| MediaError::ShardGone)?
    }

    /// Opens a leg: an even RTP port and the RTCP port above it, on shard `group % shards`.
    /// Give all legs of one call the same `group` (e.g. the call id) so they can be bridged.
    pub async fn open_leg(&self, group: u128) -> Result<Leg, MediaError> {
        self.ask(self.shard_of_group(group), |reply| Command::OpenLeg { reply }).await
    }

    /// Opens a WebRTC leg for a browser's SDP offer and returns it with our SDP answer.
    ///
    /// The leg is ICE-lite with one host candidate (`local`), DTLS-SRTP, BUNDLE and rtcp-mux on
    /// one UDP port. It speaks PCMU or PCMA (the first of the browser's preference) when the
    /// browser offers either, else Opus (transcoded to whatever it is bridged with), plus
    /// telephone-events at the audio clock; offers with none of them fail with [`MediaError::WebRtc`].
    /// The codec is known at once (see [`Media::stats`]), so no `set_remote` is needed: media
    /// flows to wherever ICE connects. Everything else (play, bridge, record, DTMF, close)
    /// works as for plain RTP legs.
    #[cfg(feature = "webrtc")]
    pub async fn open_webrtc_leg(
        &self,
        group: u128,
        remote_offer_sdp: &str,
    ) -> Result<(Leg, String), MediaError> {
        let offer = remote_offer_sdp.to_owned();
        self.ask(self.shard_of_group(group), |reply| Command::OpenWebRtcLeg { offer, reply }).await
    }

    /// Sets where to send (the SDP address) and the negotiated codec. Until the peer's first
    /// packet we send to `remote`; then to the packet's source (see [`crate::latch`] for the
    /// rule: first packet latches, another source only after 2 s of silence). Calling it
    /// again with a new address (re-INVITE) forgets the latch; with the same one keeps it.
    pub async fn set_remote(&self, leg: LegId, remote: SocketAddr, codec: Codec) -> Result<(), MediaError> {
        self.ask(leg.shard(), |reply| Command::SetRemote { leg, remote, codec, reply }).await
    }

    /// Plays into the leg in a loop, 20 ms frames in the leg's codec, replacing any playback.
    /// While it plays, audio bridged into the leg is not sent (the playback owns the stream),
    /// so hold can be done without unbridging. Nothing is sent until the leg has a remote and codec.
    pub async fn play(&self, leg: LegId, playback: Playback) -> Result<(), MediaError> {
        let source: Box<dyn FrameSource + Send> = match playback {
            Playback::MusicOnHold => Box::new(MusicOnHold::new()),
            Playback::Ringback => Box::new(Ringback::default()),
            Playback::File(path) => Box::new(FilePlayback::from_wav_bytes(&tokio::fs::read(&path).await?)?),
        };
        self.ask(leg.shard(), |reply| Command::Play { leg, source, reply }).await
    }

    /// Stops playback; if the leg is bridged, the bridged audio resumes.
    pub async fn stop_play(&self, leg: LegId) -> Result<(), MediaError> {
        self.ask(leg.shard(), |reply| Command::StopPlay { leg, reply }).await
    }

    /// Relays RTP both ways between two legs of the same shard: audio as-is when both use the
    /// same codec, PCMU↔PCMA by table lookup; between G.711 and Opus the audio is decoded to
    /// 8 kHz, re-framed into 20 ms and encoded (timing kept, clock converted). Telephone-events
    /// are re-numbered to the target's payload type (dropped if the target has none); across
    /// G.711 ↔ Opus each key press is sent again as a 100 ms event of the target's own. Each direction is sent as the target
    /// leg's own stream (SSRC, continuous sequence and timestamps). Stops playback on both
    /// legs. A leg bridged elsewhere is first unbridged from its old partner.
    pub async fn bridge(&self, a: LegId, b: LegId) -> Result<(), MediaError> {
        if a == b {
            return Err(MediaError::SameLeg);
        }
        if a.shard != b.shard {
            return Err(MediaError::DifferentShards);
        }
        self.ask(a.shard(), |reply| Command::Bridge { a, b, reply }).await
    }

    /// Ends the bridge between `a` and `b`; nothing happens if they are not bridged together.
    pub async fn unbridge(&self, a: LegId, b: LegId) -> Result<(), MediaError> {
        if a.shard != b.shard {
            return Err(MediaError::DifferentShards);
        }
        self.ask(a.shard(), |reply| Command::Unbridge { a, b, reply }).await
    }

    /// Joins `legs` (two or more, one shard) in a conference: each hears the others mixed.
    /// Received audio is decoded into a per-member two-frame jitter buffer and mixed every
    /// 20 ms; each member gets the sum of the others (not its own voice), encoded in its codec
    /// as its own stream. Bridges and playback of the members end; a leg that is bridged or
    /// closed later leaves the conference. Telephone-events are not relayed in a conference.
    pub async fn conference(&self, legs: &[LegId]) -> Result<(), MediaError> {
        let Some(first) = legs.first() else { return Err(MediaError::UnknownLeg) };
        if legs.iter().any(|l| l.shard != first.shard) {
            return Err(MediaError::DifferentShards);
        }
        let legs = legs.to_vec();
        self.ask(first.shard(), |reply| Command::Conference { legs, reply }).await
    }

    /// Records a stereo 8 kHz WAV at `path`: left channel the audio received on `left` (the
    /// caller), right channel the audio received on `right` (the agent), decoded to 8 kHz,
    /// silence where a side sent nothing. Keyed by `left`. If `left` is already recorded, the
    /// right channel moves to `right` (the call went to another agent) and the same file goes
    /// on; when the right leg closes, its channel is silent until another one takes it.
    pub async fn record(&self, left: LegId, right: LegId, path: PathBuf) -> Result<(), MediaError> {
        if left == right {
            return Err(MediaError::SameLeg);
        }
        if left.shard != right.shard {
            return Err(MediaError::DifferentShards);
        }
        self.ask(left.shard(), |reply| Command::Record { left, right, path, reply }).await
    }

    /// Finishes the recording started with this `left` leg; `None` if there was none.
    pub async fn stop_record(&self, left: LegId) -> Result<Option<RecordingInfo>, MediaError> {
        let info = self.ask(left.shard(), |reply| Command::StopRecord { left, reply }).await?;
        if let Some(info) = &info {
            let path = info.path.clone();
            tokio::task::spawn_blocking(move || std::fs::File::open(path)?.sync_all())
                .await
                .map_err(|e| MediaError::Io(std::io::Error::other(e)))??;
        }
        Ok(info)
    }

    /// Sends one key press (100 ms) as RFC 4733 events on the leg; presses queue up.
    pub async fn send_dtmf(&self, leg: LegId, digit: char) -> Result<(), MediaError> {
        if crate::dtmf::digit_to_event(digit).is_none() {
            return Err(MediaError::InvalidDigit(digit));
        }
        self.ask(leg.shard(), |reply| Command::SendDtmf { leg, digit, reply }).await
    }

    pub async fn stats(&self, leg: LegId) -> Result<LegStats, MediaError> {
        self.ask(leg.shard(), |reply| Command::Stats { leg, reply }).await
    }

    /// Closes the leg: ends its bridge and playback, finishes any recording it is part of
    /// (the file is complete; use [`Media::stop_record`] first to get its info), closes both
    /// sockets before answering, and returns the final counters.
    pub async fn close_leg(&self, leg: LegId) -> Result<LegStats, MediaError> {
        self.ask(leg.shard(), |reply| Command::CloseLeg { leg, reply }).await
    }

    /// Stops every shard after it finishes its recordings, and waits for the threads. Blocks
    /// the calling thread briefly; later calls on any clone fail with [`MediaError::ShardGone`].
    pub fn shutdown(&self) {
        for shard in &self.inner.shards {
            let _ = shard.send(Command::Shutdown);
        }
        let threads = match self.inner.threads.lock() {
            Ok(mut threads) => std::mem::take(&mut *threads),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for thread in threads {
            let _ = thread.join();
        }
    }
}
