//! SIP through the real `sivo serve` binary: `--sip-addr`, OPTIONS answered, an agent fetches
//! SIP credentials over HTTP and sipp registers with them (the API then shows the agent green),
//! a trunk created over HTTP gates INVITEs by source address at once (NOTIFY), and SIGTERM
//! stops everything cleanly.

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

fn free_port() -> u16 {
    // A port free for both TCP and UDP.
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn get(client: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    let r = client.get(url).bearer_auth(token).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn post(client: &reqwest::Client, url: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = client.post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn scenario(name: &str, final_status: u16, dir: &Path) -> String {
    let text =
        std::fs::read_to_string(format!("{}/../telephony/tests/sipp/{name}", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .replace("FINAL", &final_status.to_string());
    let path = dir.join(format!("{final_status}-{name}"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

async fn sipp(args: Vec<String>, dir: &Path) -> bool {
    let dir = dir.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("sipp").args(&args).arg("-nostdin").current_dir(dir).output()
    })
    .await
    .unwrap()
    .expect("sipp (Debian package sip-tester) must be installed");
    out.status.success()
}

fn free_udp(ip: &str) -> String {
    std::net::UdpSocket::bind((ip, 0)).unwrap().local_addr().unwrap().port().to_string()
}

#[tokio::test]
async fn sip_through_the_binary_register_and_trunk_gate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("var");
    let (http, sip) = (free_port(), free_port());
    let child = Command::new(SIVO)
        .args([
            "serve",
            "--http-addr",
            &format!("127.0.0.1:{http}"),
            "--sip-addr",
            &format!("127.0.0.1:{sip}"),
        ])
        .arg("--data-dir")
        .arg(&data)
        .env_remove("DATABASE_URL")
        .env("SIVO_SIP__BASE_DOMAIN", "sip.test")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let base = format!("http://127.0.0.1:{http}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "sivo serve did not become ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // OPTIONS over UDP is answered by the binary.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = udp.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:127.0.0.1:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKe2e1;rport\r\nMax-Forwards: 70\r\n\
         From: <sip:t@example.com>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: e2e-options\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    udp.send_to(options.as_bytes(), ("127.0.0.1", sip)).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    let (n, _) =
        tokio::time::timeout(Duration::from_secs(5), udp.recv_from(&mut buf)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200 OK"));

    // A tenant, an agent, an API key.
    assert!(sivo(&data, &["tenant", "create", "--slug", "acme", "--name", "Acme"], None).status.success());
    let password = "correct-horse-battery";
    let o = sivo(
        &data,
        &[
            "user",
            "create",
            "--tenant",
            "acme",
            "--email",
            "agent@acme.example",
            "--role",
            "agent",
            "--password-stdin",
        ],
        Some(&format!("{password}\n")),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = sivo(&data, &["api-key", "create", "--tenant", "acme", "--name", "ops"], None);
    let key = String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("key (shown once): ").map(str::to_owned))
        .unwrap();

    // The agent fetches SIP credentials and registers with sipp.
    let (status, login) = post(
        &client,
        &format!("{base}/api/v1/auth/login"),
        None,
        json!({"email": "agent@acme.example", "password": password}),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let token = login["token"].as_str().unwrap().to_owned();
    let me = get(&client, &format!("{base}/api/v1/me"), &token).await.1;
    let id = me["user"]["id"].as_str().unwrap().to_owned();
    let (status, creds) = get(&client, &format!("{base}/api/v1/agents/{id}/sip-credentials"), &token).await;
    assert_eq!(status, 200, "{creds}");
    assert_eq!(creds["domain"], "acme.sip.test");
    let (ext, sip_password) = (creds["extension"].as_str().unwrap(), creds["password"].as_str().unwrap());
    let (_, before) = get(&client, &format!("{base}/api/v1/agents/{id}"), &token).await;
    assert_eq!(before["registration"]["state"], "red");
    let work = dir.path();
    let register = vec![
        format!("127.0.0.1:{sip}"),
        "-sf".into(),
        scenario("register.xml", 200, work),
        "-key".into(),
        "domain".into(),
        "acme.sip.test".into(),
        "-key".into(),
        "expires".into(),
        "300".into(),
        "-s".into(),
        ext.into(),
        "-au".into(),
        ext.into(),
        "-ap".into(),
        sip_password.into(),
        "-i".into(),
        "127.0.0.1".into(),
        "-p".into(),
        free_udp("127.0.0.1"),
        "-m".into(),
        "1".into(),
        "-timeout".into(),
        "15s".into(),
        "-timeout_error".into(),
    ];
    assert!(sipp(register, work).await, "sipp registers with the API's credentials");
    let (_, after) = get(&client, &format!("{base}/api/v1/agents/{id}"), &token).await;
    assert_eq!(after["registration"]["state"], "green", "{after}");
    assert_eq!(after["registration"]["transport"], "udp");
    assert_eq!(after["registration"]["user_agent"], "sipp");

    // A trunk created over HTTP gates INVITEs by source address right away.
    let (status, trunk) = post(
        &client,
        &format!("{base}/api/v1/trunks"),
        Some(&key),
        json!({"name": "carrier", "host": "127.0.0.1", "port": 9, "allowed_cidrs": ["127.0.0.2"], "keepalive": false}),
    )
    .await;
    assert_eq!(status, 201, "{trunk}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let invite = |source: &str, final_status: u16| {
        vec![
            format!("127.0.0.1:{sip}"),
            "-sf".into(),
            scenario("invite.xml", final_status, work),
            "-s".into(),
            "+4930999999".into(),
            "-i".into(),
            source.into(),
            "-p".into(),
            free_udp(source),
            "-m".into(),
            "1".into(),
            "-timeout".into(),
            "15s".into(),
            "-timeout_error".into(),
        ]
    };
    assert!(sipp(invite("127.0.0.3", 403), work).await, "not a trunk address: 403");
    assert!(sipp(invite("127.0.0.2", 404), work).await, "trunk address, unknown DID: 404");

    // SIGTERM: a clean stop.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = server.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "sivo did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status:?}");
}
