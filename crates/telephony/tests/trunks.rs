//! SIP trunks against sipp: the OPTIONS keepalive follows a sipp UAS acting as the carrier
//! (OK, FAIL with a reason when it stops answering, OK again when it is back, each change
//! audit-logged); inbound INVITEs are gated by the packet's source address (127.0.0.2 is in
//! the trunk's CIDRs, 127.0.0.3 is not), unknown DIDs get 404, and the answers survive sipp
//! dropping packets (retransmissions).

mod common;

use std::time::Duration;

use chrono::Utc;
use domain::TenantId;
use telephony::{SipConfig, Telephony, TrunkConfig};
use test_support::TestDb;
use uuid::Uuid;

struct Setup {
    db: TestDb,
    server: Telephony,
    tenant: TenantId,
    trunk: Uuid,
}

async fn setup(carrier_port: u16, cidrs: &[&str]) -> Setup {
    setup_with(carrier_port, cidrs, None).await
}

/// With `register`: outbound registration as `trunkuser` with this password.
async fn setup_with(carrier_port: u16, cidrs: &[&str], register: Option<&str>) -> Setup {
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
    let trunk = Uuid::new_v4();
    let cidrs: Vec<String> = cidrs.iter().map(|c| (*c).to_owned()).collect();
    let mut tx = db.db.tenant_tx(tenant).await.unwrap();
    let password_enc = register.map(|p| vault.encrypt(p.as_bytes(), &format!("sip-trunk-password:{trunk}")));
    let fields = db::trunks::TrunkFields {
        name: "carrier",
        host: "127.0.0.1",
        port: i32::from(carrier_port),
        transport: "udp",
        allowed_cidrs: &cidrs,
        username: register.map(|_| "trunkuser"),
        password_enc: password_enc.as_deref(),
        register: register.is_some(),
        keepalive: true,
    };
    db::trunks::create_trunk(&mut tx, trunk, tenant, &fields, now).await.unwrap();
    let did = db::trunks::DidFields {
        number: "+4930123456",
        trunk_id: trunk,
        destination_type: "none",
        destination_id: None,
    };
    db::trunks::create_did(&mut tx, Uuid::new_v4(), tenant, &did, now).await.unwrap();
    tx.commit().await.unwrap();
    let config = SipConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        trunks: TrunkConfig {
            keepalive_interval: Duration::from_millis(500),
            keepalive_timeout: Duration::from_millis(1500),
            ..TrunkConfig::default()
        },
        ..SipConfig::default()
    };
    let server = Telephony::start(config, db.db.clone(), vault).await.unwrap();
    Setup { db, server, tenant, trunk }
}

async fn status(s: &Setup) -> (String, Option<String>) {
    let mut tx = s.db.db.tenant_tx(s.tenant).await.unwrap();
    let row = db::trunks::get_trunk(&mut tx, s.trunk).await.unwrap();
    tx.commit().await.unwrap();
    (row.status, row.status_reason)
}

async fn wait_status(s: &Setup, want: &str, within: Duration) -> (String, Option<String>) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let now = status(s).await;
        if now.0 == want || tokio::time::Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn carrier_args(port: u16) -> Vec<String> {
    let scenario = common::scenario("options_uas.xml", None);
    vec![
        "-sf".into(),
        scenario.display().to_string(),
        "-i".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-timeout".into(),
        "60s".into(),
    ]
}

