//! The telephony resources of the HTTP API against a real PostgreSQL: agents with SIP
//! registration state and credentials, trunks (CIDR normalisation, secrets never shown, audit)
//! and DIDs (E.164, trunk in use).

use std::net::SocketAddr;
use std::sync::Arc;

use api::{ApiConfig, AppState, ManualClock};
use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, Request, StatusCode};
use chrono::Utc;
use domain::{Role, TenantId, UserId};
use serde_json::{Value, json};
use test_support::TestDb;
use tower::ServiceExt as _;

const PASSWORD: &str = "correct-horse-battery";

struct App {
    router: Router,
    db: TestDb,
    now: chrono::DateTime<Utc>,
}

impl App {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let now = Utc::now();
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
}

#[tokio::test]
async fn agents_get_sip_credentials_and_show_registration_state() {
    let app = App::new().await;
    let t = app.tenant("acme").await;
    let admin = app.api_key(t).await;
    let agent = app.user(t, "agent@acme.example", Role::Agent).await;
    let other = app.user(t, "other@acme.example", Role::Supervisor).await;
    app.user(t, "boss@acme.example", Role::Admin).await;
    let me = app.login("agent@acme.example").await;

    // Admins are not agents; agents and supervisors are, red until registered.
    let (status, list) = app.get("/api/v1/agents", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    assert!(items.iter().all(|a| a["registration"]["state"] == "red" && a["extension"].is_null()));
    assert_eq!(items[0]["sip_domain"], "acme.sip.example.com");

    // The agent reads their own credentials; they are issued once and stay the same.
    let (status, creds) = app.get(&format!("/api/v1/agents/{agent}/sip-credentials"), &me).await;
    assert_eq!(status, StatusCode::OK, "{creds}");
    assert_eq!(creds["extension"], "1000");
    assert_eq!(creds["username"], "1000");
    assert_eq!(creds["domain"], "acme.sip.example.com");
    assert_eq!(creds["uri"], "sip:1000@acme.sip.example.com");
    let password = creds["password"].as_str().unwrap().to_owned();
    assert_eq!(password.len(), 24);
    let (_, again) = app.get(&format!("/api/v1/agents/{agent}/sip-credentials"), &me).await;
    assert_eq!(again["password"], password.as_str());
    // Nobody else's, and no list, for an agent.
    assert_eq!(
        app.get(&format!("/api/v1/agents/{other}/sip-credentials"), &me).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.get(&format!("/api/v1/agents/{other}"), &me).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.get("/api/v1/agents", &me).await.0, StatusCode::FORBIDDEN);
    // Admins can read and rotate; the next extension is 1001.
    let (_, admin_view) = app.get(&format!("/api/v1/agents/{agent}/sip-credentials"), &admin).await;
    assert_eq!(admin_view["password"], password.as_str());
    let (status, rotated) =
        app.send(Method::POST, &format!("/api/v1/agents/{agent}/sip-credentials/rotate"), &admin, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(rotated["password"], password.as_str());
    assert_eq!(rotated["extension"], "1000");
    let (_, second) = app.get(&format!("/api/v1/agents/{other}/sip-credentials"), &admin).await;
    assert_eq!(second["extension"], "1001");
    // Admin users have no SIP account.
    let boss =
        app.get("/api/v1/users?role=admin", &admin).await.1["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get(&format!("/api/v1/agents/{boss}/sip-credentials"), &admin).await.0,
        StatusCode::NOT_FOUND
    );

    // A live binding turns the agent green with its transport and user agent.
    let mut tx = app.db.db.tenant_tx(t).await.unwrap();
    db::sip::upsert_binding(
        &mut tx,
        &db::sip::NewBinding {
            tenant: t,
            user: agent,
            contact: "sip:1000@192.0.2.7:5060;transport=tls",
            expires_at: Utc::now() + chrono::Duration::minutes(10),
            call_id: "c1",
            cseq: 1,
            q: None,
            transport: "tls",
            source: "192.0.2.7:40000",
            node_id: "node-1",
            connection_id: Some(3),
            user_agent: Some("baresip v1.0.0"),
            now: Utc::now(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (status, one) = app.get(&format!("/api/v1/agents/{agent}"), &me).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["registration"]["state"], "green");
    assert_eq!(one["registration"]["transport"], "tls");
    assert_eq!(one["registration"]["user_agent"], "baresip v1.0.0");
    assert_eq!(one["registration"]["bindings"], 1);
    assert_eq!(one["extension"], "1000");

    // Issuing and rotating are audit-logged, without the password.
    let (_, audit) = app.get("/api/v1/audit?limit=200", &admin).await;
    let text = audit.to_string();
    assert!(text.contains("sip_account.created") && text.contains("sip_account.password_rotated"));
    assert!(!text.contains(&password));
}

#[tokio::test]
async fn trunks_and_dids_crud_with_validation_secrets_and_audit() {
    let app = App::new().await;
    let t = app.tenant("acme").await;
    let admin = app.api_key(t).await;
    app.user(t, "agent@acme.example", Role::Agent).await;
    let agent = app.login("agent@acme.example").await;
    assert_eq!(app.get("/api/v1/trunks", &agent).await.0, StatusCode::FORBIDDEN);

    let (status, trunk) = app
        .send(
            Method::POST,
            "/api/v1/trunks",
            &admin,
            Some(json!({
                "name": "Zadarma",
                "host": "SIP.Zadarma.com",
                "allowed_cidrs": ["185.45.152.180/24", "::ffff:10.0.0.1", "2001:db8::1/32", "185.45.152.0/24"],
                "username": "acct-1",
                "password": "carrier-secret",
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{trunk}");
    assert_eq!(trunk["allowed_cidrs"], json!(["185.45.152.0/24", "10.0.0.1/32", "2001:db8::/32"]));
    assert_eq!(trunk["host"], "sip.zadarma.com");
    assert_eq!(trunk["port"], 5060);
    assert_eq!(trunk["transport"], "udp");
    assert_eq!(trunk["status"], "UNKNOWN");
    assert_eq!(trunk["has_password"], true);
    assert!(!trunk.to_string().contains("carrier-secret"));
    let id = trunk["id"].as_str().unwrap().to_owned();

    // Bad input names the field.
    for (body, field) in [
        (json!({"name": "x", "host": "h.example", "allowed_cidrs": ["nope"]}), "allowed_cidrs[0]"),
        (json!({"name": "x", "host": "h.example", "allowed_cidrs": [], "transport": "sctp"}), "transport"),
        (json!({"name": "x", "host": "bad host", "allowed_cidrs": []}), "host"),
        (json!({"name": "x", "host": "h.example", "allowed_cidrs": [], "register": true}), "register"),
    ] {
        let (status, problem) = app.send(Method::POST, "/api/v1/trunks", &admin, Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert!(problem["errors"].to_string().contains(field), "{problem}");
    }
    let (status, dup) = app
        .send(
            Method::POST,
            "/api/v1/trunks",
            &admin,
            Some(json!({"name": "Zadarma", "host": "h.example", "allowed_cidrs": []})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{dup}");

    // PATCH keeps the password unless told otherwise.
    let (status, patched) = app
        .send(
            Method::PATCH,
            &format!("/api/v1/trunks/{id}"),
            &admin,
            Some(json!({"allowed_cidrs": ["185.45.152.0/24"], "transport": "tcp"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["transport"], "tcp");
    assert_eq!(patched["has_password"], true);

    // DIDs: E.164 only, through an existing trunk.
    let (status, bad) = app
        .send(Method::POST, "/api/v1/dids", &admin, Some(json!({"number": "030 123", "trunk_id": id})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    let (status, did) = app
        .send(Method::POST, "/api/v1/dids", &admin, Some(json!({"number": "+4930123456", "trunk_id": id})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{did}");
    assert_eq!(did["destination_type"], "none");
    let (status, _) = app
        .send(Method::POST, "/api/v1/dids", &admin, Some(json!({"number": "+4930123456", "trunk_id": id})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let did_id = did["id"].as_str().unwrap().to_owned();
    // A queue destination must be a queue of the tenant.
    let (status, bad) = app
        .send(
            Method::PATCH,
            &format!("/api/v1/dids/{did_id}"),
            &admin,
            Some(json!({"destination_type": "queue", "destination_id": uuid::Uuid::new_v4()})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    assert!(bad["errors"].to_string().contains("destination_id"), "{bad}");
    let (status, queue) =
        app.send(Method::POST, "/api/v1/queues", &admin, Some(json!({"name": "Sales"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{queue}");
    let queue = queue["id"].as_str().unwrap().to_owned();
    let (status, routed) = app
        .send(
            Method::PATCH,
            &format!("/api/v1/dids/{did_id}"),
            &admin,
            Some(json!({"destination_type": "queue", "destination_id": queue})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{routed}");
    assert_eq!(routed["destination_id"], queue.as_str());

    // A trunk in use cannot go; after its DID, it can.
    assert_eq!(
        app.send(Method::DELETE, &format!("/api/v1/trunks/{id}"), &admin, None).await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.send(Method::DELETE, &format!("/api/v1/dids/{did_id}"), &admin, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.send(Method::DELETE, &format!("/api/v1/trunks/{id}"), &admin, None).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, audit) = app.get("/api/v1/audit?limit=200", &admin).await;
    let text = audit.to_string();
    for action in
        ["trunk.created", "trunk.updated", "trunk.deleted", "did.created", "did.updated", "did.deleted"]
    {
        assert!(text.contains(action), "{action} missing");
    }
    assert!(!text.contains("carrier-secret"));
}
