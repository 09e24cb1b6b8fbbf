//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760).
//!
//! Server side: [`Authenticator`] issues challenges whose nonces are self-validating (a
//! timestamp and random bytes under an HMAC keyed by a caller-supplied secret), so any node
//! sharing the secret can check them and nothing is stored per challenge. Expired nonces are
//! answered with `stale=true`; nonce-count replays are caught by a bounded table.
//!
//! Client side: [`DigestClient`] answers a challenge, for outbound trunk registration.
//!
//! Time is passed in as `SystemTime` (nonces must mean the same on every node) and randomness
//! as a caller-supplied generator; nothing here reads a clock or a global RNG.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use md5::{Digest as _, Md5};
use sha2::{Sha256, Sha512_256};

use crate::header::{HeaderName, Headers};
use crate::message::{Request, Response, StatusCode};
use crate::method::Method;
use crate::scan::{self, is_token, quoted_string, split_commas, trim_lws};
use crate::uri::Uri;

/// A digest algorithm (RFC 7616 §3.3, RFC 8760 for SIP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
    Sha512_256,
    Sha512_256Sess,
}

impl Algorithm {
    pub fn parse(s: &str) -> Option<Self> {
        let all = [
            Self::Md5,
            Self::Md5Sess,
            Self::Sha256,
            Self::Sha256Sess,
            Self::Sha512_256,
            Self::Sha512_256Sess,
        ];
        all.into_iter().find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
            Self::Sha512_256 => "SHA-512-256",
            Self::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    pub fn is_session(self) -> bool {
        matches!(self, Self::Md5Sess | Self::Sha256Sess | Self::Sha512_256Sess)
    }

    /// The algorithm without the `-sess` variant, which is what a stored HA1 is for.
    pub fn base(self) -> Self {
        match self {
            Self::Md5 | Self::Md5Sess => Self::Md5,
            Self::Sha256 | Self::Sha256Sess => Self::Sha256,
            Self::Sha512_256 | Self::Sha512_256Sess => Self::Sha512_256,
        }
    }

    /// Preference when a server offers several challenges: strongest first.
    fn strength(self) -> u8 {
        match self.base() {
            Self::Sha512_256 => 3,
            Self::Sha256 => 2,
            _ => 1,
        }
    }

    /// Lowercase hex digest of `data`.
    pub fn hash_hex(self, data: &[u8]) -> String {
        match self.base() {
            Self::Sha256 => hex(&Sha256::digest(data)),
            Self::Sha512_256 => hex(&Sha512_256::digest(data)),
            _ => hex(&Md5::digest(data)),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Quality of protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    Auth,
    /// Integrity protection of the body as well.
    AuthInt,
}

impl Qop {
    fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("auth") {
            Some(Self::Auth)
        } else if s.eq_ignore_ascii_case("auth-int") {
            Some(Self::AuthInt)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::AuthInt => "auth-int",
        }
    }
}

/// Why an authentication header could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Not Digest (RFC 4475 §3.3.7): a server answers with a fresh Digest challenge.
    #[error("unsupported authentication scheme {0:?}")]
    UnknownScheme(String),
    #[error("malformed authentication parameters")]
    Malformed,
    #[error("missing {0} parameter")]
    MissingParam(&'static str),
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error("invalid {0} parameter")]
    InvalidParam(&'static str),
}

/// Splits `Digest a=b, c="d"` into its parameters; names lowercased, quotes removed.
fn parse_auth_params(value: &str) -> Result<Vec<(String, String)>, AuthError> {
    let value = trim_lws(value);
    let scheme_len = value.bytes().take_while(|&b| scan::is_token_char(b)).count();
    let scheme = value.get(..scheme_len).unwrap_or_default();
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(AuthError::UnknownScheme(scheme.to_owned()));
    }
    let rest = value.get(scheme_len..).unwrap_or_default();
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return Err(AuthError::Malformed);
    }
    let mut params: Vec<(String, String)> = Vec::new();
    for part in split_commas(rest).ok_or(AuthError::Malformed)? {
        if part.is_empty() {
            continue;
        }
        let (name, raw) = part.split_once('=').ok_or(AuthError::Malformed)?;
        let name = trim_lws(name);
        let raw = trim_lws(raw);
        if !is_token(name) {
            return Err(AuthError::Malformed);
        }
        let value = if raw.starts_with('"') {
            match quoted_string(raw) {
                Some((v, len)) if len == raw.len() => v,
                _ => return Err(AuthError::Malformed),
            }
        } else if is_token(raw) {
            raw.to_owned()
        } else {
            return Err(AuthError::Malformed);
        };
        let name = name.to_ascii_lowercase();
        if params.iter().any(|(n, _)| *n == name) {
            return Err(AuthError::Malformed);
        }
        params.push((name, value));
    }
    Ok(params)
}

