//! One outgoing RTP stream whose content comes from changing sources.
//!
//! A leg sends hold music, then the bridged peer, then another peer after a transfer; the far
//! end must see one stream: our SSRC, sequence numbers that continue, timestamps that follow
//! the wall clock. Within one source the source's own gaps and reordering are kept (so the far
//! end can measure loss), by a fixed offset. On a switch the offsets are recomputed so the next
//! sequence number is the previous + 1 and the timestamp moves on by the wall-clock time since
//! the last packet (at least one 20 ms frame, so frames never overlap), and the packet is
//! marked (RFC 3551 §4.1: the marker flags a discontinuity the receiver should resync on).

use std::time::Instant;

/// The header fields to put on a forwarded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
}

#[derive(Debug, Clone, Copy)]
struct Mapping {
    source: u64,
    seq_offset: u16,
    ts_offset: u32,
}

#[derive(Debug, Clone, Copy)]
struct Last {
    sequence: u16,
    timestamp: u32,
    at: Instant,
}

/// Rewrites the sequence/timestamp/SSRC of packets sent on one leg.
///
/// Sources are opaque `u64` keys chosen by the caller. A source must not be reused after the
/// stream switched away from it: packets from the source just left are dropped (`None`), so a
/// late packet of the old peer cannot flip the stream back. The driver puts an epoch in its keys.
#[derive(Debug, Clone)]
pub struct Rewriter {
    ssrc: u32,
    clock_rate: u32,
    initial_sequence: u16,
    initial_timestamp: u32,
    current: Option<Mapping>,
    previous_source: Option<u64>,
    last: Option<Last>,
}

