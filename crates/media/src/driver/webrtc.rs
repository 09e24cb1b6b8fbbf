//! WebRTC legs: one str0m `Rtc` per leg (ICE-lite, DTLS-SRTP, BUNDLE and rtcp-mux on one UDP
//! socket), driven by the shard like any other leg.
//!
//! str0m is sans-IO too: the shard feeds it datagrams and timeouts and drains its output after
//! every mutation (its "single-mutation invariant"). We use its frame API: each incoming audio
//! packet becomes a `MediaData` that enters the same pipeline as a plain RTP packet (stats,
//! recording, relay), and what we send is written as 20 ms frames with the timestamps of the
//! leg's [`crate::rtp::Rewriter`]; str0m owns SSRC, sequence numbers, SRTP and RTCP.
//! Codecs: PCMU or PCMA whenever the browser offers one (browser↔PSTN is then a relay, no
//! transcoding), Opus only when it offers no G.711 (the shard then transcodes to and from the
//! bridged leg's codec); telephone-event/8000 with either.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::format::{Codec as WebRtcCodec, FormatParams};
use str0m::media::{Frequency, MediaKind, MediaTime, Mid, Pt, TelephoneEvent as WebRtcEvent};
use str0m::net::Protocol;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;

use super::MediaError;
use crate::codec::{Codec, CodecKind};
use crate::dtmf::TelephoneEvent;

/// The payload type we offer for telephone-events when the browser's offer has none to reuse.
const TELEPHONE_EVENT_PT: u8 = 101;
/// The same at Opus's 48 kHz clock: events go at the audio's clock rate (browsers and str0m
/// send them only on a telephone-event payload type of that rate).
const TELEPHONE_EVENT_48K_PT: u8 = 110;

/// One packet received from the browser, owned so the `Rtc` borrow can end before relaying.
pub(super) struct Inbound {
    pub(super) payload_type: u8,
    pub(super) sequence: u16,
    pub(super) timestamp: u32,
    pub(super) marker: bool,
    pub(super) data: Arc<[u8]>,
}

pub(super) struct WebRtcLeg {
    rtc: Rtc,
    socket: Rc<UdpSocket>,
    /// Our candidate address: the destination str0m expects on every received datagram.
    candidate: SocketAddr,
    mid: Option<Mid>,
    audio_pt: Option<Pt>,
    next_timeout: Instant,
    /// Where str0m last sent to: the ICE-selected remote.
    remote: Option<SocketAddr>,
    connected: bool,
    /// A connection change the shard has not reported yet.
    connection_change: Option<bool>,
    /// Extends our 32-bit timestamps to str0m's 64-bit media time.
    last_timestamp: Option<u64>,
    /// The audio codec's RTP clock: our timestamps are in its units.
    clock: Frequency,
    /// Telephone-events already forwarded, by (timestamp, event): end packets come three times.
    relayed_events: [Option<(u32, u8)>; 4],
    next_event_slot: usize,
    /// When the last telephone-event we wrote ends: str0m wants one event at a time.
    event_busy_until: Option<Instant>,
    alive: bool,
    /// Media that came out of the last drains, for the shard to take.
    pending: Vec<Inbound>,
}

