//! RTCP (RFC 3550 §6): telling RTCP from RTP on a shared port, building SR/RR + SDES compound
//! packets, and reading the parts of received reports we use.

use std::time::Duration;

use super::{RtpError, be16, be32};

const SR: u8 = 200;
const RR: u8 = 201;
const SDES: u8 = 202;

/// Whether a datagram is RTCP rather than RTP, by the RFC 5761 §4 rule: RTCP packet types
/// 192-223 would be RTP payload types 64-95 with the marker bit, which RTP must not use when
/// multiplexed. (SR 200, RR 201, SDES 202, BYE 203 and APP 204 all fall in that range.)
pub fn is_rtcp(buf: &[u8]) -> bool {
    matches!((buf.first(), buf.get(1)), (Some(first), Some(pt)) if first >> 6 == 2 && (192..=223).contains(pt))
}

/// The sender-info block of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// 64-bit NTP timestamp (seconds since 1900 in the high half).
    pub ntp: u64,
    pub rtp_timestamp: u32,
    pub packets: u32,
    pub octets: u32,
}

/// One reception report block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block is about.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed on the wire; clamped).
    pub cumulative_lost: i32,
    pub extended_highest_sequence: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from that source (0 = none).
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// What we read from a received compound RTCP packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RtcpInfo {
    /// Packet types in order (200 SR, 201 RR, 202 SDES, 203 BYE, 204 APP, ...).
    pub packet_types: Vec<u8>,
    /// SSRC of the sender of the first SR or RR.
    pub sender_ssrc: Option<u32>,
    pub sender_info: Option<SenderInfo>,
    pub report_blocks: Vec<ReportBlock>,
}

/// Converts a time since the Unix epoch to a 64-bit NTP timestamp.
pub fn ntp_from_unix(since_epoch: Duration) -> u64 {
    const UNIX_TO_NTP: u64 = 2_208_988_800;
    let seconds = since_epoch.as_secs().wrapping_add(UNIX_TO_NTP);
    let fraction = (u64::from(since_epoch.subsec_nanos()) << 32) / 1_000_000_000;
    seconds << 32 | fraction
}

fn write_block(block: &ReportBlock, out: &mut Vec<u8>) {
    out.extend_from_slice(&block.ssrc.to_be_bytes());
    let lost = block.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32 & 0x00FF_FFFF;
    out.extend_from_slice(&(u32::from(block.fraction_lost) << 24 | lost).to_be_bytes());
    out.extend_from_slice(&block.extended_highest_sequence.to_be_bytes());
    out.extend_from_slice(&block.jitter.to_be_bytes());
    out.extend_from_slice(&block.last_sr.to_be_bytes());
    out.extend_from_slice(&block.delay_since_last_sr.to_be_bytes());
}

