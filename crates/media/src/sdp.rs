//! SDP (RFC 4566) parsing and serialization, and the RFC 3264 offer/answer subset a G.711 B2BUA needs.
//!
//! The model is lenient and lossless enough to re-serialize what we receive: lines we do not
//! interpret are kept (attributes as `(name, value)`, other lines as `(type, value)`), and
//! attributes we do interpret but cannot parse (a malformed `a=rtpmap`) fall back to the generic
//! list instead of failing the whole description. Only structural damage — no `v=`/`o=`, a line
//! that is not `x=value`, an `m=`/`c=`/`o=` line that cannot be read — is an error, because then
//! we would not know where to send media. The parser never panics.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::codec::{CLOCK_RATE, Codec, CodecKind};

/// Why an SDP body could not be read. `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP line {line}: {reason}")]
    Line { line: usize, reason: &'static str },
    #[error("SDP has no v= line")]
    MissingVersion,
    #[error("SDP has no o= line")]
    MissingOrigin,
}

/// The media direction attribute (RFC 3264 §5.1, §6.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The attribute name (`sendrecv`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    /// Reads an attribute name; `None` when it is not a direction.
    pub fn from_attribute(name: &str) -> Option<Self> {
        [Self::SendRecv, Self::SendOnly, Self::RecvOnly, Self::Inactive]
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(name))
    }

    /// The direction an answerer willing to do everything uses for an offer with `self`
    /// (RFC 3264 §6.1): the mirror image — sendonly ↔ recvonly, the others unchanged.
    pub const fn answer_to(self) -> Self {
        match self {
            Self::SendOnly => Self::RecvOnly,
            Self::RecvOnly => Self::SendOnly,
            other => other,
        }
    }

    /// Whether the side that wrote this direction sends media.
    pub const fn sends(self) -> bool {
        matches!(self, Self::SendRecv | Self::SendOnly)
    }

    /// Whether the side that wrote this direction receives media.
    pub const fn receives(self) -> bool {
        matches!(self, Self::SendRecv | Self::RecvOnly)
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `o=` line. The address is kept as text: RFC 4566 allows a host name there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: u64,
    pub version: u64,
    pub address: String,
}

/// One `a=rtpmap:<pt> <encoding>/<clock_rate>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u16>,
}

/// A whole session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin: Origin,
    /// `s=`; `-` when the sender had nothing to say.
    pub session_name: String,
    /// Session-level `c=`; a media-level one overrides it.
    pub connection: Option<IpAddr>,
    /// `b=` values as written (`AS:64`).
    pub bandwidths: Vec<String>,
    /// `t=` values as written; serialized as `0 0` when empty.
    pub times: Vec<String>,
    /// Session-level direction attribute; media sections without their own inherit it.
    pub direction: Option<Direction>,
    /// Other session attributes in order, `a=name[:value]`.
    pub attributes: Vec<(String, Option<String>)>,
    /// Other session lines (`i u e p r z k`) in order.
    pub other_lines: Vec<(char, String)>,
    pub media: Vec<MediaDescription>,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, `application`, ...
    pub kind: String,
    /// 0 means the stream is rejected or disabled (RFC 3264 §6, §8.2).
    pub port: u16,
    /// The `/<number of ports>` suffix, rarely used.
    pub port_count: Option<u16>,
    /// `RTP/AVP`, `RTP/SAVPF`, `UDP/TLS/RTP/SAVPF`, ...
    pub protocol: String,
    /// Numeric formats (RTP payload types) in preference order.
    pub formats: Vec<u8>,
    /// Formats that are not payload types (`webrtc-datachannel`, `*`), in order.
    pub other_formats: Vec<String>,
    pub connection: Option<IpAddr>,
    pub bandwidths: Vec<String>,
    pub rtpmaps: Vec<RtpMap>,
    pub fmtps: Vec<(u8, String)>,
    pub ptime: Option<u32>,
    /// Explicit, inherited from the session, or `sendrecv` by default (RFC 3264 §5.1).
    pub direction: Direction,
    /// Other attributes in order, `a=name[:value]`.
    pub attributes: Vec<(String, Option<String>)>,
    /// Other media lines (`i k`) in order.
    pub other_lines: Vec<(char, String)>,
}