impl WebRtcLeg {
    /// Accepts the browser's offer; returns the leg, our answer, and the negotiated codec.
    pub(super) fn accept(
        offer: &str,
        socket: Rc<UdpSocket>,
        candidate: SocketAddr,
        now: Instant,
    ) -> Result<(Self, String, Option<Codec>), MediaError> {
        // The audio section's mid, read with our own parser: str0m reports remote media
        // (`MediaAdded`) only later, and the codec is wanted right away.
        let parsed = crate::sdp::SessionDescription::parse(offer).ok();
        let audio = parsed.as_ref().and_then(|sdp| sdp.audio());
        let audio_mid = audio.and_then(|audio| audio.attribute("mid").map(Mid::from));
        // G.711 relays to the PSTN untouched: Opus is answered only to offers without it.
        let offers_g711 = audio.is_some_and(|audio| {
            audio.formats.iter().any(|&pt| match audio.rtpmap(pt) {
                Some(map) => CodecKind::from_rtpmap(&map.encoding, map.clock_rate)
                    .is_some_and(|k| k != CodecKind::Opus),
                None => CodecKind::from_static_payload_type(pt).is_some(),
            })
        });
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| MediaError::WebRtc(format!("bad offer: {e}")))?;
        let mut config = RtcConfig::new().set_ice_lite(true).clear_codecs();
        {
            let codecs = config.codec_config();
            if offers_g711 {
                codecs.enable_pcmu(true, false);
                codecs.enable_pcma(true, false);
            } else {
                codecs.enable_opus(true, false);
            }
            codecs.add_config(
                TELEPHONE_EVENT_PT.into(),
                None,
                WebRtcCodec::Tele,
                Frequency::EIGHT_KHZ,
                None,
                FormatParams::parse_line("0-16"),
            );
            if !offers_g711 {
                codecs.add_config(
                    TELEPHONE_EVENT_48K_PT.into(),
                    None,
                    WebRtcCodec::Tele,
                    Frequency::FORTY_EIGHT_KHZ,
                    None,
                    FormatParams::parse_line("0-16"),
                );
            }
        }
        let mut rtc = config.build(now);
        let host =
            Candidate::host(candidate, "udp").map_err(|e| MediaError::WebRtc(format!("candidate: {e}")))?;
        rtc.add_local_candidate(host);
        let mut leg = Self {
            rtc,
            socket,
            candidate,
            mid: audio_mid,
            audio_pt: None,
            next_timeout: now,
            remote: None,
            connected: false,
            connection_change: None,
            last_timestamp: None,
            clock: Frequency::EIGHT_KHZ,
            relayed_events: [None; 4],
            next_event_slot: 0,
            event_busy_until: None,
            alive: true,
            pending: Vec::new(),
        };
        leg.drain();
        let answer = leg
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| MediaError::WebRtc(format!("offer not acceptable: {e}")))?
            .to_sdp_string();
        leg.drain();
        let codec = leg.negotiated();
        leg.audio_pt = codec.map(|c| c.payload_type.into());
        leg.clock = match codec.map(|c| c.kind) {
            Some(CodecKind::Opus) => Frequency::FORTY_EIGHT_KHZ,
            _ => Frequency::EIGHT_KHZ,
        };
        Ok((leg, answer, codec))
    }

    /// The first codec of the browser's preference that we speak, and its telephone-event PT.
    fn negotiated(&mut self) -> Option<Codec> {
        let mid = self.mid?;
        let remote_pts: Vec<Pt> = self.rtc.media(mid)?.remote_pts().to_vec();
        let params: Vec<_> = self.rtc.codec_config().params().to_vec();
        let spec_of = |pt: Pt| params.iter().find(|p| p.pt() == pt).map(|p| p.spec());
        let (kind, payload_type) = remote_pts.iter().find_map(|&pt| {
            let kind = match spec_of(pt)?.codec {
                WebRtcCodec::PCMU => CodecKind::Pcmu,
                WebRtcCodec::PCMA => CodecKind::Pcma,
                WebRtcCodec::Opus => CodecKind::Opus,
                _ => return None,
            };
            Some((kind, *pt))
        })?;
        let clock = Frequency::new(kind.clock_rate())?;
        let dtmf_payload_type = remote_pts.iter().find_map(|&pt| {
            let spec = spec_of(pt)?;
            (spec.codec == WebRtcCodec::Tele && spec.clock_rate == clock).then_some(*pt)
        });
        Some(Codec { kind, payload_type, dtmf_payload_type })
    }

    pub(super) fn remote(&self) -> Option<SocketAddr> {
        self.remote
    }

    pub(super) fn is_alive(&self) -> bool {
        self.alive
    }

    /// Media received during the last drains (moves it out).
    pub(super) fn take_pending(&mut self, into: &mut Vec<Inbound>) {
        into.append(&mut self.pending);
    }

    pub(super) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    pub(super) fn has_connection_change(&self) -> bool {
        self.connection_change.is_some()
    }

    /// Connected (true) or disconnected (false) since the last call.
    pub(super) fn take_connection_change(&mut self) -> Option<bool> {
        self.connection_change.take()
    }

    pub(super) fn due(&self, now: Instant) -> bool {
        self.alive && now >= self.next_timeout
    }

    /// Feeds one datagram; media that came out of it waits in [`Self::take_pending`].
    pub(super) fn handle_datagram(&mut self, from: SocketAddr, data: &[u8], now: Instant) {
        let Ok(receive) = str0m::net::Receive::new(Protocol::Udp, from, self.candidate, data) else { return };
        if let Err(error) = self.rtc.handle_input(Input::Receive(now, receive)) {
            tracing::debug!(%error, "WebRTC input rejected");
        }
        self.drain();
    }

    pub(super) fn handle_timeout(&mut self, now: Instant) {
        if let Err(error) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!(%error, "WebRTC timeout handling failed");
        }
        self.drain();
    }

    /// Drains str0m's output until it asks for a timeout (its single-mutation invariant).
    fn drain(&mut self) {
        loop {
            let output = match self.rtc.poll_output() {
                Ok(output) => output,
                Err(error) => {
                    tracing::debug!(%error, "WebRTC leg failed");
                    self.alive = false;
                    return;
                }
            };
            match output {
                Output::Timeout(at) => {
                    self.next_timeout = at;
                    return;
                }
                Output::Transmit(transmit) => {
                    self.remote = Some(transmit.destination);
                    if let Err(error) = self.socket.try_send_to(&transmit.contents, transmit.destination) {
                        tracing::trace!(%error, "WebRTC send dropped");
                    }
                }
                Output::Event(event) => self.on_event(event),
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::MediaAdded(added) if added.kind == MediaKind::Audio && self.mid.is_none() => {
                self.mid = Some(added.mid);
            }
            Event::Connected => {
                self.connected = true;
                self.connection_change = Some(true);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.connected = false;
                self.connection_change = Some(false);
            }
            Event::Closed => self.alive = false,
            Event::MediaData(data) => {
                // Telephone-events arrive one packet per MediaData with their raw payload.
                let marker = data.audio_start_of_talk_spurt;
                self.pending.push(Inbound {
                    payload_type: *data.pt,
                    sequence: **data.seq_range.start() as u16,
                    timestamp: data.time.numer() as u32,
                    marker,
                    data: data.data.clone(),
                });
            }
            _ => {}
        }
    }

    fn media_time(&mut self, timestamp: u32) -> MediaTime {
        let extended = match self.last_timestamp {
            None => u64::from(timestamp),
            Some(last) => {
                let candidate = (last & !0xFFFF_FFFF) | u64::from(timestamp);
                // Pick the value nearest the last one: handles wrap in either direction.
                [candidate.wrapping_sub(1 << 32), candidate, candidate.wrapping_add(1 << 32)]
                    .into_iter()
                    .min_by_key(|c| c.abs_diff(last))
                    .unwrap_or(candidate)
            }
        };
        self.last_timestamp = Some(extended);
        MediaTime::new(extended, self.clock)
    }

    /// Sends one audio frame (a payload of the leg's codec on `payload_type`) stamped `timestamp`.
    pub(super) fn write_audio(
        &mut self,
        payload_type: u8,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        now: Instant,
    ) -> bool {
        let Some(mid) = self.mid.filter(|_| self.connected) else { return false };
        let time = self.media_time(timestamp);
        let Some(writer) = self.rtc.writer(mid) else { return false };
        let result =
            writer.start_of_talkspurt(marker).write(payload_type.into(), now, time, payload.to_vec());
        if let Err(error) = &result {
            tracing::debug!(%error, "WebRTC write failed");
        }
        self.drain();
        result.is_ok()
    }

    /// Sends a whole key press as telephone-events, if none is being sent.
    pub(super) fn write_event(
        &mut self,
        event: u8,
        volume: u8,
        duration: Duration,
        timestamp: u32,
        now: Instant,
    ) -> bool {
        let (Some(mid), Some(audio_pt)) = (self.mid.filter(|_| self.connected), self.audio_pt) else {
            return false;
        };
        if self.event_busy_until.is_some_and(|until| now < until) {
            return false;
        }
        let time = self.media_time(timestamp);
        let duration = duration.clamp(Duration::from_millis(40), Duration::from_secs(6));
        let Some(writer) = self.rtc.writer(mid) else { return false };
        let result = writer.telephone_event(WebRtcEvent { event, end: true, volume, duration }).write(
            audio_pt,
            now,
            time,
            Vec::new(),
        );
        if let Err(error) = &result {
            tracing::debug!(%error, "WebRTC telephone-event failed");
        }
        // str0m wants 50 ms between the end of one event and the start of the next.
        self.event_busy_until = Some(now + duration + Duration::from_millis(60));
        self.drain();
        result.is_ok()
    }

    /// Relays one RFC 4733 packet from a plain RTP leg: str0m sends whole events, so the
    /// event is written once, when its first end packet arrives (with its final duration).
    pub(super) fn relay_event(&mut self, payload: &[u8], timestamp: u32, now: Instant) -> bool {
        let Some(event) = TelephoneEvent::parse(payload) else { return false };
        let key = (timestamp, event.event);
        if !event.end || self.relayed_events.contains(&Some(key)) {
            return false;
        }
        if let Some(slot) = self.relayed_events.get_mut(self.next_event_slot) {
            *slot = Some(key);
        }
        self.next_event_slot = (self.next_event_slot + 1) % self.relayed_events.len();
        // The source has our codec (or one of the same family), hence our clock.
        let clock = self.clock.get().max(1);
        let duration = Duration::from_micros(u64::from(event.duration) * 1_000_000 / u64::from(clock));
        self.write_event(event.event, event.volume, duration, timestamp, now)
    }

    /// Ends the session politely (DTLS close_notify, RTCP BYE) before the socket closes.
    pub(super) fn close(&mut self) {
        let _ = self.rtc.close();
        self.drain();
    }
}
