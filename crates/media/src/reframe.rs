//! Re-framing decoded audio for a leg of another codec family: 20 ms frames with timestamps
//! moved from the source's RTP clock to the target's.
//!
//! When a G.711 leg (8 kHz clock) is bridged to an Opus leg (48 kHz clock), payloads cannot be
//! relayed: the source is decoded to 8 kHz PCM, and the target encodes frames of its own. The
//! source's packets may be 10, 20, 30 or 60 ms long while Opus wants 20 ms frames, so PCM is
//! gathered here and cut into [`FRAME_SAMPLES`] frames. Each frame keeps the timing of the
//! source (a gap in the source's timestamps stays a gap), expressed in the target's clock, so
//! the target leg's [`crate::rtp::Rewriter`] can treat it like any relayed stream.

use crate::codec::{CLOCK_RATE, FRAME_SAMPLES};

/// One 20 ms frame ready for the target's encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Continuous per source: one per frame made.
    pub sequence: u16,
    /// In the target's clock.
    pub timestamp: u32,
    pub marker: bool,
    pub samples: [i16; FRAME_SAMPLES],
}

/// Gathers one source's decoded PCM into frames for one target.
#[derive(Debug, Clone)]
pub struct Reframer {
    /// The source being re-framed (an opaque key); a new one starts afresh.
    source: Option<u64>,
    /// The last source timestamp seen and where it landed in the target's clock.
    anchor_in: u32,
    anchor_out: u32,
    pending: Vec<i16>,
    /// Target-clock timestamp of `pending[0]`.
    pending_timestamp: u32,
    /// Target clock units per 8 kHz sample (1 for G.711, 6 for Opus).
    ticks_per_sample: u32,
    sequence: u16,
    marker: bool,
}

impl Default for Reframer {
    fn default() -> Self {
        Self::new()
    }
}

impl Reframer {
    pub fn new() -> Self {
        Self {
            source: None,
            anchor_in: 0,
            anchor_out: 0,
            pending: Vec::with_capacity(2 * FRAME_SAMPLES),
            pending_timestamp: 0,
            ticks_per_sample: 1,
            sequence: 0,
            marker: false,
        }
    }

    /// Adds the PCM (8 kHz) decoded from one packet of `source`, stamped `timestamp` in the
    /// source's `source_rate` clock, for a target whose clock is `target_rate`.
    pub fn push(
        &mut self,
        source: u64,
        source_rate: u32,
        timestamp: u32,
        marker: bool,
        pcm: &[i16],
        target_rate: u32,
    ) {
        let (source_rate, target_rate) = (source_rate.max(1), target_rate.max(1));
        if self.source != Some(source) {
            self.source = Some(source);
            self.anchor_in = timestamp;
            self.pending.clear();
            self.marker = true;
        }
        // Timestamp differences carry over wrap-around; scaling the difference (not the
        // absolute value) keeps the mapping continuous whatever the ratio.
        let delta = i64::from(timestamp.wrapping_sub(self.anchor_in) as i32);
        let mapped =
            self.anchor_out.wrapping_add((delta * i64::from(target_rate) / i64::from(source_rate)) as u32);
        self.anchor_in = timestamp;
        self.anchor_out = mapped;
        let ticks_per_sample = (target_rate / CLOCK_RATE).max(1);
        let expected = self.pending_timestamp.wrapping_add(self.pending.len() as u32 * ticks_per_sample);
        if self.pending.is_empty() {
            self.pending_timestamp = mapped;
        } else if expected != mapped {
            // Loss or reordering in the middle of a frame: the partial frame is dropped rather
            // than stretched over the gap.
            self.pending.clear();
            self.pending_timestamp = mapped;
        }
        self.marker |= marker;
        self.pending.extend_from_slice(pcm);
        self.ticks_per_sample = ticks_per_sample;
    }