impl SessionDescription {
    /// Parses an SDP body. Accepts CRLF or bare LF line ends and ignores blank lines.
    pub fn parse(text: &str) -> Result<Self, SdpError> {
        let mut saw_version = false;
        let mut origin = None;
        let mut session = Self {
            origin: Origin { username: String::new(), session_id: 0, version: 0, address: String::new() },
            session_name: String::new(),
            connection: None,
            bandwidths: Vec::new(),
            times: Vec::new(),
            direction: None,
            attributes: Vec::new(),
            other_lines: Vec::new(),
            media: Vec::new(),
        };
        // Directions explicitly written in each media section, to apply session inheritance at the end.
        let mut explicit_direction: Vec<bool> = Vec::new();

        for (index, raw) in text.split('\n').enumerate() {
            let line_no = index + 1;
            let line = raw.trim_end_matches('\r').trim_end();
            if line.is_empty() {
                continue;
            }
            let err = |reason| SdpError::Line { line: line_no, reason };
            let mut chars = line.chars();
            let (Some(kind), Some('=')) = (chars.next(), chars.next()) else {
                return Err(err("not a <type>=<value> line"));
            };
            let value = chars.as_str();
            match (kind, session.media.last_mut()) {
                ('v', _) => {
                    if value.trim() != "0" {
                        return Err(err("unsupported SDP version"));
                    }
                    saw_version = true;
                }
                ('o', None) => origin = Some(parse_origin(value).ok_or_else(|| err("malformed o= line"))?),
                ('s', None) => session.session_name = value.to_owned(),
                ('c', None) => {
                    session.connection =
                        Some(parse_connection(value).ok_or_else(|| err("malformed c= line"))?);
                }
                ('c', Some(media)) => {
                    media.connection = Some(parse_connection(value).ok_or_else(|| err("malformed c= line"))?);
                }
                ('b', None) => session.bandwidths.push(value.to_owned()),
                ('b', Some(media)) => media.bandwidths.push(value.to_owned()),
                ('t', None) => session.times.push(value.to_owned()),
                ('m', _) => {
                    session.media.push(parse_media_line(value).ok_or_else(|| err("malformed m= line"))?);
                    explicit_direction.push(false);
                }
                ('a', None) => {
                    let (name, attr_value) = split_attribute(value);
                    match Direction::from_attribute(name).filter(|_| attr_value.is_none()) {
                        Some(direction) => session.direction = Some(direction),
                        None => session.attributes.push((name.to_owned(), attr_value.map(str::to_owned))),
                    }
                }
                ('a', Some(media)) => {
                    if media.apply_attribute(value)
                        && let Some(explicit) = explicit_direction.last_mut()
                    {
                        *explicit = true;
                    }
                }
                (other, None) if "iuepzkr".contains(other) => {
                    session.other_lines.push((other, value.to_owned()))
                }
                (other, Some(media)) if "ik".contains(other) => {
                    media.other_lines.push((other, value.to_owned()))
                }
                _ => return Err(err("unexpected line type here")),
            }
        }
        if !saw_version {
            return Err(SdpError::MissingVersion);
        }
        session.origin = origin.ok_or(SdpError::MissingOrigin)?;
        if let Some(direction) = session.direction {
            for (media, explicit) in session.media.iter_mut().zip(explicit_direction) {
                if !explicit {
                    media.direction = direction;
                }
            }
        }
        Ok(session)
    }

    /// The first `m=audio` section, if any.
    pub fn audio(&self) -> Option<&MediaDescription> {
        self.media.iter().find(|m| m.kind.eq_ignore_ascii_case("audio"))
    }
}

