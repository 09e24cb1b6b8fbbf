//! One HTTP attempt: sign, POST, classify the answer. Redirects are not followed, proxies are not
//! used, the whole exchange has a 10 s limit, and only the first few KB of the response are read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::{RESPONSE_EXCERPT_BYTES, TIMEOUT, schedule, signature, ssrf};

/// Resolves names with the system resolver, then drops forbidden addresses: the connector only
/// ever sees addresses that passed the SSRF check.
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = ssrf::filter_addrs(&host, addrs, allow_private)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[derive(Clone, Debug, Default)]
pub struct ClientConfig {
    /// Development and tests only: allow loopback and private targets.
    pub allow_private_targets: bool,
    /// Extra trusted CA certificates (PEM), e.g. a test CA.
    pub extra_root_certs_pem: Vec<Vec<u8>>,
}

/// The HTTP client shared by all deliveries of a worker.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    allow_private: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid CA certificate: {0}")]
    BadCertificate(String),
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

impl Client {
    pub fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        Self::with_idle_per_host(config, 16)
    }

    /// Like [`Client::new`], keeping up to `idle` connections open per receiver between
    /// requests. A worker keeps as many as it may have in flight to one endpoint, so that bursts
    /// reuse connections instead of paying a TLS handshake each.
    pub fn with_idle_per_host(config: &ClientConfig, idle: usize) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(idle)
            .user_agent(concat!("SIVO-Webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver { allow_private: config.allow_private_targets }));
        for pem in &config.extra_root_certs_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| ClientError::BadCertificate(e.to_string()))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder.build().map_err(|e| ClientError::Build(e.to_string()))?;
        Ok(Self { http, allow_private: config.allow_private_targets })
    }

    /// Sends one attempt. Never panics on what the receiver does.
    pub async fn send(&self, request: &AttemptRequest<'_>) -> AttemptOutcome {
        let started = Instant::now();
        let finish = |mut outcome: AttemptOutcome| {
            outcome.latency = started.elapsed();
            outcome
        };
        if let Err(e) = ssrf::check_url(request.url, self.allow_private) {
            return finish(AttemptOutcome::failed(format!("blocked: {e}"), true));
        }
        let event_id = request.event_id.to_string();
        let response = self
            .http
            .post(request.url)
            .header("content-type", "application/json")
            .header("x-sivo-event-id", &event_id)
            .header("x-sivo-event-type", request.event_type)
            .header("x-sivo-attempt", request.attempt.to_string())
            .header("x-sivo-timestamp", request.timestamp.timestamp().to_string())
            .header("x-sivo-signature", signature::body_signature(request.secret, request.body))
            .header(
                "x-sivo-signature-v2",
                signature::timestamped_signature(
                    request.secret,
                    &event_id,
                    request.timestamp.timestamp(),
                    request.body,
                ),
            )
            .body(request.body.to_vec())
            .send()
            .await;
        let mut response = match response {
            Ok(r) => r,
            Err(e) => return finish(AttemptOutcome::failed(describe(&e), is_blocked(&e))),
        };
        let status = response.status().as_u16();
        let retry_after = if status == 429 || status == 503 {
            response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| schedule::parse_retry_after(v, request.timestamp))
        } else {
            None
        };
        // Read at most the excerpt; a huge or endless body is cut off, never buffered.
        let mut excerpt = Vec::new();
        let mut body_error = None;
        while excerpt.len() < RESPONSE_EXCERPT_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    body_error = Some(describe(&e));
                    break;
                }
            }
        }
        excerpt.truncate(RESPONSE_EXCERPT_BYTES);
        let excerpt = String::from_utf8_lossy(&excerpt).into_owned();
        // The 10 s limit covers the body too: a 2xx whose body stalls is a failure.
        let success = (200..300).contains(&status) && body_error.is_none();
        finish(AttemptOutcome {
            status: Some(status),
            success,
            error: match (success, body_error) {
                (true, _) => None,
                (false, Some(e)) => Some(format!("HTTP {status}, then {e}")),
                (false, None) if (300..400).contains(&status) => {
                    Some(format!("HTTP {status} (redirects are not followed)"))
                }
                (false, None) => Some(format!("HTTP {status}")),
            },
            excerpt: Some(excerpt),
            retry_after,
            blocked: false,
            latency: Duration::ZERO,
        })
    }
}

fn is_blocked(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.downcast_ref::<ssrf::TargetError>().is_some() {
            return true;
        }
        source = err.source();
    }
    false
}

/// A one-line reason from a reqwest error and its causes (timeout, reset, TLS, blocked…).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if is_blocked(e) {
        "blocked"
    } else if e.is_connect() {
        "connect error"
    } else if e.is_body() || e.is_decode() {
        "response body error"
    } else {
        "request error"
    };
    let mut detail = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        detail.push(err.to_string());
        source = err.source();
    }
    let detail = detail.last().cloned().unwrap_or_else(|| e.to_string());
    format!("{kind}: {detail}")
}

pub struct AttemptRequest<'a> {
    pub url: &'a str,
    pub secret: &'a str,
    pub event_id: uuid::Uuid,
    pub event_type: &'a str,
    pub attempt: u32,
    pub body: &'a [u8],
    pub timestamp: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct AttemptOutcome {
    pub status: Option<u16>,
    pub success: bool,
    pub error: Option<String>,
    pub excerpt: Option<String>,
    pub retry_after: Option<Duration>,
    /// Refused by the SSRF guard before any connection.
    pub blocked: bool,
    pub latency: Duration,
}

impl AttemptOutcome {
    fn failed(error: String, blocked: bool) -> Self {
        Self {
            status: None,
            success: false,
            error: Some(error),
            excerpt: None,
            retry_after: None,
            blocked,
            latency: Duration::ZERO,
        }
    }
}