fn take(params: &[(String, String)], name: &str) -> Option<String> {
    params.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

fn require(params: &[(String, String)], name: &'static str) -> Result<String, AuthError> {
    take(params, name).ok_or(AuthError::MissingParam(name))
}

fn push_quoted(out: &mut String, name: &str, value: &str) {
    if !out.ends_with(' ') {
        out.push_str(", ");
    }
    out.push_str(name);
    out.push('=');
    scan::write_quoted(out, value);
}

fn push_token(out: &mut String, name: &str, value: &str) {
    if !out.ends_with(' ') {
        out.push_str(", ");
    }
    out.push_str(name);
    out.push('=');
    out.push_str(value);
}

/// A Digest challenge, the value of WWW-Authenticate or Proxy-Authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// Offered qop values; empty for an RFC 2069 style challenge.
    pub qop: Vec<Qop>,
    pub stale: bool,
}

impl FromStr for Challenge {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, AuthError> {
        let params = parse_auth_params(s)?;
        let algorithm = match take(&params, "algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(&a).ok_or(AuthError::UnsupportedAlgorithm(a))?,
        };
        // Unknown qop values are skipped so a future token does not break the challenge.
        let qop = take(&params, "qop")
            .map(|q| q.split(',').filter_map(|v| Qop::parse(trim_lws(v))).collect())
            .unwrap_or_default();
        Ok(Self {
            realm: require(&params, "realm")?,
            nonce: require(&params, "nonce")?,
            opaque: take(&params, "opaque"),
            algorithm,
            qop,
            stale: take(&params, "stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::from("Digest ");
        push_quoted(&mut out, "realm", &self.realm);
        push_quoted(&mut out, "nonce", &self.nonce);
        if let Some(opaque) = &self.opaque {
            push_quoted(&mut out, "opaque", opaque);
        }
        push_token(&mut out, "algorithm", self.algorithm.as_str());
        if !self.qop.is_empty() {
            let qop: Vec<_> = self.qop.iter().map(|q| q.as_str()).collect();
            push_quoted(&mut out, "qop", &qop.join(","));
        }
        if self.stale {
            push_token(&mut out, "stale", "true");
        }
        f.write_str(&out)
    }
}

/// Digest credentials, the value of Authorization or Proxy-Authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    /// The digest-uri, as the client wrote it.
    pub uri: String,
    /// The request digest, lowercase hex.
    pub response: String,
    pub algorithm: Algorithm,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
    pub qop: Option<Qop>,
    /// The nonce count exactly as sent (8 hex digits); the hash covers this text.
    pub nc: Option<String>,
}

impl Credentials {
    /// The nonce count as a number.
    pub fn nonce_count(&self) -> Option<u32> {
        let nc = self.nc.as_deref()?;
        if nc.len() != 8 {
            return None;
        }
        u32::from_str_radix(nc, 16).ok()
    }

