//! ACD queues and their members. Admins create, change and delete them; every tenant user
//! (agents and supervisors too) may read them, since softphones and wallboards show queues.

// utoipa's IntoParams expansion names the params type with a redundant path.
#![allow(unused_qualifications)]

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::calls::OverflowType;
use domain::events::AgentStatus;
use domain::{QueueId, Role, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{PageOut, PageParams, commit};
use crate::AppState;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Json, Path, Query};
use crate::principal::{Principal, TenantAdmin};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_queues, create_queue))
        .routes(routes!(get_queue, update_queue, delete_queue))
        .routes(routes!(list_members, add_member))
        .routes(routes!(remove_member))
}

#[derive(Clone, Serialize, ToSchema)]
pub(crate) struct QueueOut {
    id: QueueId,
    name: String,
    /// Seconds one agent rings before the next is tried.
    ring_timeout_secs: u32,
    /// Seconds a caller waits before the overflow applies.
    max_wait_secs: u32,
    overflow_type: OverflowType,
    /// The queue or agent (user id) calls overflow to, for `queue` and `agent`.
    overflow_id: Option<Uuid>,
    /// Path of an 8 kHz mono WAV file on the server played while waiting; absent: a generated tone.
    music_on_hold: Option<String>,
    /// Record this queue's calls (the tenant setting can record all calls).
    record_calls: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<db::queues::QueueRow> for QueueOut {
    fn from(r: db::queues::QueueRow) -> Self {
        Self {
            id: QueueId(r.id),
            overflow_type: r.overflow(),
            name: r.name,
            ring_timeout_secs: u32::try_from(r.ring_timeout_secs).unwrap_or(20),
            max_wait_secs: u32::try_from(r.max_wait_secs).unwrap_or(300),
            overflow_id: r.overflow_id,
            music_on_hold: r.music_on_hold,
            record_calls: r.record_calls,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueueIn {
    name: String,
    /// 5 to 300 (default 20).
    ring_timeout_secs: Option<u32>,
    /// 10 to 86400 (default 300).
    max_wait_secs: Option<u32>,
    /// Default `none`.
    overflow_type: Option<OverflowType>,
    /// Required for `queue` (another queue) and `agent` (an agent or supervisor).
    overflow_id: Option<Uuid>,
    /// Absolute path of a `.wav` file (8 kHz, mono) on the server.
    music_on_hold: Option<String>,
    record_calls: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueuePatch {
    name: Option<String>,
    ring_timeout_secs: Option<u32>,
    max_wait_secs: Option<u32>,
    /// `none` and `hangup` clear `overflow_id`.
    overflow_type: Option<OverflowType>,
    overflow_id: Option<Uuid>,
    /// An empty string goes back to the generated tone.
    music_on_hold: Option<String>,
    record_calls: Option<bool>,
}

struct Checked {
    name: String,
    ring_timeout_secs: u32,
    max_wait_secs: u32,
    overflow_type: OverflowType,
    overflow_id: Option<Uuid>,
    music_on_hold: Option<String>,
    record_calls: bool,
}

impl Checked {
    fn fields(&self) -> db::queues::QueueFields<'_> {
        db::queues::QueueFields {
            name: &self.name,
            // Bounded by the checks below, far inside i32.
            ring_timeout_secs: self.ring_timeout_secs as i32,
            max_wait_secs: self.max_wait_secs as i32,
            overflow_type: self.overflow_type.as_str(),
            overflow_id: self.overflow_id,
            music_on_hold: self.music_on_hold.as_deref(),
            record_calls: self.record_calls,
        }
    }
}

/// An absolute path to a `.wav` file, without `..` or control characters. The file itself is
/// read by the media side when a caller waits (a missing file falls back to the tone there).
fn valid_moh_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() <= 1024
        && path.to_ascii_lowercase().ends_with(".wav")
        && !path.contains(char::is_control)
        && !path.split('/').any(|part| part == "..")
}

async fn check(tx: &mut db::Tx, id: Uuid, c: Checked) -> ApiResult<Checked> {
    let mut errors = Vec::new();
    let mut err = |field: &str, message: &str| {
        errors.push(FieldError { field: field.into(), message: message.into() });
    };
    if let Err(e) = domain::validate::validate_name(&c.name, 120) {
        err("name", &e);
    }
    if !(5..=300).contains(&c.ring_timeout_secs) {
        err("ring_timeout_secs", "must be between 5 and 300");
    }
    if !(10..=86_400).contains(&c.max_wait_secs) {
        err("max_wait_secs", "must be between 10 and 86400");
    }
    if c.music_on_hold.as_deref().is_some_and(|p| !valid_moh_path(p)) {
        err("music_on_hold", "must be the absolute path of a .wav file on the server");
    }
    match (c.overflow_type, c.overflow_id) {
        (OverflowType::None | OverflowType::Hangup, Some(_)) => {
            err("overflow_id", "must be empty for this overflow type")
        }
        (OverflowType::None | OverflowType::Hangup, None) => {}
        (_, None) => err("overflow_id", "required for this overflow type"),
        (OverflowType::Queue, Some(target)) if target == id => {
            err("overflow_id", "a queue cannot overflow to itself")
        }
        (OverflowType::Queue, Some(target)) => match db::queues::get_queue(tx, target).await {
            Ok(_) => {}
            Err(db::DbError::NotFound) => err("overflow_id", "no such queue"),
            Err(e) => return Err(e.into()),
        },
        (OverflowType::Agent, Some(target)) => {
            match db::sip::get_agent(tx, UserId(target), DateTime::<Utc>::UNIX_EPOCH).await {
                Ok(_) => {}
                Err(db::DbError::NotFound) => err("overflow_id", "no such agent"),
                Err(e) => return Err(e.into()),
            }
        }
    }
    if errors.is_empty() { Ok(c) } else { Err(ApiError::validation(errors)) }
}

fn name_taken(e: db::DbError) -> ApiError {
    match e {
        db::DbError::Conflict(_) => {
            let message = "a queue with this name exists";
            let mut err = ApiError::conflict("name_taken", message);
            err.errors = vec![FieldError { field: "name".into(), message: message.into() }];
            err
        }
        other => other.into(),
    }
}

/// List the tenant's queues (every tenant user).
#[utoipa::path(get, path = "/api/v1/queues", tag = "queues", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = PageOut<QueueOut>)))]
async fn list_queues(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<PageOut<QueueOut>>> {
    let tenant = principal.tenant()?;
    let (cursor, limit) = params.parse()?;
    let mut tx = state.db.tenant_tx(tenant).await?;
    let page = db::queues::list_queues(&mut tx, tenant, cursor, limit).await?;
    commit(tx).await?;
    Ok(Json(PageOut::from_page(page, QueueOut::from)))
}

/// Create a queue.
#[utoipa::path(post, path = "/api/v1/queues", tag = "queues", security(("bearer" = [])), request_body = QueueIn,
    responses((status = 201, body = QueueOut), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn create_queue(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Json(input): Json<QueueIn>,
) -> ApiResult<(StatusCode, Json<QueueOut>)> {
    let now = state.clock.now();
    let id = Uuid::new_v4();
    let mut tx = state.db.tenant_tx(tenant).await?;
    let c = check(
        &mut tx,
        id,
        Checked {
            name: input.name.trim().to_owned(),
            ring_timeout_secs: input.ring_timeout_secs.unwrap_or(20),
            max_wait_secs: input.max_wait_secs.unwrap_or(300),
            overflow_type: input.overflow_type.unwrap_or(OverflowType::None),
            overflow_id: input.overflow_id,
            music_on_hold: input.music_on_hold.filter(|p| !p.is_empty()),
            record_calls: input.record_calls.unwrap_or(false),
        },
    )
    .await?;
    let row = db::queues::create_queue(&mut tx, id, tenant, &c.fields(), now).await.map_err(name_taken)?;
    let out = QueueOut::from(row);
    let mut entry = principal.audit("queue.created", "queue", Some(id.to_string()), now);
    entry.after = serde_json::to_value(&out).ok();
    db::audit::insert(&mut tx, &entry).await?;
    commit(tx).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// One queue (every tenant user).
#[utoipa::path(get, path = "/api/v1/queues/{id}", tag = "queues", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = QueueOut), (status = 404, body = crate::error::Problem)))]
async fn get_queue(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<QueueOut>> {
    let tenant = principal.tenant()?;
    let mut tx = state.db.tenant_tx(tenant).await?;
    let row = db::queues::get_queue(&mut tx, id).await?;
    commit(tx).await?;
    Ok(Json(QueueOut::from(row)))
}

/// Change a queue. Calls already waiting keep their place.
#[utoipa::path(patch, path = "/api/v1/queues/{id}", tag = "queues", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = QueuePatch,
    responses((status = 200, body = QueueOut), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn update_queue(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Path(id): Path<Uuid>,
    Json(patch): Json<QueuePatch>,
) -> ApiResult<Json<QueueOut>> {
    let now = state.clock.now();
    let mut tx = state.db.tenant_tx(tenant).await?;
    let row = db::queues::get_queue(&mut tx, id).await?;
    let before = QueueOut::from(row.clone());
    let overflow_type = patch.overflow_type.unwrap_or(before.overflow_type);
    let overflow_id = match patch.overflow_type {
        Some(OverflowType::None | OverflowType::Hangup) => patch.overflow_id,
        _ => patch.overflow_id.or(row.overflow_id),
    };
    let music_on_hold = match patch.music_on_hold {
        Some(p) if p.is_empty() => None,
        Some(p) => Some(p),
        None => row.music_on_hold,
    };
    let c = check(
        &mut tx,
        id,
        Checked {
            name: patch.name.map(|n| n.trim().to_owned()).unwrap_or(row.name),
            ring_timeout_secs: patch.ring_timeout_secs.unwrap_or(before.ring_timeout_secs),
            max_wait_secs: patch.max_wait_secs.unwrap_or(before.max_wait_secs),
            overflow_type,
            overflow_id,
            music_on_hold,
            record_calls: patch.record_calls.unwrap_or(row.record_calls),
        },
    )
    .await?;
    let row = db::queues::update_queue(&mut tx, id, &c.fields(), now).await.map_err(name_taken)?;
    let after = QueueOut::from(row);
    let mut entry = principal.audit("queue.updated", "queue", Some(id.to_string()), now);
    entry.before = serde_json::to_value(&before).ok();
    entry.after = serde_json::to_value(&after).ok();
    db::audit::insert(&mut tx, &entry).await?;
    commit(tx).await?;
    Ok(Json(after))
}

/// Delete a queue (refused while a DID routes to it or another queue overflows to it). Its
/// CDRs keep the queue's id.
#[utoipa::path(delete, path = "/api/v1/queues/{id}", tag = "queues", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204, description = "deleted"), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
async fn delete_queue(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let now = state.clock.now();
    let mut tx = state.db.tenant_tx(tenant).await?;
    let before = QueueOut::from(db::queues::get_queue(&mut tx, id).await?);
    let usage = db::queues::queue_usage(&mut tx, id).await?;
    if !usage.is_empty() {
        let mut reasons = Vec::new();
        if !usage.dids.is_empty() {
            reasons.push(format!("DIDs {} route to it", usage.dids.join(", ")));
        }
        if !usage.overflowing_queues.is_empty() {
            reasons.push(format!("queues {} overflow to it", usage.overflowing_queues.join(", ")));
        }
        return Err(ApiError::conflict(
            "queue_in_use",
            format!("this queue is in use: {}; point them elsewhere first", reasons.join("; ")),
        ));
    }
    db::queues::delete_queue(&mut tx, id).await?;
    let mut entry = principal.audit("queue.deleted", "queue", Some(id.to_string()), now);
    entry.before = serde_json::to_value(&before).ok();
    db::audit::insert(&mut tx, &entry).await?;
    commit(tx).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Clone, Serialize, ToSchema)]
pub(crate) struct MemberOut {
    user_id: UserId,
    queue_id: QueueId,
    email: String,
    display_name: String,
    role: Role,
    extension: Option<String>,
    status: AgentStatus,
    /// When the agent joined the queue.
    added_at: DateTime<Utc>,
}

impl From<db::queues::MemberRow> for MemberOut {
    fn from(r: db::queues::MemberRow) -> Self {
        Self {
            user_id: UserId(r.user_id),
            queue_id: QueueId(r.queue_id),
            email: r.email,
            display_name: r.display_name,
            role: Role::parse(&r.role).unwrap_or(Role::Agent),
            extension: r.extension,
            status: r.status.as_deref().and_then(AgentStatus::parse).unwrap_or(AgentStatus::LoggedOut),
            added_at: r.created_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemberIn {
    /// An agent or supervisor of the tenant.
    user_id: UserId,
}

/// The queue's members, in the order they were added (every tenant user).
#[utoipa::path(get, path = "/api/v1/queues/{id}/members", tag = "queues", security(("bearer" = [])), params(("id" = Uuid, Path), PageParams),
    responses((status = 200, body = PageOut<MemberOut>), (status = 404, body = crate::error::Problem)))]
async fn list_members(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<PageOut<MemberOut>>> {
    let tenant = principal.tenant()?;
    let (cursor, limit) = params.parse()?;
    let mut tx = state.db.tenant_tx(tenant).await?;
    db::queues::get_queue(&mut tx, id).await?;
    let page = db::queues::list_members(&mut tx, id, cursor, limit).await?;
    commit(tx).await?;
    Ok(Json(PageOut::from_page(page, MemberOut::from)))
}

/// Add an agent or supervisor to the queue (adding a member twice is not an error).
#[utoipa::path(post, path = "/api/v1/queues/{id}/members", tag = "queues", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = MemberIn,
    responses((status = 201, body = MemberOut), (status = 200, body = MemberOut, description = "already a member"),
        (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn add_member(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Path(id): Path<Uuid>,
    Json(input): Json<MemberIn>,
) -> ApiResult<(StatusCode, Json<MemberOut>)> {
    let now = state.clock.now();
    let mut tx = state.db.tenant_tx(tenant).await?;
    db::queues::get_queue(&mut tx, id).await?;
    // Only agents and supervisors of this tenant take calls (another tenant's user is not found).
    match db::sip::get_agent(&mut tx, input.user_id, now).await {
        Ok(_) => {}
        Err(db::DbError::NotFound) => {
            return Err(ApiError::field("user_id", "must be an agent or supervisor of this tenant"));
        }
        Err(e) => return Err(e.into()),
    }
    let added = db::queues::add_member(&mut tx, tenant, id, input.user_id, now).await?;
    let member = MemberOut::from(db::queues::get_member(&mut tx, id, input.user_id).await?);
    if added {
        let mut entry = principal.audit("queue.member_added", "queue", Some(id.to_string()), now);
        entry.after = Some(serde_json::json!({"user_id": input.user_id, "email": member.email}));
        db::audit::insert(&mut tx, &entry).await?;
    }
    commit(tx).await?;
    Ok((if added { StatusCode::CREATED } else { StatusCode::OK }, Json(member)))
}

/// Remove a member from the queue.
#[utoipa::path(delete, path = "/api/v1/queues/{id}/members/{user_id}", tag = "queues", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = UserId, Path)),
    responses((status = 204, description = "removed"), (status = 404, body = crate::error::Problem)))]
async fn remove_member(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Path((id, user_id)): Path<(Uuid, UserId)>,
) -> ApiResult<StatusCode> {
    let now = state.clock.now();
    let mut tx = state.db.tenant_tx(tenant).await?;
    db::queues::get_queue(&mut tx, id).await?;
    if !db::queues::remove_member(&mut tx, id, user_id).await? {
        return Err(ApiError::not_found());
    }
    let mut entry = principal.audit("queue.member_removed", "queue", Some(id.to_string()), now);
    entry.before = Some(serde_json::json!({"user_id": user_id}));
    db::audit::insert(&mut tx, &entry).await?;
    commit(tx).await?;
    Ok(StatusCode::NO_CONTENT)
}
