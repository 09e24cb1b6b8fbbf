//! Realtime events over Socket.IO against a real PostgreSQL and a real HTTP server on loopback,
//! with a minimal Engine.IO v4 / Socket.IO v5 client over WebSocket (what socket.io-client 4
//! speaks): authentication in the handshake, events only after commit, only to their tenant,
//! catch-up after the listening connection is lost, sockets cut when their session ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use api::{ApiConfig, AppState, SystemClock};
use chrono::Utc;
use domain::events::{AgentPaused, AgentStatus, AgentStatusChanged, Event, EventPayload};
use domain::{EventId, Role, TenantId, UserId};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use sqlx::{ConnectOptions as _, Connection as _};
use test_support::TestDb;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

const PASSWORD: &str = "correct-horse-battery";
/// How long a test waits for something that should happen.
const WAIT: Duration = Duration::from_secs(10);
/// How long a test waits to be sure something does not happen.
const QUIET: Duration = Duration::from_millis(1500);

struct Server {
    addr: SocketAddr,
    db: TestDb,
    stop: watch::Sender<bool>,
    state: AppState,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    realtime: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start() -> Self {
        let db = TestDb::new().await;
        let vault = vault::Vault::from_bytes(&[7u8; 32]);
        let state = AppState::new(db.db.clone(), vault, Arc::new(SystemClock), ApiConfig::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let mut http_stop = stop_rx.clone();
        let http = tokio::spawn(api::serve(listener, api::router(state.clone()), async move {
            let _ = http_stop.wait_for(|s| *s).await;
        }));
        let realtime =
            tokio::spawn(api::realtime::run_with(state.clone(), stop_rx, Duration::from_millis(300)));
        Self { addr, db, stop, state, http, realtime }
    }

    async fn tenant(&self, slug: &str) -> TenantId {
        let input = api::ops::NewTenantInput { slug: slug.into(), name: slug.into(), plan: None };
        api::ops::create_tenant(&self.db.db, input, &api::ops::OpActor::cli(), Utc::now())
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
        api::ops::create_user(&self.db.db, Some(tenant), input, &api::ops::OpActor::cli(), Utc::now())
            .await
            .unwrap()
            .user_id()
    }

    async fn api_key(&self, tenant: TenantId) -> String {
        api::ops::create_api_key(
            &self.db.db,
            tenant,
            "wallboard",
            None,
            &api::ops::OpActor::cli(),
            Utc::now(),
        )
        .await
        .unwrap()
        .1
    }

    /// Logs in over HTTP; returns the session token.
    async fn login(&self, email: &str) -> String {
        let body: Value = reqwest::Client::new()
            .post(format!("http://{}/api/v1/auth/login", self.addr))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["token"].as_str().unwrap_or_else(|| panic!("login failed: {body}")).to_owned()
    }

    async fn logout(&self, token: &str) {
        let status = reqwest::Client::new()
            .post(format!("http://{}/api/v1/auth/logout", self.addr))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "logout: {status}");
    }

    /// Writes `event` to the outbox in a tenant transaction that commits or rolls back.
    async fn enqueue(&self, event: &Event, commit: bool) {
        let mut tx = self.db.db.tenant_tx(event.tenant_id).await.unwrap();
        db::outbox::enqueue(&mut tx, event).await.unwrap();
        if commit {
            tx.commit().await.unwrap();
        } else {
            tx.rollback().await.unwrap();
        }
    }

    async fn connect(&self, auth: Option<Value>) -> Result<Client, String> {
        Client::connect(self.addr, auth, &[]).await
    }

    async fn shutdown(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(WAIT, self.realtime).await.expect("realtime stops").unwrap();
        tokio::time::timeout(WAIT, self.http).await.expect("HTTP drains").unwrap().unwrap();
        drop(self.state);
    }
}

fn paused(tenant: TenantId, reason: &str) -> Event {
    Event::new(
        EventId(Uuid::now_v7()),
        tenant,
        Utc::now(),
        EventPayload::AgentPaused(AgentPaused { agent_id: UserId(Uuid::now_v7()), reason: reason.into() }),
    )
}

