//! Realtime events for logged-in users: Socket.IO (`socketioxide`) at `/socket.io/`.
//!
//! * **Who.** A client authenticates in the handshake, `auth: { token }`, with a session token or
//!   an API key, exactly as the REST API accepts them (the same [`Principal`] extractor runs on
//!   the handshake request); without `auth.token` the request's own `Authorization` header or
//!   session cookie counts, so the web app (whose session is an HttpOnly cookie) needs no token in
//!   script (a cookie-only handshake must come from the same origin). A refused handshake gets
//!   a `connect_error` whose `message` is `"<code>: <detail>"` with the REST API's problem code
//!   (`session_expired`, `session_invalid`, `unauthorized`, `forbidden`…).
//!   Every socket joins its tenant's room; platform users (no tenant) join none and hear nothing.
//!   Every [`REVALIDATE_EVERY`], open sockets whose session ended (logout, expiry, disabled user)
//!   or whose API key was revoked get a `session_ended` event and are disconnected.
//! * **What.** [`run`] `LISTEN`s on [`db::outbox::REALTIME_CHANNEL`], which
//!   `db::outbox::enqueue` notifies inside the transaction of the change (so a rolled-back event
//!   never reaches anyone), reads each event by id in its tenant's transaction (payloads can
//!   exceed NOTIFY's 8000 bytes) and emits it to the tenant's room as the Socket.IO event `event`
//!   with the webhook body: `{id, type, created_at, tenant_id, data}`.
//! * **Change hints.** The same connection also `LISTEN`s on [`db::outbox::CHANGES_CHANNEL`]:
//!   `db::outbox::notify_changed` announces, inside the transaction of the change, that something
//!   the web app shows changed without an event of its own (an agent's SIP registration, a
//!   trunk's keepalive status). Each is emitted to its tenant's room as the Socket.IO event
//!   [`CHANGED`] with `{resource, id}` (`"agent.registration"` with the agent's user id,
//!   `"trunk.status"` with the trunk id); the same hint repeated within one batch of
//!   notifications is emitted once. A hint carries no data: clients re-read the resource over
//!   REST. Nothing is stored, so nothing is replayed; instead, after the listening connection
//!   comes back, every room gets one `{resource, id: null}` per resource kind ("any of them may
//!   have changed").
//! * **Gaps.** When the listening connection drops (PostgreSQL restarts), it reconnects with
//!   backoff and then re-reads the events of the tenants with open sockets created since shortly
//!   before the last event seen (at most [`CATCH_UP_WINDOW`] back), skipping ids already pushed:
//!   nothing committed is silently skipped. Clients still resynchronise from REST after their own
//!   reconnects; the stream is a live view, not a log.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::FromRequestParts as _;
use axum::http::{HeaderValue, header};
use chrono::{DateTime, Utc};
use domain::TenantId;
use serde::Deserialize;
use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler as _;
use socketioxide::layer::SocketIoLayer;
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::ApiError;
use crate::principal::{Principal, presented_token};
use crate::{AppState, Inner, crypto};

/// The Socket.IO event every outbox event is emitted as.
pub const EVENT: &str = "event";
/// The Socket.IO event a change hint ([`db::outbox::CHANGES_CHANNEL`]) is emitted as, with
/// `{resource, id}`; `id` is null after the listener reconnected (any of them may have changed).
pub const CHANGED: &str = "changed";
/// Every resource kind a change hint names: after a reconnect each room hears all of them.
const CHANGED_RESOURCES: [db::outbox::Changed; 2] =
    [db::outbox::Changed::AgentRegistration, db::outbox::Changed::TrunkStatus];
/// Emitted (with `{code, message}`) just before the server disconnects a socket whose
/// credentials stopped being valid.
pub const SESSION_ENDED: &str = "session_ended";
/// How far back a reconnected listener looks for events it may have missed.
pub const CATCH_UP_WINDOW: Duration = Duration::from_secs(5 * 60);
/// Events are stamped when created, not when committed: a catch-up starts this long before the
/// last event seen, so a transaction that committed late is not skipped.
const CATCH_UP_SLACK: Duration = Duration::from_secs(30);
/// At most this many events per tenant are replayed after a reconnect.
const CATCH_UP_LIMIT: i64 = 5_000;
/// How often open sockets' sessions and API keys are checked again.
pub const REVALIDATE_EVERY: Duration = Duration::from_secs(30);
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(15);
/// Notifications read together before their events are fetched.
const BATCH: usize = 256;

