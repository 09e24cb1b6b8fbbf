//! The audio codecs a leg can speak and what offer/answer agreed on for it.

use serde::Serialize;

use crate::g711;

/// Samples per second of every codec we speak (G.711 and RFC 4733 events at 8 kHz).
pub const CLOCK_RATE: u32 = 8000;
/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// An audio codec the media plane can send, receive and transcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum CodecKind {
    /// G.711 μ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl CodecKind {
    /// The RFC 3551 static payload type.
    pub const fn static_payload_type(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
        }
    }

    /// The encoding name used in `a=rtpmap` (compared case-insensitively on input).
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
        }
    }

    /// The codec with this encoding name (case-insensitive) at `clock_rate`, if we speak it.
    pub fn from_rtpmap(encoding: &str, clock_rate: u32) -> Option<Self> {
        if clock_rate != CLOCK_RATE {
            return None;
        }
        [Self::Pcmu, Self::Pcma].into_iter().find(|k| k.encoding_name().eq_ignore_ascii_case(encoding))
    }

    /// The codec of a static payload type used without `a=rtpmap`.
    pub const fn from_static_payload_type(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(Self::Pcmu),
            8 => Some(Self::Pcma),
            _ => None,
        }
    }

    /// Encodes linear PCM, appending the codes to `out`.
    pub fn encode(self, pcm: &[i16], out: &mut Vec<u8>) {
        match self {
            Self::Pcmu => g711::encode_ulaw(pcm, out),
            Self::Pcma => g711::encode_alaw(pcm, out),
        }
    }

    /// Decodes codes to linear PCM, appending to `out`.
    pub fn decode(self, codes: &[u8], out: &mut Vec<i16>) {
        match self {
            Self::Pcmu => g711::decode_ulaw(codes, out),
            Self::Pcma => g711::decode_alaw(codes, out),
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

    #[test]
    fn names_and_payload_types() {
        assert_eq!(CodecKind::from_rtpmap("pcmu", 8000), Some(CodecKind::Pcmu));
        assert_eq!(CodecKind::from_rtpmap("PCMA", 8000), Some(CodecKind::Pcma));
        assert_eq!(CodecKind::from_rtpmap("PCMA", 16000), None);
        assert_eq!(CodecKind::from_rtpmap("opus", 48000), None);
        assert_eq!(CodecKind::from_static_payload_type(8), Some(CodecKind::Pcma));
        assert_eq!(CodecKind::from_static_payload_type(9), None);
        assert_eq!(Codec::new(CodecKind::Pcma).with_dtmf(101).dtmf_payload_type, Some(101));
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
