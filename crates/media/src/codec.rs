//! The audio codecs a leg can speak, what offer/answer agreed on for it, and the stateful
//! [`Encoder`]/[`Decoder`] that turn its payloads into linear PCM and back.
//!
//! Everything we decode (recording, conference mixing, transcoding between codec families) is
//! 8 kHz mono PCM: telephony audio, what G.711 carries. Opus (RFC 6716, RFC 7587) is encoded
//! from and decoded to 8 kHz by libopus itself — its API takes any of 8/12/16/24/48 kHz and
//! resamples internally — so Opus legs need no separate resampler, while their RTP timestamps
//! still run at 48 kHz as RFC 7587 requires.

use serde::Serialize;

use crate::g711;

/// Sample rate of the PCM we decode to and encode from, and of G.711 and RFC 4733 events.
pub const CLOCK_RATE: u32 = 8000;
/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
/// RTP clock of Opus, whatever the audio bandwidth (RFC 7587 §4.1).
pub const OPUS_CLOCK_RATE: u32 = 48_000;
/// The dynamic payload type we use for Opus when we choose one.
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
/// Largest Opus packet we produce: 20 ms at our bitrate is far smaller; RFC 6716 allows 1275.
const OPUS_MAX_PACKET: usize = 1275;
/// Opus bitrate: narrowband speech from 8 kHz PCM (what G.711 carried) is transparent at this.
const OPUS_BITRATE: i32 = 24_000;
/// libopus encoder complexity (0-10; its default is 10).
const OPUS_COMPLEXITY: i32 = 5;
/// Longest Opus packet (120 ms) in 8 kHz samples: the decode buffer.
const OPUS_MAX_SAMPLES: usize = 960;

/// An audio codec the media plane can send, receive and transcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum CodecKind {
    /// G.711 μ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
    /// Opus, a dynamic payload type, `opus/48000/2` in SDP; we send mono.
    Opus,
}

impl CodecKind {
    /// The RFC 3551 static payload type, or for Opus the dynamic one we pick.
    pub const fn static_payload_type(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
            Self::Opus => OPUS_PAYLOAD_TYPE,
        }
    }

    /// The encoding name used in `a=rtpmap` (compared case-insensitively on input).
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
            Self::Opus => "opus",
        }
    }

    /// The RTP clock rate.
    pub const fn clock_rate(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma => CLOCK_RATE,
            Self::Opus => OPUS_CLOCK_RATE,
        }
    }

    /// The channel count written in `a=rtpmap` (RFC 7587 §7: always 2 for Opus).
    pub const fn rtpmap_channels(self) -> Option<u16> {
        match self {
            Self::Pcmu | Self::Pcma => None,
            Self::Opus => Some(2),
        }
    }

    /// `PCMU/8000`, `opus/48000/2`: the `a=rtpmap` text, for CDRs and logs.
    pub fn rtpmap_name(self) -> String {
        match self.rtpmap_channels() {
            Some(channels) => format!("{}/{}/{channels}", self.encoding_name(), self.clock_rate()),
            None => format!("{}/{}", self.encoding_name(), self.clock_rate()),
        }
    }

    /// RTP timestamp units in one 20 ms frame.
    pub const fn frame_ticks(self) -> u32 {
        self.clock_rate() / 50
    }

    /// Whether both are G.711 (or the same codec): a payload then maps sample for sample,
    /// with no decoder state, and is relayed with at most a table lookup.
    pub fn relays_to(self, to: Self) -> bool {
        self == to || (self != Self::Opus && to != Self::Opus)
    }

    /// The codec with this encoding name (case-insensitive) at `clock_rate`, if we speak it.
    pub fn from_rtpmap(encoding: &str, clock_rate: u32) -> Option<Self> {
        [Self::Pcmu, Self::Pcma, Self::Opus]
            .into_iter()
            .find(|k| k.clock_rate() == clock_rate && k.encoding_name().eq_ignore_ascii_case(encoding))
    }

    /// The codec of a static payload type used without `a=rtpmap`.
    pub const fn from_static_payload_type(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(Self::Pcmu),
            8 => Some(Self::Pcma),
            _ => None,
        }
    }

    /// Encodes linear PCM as G.711, appending the codes to `out`. G.711 only: Opus keeps state
    /// from frame to frame, so it is encoded with an [`Encoder`]; here it appends nothing.
    pub fn encode(self, pcm: &[i16], out: &mut Vec<u8>) {
        match self {
            Self::Pcmu => g711::encode_ulaw(pcm, out),
            Self::Pcma => g711::encode_alaw(pcm, out),
            Self::Opus => debug_assert!(false, "Opus needs an Encoder"),
        }
    }

    /// Decodes G.711 codes to linear PCM, appending to `out`. G.711 only, like [`Self::encode`];
    /// use a [`Decoder`] for Opus.
    pub fn decode(self, codes: &[u8], out: &mut Vec<i16>) {
        match self {
            Self::Pcmu => g711::decode_ulaw(codes, out),
            Self::Pcma => g711::decode_alaw(codes, out),
            Self::Opus => debug_assert!(false, "Opus needs a Decoder"),
        }
    }

    /// Rewrites a payload of `self` as `to` in place (nothing to do when they are equal).
    pub fn transcode_in_place(self, to: Self, payload: &mut [u8]) {
        match (self, to) {
            (Self::Pcmu, Self::Pcma) => g711::ulaw_to_alaw_in_place(payload),
            (Self::Pcma, Self::Pcmu) => g711::alaw_to_ulaw_in_place(payload),
            _ => {}
        }
    }
}