/// The Socket.IO server: one per [`AppState`].
pub struct Hub {
    io: SocketIo,
    layer: SocketIoLayer,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    pub fn new() -> Self {
        let (layer, io) = SocketIo::builder()
            // A dead peer is noticed within 20 s; clients show "reconnecting" as soon as they do.
            .ping_interval(Duration::from_secs(10))
            .ping_timeout(Duration::from_secs(10))
            // Clients only send the handshake: keep what they may send small.
            .max_payload(16 * 1024)
            .ws_max_message_size(16 * 1024)
            // Packets queued per socket before emits to it fail: room for a burst of events
            // (a fetched batch is up to 256) while its connection drains.
            .max_buffer_size(4096)
            .build_layer();
        Self { io, layer }
    }

    /// Sockets currently connected (all tenants).
    pub fn connected(&self) -> usize {
        self.io.of("/").map_or(0, |ns| ns.sockets().len())
    }
}

/// The room of a tenant's sockets.
fn room(tenant: TenantId) -> String {
    format!("tenant:{}", tenant.as_uuid())
}

fn tenant_of_room(room: &str) -> Option<TenantId> {
    room.strip_prefix("tenant:")?.parse().ok().map(TenantId)
}

/// The Socket.IO layer, with the default namespace wired to `state` (held weakly: the state owns
/// the hub). Mounted outermost by [`crate::router`]: it answers `/socket.io/…` itself.
pub(crate) fn layer(state: &AppState) -> SocketIoLayer {
    let weak = Arc::downgrade(&state.0);
    let middleware = move |s: SocketRef, TryData(auth): TryData<HandshakeAuth>| {
        let weak = weak.clone();
        async move { admit(&weak, &s, auth.ok().and_then(|a| a.token)).await }
    };
    state.realtime.io.ns("/", on_connect.with(middleware));
    state.realtime.layer.clone()
}

#[derive(Debug, Default, Deserialize)]
struct HandshakeAuth {
    #[serde(default)]
    token: Option<String>,
}

/// Why a handshake was refused: `"<code>: <detail>"`, the `message` of the client's
/// `connect_error`.
#[derive(Debug)]
struct Refused(ApiError);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.code, self.0.detail)
    }
}

/// What a socket was admitted with, kept to check it again later.
#[derive(Clone, Debug)]
struct Admitted {
    tenant: Option<TenantId>,
    credential: Credential,
}

#[derive(Clone, Debug)]
enum Credential {
    Session { token_hash: Vec<u8> },
    ApiKey { prefix: String, key_hash: Vec<u8> },
}

/// The connect middleware: authenticates the handshake like a REST request.
async fn admit(state: &Weak<Inner>, s: &SocketRef, token: Option<String>) -> Result<(), Refused> {
    let Some(state) = state.upgrade().map(AppState) else {
        return Err(Refused(ApiError::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down",
        )));
    };
    let mut parts = s.req_parts().clone();
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| Refused(ApiError::unauthorized("the token is malformed")))?;
        parts.headers.insert(header::AUTHORIZATION, value);
    } else if !parts.headers.contains_key(header::AUTHORIZATION) && !same_origin(&parts.headers) {
        // Only the cookie would authenticate: never for another site's page (cross-site
        // WebSocket hijacking), whatever the cookie's SameSite attribute.
        return Err(Refused(ApiError::forbidden("cross-origin connections must send auth.token")));
    }
    let principal = Principal::from_request_parts(&mut parts, &state).await.map_err(Refused)?;
    // Present: the extractor just accepted it.
    let token = presented_token(&parts.headers).unwrap_or_default();
    let credential = match crypto::api_key_prefix(&token) {
        Some(prefix) => {
            Credential::ApiKey { prefix: prefix.to_owned(), key_hash: crypto::sha256(token.as_bytes()) }
        }
        None => Credential::Session { token_hash: crypto::sha256(token.as_bytes()) },
    };
    s.extensions.insert(Admitted { tenant: principal.tenant, credential });
    Ok(())
}

