//! The HTTP API against a real PostgreSQL: authentication (lockout, MFA, sessions), role checks,
//! tenant isolation at the API level, bad input, audit log and conventions.

use std::net::SocketAddr;
use std::sync::Arc;

use api::{ApiConfig, AppState, ManualClock};
use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use chrono::{Duration, Utc};
use domain::{Role, TenantId};
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use test_support::TestDb;
use tower::ServiceExt as _;

const PASSWORD: &str = "correct-horse-battery";

struct App {
    router: Router,
    clock: ManualClock,
    db: TestDb,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

/// An independent RFC 6238 implementation (HMAC-SHA1, dynamic truncation), so tests do not
/// check the production TOTP code against itself.
fn totp_code(secret: &[u8], unix_time: i64) -> String {
    let counter = (unix_time / 30) as u64;
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).unwrap();
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", binary % 1_000_000)
}

fn base32_decode(s: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = 0u64;
    let mut n_bits = 0;
    let mut out = Vec::new();
    for c in s.trim_end_matches('=').bytes() {
        let v = alphabet.iter().position(|&a| a == c).expect("base32") as u64;
        bits = (bits << 5) | v;
        n_bits += 5;
        if n_bits >= 8 {
            n_bits -= 8;
            out.push((bits >> n_bits) as u8);
        }
    }
    out
}

impl App {
    async fn new() -> Self {
        Self::with_config(ApiConfig::default()).await
    }

    async fn with_config(config: ApiConfig) -> Self {
        let db = TestDb::new().await;
        let clock = ManualClock::new(Utc::now());
        let vault = vault::Vault::from_bytes(&[7u8; 32]);
        let state = AppState::new(db.db.clone(), vault, Arc::new(clock.clone()), config);
        let router = api::router(state).layer(MockConnectInfo(SocketAddr::from(([203, 0, 113, 9], 40000))));
        Self { router, clock, db }
    }