impl MediaDescription {
    /// A new section with no attributes.
    pub fn new(kind: &str, port: u16, protocol: &str, formats: Vec<u8>) -> Self {
        Self {
            kind: kind.to_owned(),
            port,
            port_count: None,
            protocol: protocol.to_owned(),
            formats,
            other_formats: Vec::new(),
            connection: None,
            bandwidths: Vec::new(),
            rtpmaps: Vec::new(),
            fmtps: Vec::new(),
            ptime: None,
            direction: Direction::SendRecv,
            attributes: Vec::new(),
            other_lines: Vec::new(),
        }
    }

    /// Where to send this stream's RTP: the media `c=` (or the session's) with the `m=` port.
    ///
    /// `None` means "nowhere": the port is 0 (stream rejected or disabled) or the address is
    /// unspecified (`c=IN IP4 0.0.0.0`, the RFC 2543 way to put a call on hold, still sent by old
    /// phones). The RFC 3264 way to hold — `a=sendonly`/`a=inactive` with a real address — keeps
    /// the address: read [`MediaDescription::direction`] for that.
    pub fn remote_addr(&self, session: &SessionDescription) -> Option<SocketAddr> {
        if self.port == 0 {
            return None;
        }
        let ip = self.connection.or(session.connection)?;
        if ip.is_unspecified() {
            return None;
        }
        Some(SocketAddr::new(ip, self.port))
    }

    /// The `a=rtpmap` for a payload type.
    pub fn rtpmap(&self, payload_type: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == payload_type)
    }

    /// The `a=fmtp` parameters for a payload type.
    pub fn fmtp(&self, payload_type: u8) -> Option<&str> {
        self.fmtps.iter().find(|(pt, _)| *pt == payload_type).map(|(_, p)| p.as_str())
    }

    /// Whether an attribute with this name is present (`rtcp-mux`, `ice-lite`, ...).
    pub fn has_attribute(&self, name: &str) -> bool {
        self.attributes.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The value of the first attribute with this name.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.as_deref())
    }

    /// Files one `a=` value into the typed fields; returns true when it was a direction.
    fn apply_attribute(&mut self, value: &str) -> bool {
        let (name, attr_value) = split_attribute(value);
        let lower = name.to_ascii_lowercase();
        match (lower.as_str(), attr_value) {
            ("rtpmap", Some(v)) => {
                if let Some(map) = parse_rtpmap(v) {
                    self.rtpmaps.push(map);
                    return false;
                }
            }
            ("fmtp", Some(v)) => {
                let (pt, params) = v.split_once(' ').unwrap_or((v, ""));
                if let Ok(pt) = pt.parse() {
                    self.fmtps.push((pt, params.trim().to_owned()));
                    return false;
                }
            }
            ("ptime", Some(v)) => {
                if let Ok(ptime) = v.trim().parse() {
                    self.ptime = Some(ptime);
                    return false;
                }
            }
            (_, None) => {
                if let Some(direction) = Direction::from_attribute(name) {
                    self.direction = direction;
                    return true;
                }
            }
            _ => {}
        }
        self.attributes.push((name.to_owned(), attr_value.map(str::to_owned)));
        false
    }
}

fn split_attribute(value: &str) -> (&str, Option<&str>) {
    match value.split_once(':') {
        Some((name, v)) => (name, Some(v)),
        None => (value, None),
    }
}

fn parse_origin(value: &str) -> Option<Origin> {
    let mut parts = value.split_ascii_whitespace();
    let username = parts.next()?.to_owned();
    let session_id = parts.next()?.parse().ok()?;
    let version = parts.next()?.parse().ok()?;
    let _net_type = parts.next()?;
    let _addr_type = parts.next()?;
    let address = parts.next()?.to_owned();
    Some(Origin { username, session_id, version, address })
}