/// False when the request names an `Origin` other than the `Host` it was sent to. Browsers send
/// `Origin` on every WebSocket handshake and on cross-origin requests.
fn same_origin(headers: &http::HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let origin = origin.to_str().unwrap_or_default();
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest.trim_end_matches('/'));
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    !origin_host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

async fn on_connect(s: SocketRef) {
    if let Some(Admitted { tenant: Some(tenant), .. }) = s.extensions.get::<Admitted>() {
        s.join(room(tenant));
    }
}

/// Pushes committed events to the tenants' rooms until `stop`, then disconnects every socket.
/// Also re-checks open sockets' credentials every [`REVALIDATE_EVERY`].
pub async fn run(state: AppState, stop: watch::Receiver<bool>) {
    run_with(state, stop, REVALIDATE_EVERY).await;
}

/// [`run`], checking open sockets' credentials every `revalidate_every` (tests use a short one).
pub async fn run_with(state: AppState, stop: watch::Receiver<bool>, revalidate_every: Duration) {
    tokio::join!(forward(&state, stop.clone()), revalidate(&state, stop.clone(), revalidate_every));
    state.realtime.io.close().await;
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Event ids pushed recently, so a catch-up does not push an event twice.
#[derive(Default)]
struct Recent {
    ids: HashSet<Uuid>,
    order: VecDeque<(std::time::Instant, Uuid)>,
}

impl Recent {
    const KEEP: Duration = Duration::from_secs(CATCH_UP_WINDOW.as_secs() + 2 * CATCH_UP_SLACK.as_secs());
    const MAX: usize = 200_000;

    /// True the first time `id` is seen.
    fn first(&mut self, id: Uuid) -> bool {
        let now = std::time::Instant::now();
        while let Some(&(at, old)) = self.order.front() {
            if now.duration_since(at) < Self::KEEP && self.order.len() < Self::MAX {
                break;
            }
            self.order.pop_front();
            self.ids.remove(&old);
        }
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back((now, id));
        true
    }
}

struct Forwarder<'a> {
    state: &'a AppState,
    recent: Recent,
    /// `created_at` of the newest event pushed.
    last_seen: Option<DateTime<Utc>>,
}

async fn forward(state: &AppState, mut stop: watch::Receiver<bool>) {
    let mut f = Forwarder { state, recent: Recent::default(), last_seen: None };
    let mut backoff = BACKOFF_MIN;
    // When the previous listening connection was lost: events after it need a catch-up.
    let mut lost_at: Option<DateTime<Utc>> = None;
    loop {
        // One connection for both channels: events and change hints.
        let listen = async {
            let mut listener = db::outbox::listen(&state.db).await?;
            listener.listen(db::outbox::CHANGES_CHANNEL).await?;
            Ok::<_, db::DbError>(listener)
        };
        let listener = tokio::select! {
            l = listen => l,
            () = stopped(&mut stop) => return,
        };
        let mut listener = match listener {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "realtime: cannot listen for events; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stopped(&mut stop) => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        // From now on, notifications queue up on the connection: catching up cannot miss any.
        if let Some(lost) = lost_at.take() {
            match f.catch_up(lost).await {
                Ok(n) => {
                    tracing::info!(replayed = n, "realtime: listening again after a lost connection");
                    // Hints are not stored: whatever changed meanwhile is re-read by everyone.
                    f.resync().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "realtime: catch-up failed; retrying");
                    lost_at = Some(lost);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            }
        }
        backoff = BACKOFF_MIN;
        loop {
            let received = tokio::select! {
                r = listener.try_recv() => r,
                () = stopped(&mut stop) => return,
            };
            // `None`: the connection was lost; an error: it is unusable. Start over.
            let Ok(Some(first)) = received else {
                tracing::warn!("realtime: lost the event listener connection; reconnecting");
                lost_at = Some(state.clock.now());
                break;
            };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match listener.next_buffered() {
                    Some(n) => batch.push(n),
                    None => break,
                }
            }
            // Hints need no database: emitted first, so a failed read below cannot lose them.
            f.hint(batch.iter().filter(|n| n.channel() == db::outbox::CHANGES_CHANNEL).map(|n| n.payload()))
                .await;
            let events = batch.iter().filter(|n| n.channel() == db::outbox::REALTIME_CHANNEL);
            if let Err(e) = f.push(events.map(|n| n.payload())).await {
                // The database is unreachable: treat it as a lost connection, so the catch-up
                // after reconnecting delivers these events.
                tracing::warn!(error = %e, "realtime: could not read events; reconnecting");
                lost_at = Some(state.clock.now());
                break;
            }
        }
    }
}

