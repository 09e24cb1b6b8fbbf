//! Receive statistics for one incoming RTP stream, after RFC 3550 Appendix A.1, A.3 and A.8.

use std::time::Instant;

use super::rtcp::ReportBlock;

/// A jump of more than this many sequence numbers ahead is suspicious (RFC 3550 A.1).
const MAX_DROPOUT: u16 = 3000;
/// Up to this many sequence numbers behind is a late (reordered or duplicate) packet.
const MAX_MISORDER: u16 = 100;

/// Loss and jitter of the stream received on one leg.
///
/// Counts carry over when the sender changes SSRC (a peer re-INVITE, a transfer behind the
/// far end): the old stream's expected and received totals are folded in and sequence tracking
/// restarts. A sequence jump beyond 3000 is only believed when the next packet
/// continues from it (the sender restarted); until then the packet is not counted.
#[derive(Debug, Clone)]
pub struct ReceiveStats {
    clock_rate: u32,
    ssrc: Option<u32>,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    bad_seq: Option<u16>,
    received: u64,
    /// Totals of previous SSRCs.
    folded_expected: u64,
    folded_received: u64,
    expected_prior: u64,
    received_prior: u64,
    epoch: Option<Instant>,
    transit: Option<u32>,
    /// Interarrival jitter in timestamp units, RFC 3550 A.8 (kept unscaled as f64).
    jitter: f64,
    last_sr: Option<(u32, Instant)>,
}