fn parse_connection(value: &str) -> Option<IpAddr> {
    let mut parts = value.split_ascii_whitespace();
    if !parts.next()?.eq_ignore_ascii_case("IN") {
        return None;
    }
    let _addr_type = parts.next()?;
    // Multicast addresses carry /ttl[/count]; we only need the address.
    let address = parts.next()?.split('/').next()?;
    address.parse().ok()
}

fn parse_media_line(value: &str) -> Option<MediaDescription> {
    let mut parts = value.split_ascii_whitespace();
    let kind = parts.next()?;
    let port_field = parts.next()?;
    let protocol = parts.next()?;
    let (port, port_count) = match port_field.split_once('/') {
        Some((port, count)) => (port.parse().ok()?, Some(count.parse().ok()?)),
        None => (port_field.parse().ok()?, None),
    };
    let mut media = MediaDescription::new(kind, port, protocol, Vec::new());
    media.port_count = port_count;
    for format in parts {
        match format.parse::<u8>() {
            Ok(pt) => media.formats.push(pt),
            Err(_) => media.other_formats.push(format.to_owned()),
        }
    }
    Some(media)
}

fn parse_rtpmap(value: &str) -> Option<RtpMap> {
    let (pt, rest) = value.trim().split_once(' ')?;
    let mut fields = rest.trim().split('/');
    let encoding = fields.next()?.to_owned();
    let clock_rate = fields.next()?.trim().parse().ok()?;
    let channels = match fields.next() {
        Some(c) => Some(c.trim().parse().ok()?),
        None => None,
    };
    Some(RtpMap { payload_type: pt.parse().ok()?, encoding, clock_rate, channels })
}

fn addr_type(address: &str) -> &'static str {
    if address.contains(':') { "IP6" } else { "IP4" }
}

fn write_connection(f: &mut fmt::Formatter<'_>, ip: IpAddr) -> fmt::Result {
    let kind = if ip.is_ipv6() { "IP6" } else { "IP4" };
    write!(f, "c=IN {kind} {ip}\r\n")
}

fn write_attribute(f: &mut fmt::Formatter<'_>, name: &str, value: Option<&str>) -> fmt::Result {
    match value {
        Some(v) => write!(f, "a={name}:{v}\r\n"),
        None => write!(f, "a={name}\r\n"),
    }
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        write!(f, "v=0\r\n")?;
        write!(
            f,
            "o={} {} {} IN {} {}\r\n",
            o.username,
            o.session_id,
            o.version,
            addr_type(&o.address),
            o.address
        )?;
        let name = if self.session_name.is_empty() { "-" } else { &self.session_name };
        write!(f, "s={name}\r\n")?;
        // RFC 4566 §5 fixes the order: i u e p c b t r z k a.
        for (kind, value) in self.other_lines.iter().filter(|(k, _)| "iuep".contains(*k)) {
            write!(f, "{kind}={value}\r\n")?;
        }
        if let Some(ip) = self.connection {
            write_connection(f, ip)?;
        }
        for b in &self.bandwidths {
            write!(f, "b={b}\r\n")?;
        }
        if self.times.is_empty() {
            write!(f, "t=0 0\r\n")?;
        }
        for t in &self.times {
            write!(f, "t={t}\r\n")?;
        }
        for (kind, value) in self.other_lines.iter().filter(|(k, _)| "rzk".contains(*k)) {
            write!(f, "{kind}={value}\r\n")?;
        }
        if let Some(direction) = self.direction {
            write!(f, "a={direction}\r\n")?;
        }
        for (name, value) in &self.attributes {
            write_attribute(f, name, value.as_deref())?;
        }
        for media in &self.media {
            write!(f, "{media}")?;
        }
        Ok(())
    }
}