/// One Socket.IO connection on the default namespace, over the WebSocket transport only.
struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    /// Opens the Engine.IO session and connects to `/` with `auth`; `Err` carries the
    /// `connect_error` message.
    async fn connect(
        addr: SocketAddr,
        auth: Option<Value>,
        headers: &[(&str, String)],
    ) -> Result<Self, String> {
        let mut request =
            format!("ws://{addr}/socket.io/?EIO=4&transport=websocket").into_client_request().unwrap();
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async(request).await.expect("WebSocket upgrade");
        let mut client = Self { ws };
        let open = client.frame().await.expect("Engine.IO open packet");
        assert!(open.starts_with('0'), "not an open packet: {open}");
        let open: Value = serde_json::from_str(&open[1..]).unwrap();
        assert!(open["sid"].is_string() && open["pingInterval"].is_number(), "{open}");
        let connect = match auth {
            Some(auth) => format!("40{auth}"),
            None => "40".to_owned(),
        };
        client.ws.send(Message::text(connect)).await.unwrap();
        loop {
            let frame = client.frame().await.expect("an answer to the connect packet");
            if let Some(ok) = frame.strip_prefix("40") {
                let ok: Value = serde_json::from_str(ok).unwrap();
                assert!(ok["sid"].is_string(), "{ok}");
                return Ok(client);
            }
            if let Some(error) = frame.strip_prefix("44") {
                let error: Value = serde_json::from_str(error).unwrap();
                return Err(error["message"].as_str().unwrap_or_default().to_owned());
            }
        }
    }

    /// The next Engine.IO message that is not a ping (pings are answered); None when closed.
    async fn frame(&mut self) -> Option<String> {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next()).await.expect("a frame in time")?;
            match message {
                Ok(Message::Text(text)) if text.as_str() == "2" => {
                    self.ws.send(Message::text("3")).await.ok()?;
                }
                Ok(Message::Text(text)) => return Some(text.as_str().to_owned()),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next Socket.IO event `(name, data)` within `within`; None if none came (or the
    /// connection closed).
    async fn event_within(&mut self, within: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.frame()).await.ok()??;
            // "4" message, "2" event, on the default namespace: 42["name", data]
            if let Some(body) = frame.strip_prefix("42") {
                let array: Value = serde_json::from_str(body).unwrap();
                return Some((array[0].as_str().unwrap().to_owned(), array[1].clone()));
            }
            // "41": the server disconnected us from the namespace.
            if frame.starts_with("41") || frame.starts_with('1') {
                return Some(("disconnect".into(), Value::Null));
            }
        }
    }

    async fn event(&mut self) -> Value {
        let (name, data) = self.event_within(WAIT).await.expect("an event in time");
        assert_eq!(name, "event", "{data}");
        data
    }

    async fn no_event(&mut self) {
        if let Some(got) = self.event_within(QUIET).await {
            panic!("expected nothing, got {got:?}");
        }
    }
}

