//! SIP trunks (carrier connections) and DIDs (numbers routed through them), managed by the
//! tenant's admins. Changes to trunks are announced to the SIP service in the same
//! transaction (`db::trunks::notify_changed`), so every node reloads them on commit.

// utoipa's IntoParams expansion names the params type with a redundant path.
#![allow(unused_qualifications)]

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
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
        .routes(routes!(list_trunks, create_trunk))
        .routes(routes!(get_trunk, update_trunk, delete_trunk))
        .routes(routes!(list_dids, create_did))
        .routes(routes!(get_did, update_did, delete_did))
}

/// Keepalive status of a trunk.
#[derive(Clone, Copy, Serialize, ToSchema, Debug, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum TrunkStatus {
    /// Not pinged yet (or keepalive off).
    Unknown,
    Ok,
    Fail,
}

#[derive(Clone, Serialize, ToSchema)]
pub(crate) struct TrunkOut {
    id: Uuid,
    name: String,
    host: String,
    port: u16,
    /// `udp`, `tcp` or `tls`.
    transport: String,
    /// Inbound INVITEs are accepted only from these networks (the packet's source address).
    allowed_cidrs: Vec<String>,
    /// Outbound credentials user name; the password is never shown.
    username: Option<String>,
    has_password: bool,
    /// Register to the carrier with the credentials.
    register: bool,
    /// Ping the carrier with OPTIONS to keep `status` current.
    keepalive: bool,
    status: TrunkStatus,
    /// Why the status is FAIL: `timeout`, `401 bad credentials`, `403 forbidden …`, `503 …`.
    status_reason: Option<String>,
    status_changed_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<db::trunks::TrunkRow> for TrunkOut {
    fn from(r: db::trunks::TrunkRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            host: r.host,
            port: u16::try_from(r.port).unwrap_or(5060),
            transport: r.transport,
            allowed_cidrs: r.allowed_cidrs,
            username: r.username,
            has_password: r.password_enc.is_some(),
            register: r.register,
            keepalive: r.keepalive,
            status: match r.status.as_str() {
                "ok" => TrunkStatus::Ok,
                "fail" => TrunkStatus::Fail,
                _ => TrunkStatus::Unknown,
            },
            status_reason: r.status_reason,
            status_changed_at: r.status_changed_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrunkIn {
    name: String,
    /// Carrier host name or IP address.
    host: String,
    /// Default 5060 (5061 for tls).
    port: Option<u16>,
    /// `udp` (default), `tcp` or `tls`.
    transport: Option<String>,
    /// IPv4 and IPv6 networks (`185.45.152.0/24`, `2001:db8::/32`) or single addresses.
    allowed_cidrs: Vec<String>,
    username: Option<String>,
    password: Option<String>,
    register: Option<bool>,
    keepalive: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrunkPatch {
    name: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    transport: Option<String>,
    allowed_cidrs: Option<Vec<String>>,
    /// An empty string removes the user name (and the password).
    username: Option<String>,
    /// An empty string removes the password.
    password: Option<String>,
    register: Option<bool>,
    keepalive: Option<bool>,
}

fn valid_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Checked and normalised trunk fields.
struct Checked {
    name: String,
    host: String,
    port: i32,
    transport: String,
    cidrs: Vec<String>,
    username: Option<String>,
    password: Option<String>,
    register: bool,
    keepalive: bool,
}

fn check(c: Checked) -> ApiResult<Checked> {
    let mut errors = Vec::new();
    let mut err = |field: &str, message: &str| {
        errors.push(FieldError { field: field.into(), message: message.into() });
    };
    if let Err(e) = domain::validate::validate_name(&c.name, 120) {
        err("name", &e);
    }
    if !valid_host(&c.host) {
        err("host", "must be a host name or an IP address");
    }
    if !matches!(c.transport.as_str(), "udp" | "tcp" | "tls") {
        err("transport", "must be udp, tcp or tls");
    }
    if !(1..=65535).contains(&c.port) {
        err("port", "must be between 1 and 65535");
    }
    let mut cidrs = Vec::new();
    for (i, text) in c.cidrs.iter().enumerate() {
        match telephony::normalize_cidr(text) {
            Some(net) => {
                let net = net.to_string();
                if !cidrs.contains(&net) {
                    cidrs.push(net);
                }
            }
            None => {
                err(&format!("allowed_cidrs[{i}]"), "must be an IPv4 or IPv6 network such as 185.45.152.0/24")
            }
        }
    }
    if c.cidrs.len() > 100 {
        err("allowed_cidrs", "at most 100 networks");
    }
    if c.username.as_ref().is_some_and(|u| u.len() > 128 || u.contains(char::is_control)) {
        err("username", "at most 128 printable characters");
    }
    if c.password.as_ref().is_some_and(|p| p.len() > 128) {
        err("password", "at most 128 characters");
    }
    if c.password.is_some() && c.username.is_none() {
        err("username", "a password needs a user name");
    }
    if c.register && (c.username.is_none() || c.password.is_none()) {
        err("register", "registration needs a user name and a password");
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok(Checked { cidrs, ..c })
}

fn conflict(e: db::DbError, field: &str, code: &'static str, message: &str) -> ApiError {
    match e {
        db::DbError::Conflict(_) => {
            let mut err = ApiError::conflict(code, message);
            err.errors = vec![FieldError { field: field.into(), message: message.into() }];
            err
        }
        other => other.into(),
    }
}

fn password_context(id: Uuid) -> String {
    format!("sip-trunk-password:{id}")
}

/// List the tenant's SIP trunks with their live status.
#[utoipa::path(get, path = "/api/v1/trunks", tag = "trunks", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = PageOut<TrunkOut>)))]
async fn list_trunks(
    State(state): State<AppState>,
    TenantAdmin { tenant, .. }: TenantAdmin,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<PageOut<TrunkOut>>> {
    let (cursor, limit) = params.parse()?;
    let mut tx = state.db.tenant_tx(tenant).await?;
    let page = db::trunks::list_trunks(&mut tx, tenant, cursor, limit).await?;
    commit(tx).await?;
    Ok(Json(PageOut::from_page(page, TrunkOut::from)))
}

/// Add a SIP trunk.
#[utoipa::path(post, path = "/api/v1/trunks", tag = "trunks", security(("bearer" = [])), request_body = TrunkIn,
    responses((status = 201, body = TrunkOut), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn create_trunk(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Json(input): Json<TrunkIn>,
) -> ApiResult<(StatusCode, Json<TrunkOut>)> {
    let transport = input.transport.unwrap_or_else(|| "udp".into()).to_ascii_lowercase();
    let default_port = if transport == "tls" { 5061 } else { 5060 };
    let c = check(Checked {
        name: input.name.trim().to_owned(),
        host: input.host.trim().to_ascii_lowercase(),
        port: i32::from(input.port.unwrap_or(default_port)),
        transport,
        cidrs: input.allowed_cidrs,
        username: input.username.filter(|u| !u.is_empty()),
        password: input.password.filter(|p| !p.is_empty()),
        register: input.register.unwrap_or(false),
        keepalive: input.keepalive.unwrap_or(true),
    })?;
    let id = Uuid::new_v4();
    let password_enc = c.password.as_ref().map(|p| state.vault.encrypt(p.as_bytes(), &password_context(id)));
    let now = state.clock.now();
    let mut tx = state.db.tenant_tx(tenant).await?;
    let row = db::trunks::create_trunk(
        &mut tx,
        id,
        tenant,
        &db::trunks::TrunkFields {
            name: &c.name,
            host: &c.host,
            port: c.port,
            transport: &c.transport,
            allowed_cidrs: &c.cidrs,
            username: c.username.as_deref(),
            password_enc: password_enc.as_deref(),
            register: c.register,
            keepalive: c.keepalive,
        },
        now,
    )
    .await
    .map_err(|e| conflict(e, "name", "name_taken", "a trunk with this name exists"))?;
    let out = TrunkOut::from(row);
    let mut entry = principal.audit("trunk.created", "trunk", Some(id.to_string()), now);
    entry.after = serde_json::to_value(&out).ok();
    db::audit::insert(&mut tx, &entry).await?;
    db::trunks::notify_changed(&mut tx, tenant).await?;
    commit(tx).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// One trunk.
#[utoipa::path(get, path = "/api/v1/trunks/{id}", tag = "trunks", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = TrunkOut), (status = 404, body = crate::error::Problem)))]
async fn get_trunk(
    State(state): State<AppState>,
    TenantAdmin { tenant, .. }: TenantAdmin,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<TrunkOut>> {
    let mut tx = state.db.tenant_tx(tenant).await?;
    let row = db::trunks::get_trunk(&mut tx, id).await?;
    commit(tx).await?;
    Ok(Json(TrunkOut::from(row)))
}

/// Change a trunk. The status is re-checked by the next keepalive (within 30 s).
#[utoipa::path(patch, path = "/api/v1/trunks/{id}", tag = "trunks", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = TrunkPatch,
    responses((status = 200, body = TrunkOut), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn update_trunk(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Path(id): Path<Uuid>,
    Json(patch): Json<TrunkPatch>,
) -> ApiResult<Json<TrunkOut>> {
    let now = state.clock.now();
    let mut tx = state.db.tenant_tx(tenant).await?;
    let row = db::trunks::get_trunk(&mut tx, id).await?;
    let before = TrunkOut::from(row.clone());
    let old_password = row
        .password_enc
        .as_deref()
        .map(|enc| state.vault.decrypt(enc, &password_context(id)).map_err(|_| ApiError::internal()))
        .transpose()?
        .map(|p| String::from_utf8(p).unwrap_or_default());
    let username = match patch.username {
        Some(u) if u.is_empty() => None,
        Some(u) => Some(u),
        None => row.username.clone(),
    };
    let password = match patch.password {
        Some(p) if p.is_empty() => None,
        Some(p) => Some(p),
        None if username.is_none() => None,
        None => old_password,
    };
    let c = check(Checked {
        name: patch.name.map(|n| n.trim().to_owned()).unwrap_or(row.name),
        host: patch.host.map(|h| h.trim().to_ascii_lowercase()).unwrap_or(row.host),
        port: patch.port.map(i32::from).unwrap_or(row.port),
        transport: patch.transport.map(|t| t.to_ascii_lowercase()).unwrap_or(row.transport),
        cidrs: patch.allowed_cidrs.unwrap_or(row.allowed_cidrs),
        username,
        password,
        register: patch.register.unwrap_or(row.register),
        keepalive: patch.keepalive.unwrap_or(row.keepalive),
    })?;
    let password_enc = c.password.as_ref().map(|p| state.vault.encrypt(p.as_bytes(), &password_context(id)));
    let row = db::trunks::update_trunk(
        &mut tx,
        id,
        &db::trunks::TrunkFields {
            name: &c.name,
            host: &c.host,
            port: c.port,
            transport: &c.transport,
            allowed_cidrs: &c.cidrs,
            username: c.username.as_deref(),
            password_enc: password_enc.as_deref(),
            register: c.register,
            keepalive: c.keepalive,
        },
        now,
    )
    .await
    .map_err(|e| conflict(e, "name", "name_taken", "a trunk with this name exists"))?;
    let after = TrunkOut::from(row);
    let mut entry = principal.audit("trunk.updated", "trunk", Some(id.to_string()), now);
    entry.before = serde_json::to_value(&before).ok();
    entry.after = serde_json::to_value(&after).ok();
    db::audit::insert(&mut tx, &entry).await?;
    db::trunks::notify_changed(&mut tx, tenant).await?;
    commit(tx).await?;
    Ok(Json(after))
}

/// Delete a trunk (refused while DIDs use it).
#[utoipa::path(delete, path = "/api/v1/trunks/{id}", tag = "trunks", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204, description = "deleted"), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
async fn delete_trunk(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let now = state.clock.now();
    let mut tx = state.db.tenant_tx(tenant).await?;
    let before = TrunkOut::from(db::trunks::get_trunk(&mut tx, id).await?);
    if db::trunks::trunk_in_use(&mut tx, id).await? {
        return Err(ApiError::conflict(
            "trunk_in_use",
            "DIDs still route through this trunk; move or delete them first",
        ));
    }
    db::trunks::delete_trunk(&mut tx, id).await?;
    let mut entry = principal.audit("trunk.deleted", "trunk", Some(id.to_string()), now);
    entry.before = serde_json::to_value(&before).ok();
    db::audit::insert(&mut tx, &entry).await?;
    db::trunks::notify_changed(&mut tx, tenant).await?;
    commit(tx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Where calls to a DID go: a queue or an agent of the tenant (flows are placeholders until IVR lands).
#[derive(Clone, Copy, Serialize, Deserialize, ToSchema, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum DestinationType {
    None,
    Queue,
    Agent,
    Flow,
}

impl DestinationType {
    fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Queue => "queue",
            Self::Agent => "agent",
            Self::Flow => "flow",
        }
    }
}

#[derive(Clone, Serialize, ToSchema)]
pub(crate) struct DidOut {
    id: Uuid,
    /// E.164, e.g. `+4930123456`.
    number: String,
    trunk_id: Uuid,
    destination_type: DestinationType,
    destination_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<db::trunks::DidRow> for DidOut {
    fn from(r: db::trunks::DidRow) -> Self {
        Self {
            id: r.id,
            number: r.number,
            trunk_id: r.trunk_id,
            destination_type: match r.destination_type.as_str() {
                "queue" => DestinationType::Queue,
                "agent" => DestinationType::Agent,
                "flow" => DestinationType::Flow,
                _ => DestinationType::None,
            },
            destination_id: r.destination_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DidIn {
    number: String,
    trunk_id: Uuid,
    destination_type: Option<DestinationType>,
    destination_id: Option<Uuid>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DidPatch {
    number: Option<String>,
    trunk_id: Option<Uuid>,
    destination_type: Option<DestinationType>,
    destination_id: Option<Uuid>,
}

/// `+` and 2 to 15 digits, not starting with 0 (ITU-T E.164).
fn valid_e164(n: &str) -> bool {
    n.strip_prefix('+').is_some_and(|d| {
        (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

async fn check_did(
    tx: &mut db::Tx,
    number: &str,
    trunk_id: Uuid,
    destination: DestinationType,
    destination_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let mut errors = Vec::new();
    if !valid_e164(number) {
        errors.push(FieldError {
            field: "number".into(),
            message: "must be E.164: + and up to 15 digits".into(),
        });
    }
    match db::trunks::get_trunk(tx, trunk_id).await {
        Ok(_) => {}
        Err(db::DbError::NotFound) => {
            errors.push(FieldError { field: "trunk_id".into(), message: "no such trunk".into() })
        }
        Err(e) => return Err(e.into()),
    }
    match (destination, destination_id) {
        (DestinationType::None, Some(_)) => errors.push(FieldError {
            field: "destination_id".into(),
            message: "must be empty without a destination".into(),
        }),
        (DestinationType::None, None) => {}
        (_, None) => errors.push(FieldError {
            field: "destination_id".into(),
            message: "required for this destination".into(),
        }),
        (DestinationType::Agent, Some(agent)) => {
            match db::sip::get_agent(tx, domain::UserId(agent), now).await {
                Ok(_) => {}
                Err(db::DbError::NotFound) => errors
                    .push(FieldError { field: "destination_id".into(), message: "no such agent".into() }),
                Err(e) => return Err(e.into()),
            }
        }
        (DestinationType::Queue, Some(queue)) => match db::queues::get_queue(tx, queue).await {
            Ok(_) => {}
            Err(db::DbError::NotFound) => {
                errors.push(FieldError { field: "destination_id".into(), message: "no such queue".into() })
            }
            Err(e) => return Err(e.into()),
        },
        // Flows do not exist yet: their ids are kept as given.
        (DestinationType::Flow, Some(_)) => {}
    }
    if errors.is_empty() { Ok(()) } else { Err(ApiError::validation(errors)) }
}

/// List the tenant's DIDs.
#[utoipa::path(get, path = "/api/v1/dids", tag = "dids", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = PageOut<DidOut>)))]
async fn list_dids(
    State(state): State<AppState>,
    TenantAdmin { tenant, .. }: TenantAdmin,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<PageOut<DidOut>>> {
    let (cursor, limit) = params.parse()?;
    let mut tx = state.db.tenant_tx(tenant).await?;
    let page = db::trunks::list_dids(&mut tx, tenant, cursor, limit).await?;
    commit(tx).await?;
    Ok(Json(PageOut::from_page(page, DidOut::from)))
}

/// Add a DID (a number the tenant owns, reached through one of its trunks).
#[utoipa::path(post, path = "/api/v1/dids", tag = "dids", security(("bearer" = [])), request_body = DidIn,
    responses((status = 201, body = DidOut), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn create_did(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Json(input): Json<DidIn>,
) -> ApiResult<(StatusCode, Json<DidOut>)> {
    let now = state.clock.now();
    let number = input.number.trim().to_owned();
    let destination = input.destination_type.unwrap_or(DestinationType::None);
    let mut tx = state.db.tenant_tx(tenant).await?;
    check_did(&mut tx, &number, input.trunk_id, destination, input.destination_id, now).await?;
    let id = Uuid::new_v4();
    let row = db::trunks::create_did(
        &mut tx,
        id,
        tenant,
        &db::trunks::DidFields {
            number: &number,
            trunk_id: input.trunk_id,
            destination_type: destination.as_str(),
            destination_id: input.destination_id,
        },
        now,
    )
    .await
    .map_err(|e| conflict(e, "number", "number_taken", "this number is already a DID"))?;
    let out = DidOut::from(row);
    let mut entry = principal.audit("did.created", "did", Some(id.to_string()), now);
    entry.after = serde_json::to_value(&out).ok();
    db::audit::insert(&mut tx, &entry).await?;
    commit(tx).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// One DID.
#[utoipa::path(get, path = "/api/v1/dids/{id}", tag = "dids", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = DidOut), (status = 404, body = crate::error::Problem)))]
async fn get_did(
    State(state): State<AppState>,
    TenantAdmin { tenant, .. }: TenantAdmin,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<DidOut>> {
    let mut tx = state.db.tenant_tx(tenant).await?;
    let row = db::trunks::get_did(&mut tx, id).await?;
    commit(tx).await?;
    Ok(Json(DidOut::from(row)))
}

/// Change a DID's number, trunk or destination.
#[utoipa::path(patch, path = "/api/v1/dids/{id}", tag = "dids", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = DidPatch,
    responses((status = 200, body = DidOut), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn update_did(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Path(id): Path<Uuid>,
    Json(patch): Json<DidPatch>,
) -> ApiResult<Json<DidOut>> {
    let now = state.clock.now();
    let mut tx = state.db.tenant_tx(tenant).await?;
    let row = db::trunks::get_did(&mut tx, id).await?;
    let before = DidOut::from(row.clone());
    let number = patch.number.map(|n| n.trim().to_owned()).unwrap_or(row.number);
    let trunk_id = patch.trunk_id.unwrap_or(row.trunk_id);
    let destination = patch.destination_type.unwrap_or(before.destination_type);
    let destination_id = match patch.destination_type {
        Some(DestinationType::None) => None,
        _ => patch.destination_id.or(row.destination_id),
    };
    check_did(&mut tx, &number, trunk_id, destination, destination_id, now).await?;
    let row = db::trunks::update_did(
        &mut tx,
        id,
        &db::trunks::DidFields {
            number: &number,
            trunk_id,
            destination_type: destination.as_str(),
            destination_id,
        },
        now,
    )
    .await
    .map_err(|e| conflict(e, "number", "number_taken", "this number is already a DID"))?;
    let after = DidOut::from(row);
    let mut entry = principal.audit("did.updated", "did", Some(id.to_string()), now);
    entry.before = serde_json::to_value(&before).ok();
    entry.after = serde_json::to_value(&after).ok();
    db::audit::insert(&mut tx, &entry).await?;
    commit(tx).await?;
    Ok(Json(after))
}

/// Delete a DID.
#[utoipa::path(delete, path = "/api/v1/dids/{id}", tag = "dids", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204, description = "deleted"), (status = 404, body = crate::error::Problem)))]
async fn delete_did(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let now = state.clock.now();
    let mut tx = state.db.tenant_tx(tenant).await?;
    let before = DidOut::from(db::trunks::get_did(&mut tx, id).await?);
    db::trunks::delete_did(&mut tx, id).await?;
    let mut entry = principal.audit("did.deleted", "did", Some(id.to_string()), now);
    entry.before = serde_json::to_value(&before).ok();
    db::audit::insert(&mut tx, &entry).await?;
    commit(tx).await?;
    Ok(StatusCode::NO_CONTENT)
}