impl fmt::Display for MediaDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", self.kind, self.port)?;
        if let Some(count) = self.port_count {
            write!(f, "/{count}")?;
        }
        write!(f, " {}", self.protocol)?;
        for pt in &self.formats {
            write!(f, " {pt}")?;
        }
        for format in &self.other_formats {
            write!(f, " {format}")?;
        }
        write!(f, "\r\n")?;
        for (kind, value) in self.other_lines.iter().filter(|(k, _)| *k == 'i') {
            write!(f, "{kind}={value}\r\n")?;
        }
        if let Some(ip) = self.connection {
            write_connection(f, ip)?;
        }
        for b in &self.bandwidths {
            write!(f, "b={b}\r\n")?;
        }
        for (kind, value) in self.other_lines.iter().filter(|(k, _)| *k == 'k') {
            write!(f, "{kind}={value}\r\n")?;
        }
        // Each rtpmap is followed by its fmtp, the order most implementations write.
        for map in &self.rtpmaps {
            write!(f, "a=rtpmap:{} {}/{}", map.payload_type, map.encoding, map.clock_rate)?;
            if let Some(channels) = map.channels {
                write!(f, "/{channels}")?;
            }
            write!(f, "\r\n")?;
            for (_, params) in self.fmtps.iter().filter(|(pt, _)| *pt == map.payload_type) {
                write!(f, "a=fmtp:{} {params}\r\n", map.payload_type)?;
            }
        }
        for (pt, params) in &self.fmtps {
            if self.rtpmap(*pt).is_none() {
                write!(f, "a=fmtp:{pt} {params}\r\n")?;
            }
        }
        if let Some(ptime) = self.ptime {
            write!(f, "a=ptime:{ptime}\r\n")?;
        }
        write!(f, "a={}\r\n", self.direction)?;
        for (name, value) in &self.attributes {
            write_attribute(f, name, value.as_deref())?;
        }
        Ok(())
    }
}

/// The profiles a plain RTP leg can serve (no SRTP, no DTLS).
fn is_plain_rtp(protocol: &str) -> bool {
    protocol.eq_ignore_ascii_case("RTP/AVP") || protocol.eq_ignore_ascii_case("RTP/AVPF")
}

/// Picks the codec for the first audio section of `offer`: the first offered format (the
/// offerer's preference, RFC 3264 §6.1) whose codec is in `supported`.
///
/// Static payload types 0 and 8 count without `a=rtpmap`; an `a=rtpmap` always wins over the
/// static meaning, so dynamic payload types carrying PCMU/PCMA work too. `telephone-event/8000`
/// offered in the same section becomes the DTMF payload type. Sections with a secure profile
/// (`RTP/SAVP`, WebRTC's `UDP/TLS/RTP/SAVPF`) give `None`: a plain RTP leg cannot serve them.
pub fn negotiate(offer: &SessionDescription, supported: &[CodecKind]) -> Option<Codec> {
    let audio = offer.audio()?;
    if !is_plain_rtp(&audio.protocol) {
        return None;
    }
    let kind_of = |pt: u8| match audio.rtpmap(pt) {
        Some(map) => CodecKind::from_rtpmap(&map.encoding, map.clock_rate),
        None => CodecKind::from_static_payload_type(pt),
    };
    let (payload_type, kind) = audio
        .formats
        .iter()
        .find_map(|&pt| kind_of(pt).filter(|k| supported.contains(k)).map(|k| (pt, k)))?;
    let dtmf_payload_type = audio.formats.iter().copied().find(|&pt| {
        audio
            .rtpmap(pt)
            .is_some_and(|m| m.encoding.eq_ignore_ascii_case("telephone-event") && m.clock_rate == CLOCK_RATE)
    });
    Some(Codec { kind, payload_type, dtmf_payload_type })
}

fn local_session(session_id: u64, version: u64, local: SocketAddr) -> SessionDescription {
    SessionDescription {
        origin: Origin { username: "-".to_owned(), session_id, version, address: local.ip().to_string() },
        session_name: "SIVO".to_owned(),
        connection: Some(local.ip()),
        bandwidths: Vec::new(),
        times: vec!["0 0".to_owned()],
        direction: None,
        attributes: Vec::new(),
        other_lines: Vec::new(),
        media: Vec::new(),
    }
}