    /// The first credentials in `headers` (Authorization, or Proxy-Authorization if
    /// `proxy`) for `realm`. Credentials for other realms are skipped; other schemes too.
    pub fn find(headers: &Headers, realm: &str, proxy: bool) -> Option<Result<Self, AuthError>> {
        let name = if proxy { HeaderName::ProxyAuthorization } else { HeaderName::Authorization };
        let mut first_error = None;
        for value in headers.get_all(&name) {
            match value.parse::<Self>() {
                Ok(c) if c.realm == realm => return Some(Ok(c)),
                Ok(_) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map(Err)
    }
}

impl FromStr for Credentials {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, AuthError> {
        let params = parse_auth_params(s)?;
        let algorithm = match take(&params, "algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(&a).ok_or(AuthError::UnsupportedAlgorithm(a))?,
        };
        let qop = match take(&params, "qop") {
            None => None,
            Some(q) => Some(Qop::parse(&q).ok_or(AuthError::InvalidParam("qop"))?),
        };
        let credentials = Self {
            username: require(&params, "username")?,
            realm: require(&params, "realm")?,
            nonce: require(&params, "nonce")?,
            uri: require(&params, "uri")?,
            response: require(&params, "response")?.to_ascii_lowercase(),
            algorithm,
            cnonce: take(&params, "cnonce"),
            opaque: take(&params, "opaque"),
            qop,
            nc: take(&params, "nc"),
        };
        if credentials.qop.is_some() {
            if credentials.cnonce.is_none() {
                return Err(AuthError::MissingParam("cnonce"));
            }
            if credentials.nonce_count().is_none() {
                return Err(AuthError::InvalidParam("nc"));
            }
        } else if credentials.nc.is_some() && credentials.nonce_count().is_none() {
            // Meaningless without qop, but kept: it must still be the 8 hex digits that
            // Display writes back as a token, or the credentials would not round trip.
            return Err(AuthError::InvalidParam("nc"));
        }
        Ok(credentials)
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::from("Digest ");
        push_quoted(&mut out, "username", &self.username);
        push_quoted(&mut out, "realm", &self.realm);
        push_quoted(&mut out, "nonce", &self.nonce);
        push_quoted(&mut out, "uri", &self.uri);
        push_quoted(&mut out, "response", &self.response);
        push_token(&mut out, "algorithm", self.algorithm.as_str());
        if let Some(cnonce) = &self.cnonce {
            push_quoted(&mut out, "cnonce", cnonce);
        }
        if let Some(opaque) = &self.opaque {
            push_quoted(&mut out, "opaque", opaque);
        }
        if let Some(qop) = self.qop {
            push_token(&mut out, "qop", qop.as_str());
        }
        if let Some(nc) = &self.nc {
            push_token(&mut out, "nc", nc);
        }
        f.write_str(&out)
    }
}

/// `H(username:realm:password)`, the value a server may store instead of the password.
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm.base().hash_hex(format!("{username}:{realm}:{password}").as_bytes())
}

/// The inputs of a request digest besides HA1.
#[derive(Debug, Clone, Copy)]
pub struct DigestInput<'a> {
    pub algorithm: Algorithm,
    pub nonce: &'a str,
    pub cnonce: Option<&'a str>,
    pub qop: Option<Qop>,
    /// Nonce count as it appears on the wire, e.g. `00000001`.
    pub nc: Option<&'a str>,
    pub method: &'a str,
    pub uri: &'a str,
    /// The message body, used only by `auth-int`.
    pub body: &'a [u8],
}

/// The request digest (RFC 7616 §3.4.1) from a stored `ha1` for the base algorithm.
pub fn request_digest(ha1: &str, input: &DigestInput<'_>) -> String {
    let h = |s: &str| input.algorithm.hash_hex(s.as_bytes());
    let cnonce = input.cnonce.unwrap_or_default();
    let ha1 = if input.algorithm.is_session() {
        h(&format!("{ha1}:{}:{cnonce}", input.nonce))
    } else {
        ha1.to_owned()
    };
    let ha2 = match input.qop {
        Some(Qop::AuthInt) => {
            h(&format!("{}:{}:{}", input.method, input.uri, input.algorithm.hash_hex(input.body)))
        }
        _ => h(&format!("{}:{}", input.method, input.uri)),
    };
    match input.qop {
        Some(qop) => h(&format!(
            "{ha1}:{}:{}:{cnonce}:{}:{ha2}",
            input.nonce,
            input.nc.unwrap_or_default(),
            qop.as_str()
        )),
        None => h(&format!("{ha1}:{}:{ha2}", input.nonce)),
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Compares without an early exit, so response timing does not leak how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The key nonces are signed with. Its `Debug` output is redacted.
#[derive(Clone)]
pub struct NonceSecret(Vec<u8>);

impl NonceSecret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }
}

impl fmt::Debug for NonceSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceSecret(..)")
    }
}

