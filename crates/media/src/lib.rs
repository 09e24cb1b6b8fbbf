//! SIVO's media plane: what a B2BUA needs to carry calls' audio — SDP offer/answer, RTP relay
//! with latching and stream rewriting, G.711 and Opus transcoding, RFC 4733 DTMF, hold music
//! and ringback, and stereo call recording.
//!
//! # Layout
//!
//! Sans-IO cores (no sockets, no tokio, no clock reads, no global RNG: time and randomness are
//! arguments; nothing panics on bytes from the network):
//! - [`sdp`]: RFC 4566 model, parser and serializer; RFC 3264 [`sdp::negotiate`], [`sdp::offer`],
//!   [`sdp::answer`].
//! - [`codec`]: [`CodecKind`], the negotiated [`Codec`], stateful [`Encoder`]/[`Decoder`]
//!   (Opus via libopus, which also resamples between 8 and 48 kHz); [`g711`]: μ-law/A-law;
//!   [`reframe`]: 20 ms frames and clock conversion for audio crossing codec families;
//!   [`jitter`]: the reorder buffer and loss detection in front of every decoder.
//! - [`rtp`]: packets, RTCP, [`rtp::ReceiveStats`] (RFC 3550 loss/jitter), [`rtp::Rewriter`]
//!   (one continuous outgoing stream across source switches).
//! - [`latch`]: the symmetric-RTP latching rule.
//! - [`dtmf`]: RFC 4733 events; [`tone`]: hold music, ringback, file playback; [`wav`]: WAV files.
//!
//! The driver ([`Media`]) runs media shards: OS threads, each a current-thread tokio runtime
//! owning its legs' sockets and all their state, so the media path takes no locks. The legs of
//! one call share a group and hence a shard, which lets a bridge relay packets synchronously
//! from one leg's socket to the other's.
//!
//! # Features
//!
//! - `webrtc` (off by default; aws-lc makes a clean build minutes longer): WebRTC legs with
//!   str0m, [`Media::open_webrtc_leg`]. ICE-lite, DTLS-SRTP, PCMU/PCMA when the browser offers
//!   them, Opus when it does not, and telephone-events; bridged, recorded and played to like
//!   plain RTP legs.

pub mod codec;
pub mod dtmf;
pub mod g711;
pub mod jitter;
pub mod latch;
pub mod reframe;
pub mod rtp;
pub mod sdp;
pub mod tone;
pub mod wav;

mod driver;

pub use codec::{Codec, CodecError, CodecKind, Decoder, Encoder};
pub use driver::{Leg, LegId, LegStats, Media, MediaConfig, MediaError, MediaEvent, Playback, RecordingInfo};
pub use sdp::{Direction, SessionDescription};
