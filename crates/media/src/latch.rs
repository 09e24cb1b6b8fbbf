//! Symmetric RTP latching: where to send a leg's media when the address in its SDP is not
//! where its packets come from (a phone behind NAT writes its private address).
//!
//! The rule, per stream (RTP and RTCP each have one):
//! - until the first packet arrives we send to the SDP address;
//! - the first packet latches its source, whatever it is, and we send there from then on;
//! - packets from any other source are dropped while the latched one is alive;
//! - another source may take over only after the latched one has been silent for more than
//!   [`RELATCH_AFTER`] (the peer's NAT binding changed, or the far end re-homed the call);
//! - a new SDP address (re-INVITE) forgets the latch.
//!
//! Dropping other sources while the peer talks is what keeps a stray or hostile sender from
//! hijacking the stream ("RTP bleed"); a real move still recovers after two seconds.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long the latched source must be silent before another may replace it.
pub const RELATCH_AFTER: Duration = Duration::from_secs(2);

/// The latching state of one stream.
#[derive(Debug, Clone, Default)]
pub struct Latch {
    signalled: Option<SocketAddr>,
    latched: Option<SocketAddr>,
    last_heard: Option<Instant>,
}

impl Latch {
    pub fn new() -> Self {
        Self::default()
    }

    /// The address from SDP. A different one than before forgets the latch.
    pub fn set_signalled(&mut self, addr: SocketAddr) {
        if self.signalled != Some(addr) {
            self.signalled = Some(addr);
            self.latched = None;
            self.last_heard = None;
        }
    }

    /// Judges a packet from `from`; true when it should be accepted.
    pub fn on_packet(&mut self, from: SocketAddr, now: Instant) -> bool {
        let may_take_over = match (self.latched, self.last_heard) {
            (Some(current), _) if current == from => true,
            (None, _) => true,
            (Some(_), Some(heard)) => now.saturating_duration_since(heard) > RELATCH_AFTER,
            (Some(_), None) => true,
        };
        if may_take_over {
            self.latched = Some(from);
            self.last_heard = Some(now);
        }
        may_take_over
    }

    /// Where to send: the latched source, else the SDP address.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.latched.or(self.signalled)
    }

    /// The latched source, if any packet was accepted yet.
    pub fn latched(&self) -> Option<SocketAddr> {
        self.latched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    #[test]
    fn latches_first_source_and_holds_it() {
        let t0 = Instant::now();
        let mut latch = Latch::new();
        assert_eq!(latch.destination(), None);
        latch.set_signalled(addr(4000));
        assert_eq!(latch.destination(), Some(addr(4000)));
        // The phone is behind NAT: it sends from 5000.
        assert!(latch.on_packet(addr(5000), t0));
        assert_eq!(latch.destination(), Some(addr(5000)));
        // Someone else, even the SDP address, is refused while 5000 talks.
        assert!(!latch.on_packet(addr(4000), t0 + Duration::from_millis(500)));
        assert!(latch.on_packet(addr(5000), t0 + Duration::from_millis(1000)));
        assert!(
            !latch.on_packet(addr(6000), t0 + Duration::from_millis(3000)),
            "1 s after 5000's last packet"
        );
        assert_eq!(latch.destination(), Some(addr(5000)));
    }

    #[test]
    fn relatches_after_two_silent_seconds() {
        let t0 = Instant::now();
        let mut latch = Latch::new();
        latch.set_signalled(addr(4000));
        assert!(latch.on_packet(addr(5000), t0));
        assert!(!latch.on_packet(addr(6000), t0 + RELATCH_AFTER));
        assert!(latch.on_packet(addr(6000), t0 + RELATCH_AFTER + Duration::from_millis(1)));
        assert_eq!(latch.latched(), Some(addr(6000)));
        assert!(!latch.on_packet(addr(5000), t0 + RELATCH_AFTER + Duration::from_millis(20)));
    }

    #[test]
    fn new_sdp_address_forgets_the_latch() {
        let t0 = Instant::now();
        let mut latch = Latch::new();
        latch.set_signalled(addr(4000));
        assert!(latch.on_packet(addr(5000), t0));
        latch.set_signalled(addr(4000));
        assert_eq!(latch.destination(), Some(addr(5000)), "same address: latch kept");
        latch.set_signalled(addr(7000));
        assert_eq!(latch.destination(), Some(addr(7000)));
        assert!(latch.on_packet(addr(7002), t0 + Duration::from_millis(10)));
        assert_eq!(latch.destination(), Some(addr(7002)));
    }
}
