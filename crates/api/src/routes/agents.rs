//! Agents (users with role agent or supervisor) as telephony sees them: SIP extension and
//! registration state, availability (status) and queues, and the SIP credentials the
//! softphone uses.

use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::events::AgentStatus;
use domain::{QueueId, Role, UserId};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{PageOut, PageParams, commit};
use crate::AppState;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Json, Path, Query};
use crate::principal::Principal;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_agents))
        .routes(routes!(get_agent))
        .routes(routes!(get_agent_status, set_agent_status))
        .routes(routes!(get_sip_credentials))
        .routes(routes!(rotate_sip_credentials))
}

/// Whether the agent's softphone is registered (the green/red icon).
#[derive(Clone, Copy, Serialize, ToSchema, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RegistrationState {
    Green,
    Red,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RegistrationOut {
    pub(crate) state: RegistrationState,
    /// Live bindings (devices) of the extension.
    pub(crate) bindings: i64,
    /// Of the most recent binding: `udp`, `tcp`, `tls`, `ws` or `wss`.
    pub(crate) transport: Option<String>,
    pub(crate) user_agent: Option<String>,
    /// When the last binding expires unless refreshed.
    pub(crate) expires_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AgentOut {
    pub(crate) id: UserId,
    pub(crate) email: String,
    pub(crate) display_name: String,
    pub(crate) role: Role,
    pub(crate) disabled: bool,
    /// Assigned when the SIP credentials are first requested.
    pub(crate) extension: Option<String>,
    /// The tenant's SIP domain, `<slug>.<base domain>`.
    pub(crate) sip_domain: String,
    pub(crate) registration: RegistrationOut,
    /// Availability; `on_call` is set by calls themselves.
    pub(crate) status: AgentStatus,
    /// Why the agent is on a break (only with `on_break`).
    pub(crate) pause_reason: Option<String>,
    /// Queues the agent takes calls from.
    pub(crate) queue_ids: Vec<QueueId>,
}

fn status_of(text: Option<&str>) -> AgentStatus {
    text.and_then(AgentStatus::parse).unwrap_or(AgentStatus::LoggedOut)
}

fn agent_out(row: db::sip::AgentRow, domain: &str) -> AgentOut {
    AgentOut {
        status: status_of(row.status.as_deref()),
        pause_reason: row.pause_reason,
        queue_ids: row.queue_ids.into_iter().map(QueueId).collect(),
        id: UserId(row.id),
        email: row.email,
        display_name: row.display_name,
        role: Role::parse(&row.role).unwrap_or(Role::Agent),
        disabled: row.disabled,
        extension: row.extension,
        sip_domain: domain.to_owned(),
        registration: RegistrationOut {
            state: if row.registrations > 0 { RegistrationState::Green } else { RegistrationState::Red },
            bindings: row.registrations,
            transport: row.transport,
            user_agent: row.user_agent,
            expires_at: row.registered_until,
        },
    }
}

/// What a softphone needs to register.
#[derive(Serialize, ToSchema)]
pub(crate) struct SipCredentialsOut {
    pub(crate) extension: String,
    /// Digest user name (the extension).
    pub(crate) username: String,
    /// SIP domain and Digest realm.
    pub(crate) domain: String,
    pub(crate) password: String,
    /// Where the browser softphone connects (SIP over secure WebSocket), if configured.
    pub(crate) wss_url: Option<String>,
    /// `sip:<extension>@<domain>`.
    pub(crate) uri: String,
}

async fn sip_domain(state: &AppState, tenant: domain::TenantId) -> ApiResult<String> {
    let mut tx = state.db.tenant_tx(tenant).await?;
    let row = db::tenants::get(&mut tx, tenant).await?;
    commit(tx).await?;
    Ok(format!("{}.{}", row.slug, state.config.sip_base_domain))
}

/// Agents may read themselves; reading others needs `needed`.
fn allowed(principal: &Principal, id: UserId, needed: Role) -> ApiResult<()> {
    if principal.user_id() == Some(id) { Ok(()) } else { principal.require(needed) }
}

/// List the tenant's agents and supervisors with their SIP registration state.
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = PageOut<AgentOut>)))]
async fn list_agents(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<PageOut<AgentOut>>> {
    principal.require(Role::Supervisor)?;
    let tenant = principal.tenant()?;
    let (cursor, limit) = params.parse()?;
    let domain = sip_domain(&state, tenant).await?;
    let mut tx = state.db.tenant_tx(tenant).await?;
    let page = db::sip::list_agents(&mut tx, tenant, state.clock.now(), cursor, limit).await?;
    commit(tx).await?;
    Ok(Json(PageOut::from_page(page, |r| agent_out(r, &domain))))
}

/// One agent with SIP registration state (the agent themselves, supervisors and admins).
#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents", security(("bearer" = [])), params(("id" = UserId, Path)),
    responses((status = 200, body = AgentOut), (status = 404, body = crate::error::Problem)))]