/// A change hint's payload, `<tenant>:<resource>:<id>`, parsed; None if malformed.
fn parse_hint(payload: &str) -> Option<(TenantId, &str, Uuid)> {
    let mut parts = payload.splitn(3, ':');
    let tenant = parts.next()?.parse().ok().map(TenantId)?;
    let resource = parts.next().filter(|r| !r.is_empty())?;
    let id = parts.next()?.parse().ok()?;
    Some((tenant, resource, id))
}

impl Forwarder<'_> {
    /// Emits the change hints in `notifications` (`<tenant>:<resource>:<id>`) to their tenants'
    /// rooms as [`CHANGED`], each distinct one once.
    async fn hint<'n>(&mut self, notifications: impl Iterator<Item = &'n str>) {
        let Some(ns) = self.state.realtime.io.of("/") else { return };
        let mut seen = HashSet::new();
        for payload in notifications {
            let Some((tenant, resource, id)) = parse_hint(payload) else {
                tracing::debug!(payload, "realtime: malformed change hint");
                continue;
            };
            if !seen.insert((tenant, resource, id)) {
                continue;
            }
            let body = serde_json::json!({"resource": resource, "id": id});
            if let Err(e) = ns.clone().to(room(tenant)).emit(CHANGED, &body).await {
                tracing::debug!(error = %e, "realtime: emit failed");
            }
        }
    }

    /// After a lost listening connection: tells every room that any resource may have changed.
    async fn resync(&mut self) {
        let Some(ns) = self.state.realtime.io.of("/") else { return };
        for room in ns.clone().rooms().await.unwrap_or_default() {
            if tenant_of_room(&room).is_none() {
                continue;
            }
            for resource in CHANGED_RESOURCES {
                let body = serde_json::json!({"resource": resource.as_str(), "id": null});
                if let Err(e) = ns.clone().to(room.clone()).emit(CHANGED, &body).await {
                    tracing::debug!(error = %e, "realtime: emit failed");
                }
            }
        }
    }

    /// Pushes the events named by `notifications` (`<tenant>:<event>`) to tenants with sockets.
    async fn push<'n>(&mut self, notifications: impl Iterator<Item = &'n str>) -> db::Result<()> {
        let Some(ns) = self.state.realtime.io.of("/") else { return Ok(()) };
        let mut by_tenant: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for payload in notifications {
            let Some((tenant, id)) = payload.split_once(':') else { continue };
            let (Ok(tenant), Ok(id)) = (tenant.parse::<Uuid>(), id.parse::<Uuid>()) else { continue };
            by_tenant.entry(tenant).or_default().push(id);
        }
        for (tenant, ids) in by_tenant {
            let tenant = TenantId(tenant);
            let room = room(tenant);
            // Nobody of this tenant is connected: nothing to read.
            if ns.clone().within(room.clone()).sockets().is_empty() {
                continue;
            }
            let mut tx = self.state.db.tenant_tx(tenant).await?;
            let events = db::outbox::payloads(&mut tx, &ids).await?;
            tx.commit().await?;
            self.emit(&room, events).await;
        }
        Ok(())
    }

    /// Re-reads what the tenants with sockets may have missed since `lost` (or the last event
    /// seen, whichever is earlier), bounded by [`CATCH_UP_WINDOW`]. Returns the events pushed.
    async fn catch_up(&mut self, lost: DateTime<Utc>) -> db::Result<usize> {
        let Some(ns) = self.state.realtime.io.of("/") else { return Ok(0) };
        let now = self.state.clock.now();
        let from = self.last_seen.map_or(lost, |seen| seen.min(lost));
        let since = (from - CATCH_UP_SLACK).max(now - CATCH_UP_WINDOW);
        let rooms = ns.rooms().await.unwrap_or_default();
        let mut pushed = 0;
        for room in rooms {
            let Some(tenant) = tenant_of_room(&room) else { continue };
            let mut tx = self.state.db.tenant_tx(tenant).await?;
            let events = db::outbox::created_since(&mut tx, tenant, since, CATCH_UP_LIMIT).await?;
            tx.commit().await?;
            pushed += self.emit(&room, events).await;
        }
        Ok(pushed)
    }

    async fn emit(&mut self, room: &str, events: Vec<db::outbox::PushedEvent>) -> usize {
        let Some(ns) = self.state.realtime.io.of("/") else { return 0 };
        let mut pushed = 0;
        for event in events {
            if !self.recent.first(event.id) {
                continue;
            }
            self.last_seen = Some(self.last_seen.map_or(event.created_at, |t| t.max(event.created_at)));
            if let Err(e) = ns.clone().to(room.to_owned()).emit(EVENT, &event.payload).await {
                tracing::debug!(error = %e, "realtime: emit failed");
            }
            pushed += 1;
        }
        pushed
    }
}

