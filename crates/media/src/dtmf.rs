//! RFC 4733 telephone-events (DTMF over RTP): the payload, a receiver that reports each key
//! press once, and the packet sequence that sends one.
//!
//! One key press is one event: every packet of it carries the same RTP timestamp (the event's
//! start) and a growing duration, and the last one is sent three times with the end bit
//! (RFC 4733 §2.5.1.4). The receiver therefore keys events by (timestamp, event code).

use crate::codec::CLOCK_RATE;

/// The 4-byte telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// 0-9, 10 `*`, 11 `#`, 12-15 `A`-`D`, 16 flash.
    pub event: u8,
    pub end: bool,
    /// Power level in −dBm0, 0-63.
    pub volume: u8,
    /// Duration so far in timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Reads the first 4 bytes of a payload (RFC 4733 allows more only with redundancy, which
    /// we do not offer).
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let (&event, &flags, &high, &low) =
            (payload.first()?, payload.get(1)?, payload.get(2)?, payload.get(3)?);
        Some(Self {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([high, low]),
        })
    }

    pub fn to_bytes(self) -> [u8; 4] {
        let [high, low] = self.duration.to_be_bytes();
        [self.event, u8::from(self.end) << 7 | (self.volume & 0x3F), high, low]
    }
}

/// The event code of a key, `0-9 * # A-D` (lowercase letters accepted).
pub fn digit_to_event(digit: char) -> Option<u8> {
    match digit.to_ascii_uppercase() {
        d @ '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        d @ 'A'..='D' => Some(d as u8 - b'A' + 12),
        _ => None,
    }
}

/// The key of an event code; flash (16) and others have none.
pub fn event_to_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// Reports each key press once, whichever of its packets arrives first.
#[derive(Debug, Clone, Default)]
pub struct DtmfReceiver {
    /// Recently reported events as (RTP timestamp, event); a few, because end packets of an
    /// event can arrive after the next event started.
    recent: [Option<(u32, u8)>; 4],
    next_slot: usize,
}

impl DtmfReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one telephone-event packet; returns the key the first time an event is seen.
    pub fn on_packet(&mut self, timestamp: u32, payload: &[u8]) -> Option<char> {
        let event = TelephoneEvent::parse(payload)?;
        let key = (timestamp, event.event);
        if self.recent.contains(&Some(key)) {
            return None;
        }
        if let Some(slot) = self.recent.get_mut(self.next_slot) {
            *slot = Some(key);
        }
        self.next_slot = (self.next_slot + 1) % self.recent.len();
        event_to_digit(event.event)
    }
}

/// One packet of an outgoing event: its payload and whether it carries the RTP marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    pub payload: [u8; 4],
    pub marker: bool,
}

/// Default key press length.
pub const DIGIT_MS: u32 = 100;
/// Default volume, −10 dBm0.
pub const DIGIT_VOLUME: u8 = 10;

/// The packets for one key press of `duration_ms`, one per 20 ms: growing durations, then
/// the final duration three times with the end bit. All share the event's RTP timestamp;
/// the first is marked. `None` for a character that is not a key.
pub fn digit_packets(digit: char, duration_ms: u32, volume: u8) -> Option<Vec<EventPacket>> {
    let event = digit_to_event(digit)?;
    let frame = CLOCK_RATE / 50;
    let total = (duration_ms.max(20) * (CLOCK_RATE / 1000)).min(u32::from(u16::MAX)) as u16;
    let mut packets = Vec::new();
    let mut duration = frame;
    while duration < u32::from(total) {
        let payload = TelephoneEvent { event, end: false, volume, duration: duration as u16 }.to_bytes();
        packets.push(EventPacket { payload, marker: packets.is_empty() });
        duration += frame;
    }
    for _ in 0..3 {
        let payload = TelephoneEvent { event, end: true, volume, duration: total }.to_bytes();
        packets.push(EventPacket { payload, marker: packets.is_empty() });
    }
    Some(packets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        let event = TelephoneEvent { event: 11, end: true, volume: 10, duration: 800 };
        assert_eq!(event.to_bytes(), [11, 0x8A, 0x03, 0x20]);
        assert_eq!(TelephoneEvent::parse(&event.to_bytes()), Some(event));
        assert_eq!(TelephoneEvent::parse(&[1, 2, 3]), None);
        // The reserved bit is ignored, volume masked.
        assert_eq!(TelephoneEvent::parse(&[5, 0x7F, 0, 160]).unwrap().volume, 63);
    }

    #[test]
    fn keys_and_codes() {
        for (digit, code) in [('0', 0), ('9', 9), ('*', 10), ('#', 11), ('A', 12), ('d', 15)] {
            assert_eq!(digit_to_event(digit), Some(code));
            assert_eq!(event_to_digit(code), Some(digit.to_ascii_uppercase()));
        }
        assert_eq!(digit_to_event('E'), None);
        assert_eq!(event_to_digit(16), None);
    }

    #[test]
    fn receiver_reports_each_press_once() {
        let mut rx = DtmfReceiver::new();
        let mut heard = String::new();
        // "1" at ts 1000 (4 updates + 3 ends), then "1" again at ts 3000, "#" at ts 5000
        // with its first packets lost, and a late end of the first "1".
        let press = |event| digit_packets(event, 100, 10).unwrap();
        for (ts, packets) in [(1000, press('1')), (3000, press('1')), (5000, press('#').split_off(3))] {
            for p in packets {
                heard.extend(rx.on_packet(ts, &p.payload));
            }
        }
        heard.extend(rx.on_packet(1000, &press('1').last().unwrap().payload));
        assert_eq!(heard, "11#");
        assert_eq!(rx.on_packet(7000, &[0xFF]), None, "short payload");
    }

    #[test]
    fn packet_sequence_for_one_press() {
        let packets = digit_packets('5', 100, 10).unwrap();
        let events: Vec<_> = packets.iter().map(|p| TelephoneEvent::parse(&p.payload).unwrap()).collect();
        let durations: Vec<_> = events.iter().map(|e| e.duration).collect();
        assert_eq!(durations, vec![160, 320, 480, 640, 800, 800, 800]);
        assert_eq!(events.iter().filter(|e| e.end).count(), 3);
        assert!(events.iter().all(|e| e.event == 5 && e.volume == 10));
        assert_eq!(packets.iter().filter(|p| p.marker).count(), 1);
        assert!(packets[0].marker);
        assert!(digit_packets('x', 100, 10).is_none());
    }
}
