//! Keeping webhooks away from internal networks (SSRF). A target is refused when the address we
//! would dial is loopback, private, link-local (cloud metadata lives there), CGNAT, multicast,
//! unspecified, reserved or documentation space, in IPv4 or IPv6, including IPv4-mapped and
//! NAT64 forms. The check runs on the resolved addresses the client actually dials (our DNS
//! resolver hands only allowed addresses to the connector), so DNS rebinding gains nothing, and
//! on IP literals before any connection (which skip DNS). The URL parser normalises decimal,
//! octal and hex IPv4 spellings (`2130706433`, `0177.0.0.1`) to the address they mean.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Whether SIVO must not connect to `ip`.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let s = v6.segments();
            // NAT64 (64:ff9b::/96) embeds an IPv4 address in the last 32 bits.
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                return forbidden_v4(Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                ));
            }
            v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated) ::/96
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || a == 0 // "this network" 0.0.0.0/8
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254.0.0/16, incl. 169.254.169.254 metadata
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || ip.is_multicast()
        || a >= 240 // reserved and broadcast
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("not a valid URL: {0}")]
    Invalid(String),
    #[error("webhook URLs must use https:// (plain http is not allowed)")]
    NotHttps,
    #[error("URLs with a user name or password are not allowed; authenticate with the signature")]
    HasCredentials,
    #[error(
        "the address {0} is private, loopback, link-local or reserved; webhooks only go to public addresses"
    )]
    Forbidden(IpAddr),
    #[error("{0} resolves only to private, loopback, link-local or reserved addresses")]
    ForbiddenName(String),
    #[error("the URL is longer than 2048 characters")]
    TooLong,
}

/// Checks what can be checked without DNS: scheme, credentials, and IP literals.
/// `allow_private` (development and tests only) skips the address check.
pub fn check_url(raw: &str, allow_private: bool) -> Result<url::Url, TargetError> {
    if raw.len() > 2048 {
        return Err(TargetError::TooLong);
    }
    let url = url::Url::parse(raw).map_err(|e| TargetError::Invalid(e.to_string()))?;
    if url.scheme() != "https" {
        return Err(TargetError::NotHttps);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::HasCredentials);
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        Some(url::Host::Domain(_)) => None,
        None => return Err(TargetError::Invalid("missing host".into())),
    };
    if let Some(ip) = ip
        && !allow_private
        && is_forbidden(ip)
    {
        return Err(TargetError::Forbidden(ip));
    }
    Ok(url)
}

/// Keeps only the addresses we may dial.
pub fn filter_addrs(
    name: &str,
    addrs: Vec<SocketAddr>,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, TargetError> {
    if allow_private {
        return Ok(addrs);
    }
    let allowed: Vec<SocketAddr> = addrs.into_iter().filter(|a| !is_forbidden(a.ip())).collect();
    if allowed.is_empty() { Err(TargetError::ForbiddenName(name.to_owned())) } else { Ok(allowed) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_matrix() {
        let forbidden = [
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "::1",
            "::",
            "fd00::1",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2001:db8::1",
            "fd00:ec2::254",
            "::127.0.0.1",
        ];
        for ip in forbidden {
            assert!(is_forbidden(ip.parse().unwrap()), "{ip} must be forbidden");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip} must be allowed");
        }
    }

    #[test]
    fn url_checks_normalise_ip_spellings() {
        for raw in [
            "https://127.0.0.1/hook",
            "https://[::1]/hook",
            "https://2130706433/hook",
            "https://0177.0.0.1/hook",
            "https://0x7f.1/hook",
            "https://[::ffff:127.0.0.1]/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://[fd00::1]/",
        ] {
            assert!(matches!(check_url(raw, false), Err(TargetError::Forbidden(_))), "{raw}");
            assert!(check_url(raw, true).is_ok(), "{raw} allowed in development mode");
        }
        assert_eq!(check_url("http://example.com/", false), Err(TargetError::NotHttps));
        assert_eq!(check_url("https://u:p@example.com/", false), Err(TargetError::HasCredentials));
        assert!(matches!(check_url("not a url", false), Err(TargetError::Invalid(_))));
        assert!(check_url("https://hooks.example.com/sivo?x=1", false).is_ok());
    }
}
