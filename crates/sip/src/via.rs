//! The Via header (RFC 3261 §20.42, §18.2 and RFC 3581 rport).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::params::Params;
use crate::scan::{self, Cursor};
use crate::uri::{Host, parse_port};

/// The magic cookie that marks an RFC 3261 branch (§8.1.1.7).
pub const BRANCH_MAGIC_COOKIE: &str = "z9hG4bK";

/// The transport named in a Via.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Sctp,
    Ws,
    Wss,
    /// An extension transport, kept verbatim (RFC 4475 §3.1.1.10).
    Other(String),
}

impl Transport {
    pub fn parse(s: &str) -> Self {
        match s.to_ascii_uppercase().as_str() {
            "UDP" => Self::Udp,
            "TCP" => Self::Tcp,
            "TLS" => Self::Tls,
            "SCTP" => Self::Sctp,
            "WS" => Self::Ws,
            "WSS" => Self::Wss,
            _ => Self::Other(s.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::Sctp => "SCTP",
            Self::Ws => "WS",
            Self::Wss => "WSS",
            Self::Other(s) => s,
        }
    }

    /// Whether the transport delivers reliably, which switches off retransmission timers.
    pub fn is_reliable(&self) -> bool {
        !matches!(self, Self::Udp)
    }

    /// The default port for a sent-by without one (RFC 3261 §18.2.1, RFC 7118).
    pub fn default_port(&self) -> u16 {
        match self {
            Self::Tls | Self::Wss => 5061,
            _ => 5060,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One Via value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Protocol name and version, normally `SIP` and `2.0`.
    pub protocol_name: String,
    pub protocol_version: String,
    pub transport: Transport,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
}

/// Error for [`Via::from_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid via")]
pub struct InvalidVia;

impl Via {
    /// A `SIP/2.0/<transport>` Via with a branch.
    pub fn new(transport: Transport, host: Host, port: Option<u16>, branch: &str) -> Self {
        let mut params = Params::new();
        params.set("branch", Some(branch.to_owned()));
        Self {
            protocol_name: "SIP".to_owned(),
            protocol_version: "2.0".to_owned(),
            transport,
            host,
            port,
            params,
        }
    }

    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }

    /// Whether the branch carries the RFC 3261 magic cookie followed by an identifier;
    /// otherwise transactions fall back to RFC 2543 matching (RFC 4475 §3.2.1).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > BRANCH_MAGIC_COOKIE.len() && b.starts_with(BRANCH_MAGIC_COOKIE))
    }

    pub fn received(&self) -> Option<IpAddr> {
        self.params.value("received").and_then(parse_ip)
    }

    /// `None` if absent, `Some(None)` for a bare `;rport` request, `Some(Some(p))` when filled.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params.get("rport").map(|v| v.and_then(parse_port))
    }

    pub fn maddr(&self) -> Option<&str> {
        self.params.value("maddr")
    }

    pub fn ttl(&self) -> Option<u8> {
        self.params.value("ttl").and_then(scan::parse_u64).and_then(|t| u8::try_from(t).ok())
    }

    /// The sent-by port, or the transport's default.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or_else(|| self.transport.default_port())
    }

    /// Records the source address of a request (RFC 3261 §18.2.1, RFC 3581 §4).
    pub fn set_received(&mut self, source: std::net::SocketAddr) {
        let differs = match &self.host {
            Host::Domain(_) => true,
            h => h.ip() != Some(source.ip()),
        };
        if differs || self.params.contains("rport") {
            self.params.set("received", Some(source.ip().to_string()));
        }
        if self.params.contains("rport") {
            self.params.set("rport", Some(source.port().to_string()));
        }
    }
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(s);
    s.parse().ok()
}

impl FromStr for Via {
    type Err = InvalidVia;

