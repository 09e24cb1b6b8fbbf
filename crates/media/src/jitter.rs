//! The receive buffer in front of every decoder: puts packets back in sequence order and says
//! which ones are lost, so the decoder can conceal them instead of decoding out of order.
//!
//! Relayed audio is not delayed by it: packets that are only forwarded go straight through and
//! the far end's own jitter buffer deals with them. Where we decode (recording, the conference
//! mixer, G.711 ↔ Opus transcoding), a packet that arrives ahead of a missing one is held until
//! the missing one comes or [`REORDER_DEPTH`] packets are waiting; then the gap is released as
//! [`Release::Lost`]. In order, nothing waits: a steady stream adds no latency. Smoothing of
//! arrival times happens after decoding, in the 20 ms playout of the recorder and the mixer.

use std::collections::BTreeMap;

/// Packets held while one before them is missing; the gap is declared lost beyond this
/// (two 20 ms packets: reordering within 40 ms is repaired).
pub const REORDER_DEPTH: usize = 2;
/// A sequence jump this large (either way) is a restarted sender, not loss or lateness.
const RESTART_DISTANCE: u16 = 512;
/// Longest gap concealed, in packets; a longer outage is left as a gap.
const MAX_CONCEALED: u16 = 6;
/// Largest timestamp step per packet believed for concealment (125 ms at 48 kHz): a jump
/// beyond it is a sender's discontinuity, not one lost packet's worth of audio.
const MAX_STEP: u32 = 6000;

/// What comes out of the buffer, in sequence order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release<'a> {
    Packet {
        sequence: u16,
        timestamp: u32,
        marker: bool,
        payload: &'a [u8],
    },
    /// A packet that never came (or came too late); `timestamp` is interpolated from its
    /// neighbours and `duration` (in RTP clock units) is how much audio to conceal.
    Lost {
        sequence: u16,
        timestamp: u32,
        duration: u32,
    },
}

#[derive(Debug, Clone)]
struct Held {
    timestamp: u32,
    marker: bool,
    payload: Vec<u8>,
}

/// Reorders one received stream. Time-free: releases happen on packet arrival.
#[derive(Debug, Clone, Default)]
pub struct JitterBuffer {
    ssrc: Option<u32>,
    /// The next sequence number to release, and the timestamp of the last one released.
    expected: Option<u16>,
    last_timestamp: u32,
    held: BTreeMap<u16, Held>,
    late: u64,
    concealed: u64,
}