/// Appends a compound packet: an SR (when `sender` is given) or an RR, with up to 31 report
/// blocks, then an SDES with our CNAME, as RFC 3550 §6.1 requires of every compound packet.
pub fn build_report(
    ssrc: u32,
    sender: Option<SenderInfo>,
    blocks: &[ReportBlock],
    cname: &str,
    out: &mut Vec<u8>,
) {
    let blocks = blocks.get(..blocks.len().min(31)).unwrap_or_default();
    let words = 1 + if sender.is_some() { 5 } else { 0 } + 6 * blocks.len();
    out.push(0x80 | blocks.len() as u8);
    out.push(if sender.is_some() { SR } else { RR });
    out.extend_from_slice(&(words as u16).to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    if let Some(info) = sender {
        out.extend_from_slice(&info.ntp.to_be_bytes());
        out.extend_from_slice(&info.rtp_timestamp.to_be_bytes());
        out.extend_from_slice(&info.packets.to_be_bytes());
        out.extend_from_slice(&info.octets.to_be_bytes());
    }
    for block in blocks {
        write_block(block, out);
    }
    // SDES: one chunk, CNAME item, END item, padded to a 32-bit boundary.
    let cname = cname.as_bytes().get(..cname.len().min(255)).unwrap_or_default();
    let chunk_len = 4 + 2 + cname.len() + 1;
    let padded = chunk_len.div_ceil(4) * 4;
    out.push(0x81);
    out.push(SDES);
    out.extend_from_slice(&((padded / 4) as u16).to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(1);
    out.push(cname.len() as u8);
    out.extend_from_slice(cname);
    out.resize(out.len() + (padded - chunk_len) + 1, 0);
}

fn read_block(buf: &[u8], at: usize) -> Option<ReportBlock> {
    let word = be32(buf, at + 4)?;
    // Sign-extend the 24-bit cumulative loss.
    let lost = ((word & 0x00FF_FFFF) << 8) as i32 >> 8;
    Some(ReportBlock {
        ssrc: be32(buf, at)?,
        fraction_lost: (word >> 24) as u8,
        cumulative_lost: lost,
        extended_highest_sequence: be32(buf, at + 8)?,
        jitter: be32(buf, at + 12)?,
        last_sr: be32(buf, at + 16)?,
        delay_since_last_sr: be32(buf, at + 20)?,
    })
}

/// Reads a compound RTCP packet. Every sub-packet must be version 2 and fit in the datagram.
pub fn parse_rtcp(buf: &[u8]) -> Result<RtcpInfo, RtpError> {
    let mut info = RtcpInfo::default();
    let mut offset = 0;
    if buf.is_empty() {
        return Err(RtpError::Truncated);
    }
    while offset < buf.len() {
        let first = *buf.get(offset).ok_or(RtpError::Truncated)?;
        if first >> 6 != 2 {
            return Err(RtpError::BadVersion);
        }
        let count = usize::from(first & 0x1F);
        let packet_type = *buf.get(offset + 1).ok_or(RtpError::Truncated)?;
        let length = (usize::from(be16(buf, offset + 2).ok_or(RtpError::Truncated)?) + 1) * 4;
        let packet = buf.get(offset..offset + length).ok_or(RtpError::Truncated)?;
        info.packet_types.push(packet_type);
        if matches!(packet_type, SR | RR) && info.sender_ssrc.is_none() {
            info.sender_ssrc = Some(be32(packet, 4).ok_or(RtpError::Truncated)?);
            let mut at = 8;
            if packet_type == SR {
                let ntp_high = be32(packet, 8).ok_or(RtpError::Truncated)?;
                let ntp_low = be32(packet, 12).ok_or(RtpError::Truncated)?;
                info.sender_info = Some(SenderInfo {
                    ntp: u64::from(ntp_high) << 32 | u64::from(ntp_low),
                    rtp_timestamp: be32(packet, 16).ok_or(RtpError::Truncated)?,
                    packets: be32(packet, 20).ok_or(RtpError::Truncated)?,
                    octets: be32(packet, 24).ok_or(RtpError::Truncated)?,
                });
                at = 28;
            }
            for _ in 0..count {
                info.report_blocks.push(read_block(packet, at).ok_or(RtpError::Truncated)?);
                at += 24;
            }
        }
        offset += length;
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5761_demultiplexing() {
        let mut rtp = Vec::new();
        super::super::write_simple(true, 0, 1, 2, 3, &[0; 160], &mut rtp);
        assert!(!is_rtcp(&rtp), "PCMU with marker is 0x80");
        rtp[1] = 0x80 | 101;
        assert!(!is_rtcp(&rtp), "telephone-event with marker (229) is RTP");
        for pt in 192..=223u8 {
            assert!(is_rtcp(&[0x80, pt, 0, 1]), "{pt}");
        }
        assert!(!is_rtcp(&[0x80, 191]));
        assert!(!is_rtcp(&[0x80, 224]));
        assert!(!is_rtcp(&[0x40, 200]), "version 1");
        assert!(!is_rtcp(&[0x80]));
    }

    #[test]
    fn sender_report_round_trip() {
        let sender =
            SenderInfo { ntp: 0x1122_3344_5566_7788, rtp_timestamp: 16000, packets: 100, octets: 17200 };
        let block = ReportBlock {
            ssrc: 0xCAFE,
            fraction_lost: 25,
            cumulative_lost: -3,
            extended_highest_sequence: 70_000,
            jitter: 40,
            last_sr: 0x3344_5566,
            delay_since_last_sr: 65536,
        };
        let mut buf = Vec::new();
        build_report(0xABCD, Some(sender), &[block], "leg-1@sivo", &mut buf);
        assert_eq!(buf.len() % 4, 0);
        assert!(is_rtcp(&buf));
        let info = parse_rtcp(&buf).unwrap();
        assert_eq!(info.packet_types, vec![SR, SDES]);
        assert_eq!(info.sender_ssrc, Some(0xABCD));
        assert_eq!(info.sender_info, Some(sender));
        assert_eq!(info.report_blocks, vec![block]);
    }

    #[test]
    fn receiver_report_without_blocks() {
        let mut buf = Vec::new();
        build_report(7, None, &[], "x", &mut buf);
        // RR (8 bytes) + SDES header 4 + chunk (4 + 2 + 1 + 1 → 8).
        assert_eq!(buf.len(), 8 + 12);
        let info = parse_rtcp(&buf).unwrap();
        assert_eq!(info.packet_types, vec![RR, SDES]);
        assert_eq!(info.sender_info, None);
        assert!(info.report_blocks.is_empty());
    }

    #[test]
    fn rejects_lying_lengths() {
        let mut buf = Vec::new();
        build_report(7, None, &[], "x", &mut buf);
        buf[3] = 40;
        assert_eq!(parse_rtcp(&buf), Err(RtpError::Truncated));
        // An RR claiming 3 blocks with none present.
        assert_eq!(parse_rtcp(&[0x83, RR, 0, 1, 0, 0, 0, 7]), Err(RtpError::Truncated));
    }

    #[test]
    fn ntp_conversion() {
        assert_eq!(ntp_from_unix(Duration::ZERO) >> 32, 2_208_988_800);
        assert_eq!(ntp_from_unix(Duration::from_millis(1500)) & 0xFFFF_FFFF, 1 << 31);
    }
}
