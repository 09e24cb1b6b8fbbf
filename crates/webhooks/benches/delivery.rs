//! Webhook delivery throughput and latency, with a reference measured side by side.
//!
//! `cargo bench -p webhooks --bench delivery` (or `scripts/bench.sh webhooks`). One worker
//! delivers N events (default 5,000; `BENCH_EVENTS`) from the outbox to a local HTTPS receiver;
//! we report deliveries per second and p50/p99 of outbox commit → receiver got it. The reference
//! is the same receiver loaded directly by the same HTTP client at the same concurrency, without
//! SIVO: the ceiling the receiver and TLS stack allow on this machine. Loopback only, bounded.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use domain::clock::SystemClock;
use domain::events::{AgentPaused, Event, EventPayload};
use domain::{EventId, TenantId, UserId};
use test_support::TestDb;
use test_support::receiver::{Behaviour, Receiver, Sequence, TestCa};
use uuid::Uuid;
use webhooks::client::{AttemptRequest, Client, ClientConfig};
use webhooks::{Worker, WorkerConfig};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let n: usize = std::env::var("BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    let concurrency = 32;
    let ca = TestCa::new("bench CA");
    let client_config = ClientConfig {
        allow_private_targets: true,
        extra_root_certs_pem: vec![ca.cert_pem.clone().into_bytes()],
    };

    // Reference: the receiver loaded directly, same client, same concurrency.
    let reference = Receiver::start(&ca, Behaviour::Status(200), Sequence::default()).await;
    let client = Client::new(&client_config).unwrap();
    let body = serde_json::to_vec(&serde_json::json!({"type": "agent.paused", "data": {"reason": "bench"}}))
        .unwrap();
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(n);
    let mut tasks = tokio::task::JoinSet::new();
    let per_task = n / concurrency;
    for _ in 0..concurrency {
        let (client, url, body) = (client.clone(), reference.url(), body.clone());
        tasks.spawn(async move {
            let mut out = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                let t = Instant::now();
                let outcome = client
                    .send(&AttemptRequest {
                        url: &url,
                        secret: "k",
                        event_id: Uuid::now_v7(),
                        event_type: "agent.paused",
                        attempt: 1,
                        body: &body,
                        timestamp: Utc::now(),
                    })
                    .await;
                assert!(outcome.success, "{:?}", outcome.error);
                out.push(t.elapsed());
            }
            out
        });
    }
    while let Some(r) = tasks.join_next().await {
        latencies.extend(r.unwrap());
    }
    let ref_elapsed = started.elapsed();
    latencies.sort();
    let ref_rate = latencies.len() as f64 / ref_elapsed.as_secs_f64();
    println!(
        "reference (direct POSTs, {concurrency} concurrent): {:.0}/s  p50 {:.2} ms  p99 {:.2} ms",
        ref_rate,
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3
    );

    // SIVO: outbox → worker → receiver.
    let db = TestDb::new().await;
    let tenant = TenantId(Uuid::new_v4());
    let mut tx = db.db.platform_tx().await.unwrap();
    db::tenants::create(
        &mut tx,
        db::tenants::NewTenant { id: tenant, slug: "bench", name: "Bench", plan: "free", now: Utc::now() },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let receiver = Receiver::start(&ca, Behaviour::Status(200), Sequence::default()).await;
    let vault = vault::Vault::from_bytes(&[9; 32]);
    let endpoint = Uuid::now_v7();
    let sealed = vault.encrypt(b"whsec_bench", &webhooks::secret_context(endpoint));
    let mut tx = db.db.tenant_tx(tenant).await.unwrap();
    let url = receiver.url();
    db::webhooks::create_endpoint(
        &mut tx,
        db::webhooks::NewEndpoint {
            id: endpoint,
            tenant_id: tenant,
            url: &url,
            description: "",
            enabled: true,
            event_types: &[],
            secret_enc: &sealed,
            now: Utc::now(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let config = WorkerConfig {
        concurrency,
        per_endpoint: concurrency,
        client: client_config,
        ..WorkerConfig::default()
    };
    let worker = Worker::new(db.db.clone(), vault, Arc::new(SystemClock), config).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(worker.run(stop_rx));

    // Emit in batches of 50, as a busy contact center's transactions would.
    let mut committed: HashMap<String, Instant> = HashMap::with_capacity(n);
    let started = Instant::now();
    for _ in 0..n / 50 {
        let mut tx = db.db.tenant_tx(tenant).await.unwrap();
        let mut ids = Vec::with_capacity(50);
        for _ in 0..50 {
            let event = Event::new(
                EventId(Uuid::now_v7()),
                tenant,
                Utc::now(),
                EventPayload::AgentPaused(AgentPaused {
                    agent_id: UserId(Uuid::nil()),
                    reason: "bench".into(),
                }),
            );
            db::outbox::enqueue(&mut tx, &event).await.unwrap();
            ids.push(event.id.to_string());
        }
        tx.commit().await.unwrap();
        let at = Instant::now();
        committed.extend(ids.into_iter().map(|id| (id, at)));
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while receiver.received().len() < committed.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let got = receiver.received();
    let rate = got.len() as f64 / elapsed.as_secs_f64();
    println!("sivo throughput (backlog of {} drained by 1 worker): {}/s", committed.len(), rate as u64);
    println!("ratio sivo/reference throughput: {:.3}", rate / ref_rate);

    // Latency at a steady half of that rate: commit → receiver, without a backlog.
    let paced = (rate / 2.0).max(10.0);
    let batch = 10usize;
    let interval = Duration::from_secs_f64(batch as f64 / paced);
    let n_paced = (n / 2).max(batch);
    let before = receiver.received().len();
    let mut paced_commits: HashMap<String, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(interval);
    for _ in 0..n_paced / batch {
        tick.tick().await;
        let mut tx = db.db.tenant_tx(tenant).await.unwrap();
        let mut ids = Vec::with_capacity(batch);
        for _ in 0..batch {
            let event = Event::new(
                EventId(Uuid::now_v7()),
                tenant,
                Utc::now(),
                EventPayload::AgentPaused(AgentPaused {
                    agent_id: UserId(Uuid::nil()),
                    reason: "bench".into(),
                }),
            );
            db::outbox::enqueue(&mut tx, &event).await.unwrap();
            ids.push(event.id.to_string());
        }
        tx.commit().await.unwrap();
        let at = Instant::now();
        paced_commits.extend(ids.into_iter().map(|id| (id, at)));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while receiver.received().len() < before + paced_commits.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    let _ = running.await;
    let mut latencies: Vec<Duration> = receiver.received()[before..]
        .iter()
        .filter_map(|r| {
            paced_commits.get(&r.headers["x-sivo-event-id"]).map(|c| r.at.saturating_duration_since(*c))
        })
        .collect();
    latencies.sort();
    println!(
        "sivo latency at {:.0}/s (commit → receiver): {} events, p50 {:.2} ms  p99 {:.2} ms",
        paced,
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3
    );
}
