//! Webhook delivery throughput and latency, with a reference measured side by side.
//!
//! `cargo bench -p webhooks --bench delivery` (or `scripts/bench.sh webhooks`). Against a local
//! HTTPS receiver, with N events per phase (default 5,000; `BENCH_EVENTS`):
//!
//! 1. reference: the same receiver loaded directly by the same HTTP client at the same
//!    concurrency, without SIVO: the ceiling the receiver and TLS stack allow on this machine;
//! 2. backlog: N events already committed to the outbox, then one worker starts; deliveries per
//!    second from its start to the receiver getting the last one;
//! 3. emit while delivering: N events committed in transactions of 50 as fast as one emitter can
//!    while the worker runs (the emitter shares the CPU and the pool, so this is bounded by both);
//! 4. latency, outbox commit → receiver got it (p50/p99), at half the backlog rate and at the
//!    target rate of 1,000/s, events committed in transactions of 10.
//!
//! It also reports CPU use, the load average (the machine may be shared) and database
//! transactions per delivery. Loopback only, bounded.
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

/// The 1, 5 and 15 minute load averages: the machine may be shared with other work.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// CPU seconds used so far by this process (worker, receiver, emitter, TLS on both sides), by its
/// descendants (the PostgreSQL cluster the benchmark started, live or reaped), and by the whole
/// machine (these and anything else running).
#[derive(Clone, Copy)]
struct Cpu {
    own: f64,
    postgres: f64,
    machine: f64,
}

fn cpu_seconds() -> Cpu {
    let tick = 100.0; // USER_HZ
    // (pid, ppid, own ticks, reaped children's ticks) of every process.
    let mut procs = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        procs.push((pid, num(1) as u32, num(11) + num(12), num(13) + num(14)));
    }
    let me = std::process::id();
    let own = procs.iter().find(|p| p.0 == me).map(|p| p.2).unwrap_or(0.0);
    let mut tree = vec![me];
    let mut postgres = procs.iter().find(|p| p.0 == me).map(|p| p.3).unwrap_or(0.0);
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        for p in procs.iter().filter(|p| p.1 == parent) {
            tree.push(p.0);
            postgres += p.2 + p.3;
        }
        i += 1;
    }
    let machine = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let cpu: Vec<f64> =
                s.lines().next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
            // user nice system idle iowait irq softirq steal
            Some(cpu.iter().take(8).sum::<f64>() - cpu[3] - cpu[4])
        })
        .unwrap_or(0.0);
    Cpu { own: own / tick, postgres: postgres / tick, machine: machine / tick }
}

/// Commits and rollbacks in the benchmark's database so far (PostgreSQL's statistics).
async fn transactions(options: &sqlx::postgres::PgConnectOptions, name: &str) -> i64 {
    use sqlx::ConnectOptions as _;
    let mut conn = options.connect().await.unwrap();
    sqlx::query_scalar(
        "select (xact_commit + xact_rollback)::bigint from pg_stat_database where datname = $1",
    )
    .bind(name)
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

/// Emits `n` agent.paused events in one transaction; returns their ids.
async fn emit(db: &db::Db, tenant: TenantId, n: usize) -> Vec<String> {
    let mut tx = db.tenant_tx(tenant).await.unwrap();
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let event = Event::new(
            EventId(Uuid::now_v7()),
            tenant,
            Utc::now(),
            EventPayload::AgentPaused(AgentPaused { agent_id: UserId(Uuid::nil()), reason: "bench".into() }),
        );
        db::outbox::enqueue(&mut tx, &event).await.unwrap();
        ids.push(event.id.to_string());
    }
    tx.commit().await.unwrap();
    ids
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(run());
}

/// Commit → receiver latency with events committed `batch` at a time at `rate` per second.
async fn paced(db: &db::Db, tenant: TenantId, receiver: &Receiver, rate: f64, total: usize) {
    let batch = 10usize;
    let interval = Duration::from_secs_f64(batch as f64 / rate);
    let before = receiver.received().len();
    let mut commits: HashMap<String, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    for _ in 0..total / batch {
        tick.tick().await;
        let ids = emit(db, tenant, batch).await;
        let at = Instant::now();
        commits.extend(ids.into_iter().map(|id| (id, at)));
    }
    let achieved = commits.len() as f64 / started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(120);
    while receiver.received().len() < before + commits.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut latencies: Vec<Duration> = receiver.received()[before..]
        .iter()
        .filter_map(|r| {
            commits.get(&r.headers["x-sivo-event-id"]).map(|c| r.at.saturating_duration_since(*c))
        })
        .collect();
    latencies.sort();
    println!(
        "sivo latency at {rate:.0}/s (achieved {achieved:.0}/s; commit → receiver): {} of {} events, p50 {:.2} ms  p99 {:.2} ms",
        latencies.len(),
        commits.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3
    );
}

