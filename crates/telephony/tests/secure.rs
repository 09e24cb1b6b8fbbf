//! SIP over TLS and over WebSocket (RFC 7118), plain and secure: OPTIONS answered on each,
//! the `sip` subprotocol required, a digest REGISTER over WSS bound to its connection (and
//! gone when the connection closes), and a real UA, baresip, registering over UDP and TLS.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::{Role, TenantId, UserId};
use futures_util::{SinkExt as _, StreamExt as _};
use sip::{Frame, Framer, Message, Response};
use telephony::{SipConfig, Telephony, TlsIdentity};
use test_support::TestDb;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use uuid::Uuid;

const DOMAIN: &str = "acme.sip.test";
const PASSWORD: &str = "s3cret-sip-pass";

struct Setup {
    db: TestDb,
    server: Telephony,
    tenant: TenantId,
    agent: UserId,
    extension: String,
    ca_pem: String,
    connector: tokio_rustls::TlsConnector,
}

/// A self-signed certificate for the tenant domain and the loopback address.
fn identity() -> (TlsIdentity, String) {
    let mut params = rcgen::CertificateParams::new(vec![DOMAIN.to_owned(), "localhost".to_owned()]).unwrap();
    params.subject_alt_names.push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let pem = cert.pem();
    (TlsIdentity { cert_chain_pem: pem.clone().into_bytes(), key_pem: key.serialize_pem().into_bytes() }, pem)
}

async fn setup() -> Setup {
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
    let (identity, ca_pem) = identity();
    let any = "127.0.0.1:0".parse().ok();
    let config = SipConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        base_domain: "sip.test".into(),
        tls_identity: Some(identity),
        tls_addr: any,
        ws_addr: any,
        wss_addr: any,
        ..SipConfig::default()
    };
    let server = Telephony::start(config, db.db.clone(), vault).await.unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let client =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    Setup { db, server, tenant, agent, extension: account.extension, ca_pem, connector }
}

use rustls::pki_types::pem::PemObject as _;

fn options(transport: &str, call_id: &str) -> String {
    format!(
        "OPTIONS sip:probe@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/{transport} df7jal23ls0d.invalid;branch=z9hG4bK{call_id};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:t@{DOMAIN}>;tag=1\r\nTo: <sip:probe@{DOMAIN}>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

fn register(transport: &str, call_id: &str, cseq: u32, ext: &str, auth: Option<String>) -> String {
    let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/{transport} df7jal23ls0d.invalid;branch=z9hG4bK{call_id}{cseq};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{ext}@{DOMAIN}>;tag=1\r\nTo: <sip:{ext}@{DOMAIN}>\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\nContact: <sip:r8a2k1@df7jal23ls0d.invalid;transport=ws>\r\nExpires: 300\r\n\
         User-Agent: JsSIP 3.10\r\n{auth}Content-Length: 0\r\n\r\n"
    )
}

fn response(bytes: &[u8]) -> Response {
    match sip::parse_datagram(bytes).unwrap() {
        Message::Response(r) => r,
        Message::Request(r) => panic!("request {r:?}"),
    }
}

#[tokio::test]
async fn options_over_tls_ws_and_wss_are_answered() {
    let s = setup().await;

    // TLS: a stream like TCP.
    let tcp = TcpStream::connect(s.server.tls_addr().unwrap()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(DOMAIN).unwrap();
    let mut tls = s.connector.connect(name.clone(), tcp).await.unwrap();
    tls.write_all(options("TLS", "tls-1").as_bytes()).await.unwrap();
    let mut framer = Framer::default();
    let mut buf = vec![0u8; 65_535];
    let r = loop {
        let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "tls connection closed");
        framer.push(&buf[..n]);
        if let Some(Frame::Message(Message::Response(r))) = framer.next_frame().unwrap() {
            break r;
        }
    };
    assert_eq!(r.status.as_u16(), 200);

    // WS: one SIP message per WebSocket message, with the sip subprotocol.
    let url = format!("ws://{}", s.server.ws_addr().unwrap());
    let mut request = url.as_str().into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", "sip".parse().unwrap());
    let tcp = TcpStream::connect(s.server.ws_addr().unwrap()).await.unwrap();
    let (mut ws, answer) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
    assert_eq!(answer.headers().get("sec-websocket-protocol").unwrap(), "sip");
    ws.send(WsMessage::Text(options("WS", "ws-1").into())).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(response(&reply.into_data()).status.as_u16(), 200);
    // Without the subprotocol the handshake is refused (RFC 7118 §4.1).
    let tcp = TcpStream::connect(s.server.ws_addr().unwrap()).await.unwrap();
    let refused = tokio_tungstenite::client_async(url.as_str(), tcp).await;
    assert!(refused.is_err());

    // WSS: the same over TLS.
    let tcp = TcpStream::connect(s.server.wss_addr().unwrap()).await.unwrap();
    let tls = s.connector.connect(name, tcp).await.unwrap();
    let mut request = format!("wss://{DOMAIN}/").into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", "sip".parse().unwrap());
    let (mut wss, _) = tokio_tungstenite::client_async(request, tls).await.unwrap();
    wss.send(WsMessage::Text(options("WSS", "wss-1").into())).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), wss.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(response(&reply.into_data()).status.as_u16(), 200);
}