    fn from_str(s: &str) -> Result<Self, InvalidVia> {
        let mut c = Cursor::new(scan::trim_lws(s));
        // sent-protocol = protocol-name SLASH protocol-version SLASH transport
        let protocol_name = c.token().ok_or(InvalidVia)?;
        if !c.eat_sep(b'/') {
            return Err(InvalidVia);
        }
        let protocol_version = c.token().ok_or(InvalidVia)?;
        if !c.eat_sep(b'/') {
            return Err(InvalidVia);
        }
        let transport = c.token().ok_or(InvalidVia)?;
        if !c.skip_lws() {
            return Err(InvalidVia);
        }
        // sent-by = host [ COLON port ]
        let host = if c.peek() == Some(b'[') {
            let end = c.rest().find(']').ok_or(InvalidVia)?;
            c.take_n(end + 1)
        } else {
            c.take_while(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        };
        let host = Host::parse(host).ok_or(InvalidVia)?;
        let port = if c.eat_sep(b':') {
            Some(parse_port(c.take_while(|b| b.is_ascii_digit())).ok_or(InvalidVia)?)
        } else {
            None
        };
        let params = Params::parse_header_params(c.rest()).ok_or(InvalidVia)?;
        let via = Self {
            protocol_name: protocol_name.to_owned(),
            protocol_version: protocol_version.to_owned(),
            transport: Transport::parse(transport),
            host,
            port,
            params,
        };
        via.check_params()?;
        Ok(via)
    }
}

impl Via {
    /// Checks the values of the parameters with a defined grammar.
    fn check_params(&self) -> Result<(), InvalidVia> {
        if let Some(ttl) = self.params.get("ttl")
            && ttl.and_then(scan::parse_u64).is_none_or(|t| t > 255)
        {
            return Err(InvalidVia);
        }
        if let Some(Some(rport)) = self.params.get("rport")
            && parse_port(rport).is_none()
        {
            return Err(InvalidVia);
        }
        if let Some(received) = self.params.get("received")
            && received.and_then(parse_ip).is_none()
        {
            return Err(InvalidVia);
        }
        if let Some(branch) = self.params.get("branch")
            && branch.is_none_or(|b| !scan::is_token(b))
        {
            return Err(InvalidVia);
        }
        if let Some(maddr) = self.params.get("maddr")
            && maddr.and_then(Host::parse).is_none()
        {
            return Err(InvalidVia);
        }
        Ok(())
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{} {}", self.protocol_name, self.protocol_version, self.transport, self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write!(f, "{}", self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_via_with_lws_everywhere() {
        let v: Via = "SIP  /   2.0 /UDP    192.0.2.2;rport;branch=390skdjuw".parse().unwrap();
        assert_eq!(v.transport, Transport::Udp);
        assert_eq!(v.host, Host::Ipv4("192.0.2.2".parse().unwrap()));
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert_eq!(v.rport(), Some(None));
        assert!(!v.has_rfc3261_branch());
        assert_eq!(v.to_string(), "SIP/2.0/UDP 192.0.2.2;rport;branch=390skdjuw");
    }

    #[test]
    fn parses_ipv6_sent_by_and_received() {
        let v: Via = "SIP/2.0/TCP [2001:db8::9:1]:5070;branch=z9hG4bKas3-111;received=2001:db8::9:255"
            .parse()
            .unwrap();
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.received(), Some("2001:db8::9:255".parse().unwrap()));
        assert!(v.has_rfc3261_branch());
    }

    #[test]
    fn validates_known_params() {
        assert!("SIP/2.0/UDP h;ttl=256".parse::<Via>().is_err());
        assert!("SIP/2.0/UDP h;ttl=16;maddr=224.2.0.1".parse::<Via>().is_ok());
        assert!("SIP/2.0/UDP h;rport=99999".parse::<Via>().is_err());
        assert!("SIP/2.0/UDP h;received=not-an-ip".parse::<Via>().is_err());
        assert!("SIP/2.0/UDP 192.0.2.15;;,;,,".parse::<Via>().is_err());
        assert!("SIP/2.0/UDP".parse::<Via>().is_err());
    }

    #[test]
    fn unknown_transports_are_kept() {
        let v: Via = "SIP/2.0/NOTATRANSPORT cool-client.example.com;branch=z9hG4bKx".parse().unwrap();
        assert_eq!(v.transport, Transport::Other("NOTATRANSPORT".into()));
        assert!(v.transport.is_reliable());
    }

    #[test]
    fn set_received_fills_rport() {
        let mut v: Via = "SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bK1".parse().unwrap();
        v.set_received("203.0.113.7:40000".parse().unwrap());
        assert_eq!(
            v.to_string(),
            "SIP/2.0/UDP 10.0.0.1:5060;rport=40000;branch=z9hG4bK1;received=203.0.113.7"
        );
    }
}