#[tokio::test]
async fn keepalive_follows_the_carrier_down_and_back_up_and_audits_each_change() {
    let port = common::free_udp_port("127.0.0.1");
    let carrier = common::Background::start(&carrier_args(port));
    let s = setup(port, &["127.0.0.2/32"]).await;
    assert_eq!(wait_status(&s, "ok", Duration::from_secs(15)).await, ("ok".to_owned(), None));

    // The carrier stops answering: FAIL with the reason.
    drop(carrier);
    assert_eq!(
        wait_status(&s, "fail", Duration::from_secs(15)).await,
        ("fail".to_owned(), Some("timeout".to_owned()))
    );

    // It comes back: OK again by itself, well within 30 s.
    let started = std::time::Instant::now();
    let _carrier = common::Background::start(&carrier_args(port));
    assert_eq!(wait_status(&s, "ok", Duration::from_secs(30)).await.0, "ok");
    assert!(started.elapsed() < Duration::from_secs(30));

    let mut tx = s.db.db.tenant_tx(s.tenant).await.unwrap();
    let changes: Vec<serde_json::Value> = sqlx::query_scalar(
        "select after from audit_log where action = 'trunk.status_changed' and resource_id = $1 order by at, id",
    )
    .bind(s.trunk.to_string())
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let statuses: Vec<&str> = changes.iter().map(|c| c["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["ok", "fail", "ok"], "{changes:?}");
    assert_eq!(changes[1]["status_reason"], "timeout");
}

fn invite_args(server: std::net::SocketAddr, source: &str, number: &str, final_status: u16) -> Vec<String> {
    let scenario = common::scenario("invite.xml", Some(final_status));
    vec![
        server.to_string(),
        "-sf".into(),
        scenario.display().to_string(),
        "-s".into(),
        number.into(),
        "-i".into(),
        source.into(),
        "-p".into(),
        common::free_udp_port(source).to_string(),
        "-m".into(),
        "1".into(),
        "-timeout".into(),
        "20s".into(),
        "-timeout_error".into(),
    ]
}

#[tokio::test]
async fn invites_are_gated_by_source_address_and_did() {
    let s = setup(common::free_udp_port("127.0.0.1"), &["127.0.0.2/32", "2001:db8::/32"]).await;
    let addr = s.server.udp_addr();
    // Let the index load.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(common::run(invite_args(addr, "127.0.0.3", "+4930123456", 403)).await, "outside the CIDRs: 403");
    assert!(common::run(invite_args(addr, "127.0.0.2", "+4999999999", 404)).await, "unknown DID: 404");
    // A known DID: not routed yet (the calls work lands later), said plainly.
    assert!(common::run(invite_args(addr, "127.0.0.2", "4930123456", 480)).await, "known DID: 480");

    // Allowing 127.0.0.3 (as an IPv4-mapped IPv6 network) reaches every node through NOTIFY.
    let mut tx = s.db.db.tenant_tx(s.tenant).await.unwrap();
    let row = db::trunks::get_trunk(&mut tx, s.trunk).await.unwrap();
    let cidrs =
        vec!["127.0.0.2/32".to_owned(), telephony::normalize_cidr("::ffff:127.0.0.3").unwrap().to_string()];
    let fields = db::trunks::TrunkFields {
        name: &row.name,
        host: &row.host,
        port: row.port,
        transport: &row.transport,
        allowed_cidrs: &cidrs,
        username: None,
        password_enc: None,
        register: false,
        keepalive: false,
    };
    db::trunks::update_trunk(&mut tx, s.trunk, &fields, Utc::now()).await.unwrap();
    db::trunks::notify_changed(&mut tx, s.tenant).await.unwrap();
    tx.commit().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(common::run(invite_args(addr, "127.0.0.3", "+4999999999", 404)).await, "now allowed: 404");
}

#[tokio::test]
async fn answers_survive_packet_loss_through_retransmissions() {
    let s = setup(common::free_udp_port("127.0.0.1"), &["127.0.0.2/32"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut args = invite_args(s.server.udp_addr(), "127.0.0.2", "+4999999999", 404);
    // 20 calls, sipp dropping a quarter of the packets it sends and receives.
    let m = args.iter().position(|a| a == "-m").unwrap();
    args[m + 1] = "20".into();
    args.extend(["-r", "10", "-lost", "25"].map(String::from));
    let t = args.iter().position(|a| a == "-timeout").unwrap();
    args[t + 1] = "60s".into();
    assert!(common::run(args).await, "every call completes despite losses");
}

fn registrar_args(port: u16, password: &str) -> Vec<String> {
    let text =
        std::fs::read_to_string(format!("{}/tests/sipp/registrar_uas.xml", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .replace("PASSWORD", password);
    let path = common::work_dir().join(format!("registrar-{}.xml", Uuid::new_v4().simple()));
    std::fs::write(&path, text).unwrap();
    vec![
        "-sf".into(),
        path.display().to_string(),
        "-i".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-timeout".into(),
        "60s".into(),
    ]
}

#[tokio::test]
async fn outbound_registration_with_digest_and_bad_credentials_are_reported() {
    // The carrier knows "trunk-pass"; SIVO has it right: registered, then OPTIONS OK.
    let port = common::free_udp_port("127.0.0.1");
    let _carrier = common::Background::start(&registrar_args(port, "trunk-pass"));
    let s = setup_with(port, &["127.0.0.2/32"], Some("trunk-pass")).await;
    assert_eq!(wait_status(&s, "ok", Duration::from_secs(15)).await, ("ok".to_owned(), None));

    // A carrier expecting another password refuses the registration: FAIL with the reason.
    let port = common::free_udp_port("127.0.0.1");
    let _carrier = common::Background::start(&registrar_args(port, "other-pass"));
    let s = setup_with(port, &["127.0.0.2/32"], Some("trunk-pass")).await;
    let (status, reason) = wait_status(&s, "fail", Duration::from_secs(15)).await;
    assert_eq!(status, "fail");
    assert!(reason.as_deref().unwrap_or_default().starts_with("registration: 403"), "{reason:?}");
}
