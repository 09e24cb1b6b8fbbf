//! RTP (RFC 3550) packets, RTCP reports, receive statistics and the outgoing-stream rewriter.
//!
//! Parsing never panics and never trusts a length field: every read goes through `get`.
//! The relay builds a fresh 12-byte header for what it forwards (the source's CSRCs and header
//! extensions describe the other session), so [`RtpHeader`] only needs to be written plainly.

mod rewriter;
mod rtcp;
mod stats;

pub use rewriter::{Rewriter, Rewritten};
pub use rtcp::{ReportBlock, RtcpInfo, SenderInfo, build_report, is_rtcp, ntp_from_unix, parse_rtcp};
pub use stats::ReceiveStats;

/// Why bytes are not an RTP packet we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    #[error("shorter than its header says")]
    Truncated,
    #[error("not RTP version 2")]
    BadVersion,
    #[error("padding length is invalid")]
    BadPadding,
}

/// The fixed RTP header fields, the CSRC list and an optional header extension.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub csrcs: Vec<u32>,
    /// `(profile-defined 16 bits, data)`; data length is a multiple of 4 when written.
    pub extension: Option<(u16, Vec<u8>)>,
}

/// A parsed packet borrowing its payload (padding removed) from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub header: RtpHeader,
    pub payload: &'a [u8],
    /// Padding bytes that followed the payload (0 when the P bit was clear).
    pub padding: u8,
}

fn be16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]))
}

fn be32(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?, *buf.get(at + 2)?, *buf.get(at + 3)?]))
}

impl<'a> RtpPacket<'a> {
    /// Parses one datagram as RTP. Does not check the payload type range: call [`is_rtcp`]
    /// first on a port that may carry both (RFC 5761).
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        let first = *buf.first().ok_or(RtpError::Truncated)?;
        if first >> 6 != 2 {
            return Err(RtpError::BadVersion);
        }
        let has_padding = first & 0x20 != 0;
        let has_extension = first & 0x10 != 0;
        let csrc_count = usize::from(first & 0x0F);
        let second = *buf.get(1).ok_or(RtpError::Truncated)?;
        let sequence = be16(buf, 2).ok_or(RtpError::Truncated)?;
        let timestamp = be32(buf, 4).ok_or(RtpError::Truncated)?;
        let ssrc = be32(buf, 8).ok_or(RtpError::Truncated)?;
        let mut offset = 12;
        let mut csrcs = Vec::with_capacity(csrc_count);
        for _ in 0..csrc_count {
            csrcs.push(be32(buf, offset).ok_or(RtpError::Truncated)?);
            offset += 4;
        }
        let extension = if has_extension {
            let profile = be16(buf, offset).ok_or(RtpError::Truncated)?;
            let words = usize::from(be16(buf, offset + 2).ok_or(RtpError::Truncated)?);
            let data = buf.get(offset + 4..offset + 4 + words * 4).ok_or(RtpError::Truncated)?;
            offset += 4 + words * 4;
            Some((profile, data.to_vec()))
        } else {
            None
        };
        let mut end = buf.len();
        let mut padding = 0;
        if has_padding {
            padding = *buf.last().ok_or(RtpError::Truncated)?;
            if padding == 0 || usize::from(padding) > end - offset {
                return Err(RtpError::BadPadding);
            }
            end -= usize::from(padding);
        }
        let payload = buf.get(offset..end).ok_or(RtpError::Truncated)?;
        Ok(Self {
            header: RtpHeader {
                marker: second & 0x80 != 0,
                payload_type: second & 0x7F,
                sequence,
                timestamp,
                ssrc,
                csrcs,
                extension,
            },
            payload,
            padding,
        })
    }
}

impl RtpHeader {
    /// Appends the header (without padding) to `out`. At most 15 CSRCs are written; extension
    /// data is zero-padded to a multiple of 4 bytes.
    pub fn write(&self, out: &mut Vec<u8>) {
        let csrcs = self.csrcs.get(..self.csrcs.len().min(15)).unwrap_or_default();
        let mut first = 0x80 | csrcs.len() as u8;
        if self.extension.is_some() {
            first |= 0x10;
        }
        out.push(first);
        out.push(u8::from(self.marker) << 7 | (self.payload_type & 0x7F));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for csrc in csrcs {
            out.extend_from_slice(&csrc.to_be_bytes());
        }
        if let Some((profile, data)) = &self.extension {
            let words = data.len().div_ceil(4).min(usize::from(u16::MAX));
            out.extend_from_slice(&profile.to_be_bytes());
            out.extend_from_slice(&(words as u16).to_be_bytes());
            let data = data.get(..words * 4).unwrap_or(data);
            out.extend_from_slice(data);
            out.resize(out.len() + (words * 4 - data.len()), 0);
        }
    }
}