#[tokio::test]
async fn committed_events_reach_their_tenant_only() {
    let server = Server::start().await;
    let acme = server.tenant("acme").await;
    let globex = server.tenant("globex").await;
    server.user(acme, "agent@acme.example", Role::Agent).await;
    let token = server.login("agent@acme.example").await;
    let globex_key = server.api_key(globex).await;

    let mut agent = server.connect(Some(json!({"token": token}))).await.expect("agent admitted");
    let mut other = server.connect(Some(json!({"token": globex_key}))).await.expect("API key admitted");

    // Committed: pushed with exactly the webhook body. Rolled back: never. Then a second
    // committed one, so the rolled-back one had its chance to arrive in between.
    let first = paused(acme, "lunch");
    let rolled_back = paused(acme, "never happened");
    let second = Event::new(
        EventId(Uuid::now_v7()),
        acme,
        Utc::now(),
        EventPayload::AgentStatusChanged(AgentStatusChanged {
            agent_id: UserId(Uuid::now_v7()),
            previous: AgentStatus::OnBreak,
            status: AgentStatus::Available,
            reason: None,
        }),
    );
    server.enqueue(&first, true).await;
    server.enqueue(&rolled_back, false).await;
    server.enqueue(&second, true).await;
    let got = agent.event().await;
    assert_eq!(got, serde_json::to_value(&first).unwrap());
    assert_eq!(got["type"], "agent.paused");
    assert_eq!(got["data"]["reason"], "lunch");
    let got = agent.event().await;
    assert_eq!(got["id"], second.id.as_uuid().to_string(), "the rolled-back event was pushed: {got}");
    assert_eq!(got, serde_json::to_value(&second).unwrap());
    // The same JSON the webhook body carries (the outbox payload).
    let mut tx = server.db.db.tenant_tx(acme).await.unwrap();
    let row = db::outbox::get(&mut tx, second.id.as_uuid()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(got, row.payload);

    // The other tenant heard nothing of acme's; its own event comes first and alone.
    let theirs = paused(globex, "training");
    server.enqueue(&theirs, true).await;
    let got = other.event().await;
    assert_eq!(got["id"], theirs.id.as_uuid().to_string(), "another tenant's event leaked: {got}");
    assert_eq!(got["tenant_id"], globex.as_uuid().to_string());
    other.no_event().await;
    agent.no_event().await;

    // The webhook tester's synthetic events (for one endpoint) are not pushed.
    let mut tx = server.db.db.tenant_tx(acme).await.unwrap();
    db::outbox::enqueue_for(&mut tx, &paused(acme, "synthetic"), Some(Uuid::now_v7())).await.unwrap();
    tx.commit().await.unwrap();
    agent.no_event().await;

    server.shutdown().await;
}

#[tokio::test]
async fn bad_missing_and_ended_credentials_are_refused() {
    let server = Server::start().await;
    let acme = server.tenant("acme").await;
    server.user(acme, "sup@acme.example", Role::Supervisor).await;

    let refused = server.connect(Some(json!({"token": "not-a-token"}))).await.err().expect("refused");
    assert!(refused.starts_with("session_invalid:"), "{refused}");
    let refused = server.connect(None).await.err().expect("refused without a token");
    assert!(refused.starts_with("unauthorized:"), "{refused}");
    let refused =
        server.connect(Some(json!({"token": "sivo_abcdefghijkl_nope"}))).await.err().expect("refused");
    assert!(refused.starts_with("unauthorized:"), "{refused}");

    // A logged-out session is refused; the message is meant for people.
    let token = server.login("sup@acme.example").await;
    server.logout(&token).await;
    let refused = server.connect(Some(json!({"token": token}))).await.err().expect("refused after logout");
    assert_eq!(refused, "session_invalid: session is invalid or has ended; log in again");

    // The session cookie counts when the handshake carries no token (the web app's case), but
    // not from another site's page.
    let token = server.login("sup@acme.example").await;
    let cookie = ("cookie", format!("sivo_session={token}"));
    let refused =
        Client::connect(server.addr, None, &[cookie.clone(), ("origin", "https://evil.example".into())])
            .await
            .err()
            .expect("cross-origin cookie refused");
    assert!(refused.starts_with("forbidden:"), "{refused}");
    let same_origin = ("origin", format!("http://{}", server.addr));
    let mut by_cookie =
        Client::connect(server.addr, None, &[cookie, same_origin]).await.expect("admitted by cookie");
    let event = paused(acme, "coffee");
    server.enqueue(&event, true).await;
    assert_eq!(by_cookie.event().await["id"], event.id.as_uuid().to_string());

    // Logging out while connected: the socket is told and cut at the next check.
    server.logout(&token).await;
    let (name, data) = by_cookie.event_within(WAIT).await.expect("told the session ended");
    assert_eq!(name, "session_ended");
    assert_eq!(data["code"], "session_invalid");
    let (name, _) = by_cookie.event_within(WAIT).await.expect("disconnected");
    assert_eq!(name, "disconnect");
    assert_eq!(server.state.realtime.connected(), 0);

    server.shutdown().await;
}

#[tokio::test]
async fn a_lost_listener_connection_catches_up() {
    let server = Server::start().await;
    let acme = server.tenant("acme").await;
    server.user(acme, "agent@acme.example", Role::Agent).await;
    let token = server.login("agent@acme.example").await;
    let mut agent = server.connect(Some(json!({"token": token}))).await.unwrap();

    let before = paused(acme, "before");
    server.enqueue(&before, true).await;
    assert_eq!(agent.event().await["id"], before.id.as_uuid().to_string());

    // An event committed while nobody listens: written without its notification, then the
    // listening connection is killed, as a PostgreSQL restart would.
    let missed = paused(acme, "while down");
    let mut tx = server.db.db.tenant_tx(acme).await.unwrap();
    sqlx::query(
        "insert into outbox (id, tenant_id, event_type, payload, created_at) values ($1, $2, $3, $4, $5)",
    )
    .bind(missed.id.as_uuid())
    .bind(acme.as_uuid())
    .bind("agent.paused")
    .bind(serde_json::to_value(&missed).unwrap())
    .bind(missed.created_at)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut su = server.db.superuser_options().connect().await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "select pg_terminate_backend(pid) from pg_stat_activity
         where datname = current_database() and query ilike 'listen%sivo_%'",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(killed, vec![true], "one listening connection");
    su.close().await.unwrap();

    // Replayed once after the reconnect (the event seen before is not repeated), and live
    // events flow again.
    let got = agent.event().await;
    assert_eq!(got["id"], missed.id.as_uuid().to_string(), "{got}");
    // Change hints are not stored: after the reconnect every kind is announced once with no id,
    // so pages re-read whatever may have changed meanwhile.
    let mut resync = Vec::new();
    for _ in 0..2 {
        let (name, data) = agent.event_within(WAIT).await.expect("a resync hint");
        assert_eq!(name, "changed", "{data}");
        assert!(data["id"].is_null(), "{data}");
        resync.push(data["resource"].as_str().unwrap().to_owned());
    }
    resync.sort();
    assert_eq!(resync, ["agent.registration", "trunk.status"]);
    let after = paused(acme, "after");
    server.enqueue(&after, true).await;
    assert_eq!(agent.event().await["id"], after.id.as_uuid().to_string());
    agent.no_event().await;

    server.shutdown().await;
}

#[tokio::test]
async fn change_hints_reach_their_tenant_only_after_commit() {
    use db::outbox::Changed;

    let server = Server::start().await;
    let acme = server.tenant("acme").await;
    let globex = server.tenant("globex").await;
    server.user(acme, "sup@acme.example", Role::Supervisor).await;
    let token = server.login("sup@acme.example").await;
    let globex_key = server.api_key(globex).await;
    let mut sup = server.connect(Some(json!({"token": token}))).await.expect("supervisor admitted");
    let mut other = server.connect(Some(json!({"token": globex_key}))).await.expect("API key admitted");

    let notify = |tenant: TenantId, resource: Changed, id: Uuid, commit: bool| {
        let db = server.db.db.clone();
        async move {
            let mut tx = db.tenant_tx(tenant).await.unwrap();
            db::outbox::notify_changed(&mut tx, tenant, resource, id).await.unwrap();
            if commit {
                tx.commit().await.unwrap();
            } else {
                tx.rollback().await.unwrap();
            }
        }
    };

    // Rolled back: nobody hears it. Committed: the tenant's sockets get `changed` with the
    // resource and id, nothing else.
    let agent = Uuid::now_v7();
    let trunk = Uuid::now_v7();
    notify(acme, Changed::AgentRegistration, Uuid::now_v7(), false).await;
    notify(acme, Changed::AgentRegistration, agent, true).await;
    let (name, data) = sup.event_within(WAIT).await.expect("a change hint");
    assert_eq!(name, "changed", "{data}");
    assert_eq!(data, json!({"resource": "agent.registration", "id": agent.to_string()}));
    notify(acme, Changed::TrunkStatus, trunk, true).await;
    let (name, data) = sup.event_within(WAIT).await.expect("a change hint");
    assert_eq!(name, "changed", "{data}");
    assert_eq!(
        data,
        json!({"resource": "trunk.status", "id": trunk.to_string()}),
        "the rolled-back hint was pushed"
    );
    sup.no_event().await;
    other.no_event().await;

    // The other tenant hears its own, and acme nothing of it.
    let theirs = Uuid::now_v7();
    notify(globex, Changed::TrunkStatus, theirs, true).await;
    let (name, data) = other.event_within(WAIT).await.expect("a change hint");
    assert_eq!(name, "changed", "{data}");
    assert_eq!(data["id"], theirs.to_string());
    other.no_event().await;
    sup.no_event().await;

    // Hints and events share the connection: an event still arrives as `event`.
    let event = paused(acme, "after hints");
    server.enqueue(&event, true).await;
    assert_eq!(sup.event().await["id"], event.id.as_uuid().to_string());

    server.shutdown().await;
}