async fn get_agent(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<UserId>,
) -> ApiResult<Json<AgentOut>> {
    let tenant = principal.tenant()?;
    allowed(&principal, id, Role::Supervisor)?;
    let domain = sip_domain(&state, tenant).await?;
    let mut tx = state.db.tenant_tx(tenant).await?;
    let row = db::sip::get_agent(&mut tx, id, state.clock.now()).await?;
    commit(tx).await?;
    Ok(Json(agent_out(row, &domain)))
}

fn new_sip_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..24).map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())])).collect()
}

fn context(id: UserId) -> String {
    format!("sip-password:{id}")
}

async fn credentials(
    state: &AppState,
    principal: &Principal,
    id: UserId,
    rotate: bool,
) -> ApiResult<SipCredentialsOut> {
    let tenant = principal.tenant()?;
    allowed(principal, id, Role::Admin)?;
    let domain = sip_domain(state, tenant).await?;
    let now = state.clock.now();
    let mut tx = state.db.tenant_tx(tenant).await?;
    // Only agents and supervisors have SIP accounts.
    db::sip::get_agent(&mut tx, id, now).await?;
    let fresh = new_sip_password();
    let existing = db::sip::get_account(&mut tx, id).await?;
    let created = existing.is_none();
    let mut row = db::sip::ensure_account(
        &mut tx,
        tenant,
        id,
        &state.vault.encrypt(fresh.as_bytes(), &context(id)),
        now,
    )
    .await?;
    if rotate && !created {
        db::sip::set_password(&mut tx, id, &state.vault.encrypt(fresh.as_bytes(), &context(id)), now).await?;
        row.password_enc = state.vault.encrypt(fresh.as_bytes(), &context(id));
    }
    let password = if created || rotate {
        fresh
    } else {
        let plain = state.vault.decrypt(&row.password_enc, &context(id)).map_err(|_| ApiError::internal())?;
        String::from_utf8(plain).map_err(|_| ApiError::internal())?
    };
    if created || rotate {
        let action = if created { "sip_account.created" } else { "sip_account.password_rotated" };
        let mut entry = principal.audit(action, "user", Some(id.to_string()), now);
        entry.after = Some(serde_json::json!({"extension": row.extension}));
        db::audit::insert(&mut tx, &entry).await?;
    }
    commit(tx).await?;
    Ok(SipCredentialsOut {
        uri: format!("sip:{}@{domain}", row.extension),
        username: row.extension.clone(),
        extension: row.extension,
        domain,
        password,
        wss_url: state.config.sip_wss_url.clone(),
    })
}

/// The agent's SIP credentials for the softphone (the agent themselves, or an admin). The
/// extension and password are issued on the first request.
#[utoipa::path(get, path = "/api/v1/agents/{id}/sip-credentials", tag = "agents", security(("bearer" = [])), params(("id" = UserId, Path)),
    responses((status = 200, body = SipCredentialsOut), (status = 404, body = crate::error::Problem)))]
async fn get_sip_credentials(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<UserId>,
) -> ApiResult<Json<SipCredentialsOut>> {
    Ok(Json(credentials(&state, &principal, id, false).await?))
}

/// Issue a new SIP password (the old one stops working at the next registration refresh).
#[utoipa::path(post, path = "/api/v1/agents/{id}/sip-credentials/rotate", tag = "agents", security(("bearer" = [])), params(("id" = UserId, Path)),
    responses((status = 200, body = SipCredentialsOut), (status = 404, body = crate::error::Problem)))]
async fn rotate_sip_credentials(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<UserId>,
) -> ApiResult<Json<SipCredentialsOut>> {
    Ok(Json(credentials(&state, &principal, id, true).await?))
}

