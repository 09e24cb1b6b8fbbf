//! The real `sivo` binary, end to end: `serve` on its own embedded PostgreSQL on a free port,
//! admin commands from a second process while it runs, MFA login over HTTP, the audit log,
//! `config check`, and the error when PostgreSQL is missing.

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const SIVO: &str = env!("CARGO_BIN_EXE_sivo");

fn sivo(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(SIVO)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sivo");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(data_dir: &Path, port: u16) -> Server {
    let child = Command::new(SIVO)
        .args(["serve", "--http-addr", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sivo serve");
    Server { child }
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "sivo serve did not become ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn totp(secret_b32: &str, unix_time: u64) -> String {
    let secret = totp_rs::Secret::Encoded(secret_b32.to_owned()).to_bytes().unwrap();
    totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, 6, 1, 30, secret, None, String::new())
        .generate(unix_time)
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

async fn post(client: &reqwest::Client, url: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = client.post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn serve_cli_mfa_login_and_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("var");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut server = start_server(&data, port);
    wait_ready(&client, &base).await;

    // A second server on the same data directory refuses to start.
    let second = sivo(&data, &["serve", "--http-addr", &format!("127.0.0.1:{}", free_port())], None);
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already using"), "{second:?}");

    // Admin commands share the running server's embedded database.
    let o = sivo(&data, &["tenant", "create", "--slug", "acme", "--name", "Acme Inc"], None);
    assert!(o.status.success(), "{o:?}");
    let o = sivo(
        &data,
        &[
            "user",
            "create",
            "--tenant",
            "acme",
            "--email",
            "admin@acme.example",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("correct-horse-battery\n"),
    );
    assert!(o.status.success(), "{o:?}");
    let bad = sivo(
        &data,
        &[
            "user",
            "create",
            "--tenant",
            "acme",
            "--email",
            "x@acme.example",
            "--role",
            "agent",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--password: password must be at least 12 characters"),
        "{bad:?}"
    );
    let key = sivo(&data, &["api-key", "create", "--tenant", "acme", "--name", "crm"], None);
    let key_line = stdout(&key);
    let api_key =
        key_line.lines().find_map(|l| l.strip_prefix("key (shown once): ")).expect("key printed").to_owned();

    // Login: enrolment-only session, enrol TOTP, then the real login with a code.
    let (status, first) = post(
        &client,
        &format!("{base}/api/v1/auth/login"),
        None,
        json!({"email": "admin@acme.example", "password": "correct-horse-battery"}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["mfa_enrollment_required"], true);
    let enrol_token = first["token"].as_str().unwrap();
    let (status, enrol) =
        post(&client, &format!("{base}/api/v1/auth/mfa/totp/enroll"), Some(enrol_token), json!({})).await;
    assert_eq!(status, 200, "{enrol}");
    let secret = enrol["secret"].as_str().unwrap();
    let (status, confirm) = post(
        &client,
        &format!("{base}/api/v1/auth/mfa/totp/confirm"),
        Some(enrol_token),
        json!({"code": totp(secret, now())}),
    )
    .await;
    assert_eq!(status, 200, "{confirm}");
    let (status, missing) = post(
        &client,
        &format!("{base}/api/v1/auth/login"),
        None,
        json!({"email": "admin@acme.example", "password": "correct-horse-battery"}),
    )
    .await;
    assert_eq!((status, missing["code"].as_str()), (401, Some("mfa_required")));
    // The confirmation spent the current step; the next one is inside the ±1 window.
    let code = totp(secret, now() + 30);
    let (status, login) = post(
        &client,
        &format!("{base}/api/v1/auth/login"),
        None,
        json!({"email": "admin@acme.example", "password": "correct-horse-battery", "totp_code": code}),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let token = login["token"].as_str().unwrap();

    let audit: Value = client
        .get(format!("{base}/api/v1/audit?limit=200"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events: Vec<&str> =
        audit["items"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    for expected in [
        "auth.login.succeeded",
        "auth.mfa.enabled",
        "auth.mfa.enrollment_started",
        "auth.login.mfa_enrollment_pending",
        "user.created",
        "api_key.created",
    ] {
        assert!(events.contains(&expected), "{expected} missing from {events:?}");
    }
    let by_cli = audit["items"].as_array().unwrap().iter().find(|e| e["event"] == "user.created").unwrap();
    assert_eq!(by_cli["actor_kind"], "cli");
    let login_entry =
        audit["items"].as_array().unwrap().iter().find(|e| e["event"] == "auth.login.succeeded").unwrap();
    assert_eq!(login_entry["source_ip"], "127.0.0.1");

    // The API key from the CLI works.
    let me: Value = client
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(&api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["kind"], "api_key");

    // Ctrl-C stops the server and its PostgreSQL cleanly.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "sivo serve did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    assert!(!data.join("pg").join("postmaster.pid").exists(), "PostgreSQL left running");

    // With the server stopped, admin commands start the embedded cluster themselves.
    let o = sivo(&data, &["tenant", "list"], None);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("acme"));
    assert!(!data.join("pg").join("postmaster.pid").exists(), "the temporary cluster was not stopped");
}

#[test]
fn missing_postgres_binaries_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(SIVO)
        .args(["serve", "--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("SIVO_PG_BINDIR", dir.path().join("no-postgres-here"))
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("sudo apt-get install -y postgresql"), "{err}");
    assert!(err.contains("DATABASE_URL"), "{err}");
}

#[test]
fn config_check_layers_and_redacts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sivo.toml");
    std::fs::write(&file, "http_addr = \"127.0.0.1:9999\"\n[auth]\nlockout_threshold = 7\n").unwrap();
    let o = Command::new(SIVO)
        .args(["config", "check", "--config"])
        .arg(&file)
        .env("SIVO_AUTH__LOCKOUT_THRESHOLD", "9")
        .env("DATABASE_URL", "postgres://owner:s3cret-pass@db.example:5432/sivo")
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let text = stdout(&o);
    assert!(text.contains("http_addr = \"127.0.0.1:9999\""), "file layer: {text}");
    assert!(text.contains("lockout_threshold = 9"), "env beats file: {text}");
    assert!(text.contains("url = \"[redacted]\""), "{text}");
    assert!(!text.contains("s3cret-pass"), "secret leaked: {text}");

    let bad = Command::new(SIVO)
        .args(["config", "check"])
        .env("SIVO_AUTH__LOCKOUT_THRESHOLD", "0")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("auth.lockout_threshold must be at least 1"));
    // A SIVO_* variable naming no section belongs to someone else: warn and go on. A typo inside
    // a known section is an error, and so is an unknown key in the file.
    let other = Command::new(SIVO)
        .args(["config", "check"])
        .env("SIVO_SOMETHING_ELSE", "1")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(other.status.success(), "{other:?}");
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("ignoring environment variable SIVO_SOMETHING_ELSE")
    );
    let typo = Command::new(SIVO)
        .args(["config", "check"])
        .env("SIVO_AUTH__LOCKOUT_TRESHOLD", "3")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!typo.status.success(), "a typo inside a section is an error");
    assert!(String::from_utf8_lossy(&typo.stderr).contains("lockout_treshold"), "{typo:?}");
    let file = dir.path().join("typo.toml");
    std::fs::write(&file, "htp_addr = \"127.0.0.1:1\"\n").unwrap();
    let typo = Command::new(SIVO)
        .args(["config", "check", "--config"])
        .arg(&file)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!typo.status.success(), "unknown keys in the file are errors");
}

/// With `DATABASE_URL`, sivo uses that server: migrations as the owner role, the app as
/// `sivo_app` (a separate login via `SIVO_DATABASE__APP_URL`, or `SET ROLE` without it).
#[tokio::test]
async fn external_database_url_is_used_instead_of_the_embedded_cluster() {
    use sqlx::{ConnectOptions as _, Connection as _};
    let pg_dir = tempfile::tempdir().unwrap();
    let pg = db::embedded::EmbeddedPostgres::start(&db::embedded::EmbeddedConfig {
        data_dir: pg_dir.path().join("external"),
        unsafe_fast: true,
    })
    .await
    .unwrap();
    let mut admin = pg.superuser_options("postgres").connect().await.unwrap();
    for sql in ["alter role sivo_owner login", "alter role sivo_app login", "grant sivo_app to sivo_owner"] {
        sqlx::query(sql).execute(&mut admin).await.unwrap();
    }
    admin.close().await.unwrap();
    let socket = pg.layout().socket_dir.display().to_string();
    let owner_url = format!("postgres://sivo_owner@localhost:5432/sivo?host={socket}");
    let app_url = format!("postgres://sivo_app@localhost:5432/sivo?host={socket}");

    let data = tempfile::tempdir().unwrap();
    let run = |args: &[&str], app: bool| {
        let mut cmd = Command::new(SIVO);
        cmd.args(args).arg("--data-dir").arg(data.path()).env("DATABASE_URL", &owner_url);
        if app {
            cmd.env("SIVO_DATABASE__APP_URL", &app_url);
        }
        cmd.output().unwrap()
    };
    let o = run(&["migrate"], false);
    assert!(o.status.success(), "{o:?}");
    // Without app_url the CLI connects as the owner and switches to sivo_app.
    let o = run(&["tenant", "create", "--slug", "extco", "--name", "External"], false);
    assert!(o.status.success(), "{o:?}");
    assert!(!data.path().join("pg").exists(), "no embedded cluster may be created");

    let port = free_port();
    let child = Command::new(SIVO)
        .args(["serve", "--http-addr", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data.path())
        .env("DATABASE_URL", &owner_url)
        .env("SIVO_DATABASE__APP_URL", &app_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Server { child };
    let client = reqwest::Client::new();
    wait_ready(&client, &format!("http://127.0.0.1:{port}")).await;
    assert!(!data.path().join("pg").exists(), "no embedded cluster may be created");

    // The tenant landed in the external database, and the app really is sivo_app there.
    let mut owner = pg.superuser_options("sivo").connect().await.unwrap();
    let slugs: Vec<String> =
        sqlx::query_scalar("select slug from tenants").fetch_all(&mut owner).await.unwrap();
    assert_eq!(slugs, vec!["extco"]);
    let app_sessions: i64 = sqlx::query_scalar(
        "select count(*) from pg_stat_activity where usename = 'sivo_app' and datname = 'sivo'",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert!(app_sessions >= 1, "the server connects as sivo_app");
    owner.close().await.unwrap();
    drop(_server);
    pg.stop().await.unwrap();
}