/// Server-side settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub realm: String,
    pub secret: NonceSecret,
    /// How long a nonce stays fresh; older ones get `stale=true`.
    pub nonce_lifetime: Duration,
    /// Algorithms challenged with, one WWW-Authenticate each, in order of preference
    /// (RFC 8760 §2.4: SHA-256 before MD5).
    pub algorithms: Vec<Algorithm>,
    /// Refuse credentials without qop, which cannot be protected against replay.
    pub require_qop: bool,
    /// Nonces whose counts are tracked for replay detection; the oldest are forgotten first.
    pub max_tracked_nonces: usize,
}

impl AuthConfig {
    pub fn new(realm: impl Into<String>, secret: NonceSecret) -> Self {
        Self {
            realm: realm.into(),
            secret,
            nonce_lifetime: Duration::from_secs(300),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            require_qop: true,
            max_tracked_nonces: 65_536,
        }
    }
}

/// The verdict on a set of credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    Authorized,
    /// The password was right but the nonce is expired, forged or replayed: challenge again
    /// with `stale=true` (RFC 7616 §3.3).
    Stale,
    Failed(AuthFailure),
}

/// Why credentials were refused. Every case but [`AuthFailure::UriMismatch`] is answered
/// like a wrong password (a fresh 401/407), which keeps unknown users indistinguishable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    WrongRealm,
    UnsupportedAlgorithm,
    MissingQop,
    WrongOpaque,
    /// The digest-uri is not the Request-URI; RFC 3261 §22.4 suggests 400.
    UriMismatch,
    WrongResponse,
}

/// Issues challenges and verifies credentials; see the module documentation.
#[derive(Debug)]
pub struct Authenticator {
    config: AuthConfig,
    counts: NonceCounts,
}

type HmacSha256 = Hmac<Sha256>;

/// Bytes of random data and of MAC in a nonce.
const NONCE_RANDOM: usize = 8;
const NONCE_MAC: usize = 16;
/// Clock skew tolerated between nodes sharing the secret.
const NONCE_FUTURE_SKEW: u64 = 5;

impl Authenticator {
    pub fn new(config: AuthConfig) -> Self {
        let counts = NonceCounts::new(config.max_tracked_nonces);
        Self { config, counts }
    }

    pub fn realm(&self) -> &str {
        &self.config.realm
    }

