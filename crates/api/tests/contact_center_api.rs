//! The contact-center resources of the HTTP API against a real PostgreSQL: queues and members,
//! agents' statuses (rules, events, audit), calls in progress and CDR search, tenant settings.

use std::net::SocketAddr;
use std::sync::Arc;

use api::{ApiConfig, AppState, ManualClock};
use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, Request, StatusCode};
use chrono::{DateTime, Duration, Utc};
use domain::events::{CallDirection, Event, EventPayload};
use domain::{CallId, Role, TenantId, UserId};
use serde_json::{Value, json};
use test_support::TestDb;
use tower::ServiceExt as _;
use uuid::Uuid;

const PASSWORD: &str = "correct-horse-battery";

struct App {
    router: Router,
    db: TestDb,
    now: DateTime<Utc>,
}

impl App {
    async fn new() -> Self {
        let db = TestDb::new().await;
        // Whole milliseconds, so times survive the JSON round trip unchanged.
        let now = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
        let clock = ManualClock::new(now);
        let vault = vault::Vault::from_bytes(&[7u8; 32]);
        let config = ApiConfig { sip_base_domain: "sip.example.com".into(), ..ApiConfig::default() };
        let state = AppState::new(db.db.clone(), vault, Arc::new(clock), config);
        let router = api::router(state).layer(MockConnectInfo(SocketAddr::from(([203, 0, 113, 9], 40000))));
        Self { router, db, now }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let builder =
            Request::builder().method(method).uri(path).header("authorization", format!("Bearer {token}"));
        let request = match body {
            Some(b) => {
                builder.header("content-type", "application/json").body(Body::from(b.to_string())).unwrap()
            }
            None => builder.body(Body::empty()).unwrap(),
        };
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() })
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, token, None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, path, token, Some(body)).await
    }

    async fn tenant(&self, slug: &str) -> TenantId {
        let input = api::ops::NewTenantInput { slug: slug.into(), name: slug.into(), plan: None };
        api::ops::create_tenant(&self.db.db, input, &api::ops::OpActor::cli(), self.now)
            .await
            .unwrap()
            .tenant_id()
    }

    async fn user(&self, tenant: TenantId, email: &str, role: Role) -> UserId {
        let input = api::ops::NewUserInput {
            email: email.into(),
            display_name: None,
            role,
            password: PASSWORD.into(),
        };
        api::ops::create_user(&self.db.db, Some(tenant), input, &api::ops::OpActor::cli(), self.now)
            .await
            .unwrap()
            .user_id()
    }

    async fn api_key(&self, tenant: TenantId) -> String {
        api::ops::create_api_key(&self.db.db, tenant, "admin", None, &api::ops::OpActor::cli(), self.now)
            .await
            .unwrap()
            .1
    }

    async fn login(&self, email: &str) -> String {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/auth/login")
            .header("content-type", "application/json")
            .body(Body::from(json!({"email": email, "password": PASSWORD}).to_string()))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    /// The tenant's events, oldest first.
    async fn events(&self, tenant: TenantId) -> Vec<Event> {
        let mut tx = self.db.db.tenant_tx(tenant).await.unwrap();
        let rows = db::outbox::list_recent(&mut tx, tenant, 1000).await.unwrap();
        let mut events: Vec<Event> =
            rows.into_iter().map(|r| serde_json::from_value(r.payload).unwrap()).collect();
        events.sort_by_key(|e| (e.created_at, e.id.as_uuid()));
        events
    }

    async fn audit_events(&self, token: &str) -> Vec<String> {
        let (_, audit) = self.get("/api/v1/audit?limit=200", token).await;
        audit["items"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap().to_owned()).collect()
    }
}

