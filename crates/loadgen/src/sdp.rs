//! The little SDP the load needs: a PCMU offer/answer, and where the other side wants media.

use std::net::{Ipv4Addr, SocketAddrV4};

fn body(rtp: SocketAddrV4, session: u64) -> String {
    let ip = rtp.ip();
    format!(
        "v=0\r\no=loadgen {session} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n",
        port = rtp.port()
    )
}

pub(crate) fn offer(rtp: SocketAddrV4, session: u64) -> String {
    body(rtp, session)
}

pub(crate) fn answer(rtp: SocketAddrV4, session: u64) -> String {
    body(rtp, session)
}

/// The audio stream's address: the media-level `c=` if any, else the session-level one.
pub(crate) fn media_address(sdp: &str) -> Option<SocketAddrV4> {
    let mut session_ip: Option<Ipv4Addr> = None;
    let mut media_ip: Option<Ipv4Addr> = None;
    let mut port: Option<u16> = None;
    let mut in_audio = false;
    for line in sdp.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("m=") {
            in_audio = rest.starts_with("audio ") && port.is_none();
            if in_audio {
                port = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
            }
        } else if let Some(rest) = line.strip_prefix("c=IN IP4 ") {
            let ip = rest.split('/').next().and_then(|a| a.trim().parse().ok());
            if in_audio {
                media_ip = ip;
            } else if port.is_none() {
                session_ip = ip;
            }
        }
    }
    let port = port.filter(|p| *p != 0)?;
    Some(SocketAddrV4::new(media_ip.or(session_ip)?, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_audio_address() {
        let a = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 4000);
        assert_eq!(media_address(&offer(a, 1)), Some(a));
        let sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5000 RTP/AVP 0\r\nc=IN IP4 10.0.0.2\r\n";
        assert_eq!(media_address(sdp), Some("10.0.0.2:5000".parse().unwrap()));
        assert_eq!(media_address("v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 0 RTP/AVP 0\r\n"), None);
        assert_eq!(media_address("garbage"), None);
    }
}