async fn bindings(s: &Setup) -> Vec<db::sip::BindingRow> {
    let mut tx = s.db.db.tenant_tx(s.tenant).await.unwrap();
    let rows = db::sip::bindings(&mut tx, s.agent, Utc::now()).await.unwrap();
    tx.commit().await.unwrap();
    rows
}

#[tokio::test]
async fn register_over_wss_is_bound_to_its_connection() {
    let s = setup().await;
    let tcp = TcpStream::connect(s.server.wss_addr().unwrap()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(DOMAIN).unwrap();
    let tls = s.connector.connect(name, tcp).await.unwrap();
    let mut request = format!("wss://{DOMAIN}/").into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", "sip".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(request, tls).await.unwrap();
    let ext = s.extension.clone();
    ws.send(WsMessage::Text(register("WSS", "wssreg", 1, &ext, None).into())).await.unwrap();
    let challenge = response(&ws.next().await.unwrap().unwrap().into_data());
    assert_eq!(challenge.status.as_u16(), 401);
    let challenge = sip::auth::DigestClient::select_challenge(&challenge).unwrap();
    let mut client = sip::auth::DigestClient::new(ext.clone(), PASSWORD);
    let credentials =
        client.authorize(&challenge, &sip::Method::Register, &format!("sip:{DOMAIN}"), b"", "c1");
    ws.send(WsMessage::Text(register("WSS", "wssreg", 2, &ext, Some(credentials.to_string())).into()))
        .await
        .unwrap();
    let ok = response(&ws.next().await.unwrap().unwrap().into_data());
    assert_eq!(ok.status.as_u16(), 200, "{ok:?}");
    let rows = bindings(&s).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].transport, "wss");
    assert!(rows[0].connection_id.is_some());
    assert_eq!(rows[0].user_agent.as_deref(), Some("JsSIP 3.10"));

    // The browser goes away: the binding cannot be reached any more and is removed.
    drop(ws);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !bindings(&s).await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "binding outlived its connection");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// baresip's account line and config for one transport.
fn baresip_dir(s: &Setup, transport: &str, server: std::net::SocketAddr) -> std::path::PathBuf {
    let dir = common::work_dir().join(format!("baresip-{transport}-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &s.ca_pem).unwrap();
    let port = common::free_udp_port("127.0.0.1");
    std::fs::write(
        dir.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{port}\nsip_cafile {}\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule account.so\n",
            ca.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("accounts"),
        format!(
            "<sip:{ext}@{DOMAIN};transport={transport}>;auth_pass={PASSWORD};outbound=\"sip:{server};transport={transport}\";regint=300;answermode=manual\n",
            ext = s.extension,
        ),
    )
    .unwrap();
    dir
}

async fn baresip_registers(s: &Setup, transport: &str, server: std::net::SocketAddr) {
    let dir = baresip_dir(s, transport, server);
    let log = std::fs::File::create(dir.join("baresip.log")).unwrap();
    let mut child = std::process::Command::new("baresip")
        .args(["-f", &dir.display().to_string(), "-t", "20", "-s"])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("baresip (Debian package baresip-core) must be installed");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let found = loop {
        let rows = bindings(s).await;
        if let Some(b) = rows.into_iter().find(|b| b.transport == transport) {
            break Some(b);
        }
        if tokio::time::Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    let binding = found.unwrap_or_else(|| {
        let log = std::fs::read_to_string(dir.join("baresip.log")).unwrap_or_default();
        panic!("baresip did not register over {transport}; its log:\n{log}")
    });
    assert!(binding.user_agent.as_deref().unwrap_or_default().contains("baresip"), "{binding:?}");
}

#[tokio::test]
async fn baresip_registers_over_udp_and_tls() {
    let s = setup().await;
    baresip_registers(&s, "udp", s.server.udp_addr()).await;
    baresip_registers(&s, "tls", s.server.tls_addr().unwrap()).await;
}
