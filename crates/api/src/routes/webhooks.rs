//! Webhook endpoints (Settings → Developer → Webhooks): CRUD, secret rotation, the last 100
//! deliveries, the dead-letter queue (list, retry one or all, JSON download) and the tester.

// utoipa's IntoParams expansion names the params type with a redundant path.
#![allow(unused_qualifications)]

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use domain::events::{Event, EventPayload, EventType};
use domain::{CallId, EventId, QueueId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{PageOut, PageParams, commit};
use crate::AppState;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Json, Path, Query};
use crate::principal::TenantAdmin;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_endpoints, create_endpoint))
        .routes(routes!(get_endpoint, update_endpoint, delete_endpoint))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(list_dead_letters))
        .routes(routes!(retry_dead_letters))
        .routes(routes!(export_dead_letters))
        .routes(routes!(send_test_event))
        .routes(routes!(event_types))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EndpointOut {
    id: Uuid,
    url: String,
    description: String,
    enabled: bool,
    /// Subscribed event types; empty means all 13.
    event_types: Vec<String>,
    /// Set when SIVO disabled the endpoint itself (the receiver answered 410 Gone).
    disabled_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<db::webhooks::EndpointRow> for EndpointOut {
    fn from(r: db::webhooks::EndpointRow) -> Self {
        Self {
            id: r.id,
            url: r.url,
            description: r.description,
            enabled: r.enabled,
            event_types: r.event_types,
            disabled_reason: r.disabled_reason,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EndpointWithSecretOut {
    #[serde(flatten)]
    endpoint: EndpointOut,
    /// The signing secret (`whsec_…`), shown only in this response. Use the whole string as the
    /// HMAC-SHA256 key.
    webhook_secret: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EndpointIn {
    /// `https://` only.
    url: String,
    description: Option<String>,
    enabled: Option<bool>,
    /// Event types to receive; omit or leave empty for all.
    event_types: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EndpointPatch {
    url: Option<String>,
    description: Option<String>,
    enabled: Option<bool>,
    event_types: Option<Vec<String>>,
}

fn validate_url(state: &AppState, url: &str, errors: &mut Vec<FieldError>) {
    if let Err(e) = webhooks::ssrf::check_url(url, state.config.webhooks_allow_private_targets) {
        errors.push(FieldError { field: "url".into(), message: e.to_string() });
    }
}

fn validate_event_types(types: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    let mut out = Vec::new();
    for (i, t) in types.iter().enumerate() {
        match EventType::parse(t) {
            Some(parsed) => {
                if !out.contains(&parsed.as_str().to_owned()) {
                    out.push(parsed.as_str().to_owned());
                }
            }
            None => errors.push(FieldError {
                field: format!("event_types[{i}]"),
                message: format!("unknown event type {t:?}; see GET /api/v1/webhooks/event-types"),
            }),
        }
    }
    out
}

fn validate_description(description: &str, errors: &mut Vec<FieldError>) {
    if description.chars().count() > 500 {
        errors.push(FieldError {
            field: "description".into(),
            message: "must be at most 500 characters".into(),
        });
    }
}

/// List the tenant's webhook endpoints.
#[utoipa::path(get, path = "/api/v1/webhooks/endpoints", tag = "webhooks", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = PageOut<EndpointOut>)))]
async fn list_endpoints(
    State(state): State<AppState>,
    TenantAdmin { tenant, .. }: TenantAdmin,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<PageOut<EndpointOut>>> {
    let (cursor, limit) = params.parse()?;
    let mut tx = state.db.tenant_tx(tenant).await?;
    let page = db::webhooks::list_endpoints(&mut tx, tenant, cursor, limit).await?;
    commit(tx).await?;
    Ok(Json(PageOut::from_page(page, EndpointOut::from)))
}

/// Add an endpoint. The response carries its `webhook_secret`, shown once.
#[utoipa::path(post, path = "/api/v1/webhooks/endpoints", tag = "webhooks", security(("bearer" = [])), request_body = EndpointIn,
    responses((status = 201, body = EndpointWithSecretOut), (status = 422, body = crate::error::Problem)))]
async fn create_endpoint(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Json(input): Json<EndpointIn>,
) -> ApiResult<(StatusCode, Json<EndpointWithSecretOut>)> {
    let mut errors = Vec::new();
    validate_url(&state, &input.url, &mut errors);
    let description = input.description.unwrap_or_default();
    validate_description(&description, &mut errors);
    let event_types = validate_event_types(&input.event_types.unwrap_or_default(), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let now = state.clock.now();
    let id = Uuid::now_v7();
    let secret = webhooks::new_secret();
    let sealed = state.vault.encrypt(secret.as_bytes(), &webhooks::secret_context(id));
    let mut tx = state.db.tenant_tx(tenant).await?;
    let row = db::webhooks::create_endpoint(
        &mut tx,
        db::webhooks::NewEndpoint {
            id,
            tenant_id: tenant,
            url: input.url.trim(),
            description: description.trim(),
            enabled: input.enabled.unwrap_or(true),
            event_types: &event_types,
            secret_enc: &sealed,
            now,
        },
    )
    .await?;
    let out = EndpointOut::from(row);
    let mut entry =
        principal.audit("webhook.endpoint.created", "webhook_endpoint", Some(id.to_string()), now);
    entry.after = serde_json::to_value(&out).ok();
    db::audit::insert(&mut tx, &entry).await?;
    commit(tx).await?;
    Ok((StatusCode::CREATED, Json(EndpointWithSecretOut { endpoint: out, webhook_secret: secret })))
}

/// One endpoint.
#[utoipa::path(get, path = "/api/v1/webhooks/endpoints/{id}", tag = "webhooks", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = EndpointOut), (status = 404, body = crate::error::Problem)))]
async fn get_endpoint(
    State(state): State<AppState>,
    TenantAdmin { tenant, .. }: TenantAdmin,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<EndpointOut>> {
    let mut tx = state.db.tenant_tx(tenant).await?;
    let row = db::webhooks::get_endpoint(&mut tx, id).await?;
    commit(tx).await?;
    Ok(Json(EndpointOut::from(row)))
}

/// Change an endpoint's URL, description, filter or enabled flag (re-enabling clears an
/// automatic disable).
#[utoipa::path(patch, path = "/api/v1/webhooks/endpoints/{id}", tag = "webhooks", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = EndpointPatch,
    responses((status = 200, body = EndpointOut), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn update_endpoint(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Path(id): Path<Uuid>,
    Json(patch): Json<EndpointPatch>,
) -> ApiResult<Json<EndpointOut>> {
    let mut errors = Vec::new();
    if let Some(url) = &patch.url {
        validate_url(&state, url, &mut errors);
    }
    if let Some(d) = &patch.description {
        validate_description(d, &mut errors);
    }
    let event_types = patch.event_types.as_ref().map(|t| validate_event_types(t, &mut errors));
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let now = state.clock.now();
    let mut tx = state.db.tenant_tx(tenant).await?;
    let before = EndpointOut::from(db::webhooks::get_endpoint(&mut tx, id).await?);
    let row = db::webhooks::update_endpoint(
        &mut tx,
        id,
        db::webhooks::EndpointPatch {
            url: patch.url.as_deref().map(str::trim),
            description: patch.description.as_deref().map(str::trim),
            enabled: patch.enabled,
            event_types: event_types.as_deref(),
            secret_enc: None,
        },
        now,
    )
    .await?;
    let after = EndpointOut::from(row);
    let mut entry =
        principal.audit("webhook.endpoint.updated", "webhook_endpoint", Some(id.to_string()), now);
    entry.before = serde_json::to_value(&before).ok();
    entry.after = serde_json::to_value(&after).ok();
    db::audit::insert(&mut tx, &entry).await?;
    commit(tx).await?;
    Ok(Json(after))
}

/// Remove an endpoint with its deliveries and logs.
#[utoipa::path(delete, path = "/api/v1/webhooks/endpoints/{id}", tag = "webhooks", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204, description = "deleted"), (status = 404, body = crate::error::Problem)))]
async fn delete_endpoint(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let now = state.clock.now();
    let mut tx = state.db.tenant_tx(tenant).await?;
    let before = EndpointOut::from(db::webhooks::get_endpoint(&mut tx, id).await?);
    db::webhooks::delete_endpoint(&mut tx, id).await?;
    let mut entry =
        principal.audit("webhook.endpoint.deleted", "webhook_endpoint", Some(id.to_string()), now);
    entry.before = serde_json::to_value(&before).ok();
    db::audit::insert(&mut tx, &entry).await?;
    commit(tx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace the signing secret; the new one is shown once and used from the next attempt on.
#[utoipa::path(post, path = "/api/v1/webhooks/endpoints/{id}/rotate-secret", tag = "webhooks", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = EndpointWithSecretOut), (status = 404, body = crate::error::Problem)))]
async fn rotate_secret(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<EndpointWithSecretOut>> {
    let now = state.clock.now();
    let secret = webhooks::new_secret();
    let sealed = state.vault.encrypt(secret.as_bytes(), &webhooks::secret_context(id));
    let mut tx = state.db.tenant_tx(tenant).await?;
    db::webhooks::get_endpoint(&mut tx, id).await?;
    let row = db::webhooks::update_endpoint(
        &mut tx,
        id,
        db::webhooks::EndpointPatch { secret_enc: Some(&sealed), ..Default::default() },
        now,
    )
    .await?;
    db::audit::insert(
        &mut tx,
        &principal.audit("webhook.endpoint.secret_rotated", "webhook_endpoint", Some(id.to_string()), now),
    )
    .await?;
    commit(tx).await?;
    Ok(Json(EndpointWithSecretOut { endpoint: EndpointOut::from(row), webhook_secret: secret }))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AttemptOut {
    event_id: Uuid,
    event_type: String,
    delivery_id: Uuid,
    /// 1 for the first try, up to 7.
    attempt: i32,
    started_at: DateTime<Utc>,
    latency_ms: i32,
    /// The receiver's HTTP status, when it answered.
    http_status: Option<i32>,
    /// Why it failed: `HTTP 500`, `timeout: …`, `blocked: …`, a TLS error…
    error: Option<String>,
    /// The first 4 KB of the response body.
    response_excerpt: Option<String>,
    succeeded: bool,
}

impl From<db::webhooks::AttemptRow> for AttemptOut {
    fn from(r: db::webhooks::AttemptRow) -> Self {
        Self {
            event_id: r.event_id,
            event_type: r.event_type,
            delivery_id: r.delivery_id,
            attempt: r.attempt,
            started_at: r.started_at,
            latency_ms: r.latency_ms,
            http_status: r.http_status,
            error: r.error,
            response_excerpt: r.response_excerpt,
            succeeded: r.succeeded,
        }
    }
}

/// The endpoint's last 100 delivery attempts, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/endpoints/{id}/deliveries", tag = "webhooks", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<AttemptOut>), (status = 404, body = crate::error::Problem)))]
async fn list_deliveries(
    State(state): State<AppState>,
    TenantAdmin { tenant, .. }: TenantAdmin,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Vec<AttemptOut>>> {
    let mut tx = state.db.tenant_tx(tenant).await?;
    db::webhooks::get_endpoint(&mut tx, id).await?;
    let rows = db::webhooks::recent_attempts(&mut tx, id, 100).await?;
    commit(tx).await?;
    Ok(Json(rows.into_iter().map(AttemptOut::from).collect()))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DeadLetterOut {
    delivery_id: Uuid,
    event_id: Uuid,
    event_type: String,
    attempts: i32,
    last_status: Option<i32>,
    reason: Option<String>,
    dead_at: Option<DateTime<Utc>>,
    /// The event exactly as it would be sent.
    event: serde_json::Value,
}

impl From<db::webhooks::DeliveryRow> for DeadLetterOut {
    fn from(r: db::webhooks::DeliveryRow) -> Self {
        Self {
            event: serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null),
            delivery_id: r.id,
            event_id: r.event_id,
            event_type: r.event_type,
            attempts: r.attempts,
            last_status: r.last_status,
            reason: r.dead_reason,
            dead_at: r.dead_at,
        }
    }
}

/// Deliveries that exhausted their retries (or were refused), newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/endpoints/{id}/dead-letters", tag = "webhooks", security(("bearer" = [])), params(("id" = Uuid, Path), PageParams),
    responses((status = 200, body = PageOut<DeadLetterOut>), (status = 404, body = crate::error::Problem)))]
async fn list_dead_letters(
    State(state): State<AppState>,
    TenantAdmin { tenant, .. }: TenantAdmin,
    Path(id): Path<Uuid>,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<PageOut<DeadLetterOut>>> {
    let (cursor, limit) = params.parse()?;
    let mut tx = state.db.tenant_tx(tenant).await?;
    db::webhooks::get_endpoint(&mut tx, id).await?;
    let page = db::webhooks::list_dead(&mut tx, id, cursor, limit).await?;
    commit(tx).await?;
    Ok(Json(PageOut::from_page(page, DeadLetterOut::from)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryIn {
    /// Deliveries to retry; omit to retry the whole dead-letter queue of this endpoint.
    delivery_ids: Option<Vec<Uuid>>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RetryOut {
    /// Deliveries put back in line, with a fresh retry budget.
    retried: Vec<Uuid>,
}

/// Retry dead letters, one by one (`delivery_ids`) or all at once.
#[utoipa::path(post, path = "/api/v1/webhooks/endpoints/{id}/dead-letters/retry", tag = "webhooks", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = RetryIn,
    responses((status = 200, body = RetryOut), (status = 404, body = crate::error::Problem)))]
async fn retry_dead_letters(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Path(id): Path<Uuid>,
    Json(input): Json<RetryIn>,
) -> ApiResult<Json<RetryOut>> {
    if input.delivery_ids.as_ref().is_some_and(|ids| ids.is_empty() || ids.len() > 1000) {
        return Err(ApiError::field("delivery_ids", "give 1 to 1000 ids, or omit it to retry everything"));
    }
    let now = state.clock.now();
    let mut tx = state.db.tenant_tx(tenant).await?;
    db::webhooks::get_endpoint(&mut tx, id).await?;
    let retried = db::webhooks::revive_dead(&mut tx, id, input.delivery_ids.as_deref(), now).await?;
    for delivery in &retried {
        db::work_queue::push(
            &mut tx,
            *delivery,
            tenant,
            db::work_queue::KIND_WEBHOOK_DELIVERY,
            Some(id),
            now,
        )
        .await?;
    }
    let mut entry =
        principal.audit("webhook.dead_letters.retried", "webhook_endpoint", Some(id.to_string()), now);
    entry.after = Some(serde_json::json!({"deliveries": retried}));
    db::audit::insert(&mut tx, &entry).await?;
    commit(tx).await?;
    Ok(Json(RetryOut { retried }))
}

/// Download the whole dead-letter queue of the endpoint as a JSON array.
#[utoipa::path(get, path = "/api/v1/webhooks/endpoints/{id}/dead-letters/export", tag = "webhooks", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<DeadLetterOut>), (status = 404, body = crate::error::Problem)))]
async fn export_dead_letters(
    State(state): State<AppState>,
    TenantAdmin { tenant, .. }: TenantAdmin,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let mut tx = state.db.tenant_tx(tenant).await?;
    db::webhooks::get_endpoint(&mut tx, id).await?;
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = db::webhooks::list_dead(&mut tx, id, cursor, 200).await?;
        all.extend(page.items.into_iter().map(DeadLetterOut::from));
        match page.next {
            Some(next) if all.len() < 100_000 => cursor = Some(next),
            _ => break,
        }
    }
    commit(tx).await?;
    let mut response = Json(all).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"sivo-dead-letters-{id}.json\""))
    {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestEventIn {
    /// Which catalog event to simulate, e.g. `call.ended`.
    event_type: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TestEventOut {
    event_id: Uuid,
    /// False while the first attempt had not finished when we stopped waiting (12 s); the
    /// delivery goes on and shows up in the endpoint's deliveries.
    completed: bool,
    attempt: Option<AttemptOut>,
}

/// Fire a synthetic event of the chosen type at this endpoint through the real delivery path,
/// and report the first attempt.
#[utoipa::path(post, path = "/api/v1/webhooks/endpoints/{id}/test", tag = "webhooks", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = TestEventIn,
    responses((status = 200, body = TestEventOut), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn send_test_event(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Path(id): Path<Uuid>,
    Json(input): Json<TestEventIn>,
) -> ApiResult<Json<TestEventOut>> {
    let event_type = EventType::parse(&input.event_type)
        .ok_or_else(|| ApiError::field("event_type", format!("unknown event type {:?}", input.event_type)))?;
    let now = state.clock.now();
    let agent = principal.user_id().unwrap_or(domain::UserId(Uuid::nil()));
    let payload = EventPayload::sample(event_type, CallId(Uuid::now_v7()), agent, QueueId(Uuid::nil()), now);
    let event = Event::new(EventId(Uuid::now_v7()), tenant, now, payload);
    let mut tx = state.db.tenant_tx(tenant).await?;
    db::webhooks::get_endpoint(&mut tx, id).await?;
    db::outbox::enqueue_for(&mut tx, &event, Some(id)).await?;
    let mut entry = principal.audit("webhook.endpoint.tested", "webhook_endpoint", Some(id.to_string()), now);
    entry.after = Some(serde_json::json!({"event_type": event_type, "event_id": event.id}));
    db::audit::insert(&mut tx, &entry).await?;
    commit(tx).await?;

    // The worker picks it up (notified by the queue); wait for the first attempt's result.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(12);
    loop {
        let mut tx = state.db.tenant_tx(tenant).await?;
        let attempt = match db::webhooks::delivery_for_event(&mut tx, id, event.id.as_uuid()).await? {
            Some(delivery) => db::webhooks::attempts_of(&mut tx, delivery).await?.into_iter().next(),
            None => None,
        };
        commit(tx).await?;
        if let Some(attempt) = attempt {
            return Ok(Json(TestEventOut {
                event_id: event.id.as_uuid(),
                completed: true,
                attempt: Some(attempt.into()),
            }));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(Json(TestEventOut { event_id: event.id.as_uuid(), completed: false, attempt: None }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The 13 event types an endpoint can subscribe to.
#[utoipa::path(get, path = "/api/v1/webhooks/event-types", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, body = Vec<String>)))]
async fn event_types(_: TenantAdmin) -> Json<Vec<&'static str>> {
    Json(EventType::ALL.iter().map(|t| t.as_str()).collect())
}