/// Waits until the receiver holds `expected` requests (polling gently: each poll copies them all)
/// and returns the time the last one arrived, by the receiver's own clock.
async fn wait_for(receiver: &Receiver, expected: usize, since: Instant) -> (usize, Instant) {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut got = receiver.received();
    while got.len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        got = receiver.received();
    }
    (got.len(), got.iter().map(|r| r.at).max().unwrap_or(since))
}

fn cpu_report(label: &str, before: Cpu, wall: Duration, deliveries: usize) {
    let after = cpu_seconds();
    let wall = wall.as_secs_f64();
    let per = |secs: f64| secs / deliveries.max(1) as f64 * 1e6;
    println!(
        "  cpu {label}: per delivery {:.0} µs in this process (worker, receiver{}) + {:.0} µs in PostgreSQL; \
         whole machine busy {:.0} % of {} cores; load average {}",
        per(after.own - before.own),
        match label {
            "reference" => " as client",
            l if l.contains("emit") => ", emitter",
            _ => "",
        },
        per(after.postgres - before.postgres),
        (after.machine - before.machine) / wall * 100.0,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        loadavg()
    );
}

async fn run() {
    let n: usize = std::env::var("BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    let concurrency = 32;
    let ca = TestCa::new("bench CA");
    let client_config = ClientConfig {
        allow_private_targets: true,
        extra_root_certs_pem: vec![ca.cert_pem.clone().into_bytes()],
    };

    println!("load average before: {}", loadavg());
    // Reference: the receiver loaded directly, same client (keeping as many connections as the
    // worker does), same concurrency.
    let reference = Receiver::start(&ca, Behaviour::Status(200), Sequence::default()).await;
    let client = Client::with_idle_per_host(&client_config, concurrency).unwrap();
    let body = serde_json::to_vec(&serde_json::json!({"type": "agent.paused", "data": {"reason": "bench"}}))
        .unwrap();
    let cpu = cpu_seconds();
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
    cpu_report("reference", cpu, ref_elapsed, latencies.len());

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
    let xacts_before = transactions(&db.superuser_options(), &db.name).await;

    // Backlog: N events committed while no worker runs, then one worker drains them.
    let mut expected = 0;
    for _ in 0..n / 50 {
        expected += emit(&db.db, tenant, 50).await.len();
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let cpu = cpu_seconds();
    let started = Instant::now();
    let running = tokio::spawn(worker.run(stop_rx));
    let (got, last) = wait_for(&receiver, expected, started).await;
    let elapsed = last.saturating_duration_since(started);
    let rate = got as f64 / elapsed.as_secs_f64();
    println!(
        "sivo throughput (backlog of {expected} drained by 1 worker): {}/s  ({got} delivered in {:.2} s)",
        rate as u64,
        elapsed.as_secs_f64()
    );
    println!("ratio sivo/reference throughput: {:.3}", rate / ref_rate);
    cpu_report("draining", cpu, started.elapsed(), got);

    // The same number of events committed while the worker runs, as fast as one emitter can.
    let cpu = cpu_seconds();
    let started = Instant::now();
    for _ in 0..n / 50 {
        expected += emit(&db.db, tenant, 50).await.len();
    }
    let emitted_in = started.elapsed();
    let (got_now, last) = wait_for(&receiver, expected, started).await;
    let elapsed = last.saturating_duration_since(started);
    println!(
        "sivo emit while delivering ({} events): {}/s  (emitting took {:.2} s, the last delivery came {:.2} s after the first commit)",
        got_now - got,
        ((got_now - got) as f64 / elapsed.as_secs_f64()) as u64,
        emitted_in.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    cpu_report("emitting and delivering", cpu, started.elapsed(), got_now - got);

    // Latency without a backlog: at half the backlog rate, and at the 1,000/s target.
    let half = (rate / 2.0).max(10.0);
    paced(&db.db, tenant, &receiver, half, (n / 2).max(10)).await;
    paced(&db.db, tenant, &receiver, 1000.0, n).await;
    let _ = stop_tx.send(true);
    let _ = running.await;

    // Closing the pool ends its backends, which flushes their statistics.
    let delivered = receiver.received().len();
    db.db.close().await;
    let xacts = transactions(&db.superuser_options(), &db.name).await - xacts_before;
    let emitter_xacts = (2 * (n / 50) + (n / 2).max(10) / 10 + n / 10) as i64;
    println!(
        "database transactions per delivery, worker only (claims, fan-outs, results; all phases): {:.2}; receiver TLS connections: {}; load average after: {}",
        (xacts - emitter_xacts) as f64 / delivered as f64,
        receiver.connections(),
        loadavg()
    );
}