/// Turns one leg's received payloads into 8 kHz PCM. G.711 is a table lookup; Opus keeps the
/// decoder state between packets (and conceals a lost one from it).
pub enum Decoder {
    G711(CodecKind),
    Opus(Box<opus::Decoder>),
}

impl Decoder {
    pub fn new(kind: CodecKind) -> Result<Self, CodecError> {
        match kind {
            CodecKind::Pcmu | CodecKind::Pcma => Ok(Self::G711(kind)),
            CodecKind::Opus => Ok(Self::Opus(Box::new(
                opus::Decoder::new(CLOCK_RATE, opus::Channels::Mono).map_err(CodecError::opus)?,
            ))),
        }
    }

    /// Decodes one payload, appending its samples to `out`. A payload libopus rejects (corrupt
    /// or not Opus) appends nothing and is reported; the decoder stays usable.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        match self {
            Self::G711(kind) => {
                kind.decode(payload, out);
                Ok(())
            }
            Self::Opus(decoder) => {
                if payload.is_empty() {
                    // An empty payload means "lost" to libopus; on the wire it is just nothing.
                    return Ok(());
                }
                let start = out.len();
                out.resize(start + OPUS_MAX_SAMPLES, 0);
                let decoded = decoder.decode(payload, out.get_mut(start..).unwrap_or_default(), false);
                let samples = decoded.as_ref().map_or(0, |n| *n);
                out.truncate(start + samples);
                decoded.map(|_| ()).map_err(CodecError::opus)
            }
        }
    }
}

impl Decoder {
    /// Appends `samples` (8 kHz) standing in for a lost packet: Opus extrapolates from its
    /// state (its packet-loss concealment); G.711 has no state, so silence is inserted.
    pub fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        let start = out.len();
        match self {
            Self::G711(_) => out.resize(start + samples.min(OPUS_MAX_SAMPLES), 0),
            Self::Opus(decoder) => {
                // libopus conceals in multiples of 2.5 ms (20 samples at 8 kHz).
                let samples = (samples / 20 * 20).clamp(20, OPUS_MAX_SAMPLES);
                out.resize(start + samples, 0);
                let concealed = decoder.decode(&[], out.get_mut(start..).unwrap_or_default(), false);
                out.truncate(start + concealed.unwrap_or(0));
            }
        }
    }
}