    /// The next whole frame, if one is gathered.
    pub fn pop(&mut self) -> Option<Frame> {
        if self.pending.len() < FRAME_SAMPLES {
            return None;
        }
        let mut samples = [0i16; FRAME_SAMPLES];
        samples.copy_from_slice(self.pending.get(..FRAME_SAMPLES)?);
        self.pending.drain(..FRAME_SAMPLES);
        let frame = Frame {
            sequence: self.sequence,
            timestamp: self.pending_timestamp,
            marker: self.marker,
            samples,
        };
        self.sequence = self.sequence.wrapping_add(1);
        self.pending_timestamp =
            self.pending_timestamp.wrapping_add(FRAME_SAMPLES as u32 * self.ticks_per_sample);
        self.marker = false;
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm(samples: usize, value: i16) -> Vec<i16> {
        vec![value; samples]
    }

    #[test]
    fn g711_to_opus_frames_follow_the_source_in_48_khz() {
        let mut reframer = Reframer::new();
        let mut frames = Vec::new();
        // 20 ms packets at 8 kHz, the third one lost.
        for (i, ts) in [1000u32, 1160, 1480, 1640].into_iter().enumerate() {
            reframer.push(7, 8000, ts, i == 0, &pcm(160, i as i16), 48_000);
            while let Some(frame) = reframer.pop() {
                frames.push(frame);
            }
        }
        let stamps: Vec<u32> = frames.iter().map(|f| f.timestamp.wrapping_sub(frames[0].timestamp)).collect();
        assert_eq!(stamps, [0, 960, 2880, 3840], "the lost packet stays a 20 ms gap, in 48 kHz units");
        assert_eq!(frames.iter().map(|f| f.sequence).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert!(frames[0].marker && !frames[1].marker);
        assert_eq!(frames[3].samples[0], 3);
    }

    #[test]
    fn opus_60_ms_packets_to_g711_become_three_frames_each() {
        let mut reframer = Reframer::new();
        reframer.push(1, 48_000, u32::MAX - 1000, false, &pcm(480, 5), 8000);
        reframer.push(1, 48_000, (u32::MAX - 1000).wrapping_add(2880), false, &pcm(480, 6), 8000);
        let frames: Vec<Frame> = std::iter::from_fn(|| reframer.pop()).collect();
        assert_eq!(frames.len(), 6);
        for pair in frames.windows(2) {
            assert_eq!(pair[1].timestamp.wrapping_sub(pair[0].timestamp), 160, "continuous across the wrap");
        }
    }

    #[test]
    fn ten_ms_packets_are_joined_and_a_gap_drops_the_half_frame() {
        let mut reframer = Reframer::new();
        reframer.push(1, 8000, 0, false, &pcm(80, 1), 8000);
        assert!(reframer.pop().is_none());
        reframer.push(1, 8000, 80, false, &pcm(80, 2), 8000);
        let frame = reframer.pop().unwrap();
        assert_eq!((frame.samples[0], frame.samples[159]), (1, 2));
        reframer.push(1, 8000, 160, false, &pcm(80, 3), 8000);
        // 80 samples missing: the half frame is not stretched over the gap.
        reframer.push(1, 8000, 320, false, &pcm(160, 4), 8000);
        let frame = reframer.pop().unwrap();
        assert_eq!((frame.timestamp, frame.samples[0]), (320, 4));
        assert!(reframer.pop().is_none());
    }

    /// Arbitrary timestamps, rates and packet sizes: no panic, and what is not yet a frame
    /// stays under one frame once everything is popped.
    #[test]
    fn arbitrary_input_is_handled() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut reframer = Reframer::new();
        let rates = [8000, 48_000, 1, 0, u32::MAX];
        for _ in 0..50_000 {
            let r = next();
            let source_rate = rates[(r % 5) as usize];
            let target_rate = rates[((r >> 3) % 5) as usize];
            let samples = ((r >> 8) % 961) as usize;
            reframer.push(
                (r >> 20) % 3,
                source_rate,
                (r >> 32) as u32,
                r & 1 == 0,
                &pcm(samples, 1),
                target_rate,
            );
            while reframer.pop().is_some() {}
            assert!(reframer.pending.len() < FRAME_SAMPLES);
        }
    }

    #[test]
    fn a_new_source_starts_afresh_and_is_marked() {
        let mut reframer = Reframer::new();
        reframer.push(1, 8000, 0, false, &pcm(100, 1), 8000);
        reframer.push(2, 8000, 5000, false, &pcm(160, 2), 8000);
        let frame = reframer.pop().unwrap();
        assert!(frame.marker);
        assert_eq!(frame.samples[0], 2);
    }
}