impl JitterBuffer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the stream (nothing is decoded for a while; the next packet starts afresh).
    pub fn reset(&mut self) {
        self.ssrc = None;
        self.expected = None;
        self.held.clear();
    }

    /// Packets dropped because they came after their slot was released (or concealed).
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Packets released as [`Release::Lost`].
    pub fn concealed(&self) -> u64 {
        self.concealed
    }

    /// Takes one received packet; everything that can be released now goes to `release`, in
    /// order (possibly nothing, possibly a gap and several held packets).
    pub fn push(
        &mut self,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        mut release: impl FnMut(Release<'_>),
    ) {
        if self.ssrc != Some(ssrc) {
            self.restart(ssrc);
        }
        let Some(expected) = self.expected else {
            self.deliver(sequence, timestamp, marker, payload, &mut release);
            return;
        };
        let ahead = sequence.wrapping_sub(expected);
        let behind = expected.wrapping_sub(sequence);
        if ahead == 0 {
            self.deliver(sequence, timestamp, marker, payload, &mut release);
            self.rebase(1);
            self.release_held(&mut release);
        } else if behind > 0 && behind < RESTART_DISTANCE {
            // Its slot was released already: decoding it now would go backwards.
            self.late += 1;
        } else if ahead < RESTART_DISTANCE {
            self.held.entry(ahead).or_insert_with(|| Held { timestamp, marker, payload: payload.to_vec() });
            if self.held.len() > REORDER_DEPTH {
                self.skip_gap(&mut release);
                self.release_held(&mut release);
            }
        } else {
            // The sender restarted its numbering: start over from this packet.
            self.restart(ssrc);
            self.deliver(sequence, timestamp, marker, payload, &mut release);
        }
    }

    fn restart(&mut self, ssrc: u32) {
        self.ssrc = Some(ssrc);
        self.expected = None;
        self.held.clear();
    }

    fn deliver(
        &mut self,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        release: &mut impl FnMut(Release<'_>),
    ) {
        release(Release::Packet { sequence, timestamp, marker, payload });
        self.expected = Some(sequence.wrapping_add(1));
        self.last_timestamp = timestamp;
    }

    /// Held packets are keyed by their distance from `expected`; after `expected` moves by
    /// `by`, the keys move down with it.
    fn rebase(&mut self, by: u16) {
        if self.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        self.held = held.into_iter().filter_map(|(ahead, h)| ahead.checked_sub(by).map(|a| (a, h))).collect();
    }

    /// Releases held packets that now follow on without a gap.
    fn release_held(&mut self, release: &mut impl FnMut(Release<'_>)) {
        while let Some(held) = self.held.remove(&0) {
            let Some(sequence) = self.expected else { return };
            self.deliver(sequence, held.timestamp, held.marker, &held.payload, release);
            self.rebase(1);
        }
    }

    /// Declares the packets before the first held one lost.
    fn skip_gap(&mut self, release: &mut impl FnMut(Release<'_>)) {
        let (Some(expected), Some((&gap, first))) = (self.expected, self.held.first_key_value()) else {
            return;
        };
        // Spread the timestamp distance evenly over the missing packets and the one after.
        let step = first.timestamp.wrapping_sub(self.last_timestamp) / (u32::from(gap) + 1);
        if gap <= MAX_CONCEALED && step > 0 && step <= MAX_STEP {
            for i in 0..gap {
                let timestamp = self.last_timestamp.wrapping_add(step.wrapping_mul(u32::from(i) + 1));
                release(Release::Lost { sequence: expected.wrapping_add(i), timestamp, duration: step });
                self.concealed += 1;
            }
        }
        self.expected = Some(expected.wrapping_add(gap));
        self.last_timestamp = first.timestamp.wrapping_sub(step);
        self.rebase(gap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes (sequence, timestamp) packets, returns what came out as text.
    fn run(packets: &[(u16, u32)]) -> Vec<String> {
        let mut buffer = JitterBuffer::new();
        let mut out = Vec::new();
        for &(sequence, timestamp) in packets {
            buffer.push(1, sequence, timestamp, false, &[sequence as u8], |r| {
                out.push(match r {
                    Release::Packet { sequence, timestamp, .. } => format!("{sequence}@{timestamp}"),
                    Release::Lost { sequence, timestamp, duration } => {
                        format!("lost {sequence}@{timestamp}+{duration}")
                    }
                })
            });
        }
        out
    }

    #[test]
    fn in_order_packets_pass_at_once() {
        assert_eq!(run(&[(10, 0), (11, 160), (12, 320)]), ["10@0", "11@160", "12@320"]);
    }

    #[test]
    fn a_swapped_pair_is_put_back_in_order() {
        assert_eq!(run(&[(10, 0), (12, 320), (11, 160), (13, 480)]), ["10@0", "11@160", "12@320", "13@480"]);
    }

    #[test]
    fn a_missing_packet_is_concealed_once_the_depth_is_exceeded_and_a_late_one_dropped() {
        let mut buffer = JitterBuffer::new();
        let mut out = Vec::new();
        for (sequence, timestamp) in [(65534u16, 0u32), (0, 320), (1, 480), (2, 640), (65535, 160)] {
            buffer.push(7, sequence, timestamp, false, &[], |r| {
                out.push(match r {
                    Release::Packet { sequence, .. } => format!("{sequence}"),
                    Release::Lost { sequence, timestamp, duration } => {
                        format!("lost {sequence}@{timestamp}+{duration}")
                    }
                })
            });
        }
        assert_eq!(out, ["65534", "lost 65535@160+160", "0", "1", "2"], "across the wrap");
        assert_eq!((buffer.concealed(), buffer.late()), (1, 1));
    }

    #[test]
    fn a_restarted_sender_or_new_ssrc_starts_over() {
        assert_eq!(
            run(&[(10, 0), (11, 160), (40000, 9999), (40001, 10159)]),
            ["10@0", "11@160", "40000@9999", "40001@10159"]
        );
        let mut buffer = JitterBuffer::new();
        let mut count = 0;
        buffer.push(1, 100, 0, false, &[], |_| count += 1);
        buffer.push(2, 5, 0, false, &[], |_| count += 1);
        assert_eq!(count, 2, "a new SSRC is delivered at once");
    }

    #[test]
    fn timestamps_jumping_anywhere_never_panic_or_conceal_a_jump() {
        let out = run(&[(1, 0), (3, u32::MAX), (4, 7), (5, 2_000_000_000), (6, 10)]);
        assert_eq!(out, ["1@0", "3@4294967295", "4@7", "5@2000000000", "6@10"], "a jump is not concealed");
    }

    /// Arbitrary arrivals (any SSRC switch, sequence, timestamp): no panic, nothing held beyond
    /// the depth, and every packet released at most once.
    #[test]
    fn arbitrary_arrivals_are_handled() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut buffer = JitterBuffer::new();
        for _ in 0..200_000 {
            let r = next();
            let ssrc = (r % 3) as u32;
            let sequence = (r >> 8) as u16 % 40;
            let timestamp = if r & 0x10 == 0 { u32::from(sequence) * 160 } else { (r >> 32) as u32 };
            let mut released = Vec::new();
            buffer.push(ssrc, sequence, timestamp, false, &[], |release| {
                if let Release::Packet { sequence, .. } = release {
                    released.push(sequence);
                }
            });
            let mut unique = released.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), released.len(), "released twice: {released:?}");
            assert!(buffer.held.len() <= REORDER_DEPTH);
        }
    }

    #[test]
    fn a_long_outage_is_a_gap_not_minutes_of_concealment() {
        let out = run(&[(1, 0), (20, 3040), (21, 3200), (22, 3360)]);
        assert_eq!(out, ["1@0", "20@3040", "21@3200", "22@3360"]);
    }
}