    fn mac(&self) -> HmacSha256 {
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.config.secret.0) else {
            unreachable!("hmac accepts keys of any length")
        };
        mac.update(self.config.realm.as_bytes());
        mac
    }

    /// A fresh nonce: hex of timestamp, random bytes and their MAC.
    pub fn new_nonce(&self, now: SystemTime, random: &mut impl FnMut() -> u64) -> String {
        let ts = unix_secs(now).to_be_bytes();
        let rnd = random().to_be_bytes();
        let mut mac = self.mac();
        mac.update(&ts);
        mac.update(&rnd);
        let tag = mac.finalize().into_bytes();
        let mut raw = Vec::with_capacity(8 + NONCE_RANDOM + NONCE_MAC);
        raw.extend_from_slice(&ts);
        raw.extend_from_slice(&rnd);
        raw.extend_from_slice(tag.get(..NONCE_MAC).unwrap_or_default());
        hex(&raw)
    }

    /// `Ok(true)` if fresh, `Ok(false)` if expired, `Err` if not one of ours.
    fn check_nonce(&self, now: SystemTime, nonce: &str) -> Result<bool, ()> {
        let raw = unhex(nonce).ok_or(())?;
        if raw.len() != 8 + NONCE_RANDOM + NONCE_MAC {
            return Err(());
        }
        let (signed, tag) = raw.split_at(8 + NONCE_RANDOM);
        let mut mac = self.mac();
        mac.update(signed);
        mac.verify_truncated_left(tag).map_err(|_| ())?;
        let ts_bytes: [u8; 8] = signed.get(..8).and_then(|b| b.try_into().ok()).ok_or(())?;
        let issued = u64::from_be_bytes(ts_bytes);
        let now = unix_secs(now);
        if issued > now.saturating_add(NONCE_FUTURE_SKEW) {
            return Err(());
        }
        Ok(now.saturating_sub(issued) <= self.config.nonce_lifetime.as_secs())
    }

    fn opaque(&self) -> String {
        let mut mac = self.mac();
        mac.update(b"opaque");
        hex(mac.finalize().into_bytes().get(..8).unwrap_or_default())
    }

    /// One challenge per configured algorithm, sharing a nonce.
    pub fn challenges(
        &self,
        now: SystemTime,
        random: &mut impl FnMut() -> u64,
        stale: bool,
    ) -> Vec<Challenge> {
        let nonce = self.new_nonce(now, random);
        let opaque = self.opaque();
        self.config
            .algorithms
            .iter()
            .map(|&algorithm| Challenge {
                realm: self.config.realm.clone(),
                nonce: nonce.clone(),
                opaque: Some(opaque.clone()),
                algorithm,
                qop: vec![Qop::Auth],
                stale,
            })
            .collect()
    }

    /// A 401 (or 407 if `proxy`) answering `request` with fresh challenges. The caller adds
    /// the To tag.
    pub fn challenge_response(
        &self,
        now: SystemTime,
        random: &mut impl FnMut() -> u64,
        request: &Request,
        stale: bool,
        proxy: bool,
    ) -> Response {
        let (status, name) = if proxy {
            (StatusCode::PROXY_AUTHENTICATION_REQUIRED, HeaderName::ProxyAuthenticate)
        } else {
            (StatusCode::UNAUTHORIZED, HeaderName::WwwAuthenticate)
        };
        let mut response = Response::for_request(request, status);
        for challenge in self.challenges(now, random, stale) {
            response.headers.push(name.clone(), challenge.to_string());
        }
        response
    }

    /// Verifies `credentials` sent with `request`, against the HA1 stored for the user and
    /// the credentials' base algorithm (see [`ha1`]). For an unknown user pass any HA1: the
    /// result is then the same as for a wrong password.
    pub fn verify(
        &mut self,
        now: SystemTime,
        request: &Request,
        credentials: &Credentials,
        ha1: &str,
    ) -> Verification {
        if credentials.realm != self.config.realm {
            return Verification::Failed(AuthFailure::WrongRealm);
        }
        if !self.config.algorithms.contains(&credentials.algorithm) {
            return Verification::Failed(AuthFailure::UnsupportedAlgorithm);
        }
        if self.config.require_qop && credentials.qop.is_none() {
            return Verification::Failed(AuthFailure::MissingQop);
        }
        if let Some(opaque) = &credentials.opaque
            && *opaque != self.opaque()
        {
            return Verification::Failed(AuthFailure::WrongOpaque);
        }
        if !uri_matches(&credentials.uri, &request.uri) {
            return Verification::Failed(AuthFailure::UriMismatch);
        }
        let expected = request_digest(
            ha1,
            &DigestInput {
                algorithm: credentials.algorithm,
                nonce: &credentials.nonce,
                cnonce: credentials.cnonce.as_deref(),
                qop: credentials.qop,
                nc: credentials.nc.as_deref(),
                method: request.method.as_str(),
                uri: &credentials.uri,
                body: &request.body,
            },
        );
        if !constant_time_eq(expected.as_bytes(), credentials.response.as_bytes()) {
            return Verification::Failed(AuthFailure::WrongResponse);
        }
        // The password is right from here on, so freshness problems are only "stale".
        match self.check_nonce(now, &credentials.nonce) {
            Ok(true) => {}
            Ok(false) | Err(()) => return Verification::Stale,
        }
        if let Some(nc) = credentials.nonce_count()
            && !self.counts.advance(&credentials.nonce, nc)
        {
            return Verification::Stale;
        }
        Verification::Authorized
    }
}