/// Disconnects sockets whose session ended or whose API key was revoked since they connected.
async fn revalidate(state: &AppState, mut stop: watch::Receiver<bool>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stopped(&mut stop) => return,
        }
        let Some(ns) = state.realtime.io.of("/") else { continue };
        // Many tabs share one session: check each credential once.
        let mut verdicts: HashMap<Vec<u8>, Option<ApiError>> = HashMap::new();
        for socket in ns.sockets() {
            let Some(admitted) = socket.extensions.get::<Admitted>() else { continue };
            let key = match &admitted.credential {
                Credential::Session { token_hash } | Credential::ApiKey { key_hash: token_hash, .. } => {
                    token_hash.clone()
                }
            };
            let verdict = match verdicts.get(&key) {
                Some(v) => v.clone(),
                None => match still_valid(state, &admitted.credential).await {
                    Ok(v) => {
                        verdicts.insert(key, v.clone());
                        v
                    }
                    // The database is unreachable: judge again next time.
                    Err(e) => {
                        tracing::debug!(error = %e, "realtime: cannot check a socket's session");
                        continue;
                    }
                },
            };
            if let Some(ended) = verdict {
                let _ = socket
                    .emit(SESSION_ENDED, &serde_json::json!({"code": ended.code, "message": ended.detail}));
                let _ = socket.disconnect();
            }
        }
    }
}

/// None if the credential is still good; otherwise why not. Reads only: an open socket does not
/// count as activity, so it neither slides a session's idle window nor touches an API key.
async fn still_valid(state: &AppState, credential: &Credential) -> db::Result<Option<ApiError>> {
    let now = state.clock.now();
    let mut tx = state.db.platform_tx().await?;
    let verdict = match credential {
        Credential::ApiKey { prefix, key_hash } => {
            let key = db::api_keys::lookup_by_prefix(&mut tx, prefix).await?;
            match key {
                Some(k) if crypto::constant_time_eq(&k.key_hash, key_hash) => None,
                _ => Some(ApiError::unauthorized("invalid or revoked API key")),
            }
        }
        Credential::Session { token_hash } => match db::sessions::lookup(&mut tx, token_hash).await? {
            None => Some(ApiError::new(
                http::StatusCode::UNAUTHORIZED,
                "session_invalid",
                "session is invalid or has ended; log in again",
            )),
            Some(s)
                if s.disabled
                    || now >= s.expires_at
                    || now >= s.last_seen_at + chrono::Duration::seconds(i64::from(s.idle_timeout_s)) =>
            {
                Some(ApiError::new(
                    http::StatusCode::UNAUTHORIZED,
                    "session_expired",
                    "session has expired; log in again",
                ))
            }
            Some(_) => None,
        },
    };
    tx.commit().await?;
    Ok(verdict)
}