    async fn send(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => {
                builder.header("content-type", "application/json").body(Body::from(body.to_string())).unwrap()
            }
            None => builder.body(Body::empty()).unwrap(),
        };
        self.raw(request).await
    }

    async fn raw(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024).await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply { status, headers, body }
    }

    async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(Method::GET, path, Some(token), None).await
    }

    async fn tenant(&self, slug: &str) -> TenantId {
        let input = api::ops::NewTenantInput { slug: slug.into(), name: slug.into(), plan: None };
        let row = api::ops::create_tenant(&self.db.db, input, &api::ops::OpActor::cli(), self.clock_now())
            .await
            .unwrap();
        row.tenant_id()
    }

    async fn user(&self, tenant: Option<TenantId>, email: &str, role: Role) -> domain::UserId {
        let input = api::ops::NewUserInput {
            email: email.into(),
            display_name: None,
            role,
            password: PASSWORD.into(),
        };
        api::ops::create_user(&self.db.db, tenant, input, &api::ops::OpActor::cli(), self.clock_now())
            .await
            .unwrap()
            .user_id()
    }

    fn clock_now(&self) -> chrono::DateTime<Utc> {
        use api::Clock as _;
        self.clock.now()
    }

    async fn login(&self, email: &str, password: &str, code: Option<&str>) -> Reply {
        let mut body = json!({"email": email, "password": password});
        if let Some(code) = code {
            body["totp_code"] = json!(code);
        }
        self.send(Method::POST, "/api/v1/auth/login", None, Some(body)).await
    }

    /// Logs in a user without MFA; returns the token.
    async fn token(&self, email: &str) -> String {
        let reply = self.login(email, PASSWORD, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        reply.body["token"].as_str().unwrap().to_owned()
    }

    /// Enrols TOTP for a user who must have it, and returns (full token, secret).
    async fn mfa_token(&self, email: &str) -> (String, Vec<u8>) {
        let first = self.login(email, PASSWORD, None).await;
        assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
        assert_eq!(first.body["mfa_enrollment_required"], json!(true));
        let enrol_token = first.body["token"].as_str().unwrap().to_owned();
        let enrol = self.send(Method::POST, "/api/v1/auth/mfa/totp/enroll", Some(&enrol_token), None).await;
        assert_eq!(enrol.status, StatusCode::OK, "{:?}", enrol.body);
        let secret = base32_decode(enrol.body["secret"].as_str().unwrap());
        assert!(enrol.body["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/"));
        assert!(enrol.body["qr_svg"].as_str().unwrap().contains("<svg"));
        let now = self.clock_now().timestamp();
        let confirm = self
            .send(
                Method::POST,
                "/api/v1/auth/mfa/totp/confirm",
                Some(&enrol_token),
                Some(json!({"code": totp_code(&secret, now)})),
            )
            .await;
        assert_eq!(confirm.status, StatusCode::OK, "{:?}", confirm.body);
        assert_eq!(confirm.body["recovery_codes"].as_array().unwrap().len(), 10);
        // The next time step: the confirmation code is spent.
        self.clock.advance(Duration::seconds(30));
        let code = totp_code(&secret, self.clock_now().timestamp());
        let login = self.login(email, PASSWORD, Some(&code)).await;
        assert_eq!(login.status, StatusCode::OK, "{:?}", login.body);
        assert_eq!(login.body["mfa_enrollment_required"], json!(false));
        (login.body["token"].as_str().unwrap().to_owned(), secret)
    }

    async fn audit_events(&self, token: &str, query: &str) -> Vec<String> {
        let reply = self.get(&format!("/api/v1/audit?{query}"), token).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Problem bodies differ only in their request id.
fn shape(body: &Value) -> Value {
    let mut body = body.clone();
    body.as_object_mut().unwrap().remove("request_id");
    body
}

#[tokio::test]
async fn lockout_after_five_failures_refuses_the_right_password_and_expires() {
    let app = App::new().await;
    let t = app.tenant("lockco").await;
    app.user(Some(t), "agent@lockco.example", Role::Agent).await;
    for _ in 0..5 {
        let r = app.login("agent@lockco.example", "wrong-password-123", None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.body["code"], "invalid_credentials");
    }
    let sixth = app.login("agent@lockco.example", PASSWORD, None).await;
    assert_eq!(
        sixth.status,
        StatusCode::UNAUTHORIZED,
        "the 6th attempt must be refused even with the right password"
    );
    assert_eq!(sixth.body["code"], "invalid_credentials");

    app.clock.advance(Duration::minutes(14));
    assert_eq!(app.login("agent@lockco.example", PASSWORD, None).await.status, StatusCode::UNAUTHORIZED);
    app.clock.advance(Duration::minutes(2));
    let token = app.token("agent@lockco.example").await;

    // The lock was audit-logged.
    let admin = app.user(Some(t), "admin@lockco.example", Role::Admin).await;
    let (admin_token, _) = app.mfa_token("admin@lockco.example").await;
    let _ = (admin, token);
    let events = app.audit_events(&admin_token, "event=lockout").await;
    assert_eq!(events, vec!["auth.lockout"]);
    let failed = app.audit_events(&admin_token, "event=auth.login.failed&limit=200").await;
    assert_eq!(failed.len(), 5);
}

#[tokio::test]
async fn failures_spread_over_more_than_the_window_do_not_lock() {
    let app = App::new().await;
    let t = app.tenant("slowco").await;
    app.user(Some(t), "agent@slowco.example", Role::Agent).await;
    for _ in 0..8 {
        assert_eq!(
            app.login("agent@slowco.example", "wrong-password-123", None).await.status,
            StatusCode::UNAUTHORIZED
        );
        app.clock.advance(Duration::minutes(4));
    }
    app.token("agent@slowco.example").await;
}

#[tokio::test]
async fn unknown_user_wrong_password_and_locked_account_look_the_same() {
    let app = App::new().await;
    let t = app.tenant("enumco").await;
    app.user(Some(t), "agent@enumco.example", Role::Agent).await;
    app.user(Some(t), "locked@enumco.example", Role::Agent).await;
    for _ in 0..5 {
        app.login("locked@enumco.example", "wrong-password-123", None).await;
    }
    let unknown = app.login("nobody@enumco.example", PASSWORD, None).await;
    let wrong = app.login("agent@enumco.example", "wrong-password-123", None).await;
    let locked = app.login("locked@enumco.example", PASSWORD, None).await;
    for r in [&unknown, &wrong, &locked] {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers.get("content-type").unwrap(), "application/problem+json");
    }
    assert_eq!(shape(&unknown.body), shape(&wrong.body));
    assert_eq!(shape(&wrong.body), shape(&locked.body));
}

#[tokio::test]
async fn admins_must_use_mfa_and_codes_are_single_use() {
    let app = App::new().await;
    let t = app.tenant("mfaco").await;
    app.user(Some(t), "admin@mfaco.example", Role::Admin).await;

    // Before enrolment the session can only enrol.
    let first = app.login("admin@mfaco.example", PASSWORD, None).await;
    let enrol_token = first.body["token"].as_str().unwrap().to_owned();
    let blocked = app.get("/api/v1/users", &enrol_token).await;
    assert_eq!(blocked.status, StatusCode::FORBIDDEN);
    assert_eq!(blocked.body["code"], "mfa_enrollment_required");

    let (token, secret) = app.mfa_token("admin@mfaco.example").await;
    assert_eq!(app.get("/api/v1/users", &token).await.status, StatusCode::OK);

    // Without a code: mfa_required, which is not a failure.
    let missing = app.login("admin@mfaco.example", PASSWORD, None).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.body["code"], "mfa_required");

    // The code just used to log in is refused a second time (replay).
    let used = totp_code(&secret, app.clock_now().timestamp());
    let replay = app.login("admin@mfaco.example", PASSWORD, Some(&used)).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert_eq!(replay.body["code"], "invalid_credentials");

    // ±1 step: the next step's code works now; two steps ahead does not.
    let far = totp_code(&secret, app.clock_now().timestamp() + 60);
    assert_eq!(app.login("admin@mfaco.example", PASSWORD, Some(&far)).await.status, StatusCode::UNAUTHORIZED);
    let next = totp_code(&secret, app.clock_now().timestamp() + 30);
    assert_eq!(app.login("admin@mfaco.example", PASSWORD, Some(&next)).await.status, StatusCode::OK);

    // Wrong codes count toward the lockout (the success above cleared the earlier failures).
    app.clock.advance(Duration::seconds(90));
    for _ in 0..5 {
        assert_eq!(
            app.login("admin@mfaco.example", PASSWORD, Some("000000")).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let good = totp_code(&secret, app.clock_now().timestamp());
    let refused = app.login("admin@mfaco.example", PASSWORD, Some(&good)).await;
    assert_eq!(refused.body["code"], "invalid_credentials", "locked after wrong TOTP codes");

    let events = app.audit_events(&token, "event=mfa").await;
    assert!(events.contains(&"auth.mfa.enabled".to_owned()), "{events:?}");
    let reasons = app.get("/api/v1/audit?event=auth.login.failed", &token).await;
    let reasons: Vec<&str> = reasons.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["after"]["reason"].as_str())
        .collect();
    assert!(reasons.contains(&"totp_replayed"), "{reasons:?}");
    assert!(reasons.contains(&"bad_totp"), "{reasons:?}");
}

#[tokio::test]
async fn recovery_codes_work_once() {
    let app = App::new().await;
    let t = app.tenant("recco").await;
    app.user(Some(t), "admin@recco.example", Role::Admin).await;
    let first = app.login("admin@recco.example", PASSWORD, None).await;
    let enrol_token = first.body["token"].as_str().unwrap().to_owned();
    let enrol = app.send(Method::POST, "/api/v1/auth/mfa/totp/enroll", Some(&enrol_token), None).await;
    let secret = base32_decode(enrol.body["secret"].as_str().unwrap());
    let code = totp_code(&secret, app.clock_now().timestamp());
    let confirm = app
        .send(Method::POST, "/api/v1/auth/mfa/totp/confirm", Some(&enrol_token), Some(json!({"code": code})))
        .await;
    let recovery = confirm.body["recovery_codes"][0].as_str().unwrap().to_owned();
    // The enrolment session ended with the confirmation.
    assert_eq!(app.get("/api/v1/me", &enrol_token).await.status, StatusCode::UNAUTHORIZED);
    let body = json!({"email": "admin@recco.example", "password": PASSWORD, "recovery_code": recovery.to_uppercase()});
    assert_eq!(
        app.send(Method::POST, "/api/v1/auth/login", None, Some(body.clone())).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.send(Method::POST, "/api/v1/auth/login", None, Some(body)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn logout_revokes_at_once_and_sessions_expire() {
    let app = App::new().await;
    let t = app.tenant("sessco").await;
    app.user(Some(t), "agent@sessco.example", Role::Agent).await;

    let token = app.token("agent@sessco.example").await;
    assert_eq!(app.get("/api/v1/me", &token).await.status, StatusCode::OK);
    let out = app.send(Method::POST, "/api/v1/auth/logout", Some(&token), None).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let after = app.get("/api/v1/me", &token).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);

    // Idle expiry: 30 minutes without a request.
    let token = app.token("agent@sessco.example").await;
    app.clock.advance(Duration::minutes(29));
    assert_eq!(app.get("/api/v1/me", &token).await.status, StatusCode::OK);
    app.clock.advance(Duration::minutes(29));
    assert_eq!(app.get("/api/v1/me", &token).await.status, StatusCode::OK, "activity slides the idle window");
    app.clock.advance(Duration::minutes(31));
    assert_eq!(app.get("/api/v1/me", &token).await.body["code"], "session_expired");

    // Absolute expiry: 12 hours however active.
    let token = app.token("agent@sessco.example").await;
    for _ in 0..25 {
        app.clock.advance(Duration::minutes(29));
        if app.get("/api/v1/me", &token).await.status != StatusCode::OK {
            break;
        }
    }
    assert_eq!(app.get("/api/v1/me", &token).await.status, StatusCode::UNAUTHORIZED);

    // Garbage tokens.
    for bad in ["", "x", "sivo_abc_def", "Bearer", &"a".repeat(5000)] {
        assert_eq!(app.get("/api/v1/me", bad).await.status, StatusCode::UNAUTHORIZED, "{bad:?}");
    }
    assert_eq!(app.send(Method::GET, "/api/v1/me", None, None).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn roles_are_checked_on_every_route() {
    let app = App::new().await;
    let t = app.tenant("roleco").await;
    app.user(Some(t), "agent@roleco.example", Role::Agent).await;
    app.user(Some(t), "sup@roleco.example", Role::Supervisor).await;
    app.user(Some(t), "admin@roleco.example", Role::Admin).await;
    app.user(None, "root@platform.example", Role::Superadmin).await;
    let agent = app.token("agent@roleco.example").await;
    let supervisor = app.token("sup@roleco.example").await;
    let (admin, _) = app.mfa_token("admin@roleco.example").await;
    let (root, _) = app.mfa_token("root@platform.example").await;

    let admin_only = [
        (Method::GET, "/api/v1/users"),
        (Method::POST, "/api/v1/users"),
        (Method::GET, "/api/v1/api-keys"),
        (Method::POST, "/api/v1/api-keys"),
        (Method::GET, "/api/v1/audit"),
    ];
    for token in [&agent, &supervisor] {
        for (method, path) in &admin_only {
            let body = (*method == Method::POST).then(|| json!({}));
            let r = app.send(method.clone(), path, Some(token), body).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}");
        }
        assert_eq!(app.get("/api/v1/tenants", token).await.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(app.get("/api/v1/tenants", &admin).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get("/api/v1/users", &admin).await.status, StatusCode::OK);
    assert_eq!(app.get("/api/v1/tenants", &root).await.status, StatusCode::OK);
    // Superadmins act on tenants through platform routes, not tenant routes.
    assert_eq!(app.get("/api/v1/users", &root).await.status, StatusCode::FORBIDDEN);

    // An API key acts as its tenant's admin.
    let created =
        app.send(Method::POST, "/api/v1/api-keys", Some(&admin), Some(json!({"name": "crm"}))).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let key = created.body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sivo_"));
    assert_eq!(app.get("/api/v1/users", &key).await.status, StatusCode::OK);
    let listed = app.get("/api/v1/api-keys", &admin).await;
    assert!(!listed.body.to_string().contains(&key), "keys are shown once only");
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(
        app.send(Method::DELETE, &format!("/api/v1/api-keys/{id}"), Some(&admin), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get("/api/v1/users", &key).await.status, StatusCode::UNAUTHORIZED);

    // Agents read themselves but nobody else.
    let me = app.get("/api/v1/me", &agent).await;
    let my_id = me.body["user"]["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/api/v1/users/{my_id}"), &agent).await.status, StatusCode::OK);
    let sup_id = app.get("/api/v1/me", &supervisor).await.body["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.get(&format!("/api/v1/users/{sup_id}"), &agent).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn other_tenants_resources_answer_404_on_every_id_route() {
    let app = App::new().await;
    let a = app.tenant("tenant-a").await;
    let b = app.tenant("tenant-b").await;
    app.user(Some(a), "admin@a.example", Role::Admin).await;
    let b_user = app.user(Some(b), "agent@b.example", Role::Agent).await;
    app.user(Some(b), "admin@b.example", Role::Admin).await;
    let (a_admin, _) = app.mfa_token("admin@a.example").await;
    let (b_admin, _) = app.mfa_token("admin@b.example").await;
    let b_key =
        app.send(Method::POST, "/api/v1/api-keys", Some(&b_admin), Some(json!({"name": "b-crm"}))).await;
    let b_key_id = b_key.body["id"].as_str().unwrap().to_owned();
    let b_hook = app
        .send(
            Method::POST,
            "/api/v1/webhooks/endpoints",
            Some(&b_admin),
            Some(json!({"url": "https://hooks.b.example/sivo"})),
        )
        .await;
    assert_eq!(b_hook.status, StatusCode::CREATED, "{:?}", b_hook.body);
    let b_hook_id = b_hook.body["id"].as_str().unwrap().to_owned();

    let b_trunk = app
        .send(
            Method::POST,
            "/api/v1/trunks",
            Some(&b_admin),
            Some(
                json!({"name": "carrier", "host": "sip.carrier.example", "allowed_cidrs": ["192.0.2.0/24"]}),
            ),
        )
        .await;
    assert_eq!(b_trunk.status, StatusCode::CREATED, "{:?}", b_trunk.body);
    let b_trunk_id = b_trunk.body["id"].as_str().unwrap().to_owned();
    let b_did = app
        .send(
            Method::POST,
            "/api/v1/dids",
            Some(&b_admin),
            Some(json!({"number": "+4930123456", "trunk_id": b_trunk_id})),
        )
        .await;
    assert_eq!(b_did.status, StatusCode::CREATED, "{:?}", b_did.body);
    let b_did_id = b_did.body["id"].as_str().unwrap().to_owned();

    let b_queue =
        app.send(Method::POST, "/api/v1/queues", Some(&b_admin), Some(json!({"name": "b-sales"}))).await;
    assert_eq!(b_queue.status, StatusCode::CREATED, "{:?}", b_queue.body);
    let b_queue_id = b_queue.body["id"].as_str().unwrap().to_owned();
    let member = app
        .send(
            Method::POST,
            &format!("/api/v1/queues/{b_queue_id}/members"),
            Some(&b_admin),
            Some(json!({"user_id": b_user})),
        )
        .await;
    assert_eq!(member.status, StatusCode::CREATED, "{:?}", member.body);
    // A call of B's, ended, so it is both a call and a CDR.
    let b_call = domain::CallId(uuid::Uuid::now_v7());
    let mut tx = app.db.db.tenant_tx(b).await.unwrap();
    let now = app.clock_now();
    db::calls::create_call(
        &mut tx,
        b,
        &db::calls::NewCall {
            id: b_call,
            direction: domain::events::CallDirection::Inbound,
            from: "+15550100001",
            to: "+4930123456",
            did: Some("+4930123456"),
            did_id: None,
            trunk_id: None,
            at: now,
        },
    )
    .await
    .unwrap();
    let end = db::calls::CallEnd {
        at: now,
        hangup_cause: "normal_clearing",
        hangup_side: "caller",
        legs: Value::Null,
        timeline: Value::Null,
        recording: None,
    };
    db::calls::end_call(&mut tx, b, b_call, &end).await.unwrap();
    tx.commit().await.unwrap();

    // B's id for each resource route prefix. A new `{id}` route must be added here, or the
    // OpenAPI sweep below fails: isolation is checked for every resource route.
    let ids = [
        ("/api/v1/users/", b_user.to_string()),
        ("/api/v1/agents/", b_user.to_string()),
        ("/api/v1/trunks/", b_trunk_id.clone()),
        ("/api/v1/dids/", b_did_id.clone()),
        ("/api/v1/api-keys/", b_key_id.clone()),
        ("/api/v1/tenants/", b.to_string()),
        ("/api/v1/webhooks/endpoints/", b_hook_id.clone()),
        ("/api/v1/queues/", b_queue_id.clone()),
        ("/api/v1/calls/", b_call.to_string()),
        ("/api/v1/cdrs/", b_call.to_string()),
    ];
    // A valid body for routes that need one, so the probe reaches the lookup.
    let body_for = |path: &str| {
        if path.ends_with("/test") {
            json!({"event_type": "call.created"})
        } else if path.ends_with("/status") {
            json!({"status": "available"})
        } else if path.ends_with("/members") {
            json!({"user_id": b_user})
        } else if path.ends_with("/transfer") || path.ends_with("/consult") {
            json!({"extension": "1000"})
        } else {
            json!({})
        }
    };
    let openapi = app.send(Method::GET, "/api/openapi.json", None, None).await.body;
    let mut checked = 0;
    for (path, item) in openapi["paths"].as_object().unwrap() {
        if !path.contains("{id}") {
            continue;
        }
        let (_, id) = ids
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix))
            .unwrap_or_else(|| panic!("no cross-tenant probe for {path}: add its resource to `ids`"));
        let concrete = path.replace("{id}", id).replace("{user_id}", &b_user.to_string());
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = matches!(method, Method::PATCH | Method::POST | Method::PUT).then(|| body_for(path));
            let r = app.send(method.clone(), &concrete, Some(&a_admin), body).await;
            let expected = if path.starts_with("/api/v1/tenants/") && method != Method::GET {
                StatusCode::FORBIDDEN // tenant admins never manage tenants, whichever id
            } else {
                StatusCode::NOT_FOUND
            };
            assert_eq!(r.status, expected, "{method} {path} with tenant B's id: {:?}", r.body);
            assert!(!r.body.to_string().contains("agent@b.example"));
            checked += 1;
        }
    }
    assert!(checked >= 15, "expected to probe every id route, probed {checked}");
    assert_eq!(
        app.get(&format!("/api/v1/webhooks/endpoints/{b_hook_id}"), &b_admin).await.status,
        StatusCode::OK
    );
    // B's things are untouched and A's key listing does not show them.
    assert_eq!(app.get(&format!("/api/v1/users/{b_user}"), &b_admin).await.status, StatusCode::OK);
    assert_eq!(app.get("/api/v1/users", &b_admin).await.body["items"].as_array().unwrap().len(), 2);
    let a_users = app.get("/api/v1/users", &a_admin).await;
    assert!(!a_users.body.to_string().contains("@b.example"));
    assert_eq!(app.get("/api/v1/api-keys", &a_admin).await.body["items"], json!([]));
    let a_audit = app.get("/api/v1/audit?limit=200", &a_admin).await;
    assert!(!a_audit.body.to_string().contains(&b.to_string()), "A's audit log mentions tenant B");
}

#[tokio::test]
async fn bad_input_gets_problem_json_naming_the_field() {
    let app = App::new().await;
    let t = app.tenant("badco").await;
    app.user(Some(t), "admin@badco.example", Role::Admin).await;
    let (admin, _) = app.mfa_token("admin@badco.example").await;

    let cases = [
        (json!({"email": "not-an-email", "role": "agent", "password": PASSWORD}), "email"),
        (json!({"email": "x@badco.example", "role": "agent", "password": "short"}), "password"),
        (json!({"email": "x@badco.example", "role": "agent", "password": "x".repeat(129)}), "password"),
        (json!({"email": "x@badco.example", "role": "wizard", "password": PASSWORD}), "role"),
        (json!({"email": 42, "role": "agent", "password": PASSWORD}), "email"),
        (
            json!({"email": "x@badco.example", "role": "agent", "password": PASSWORD, "is_root": true}),
            "is_root",
        ),
        (json!({"email": "x@badco.example", "role": "superadmin", "password": PASSWORD}), "role"),
    ];
    for (body, field) in cases {
        let r = app.send(Method::POST, "/api/v1/users", Some(&admin), Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {:?}", r.body);
        assert_eq!(r.headers.get("content-type").unwrap(), "application/problem+json");
        let fields: Vec<&str> =
            r.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert!(fields.contains(&field), "{body}: expected {field} in {fields:?}");
        assert!(r.body["request_id"].is_string());
    }

    // Duplicate e-mail: 409 naming the field.
    let ok = app
        .send(
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            Some(json!({"email": "dup@badco.example", "role": "agent", "password": PASSWORD})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    let dup = app
        .send(
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            Some(json!({"email": "DUP@badco.example", "role": "agent", "password": PASSWORD})),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.body["code"], "email_taken");

    // Malformed JSON, wrong content type, oversized body.
    let raw = |body: Body, content_type: &str| {
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/users")
            .header("authorization", format!("Bearer {admin}"))
            .header("content-type", content_type)
            .body(body)
            .unwrap()
    };
    let r = app.raw(raw(Body::from("{\"email\": "), "application/json")).await;
    assert_eq!((r.status, r.body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("malformed_json")));
    let r = app.raw(raw(Body::from("email=x"), "application/x-www-form-urlencoded")).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = format!("{{\"email\": \"{}\"}}", "a".repeat(200_000));
    let r = app.raw(raw(Body::from(huge), "application/json")).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );

    // Bad query parameters and ids.
    let r = app.get("/api/v1/users?limit=0", &admin).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["errors"][0]["field"], "limit");
    let r = app.get("/api/v1/users?cursor=garbage", &admin).await;
    assert_eq!(r.body["errors"][0]["field"], "cursor");
    let r = app.get("/api/v1/users?role=wizard", &admin).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = app.get("/api/v1/audit?from=yesterday", &admin).await;
    assert_eq!(r.body["errors"][0]["field"], "from");
    assert_eq!(app.get("/api/v1/users/not-a-uuid", &admin).await.status, StatusCode::NOT_FOUND);
    // Login with absurd input is simply invalid.
    let r = app.login(&"a".repeat(10_000), "x", None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY.min(StatusCode::UNAUTHORIZED));
}

#[tokio::test]
async fn admin_changes_are_audited_with_before_after_ip_and_filters() {
    let app = App::new().await;
    let t = app.tenant("auditco").await;
    let admin_id = app.user(Some(t), "admin@auditco.example", Role::Admin).await;
    let (admin, _) = app.mfa_token("admin@auditco.example").await;
    let created = app.send(Method::POST, "/api/v1/users", Some(&admin), Some(json!({"email": "ana@auditco.example", "role": "agent", "password": PASSWORD, "display_name": "Ana"}))).await;
    let ana = created.body["id"].as_str().unwrap().to_owned();
    let start = app.clock_now();
    app.clock.advance(Duration::minutes(5));
    let patched = app
        .send(
            Method::PATCH,
            &format!("/api/v1/users/{ana}"),
            Some(&admin),
            Some(json!({"display_name": "Ana Lima", "role": "supervisor"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    assert_eq!(
        app.send(Method::DELETE, &format!("/api/v1/users/{ana}"), Some(&admin), None).await.status,
        StatusCode::NO_CONTENT
    );

    let r = app.get(&format!("/api/v1/audit?resource=user:{ana}"), &admin).await;
    let items = r.body["items"].as_array().unwrap();
    let events: Vec<&str> = items.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, vec!["user.deleted", "user.updated", "user.created"]);
    let update = &items[1];
    assert_eq!(update["before"]["display_name"], "Ana");
    assert_eq!(update["after"]["display_name"], "Ana Lima");
    assert_eq!(update["after"]["role"], "supervisor");
    assert_eq!(update["actor_id"], json!(admin_id.to_string()));
    assert_eq!(update["actor_label"], "admin@auditco.example");
    assert_eq!(update["source_ip"], "203.0.113.9");
    assert!(update["request_id"].is_string());

    // Time range and user filters.
    let since = (start + Duration::minutes(1)).to_rfc3339();
    let q = format!("from={}&user={admin_id}", urlencode(&since));
    let events = app.audit_events(&admin, &q).await;
    assert_eq!(events, vec!["user.deleted", "user.updated"]);
    let to = format!("to={}&event=user", urlencode(&since));
    assert_eq!(
        app.audit_events(&admin, &to).await,
        vec!["user.created", "user.created"],
        "the CLI created the admin, the admin created Ana"
    );

    // Pagination walks everything exactly once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/api/v1/audit?limit=2&cursor={c}"),
            None => "/api/v1/audit?limit=2".to_owned(),
        };
        let page = app.get(&q, &admin).await;
        for item in page.body["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let all = app.get("/api/v1/audit?limit=200", &admin).await.body["items"].as_array().unwrap().len();
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (all, all));
    assert!(all >= 6);
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}

#[tokio::test]
async fn conventions_health_metrics_openapi_request_ids() {
    let app = App::new().await;
    let r = app.send(Method::GET, "/healthz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app.send(Method::GET, "/readyz", None, None).await;
    assert_eq!((r.status, r.body["database"].as_str()), (StatusCode::OK, Some("ok")));
    assert!(r.headers.get("x-request-id").is_some());

    let request =
        Request::builder().uri("/nope").header("x-request-id", "trace-me-123").body(Body::empty()).unwrap();
    let r = app.raw(request).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["request_id"], "trace-me-123");
    assert_eq!(r.headers.get("x-request-id").unwrap(), "trace-me-123");
    let r = app.send(Method::DELETE, "/healthz", None, None).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );

    let spec = app.send(Method::GET, "/api/openapi.json", None, None).await.body;
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/auth/login",
        "/api/v1/auth/logout",
        "/api/v1/me",
        "/api/v1/users",
        "/api/v1/users/{id}",
        "/api/v1/tenants",
        "/api/v1/api-keys",
        "/api/v1/audit",
        "/api/v1/auth/mfa/totp/enroll",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} missing from OpenAPI");
    }
    assert!(spec["components"]["schemas"]["Problem"].is_object());

    let metrics = app.send(Method::GET, "/metrics", None, None).await.body;
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains("sivo_http_requests_total{method=\"GET\",route=\"/readyz\",status=\"200\"}"),
        "{text}"
    );
    assert!(text.contains("sivo_http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn superadmin_manages_tenants() {
    let app = App::new().await;
    app.user(None, "root@platform.example", Role::Superadmin).await;
    let (root, _) = app.mfa_token("root@platform.example").await;
    let created = app
        .send(
            Method::POST,
            "/api/v1/tenants",
            Some(&root),
            Some(json!({"slug": "newco", "name": "New Co", "plan": "pro"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let dup = app
        .send(Method::POST, "/api/v1/tenants", Some(&root), Some(json!({"slug": "newco", "name": "Again"})))
        .await;
    assert_eq!((dup.status, dup.body["code"].as_str()), (StatusCode::CONFLICT, Some("slug_taken")));
    let bad = app
        .send(
            Method::POST,
            "/api/v1/tenants",
            Some(&root),
            Some(json!({"slug": "x", "name": "X", "plan": "gold"})),
        )
        .await;
    let fields: Vec<&str> =
        bad.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["slug", "plan"]);
    let patched = app
        .send(
            Method::PATCH,
            &format!("/api/v1/tenants/{id}"),
            Some(&root),
            Some(json!({"plan": "enterprise"})),
        )
        .await;
    assert_eq!(patched.body["plan"], "enterprise");
    let list = app.get("/api/v1/tenants", &root).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.send(Method::DELETE, &format!("/api/v1/tenants/{id}"), Some(&root), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get(&format!("/api/v1/tenants/{id}"), &root).await.status, StatusCode::NOT_FOUND);
    let events = app.audit_events(&root, "resource=tenant").await;
    assert_eq!(events, vec!["tenant.deleted", "tenant.updated", "tenant.created"]);
    let logins = app.audit_events(&root, "event=login&limit=200").await;
    assert!(logins.contains(&"auth.login.succeeded".to_owned()));
}

#[tokio::test]
async fn serves_the_web_app_with_client_side_routes_but_never_for_api_paths() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<!doctype html><title>SIVO</title>").unwrap();
    std::fs::write(dir.path().join("app.js"), "console.log(1)").unwrap();
    let config = ApiConfig { web_dir: Some(dir.path().to_owned()), ..ApiConfig::default() };
    let app = App::with_config(config).await;
    let page = app.send(Method::GET, "/", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.as_str().unwrap().contains("<title>SIVO</title>"));
    let deep = app.send(Method::GET, "/settings/users", None, None).await;
    assert!(deep.body.as_str().unwrap().contains("<title>SIVO</title>"), "client routes get index.html");
    let asset = app.send(Method::GET, "/app.js", None, None).await;
    assert_eq!(asset.body.as_str(), Some("console.log(1)"));
    let api_miss = app.send(Method::GET, "/api/v1/nope", None, None).await;
    assert_eq!((api_miss.status, api_miss.body["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    assert_eq!(app.send(Method::GET, "/healthz", None, None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn webhook_endpoints_are_https_only_with_a_secret_shown_once() {
    let app = App::new().await;
    let t = app.tenant("hookco").await;
    app.user(Some(t), "admin@hookco.example", Role::Admin).await;
    let (admin, _) = app.mfa_token("admin@hookco.example").await;
    let post = |body: Value| app.send(Method::POST, "/api/v1/webhooks/endpoints", Some(&admin), Some(body));

    let plain = post(json!({"url": "http://crm.example.com/hook"})).await;
    assert_eq!(plain.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(plain.body["errors"][0]["field"], "url");
    assert!(plain.body["errors"][0]["message"].as_str().unwrap().contains("https://"));
    for private in [
        "https://127.0.0.1/h",
        "https://10.1.2.3/h",
        "https://[::1]/h",
        "https://169.254.169.254/",
        "https://2130706433/",
    ] {
        let r = post(json!({"url": private})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{private}");
    }
    let bad_type = post(
        json!({"url": "https://crm.example.com/hook", "event_types": ["call.created", "call.exploded"]}),
    )
    .await;
    assert_eq!(bad_type.body["errors"][0]["field"], "event_types[1]");

    let created = post(json!({"url": "https://crm.example.com/hook", "description": "CRM", "event_types": ["call.ended", "call.created"]})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let secret = created.body["webhook_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let id = created.body["id"].as_str().unwrap().to_owned();
    let listed = app.get("/api/v1/webhooks/endpoints", &admin).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    assert!(!listed.body.to_string().contains(&secret), "the secret is shown once only");
    let one = app.get(&format!("/api/v1/webhooks/endpoints/{id}"), &admin).await;
    assert_eq!(one.body["event_types"], json!(["call.ended", "call.created"]));
    assert!(one.body.get("webhook_secret").is_none());

    let rotated = app
        .send(Method::POST, &format!("/api/v1/webhooks/endpoints/{id}/rotate-secret"), Some(&admin), None)
        .await;
    let new_secret = rotated.body["webhook_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    let patched = app
        .send(
            Method::PATCH,
            &format!("/api/v1/webhooks/endpoints/{id}"),
            Some(&admin),
            Some(json!({"enabled": false, "event_types": []})),
        )
        .await;
    assert_eq!(
        (patched.body["enabled"].as_bool(), patched.body["event_types"].clone()),
        (Some(false), json!([]))
    );
    assert_eq!(app.get(&format!("/api/v1/webhooks/endpoints/{id}/deliveries"), &admin).await.body, json!([]));
    assert_eq!(
        app.get(&format!("/api/v1/webhooks/endpoints/{id}/dead-letters"), &admin).await.body["items"],
        json!([])
    );
    let export = app.get(&format!("/api/v1/webhooks/endpoints/{id}/dead-letters/export"), &admin).await;
    assert_eq!(export.body, json!([]));
    assert!(export.headers.get("content-disposition").unwrap().to_str().unwrap().contains("attachment"));
    let types = app.get("/api/v1/webhooks/event-types", &admin).await;
    assert_eq!(types.body.as_array().unwrap().len(), 13);
    assert_eq!(
        app.send(Method::DELETE, &format!("/api/v1/webhooks/endpoints/{id}"), Some(&admin), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );

    let events = app.audit_events(&admin, "resource=webhook_endpoint").await;
    assert_eq!(
        events,
        vec![
            "webhook.endpoint.deleted",
            "webhook.endpoint.updated",
            "webhook.endpoint.secret_rotated",
            "webhook.endpoint.created"
        ]
    );
    let audit = app.get("/api/v1/audit?resource=webhook_endpoint&limit=200", &admin).await;
    assert!(
        !audit.body.to_string().contains(&secret) && !audit.body.to_string().contains(new_secret),
        "secrets never reach the audit log"
    );
}
