//! The registrar against real peers: sipp registers with Digest auth (success, wrong password,
//! unknown user), bindings land in PostgreSQL, unknown users and wrong passwords are answered
//! identically, 423 for short expiries, un-registration, and temporary bans after repeated
//! failures (audit-logged). Refreshes answered from memory keep the stored expiry honest, a new
//! SIP password takes effect at once, and every change of an agent's bindings (not a refresh) is
//! announced on `db::outbox::CHANGES_CHANNEL`: new, un-registered, expired (the sweep), and
//! carried by a TCP connection that closed.

// sipp's own report is printed when a scenario fails, to explain the failure.
#![allow(clippy::print_stderr)]
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use domain::{Role, TenantId, UserId};
use sip::{Message, Response};
use telephony::{GuardConfig, RegistrarConfig, SipConfig, Telephony};
use test_support::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use uuid::Uuid;

const DOMAIN: &str = "acme.sip.test";
const PASSWORD: &str = "s3cret-sip-pass";

struct Setup {
    db: TestDb,
    server: Telephony,
    tenant: TenantId,
    agent: UserId,
    extension: String,
}

async fn setup(guard: GuardConfig) -> Setup {
    setup_with(RegistrarConfig { guard, ..RegistrarConfig::default() }).await
}

async fn setup_with(registrar: RegistrarConfig) -> Setup {
    let db = TestDb::new().await;
    let vault = vault::Vault::from_bytes(&[7u8; 32]);
    let now = Utc::now();
    let tenant = TenantId(Uuid::new_v4());
    let mut tx = db.db.platform_tx().await.unwrap();
    db::tenants::create(
        &mut tx,
        db::tenants::NewTenant { id: tenant, slug: "acme", name: "Acme", plan: "free", now },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let agent = UserId(Uuid::new_v4());
    let mut tx = db.db.tenant_tx(tenant).await.unwrap();
    db::users::create(
        &mut tx,
        db::users::NewUser {
            id: agent,
            tenant_id: Some(tenant),
            email: "agent@acme.example",
            display_name: "Agent",
            role: Role::Agent,
            password_hash: "x",
            now,
        },
    )
    .await
    .unwrap();
    let enc = vault.encrypt(PASSWORD.as_bytes(), &format!("sip-password:{agent}"));
    let account = db::sip::ensure_account(&mut tx, tenant, agent, &enc, now).await.unwrap();
    tx.commit().await.unwrap();
    let config = SipConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        base_domain: "sip.test".into(),
        node_id: "test-node".into(),
        registrar,
        ..SipConfig::default()
    };
    let server = Telephony::start(config, db.db.clone(), vault).await.unwrap();
    Setup { db, server, tenant, agent, extension: account.extension }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs the REGISTER scenario once; true if sipp saw the expected final response.
async fn sipp_register(server: SocketAddr, user: &str, password: &str, final_status: u16) -> bool {
    let scenario = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp/register.xml"))
        .unwrap()
        .replace("FINAL", &final_status.to_string());
    let dir = tempfile_dir();
    let path = dir.join(format!("register-{final_status}-{user}.xml"));
    std::fs::write(&path, scenario).unwrap();
    let port = free_udp_port();
    let args = [
        server.to_string(),
        "-sf".into(),
        path.display().to_string(),
        "-key".into(),
        "domain".into(),
        DOMAIN.into(),
        "-key".into(),
        "expires".into(),
        "300".into(),
        "-s".into(),
        user.into(),
        "-au".into(),
        user.into(),
        "-ap".into(),
        password.into(),
        "-i".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-m".into(),
        "1".into(),
        "-timeout".into(),
        "15s".into(),
        "-timeout_error".into(),
        "-nostdin".into(),
    ];
    let output =
        tokio::task::spawn_blocking(move || Command::new("sipp").args(&args).current_dir(&dir).output())
            .await
            .unwrap()
            .expect("sipp (Debian package sip-tester) must be installed");
    if !output.status.success() {
        eprintln!("sipp stdout: {}", String::from_utf8_lossy(&output.stdout));
        eprintln!("sipp stderr: {}", String::from_utf8_lossy(&output.stderr));
    }
    output.status.success()
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sivo-sipp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn live_bindings(s: &Setup) -> Vec<db::sip::BindingRow> {
    let mut tx = s.db.db.tenant_tx(s.tenant).await.unwrap();
    let rows = db::sip::bindings(&mut tx, s.agent, Utc::now()).await.unwrap();
    tx.commit().await.unwrap();
    rows
}

#[tokio::test]
async fn sipp_registers_with_digest_and_wrong_password_and_unknown_user_are_refused() {
    let s = setup(GuardConfig::default()).await;
    assert!(
        sipp_register(s.server.udp_addr(), &s.extension, PASSWORD, 200).await,
        "registration should succeed"
    );
    let bindings = live_bindings(&s).await;
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].transport, "udp");
    assert_eq!(bindings[0].node_id, "test-node");
    assert_eq!(bindings[0].user_agent.as_deref(), Some("sipp"));
    assert!(bindings[0].expires_at > Utc::now() + chrono::Duration::seconds(250));

    assert!(sipp_register(s.server.udp_addr(), &s.extension, "wrong-password", 401).await, "wrong password");
    assert!(sipp_register(s.server.udp_addr(), "4242", PASSWORD, 401).await, "unknown user");
    assert_eq!(live_bindings(&s).await.len(), 1, "failed attempts add no binding");
}

