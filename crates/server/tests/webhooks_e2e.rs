//! Webhooks through the real binary: an endpoint made over the API, the tester, and delivery that
//! survives `kill -9` of `sivo` at any moment while events keep flowing.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use domain::events::{AgentPaused, Event, EventPayload};
use domain::{EventId, TenantId, UserId};
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sqlx::{ConnectOptions as _, Connection as _};
use test_support::receiver::{Behaviour, Receiver, Sequence, TestCa};
use uuid::Uuid;

const SIVO: &str = env!("CARGO_BIN_EXE_sivo");

struct Env {
    owner_url: String,
    app_url: String,
    ca_file: std::path::PathBuf,
    data: tempfile::TempDir,
}

impl Env {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(SIVO);
        cmd.args(args)
            .arg("--data-dir")
            .arg(self.data.path())
            .env("DATABASE_URL", &self.owner_url)
            .env("SIVO_DATABASE__APP_URL", &self.app_url)
            .env("SIVO_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true")
            .env("SIVO_WEBHOOKS__EXTRA_ROOT_CA", &self.ca_file)
            .env("SIVO_WEBHOOKS__LEASE_SECS", "15")
            .env("SIVO_WEBHOOKS__MAX_JITTER_PCT", "0");
        cmd
    }

    fn serve(&self, port: u16) -> Child {
        self.command(&["serve", "--http-addr", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sivo serve")
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn wait_ready(client: &reqwest::Client, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("sivo serve did not become ready");
}

async fn start_postgres(dir: &Path) -> db::embedded::EmbeddedPostgres {
    let pg = db::embedded::EmbeddedPostgres::start(&db::embedded::EmbeddedConfig {
        data_dir: dir.to_owned(),
        unsafe_fast: true,
    })
    .await
    .unwrap();
    let mut admin = pg.superuser_options("postgres").connect().await.unwrap();
    for sql in ["alter role sivo_owner login", "alter role sivo_app login"] {
        sqlx::query(sql).execute(&mut admin).await.unwrap();
    }
    admin.close().await.unwrap();
    pg
}

#[tokio::test]
async fn endpoint_tester_and_delivery_survive_repeated_kill_9() {
    let pg_dir = tempfile::tempdir().unwrap();
    let pg = start_postgres(&pg_dir.path().join("pg")).await;
    let socket = pg.layout().socket_dir.display().to_string();
    let ca = TestCa::new("SIVO Test CA");
    let data = tempfile::tempdir().unwrap();
    let env = Env {
        owner_url: format!("postgres://sivo_owner@localhost:5432/sivo?host={socket}"),
        app_url: format!("postgres://sivo_app@localhost:5432/sivo?host={socket}"),
        ca_file: ca.write_pem(pg_dir.path()),
        data,
    };
    let receiver = Receiver::start(&ca, Behaviour::Status(200), Sequence::default()).await;

    assert!(env.command(&["migrate"]).output().unwrap().status.success());
    let o = env.command(&["tenant", "create", "--slug", "crashco", "--name", "Crash Co"]).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let o = env.command(&["api-key", "create", "--tenant", "crashco", "--name", "ci"]).output().unwrap();
    let key = String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("key (shown once): "))
        .unwrap()
        .to_owned();
    let tenant = {
        let mut conn = pg.superuser_options("sivo").connect().await.unwrap();
        let id: Uuid = sqlx::query_scalar("select id from tenants where slug = 'crashco'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        TenantId(id)
    };

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut server = env.serve(port);
    wait_ready(&client, port).await;

    // An endpoint over the API, then the built-in tester through the real delivery path.
    let created: Value = client
        .post(format!("{base}/api/v1/webhooks/endpoints"))
        .bearer_auth(&key)
        .json(&json!({"url": receiver.url(), "description": "crash test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = created["webhook_secret"].as_str().expect("secret shown once").to_owned();
    let endpoint = created["id"].as_str().unwrap().to_owned();
    let tested: Value = client
        .post(format!("{base}/api/v1/webhooks/endpoints/{endpoint}/test"))
        .bearer_auth(&key)
        .json(&json!({"event_type": "call.ended"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tested["completed"], true, "{tested}");
    assert_eq!(tested["attempt"]["http_status"], 200);
    let first = receiver.received().remove(0);
    assert_eq!(first.headers["x-sivo-event-type"], "call.ended");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&first.body);
    assert_eq!(
        first.headers["x-sivo-signature"],
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    );
    let log: Value = client
        .get(format!("{base}/api/v1/webhooks/endpoints/{endpoint}/deliveries"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log[0]["event_type"], "call.ended");

    // 1,200 events written by another process while sivo is killed with SIGKILL again and again.
    let app = db::Db::connect(env.app_url.parse().unwrap(), 4).await.unwrap();
    let emitter = tokio::spawn(async move {
        let mut ids = Vec::new();
        for _ in 0..40 {
            let mut tx = app.tenant_tx(tenant).await.unwrap();
            for _ in 0..30 {
                let event = Event::new(
                    EventId(Uuid::now_v7()),
                    tenant,
                    Utc::now(),
                    EventPayload::AgentPaused(AgentPaused {
                        agent_id: UserId(Uuid::new_v4()),
                        reason: "crash test".into(),
                    }),
                );
                db::outbox::enqueue(&mut tx, &event).await.unwrap();
                ids.push(event.id.to_string());
            }
            tx.commit().await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        ids
    });
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        server.kill().unwrap(); // SIGKILL
        server.wait().unwrap();
        server = env.serve(port);
        wait_ready(&client, port).await;
    }
    let emitted: HashSet<String> = emitter.await.unwrap().into_iter().collect();
    assert_eq!(emitted.len(), 1200);

    // Everything arrives; duplicates are allowed only as the same event id.
    let deadline = Instant::now() + Duration::from_secs(120);
    let missing = loop {
        let got: HashSet<String> =
            receiver.received().iter().map(|r| r.headers["x-sivo-event-id"].clone()).collect();
        let missing: Vec<&String> = emitted.iter().filter(|id| !got.contains(*id)).collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing.len();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(missing, 0, "events lost across kill -9");

    // Nothing stays in flight, and nothing is marked delivered without a recorded 2xx.
    let mut conn = pg.superuser_options("sivo").connect().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let queued: i64 =
            sqlx::query_scalar("select count(*) from work_queue").fetch_one(&mut conn).await.unwrap();
        if queued == 0 || Instant::now() > deadline {
            assert_eq!(queued, 0, "jobs left in the queue");
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let unproven: i64 = sqlx::query_scalar(
        "select count(*) from webhook_deliveries d where d.status = 'succeeded'
           and not exists (select 1 from webhook_attempts a where a.delivery_id = d.id and a.succeeded and a.http_status between 200 and 299)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(unproven, 0, "a delivery marked succeeded without a recorded 2xx");
    let not_done: i64 =
        sqlx::query_scalar("select count(*) from webhook_deliveries where status <> 'succeeded'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(not_done, 0);
    conn.close().await.unwrap();

    // PostgreSQL itself restarts under a running sivo: the worker reconnects with backoff.
    let pg_path = pg_dir.path().join("pg");
    pg.stop().await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pg = db::embedded::EmbeddedPostgres::start(&db::embedded::EmbeddedConfig {
        data_dir: pg_path,
        unsafe_fast: true,
    })
    .await
    .unwrap();
    let app = db::Db::connect(env.app_url.parse().unwrap(), 2).await.unwrap();
    let mut after_restart = Vec::new();
    let mut tx = app.tenant_tx(tenant).await.unwrap();
    for _ in 0..20 {
        let event = Event::new(
            EventId(Uuid::now_v7()),
            tenant,
            Utc::now(),
            EventPayload::AgentPaused(AgentPaused {
                agent_id: UserId(Uuid::new_v4()),
                reason: "after restart".into(),
            }),
        );
        db::outbox::enqueue(&mut tx, &event).await.unwrap();
        after_restart.push(event.id.to_string());
    }
    tx.commit().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: HashSet<String> =
            receiver.received().iter().map(|r| r.headers["x-sivo-event-id"].clone()).collect();
        if after_restart.iter().all(|id| got.contains(id)) {
            break;
        }
        assert!(Instant::now() < deadline, "events after a PostgreSQL restart were not delivered");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(server.try_wait().unwrap().is_none(), "sivo survived the database restart");

    server.kill().unwrap();
    server.wait().unwrap();
    pg.stop().await.unwrap();
}