/// Turns 8 kHz PCM into one leg's payloads. For Opus, frames must be 2.5, 5, 10, 20, 40 or
/// 60 ms (20, 40, 80, 160, 320 or 480 samples); we always give it 20 ms.
pub enum Encoder {
    G711(CodecKind),
    Opus(Box<opus::Encoder>),
}

impl Encoder {
    pub fn new(kind: CodecKind) -> Result<Self, CodecError> {
        match kind {
            CodecKind::Pcmu | CodecKind::Pcma => Ok(Self::G711(kind)),
            CodecKind::Opus => {
                let mut encoder =
                    opus::Encoder::new(CLOCK_RATE, opus::Channels::Mono, opus::Application::Voip)
                        .map_err(CodecError::opus)?;
                encoder.set_bitrate(opus::Bitrate::Bits(OPUS_BITRATE)).map_err(CodecError::opus)?;
                // Complexity 5 of 10: half the encoder's CPU for speech that G.711 carried;
                // transcoding, not quality, bounds calls per core.
                encoder.set_complexity(OPUS_COMPLEXITY).map_err(CodecError::opus)?;
                // In-band FEC lets a browser rebuild a lost packet from the next one.
                encoder.set_inband_fec(true).map_err(CodecError::opus)?;
                encoder.set_packet_loss_perc(5).map_err(CodecError::opus)?;
                Ok(Self::Opus(Box::new(encoder)))
            }
        }
    }

    /// Encodes one frame, appending the payload to `out`.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        match self {
            Self::G711(kind) => {
                kind.encode(pcm, out);
                Ok(())
            }
            Self::Opus(encoder) => {
                let start = out.len();
                out.resize(start + OPUS_MAX_PACKET, 0);
                let written = encoder.encode(pcm, out.get_mut(start..).unwrap_or_default());
                out.truncate(start + written.as_ref().map_or(0, |n| *n));
                written.map(|_| ()).map_err(CodecError::opus)
            }
        }
    }
}

/// libopus refused something (a corrupt packet, a frame of a size it cannot encode).
#[derive(Debug, thiserror::Error)]
#[error("opus: {0}")]
pub struct CodecError(String);

impl CodecError {
    fn opus(error: opus::Error) -> Self {
        Self(error.to_string())
    }
}

/// What offer/answer agreed on for one leg: the audio codec, its payload type, and the
/// payload type of RFC 4733 telephone-events if both sides offered them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Codec {
    pub kind: CodecKind,
    pub payload_type: u8,
    pub dtmf_payload_type: Option<u8>,
}

impl Codec {
    /// The codec on its static payload type, without telephone-events.
    pub const fn new(kind: CodecKind) -> Self {
        Self { kind, payload_type: kind.static_payload_type(), dtmf_payload_type: None }
    }