#[derive(Clone, Serialize, ToSchema)]
pub(crate) struct AgentStatusOut {
    pub(crate) agent_id: UserId,
    pub(crate) status: AgentStatus,
    /// Why the agent is on a break (only with `on_break`).
    pub(crate) pause_reason: Option<String>,
    /// When the status last changed; absent for an agent who never logged in.
    pub(crate) changed_at: Option<DateTime<Utc>>,
    /// When the agent last became free (longest-idle routing orders by it).
    pub(crate) idle_since: Option<DateTime<Utc>>,
}

fn status_out(id: UserId, row: Option<db::agent_states::AgentStateRow>) -> AgentStatusOut {
    match row {
        Some(r) => AgentStatusOut {
            agent_id: id,
            status: r.status(),
            pause_reason: r.pause_reason,
            changed_at: Some(r.changed_at),
            idle_since: r.idle_since,
        },
        None => AgentStatusOut {
            agent_id: id,
            status: AgentStatus::LoggedOut,
            pause_reason: None,
            changed_at: None,
            idle_since: None,
        },
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentStatusIn {
    /// `available`, `on_break` or `logged_out` (`on_call` follows calls and cannot be set).
    status: AgentStatus,
    /// Pause reason: required with `on_break` (e.g. `lunch`), ignored otherwise.
    reason: Option<String>,
}

/// The agent's availability (the agent themselves, supervisors and admins).
#[utoipa::path(get, path = "/api/v1/agents/{id}/status", tag = "agents", security(("bearer" = [])), params(("id" = UserId, Path)),
    responses((status = 200, body = AgentStatusOut), (status = 404, body = crate::error::Problem)))]
async fn get_agent_status(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<UserId>,
) -> ApiResult<Json<AgentStatusOut>> {
    let tenant = principal.tenant()?;
    allowed(&principal, id, Role::Supervisor)?;
    let mut tx = state.db.tenant_tx(tenant).await?;
    db::sip::get_agent(&mut tx, id, state.clock.now()).await?;
    let row = db::agent_states::get_state(&mut tx, id).await?;
    commit(tx).await?;
    Ok(Json(status_out(id, row)))
}

/// Set the agent's availability (the agent themselves, supervisors and admins). Writes
/// `agent.status_changed` (and `agent.paused` for a break) when the status changes.
#[utoipa::path(put, path = "/api/v1/agents/{id}/status", tag = "agents", security(("bearer" = [])), params(("id" = UserId, Path)), request_body = AgentStatusIn,
    responses((status = 200, body = AgentStatusOut), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn set_agent_status(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<UserId>,
    Json(input): Json<AgentStatusIn>,
) -> ApiResult<Json<AgentStatusOut>> {
    let tenant = principal.tenant()?;
    allowed(&principal, id, Role::Supervisor)?;
    let now = state.clock.now();
    let mut tx = state.db.tenant_tx(tenant).await?;
    // Unknown and other tenants' agents are 404 before the body is judged.
    db::sip::get_agent(&mut tx, id, now).await?;
    let reason = input.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    let mut errors = Vec::new();
    if !input.status.settable_by_hand() {
        errors.push(FieldError {
            field: "status".into(),
            message: "on_call is set by calls; choose available, on_break or logged_out".into(),
        });
    }
    if input.status == AgentStatus::OnBreak {
        match reason {
            None => {
                errors.push(FieldError { field: "reason".into(), message: "a break needs a reason".into() })
            }
            Some(r) if r.chars().count() > 100 || r.contains(char::is_control) => errors.push(FieldError {
                field: "reason".into(),
                message: "at most 100 printable characters".into(),
            }),
            Some(_) => {}
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let before = db::agent_states::get_state(&mut tx, id).await?;
    let before = status_out(id, before);
    let row = db::agent_states::set_agent_status(&mut tx, tenant, id, input.status, reason, now).await?;
    let after = status_out(id, Some(row));
    if before.status != after.status || before.pause_reason != after.pause_reason {
        let mut entry = principal.audit("agent.status_changed", "user", Some(id.to_string()), now);
        entry.before = serde_json::to_value(&before).ok();
        entry.after = serde_json::to_value(&after).ok();
        db::audit::insert(&mut tx, &entry).await?;
    }
    commit(tx).await?;
    Ok(Json(after))
}