/// Appends a whole packet: `header`, `payload`, and `padding` bytes of RFC 3550 padding (0 = none).
pub fn write_packet(header: &RtpHeader, payload: &[u8], padding: u8, out: &mut Vec<u8>) {
    let start = out.len();
    header.write(out);
    out.extend_from_slice(payload);
    if padding > 0 {
        if let Some(first) = out.get_mut(start) {
            *first |= 0x20;
        }
        out.resize(out.len() + usize::from(padding) - 1, 0);
        out.push(padding);
    }
}

/// Appends a plain packet with a 12-byte header: what the relay and the generators send.
pub fn write_simple(
    marker: bool,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    payload: &[u8],
    out: &mut Vec<u8>,
) {
    out.push(0x80);
    out.push(u8::from(marker) << 7 | (payload_type & 0x7F));
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_plain_packet() {
        let mut buf = Vec::new();
        write_simple(true, 8, 0xBEEF, 0xDEAD_BEEF, 0x1234_5678, &[1, 2, 3], &mut buf);
        assert_eq!(buf.len(), 15);
        let packet = RtpPacket::parse(&buf).unwrap();
        assert!(packet.header.marker);
        assert_eq!(packet.header.payload_type, 8);
        assert_eq!(packet.header.sequence, 0xBEEF);
        assert_eq!(packet.header.timestamp, 0xDEAD_BEEF);
        assert_eq!(packet.header.ssrc, 0x1234_5678);
        assert_eq!(packet.payload, &[1, 2, 3]);
        assert_eq!(packet.padding, 0);
    }

    #[test]
    fn csrc_extension_padding_round_trip() {
        let header = RtpHeader {
            marker: false,
            payload_type: 101,
            sequence: 7,
            timestamp: 160,
            ssrc: 99,
            csrcs: vec![1, 2],
            extension: Some((0xBEDE, vec![0x10, 0xAA, 0, 0])),
        };
        let mut buf = Vec::new();
        write_packet(&header, &[9; 5], 3, &mut buf);
        assert_eq!(buf.len(), 12 + 8 + 8 + 5 + 3);
        assert_eq!(buf[0], 0x80 | 0x20 | 0x10 | 2);
        let packet = RtpPacket::parse(&buf).unwrap();
        assert_eq!(packet.header, header);
        assert_eq!(packet.payload, &[9; 5]);
        assert_eq!(packet.padding, 3);
    }

    #[test]
    fn rejects_bad_packets_without_panicking() {
        assert_eq!(RtpPacket::parse(&[]), Err(RtpError::Truncated));
        assert_eq!(RtpPacket::parse(&[0x40; 12]), Err(RtpError::BadVersion));
        assert_eq!(RtpPacket::parse(&[0x80, 0, 0, 1]), Err(RtpError::Truncated));
        // CSRC count says 15 but there is nothing after the fixed header.
        assert_eq!(RtpPacket::parse(&[0x8F, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]), Err(RtpError::Truncated));
        // Extension length larger than the packet.
        let mut ext = vec![0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0xFF, 0xFF];
        assert_eq!(RtpPacket::parse(&ext), Err(RtpError::Truncated));
        ext[14] = 0;
        ext[15] = 0;
        assert!(RtpPacket::parse(&ext).is_ok());
        // Padding of zero, and padding longer than the payload.
        let mut padded = vec![0xA0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        assert_eq!(RtpPacket::parse(&padded), Err(RtpError::BadPadding));
        *padded.last_mut().unwrap() = 3;
        assert_eq!(RtpPacket::parse(&padded), Err(RtpError::BadPadding));
        *padded.last_mut().unwrap() = 2;
        assert_eq!(RtpPacket::parse(&padded).unwrap().payload, &[] as &[u8]);
        for len in 0..40 {
            for fill in [0x00u8, 0x80, 0xBF, 0xFF] {
                let _ = RtpPacket::parse(&vec![fill; len]);
                let _ = parse_rtcp(&vec![fill; len]);
            }
        }
    }
}