fn audio_section(
    port: u16,
    codecs: &[(CodecKind, u8)],
    dtmf: Option<u8>,
    direction: Direction,
) -> MediaDescription {
    let mut formats: Vec<u8> = codecs.iter().map(|(_, pt)| *pt).collect();
    let mut media = MediaDescription::new("audio", port, "RTP/AVP", Vec::new());
    media.rtpmaps = codecs
        .iter()
        .map(|(kind, pt)| RtpMap {
            payload_type: *pt,
            encoding: kind.encoding_name().to_owned(),
            clock_rate: kind.clock_rate(),
            channels: kind.rtpmap_channels(),
        })
        .collect();
    for (kind, pt) in codecs {
        if *kind == CodecKind::Opus {
            // RFC 7587 §7: we send mono and can use the receiver's in-band FEC.
            media.fmtps.push((*pt, "minptime=10;useinbandfec=1".to_owned()));
        }
    }
    if let Some(pt) = dtmf {
        formats.push(pt);
        media.rtpmaps.push(RtpMap {
            payload_type: pt,
            encoding: "telephone-event".to_owned(),
            clock_rate: CLOCK_RATE,
            channels: None,
        });
        media.fmtps.push((pt, "0-16".to_owned()));
    }
    media.formats = formats;
    media.ptime = Some(20);
    media.direction = direction;
    media
}

/// Our SDP offer for one audio stream at `local`, codecs on their static payload types in the
/// given preference order, telephone-events on `dtmf_payload_type` (events 0-16) if set.
pub fn offer(
    session_id: u64,
    version: u64,
    local: SocketAddr,
    codecs: &[CodecKind],
    dtmf_payload_type: Option<u8>,
    direction: Direction,
) -> String {
    let mut session = local_session(session_id, version, local);
    let codecs: Vec<_> = codecs.iter().map(|k| (*k, k.static_payload_type())).collect();
    session.media.push(audio_section(local.port(), &codecs, dtmf_payload_type, direction));
    session.to_string()
}

/// Our SDP answer with the negotiated `codec` (its payload types as the offer numbered them).
///
/// `direction` is what we answer; for an offer with direction `d`, pass `d.answer_to()` (or
/// something narrower). This writes exactly one `m=audio` line: when the offer has other
/// sections, use [`answer_to_offer`] so that the answer keeps their count (RFC 3264 §6).
pub fn answer(
    session_id: u64,
    version: u64,
    local: SocketAddr,
    codec: Codec,
    direction: Direction,
) -> String {
    answer_session(session_id, version, local, codec, direction).to_string()
}

fn answer_session(
    session_id: u64,
    version: u64,
    local: SocketAddr,
    codec: Codec,
    direction: Direction,
) -> SessionDescription {
    let mut session = local_session(session_id, version, local);
    session.media.push(audio_section(
        local.port(),
        &[(codec.kind, codec.payload_type)],
        codec.dtmf_payload_type,
        direction,
    ));
    session
}

/// Like [`answer`], but with one `m=` line per offered section as RFC 3264 §6 requires: the
/// first audio section is answered with `codec`, every other section is rejected (port 0).
pub fn answer_to_offer(
    offer: &SessionDescription,
    session_id: u64,
    version: u64,
    local: SocketAddr,
    codec: Codec,
    direction: Direction,
) -> String {
    let mut session = answer_session(session_id, version, local, codec, direction);
    let Some(audio) = session.media.pop() else { return session.to_string() };
    let mut audio = Some(audio);
    for offered in &offer.media {
        if offered.kind.eq_ignore_ascii_case("audio")
            && let Some(answer) = audio.take()
        {
            session.media.push(answer);
            continue;
        }
        let mut rejected =
            MediaDescription::new(&offered.kind, 0, &offered.protocol, offered.formats.clone());
        rejected.other_formats.clone_from(&offered.other_formats);
        rejected.direction = Direction::Inactive;
        session.media.push(rejected);
    }
    session.to_string()
}

#[cfg(test)]
mod tests;
