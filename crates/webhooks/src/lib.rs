//! Webhook delivery: the outbox's events, signed and POSTed to every subscribed endpoint, with
//! retries on a fixed schedule, a dead-letter queue, and a log of every attempt.
//!
//! The pure parts ([`signature`], [`schedule`], [`ssrf`]) decide; [`worker`] does the I/O:
//! it claims due jobs from the shared work queue (any number of workers, `SKIP LOCKED`, leases),
//! fans events out to endpoints, and delivers them with [`client`]. Delivery is at least once:
//! a job leaves the queue only after its result is recorded, in the transaction that records it.

pub mod client;
pub mod schedule;
pub mod signature;
pub mod ssrf;
pub mod worker;

pub use worker::{Worker, WorkerConfig};

/// Largest body we send. Larger events are never truncated: they go to the dead-letter queue
/// with reason `body_too_large`, where the full JSON can be downloaded.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Whole request: connect, TLS, headers and body.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How much of a receiver's response body the attempt log keeps.
pub const RESPONSE_EXCERPT_BYTES: usize = 4096;

/// The vault context binding an endpoint's encrypted secret to its row.
pub fn secret_context(endpoint_id: uuid::Uuid) -> String {
    format!("webhook-secret:{endpoint_id}")
}

/// A new endpoint secret: `whsec_` and 32 random bytes in hex. The whole string is the HMAC key,
/// exactly as integrators pass it to `crypto.createHmac('sha256', WEBHOOK_SECRET)`.
pub fn new_secret() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("whsec_{}", hex::encode(bytes))
}