/// The digest-uri must identify the Request-URI: compared as SIP URIs when both parse,
/// textually otherwise.
fn uri_matches(digest_uri: &str, request_uri: &Uri) -> bool {
    match (digest_uri.parse::<Uri>(), request_uri) {
        (Ok(Uri::Sip(a)), Uri::Sip(b)) => a.matches(b),
        _ => digest_uri == request_uri.to_string(),
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Highest nonce count seen per nonce, bounded: the oldest nonces are forgotten first.
/// A forgotten (or never seen) nonce is accepted only with nc=1, so forgetting can make a
/// client re-authenticate but never lets a replay through with a higher count.
#[derive(Debug)]
struct NonceCounts {
    highest: HashMap<String, u32>,
    order: VecDeque<String>,
    capacity: usize,
}

impl NonceCounts {
    fn new(capacity: usize) -> Self {
        Self { highest: HashMap::new(), order: VecDeque::new(), capacity: capacity.max(1) }
    }

    /// Records `nc` for `nonce`; false if it is not above the highest seen.
    fn advance(&mut self, nonce: &str, nc: u32) -> bool {
        if let Some(highest) = self.highest.get_mut(nonce) {
            if nc <= *highest {
                return false;
            }
            *highest = nc;
            return true;
        }
        if nc != 1 {
            return false;
        }
        while self.order.len() >= self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.highest.remove(&old);
            }
        }
        self.order.push_back(nonce.to_owned());
        self.highest.insert(nonce.to_owned(), nc);
        true
    }
}

/// The client side of Digest, for registering to and calling through trunks.
#[derive(Debug, Clone)]
pub struct DigestClient {
    username: String,
    password: String,
    last_nonce: Option<String>,
    nc: u32,
}

impl DigestClient {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self { username: username.into(), password: password.into(), last_nonce: None, nc: 0 }
    }

    /// The strongest supported Digest challenge of a 401/407 (RFC 8760 §2.4).
    pub fn select_challenge(response: &Response) -> Option<Challenge> {
        let name = if response.status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
            HeaderName::ProxyAuthenticate
        } else {
            HeaderName::WwwAuthenticate
        };
        response
            .headers
            .get_all(&name)
            .filter_map(|v| v.parse::<Challenge>().ok())
            .max_by_key(|c| c.algorithm.strength())
    }

    /// Credentials answering `challenge` for a request with this method, Request-URI and
    /// body. `cnonce` should be fresh random text from the caller.
    pub fn authorize(
        &mut self,
        challenge: &Challenge,
        method: &Method,
        uri: &str,
        body: &[u8],
        cnonce: &str,
    ) -> Credentials {
        if self.last_nonce.as_deref() != Some(challenge.nonce.as_str()) {
            self.last_nonce = Some(challenge.nonce.clone());
            self.nc = 0;
        }
        self.nc = self.nc.saturating_add(1);
        let qop = if challenge.qop.contains(&Qop::Auth) {
            Some(Qop::Auth)
        } else if challenge.qop.contains(&Qop::AuthInt) {
            Some(Qop::AuthInt)
        } else {
            None
        };
        let nc = qop.map(|_| format!("{:08x}", self.nc));
        let cnonce = qop.map(|_| cnonce.to_owned());
        let ha1 = ha1(challenge.algorithm, &self.username, &challenge.realm, &self.password);
        let response = request_digest(
            &ha1,
            &DigestInput {
                algorithm: challenge.algorithm,
                nonce: &challenge.nonce,
                cnonce: cnonce.as_deref(),
                qop,
                nc: nc.as_deref(),
                method: method.as_str(),
                uri,
                body,
            },
        );
        Credentials {
            username: self.username.clone(),
            realm: challenge.realm.clone(),
            nonce: challenge.nonce.clone(),
            uri: uri.to_owned(),
            response,
            algorithm: challenge.algorithm,
            cnonce,
            opaque: challenge.opaque.clone(),
            qop,
            nc,
        }
    }

    /// Adds credentials for `challenge` to `request` (Authorization, or
    /// Proxy-Authorization for a 407 challenge), replacing earlier ones for the realm.
    pub fn authorize_request(
        &mut self,
        request: &mut Request,
        challenge: &Challenge,
        proxy: bool,
        cnonce: &str,
    ) {
        let uri = request.uri.to_string();
        let credentials = self.authorize(challenge, &request.method, &uri, &request.body, cnonce);
        let name = if proxy { HeaderName::ProxyAuthorization } else { HeaderName::Authorization };
        request.headers.set(name, credentials.to_string());
    }
}
