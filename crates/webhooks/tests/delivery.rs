//! Webhook delivery against real HTTPS receivers and a real PostgreSQL: signatures checked by an
//! independent HMAC, the whole retry schedule under injected time, receivers that misbehave in
//! every way we know, and the SSRF guard.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use domain::clock::{Clock, ManualClock};
use domain::events::{AgentPaused, Event, EventPayload};
use domain::{EventId, TenantId, UserId};
use sha2::{Digest as _, Sha256};
use test_support::TestDb;
use test_support::receiver::{Behaviour, Receiver, Sentinel, Sequence, TestCa};
use uuid::Uuid;
use webhooks::client::ClientConfig;
use webhooks::{Worker, WorkerConfig};

/// HMAC-SHA256 written out from RFC 2104 on top of SHA-256, independent of the production code.
fn reference_hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = if key.len() > 64 { Sha256::digest(key).to_vec() } else { key.to_vec() };
    block.resize(64, 0);
    let inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).chain(message.iter().copied()).collect();
    let inner_hash = Sha256::digest(&inner);
    let outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).chain(inner_hash.iter().copied()).collect();
    Sha256::digest(&outer).to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn signatures_match_rfc4231_and_an_independent_hmac() {
    let long_key = vec![0xaa; 131];
    let vectors: [(Vec<u8>, Vec<u8>, &str); 6] = [
        (vec![0x0b; 20], b"Hi There".to_vec(), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (b"Jefe".to_vec(), b"what do ya want for nothing?".to_vec(), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        (vec![0xaa; 20], vec![0xdd; 50], "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        ((1..=25).collect(), vec![0xcd; 50], "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        (long_key.clone(), b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        (long_key, b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(), "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
    ];
    for (key, data, expected) in &vectors {
        assert_eq!(hex(&reference_hmac(key, data)), *expected, "reference HMAC vs RFC 4231");
    }
    // Our own event, signed as the spec's Node.js snippet verifies it: the secret string's
    // bytes are the key, the raw body is the message, "sha256=" + hex.
    let secret = "whsec_0123456789abcdef";
    let body = br#"{"created_at":"2026-05-20T10:23:45Z","data":{"agent_id":"00000000-0000-0000-0000-000000000000","reason":"lunch"},"id":"00000000-0000-0000-0000-000000000001","tenant_id":"00000000-0000-0000-0000-000000000002","type":"agent.paused"}"#;
    assert_eq!(
        webhooks::signature::body_signature(secret, body),
        format!("sha256={}", hex(&reference_hmac(secret.as_bytes(), body)))
    );
    let mut message = b"00000000-0000-0000-0000-000000000001.1779272625.".to_vec();
    message.extend_from_slice(body);
    assert_eq!(
        webhooks::signature::timestamped_signature(
            secret,
            "00000000-0000-0000-0000-000000000001",
            1_779_272_625,
            body
        ),
        format!("sha256={}", hex(&reference_hmac(secret.as_bytes(), &message)))
    );
}

struct Harness {
    db: TestDb,
    tenant: TenantId,
    clock: ManualClock,
    vault: vault::Vault,
    ca: TestCa,
}

impl Harness {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let clock = ManualClock::new(Utc::now());
        let tenant = TenantId(Uuid::new_v4());
        let mut tx = db.db.platform_tx().await.unwrap();
        db::tenants::create(
            &mut tx,
            db::tenants::NewTenant {
                id: tenant,
                slug: "hooks",
                name: "Hooks",
                plan: "free",
                now: clock.now(),
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        Self { db, tenant, clock, vault: vault::Vault::from_bytes(&[3; 32]), ca: TestCa::new("SIVO Test CA") }
    }

    fn worker(&self, allow_private: bool) -> Arc<Worker> {
        let config = WorkerConfig {
            max_jitter_pct: 0,
            client: ClientConfig {
                allow_private_targets: allow_private,
                extra_root_certs_pem: vec![self.ca.cert_pem.clone().into_bytes()],
            },
            ..WorkerConfig::default()
        };
        Worker::new(self.db.db.clone(), self.vault.clone(), Arc::new(self.clock.clone()), config).unwrap()
    }

    /// Creates an endpoint directly (no URL validation: the SSRF test needs forbidden URLs).
    async fn endpoint(&self, url: &str) -> (Uuid, String) {
        let id = Uuid::now_v7();
        let secret = webhooks::new_secret();
        let sealed = self.vault.encrypt(secret.as_bytes(), &webhooks::secret_context(id));
        let mut tx = self.db.db.tenant_tx(self.tenant).await.unwrap();
        db::webhooks::create_endpoint(
            &mut tx,
            db::webhooks::NewEndpoint {
                id,
                tenant_id: self.tenant,
                url,
                description: "",
                enabled: true,
                event_types: &[],
                secret_enc: &sealed,
                now: self.clock.now(),
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        (id, secret)
    }

    async fn emit(&self) -> Event {
        let event = Event::new(
            EventId(Uuid::now_v7()),
            self.tenant,
            self.clock.now(),
            EventPayload::AgentPaused(AgentPaused {
                agent_id: UserId(Uuid::new_v4()),
                reason: "lunch".into(),
            }),
        );
        let mut tx = self.db.db.tenant_tx(self.tenant).await.unwrap();
        db::outbox::enqueue(&mut tx, &event).await.unwrap();
        tx.commit().await.unwrap();
        event
    }

    async fn delivery(&self, endpoint: Uuid, event: &Event) -> db::webhooks::DeliveryRow {
        let mut tx = self.db.db.tenant_tx(self.tenant).await.unwrap();
        let id = db::webhooks::delivery_for_event(&mut tx, endpoint, event.id.as_uuid())
            .await
            .unwrap()
            .expect("delivery exists");
        db::webhooks::get_delivery(&mut tx, id).await.unwrap()
    }

    async fn attempts(&self, endpoint: Uuid) -> Vec<db::webhooks::AttemptRow> {
        let mut tx = self.db.db.tenant_tx(self.tenant).await.unwrap();
        db::webhooks::recent_attempts(&mut tx, endpoint, 100).await.unwrap()
    }
}

#[tokio::test]
async fn full_retry_schedule_then_dead_letter_then_manual_retry() {
    let h = Harness::new().await;
    let seq = Sequence::default();
    let receiver = Receiver::start(&h.ca, Behaviour::Status(500), seq).await;
    let (endpoint, secret) = h.endpoint(&receiver.url()).await;
    let worker = h.worker(true);
    let event = h.emit().await;
    let start = h.clock.now();

    worker.run_once().await.unwrap();
    let offsets = [5, 30, 120, 600, 3600, 21600];
    for (i, secs) in offsets.iter().enumerate() {
        assert_eq!(receiver.received().len(), i + 1);
        // One second early: nothing is due.
        h.clock.advance(Duration::seconds(secs - 1));
        worker.run_once().await.unwrap();
        assert_eq!(receiver.received().len(), i + 1, "retried before the schedule at attempt {}", i + 2);
        h.clock.advance(Duration::seconds(1));
        worker.run_once().await.unwrap();
    }
    let got = receiver.received();
    assert_eq!(got.len(), 7, "exactly 7 attempts");
    for (i, request) in got.iter().enumerate() {
        assert_eq!(request.headers["x-sivo-event-id"], event.id.to_string());
        assert_eq!(request.headers["x-sivo-attempt"], (i + 1).to_string());
        assert_eq!(request.body, got[0].body, "identical body bytes on every attempt");
        let expected = format!("sha256={}", hex(&reference_hmac(secret.as_bytes(), &request.body)));
        assert_eq!(request.headers["x-sivo-signature"], expected);
    }
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["type"], "agent.paused");
    assert_eq!(body["id"], event.id.to_string());

    // The attempt log shows the spec's offsets exactly (jitter is off here).
    let mut attempts = h.attempts(endpoint).await;
    attempts.reverse();
    let first = attempts[0].started_at;
    let offsets_seen: Vec<i64> = attempts.iter().map(|a| (a.started_at - first).num_milliseconds()).collect();
    assert_eq!(offsets_seen, vec![0, 5_000, 35_000, 155_000, 755_000, 4_355_000, 25_955_000]);
    assert!((first - start).num_milliseconds().abs() < 1, "the first attempt is immediate");
    assert!(attempts.iter().all(|a| a.http_status == Some(500) && !a.succeeded));

    let delivery = h.delivery(endpoint, &event).await;
    assert_eq!((delivery.status.as_str(), delivery.attempts), ("dead", 7));
    let mut tx = h.db.db.tenant_tx(h.tenant).await.unwrap();
    let dead = db::webhooks::list_dead(&mut tx, endpoint, None, 10).await.unwrap();
    assert_eq!(dead.items.len(), 1);
    tx.rollback().await.unwrap();

    // Much later, nothing happens by itself.
    h.clock.advance(Duration::days(2));
    worker.run_once().await.unwrap();
    assert_eq!(receiver.received().len(), 7);

    // Manual retry from the dead-letter queue delivers once the receiver is fixed.
    receiver.set(Behaviour::Status(204));
    let mut tx = h.db.db.tenant_tx(h.tenant).await.unwrap();
    let revived = db::webhooks::revive_dead(&mut tx, endpoint, None, h.clock.now()).await.unwrap();
    for id in &revived {
        db::work_queue::push(
            &mut tx,
            *id,
            h.tenant,
            db::work_queue::KIND_WEBHOOK_DELIVERY,
            Some(endpoint),
            h.clock.now(),
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    worker.run_once().await.unwrap();
    assert_eq!(receiver.received().len(), 8);
    assert_eq!(receiver.received()[7].headers["x-sivo-event-id"], event.id.to_string());
    assert_eq!(h.delivery(endpoint, &event).await.status, "succeeded");
}

#[tokio::test]
async fn misbehaving_receivers_fail_cleanly_and_never_hold_up_healthy_ones() {
    let h = Harness::new().await;
    let seq = Sequence::default();
    let rogue_ca = TestCa::new("Someone Else's CA");
    let healthy = Receiver::start(&h.ca, Behaviour::Status(200), seq.clone()).await;
    let redirect_target = Receiver::start(&h.ca, Behaviour::Status(200), seq.clone()).await;
    let cases = [
        ("hang", Receiver::start(&h.ca, Behaviour::Hang, seq.clone()).await),
        ("drip", Receiver::start(&h.ca, Behaviour::SlowDrip, seq.clone()).await),
        (
            "redirect",
            Receiver::start(&h.ca, Behaviour::Redirect { location: redirect_target.url() }, seq.clone())
                .await,
        ),
        ("gone", Receiver::start(&h.ca, Behaviour::Status(410), seq.clone()).await),
        (
            "throttled",
            Receiver::start(&h.ca, Behaviour::TooManyRequests { retry_after_secs: 120 }, seq.clone()).await,
        ),
        ("reset", Receiver::start(&h.ca, Behaviour::ResetMidResponse, seq.clone()).await),
        ("huge", Receiver::start(&h.ca, Behaviour::HugeBody(50 * 1024 * 1024), seq.clone()).await),
        ("bad_cert", Receiver::start(&rogue_ca, Behaviour::Status(200), seq.clone()).await),
    ];
    let (healthy_id, _) = h.endpoint(&healthy.url()).await;
    let mut ids = Vec::new();
    for (name, receiver) in &cases {
        ids.push((*name, h.endpoint(&receiver.url()).await.0));
    }
    let worker = h.worker(true);
    let event = h.emit().await;
    worker.run_once().await.unwrap();

    // The healthy endpoint got its event while the hanging one was still held open.
    let healthy_seq = healthy.received()[0].seq;
    let hang_closed = cases[0].1.closed();
    assert!(
        hang_closed.iter().all(|closed| *closed > healthy_seq),
        "healthy delivery waited for a hanging endpoint"
    );
    assert_eq!(h.delivery(healthy_id, &event).await.status, "succeeded");

    let event = &event;
    let attempt = |name: &str| {
        let id = ids.iter().find(|(n, _)| *n == name).unwrap().1;
        let h = &h;
        async move { (h.attempts(id).await.remove(0), h.delivery(id, event).await, id) }
    };
    let (a, d, _) = attempt("hang").await;
    assert!(a.error.as_deref().unwrap().starts_with("timeout"), "{:?}", a.error);
    assert_eq!((d.status.as_str(), d.attempts), ("pending", 1));
    let (a, d, _) = attempt("drip").await;
    assert!(!a.succeeded, "a body that drips past the 10 s limit is a failure");
    assert!(
        a.error.as_deref().unwrap().contains("timed out") || a.error.as_deref().unwrap().contains("timeout"),
        "{:?}",
        a.error
    );
    assert_eq!(d.status, "pending");
    let (a, d, _) = attempt("redirect").await;
    assert_eq!(a.http_status, Some(302));
    assert!(a.error.as_deref().unwrap().contains("redirects are not followed"));
    assert_eq!(d.status, "pending");
    assert!(redirect_target.received().is_empty(), "a redirect was followed");
    let (a, d, id) = attempt("gone").await;
    assert_eq!(a.http_status, Some(410));
    assert_eq!(d.status, "dead");
    let mut tx = h.db.db.tenant_tx(h.tenant).await.unwrap();
    let endpoint = db::webhooks::get_endpoint(&mut tx, id).await.unwrap();
    assert!(!endpoint.enabled && endpoint.disabled_reason.unwrap().contains("410"));
    let audit = db::audit::list(
        &mut tx,
        Some(h.tenant),
        &db::audit::AuditFilter { event: Some("webhook.endpoint.disabled".into()), ..Default::default() },
        None,
        10,
    )
    .await
    .unwrap();
    assert_eq!(audit.items.len(), 1, "disabling is notified in the audit log");
    tx.rollback().await.unwrap();
    let (a, d, _) = attempt("throttled").await;
    assert_eq!(a.http_status, Some(429));
    // Database timestamps keep microseconds; the clock has nanoseconds.
    let wait = (d.next_attempt_at.unwrap() - h.clock.now()).num_milliseconds();
    assert!((119_999..=120_000).contains(&wait), "Retry-After beats the 5 s schedule: {wait} ms");
    let (a, d, _) = attempt("reset").await;
    assert!(!a.succeeded && a.error.is_some());
    assert_eq!(d.status, "pending");
    let (a, d, _) = attempt("huge").await;
    assert!(a.succeeded, "a 2xx with a huge body is a success");
    assert_eq!(a.response_excerpt.unwrap().len(), webhooks::RESPONSE_EXCERPT_BYTES);
    assert_eq!(d.status, "succeeded");
    let (a, _, _) = attempt("bad_cert").await;
    assert!(
        a.http_status.is_none() && a.error.as_deref().unwrap().to_lowercase().contains("certificate"),
        "{:?}",
        a.error
    );
    assert!(cases[7].1.received().is_empty(), "nothing is sent over an untrusted TLS connection");
}

#[tokio::test]
async fn private_and_loopback_targets_are_blocked_before_any_connection() {
    let h = Harness::new().await;
    let sentinel = Sentinel::start("127.0.0.1:0").await;
    let sentinel6 = Sentinel::start("[::1]:0").await;
    let p = sentinel.addr.port();
    let p6 = sentinel6.addr.port();
    let urls = [
        format!("https://127.0.0.1:{p}/"),
        format!("https://[::1]:{p6}/"),
        format!("https://2130706433:{p}/"),
        format!("https://0177.0.0.1:{p}/"),
        format!("https://0x7f000001:{p}/"),
        format!("https://[::ffff:127.0.0.1]:{p}/"),
        format!("https://localhost:{p}/"),
        format!("https://0.0.0.0:{p}/"),
        "https://10.0.0.1/".to_owned(),
        "https://172.16.0.1/".to_owned(),
        "https://192.168.1.1/".to_owned(),
        "https://169.254.169.254/latest/meta-data/".to_owned(),
        "https://100.64.0.1/".to_owned(),
        "https://[fd00::1]/".to_owned(),
    ];
    let mut endpoints = Vec::new();
    for url in &urls {
        endpoints.push((url, h.endpoint(url).await.0));
    }
    let worker = h.worker(false);
    h.emit().await;
    worker.run_once().await.unwrap();
    for (url, id) in &endpoints {
        let attempts = h.attempts(*id).await;
        assert_eq!(attempts.len(), 1, "{url}");
        let error = attempts[0].error.clone().unwrap_or_default();
        assert!(error.starts_with("blocked"), "{url}: {error}");
    }
    assert_eq!(sentinel.accepted() + sentinel6.accepted(), 0, "a blocked target received a connection");
}

#[tokio::test]
async fn oversized_events_go_to_the_dead_letter_queue_whole() {
    let h = Harness::new().await;
    let receiver = Receiver::start(&h.ca, Behaviour::Status(200), Sequence::default()).await;
    let (endpoint, _) = h.endpoint(&receiver.url()).await;
    let event = Event::new(
        EventId(Uuid::now_v7()),
        h.tenant,
        h.clock.now(),
        EventPayload::AgentPaused(AgentPaused {
            agent_id: UserId(Uuid::new_v4()),
            reason: "x".repeat(300 * 1024),
        }),
    );
    let mut tx = h.db.db.tenant_tx(h.tenant).await.unwrap();
    db::outbox::enqueue(&mut tx, &event).await.unwrap();
    tx.commit().await.unwrap();
    h.worker(true).run_once().await.unwrap();
    assert!(receiver.received().is_empty(), "never sent truncated");
    let delivery = h.delivery(endpoint, &event).await;
    assert_eq!(delivery.status, "dead");
    assert!(delivery.dead_reason.unwrap().starts_with("body_too_large"));
    let stored: serde_json::Value = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(
        stored["data"]["reason"].as_str().unwrap().len(),
        300 * 1024,
        "the full event is kept for download"
    );
}

#[tokio::test]
async fn several_workers_share_the_queue_without_double_delivery() {
    let h = Harness::new().await;
    let receiver = Receiver::start(&h.ca, Behaviour::Status(200), Sequence::default()).await;
    h.endpoint(&receiver.url()).await;
    let mut emitted = Vec::new();
    for _ in 0..60 {
        emitted.push(h.emit().await.id.to_string());
    }
    let workers = [h.worker(true), h.worker(true), h.worker(true)];
    let runs = workers.iter().map(|w| {
        let w = w.clone();
        tokio::spawn(async move { w.run_once().await.unwrap() })
    });
    for run in runs {
        run.await.unwrap();
    }
    let mut got: Vec<String> =
        receiver.received().iter().map(|r| r.headers["x-sivo-event-id"].clone()).collect();
    got.sort();
    emitted.sort();
    assert_eq!(got, emitted, "each event exactly once when nothing fails");
    let mut tx = h.db.db.platform_tx().await.unwrap();
    assert_eq!(db::work_queue::depth(&mut tx).await.unwrap(), 0);
    let _: DateTime<Utc> = h.clock.now();
}

#[tokio::test]
async fn a_rotated_secret_signs_the_very_next_delivery() {
    // The worker keeps decrypted secrets, keyed by the ciphertext it reads with every batch.
    let h = Harness::new().await;
    let receiver = Receiver::start(&h.ca, Behaviour::Status(200), Sequence::default()).await;
    let (endpoint, old_secret) = h.endpoint(&receiver.url()).await;
    let worker = h.worker(true);
    h.emit().await;
    worker.run_once().await.unwrap();

    let new_secret = webhooks::new_secret();
    let sealed = h.vault.encrypt(new_secret.as_bytes(), &webhooks::secret_context(endpoint));
    let mut tx = h.db.db.tenant_tx(h.tenant).await.unwrap();
    db::webhooks::update_endpoint(
        &mut tx,
        endpoint,
        db::webhooks::EndpointPatch { secret_enc: Some(&sealed), ..Default::default() },
        h.clock.now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    h.emit().await;
    worker.run_once().await.unwrap();

    let got = receiver.received();
    assert_eq!(got.len(), 2);
    for (request, secret) in got.iter().zip([&old_secret, &new_secret]) {
        let expected = format!("sha256={}", hex(&reference_hmac(secret.as_bytes(), &request.body)));
        assert_eq!(request.headers["x-sivo-signature"], expected);
    }
}

#[tokio::test]
async fn a_batch_of_successes_applies_only_to_jobs_still_held() {
    let h = Harness::new().await;
    let (endpoint, _) = h.endpoint("https://hooks.example.com/").await;
    let now = h.clock.now();
    let lease = now + Duration::seconds(60);
    let mut tx = h.db.db.tenant_tx(h.tenant).await.unwrap();
    let (ours, lost) = (Uuid::now_v7(), Uuid::now_v7());
    let new = |id| db::webhooks::NewDelivery {
        id,
        endpoint_id: endpoint,
        event_id: Uuid::now_v7(),
        event_type: "agent.paused",
        body: b"{}",
        leased: true,
    };
    let leased =
        db::webhooks::queue_deliveries(&mut tx, h.tenant, &[new(ours), new(lost)], now, lease).await.unwrap();
    assert_eq!(leased.len(), 2, "both queued already leased");
    let token = |id| leased.iter().find(|(j, _)| *j == id).unwrap().1;
    let success = |id, lock_token| db::webhooks::Success {
        delivery_id: id,
        endpoint_id: endpoint,
        event_id: Uuid::now_v7(),
        event_type: "agent.paused".into(),
        attempt: 1,
        started_at: now,
        latency_ms: 3,
        http_status: 200,
        response_excerpt: Some("ok".into()),
        lock_token,
    };
    // The second job's lease was taken over by another worker (another token).
    let batch = [success(ours, token(ours)), success(lost, Uuid::new_v4())];
    let applied = db::webhooks::finish_successes(&mut tx, h.tenant, &batch, now).await.unwrap();
    assert_eq!(applied, vec![true, false]);
    let done = db::webhooks::get_delivery(&mut tx, ours).await.unwrap();
    assert_eq!((done.status.as_str(), done.attempts, done.last_status), ("succeeded", 1, Some(200)));
    let kept = db::webhooks::get_delivery(&mut tx, lost).await.unwrap();
    assert_eq!((kept.status.as_str(), kept.attempts), ("pending", 0), "the new owner decides");
    let logged = db::webhooks::attempts_of(&mut tx, lost).await.unwrap();
    assert_eq!(logged.len(), 1, "the attempt is logged anyway");
    assert!(logged[0].error.as_deref().unwrap().contains("lease expired"));
    assert!(db::webhooks::attempts_of(&mut tx, ours).await.unwrap()[0].error.is_none());
    tx.commit().await.unwrap();
    let mut tx = h.db.db.platform_tx().await.unwrap();
    assert_eq!(db::work_queue::depth(&mut tx).await.unwrap(), 1, "only the finished job left the queue");
}