impl Rewriter {
    /// A stream with our `ssrc` starting at random `initial_sequence`/`initial_timestamp`
    /// (RFC 3550 §5.1 wants both random; the caller draws them).
    pub fn new(ssrc: u32, initial_sequence: u16, initial_timestamp: u32, clock_rate: u32) -> Self {
        Self {
            ssrc,
            clock_rate: clock_rate.max(50),
            initial_sequence,
            initial_timestamp,
            current: None,
            previous_source: None,
            last: None,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The codec changed to one with another RTP clock (8 kHz G.711 to 48 kHz Opus): wall-clock
    /// steps from now on are counted in the new unit. Timestamps already sent stay as they were.
    pub fn set_clock_rate(&mut self, clock_rate: u32) {
        self.clock_rate = clock_rate.max(50);
    }

    /// The source currently feeding the stream.
    pub fn current_source(&self) -> Option<u64> {
        self.current.map(|m| m.source)
    }

    /// Our timestamp for the instant `now`, following the wall clock from the last packet.
    pub fn timestamp_at(&self, now: Instant) -> u32 {
        match self.last {
            Some(last) => last.timestamp.wrapping_add(self.units_since(last.at, now)),
            None => self.initial_timestamp,
        }
    }

    fn units_since(&self, then: Instant, now: Instant) -> u32 {
        let elapsed = now.saturating_duration_since(then);
        (elapsed.as_micros() * u128::from(self.clock_rate) / 1_000_000).min(u128::from(u32::MAX)) as u32
    }

    /// Maps a packet from `source` onto our stream; `None` when it comes from the source we
    /// switched away from.
    pub fn forward(
        &mut self,
        source: u64,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        now: Instant,
    ) -> Option<Rewritten> {
        if let Some(mapping) = self.current.filter(|m| m.source == source) {
            let out_seq = sequence.wrapping_add(mapping.seq_offset);
            let out_ts = timestamp.wrapping_add(mapping.ts_offset);
            let newer = self.last.is_none_or(|last| (out_seq.wrapping_sub(last.sequence) as i16) > 0);
            if newer {
                self.last = Some(Last { sequence: out_seq, timestamp: out_ts, at: now });
            }
            return Some(Rewritten { ssrc: self.ssrc, sequence: out_seq, timestamp: out_ts, marker });
        }
        if self.previous_source == Some(source) {
            return None;
        }
        let (next_seq, next_ts) = match self.last {
            Some(last) => {
                let min_step = self.clock_rate / 50;
                let step = self.units_since(last.at, now).max(min_step);
                (last.sequence.wrapping_add(1), last.timestamp.wrapping_add(step))
            }
            None => (self.initial_sequence, self.initial_timestamp),
        };
        self.previous_source = self.current.map(|m| m.source);
        self.current = Some(Mapping {
            source,
            seq_offset: next_seq.wrapping_sub(sequence),
            ts_offset: next_ts.wrapping_sub(timestamp),
        });
        self.last = Some(Last { sequence: next_seq, timestamp: next_ts, at: now });
        Some(Rewritten { ssrc: self.ssrc, sequence: next_seq, timestamp: next_ts, marker: true })
    }

    /// The sequence number for a packet we make up ourselves between forwarded ones (an RFC 4733
    /// event while relaying). The current source's packets move up by one so numbers never repeat.
    pub fn next_local_sequence(&mut self, now: Instant) -> u16 {
        let sequence = match self.last {
            Some(last) => last.sequence.wrapping_add(1),
            None => self.initial_sequence,
        };
        let timestamp = self.timestamp_at(now);
        match &mut self.last {
            Some(last) => last.sequence = sequence,
            None => self.last = Some(Last { sequence, timestamp, at: now }),
        }
        if let Some(mapping) = &mut self.current {
            mapping.seq_offset = mapping.seq_offset.wrapping_add(1);
        }
        sequence
    }

    /// Forgets the current source so that whatever comes next starts a new segment (marked,
    /// timestamps jumped); used when a bridge or playback on the leg ends.
    pub fn detach(&mut self) {
        if let Some(mapping) = self.current.take() {
            self.previous_source = Some(mapping.source);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ms(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn one_source_keeps_its_gaps_and_order() {
        let start = Instant::now();
        let mut rw = Rewriter::new(0xAAAA, 100, 5000, 8000);
        let first = rw.forward(1, 40_000, 1_000_000, false, start).unwrap();
        assert_eq!((first.ssrc, first.sequence, first.timestamp, first.marker), (0xAAAA, 100, 5000, true));
        let second = rw.forward(1, 40_001, 1_000_160, false, ms(start, 20)).unwrap();
        assert_eq!((second.sequence, second.timestamp, second.marker), (101, 5160, false));
        // A gap stays a gap, a late packet keeps its place.
        assert_eq!(rw.forward(1, 40_004, 1_000_640, false, ms(start, 80)).unwrap().sequence, 104);
        assert_eq!(rw.forward(1, 40_003, 1_000_480, false, ms(start, 81)).unwrap().sequence, 103);
        assert!(rw.forward(1, 40_005, 1_000_800, true, ms(start, 100)).unwrap().marker, "source marker kept");
    }

    #[test]
    fn switching_sources_stays_continuous() {
        let start = Instant::now();
        let mut rw = Rewriter::new(7, 65_534, u32::MAX - 100, 8000);
        // Hold music: its own counters.
        for i in 0..3u16 {
            let out = rw.forward(10, i, u32::from(i) * 160, false, ms(start, u64::from(i) * 20)).unwrap();
            assert_eq!(out.sequence, 65_534u16.wrapping_add(i));
        }
        // The bridged peer takes over 60 ms after the last music frame, with wild numbers.
        let peer = rw.forward(20, 12_345, 777_777, false, ms(start, 100)).unwrap();
        assert_eq!(peer.sequence, 1, "65534, 65535, 0, then 1");
        assert_eq!(peer.timestamp, (u32::MAX - 100).wrapping_add(320 + 480), "jumped by wall-clock 60 ms");
        assert!(peer.marker);
        assert_eq!(peer.ssrc, 7);
        let next = rw.forward(20, 12_346, 777_937, false, ms(start, 120)).unwrap();
        assert_eq!(
            (next.sequence, next.timestamp.wrapping_sub(peer.timestamp), next.marker),
            (2, 160, false)
        );
        // A late music packet after the switch is dropped, not allowed to flip the stream back.
        assert_eq!(rw.forward(10, 3, 480, false, ms(start, 121)), None);
        // An immediate switch still advances by at least one frame.
        let other = rw.forward(30, 9, 9, false, ms(start, 121)).unwrap();
        assert_eq!((other.sequence, other.timestamp.wrapping_sub(next.timestamp)), (3, 160));
    }

    #[test]
    fn local_packets_interleave_without_repeating_numbers() {
        let start = Instant::now();
        let mut rw = Rewriter::new(1, 10, 0, 8000);
        rw.forward(5, 100, 0, false, start).unwrap();
        let event_ts = rw.timestamp_at(ms(start, 30));
        assert_eq!(event_ts, 240);
        assert_eq!(rw.next_local_sequence(ms(start, 30)), 11);
        assert_eq!(rw.next_local_sequence(ms(start, 31)), 12);
        // The relayed source continues after the injected packets.
        assert_eq!(rw.forward(5, 101, 160, false, ms(start, 40)).unwrap().sequence, 13);
        let mut idle = Rewriter::new(1, 500, 42, 8000);
        assert_eq!(idle.next_local_sequence(start), 500);
        assert_eq!(idle.timestamp_at(ms(start, 1000)), 42 + 8000);
    }

    #[test]
    fn detach_starts_a_new_segment() {
        let start = Instant::now();
        let mut rw = Rewriter::new(1, 0, 0, 8000);
        rw.forward(5, 0, 0, false, start).unwrap();
        rw.detach();
        assert_eq!(rw.current_source(), None);
        assert_eq!(rw.forward(5, 1, 160, false, ms(start, 20)), None, "the detached source is gone");
        let next = rw.forward(6, 50, 0, false, ms(start, 1000)).unwrap();
        assert_eq!((next.sequence, next.timestamp, next.marker), (1, 8000, true));
    }
}
