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
    let text = std::fs::read_to_string(format!("{}/tests/sipp/{scenario}", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .replace("PAUSE", &pause_ms.to_string());
    let path = common::work_dir().join(format!("{}-{scenario}", Uuid::new_v4().simple()));
    std::fs::write(&path, text).unwrap();
    common::run(vec![
        s.server.udp_addr().to_string(),
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
    let carrier = tokio::spawn({
        let addr = s.server.udp_addr();
        async move {
            let text = std::fs::read_to_string(format!(
                "{}/tests/sipp/carrier_call.xml",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
            .replace("PAUSE", "6000");
            let path = common::work_dir().join(format!("{}-transfer.xml", Uuid::new_v4().simple()));
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
    });
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
    let carrier = tokio::spawn({
        let addr = s.server.udp_addr();
        async move {
            let text = std::fs::read_to_string(format!(
                "{}/tests/sipp/carrier_call.xml",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
            .replace("PAUSE", "9000");
            let path = common::work_dir().join(format!("{}-attended.xml", Uuid::new_v4().simple()));
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
    });
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
    assert_eq!(kinds, vec![("attended", false), ("three_way", true)], "{transfers:?}");
    let legs = cdr["legs"].as_array().unwrap();
    let outcomes: Vec<(&str, &str)> = legs
        .iter()
        .filter(|l| l["leg"] == "agent")
        .map(|l| (l["agent_id"].as_str().unwrap(), l["outcome"].as_str().unwrap()))
        .collect();
    let (f, sec) = (first.id.to_string(), second.id.to_string());
    assert_eq!(
        outcomes,
        vec![(sec.as_str(), "consultation_ended"), (f.as_str(), "transferred"), (sec.as_str(), "completed")],
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