enum Socket {
    Udp(UdpSocket),
    Tcp(TcpStream),
}

/// A raw REGISTER client for the cases sipp scenarios do not express well.
struct Client {
    socket: Socket,
    server: SocketAddr,
    call_id: String,
    cseq: u32,
    user_agent: Option<&'static str>,
}

impl Client {
    async fn new(server: SocketAddr) -> Self {
        let socket = Socket::Udp(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        Self { socket, server, call_id: format!("reg-{}", Uuid::new_v4()), cseq: 0, user_agent: None }
    }

    async fn tcp(server: SocketAddr) -> Self {
        let socket = Socket::Tcp(TcpStream::connect(server).await.unwrap());
        Self { socket, server, call_id: format!("reg-{}", Uuid::new_v4()), cseq: 0, user_agent: None }
    }

    async fn register(
        &mut self,
        user: &str,
        contact: Option<&str>,
        expires: Option<u32>,
        password: Option<&str>,
    ) -> Response {
        let first = self.send(user, contact, expires, None).await;
        let Some(password) = password else { return first };
        if first.status.as_u16() != 401 {
            return first;
        }
        let challenge = sip::auth::DigestClient::select_challenge(&first).unwrap();
        let mut client = sip::auth::DigestClient::new(user, password);
        let uri = format!("sip:{DOMAIN}");
        let credentials = client.authorize(&challenge, &sip::Method::Register, &uri, b"", "cn0nce");
        self.send(user, contact, expires, Some(credentials.to_string())).await
    }

    async fn send(
        &mut self,
        user: &str,
        contact: Option<&str>,
        expires: Option<u32>,
        auth: Option<String>,
    ) -> Response {
        self.cseq += 1;
        let (transport, local) = match &self.socket {
            Socket::Udp(s) => ("UDP", s.local_addr().unwrap()),
            Socket::Tcp(s) => ("TCP", s.local_addr().unwrap()),
        };
        let mut text = format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch=z9hG4bK{}\r\nMax-Forwards: 70\r\n\
             From: <sip:{user}@{DOMAIN}>;tag=ft\r\nTo: <sip:{user}@{DOMAIN}>\r\nCall-ID: {}\r\nCSeq: {} REGISTER\r\n",
            Uuid::new_v4().simple(),
            self.call_id,
            self.cseq
        );
        if let Some(ua) = self.user_agent {
            text.push_str(&format!("User-Agent: {ua}\r\n"));
        }
        if let Some(c) = contact {
            text.push_str(&format!("Contact: {c}\r\n"));
        }
        if let Some(e) = expires {
            text.push_str(&format!("Expires: {e}\r\n"));
        }
        if let Some(a) = auth {
            text.push_str(&format!("Authorization: {a}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        let bytes = match &mut self.socket {
            Socket::Udp(socket) => {
                socket.send_to(text.as_bytes(), self.server).await.unwrap();
                let mut buf = vec![0u8; 65_535];
                let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
                    .await
                    .unwrap()
                    .unwrap();
                buf.truncate(n);
                buf
            }
            Socket::Tcp(stream) => {
                stream.write_all(text.as_bytes()).await.unwrap();
                // The registrar's answers have no body: one message ends at the blank line.
                let mut buf = Vec::new();
                while !buf.ends_with(b"\r\n\r\n") {
                    let mut byte = [0u8; 1];
                    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
                        .await
                        .unwrap()
                        .unwrap();
                    assert_eq!(n, 1, "connection closed");
                    buf.push(byte[0]);
                }
                buf
            }
        };
        match sip::parse_datagram(&bytes).unwrap() {
            Message::Response(r) => r,
            Message::Request(_) => panic!("request from the registrar"),
        }
    }
}

/// The shape of a response with the per-request values (tags, nonce) blanked.
fn shape(r: &Response) -> Vec<String> {
    let mut lines = vec![format!("{} {}", r.status.as_u16(), r.reason)];
    for h in &r.headers {
        let value = match h.name {
            sip::HeaderName::To
            | sip::HeaderName::From
            | sip::HeaderName::Via
            | sip::HeaderName::CallId
            | sip::HeaderName::CSeq => String::new(),
            sip::HeaderName::WwwAuthenticate => {
                let c: sip::auth::Challenge = h.value.parse().unwrap();
                format!("{} {} {:?} {}", c.realm, c.algorithm, c.qop, c.stale)
            }
            _ => h.value.clone(),
        };
        lines.push(format!("{}: {value}", h.name.as_str()));
    }
    lines
}

#[tokio::test]
async fn bindings_expiry_bounds_unregister_and_indistinguishable_failures() {
    let s = setup(GuardConfig::default()).await;
    let ext = s.extension.clone();
    let addr = s.server.udp_addr();

    // Unknown user and wrong password: the same answer, header for header.
    let wrong =
        Client::new(addr).await.register(&ext, Some("<sip:a@127.0.0.1:5999>"), Some(300), Some("nope")).await;
    let unknown = Client::new(addr)
        .await
        .register("9999", Some("<sip:a@127.0.0.1:5999>"), Some(300), Some("nope"))
        .await;
    assert_eq!(wrong.status.as_u16(), 401);
    assert_eq!(shape(&wrong), shape(&unknown));
    // Same for an unknown tenant domain behind the same base domain.

    // 423 below the minimum, with Min-Expires.
    let mut phone = Client::new(addr).await;
    let r = phone.register(&ext, Some("<sip:desk@127.0.0.1:5999>"), Some(10), Some(PASSWORD)).await;
    assert_eq!(r.status.as_u16(), 423);
    assert_eq!(r.headers.get(&sip::HeaderName::MinExpires), Some("60"));

    // Two devices; the answer lists both; long expiries are capped.
    let r = phone.register(&ext, Some("<sip:desk@127.0.0.1:5999>"), Some(100_000), Some(PASSWORD)).await;
    assert_eq!(r.status.as_u16(), 200, "{r:?}");
    let mut laptop = Client::new(addr).await;
    let r =
        laptop.register(&ext, Some("<sip:laptop@127.0.0.1:6000>;expires=120"), None, Some(PASSWORD)).await;
    assert_eq!(r.status.as_u16(), 200);
    let contacts: Vec<&str> = r.headers.get_all(&sip::HeaderName::Contact).collect();
    assert_eq!(contacts.len(), 2, "{contacts:?}");
    let desk = contacts.iter().find(|c| c.contains("desk")).unwrap();
    let left: u32 = desk.rsplit("expires=").next().unwrap().parse().unwrap();
    assert!((3590..=3600).contains(&left), "capped at max_expires: {desk}");
    assert_eq!(live_bindings(&s).await.len(), 2);

    // A query (no Contact) lists the bindings and changes nothing.
    let r = laptop.register(&ext, None, None, Some(PASSWORD)).await;
    assert_eq!(r.headers.get_all(&sip::HeaderName::Contact).count(), 2);

    // Un-register one device, then all.
    let r = laptop.register(&ext, Some("<sip:laptop@127.0.0.1:6000>"), Some(0), Some(PASSWORD)).await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(live_bindings(&s).await.len(), 1);
    let r = phone.register(&ext, Some("*"), Some(0), Some(PASSWORD)).await;
    assert_eq!(r.status.as_u16(), 200);
    assert!(live_bindings(&s).await.is_empty());
}

#[tokio::test]
async fn sha256_digest_when_configured() {
    let algorithms = vec![sip::auth::Algorithm::Sha256, sip::auth::Algorithm::Md5];
    let s = setup_with(RegistrarConfig { algorithms, ..RegistrarConfig::default() }).await;
    let mut client = Client::new(s.server.udp_addr()).await;
    let challenge = client.send(&s.extension, Some("<sip:a@127.0.0.1:5999>"), Some(300), None).await;
    let offered: Vec<String> = challenge
        .headers
        .get_all(&sip::HeaderName::WwwAuthenticate)
        .map(|v| v.parse::<sip::auth::Challenge>().unwrap().algorithm.to_string())
        .collect();
    assert_eq!(offered, ["SHA-256", "MD5"]);
    // The client picks the strongest challenge (SHA-256) and is let in.
    let r = client.register(&s.extension, Some("<sip:a@127.0.0.1:5999>"), Some(300), Some(PASSWORD)).await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(live_bindings(&s).await.len(), 1);
}

#[tokio::test]
async fn repeated_failures_ban_the_account_and_the_source_and_are_audited() {
    let guard = GuardConfig { source_failures: 6, account_failures: 3, ..GuardConfig::default() };
    let s = setup(guard).await;
    let ext = s.extension.clone();
    let addr = s.server.udp_addr();
    for _ in 0..3 {
        let r = Client::new(addr)
            .await
            .register(&ext, Some("<sip:x@127.0.0.1:5999>"), Some(300), Some("bad"))
            .await;
        assert_eq!(r.status.as_u16(), 401);
    }
    // The account is banned now: even the right password is refused, from anywhere.
    let r = Client::new(addr)
        .await
        .register(&ext, Some("<sip:x@127.0.0.1:5999>"), Some(300), Some(PASSWORD))
        .await;
    assert_eq!(r.status.as_u16(), 403);
    // Guessing other extensions from the same address bans the address too.
    for i in 0..3 {
        let user = format!("77{i}");
        let r = Client::new(addr)
            .await
            .register(&user, Some("<sip:x@127.0.0.1:5999>"), Some(300), Some("bad"))
            .await;
        assert_eq!(r.status.as_u16(), 401);
    }
    let r = Client::new(addr).await.register("1234", Some("<sip:x@127.0.0.1:5999>"), Some(300), None).await;
    assert_eq!(r.status.as_u16(), 403, "source ban");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut tx = s.db.db.tenant_tx(s.tenant).await.unwrap();
    let tenant_actions: Vec<String> = sqlx::query_scalar("select action from audit_log where tenant_id = $1")
        .bind(s.tenant.as_uuid())
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(tenant_actions.contains(&"sip.account_banned".to_owned()), "{tenant_actions:?}");
    let mut tx = s.db.db.platform_tx().await.unwrap();
    let platform: Vec<String> = sqlx::query_scalar("select action from audit_log where tenant_id is null")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(platform.contains(&"sip.source_banned".to_owned()), "{platform:?}");
}

/// Hears `db::outbox::CHANGES_CHANNEL`, as the web app does.
async fn changes(s: &Setup) -> sqlx::postgres::PgListener {
    let mut listener = sqlx::postgres::PgListener::connect_with(s.db.db.pool()).await.unwrap();
    listener.listen(db::outbox::CHANGES_CHANNEL).await.unwrap();
    listener
}

/// The next announcement, which must be this agent's registration.
async fn expect_change(listener: &mut sqlx::postgres::PgListener, s: &Setup, why: &str) {
    let n = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .unwrap_or_else(|_| panic!("no announcement: {why}"))
        .unwrap();
    assert_eq!(n.payload(), format!("{}:agent.registration:{}", s.tenant.as_uuid(), s.agent.0), "{why}");
}

async fn expect_no_change(listener: &mut sqlx::postgres::PgListener, why: &str) {
    let n = tokio::time::timeout(Duration::from_millis(500), listener.recv()).await;
    assert!(n.is_err(), "{why}: {n:?}");
}

/// Every binding in the database right now, expired or not.
async fn stored_bindings(s: &Setup) -> Vec<(String, chrono::DateTime<Utc>, i64)> {
    let mut tx = s.db.db.tenant_tx(s.tenant).await.unwrap();
    let rows = sqlx::query_as("select contact, expires_at, cseq from sip_registrations where user_id = $1")
        .bind(s.agent.0)
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    rows
}

/// The `expires` the 200 grants the (single) contact.
fn granted(r: &Response) -> i64 {
    let contact = r.headers.get(&sip::HeaderName::Contact).unwrap();
    contact.rsplit("expires=").next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn refreshes_from_memory_keep_the_stored_expiry_honest_and_only_changes_are_announced() {
    let s = setup(GuardConfig::default()).await;
    let mut listener = changes(&s).await;
    let ext = s.extension.clone();
    let mut phone = Client::new(s.server.udp_addr()).await;
    let contact = "<sip:desk@127.0.0.1:5999>";

    let r = phone.register(&ext, Some(contact), Some(600), Some(PASSWORD)).await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(granted(&r), 600);
    expect_change(&mut listener, &s, "a new binding").await;

    // Refreshes: soon one is answered from memory (the stored CSeq stays behind the phone's, the
    // registrar listens for changes once it is up). Whatever answers, the row never expires
    // before what the phone was granted, and never outlives what it asked for.
    let mut from_memory = 0;
    for _ in 0..100 {
        let before = Utc::now();
        let r = phone.register(&ext, Some(contact), Some(600), Some(PASSWORD)).await;
        let after = Utc::now();
        assert_eq!(r.status.as_u16(), 200);
        let rows = stored_bindings(&s).await;
        assert_eq!(rows.len(), 1);
        let (_, expires_at, cseq) = rows[0];
        assert!(expires_at >= before + chrono::Duration::seconds(granted(&r)), "{expires_at} {r:?}");
        assert!(expires_at <= after + chrono::Duration::seconds(600));
        assert!((540..=600).contains(&granted(&r)), "{r:?}");
        if cseq < i64::from(phone.cseq) {
            from_memory += 1;
            if from_memory == 3 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(from_memory, 3, "refreshes were answered from memory");
    expect_no_change(&mut listener, "refreshes are no change").await;

    // A shorter expiry is written at once: the row must not outlive the binding.
    let before = Utc::now();
    let r = phone.register(&ext, Some(contact), Some(120), Some(PASSWORD)).await;
    assert_eq!(granted(&r), 120);
    let (_, expires_at, cseq) = stored_bindings(&s).await[0];
    assert_eq!(cseq, i64::from(phone.cseq));
    assert!(expires_at <= Utc::now() + chrono::Duration::seconds(120));
    assert!(expires_at >= before + chrono::Duration::seconds(120));

    // Another User-Agent on the same contact is a change (the API shows it); it is written.
    phone.user_agent = Some("desk-phone/2.0");
    let r = phone.register(&ext, Some(contact), Some(120), Some(PASSWORD)).await;
    assert_eq!(r.status.as_u16(), 200);
    expect_change(&mut listener, &s, "a new user agent").await;

    // The API's view: registered until the stored expiry.
    let mut tx = s.db.db.tenant_tx(s.tenant).await.unwrap();
    let agent = db::sip::get_agent(&mut tx, s.agent, Utc::now()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(agent.registrations, 1);
    assert_eq!(agent.user_agent.as_deref(), Some("desk-phone/2.0"));

    // Un-registering removes the row at once and is announced.
    let r = phone.register(&ext, Some(contact), Some(0), Some(PASSWORD)).await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.headers.get_all(&sip::HeaderName::Contact).count(), 0);
    assert!(stored_bindings(&s).await.is_empty());
    expect_change(&mut listener, &s, "un-registered").await;
    // Registering again after that is a new binding, never a refresh from memory.
    let r = phone.register(&ext, Some(contact), Some(600), Some(PASSWORD)).await;
    assert_eq!(granted(&r), 600);
    assert_eq!(stored_bindings(&s).await.len(), 1);
    expect_change(&mut listener, &s, "registered again").await;
}

#[tokio::test]
async fn expired_bindings_are_swept_and_announced() {
    let s = setup_with(RegistrarConfig {
        min_expires: 1,
        sweep_interval: Duration::from_millis(200),
        ..RegistrarConfig::default()
    })
    .await;
    let mut listener = changes(&s).await;
    let mut phone = Client::new(s.server.udp_addr()).await;
    let r = phone.register(&s.extension, Some("<sip:desk@127.0.0.1:5999>"), Some(2), Some(PASSWORD)).await;
    assert_eq!(r.status.as_u16(), 200);
    expect_change(&mut listener, &s, "a new binding").await;
    // Nobody refreshes: the sweep deletes the binding after its expiry and says so.
    expect_change(&mut listener, &s, "expired").await;
    assert!(stored_bindings(&s).await.is_empty());
    assert!(live_bindings(&s).await.is_empty());
}

#[tokio::test]
async fn a_closed_tcp_connection_takes_its_bindings_along_and_is_announced() {
    let s = setup(GuardConfig::default()).await;
    let mut listener = changes(&s).await;
    let mut phone = Client::tcp(s.server.tcp_addr()).await;
    let r = phone
        .register(&s.extension, Some("<sip:desk@127.0.0.1:5999;transport=tcp>"), Some(600), Some(PASSWORD))
        .await;
    assert_eq!(r.status.as_u16(), 200);
    expect_change(&mut listener, &s, "a new binding").await;
    let rows = live_bindings(&s).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].transport, "tcp");
    assert!(rows[0].connection_id.is_some());
    drop(phone);
    expect_change(&mut listener, &s, "the connection closed").await;
    assert!(stored_bindings(&s).await.is_empty());
}

#[tokio::test]
async fn a_new_sip_password_takes_effect_at_once() {
    let s = setup(GuardConfig::default()).await;
    let ext = s.extension.clone();
    let contact = Some("<sip:desk@127.0.0.1:5999>");
    let mut phone = Client::new(s.server.udp_addr()).await;
    let r = phone.register(&ext, contact, Some(600), Some(PASSWORD)).await;
    assert_eq!(r.status.as_u16(), 200);

    // The API's rotation: a new password, encrypted, in a tenant transaction.
    let vault = vault::Vault::from_bytes(&[7u8; 32]);
    let new_password = "a-brand-new-secret";
    let enc = vault.encrypt(new_password.as_bytes(), &format!("sip-password:{}", s.agent));
    let mut tx = s.db.db.tenant_tx(s.tenant).await.unwrap();
    db::sip::set_password(&mut tx, s.agent, &enc, Utc::now()).await.unwrap();
    tx.commit().await.unwrap();

    // The new password works right away, though the account was cached with the old one.
    let r = phone.register(&ext, contact, Some(600), Some(new_password)).await;
    assert_eq!(r.status.as_u16(), 200, "{r:?}");
    // The old one is refused as soon as the change is heard (within the account cache's
    // few seconds in any case), even for a refresh of a binding it made.
    let mut refused = false;
    for _ in 0..100 {
        let r = phone.register(&ext, contact, Some(600), Some(PASSWORD)).await;
        if r.status.as_u16() == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the old password still works");
    let r = phone.register(&ext, contact, Some(600), Some(new_password)).await;
    assert_eq!(r.status.as_u16(), 200);
}