    /// The same codec with telephone-events on `pt`.
    pub const fn with_dtmf(self, pt: u8) -> Self {
        Self { dtmf_payload_type: Some(pt), ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::tone_power;

    #[test]
    fn names_and_payload_types() {
        assert_eq!(CodecKind::from_rtpmap("pcmu", 8000), Some(CodecKind::Pcmu));
        assert_eq!(CodecKind::from_rtpmap("PCMA", 8000), Some(CodecKind::Pcma));
        assert_eq!(CodecKind::from_rtpmap("PCMA", 16000), None);
        assert_eq!(CodecKind::from_rtpmap("opus", 48000), Some(CodecKind::Opus));
        assert_eq!(CodecKind::from_rtpmap("opus", 8000), None);
        assert_eq!(CodecKind::Opus.rtpmap_name(), "opus/48000/2");
        assert_eq!(CodecKind::Pcma.rtpmap_name(), "PCMA/8000");
        assert!(CodecKind::Pcmu.relays_to(CodecKind::Pcma));
        assert!(!CodecKind::Pcmu.relays_to(CodecKind::Opus));
        assert_eq!(CodecKind::from_static_payload_type(8), Some(CodecKind::Pcma));
        assert_eq!(CodecKind::from_static_payload_type(9), None);
        assert_eq!(Codec::new(CodecKind::Pcma).with_dtmf(101).dtmf_payload_type, Some(101));
    }

    fn tone(frequency: f64, frames: usize) -> Vec<i16> {
        (0..frames * FRAME_SAMPLES)
            .map(|i| ((std::f64::consts::TAU * frequency * i as f64 / 8000.0).sin() * 8000.0) as i16)
            .collect()
    }

    #[test]
    fn opus_round_trip_keeps_a_tone() {
        let input = tone(440.0, 50);
        let mut encoder = Encoder::new(CodecKind::Opus).unwrap();
        let mut decoder = Decoder::new(CodecKind::Opus).unwrap();
        let mut decoded = Vec::new();
        for frame in input.chunks(FRAME_SAMPLES) {
            let mut payload = Vec::new();
            encoder.encode(frame, &mut payload).unwrap();
            assert!(!payload.is_empty() && payload.len() < 200, "20 ms at 24 kbit/s: {}", payload.len());
            let before = decoded.len();
            decoder.decode(&payload, &mut decoded).unwrap();
            assert_eq!(decoded.len() - before, FRAME_SAMPLES);
        }
        // After the codec's start-up, the tone is there and a neighbour is not.
        let tail = &decoded[decoded.len() / 2..];
        assert!(tone_power(tail, 440.0) > 20.0 * tone_power(tail, 1000.0));
        assert!(crate::tone::rms(tail) > 3000.0);
    }

    #[test]
    fn lost_packets_are_concealed() {
        let mut encoder = Encoder::new(CodecKind::Opus).unwrap();
        let mut decoder = Decoder::new(CodecKind::Opus).unwrap();
        let mut out = Vec::new();
        for frame in tone(500.0, 10).chunks(FRAME_SAMPLES) {
            let mut payload = Vec::new();
            encoder.encode(frame, &mut payload).unwrap();
            decoder.decode(&payload, &mut out).unwrap();
        }
        let before = out.len();
        decoder.conceal(FRAME_SAMPLES, &mut out);
        assert_eq!(out.len() - before, FRAME_SAMPLES);
        assert!(crate::tone::rms(&out[before..]) > 500.0, "Opus extrapolates the tone");
        let mut g711 = Decoder::new(CodecKind::Pcmu).unwrap();
        let mut silence = Vec::new();
        g711.conceal(FRAME_SAMPLES, &mut silence);
        assert_eq!(silence, vec![0; FRAME_SAMPLES]);
    }

    #[test]
    fn opus_rejects_garbage_without_state_damage() {
        let mut decoder = Decoder::new(CodecKind::Opus).unwrap();
        let mut out = Vec::new();
        // TOC of a 20 ms CELT frame followed by a length that does not fit: invalid.
        assert!(decoder.decode(&[0xFF, 0xFF, 0xFF], &mut out).is_err());
        assert!(out.is_empty());
        decoder.decode(&[], &mut out).unwrap();
        let mut encoder = Encoder::new(CodecKind::Opus).unwrap();
        let mut payload = Vec::new();
        encoder.encode(&tone(300.0, 1), &mut payload).unwrap();
        decoder.decode(&payload, &mut out).unwrap();
        assert_eq!(out.len(), FRAME_SAMPLES);
        // A frame size libopus cannot encode is an error, not a panic.
        assert!(encoder.encode(&[0; 100], &mut payload).is_err());
    }

    #[test]
    fn transcoding_keeps_silence_silent() {
        let mut payload = vec![0xFF; 4];
        CodecKind::Pcmu.transcode_in_place(CodecKind::Pcma, &mut payload);
        assert_eq!(payload, vec![0xD5; 4]);
        let mut pcm = Vec::new();
        CodecKind::Pcma.decode(&payload, &mut pcm);
        assert!(pcm.iter().all(|s| s.abs() <= 8));
    }
}