impl ReceiveStats {
    /// The stream's codec changed to one with another RTP clock; jitter is measured in the new
    /// unit from the next packet (the running estimate is kept, converted).
    pub fn set_clock_rate(&mut self, clock_rate: u32) {
        let clock_rate = clock_rate.max(1);
        self.jitter = self.jitter * f64::from(clock_rate) / f64::from(self.clock_rate);
        self.clock_rate = clock_rate;
        self.transit = None;
    }

    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            ssrc: None,
            base_seq: 0,
            max_seq: 0,
            cycles: 0,
            bad_seq: None,
            received: 0,
            folded_expected: 0,
            folded_received: 0,
            expected_prior: 0,
            received_prior: 0,
            epoch: None,
            transit: None,
            jitter: 0.0,
            last_sr: None,
        }
    }

    fn restart(&mut self, ssrc: u32, seq: u16) {
        if self.ssrc.is_some() {
            self.folded_expected += self.expected_current();
            self.folded_received += self.received;
        }
        self.ssrc = Some(ssrc);
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.cycles = 0;
        self.bad_seq = None;
        self.received = 0;
        self.transit = None;
    }

    /// Records an audio packet; `arrival` feeds the jitter estimate. Returns false when the
    /// packet was not counted (a sequence jump not yet confirmed).
    pub fn record(&mut self, ssrc: u32, seq: u16, timestamp: u32, arrival: Instant) -> bool {
        if !self.update_sequence(ssrc, seq) {
            return false;
        }
        let epoch = *self.epoch.get_or_insert(arrival);
        let elapsed = arrival.saturating_duration_since(epoch);
        // Arrival time in timestamp units; only differences matter, so wrapping is fine.
        let arrival_units = (elapsed.as_micros() * u128::from(self.clock_rate) / 1_000_000) as u32;
        let transit = arrival_units.wrapping_sub(timestamp);
        if let Some(previous) = self.transit {
            let d = f64::from((transit.wrapping_sub(previous) as i32).unsigned_abs());
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.transit = Some(transit);
        true
    }

    /// Records a packet whose timestamp says nothing about timing (RFC 4733 events repeat
    /// the event's start timestamp): counted for loss, not for jitter.
    pub fn record_untimed(&mut self, ssrc: u32, seq: u16) -> bool {
        self.update_sequence(ssrc, seq)
    }

    fn update_sequence(&mut self, ssrc: u32, seq: u16) -> bool {
        if self.ssrc != Some(ssrc) {
            self.restart(ssrc, seq);
            self.received = 1;
            return true;
        }
        let delta = seq.wrapping_sub(self.max_seq);
        if delta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += 1 << 16;
            }
            self.max_seq = seq;
        } else if delta <= u16::MAX - MAX_MISORDER {
            // A big jump: believe it only if the next packet follows it.
            if self.bad_seq == Some(seq) {
                // The sender restarted its sequence: fold what was counted and start over.
                self.restart(ssrc, seq);
            } else {
                self.bad_seq = Some(seq.wrapping_add(1));
                return false;
            }
        }
        // Otherwise: a duplicate or reordered packet, counted as received (RFC 3550 A.3).
        self.received += 1;
        true
    }

    fn expected_current(&self) -> u64 {
        if self.ssrc.is_none() {
            return 0;
        }
        u64::from(self.extended_highest()) - u64::from(self.base_seq) + 1
    }

    /// Highest sequence number received, extended with the wrap count.
    pub fn extended_highest(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Packets received (duplicates included, as RFC 3550 counts them).
    pub fn received(&self) -> u64 {
        self.folded_received + self.received
    }

    /// Packets expected from the sequence numbers seen.
    pub fn expected(&self) -> u64 {
        self.folded_expected + self.expected_current()
    }

    /// Cumulative packets lost: expected − received, never negative here.
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received())
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter_units(&self) -> f64 {
        self.jitter
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter * 1000.0 / f64::from(self.clock_rate)
    }

    /// SSRC of the stream currently received.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Notes an SR received from the sender, for the LSR/DLSR fields of our next report.
    pub fn sender_report_received(&mut self, ntp: u64, arrival: Instant) {
        self.last_sr = Some(((ntp >> 16) as u32, arrival));
    }

    /// The report block for our next RR/SR, and resets the "since last report" interval.
    pub fn report_block(&mut self, now: Instant) -> Option<ReportBlock> {
        let ssrc = self.ssrc?;
        let expected = self.expected();
        let received = self.received();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction_lost = (lost_interval << 8).checked_div(expected_interval).unwrap_or(0).min(255) as u8;
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => {
                let delay = now.saturating_duration_since(at);
                (lsr, (delay.as_micros() * 65536 / 1_000_000).min(u128::from(u32::MAX)) as u32)
            }
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: self.lost().min(0x7F_FFFF) as i32,
            extended_highest_sequence: self.extended_highest(),
            jitter: self.jitter as u32,
            last_sr,
            delay_since_last_sr,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SSRC: u32 = 0x1234;

    /// Feeds packets `(seq, arrival ms)` with timestamps 160 × seq.
    fn feed(stats: &mut ReceiveStats, start: Instant, packets: &[(u16, u64)]) {
        for &(seq, ms) in packets {
            stats.record(SSRC, seq, u32::from(seq).wrapping_mul(160), start + Duration::from_millis(ms));
        }
    }

    #[test]
    fn perfect_stream_has_no_loss_or_jitter() {
        let start = Instant::now();
        let mut stats = ReceiveStats::new(8000);
        let packets: Vec<_> = (0..50u16).map(|i| (1000 + i, u64::from(i) * 20)).collect();
        feed(&mut stats, start, &packets);
        assert_eq!(stats.received(), 50);
        assert_eq!(stats.expected(), 50);
        assert_eq!(stats.lost(), 0);
        assert_eq!(stats.extended_highest(), 1049);
        assert!(stats.jitter_ms() < 0.01, "{}", stats.jitter_ms());
    }

    #[test]
    fn loss_and_reordering() {
        let start = Instant::now();
        let mut stats = ReceiveStats::new(8000);
        // 10 is lost, 12 and 13 arrive swapped, 14 is duplicated.
        feed(
            &mut stats,
            start,
            &[(8, 0), (9, 20), (11, 60), (13, 80), (12, 81), (14, 100), (14, 101), (15, 120)],
        );
        assert_eq!(stats.expected(), 8);
        assert_eq!(stats.received(), 8, "duplicates count (RFC 3550 A.3)");
        assert_eq!(stats.lost(), 0, "a duplicate hides a loss, as in RFC 3550");
        feed(&mut stats, start, &[(18, 180)]);
        assert_eq!(stats.expected(), 11);
        assert_eq!(stats.lost(), 2);
        let block = stats.report_block(start + Duration::from_millis(200)).unwrap();
        assert_eq!(block.cumulative_lost, 2);
        assert_eq!(block.fraction_lost, (2 * 256 / 11) as u8);
        assert_eq!(block.extended_highest_sequence, 18);
        // Nothing new since: fraction 0.
        assert_eq!(stats.report_block(start + Duration::from_millis(300)).unwrap().fraction_lost, 0);
    }

    #[test]
    fn sequence_wrap_extends() {
        let start = Instant::now();
        let mut stats = ReceiveStats::new(8000);
        feed(&mut stats, start, &[(65534, 0), (65535, 20), (0, 40), (2, 80)]);
        assert_eq!(stats.extended_highest(), 65536 + 2);
        assert_eq!(stats.expected(), 5);
        assert_eq!(stats.lost(), 1);
    }

    #[test]
    fn jitter_follows_arrival_variation() {
        let start = Instant::now();
        let mut stats = ReceiveStats::new(8000);
        // Every other packet 10 ms late: |D| alternates 80 timestamp units.
        let packets: Vec<_> =
            (0..400u16).map(|i| (i, u64::from(i) * 20 + if i % 2 == 1 { 10 } else { 0 })).collect();
        feed(&mut stats, start, &packets);
        // The A.8 estimator converges to the mean |D| = 80 units = 10 ms.
        assert!((stats.jitter_units() - 80.0).abs() < 1.0, "{}", stats.jitter_units());
        assert!((stats.jitter_ms() - 10.0).abs() < 0.2, "{}", stats.jitter_ms());
    }

    #[test]
    fn big_jump_needs_confirmation_and_ssrc_change_folds() {
        let start = Instant::now();
        let mut stats = ReceiveStats::new(8000);
        feed(&mut stats, start, &[(1, 0), (2, 20)]);
        assert!(!stats.record(SSRC, 40_000, 0, start), "unconfirmed jump");
        assert_eq!(stats.received(), 2);
        assert!(stats.record(SSRC, 40_001, 160, start));
        assert_eq!(stats.received(), 3);
        assert_eq!(stats.expected(), 3);
        // A new SSRC keeps earlier totals.
        assert!(stats.record(0x9999, 5, 0, start));
        assert!(stats.record_untimed(0x9999, 7));
        assert_eq!(stats.ssrc(), Some(0x9999));
        assert_eq!(stats.received(), 5);
        assert_eq!(stats.expected(), 6);
        assert_eq!(stats.lost(), 1);
    }

    #[test]
    fn dlsr_is_measured_from_the_sender_report() {
        let start = Instant::now();
        let mut stats = ReceiveStats::new(8000);
        feed(&mut stats, start, &[(1, 0)]);
        stats.sender_report_received(0x0000_AAAA_BBBB_0000, start);
        let block = stats.report_block(start + Duration::from_millis(500)).unwrap();
        assert_eq!(block.last_sr, 0xAAAA_BBBB);
        assert_eq!(block.delay_since_last_sr, 32768);
    }
}
