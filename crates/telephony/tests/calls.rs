//! Calls end to end with real SIP peers: sipp as the carrier (127.0.0.2, inside the trunk's
//! Allowed CIDRs) calls a DID; sipp as the agent's phone registers through the real registrar
//! (Digest) and then answers, rings or refuses. Checked: the B2BUA's SIP answers, RTP relayed
//! both ways (packet counts per leg), DTMF relayed, the CDR and the outbox events.

mod common;

use std::time::Duration;

use chrono::Utc;
use domain::events::AgentStatus;
use domain::{Role, TenantId, UserId};
use serde_json::Value;
use telephony::{SipConfig, Telephony};
use test_support::TestDb;
use uuid::Uuid;

const DOMAIN: &str = "acme.sip.test";
const DID: &str = "+4930123456";
const PASSWORD: &str = "s3cret-sip-pass";

struct Setup {
    db: TestDb,
    server: Telephony,
    tenant: TenantId,
    queue: Uuid,
    did: Uuid,
}

struct Agent {
    id: UserId,
    extension: String,
}

async fn setup(ring_timeout_secs: i32) -> Setup {
    setup_with_trunk_port(ring_timeout_secs, 5060).await
}

/// The carrier listens on 127.0.0.2:`trunk_port` (for outbound calls).
async fn setup_with_trunk_port(ring_timeout_secs: i32, trunk_port: i32) -> Setup {
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
    let queue = Uuid::new_v4();
    let did = Uuid::new_v4();
    let mut tx = db.db.tenant_tx(tenant).await.unwrap();
    let cidrs = vec!["127.0.0.2/32".to_owned()];
    let fields = db::trunks::TrunkFields {
        name: "carrier",
        host: "127.0.0.2",
        port: trunk_port,
        transport: "udp",
        allowed_cidrs: &cidrs,
        username: None,
        password_enc: None,
        register: false,
        keepalive: false,
    };
    db::trunks::create_trunk(&mut tx, trunk, tenant, &fields, now).await.unwrap();
    let q = db::queues::QueueFields {
        name: "Support",
        ring_timeout_secs,
        max_wait_secs: 120,
        overflow_type: "none",
        overflow_id: None,
        music_on_hold: None,
        record_calls: true,
    };
    db::queues::create_queue(&mut tx, queue, tenant, &q, now).await.unwrap();
    let d = db::trunks::DidFields {
        number: DID,
        trunk_id: trunk,
        destination_type: "queue",
        destination_id: Some(queue),
    };
    db::trunks::create_did(&mut tx, did, tenant, &d, now).await.unwrap();
    tx.commit().await.unwrap();
    let recordings = common::work_dir().join(format!("recordings-{}", Uuid::new_v4().simple()));
    let config = SipConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        base_domain: "sip.test".into(),
        node_id: "test-node".into(),
        media: media::MediaConfig {
            bind_ip: "127.0.0.1".parse().unwrap(),
            advertised_ip: None,
            port_min: 42_000,
            port_max: 43_998,
            shards: 2,
        },
        calls: telephony::CallConfig { recordings_dir: recordings, ..telephony::CallConfig::default() },
        ..SipConfig::default()
    };
    let server = Telephony::start(config, db.db.clone(), vault).await.unwrap();
    Setup { db, server, tenant, queue, did }
}