fn field_errors(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|e| e.iter().map(|f| f["field"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn queues_crud_with_members_validation_roles_and_audit() {
    let app = App::new().await;
    let t = app.tenant("acme").await;
    let other_tenant = app.tenant("other").await;
    let admin = app.api_key(t).await;
    let agent = app.user(t, "agent@acme.example", Role::Agent).await;
    let sup = app.user(t, "sup@acme.example", Role::Supervisor).await;
    let boss = app.user(t, "boss@acme.example", Role::Admin).await;
    let stranger = app.user(other_tenant, "agent@other.example", Role::Agent).await;
    let agent_token = app.login("agent@acme.example").await;
    let sup_token = app.login("sup@acme.example").await;

    let (status, sales) = app.post("/api/v1/queues", &admin, json!({"name": "Sales"})).await;
    assert_eq!(status, StatusCode::CREATED, "{sales}");
    assert_eq!(sales["ring_timeout_secs"], 20);
    assert_eq!(sales["max_wait_secs"], 300);
    assert_eq!(sales["overflow_type"], "none");
    assert_eq!(sales["music_on_hold"], Value::Null);
    assert_eq!(sales["record_calls"], false);
    let sales_id = sales["id"].as_str().unwrap().to_owned();

    // Every field is checked and named.
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "x", "ring_timeout_secs": 4}), "ring_timeout_secs"),
        (json!({"name": "x", "max_wait_secs": 86_401}), "max_wait_secs"),
        (json!({"name": "x", "overflow_type": "queue"}), "overflow_id"),
        (json!({"name": "x", "overflow_type": "queue", "overflow_id": Uuid::new_v4()}), "overflow_id"),
        (json!({"name": "x", "overflow_type": "agent", "overflow_id": boss}), "overflow_id"),
        (json!({"name": "x", "overflow_type": "hangup", "overflow_id": sales_id}), "overflow_id"),
        (json!({"name": "x", "music_on_hold": "moh.wav"}), "music_on_hold"),
        (json!({"name": "x", "music_on_hold": "/srv/../etc/x.wav"}), "music_on_hold"),
        (json!({"name": "x", "music_on_hold": "/srv/moh.mp3"}), "music_on_hold"),
    ] {
        let (status, problem) = app.post("/api/v1/queues", &admin, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {problem}");
        assert_eq!(field_errors(&problem), [field], "{body}: {problem}");
    }
    let (status, bad) =
        app.post("/api/v1/queues", &admin, json!({"name": "x", "overflow_type": "sideways"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    let (status, dup) = app.post("/api/v1/queues", &admin, json!({"name": "Sales"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{dup}");
    assert_eq!(field_errors(&dup), ["name"]);

    let (status, support) = app
        .post(
            "/api/v1/queues",
            &admin,
            json!({"name": "Support", "ring_timeout_secs": 15, "max_wait_secs": 60, "overflow_type": "queue",
                   "overflow_id": sales_id, "music_on_hold": "/var/lib/sivo/moh/jazz.wav", "record_calls": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{support}");
    let support_id = support["id"].as_str().unwrap().to_owned();
    // Patches keep what they do not name; `hangup` drops the overflow target; "" the music.
    let (status, patched) = app
        .send(
            Method::PATCH,
            &format!("/api/v1/queues/{support_id}"),
            &admin,
            Some(json!({"max_wait_secs": 120, "music_on_hold": ""})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        (patched["max_wait_secs"].as_u64(), patched["ring_timeout_secs"].as_u64()),
        (Some(120), Some(15))
    );
    assert_eq!(patched["overflow_id"], sales_id.as_str());
    assert_eq!(patched["music_on_hold"], Value::Null);
    let (status, _) = app
        .send(
            Method::PATCH,
            &format!("/api/v1/queues/{support_id}"),
            &admin,
            Some(json!({"overflow_type": "queue", "overflow_id": support_id})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a queue overflowing to itself");

    // Everyone in the tenant reads queues; only admins write.
    for token in [&agent_token, &sup_token] {
        let (status, list) = app.get("/api/v1/queues", token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["items"].as_array().unwrap().len(), 2);
        assert_eq!(app.get(&format!("/api/v1/queues/{sales_id}"), token).await.0, StatusCode::OK);
        assert_eq!(app.post("/api/v1/queues", token, json!({"name": "Mine"})).await.0, StatusCode::FORBIDDEN);
        let (status, _) =
            app.post(&format!("/api/v1/queues/{sales_id}/members"), token, json!({"user_id": agent})).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    // Two pages of one hold both queues (created at the same manual-clock instant: their
    // order is by id).
    let (_, page) = app.get("/api/v1/queues?limit=1", &admin).await;
    let first = page["items"][0]["name"].as_str().unwrap().to_owned();
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page) = app.get(&format!("/api/v1/queues?limit=1&cursor={cursor}"), &admin).await;
    let mut names = [first, page["items"][0]["name"].as_str().unwrap().to_owned()];
    names.sort();
    assert_eq!(names, ["Sales".to_owned(), "Support".to_owned()]);
    assert_eq!(page["next_cursor"], Value::Null);

    // Members: agents and supervisors of this tenant only.
    let members = format!("/api/v1/queues/{sales_id}/members");
    let (status, m) = app.post(&members, &admin, json!({"user_id": agent})).await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    assert_eq!((m["email"].as_str(), m["status"].as_str()), (Some("agent@acme.example"), Some("logged_out")));
    assert_eq!(app.post(&members, &admin, json!({"user_id": agent})).await.0, StatusCode::OK);
    assert_eq!(app.post(&members, &admin, json!({"user_id": sup})).await.0, StatusCode::CREATED);
    for user in [boss, stranger, UserId(Uuid::new_v4())] {
        let (status, problem) = app.post(&members, &admin, json!({"user_id": user})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(field_errors(&problem), ["user_id"]);
    }
    let (status, list) = app.get(&members, &agent_token).await;
    assert_eq!(status, StatusCode::OK);
    // Both were added at the same (manual) clock instant: the order between them is by id.
    let mut ids: Vec<&str> =
        list["items"].as_array().unwrap().iter().map(|m| m["user_id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let mut expected = [agent.to_string(), sup.to_string()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    let (_, me) = app.get(&format!("/api/v1/agents/{agent}"), &agent_token).await;
    assert_eq!(me["queue_ids"], json!([sales_id]));
    assert_eq!(me["status"], "logged_out");
    let (status, _) = app.send(Method::DELETE, &format!("{members}/{sup}"), &admin, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.send(Method::DELETE, &format!("{members}/{sup}"), &admin, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&members, &admin).await.1["items"].as_array().unwrap().len(), 1);

    // A queue that a DID or another queue sends calls to cannot be deleted.
    let (_, trunk) = app
        .post(
            "/api/v1/trunks",
            &admin,
            json!({"name": "carrier", "host": "sip.carrier.example", "allowed_cidrs": []}),
        )
        .await;
    let (status, did) = app
        .post(
            "/api/v1/dids",
            &admin,
            json!({"number": "+4930123456", "trunk_id": trunk["id"], "destination_type": "queue", "destination_id": sales_id}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{did}");
    let (status, problem) =
        app.send(Method::DELETE, &format!("/api/v1/queues/{sales_id}"), &admin, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "queue_in_use");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("+4930123456") && detail.contains("Support"), "{detail}");
    let did_id = did["id"].as_str().unwrap();
    assert_eq!(
        app.send(Method::DELETE, &format!("/api/v1/dids/{did_id}"), &admin, None).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, _) = app
        .send(
            Method::PATCH,
            &format!("/api/v1/queues/{support_id}"),
            &admin,
            Some(json!({"overflow_type": "none"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.send(Method::DELETE, &format!("/api/v1/queues/{sales_id}"), &admin, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/api/v1/queues/{sales_id}"), &admin).await.0, StatusCode::NOT_FOUND);
    // Memberships went with the queue.
    assert_eq!(app.get(&format!("/api/v1/agents/{agent}"), &admin).await.1["queue_ids"], json!([]));

    let audit = app.audit_events(&admin).await;
    for action in
        ["queue.created", "queue.updated", "queue.deleted", "queue.member_added", "queue.member_removed"]
    {
        assert!(audit.iter().any(|a| a == action), "{action} missing from {audit:?}");
    }
    // Adding an existing member again is not a change.
    assert_eq!(audit.iter().filter(|a| *a == "queue.member_added").count(), 2);
}

#[tokio::test]
async fn agents_set_their_status_within_the_rules_and_every_change_is_an_event() {
    let app = App::new().await;
    let t = app.tenant("acme").await;
    let admin = app.api_key(t).await;
    let agent = app.user(t, "agent@acme.example", Role::Agent).await;
    let colleague = app.user(t, "colleague@acme.example", Role::Agent).await;
    app.user(t, "sup@acme.example", Role::Supervisor).await;
    let me = app.login("agent@acme.example").await;
    let sup = app.login("sup@acme.example").await;
    let status_url = format!("/api/v1/agents/{agent}/status");

    let (status, s) = app.get(&status_url, &me).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((s["status"].as_str(), s["changed_at"].as_str()), (Some("logged_out"), None));

    let (status, s) = app.send(Method::PUT, &status_url, &me, Some(json!({"status": "available"}))).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["status"], "available");
    assert_eq!(s["idle_since"], json!(app.now));
    // The rules: on_call follows calls; a break needs a reason; unknown statuses are refused.
    let (status, problem) = app.send(Method::PUT, &status_url, &me, Some(json!({"status": "on_call"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(field_errors(&problem), ["status"]);
    for body in [json!({"status": "on_break"}), json!({"status": "on_break", "reason": "  "})] {
        let (status, problem) = app.send(Method::PUT, &status_url, &me, Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(field_errors(&problem), ["reason"]);
    }
    let (status, _) = app.send(Method::PUT, &status_url, &me, Some(json!({"status": "busy"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, s) =
        app.send(Method::PUT, &status_url, &me, Some(json!({"status": "on_break", "reason": "lunch"}))).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["pause_reason"], "lunch");
    // Agents cannot touch a colleague; supervisors and admins can.
    let theirs = format!("/api/v1/agents/{colleague}/status");
    assert_eq!(app.get(&theirs, &me).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        app.send(Method::PUT, &theirs, &me, Some(json!({"status": "available"}))).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, _) = app.send(Method::PUT, &status_url, &sup, Some(json!({"status": "logged_out"}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.send(Method::PUT, &theirs, &admin, Some(json!({"status": "available"}))).await;
    assert_eq!(status, StatusCode::OK);
    // Setting the same status again changes nothing and says nothing.
    let (status, _) = app.send(Method::PUT, &theirs, &admin, Some(json!({"status": "available"}))).await;
    assert_eq!(status, StatusCode::OK);

    let (_, list) = app.get("/api/v1/agents", &sup).await;
    let by_email =
        |email: &str| list["items"].as_array().unwrap().iter().find(|a| a["email"] == email).unwrap().clone();
    assert_eq!(by_email("agent@acme.example")["status"], "logged_out");
    assert_eq!(by_email("colleague@acme.example")["status"], "available");
    assert_eq!(by_email("sup@acme.example")["status"], "logged_out");

    let events = app.events(t).await;
    let changes: Vec<(String, String, String)> = events
        .iter()
        .filter_map(|e| match &e.payload {
            EventPayload::AgentStatusChanged(d) => {
                Some((d.agent_id.to_string(), d.previous.to_string(), d.status.to_string()))
            }
            _ => None,
        })
        .collect();
    let (a, c) = (agent.to_string(), colleague.to_string());
    assert_eq!(
        changes,
        [
            (a.clone(), "logged_out".into(), "available".into()),
            (a.clone(), "available".into(), "on_break".into()),
            (a, "on_break".into(), "logged_out".into()),
            (c, "logged_out".into(), "available".into()),
        ]
    );
    let paused: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.payload {
            EventPayload::AgentPaused(d) => Some(d.reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(paused, ["lunch"]);
    let audit = app.audit_events(&admin).await;
    assert_eq!(audit.iter().filter(|a| *a == "agent.status_changed").count(), 4, "{audit:?}");
}

struct CallSpec {
    direction: CallDirection,
    from: &'static str,
    to: &'static str,
    did: Option<&'static str>,
    queue: Option<Uuid>,
    agent: Option<UserId>,
    /// Seconds after the test's start.
    created: i64,
    /// Seconds the call lasts; None leaves it in progress.
    lasts: Option<i64>,
    cause: &'static str,
    side: &'static str,
}

async fn place(app: &App, tenant: TenantId, spec: &CallSpec) -> CallId {
    let id = CallId(Uuid::now_v7());
    let at = app.now + Duration::seconds(spec.created);
    let mut tx = app.db.db.tenant_tx(tenant).await.unwrap();
    let call = db::calls::NewCall {
        id,
        direction: spec.direction,
        from: spec.from,
        to: spec.to,
        did: spec.did,
        did_id: None,
        trunk_id: None,
        at,
    };
    db::calls::create_call(&mut tx, tenant, &call).await.unwrap();
    if let Some(queue) = spec.queue {
        db::calls::enter_queue(&mut tx, tenant, id, queue, at + Duration::seconds(1)).await.unwrap();
    }
    if let Some(agent) = spec.agent {
        db::calls::answer_call(&mut tx, tenant, id, Some(agent), at + Duration::seconds(3)).await.unwrap();
    }
    if let Some(lasts) = spec.lasts {
        let end = db::calls::CallEnd {
            at: at + Duration::seconds(lasts),
            hangup_cause: spec.cause,
            hangup_side: spec.side,
            legs: json!([{"leg": "a", "codec": "PCMA"}]),
            timeline: json!([{"sip": "BYE"}]),
            recording: None,
        };
        db::calls::end_call(&mut tx, tenant, id, &end).await.unwrap();
    }
    tx.commit().await.unwrap();
    id
}

#[tokio::test]
async fn calls_in_progress_and_cdrs_with_filters_and_pages() {
    let app = App::new().await;
    let t = app.tenant("acme").await;
    let admin = app.api_key(t).await;
    let alice = app.user(t, "alice@acme.example", Role::Agent).await;
    let bob = app.user(t, "bob@acme.example", Role::Agent).await;
    app.user(t, "sup@acme.example", Role::Supervisor).await;
    let alice_token = app.login("alice@acme.example").await;
    let sup = app.login("sup@acme.example").await;
    let (_, q) = app.post("/api/v1/queues", &admin, json!({"name": "Sales"})).await;
    let queue: Uuid = q["id"].as_str().unwrap().parse().unwrap();

    let inbound = |from, agent, created, cause, side| CallSpec {
        direction: CallDirection::Inbound,
        from,
        to: "+4930123456",
        did: Some("+4930123456"),
        queue: Some(queue),
        agent,
        created,
        lasts: Some(60),
        cause,
        side,
    };
    let answered =
        place(&app, t, &inbound("+15550100001", Some(alice), 0, "normal_clearing", "caller")).await;
    let abandoned = place(&app, t, &inbound("+15550100002", None, 10, "normal_clearing", "caller")).await;
    let by_bob = place(&app, t, &inbound("+447700900003", Some(bob), 20, "normal_clearing", "agent")).await;
    let outbound = place(
        &app,
        t,
        &CallSpec {
            direction: CallDirection::Outbound,
            from: "+4930123456",
            to: "+15550199999",
            did: None,
            queue: None,
            agent: Some(alice),
            created: 30,
            lasts: Some(5),
            cause: "busy",
            side: "system",
        },
    )
    .await;
    let live = place(
        &app,
        t,
        &CallSpec { lasts: None, ..inbound("+15550100005", None, 40, "normal_clearing", "caller") },
    )
    .await;

    // Calls in progress: supervisors and admins.
    let (status, calls) = app.get("/api/v1/calls", &sup).await;
    assert_eq!(status, StatusCode::OK);
    let items = calls["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{calls}");
    assert_eq!(items[0]["id"], live.to_string());
    assert_eq!(items[0]["state"], "queued");
    assert_eq!(items[0]["queue_id"], queue.to_string());
    assert_eq!(app.get("/api/v1/calls", &alice_token).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.get("/api/v1/cdrs", &alice_token).await.0, StatusCode::FORBIDDEN);
    let (status, one) = app.get(&format!("/api/v1/calls/{answered}"), &sup).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((one["state"].as_str(), one["talk_ms"].as_u64()), (Some("ended"), Some(57_000)));
    // A call in progress has no CDR yet.
    assert_eq!(app.get(&format!("/api/v1/cdrs/{live}"), &sup).await.0, StatusCode::NOT_FOUND);

    // Call control: bodies are checked first, an ended call is 409, and without the SIP
    // service in this process (API-only test) an open call answers 503 sip_disabled.
    for (path, body) in [
        ("transfer", json!({"extension": "1000", "number": "+1555"})),
        ("transfer", json!({"number": "sip:x@evil"})),
        ("consult", json!({})),
        ("consult", json!({"queue_id": queue})),
    ] {
        let (status, problem) =
            app.send(Method::POST, &format!("/api/v1/calls/{live}/{path}"), &sup, Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {problem}");
    }
    for path in ["consult/complete", "consult/cancel", "conference", "hangup"] {
        let (status, problem) =
            app.send(Method::POST, &format!("/api/v1/calls/{answered}/{path}"), &sup, None).await;
        assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("call_ended")), "{path}");
        let (status, problem) =
            app.send(Method::POST, &format!("/api/v1/calls/{live}/{path}"), &sup, None).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("sip_disabled")),
            "{path}"
        );
    }
    assert_eq!(app.get(&format!("/api/v1/cdrs/{}", Uuid::new_v4()), &sup).await.0, StatusCode::NOT_FOUND);

    // The CDR is exactly what call.ended carried.
    let (status, cdr) = app.get(&format!("/api/v1/cdrs/{answered}"), &sup).await;
    assert_eq!(status, StatusCode::OK);
    let ended = app.events(t).await.into_iter().find_map(|e| match e.payload {
        EventPayload::CallEnded(d) if d.call_id == answered => Some(d.cdr),
        _ => None,
    });
    assert_eq!(ended.unwrap(), cdr);
    assert_eq!(cdr["agent_id"], alice.to_string());
    assert_eq!((cdr["wait_ms"].as_u64(), cdr["duration_ms"].as_u64()), (Some(2_000), Some(60_000)));
    assert_eq!(cdr["legs"][0]["codec"], "PCMA");
    assert_eq!(cdr["hangup_side"], "caller");

    let ids = |body: &Value| -> Vec<String> {
        body["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect()
    };
    let s = |c: CallId| c.to_string();
    let (status, all) = app.get("/api/v1/cdrs", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&all), [s(outbound), s(by_bob), s(abandoned), s(answered)], "newest first");
    let at =
        |secs: i64| (app.now + Duration::seconds(secs)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let enc = |v: String| v.replace('+', "%2B").replace(':', "%3A");
    for (query, expected) in [
        ("direction=outbound".to_owned(), vec![s(outbound)]),
        ("direction=inbound".to_owned(), vec![s(by_bob), s(abandoned), s(answered)]),
        (format!("agent_id={alice}"), vec![s(outbound), s(answered)]),
        (format!("queue_id={queue}"), vec![s(by_bob), s(abandoned), s(answered)]),
        ("did=%2B4930123456".to_owned(), vec![s(by_bob), s(abandoned), s(answered)]),
        ("number=7700900".to_owned(), vec![s(by_bob)]),
        ("number=%2B15550199999".to_owned(), vec![s(outbound)]),
        ("hangup_cause=busy".to_owned(), vec![s(outbound)]),
        (format!("from={}&to={}", enc(at(10)), enc(at(30))), vec![s(by_bob), s(abandoned)]),
        (format!("from={}", enc(at(31))), vec![]),
        (format!("direction=inbound&agent_id={bob}"), vec![s(by_bob)]),
    ] {
        let (status, body) = app.get(&format!("/api/v1/cdrs?{query}"), &sup).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(ids(&body), expected, "{query}");
    }
    for (query, field) in [
        (format!("from={}&to={}", enc(at(30)), enc(at(10))), "to"),
        ("direction=sideways".to_owned(), "direction"),
        ("agent_id=nope".to_owned(), "agent_id"),
        ("limit=0".to_owned(), "limit"),
        ("cursor=garbage".to_owned(), "cursor"),
        ("colour=red".to_owned(), "colour"),
    ] {
        let (status, problem) = app.get(&format!("/api/v1/cdrs?{query}"), &sup).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {problem}");
        assert!(problem["errors"].to_string().contains(field), "{query}: {problem}");
    }

    // Pages walk the same order without repeats.
    let mut seen = Vec::new();
    let mut url = "/api/v1/cdrs?limit=3".to_owned();
    loop {
        let (_, page) = app.get(&url, &sup).await;
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => url = format!("/api/v1/cdrs?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ids(&all));
}

#[tokio::test]
async fn tenant_settings_turn_recording_on_for_admins_only() {
    let app = App::new().await;
    let t = app.tenant("acme").await;
    let admin = app.api_key(t).await;
    app.user(t, "sup@acme.example", Role::Supervisor).await;
    let sup = app.login("sup@acme.example").await;
    let (status, s) = app.get("/api/v1/settings", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        s,
        json!({"record_calls": false, "outbound_trunk_id": null, "outbound_caller_id": null, "updated_at": null})
    );
    assert_eq!(app.get("/api/v1/settings", &sup).await.0, StatusCode::FORBIDDEN);
    let (status, s) =
        app.send(Method::PATCH, "/api/v1/settings", &admin, Some(json!({"record_calls": true}))).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["record_calls"], true);
    let (status, _) =
        app.send(Method::PATCH, "/api/v1/settings", &admin, Some(json!({"record": true}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut tx = app.db.db.tenant_tx(t).await.unwrap();
    assert!(db::tenant_settings::recording_wanted(&mut tx, t, None).await.unwrap());
    tx.rollback().await.unwrap();
    assert!(app.audit_events(&admin).await.iter().any(|a| a == "settings.updated"));

    // Outbound calls: the trunk must be this tenant's, the caller id a number; null clears.
    let (_, trunk) = app
        .post(
            "/api/v1/trunks",
            &admin,
            json!({"name": "carrier", "host": "sip.carrier.example", "allowed_cidrs": []}),
        )
        .await;
    let other = app.tenant("other").await;
    let other_admin = app.api_key(other).await;
    let (_, foreign) = app
        .post(
            "/api/v1/trunks",
            &other_admin,
            json!({"name": "theirs", "host": "sip.carrier.example", "allowed_cidrs": []}),
        )
        .await;
    for (body, field) in [
        (json!({"outbound_trunk_id": foreign["id"]}), "outbound_trunk_id"),
        (json!({"outbound_trunk_id": Uuid::new_v4()}), "outbound_trunk_id"),
        (json!({"outbound_caller_id": "sip:evil@x"}), "outbound_caller_id"),
        (json!({"outbound_caller_id": "12"}), "outbound_caller_id"),
    ] {
        let (status, problem) = app.send(Method::PATCH, "/api/v1/settings", &admin, Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert!(problem.to_string().contains(field), "{problem}");
    }
    let (status, s) = app
        .send(
            Method::PATCH,
            "/api/v1/settings",
            &admin,
            Some(json!({"outbound_trunk_id": trunk["id"], "outbound_caller_id": "+4930999000"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(
        (s["outbound_trunk_id"].clone(), s["outbound_caller_id"].clone()),
        (trunk["id"].clone(), json!("+4930999000"))
    );
    assert_eq!(s["record_calls"], true, "untouched fields stay");
    let mut tx = app.db.db.tenant_tx(t).await.unwrap();
    let route = db::tenant_settings::outbound_route(&mut tx, t).await.unwrap().unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(route.trunk_id.to_string(), trunk["id"].as_str().unwrap());
    assert_eq!(route.caller_id.as_deref(), Some("+4930999000"));
    let (status, s) =
        app.send(Method::PATCH, "/api/v1/settings", &admin, Some(json!({"outbound_caller_id": null}))).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert!(s["outbound_caller_id"].is_null() && s["outbound_trunk_id"] == trunk["id"], "{s}");
}

#[tokio::test]
async fn recordings_download_by_their_presigned_url_only() {
    let app = App::new().await;
    let t = app.tenant("acme").await;
    let other = app.tenant("other").await;
    let admin = app.api_key(t).await;
    let wav = std::env::temp_dir().join(format!("sivo-rec-{}.wav", Uuid::new_v4().simple()));
    std::fs::write(&wav, b"RIFF....WAVEfmt test-audio").unwrap();
    let call = CallId(Uuid::new_v4());
    let mut tx = app.db.db.tenant_tx(t).await.unwrap();
    let new = db::calls::NewCall {
        id: call,
        direction: CallDirection::Inbound,
        from: "+15550001111",
        to: "+4930123456",
        did: None,
        did_id: None,
        trunk_id: None,
        at: app.now,
    };
    db::calls::create_call(&mut tx, t, &new).await.unwrap();
    let end = db::calls::CallEnd {
        at: app.now,
        hangup_cause: "caller_hangup",
        hangup_side: "caller",
        legs: Value::Null,
        timeline: Value::Null,
        recording: Some(json!({"path": wav, "duration_ms": 1000, "bytes": 26, "channels": 2})),
    };
    db::calls::end_call(&mut tx, t, call, &end).await.unwrap();
    tx.commit().await.unwrap();

    let (status, cdr) = app.get(&format!("/api/v1/cdrs/{call}"), &admin).await;
    assert_eq!(status, StatusCode::OK);
    let url = cdr["recording"]["url"].as_str().expect("a signed url").to_owned();
    assert!(url.starts_with(&format!("/recordings/{t}/{call}.wav?expires=")), "{url}");

    // No session needed: the signature is the permission.
    let fetch = |uri: String| {
        let router = app.router.clone();
        async move {
            let response =
                router.oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap()).await.unwrap();
            let status = response.status();
            (status, axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap())
        }
    };
    let (status, bytes) = fetch(url.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&bytes[..], b"RIFF....WAVEfmt test-audio");
    // Tampered signature, another tenant in the path, expired: all 404.
    let mut tampered = url.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    assert_eq!(fetch(tampered).await.0, StatusCode::NOT_FOUND);
    assert_eq!(fetch(url.replace(&t.to_string(), &other.to_string())).await.0, StatusCode::NOT_FOUND);
    let urls = telephony::RecordingUrls::new(&vault::Vault::from_bytes(&[7u8; 32]));
    let expired = urls.path(t, call, app.now - Duration::seconds(1));
    assert_eq!(fetch(expired).await.0, StatusCode::NOT_FOUND);
    let valid_again = urls.path(t, call, app.now + Duration::minutes(5));
    assert_eq!(fetch(valid_again).await.0, StatusCode::OK);
    assert_eq!(
        fetch(format!("/recordings/{t}/not-a-call.wav?expires=1&signature=00")).await.0,
        StatusCode::NOT_FOUND
    );
    let _ = std::fs::remove_file(&wav);
}