/// An available agent in the queue (not yet registered).
async fn agent(s: &Setup, email: &str) -> Agent {
    let vault = vault::Vault::from_bytes(&[7u8; 32]);
    let now = Utc::now();
    let id = UserId(Uuid::new_v4());
    let mut tx = s.db.db.tenant_tx(s.tenant).await.unwrap();
    db::users::create(
        &mut tx,
        db::users::NewUser {
            id,
            tenant_id: Some(s.tenant),
            email,
            display_name: "Agent",
            role: Role::Agent,
            password_hash: "x",
            now,
        },
    )
    .await
    .unwrap();
    let enc = vault.encrypt(PASSWORD.as_bytes(), &format!("sip-password:{id}"));
    let account = db::sip::ensure_account(&mut tx, s.tenant, id, &enc, now).await.unwrap();
    db::queues::add_member(&mut tx, s.tenant, s.queue, id, now).await.unwrap();
    db::agent_states::set_agent_status(&mut tx, s.tenant, id, AgentStatus::Available, None, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    Agent { id, extension: account.extension }
}

/// Registers `agent` from 127.0.0.1:`port` through the registrar (sipp, Digest auth).
async fn register(s: &Setup, agent: &Agent, port: u16) {
    let scenario = common::scenario("register.xml", Some(200));
    let ok = common::run(vec![
        s.server.udp_addr().to_string(),
        "-sf".into(),
        scenario.display().to_string(),
        "-key".into(),
        "domain".into(),
        DOMAIN.into(),
        "-key".into(),
        "expires".into(),
        "300".into(),
        "-s".into(),
        agent.extension.clone(),
        "-au".into(),
        agent.extension.clone(),
        "-ap".into(),
        PASSWORD.into(),
        "-i".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-m".into(),
        "1".into(),
        "-timeout".into(),
        "15s".into(),
        "-timeout_error".into(),
    ])
    .await;
    assert!(ok, "agent registration failed");
}

/// The agent's phone: a sipp UAS on `port` running `scenario`, echoing RTP back.
fn phone(scenario: &str, port: u16) -> common::Background {
    let path = common::scenario(scenario, None);
    common::Background::start(&[
        "-sf".into(),
        path.display().to_string(),
        "-i".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-mp".into(),
        common::free_udp_port("127.0.0.1").to_string(),
        "-rtp_echo".into(),
        "-m".into(),
        "1".into(),
        "-timeout".into(),
        "60s".into(),
    ])
}

/// The carrier calls the DID from 127.0.0.2 with `scenario` (PAUSE substituted); true if sipp
/// saw every expected message.
async fn carrier(s: &Setup, scenario: &str, pause_ms: u32) -> bool {
    carrier_at(s.server.udp_addr(), scenario, pause_ms).await
}

/// [`carrier`] against `addr`, owning everything it needs (to run in a spawned task while the
/// test drives the call).
async fn carrier_at(addr: std::net::SocketAddr, scenario: &str, pause_ms: u32) -> bool {
    let text = std::fs::read_to_string(format!("{}/tests/sipp/{scenario}", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .replace("PAUSE", &pause_ms.to_string());
    let path = common::work_dir().join(format!("{}-{scenario}", Uuid::new_v4().simple()));
    std::fs::write(&path, text).unwrap();
    common::run(vec![
        addr.to_string(),
        "-sf".into(),
        path.display().to_string(),
        "-s".into(),
        DID.into(),
        "-i".into(),
        "127.0.0.2".into(),
        "-p".into(),
        common::free_udp_port("127.0.0.2").to_string(),
        "-mp".into(),
        common::free_udp_port("127.0.0.2").to_string(),
        "-m".into(),
        "1".into(),
        "-timeout".into(),
        "60s".into(),
        "-timeout_error".into(),
    ])
    .await
}

/// The tenant's one call, once it has ended (waits up to 10 s).
async fn ended_call(s: &Setup) -> Value {
    for _ in 0..100 {
        let mut tx = s.db.db.tenant_tx(s.tenant).await.unwrap();
        let page = db::calls::list_cdrs(&mut tx, s.tenant, &db::calls::CdrFilter::default(), None, 10)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        if let Some(row) = page.items.first()
            && row.ended_at.is_some()
        {
            assert_eq!(page.items.len(), 1, "one call expected");
            return row.cdr_json();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the call did not end");
}

async fn event_types(s: &Setup) -> Vec<String> {
    let mut tx = s.db.db.tenant_tx(s.tenant).await.unwrap();
    let rows = db::outbox::list_recent(&mut tx, s.tenant, 100).await.unwrap();
    tx.commit().await.unwrap();
    rows.into_iter().map(|r| r.event_type).collect()
}

fn rtp(leg: &Value, field: &str) -> u64 {
    leg["rtp"][field].as_u64().unwrap_or_else(|| panic!("leg without rtp.{field}: {leg}"))
}

#[tokio::test]
async fn queued_call_is_answered_by_an_agent_with_audio_both_ways() {
    let s = setup(20).await;
    let a = agent(&s, "agent@acme.example").await;
    let port = common::free_udp_port("127.0.0.1");
    register(&s, &a, port).await;
    let _phone = phone("agent_answer.xml", port);
    assert!(carrier(&s, "carrier_call.xml", 3000).await, "the carrier's call failed");

    let cdr = ended_call(&s).await;
    assert_eq!(cdr["agent_id"], serde_json::json!(a.id), "{cdr}");
    assert_eq!(cdr["queue_id"], serde_json::json!(s.queue));
    assert_eq!(cdr["did"], DID);
    assert_eq!(cdr["hangup_side"], "caller");
    assert!(cdr["answered_at"].is_string() && cdr["queued_at"].is_string(), "{cdr}");
    let legs = cdr["legs"].as_array().unwrap();
    let caller = legs.iter().find(|l| l["leg"] == "caller").unwrap();
    let agent_leg = legs.iter().find(|l| l["leg"] == "agent" && l["outcome"] == "completed").unwrap();
    assert_eq!(caller["codec"], "PCMA/8000");
    assert_eq!(agent_leg["codec"], "PCMA/8000");
    // g711a.pcap plays ~3 s of voice at 50 packets/s; the phone echoes what it hears.
    for leg in [caller, agent_leg] {
        assert!(rtp(leg, "packets_received") >= 50, "too few packets received on {leg}");
        assert!(rtp(leg, "packets_sent") >= 50, "too few packets sent on {leg}");
    }
    // The caller's DTMF "1" (RFC 4733) was relayed to the phone: its echo came back on the agent leg.
    assert!(agent_leg["rtp"]["dtmf_received"].as_str().unwrap_or_default().contains('1'), "{agent_leg}");
    // The timeline shows the SIP story and the codecs.
    let timeline = cdr["timeline"].to_string();
    for needle in ["INVITE received", "INVITE sent", "200 OK", "PCMA/8000", "BYE received"] {
        assert!(timeline.contains(needle), "timeline lacks {needle}: {timeline}");
    }
    // Recorded (the queue records calls): a stereo WAV.
    let path = cdr["recording"]["path"].as_str().expect("a recording");
    let wav = std::fs::read(path).unwrap();
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(u16::from_le_bytes([wav[22], wav[23]]), 2, "two channels");

    let types = event_types(&s).await;
    for t in ["call.created", "queue.entered", "call.answered", "call.ended", "agent.status_changed"] {
        assert!(types.iter().any(|x| x == t), "no {t} in {types:?}");
    }
    assert!(!types.iter().any(|x| x == "queue.abandoned"));
    // The agent is free again.
    let mut tx = s.db.db.tenant_tx(s.tenant).await.unwrap();
    let state = db::agent_states::get_state(&mut tx, a.id).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    assert_eq!(state.status, "available");
    s.server.shutdown().await;
}

#[tokio::test]
async fn busy_agent_passes_the_call_to_the_next_one_and_unregistered_agents_are_skipped() {
    let s = setup(20).await;
    let busy = agent(&s, "busy@acme.example").await;
    // Never registered: never rung.
    let _absent = agent(&s, "absent@acme.example").await;
    let good = agent(&s, "good@acme.example").await;
    // Longest idle first: the busy agent has waited longest.
    let mut tx = s.db.db.tenant_tx(s.tenant).await.unwrap();
    sqlx::query("update agent_states set idle_since = now() - interval '1 hour' where user_id = $1")
        .bind(busy.id.as_uuid())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (busy_port, good_port) = (common::free_udp_port("127.0.0.1"), common::free_udp_port("127.0.0.1"));
    register(&s, &busy, busy_port).await;
    register(&s, &good, good_port).await;
    let _busy_phone = phone("agent_busy.xml", busy_port);
    let _good_phone = phone("agent_answer.xml", good_port);
    assert!(carrier(&s, "carrier_call.xml", 1500).await, "the carrier's call failed");

    let cdr = ended_call(&s).await;
    assert_eq!(cdr["agent_id"], serde_json::json!(good.id), "{cdr}");
    let legs = cdr["legs"].as_array().unwrap();
    let outcomes: Vec<(String, String)> = legs
        .iter()
        .filter(|l| l["leg"] == "agent")
        .map(|l| (l["agent_id"].as_str().unwrap().to_owned(), l["outcome"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        outcomes,
        vec![(busy.id.to_string(), "busy".to_owned()), (good.id.to_string(), "completed".to_owned())]
    );
    s.server.shutdown().await;
}

#[tokio::test]
async fn caller_hanging_up_in_the_queue_is_an_abandoned_call() {
    let s = setup(20).await;
    // A member who is available but not registered: nobody can take the call.
    let _a = agent(&s, "agent@acme.example").await;
    assert!(carrier(&s, "carrier_call.xml", 1000).await, "the carrier's call failed");
    let cdr = ended_call(&s).await;
    assert!(cdr["agent_id"].is_null() && cdr["answered_at"].is_null(), "{cdr}");
    assert_eq!(cdr["hangup_side"], "caller");
    let caller = &cdr["legs"][0];
    // Hold music went to the caller while they waited.
    assert!(rtp(caller, "packets_sent") >= 25, "no hold music: {caller}");
    let types = event_types(&s).await;
    assert!(types.iter().any(|t| t == "queue.abandoned"), "{types:?}");
    s.server.shutdown().await;
}

#[tokio::test]
async fn caller_cancelling_while_the_agent_rings() {
    let s = setup(20).await;
    let a = agent(&s, "agent@acme.example").await;
    // This DID rings the agent directly (no queue): the caller hears ringing, not music.
    let mut tx = s.db.db.tenant_tx(s.tenant).await.unwrap();
    sqlx::query("update dids set destination_type = 'agent', destination_id = $2 where id = $1")
        .bind(s.did)
        .bind(a.id.as_uuid())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let port = common::free_udp_port("127.0.0.1");
    register(&s, &a, port).await;
    let phone = phone("agent_ring_cancel.xml", port);
    assert!(carrier(&s, "carrier_cancel.xml", 1000).await, "CANCEL was not answered with 200 and 487");
    let cdr = ended_call(&s).await;
    assert_eq!(cdr["hangup_cause"], "caller_cancelled", "{cdr}");
    assert!(cdr["answered_at"].is_null());
    // The phone saw the CANCEL and finished its scenario.
    assert!(phone.wait_success(Duration::from_secs(10)), "the agent's phone was not cancelled");
    s.server.shutdown().await;
}

/// Waits until the tenant's live call is answered by `agent`; returns its id.
async fn answered_by(s: &Setup, agent: UserId) -> domain::CallId {
    for _ in 0..100 {
        if let Some(call) = s.server.calls().live(s.tenant).into_iter().find(|c| c.agent_id == Some(agent)) {
            return call.id;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the call was not answered by {agent}");
}

async fn transfer(s: &Setup, call: domain::CallId, extension: &str) -> Result<(), String> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let order = telephony::Control::Transfer {
        target: telephony::TransferTarget::Extension(extension.to_owned()),
        by: db::audit::Actor::system(),
        reply,
    };
    assert!(s.server.calls().control(s.tenant, call, order).is_ok(), "no such live call");
    answer.await.unwrap()
}

#[tokio::test]
async fn blind_transfer_to_an_extension_and_to_an_unavailable_one_keeps_the_call() {
    let s = setup(20).await;
    let first = agent(&s, "first@acme.example").await;
    let second = agent(&s, "second@acme.example").await;
    let absent = agent(&s, "absent@acme.example").await;
    // The first agent takes the call (longest idle).
    let mut tx = s.db.db.tenant_tx(s.tenant).await.unwrap();
    sqlx::query("update agent_states set idle_since = now() - interval '1 hour' where user_id = $1")
        .bind(first.id.as_uuid())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (first_port, second_port) = (common::free_udp_port("127.0.0.1"), common::free_udp_port("127.0.0.1"));
    register(&s, &first, first_port).await;
    let _first_phone = phone("agent_answer.xml", first_port);
    let carrier = tokio::spawn(carrier_at(s.server.udp_addr(), "carrier_call.xml", 6000));
    let call = answered_by(&s, first.id).await;
    // Not registered: refused, and the call stays with the first agent.
    let refused = transfer(&s, call, &absent.extension).await;
    assert!(refused.as_ref().is_err_and(|r| r.contains("not registered")), "{refused:?}");
    assert!(transfer(&s, call, "9999").await.is_err_and(|r| r.contains("does not exist")));
    assert_eq!(s.server.calls().live(s.tenant)[0].agent_id, Some(first.id));
    // The second agent, registered and available, gets it.
    register(&s, &second, second_port).await;
    let _second_phone = phone("agent_answer.xml", second_port);
    transfer(&s, call, &second.extension).await.unwrap();
    answered_by(&s, second.id).await;
    assert!(carrier.await.unwrap(), "the carrier's call failed");

    let cdr = ended_call(&s).await;
    assert_eq!(cdr["agent_id"], serde_json::json!(second.id), "{cdr}");
    let transfers = cdr["transfers"].as_array().unwrap();
    let outcomes: Vec<bool> = transfers.iter().map(|t| t["succeeded"].as_bool().unwrap()).collect();
    assert_eq!(outcomes, vec![false, false, true], "{transfers:?}");
    assert!(transfers[0]["failure_reason"].as_str().unwrap().contains("not registered"));
    let legs = cdr["legs"].as_array().unwrap();
    let agent_outcomes: Vec<&str> =
        legs.iter().filter(|l| l["leg"] == "agent").map(|l| l["outcome"].as_str().unwrap()).collect();
    assert_eq!(agent_outcomes, vec!["transferred", "completed"]);
    let types = event_types(&s).await;
    assert_eq!(types.iter().filter(|t| *t == "call.transferred").count(), 3, "{types:?}");
    // The failure is in the audit log, findable as event=transfer.
    let mut tx = s.db.db.tenant_tx(s.tenant).await.unwrap();
    let failed: i64 =
        sqlx::query_scalar("select count(*) from audit_log where action = 'call.transfer.failed'")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(failed, 2);
    s.server.shutdown().await;
}

/// The agent's phone dials `number` (Digest-challenged INVITE) and talks for `pause_ms`.
async fn agent_dials(s: &Setup, agent: &Agent, number: &str, pause_ms: u32) -> bool {
    let text = std::fs::read_to_string(format!("{}/tests/sipp/agent_dial.xml", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .replace("PAUSE", &pause_ms.to_string());
    let path = common::work_dir().join(format!("{}-agent_dial.xml", Uuid::new_v4().simple()));
    std::fs::write(&path, text).unwrap();
    common::run(vec![
        s.server.udp_addr().to_string(),
        "-sf".into(),
        path.display().to_string(),
        "-s".into(),
        number.into(),
        "-key".into(),
        "domain".into(),
        DOMAIN.into(),
        "-key".into(),
        "ext".into(),
        agent.extension.clone(),
        "-au".into(),
        agent.extension.clone(),
        "-ap".into(),
        PASSWORD.into(),
        // sipp signs `sip:<this>`; by default the server's address, not the Request-URI.
        "-auth_uri".into(),
        format!("{number}@{DOMAIN}"),
        "-i".into(),
        "127.0.0.1".into(),
        "-p".into(),
        common::free_udp_port("127.0.0.1").to_string(),
        "-mp".into(),
        common::free_udp_port("127.0.0.1").to_string(),
        "-m".into(),
        "1".into(),
        "-timeout".into(),
        "60s".into(),
        "-timeout_error".into(),
    ])
    .await
}

#[tokio::test]
async fn agent_dials_an_external_number_through_the_trunk_with_the_tenant_caller_id() {
    let carrier_port = common::free_udp_port("127.0.0.2");
    let s = setup_with_trunk_port(20, i32::from(carrier_port)).await;
    let a = agent(&s, "agent@acme.example").await;
    const NUMBER: &str = "+15557654321";
    // The carrier checks the Request-URI and that From and P-Asserted-Identity carry the
    // tenant's caller id: with no caller id configured, the DID on the trunk.
    let text =
        std::fs::read_to_string(format!("{}/tests/sipp/carrier_answer.xml", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .replace("CALLER_ID", &regex_escape(DID))
            .replace("NUMBER", &regex_escape(NUMBER));
    let path = common::work_dir().join(format!("{}-carrier_answer.xml", Uuid::new_v4().simple()));
    std::fs::write(&path, text).unwrap();
    let carrier = common::Background::start(&[
        "-sf".into(),
        path.display().to_string(),
        "-i".into(),
        "127.0.0.2".into(),
        "-p".into(),
        carrier_port.to_string(),
        "-mp".into(),
        common::free_udp_port("127.0.0.2").to_string(),
        "-rtp_echo".into(),
        "-m".into(),
        "1".into(),
        "-timeout".into(),
        "60s".into(),
    ]);
    // An extension that does not exist and is no number: 404 before anything rings.
    assert!(!agent_dials(&s, &a, "nobody", 0).await, "a call to a non-number must fail");
    assert!(agent_dials(&s, &a, NUMBER, 3000).await, "the agent's call failed");
    assert!(carrier.wait_success(Duration::from_secs(10)), "the carrier did not see the expected call");

    let cdr = ended_call(&s).await;
    assert_eq!(cdr["direction"], "outbound", "{cdr}");
    assert_eq!(cdr["from"], DID);
    assert_eq!(cdr["to"], NUMBER);
    assert_eq!(cdr["agent_id"], serde_json::json!(a.id));
    assert_eq!(cdr["hangup_side"], "agent");
    let legs = cdr["legs"].as_array().unwrap();
    let caller = legs.iter().find(|l| l["leg"] == "caller").unwrap();
    let callee = legs.iter().find(|l| l["leg"] == "callee").unwrap();
    assert_eq!(caller["agent_id"], serde_json::json!(a.id));
    for leg in [caller, callee] {
        assert_eq!(leg["codec"], "PCMA/8000", "{leg}");
        assert!(rtp(leg, "packets_received") >= 50, "too few packets received on {leg}");
        assert!(rtp(leg, "packets_sent") >= 50, "too few packets sent on {leg}");
    }
    let types = event_types(&s).await;
    for t in ["call.created", "call.answered", "call.ended"] {
        assert!(types.iter().any(|x| x == t), "no {t} in {types:?}");
    }
    s.server.shutdown().await;
}

#[tokio::test]
async fn agent_calls_another_agents_extension() {
    let s = setup(20).await;
    let caller = agent(&s, "caller@acme.example").await;
    let callee = agent(&s, "callee@acme.example").await;
    let port = common::free_udp_port("127.0.0.1");
    register(&s, &callee, port).await;
    let phone = phone("agent_answer.xml", port);
    let dialled = agent_dials(&s, &caller, &callee.extension, 2000).await;
    let cdr = ended_call(&s).await;
    assert!(dialled, "the internal call failed: {cdr}");
    assert!(phone.wait_success(Duration::from_secs(10)), "the callee's phone did not finish");
    assert_eq!(cdr["from"], caller.extension.as_str(), "{cdr}");
    assert_eq!(cdr["to"], callee.extension.as_str());
    let agent_leg = cdr["legs"].as_array().unwrap().iter().find(|l| l["leg"] == "agent").unwrap().clone();
    assert_eq!(agent_leg["agent_id"], serde_json::json!(callee.id));
    assert!(rtp(&agent_leg, "packets_received") >= 50, "{agent_leg}");
    s.server.shutdown().await;
}

/// `text` with the regex metacharacters sipp's ereg would see escaped.
fn regex_escape(text: &str) -> String {
    text.chars().fold(String::new(), |mut out, c| {
        if "+.*?()[]{}|^$\\".contains(c) {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

/// Sends an order to the tenant's live call and waits for its answer.
async fn order(
    s: &Setup,
    call: domain::CallId,
    make: impl FnOnce(tokio::sync::oneshot::Sender<Result<(), String>>) -> telephony::Control,
) -> Result<(), String> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    assert!(s.server.calls().control(s.tenant, call, make(reply)).is_ok(), "no such live call");
    answer.await.unwrap()
}

#[tokio::test]
async fn attended_transfer_with_a_cancelled_consultation_then_a_three_way_call() {
    let s = setup(20).await;
    let first = agent(&s, "first@acme.example").await;
    let second = agent(&s, "second@acme.example").await;
    let absent = agent(&s, "absent@acme.example").await;
    let mut tx = s.db.db.tenant_tx(s.tenant).await.unwrap();
    sqlx::query("update agent_states set idle_since = now() - interval '1 hour' where user_id = $1")
        .bind(first.id.as_uuid())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (first_port, second_port) = (common::free_udp_port("127.0.0.1"), common::free_udp_port("127.0.0.1"));
    register(&s, &first, first_port).await;
    let first_phone = phone("agent_answer.xml", first_port);
    let carrier = tokio::spawn(carrier_at(s.server.udp_addr(), "carrier_call.xml", 9000));
    let call = answered_by(&s, first.id).await;
    let by = db::audit::Actor::system;
    let ext = |e: &str| telephony::TransferTarget::Extension(e.to_owned());
    // Nothing to complete yet; an unregistered extension cannot be consulted.
    let none = order(&s, call, |reply| telephony::Control::CompleteTransfer { by: by(), reply }).await;
    assert!(none.is_err_and(|r| r.contains("no consultation")));
    let refused = order(&s, call, |reply| telephony::Control::Consult {
        target: ext(&absent.extension),
        by: by(),
        reply,
    })
    .await;
    assert!(refused.is_err_and(|r| r.contains("not registered")));
    // A consulted phone that answers busy: the agent has the caller back, and the CDR names
    // what was consulted and why it failed.
    let busy = agent(&s, "busy@acme.example").await;
    let busy_port = common::free_udp_port("127.0.0.1");
    register(&s, &busy, busy_port).await;
    let _busy_phone = phone("agent_busy.xml", busy_port);
    order(&s, call, |reply| telephony::Control::Consult { target: ext(&busy.extension), by: by(), reply })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(s.server.calls().live(s.tenant)[0].agent_id, Some(first.id), "back to the first agent");

    // The second agent's phone takes two calls: the consultation that is cancelled, then the next.
    register(&s, &second, second_port).await;
    let path = common::scenario("agent_answer.xml", None);
    let second_phone = common::Background::start(&[
        "-sf".into(),
        path.display().to_string(),
        "-i".into(),
        "127.0.0.1".into(),
        "-p".into(),
        second_port.to_string(),
        "-mp".into(),
        common::free_udp_port("127.0.0.1").to_string(),
        "-rtp_echo".into(),
        "-m".into(),
        "2".into(),
        "-timeout".into(),
        "60s".into(),
    ]);
    order(&s, call, |reply| telephony::Control::Consult { target: ext(&second.extension), by: by(), reply })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    order(&s, call, |reply| telephony::Control::CancelConsult { reply }).await.unwrap();
    assert_eq!(s.server.calls().live(s.tenant)[0].agent_id, Some(first.id), "the first agent keeps the call");
    tokio::time::sleep(Duration::from_millis(500)).await;

    order(&s, call, |reply| telephony::Control::Consult { target: ext(&second.extension), by: by(), reply })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    order(&s, call, |reply| telephony::Control::Conference { by: by(), reply }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    order(&s, call, |reply| telephony::Control::CompleteTransfer { by: by(), reply }).await.unwrap();
    answered_by(&s, second.id).await;
    assert!(first_phone.wait_success(Duration::from_secs(10)), "the first agent's leg was not ended");
    assert!(carrier.await.unwrap(), "the carrier's call failed");
    let second_ok = second_phone.wait_success(Duration::from_secs(10));

    let cdr = ended_call(&s).await;
    assert!(second_ok, "the second phone did not see both calls end: {cdr}");
    assert_eq!(cdr["agent_id"], serde_json::json!(second.id), "{cdr}");
    let transfers = cdr["transfers"].as_array().unwrap();
    let kinds: Vec<(&str, bool)> =
        transfers.iter().map(|t| (t["kind"].as_str().unwrap(), t["succeeded"].as_bool().unwrap())).collect();
    assert_eq!(kinds, vec![("attended", false), ("attended", false), ("three_way", true)], "{transfers:?}");
    assert_eq!(transfers[1]["destination"], format!("extension {}", busy.extension), "{transfers:?}");
    assert!(transfers[1]["failure_reason"].as_str().unwrap().contains("486"), "{transfers:?}");
    let legs = cdr["legs"].as_array().unwrap();
    let outcomes: Vec<(&str, &str)> = legs
        .iter()
        .filter(|l| l["leg"] == "agent")
        .map(|l| (l["agent_id"].as_str().unwrap(), l["outcome"].as_str().unwrap()))
        .collect();
    let (f, sec, b) = (first.id.to_string(), second.id.to_string(), busy.id.to_string());
    assert_eq!(
        outcomes,
        vec![
            (b.as_str(), "busy"),
            (sec.as_str(), "consultation_ended"),
            (f.as_str(), "transferred"),
            (sec.as_str(), "completed")
        ],
        "{legs:?}"
    );
    let last = legs.last().unwrap();
    assert!(rtp(last, "packets_received") >= 50 && rtp(last, "packets_sent") >= 50, "{last}");
    let timeline = cdr["timeline"].to_string();
    for needle in [
        "consultation started",
        "consultation answered",
        "consultation cancelled",
        "3-way call started",
        "attended transfer completed",
    ] {
        assert!(timeline.contains(needle), "timeline lacks {needle}");
    }
    // One recording across the whole call, the right channel following the agents.
    let path = cdr["recording"]["path"].as_str().expect("a recording");
    assert!(std::fs::metadata(path).unwrap().len() > 44 + 8000 * 2 * 2 * 5, "shorter than 5 s");
    s.server.shutdown().await;
}

/// A phone driven by the test itself over UDP (sipp runs one call per scenario; this one needs
/// two dialogs at once): built with the `sip` crate's message and dialog types.
struct HandPhone {
    socket: tokio::net::UdpSocket,
    server: std::net::SocketAddr,
    contact: sip::NameAddr,
}

impl HandPhone {
    async fn send(&self, bytes: Vec<u8>) {
        self.socket.send_to(&bytes, self.server).await.unwrap();
    }

    /// The next message that `keep` accepts (others, e.g. retransmissions, are skipped).
    async fn next(&self, what: &str, keep: impl Fn(&sip::Message) -> bool) -> sip::Message {
        let mut buf = vec![0u8; 65_536];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let (len, _) = tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no {what} within 15 s"))
                .unwrap();
            let Ok(message) = sip::parse_datagram(&buf[..len]) else { continue };
            if keep(&message) {
                return message;
            }
        }
    }

    fn via(&self) -> sip::Via {
        let local = self.socket.local_addr().unwrap();
        let branch = format!("{}{:016x}", sip::BRANCH_MAGIC_COOKIE, rand::random::<u64>());
        let std::net::IpAddr::V4(ip) = local.ip() else { unreachable!("IPv4 loopback") };
        sip::Via::new(sip::Transport::Udp, sip::Host::Ipv4(ip), Some(local.port()), &branch)
    }
}

fn sdp_for(port: u16) -> Vec<u8> {
    format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n").into_bytes()
}

#[tokio::test]
async fn attended_transfer_by_refer_with_replaces_joins_the_caller_to_the_consulted_agent() {
    use sip::{HeaderName, Message, Method, NameAddr, Request, StatusCode, Uri};
    let s = setup(20).await;
    let first = agent(&s, "first@acme.example").await;
    let second = agent(&s, "second@acme.example").await;
    // Only the first agent is in the queue's rotation for the carrier's call.
    let mut tx = s.db.db.tenant_tx(s.tenant).await.unwrap();
    db::queues::remove_member(&mut tx, s.queue, second.id).await.unwrap();
    tx.commit().await.unwrap();
    let (first_port, second_port) = (common::free_udp_port("127.0.0.1"), common::free_udp_port("127.0.0.1"));
    register(&s, &first, first_port).await;
    register(&s, &second, second_port).await;
    let second_phone = phone("agent_answer.xml", second_port);
    let media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let media_port = media.local_addr().unwrap().port();
    let a = HandPhone {
        socket: tokio::net::UdpSocket::bind(("127.0.0.1", first_port)).await.unwrap(),
        server: s.server.udp_addr(),
        contact: format!("<sip:{}@127.0.0.1:{first_port}>", first.extension).parse().unwrap(),
    };
    let carrier = tokio::spawn(carrier_at(s.server.udp_addr(), "carrier_call.xml", 8000));

    // Call 1: the queue rings the first agent, who answers.
    let Message::Request(invite) = a
        .next("INVITE from the queue", |m| matches!(m, Message::Request(r) if r.method == Method::Invite))
        .await
    else {
        unreachable!()
    };
    let mut call1 = sip::dialog::Dialog::new_uas(&invite, "a-tag-1", a.contact.clone()).unwrap();
    let mut ok = call1.create_response(&invite, StatusCode::OK);
    ok.headers.push(HeaderName::ContentType, "application/sdp");
    ok.body = sdp_for(media_port);
    a.send(ok.to_bytes()).await;
    a.next("ACK", |m| matches!(m, Message::Request(r) if r.method == Method::Ack)).await;
    call1.confirm();

    // Call 2: the same phone calls the second agent's extension (Digest-challenged).
    let target: Uri = format!("sip:{}@{DOMAIN}", second.extension).parse().unwrap();
    let mut from: NameAddr = format!("<sip:{}@{DOMAIN}>", first.extension).parse().unwrap();
    from.set_tag("a-tag-2");
    let new_invite = |cseq: u32| {
        let mut r = sip::dialog::new_request(sip::dialog::RequestParts {
            method: Method::Invite,
            uri: target.clone(),
            from: from.clone(),
            to: NameAddr::new(target.clone()),
            call_id: "consult-call-2@hand-phone".into(),
            cseq,
            via: a.via(),
            contact: Some(a.contact.clone()),
            routes: Vec::new(),
        });
        r.headers.push(HeaderName::ContentType, "application/sdp");
        r.body = sdp_for(media_port);
        r
    };
    let first_try = new_invite(1);
    a.send(first_try.to_bytes()).await;
    let Message::Response(challenge) =
        a.next("407", |m| matches!(m, Message::Response(r) if r.status.as_u16() == 407)).await
    else {
        unreachable!()
    };
    let mut ack = Request::new(Method::Ack, target.clone());
    for name in [HeaderName::Via, HeaderName::From, HeaderName::CallId] {
        ack.headers.push(name.clone(), first_try.headers.get(&name).unwrap().to_owned());
    }
    ack.headers.push(HeaderName::To, challenge.headers.get(&HeaderName::To).unwrap().to_owned());
    ack.headers.push(HeaderName::CSeq, "1 ACK");
    a.send(ack.to_bytes()).await;
    let mut second_try = new_invite(2);
    let chosen = sip::auth::DigestClient::select_challenge(&challenge).unwrap();
    sip::auth::DigestClient::new(first.extension.clone(), PASSWORD).authorize_request(
        &mut second_try,
        &chosen,
        true,
        "c0ffee",
    );
    a.send(second_try.to_bytes()).await;
    let Message::Response(answered) =
        a.next("200 for call 2", |m| matches!(m, Message::Response(r) if r.status == StatusCode::OK)).await
    else {
        unreachable!()
    };
    let call2 = sip::dialog::Dialog::new_uac(&second_try, &answered, a.contact.clone()).unwrap();
    a.send(call2.create_ack(2, &a.via()).to_bytes()).await;

    // REFER on call 1 with Replaces naming call 2: the caller goes to the second agent.
    let mut refer = call1.create_request(Method::Refer, &a.via());
    let id2 = call2.id();
    refer.headers.push(
        HeaderName::ReferTo,
        format!(
            "<sip:{}@{DOMAIN}?Replaces={}%3Bto-tag%3D{}%3Bfrom-tag%3D{}>",
            second.extension,
            id2.call_id.replace('@', "%40"),
            id2.remote_tag,
            id2.local_tag
        ),
    );
    a.send(refer.to_bytes()).await;
    let mut seen = (false, false, false, false);
    while !(seen.0 && seen.1 && seen.2 && seen.3) {
        match a.next("the REFER's outcome", |_| true).await {
            Message::Response(r) if r.status == StatusCode::ACCEPTED => seen.0 = true,
            Message::Request(r) if r.method == Method::Notify => {
                let frag = String::from_utf8_lossy(&r.body).to_string();
                if frag.contains("SIP/2.0 200") {
                    seen.1 = true;
                }
                assert!(!frag.contains("503"), "the transfer failed: {frag}");
                a.send(sip::Response::for_request(&r, StatusCode::OK).to_bytes()).await;
            }
            Message::Request(r) if r.method == Method::Bye => {
                let call = r.headers.call_id().unwrap().to_owned();
                if call == id2.call_id {
                    seen.3 = true;
                } else if call == call1.id().call_id {
                    seen.2 = true;
                }
                a.send(sip::Response::for_request(&r, StatusCode::OK).to_bytes()).await;
            }
            _ => {}
        }
    }
    answered_by(&s, second.id).await;
    assert!(carrier.await.unwrap(), "the carrier's call failed");
    assert!(second_phone.wait_success(Duration::from_secs(10)), "the second agent's phone did not finish");

    // Two CDRs: the carrier's call (now the second agent's) and the consultation call.
    let mut cdrs = Vec::new();
    for _ in 0..100 {
        let mut tx = s.db.db.tenant_tx(s.tenant).await.unwrap();
        let page = db::calls::list_cdrs(&mut tx, s.tenant, &db::calls::CdrFilter::default(), None, 10)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        if page.items.len() == 2 && page.items.iter().all(|r| r.ended_at.is_some()) {
            cdrs = page.items.iter().map(|r| r.cdr_json()).collect();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let inbound = cdrs.iter().find(|c| c["direction"] == "inbound").expect("the carrier's CDR");
    let consult = cdrs.iter().find(|c| c["direction"] == "outbound").expect("the consultation's CDR");
    assert_eq!(inbound["agent_id"], serde_json::json!(second.id), "{inbound}");
    let transfers = inbound["transfers"].as_array().unwrap();
    assert_eq!(
        (transfers[0]["kind"].as_str(), transfers[0]["succeeded"].as_bool()),
        (Some("attended"), Some(true))
    );
    let last = inbound["legs"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["agent_id"], serde_json::json!(second.id));
    assert!(rtp(&last, "packets_received") >= 50, "the caller's audio reached the second agent: {last}");
    assert_eq!(consult["hangup_cause"], "attended_transfer", "{consult}");
    drop(media);
    s.server.shutdown().await;
}

#[tokio::test]
async fn every_phone_of_the_agent_rings_and_the_first_to_answer_takes_the_call() {
    let s = setup(20).await;
    let a = agent(&s, "agent@acme.example").await;
    // Two phones registered for one extension (say a desk phone and a browser tab).
    let (slow_port, quick_port) = (common::free_udp_port("127.0.0.1"), common::free_udp_port("127.0.0.1"));
    register(&s, &a, slow_port).await;
    register(&s, &a, quick_port).await;
    let slow = phone("agent_ring_cancel.xml", slow_port);
    let _quick = phone("agent_answer.xml", quick_port);
    assert!(carrier(&s, "carrier_call.xml", 3000).await, "the carrier's call failed");
    let cancelled = slow.wait_success(Duration::from_secs(10));
    let cdr = ended_call(&s).await;
    assert!(cancelled, "the phone that did not answer was not cancelled: {cdr}");
    assert_eq!(cdr["agent_id"], serde_json::json!(a.id), "{cdr}");
    let mut outcomes: Vec<&str> = cdr["legs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["leg"] == "agent")
        .map(|l| l["outcome"].as_str().unwrap())
        .collect();
    outcomes.sort_unstable();
    assert_eq!(outcomes, vec!["answered_elsewhere", "completed"], "{cdr}");
    let completed =
        cdr["legs"].as_array().unwrap().iter().find(|l| l["outcome"] == "completed").unwrap().clone();
    assert!(rtp(&completed, "packets_received") >= 50, "{completed}");
    s.server.shutdown().await;
}

/// Issue #5: an agent is not offered a second call while an INVITE to them is unfinished.
///
/// The queue rings the agent's phone (180) for call 1; the caller hangs up, so the B2BUA sends
/// CANCEL; but the phone had answered — its 200 crossed the CANCEL and is still on its way (the
/// test holds it). Until that 200 arrives and is ACKed and ended with BYE, the phone is
/// off-hook with call 1, and call 2 must not ring it. (The agent used to be freed when the
/// CANCEL was sent, so call 2's INVITE reached the phone at once: a double offer.)
#[tokio::test]
async fn no_second_offer_while_the_answer_to_a_cancelled_invite_is_in_flight() {
    use sip::{HeaderName, Message, Method, StatusCode};
    let s = setup(20).await;
    let a = agent(&s, "agent@acme.example").await;
    let port = common::free_udp_port("127.0.0.1");
    register(&s, &a, port).await;
    let media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let phone = HandPhone {
        socket: tokio::net::UdpSocket::bind(("127.0.0.1", port)).await.unwrap(),
        server: s.server.udp_addr(),
        contact: format!("<sip:{}@127.0.0.1:{port}>", a.extension).parse().unwrap(),
    };
    // Call 1: the caller waits a few seconds, then hangs up.
    let first = tokio::spawn(carrier_at(s.server.udp_addr(), "carrier_call.xml", 200));
    let Message::Request(invite) = phone
        .next("INVITE for call 1", |m| matches!(m, Message::Request(r) if r.method == Method::Invite))
        .await
    else {
        unreachable!()
    };
    let call1 = invite.headers.call_id().unwrap().to_owned();
    let mut dialog = sip::dialog::Dialog::new_uas(&invite, "phone-1", phone.contact.clone()).unwrap();
    phone.send(dialog.create_response(&invite, StatusCode::RINGING).to_bytes()).await;
    let Message::Request(cancel) = phone
        .next("CANCEL for call 1", |m| matches!(m, Message::Request(r) if r.method == Method::Cancel))
        .await
    else {
        unreachable!()
    };
    // The phone had already answered: the CANCEL has no effect (RFC 3261 §9.2), and the 200
    // is still travelling.
    phone.send(sip::Response::for_request(&cancel, StatusCode::OK).to_bytes()).await;
    let mut answer = dialog.create_response(&invite, StatusCode::OK);
    answer.headers.push(HeaderName::ContentType, "application/sdp");
    answer.body = sdp_for(media.local_addr().unwrap().port());
    assert!(first.await.unwrap(), "call 1's carrier failed");

    // Call 2 arrives while the phone is off-hook with call 1.
    // Its caller waits in the queue long enough to be offered once the phone is free.
    let second = tokio::spawn(carrier_at(s.server.udp_addr(), "carrier_call.xml", 9000));
    let mut buf = vec![0u8; 65_536];
    let quiet_until = tokio::time::Instant::now() + Duration::from_secs(4);
    while let Ok(received) = tokio::time::timeout_at(quiet_until, phone.socket.recv_from(&mut buf)).await {
        let (len, _) = received.unwrap();
        if let Ok(Message::Request(r)) = sip::parse_datagram(&buf[..len])
            && r.method == Method::Invite
            && r.headers.call_id().unwrap() != call1
        {
            panic!("call 2 was offered to an agent whose answer to call 1 was still in flight");
        }
    }
    // The 200 arrives: the B2BUA ACKs it and hangs up (the caller is gone).
    dialog.confirm();
    phone.send(answer.to_bytes()).await;
    phone.next("ACK for call 1", |m| matches!(m, Message::Request(r) if r.method == Method::Ack)).await;
    let Message::Request(bye) =
        phone.next("BYE for call 1", |m| matches!(m, Message::Request(r) if r.method == Method::Bye)).await
    else {
        unreachable!()
    };
    phone.send(sip::Response::for_request(&bye, StatusCode::OK).to_bytes()).await;
    // Now the phone is free: call 2 rings it (and is declined; its caller hangs up later).
    let Message::Request(invite2) = phone
        .next("INVITE for call 2", |m| {
            matches!(m, Message::Request(r) if r.method == Method::Invite && r.headers.call_id().unwrap() != call1)
        })
        .await
    else {
        unreachable!()
    };
    let mut busy = sip::Response::for_request(&invite2, StatusCode::BUSY_HERE);
    busy.set_to_tag("phone-2");
    phone.send(busy.to_bytes()).await;
    assert!(second.await.unwrap(), "call 2's carrier failed");
    s.server.shutdown().await;
}
