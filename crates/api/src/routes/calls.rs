//! Calls in progress (supervisors and admins) and CDRs, the records of ended calls, with search.
//! A CDR here is the same JSON as the `cdr` of the call's `call.ended` event.

// utoipa's IntoParams expansion names the params type with a redundant path.
#![allow(unused_qualifications)]

use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::calls::{CallState, Cdr, HangupSide};
use domain::events::CallDirection;
use domain::{CallId, QueueId, Role, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{PageOut, PageParams, commit};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::principal::Principal;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_calls))
        .routes(routes!(get_call))
        .routes(routes!(hangup_call))
        .routes(routes!(transfer_call))
        .routes(routes!(consult_call))
        .routes(routes!(complete_transfer))
        .routes(routes!(cancel_consult))
        .routes(routes!(conference_call))
        .routes(routes!(list_cdrs))
        .routes(routes!(get_cdr))
}

/// A call as it is now.
#[derive(Serialize, ToSchema)]
pub(crate) struct CallOut {
    id: CallId,
    state: CallState,
    direction: CallDirection,
    from: String,
    to: String,
    did: Option<String>,
    trunk_id: Option<Uuid>,
    queue_id: Option<QueueId>,
    agent_id: Option<UserId>,
    created_at: DateTime<Utc>,
    queued_at: Option<DateTime<Utc>>,
    answered_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    /// So far, for a call in progress.
    duration_ms: u64,
    talk_ms: u64,
    wait_ms: u64,
    hangup_cause: Option<String>,
    hangup_side: Option<HangupSide>,
    #[schema(value_type = Vec<Object>)]
    legs: serde_json::Value,
    #[schema(value_type = Vec<Object>)]
    transfers: serde_json::Value,
}

fn call_out(r: db::calls::CallRow, now: DateTime<Utc>) -> CallOut {
    let cdr = r.cdr_at(now);
    CallOut {
        id: cdr.id,
        state: r.state(),
        direction: cdr.direction,
        from: cdr.from,
        to: cdr.to,
        did: cdr.did,
        trunk_id: r.trunk_id,
        queue_id: cdr.queue_id,
        agent_id: cdr.agent_id,
        created_at: cdr.created_at,
        queued_at: cdr.queued_at,
        answered_at: cdr.answered_at,
        ended_at: cdr.ended_at,
        duration_ms: cdr.duration_ms,
        talk_ms: cdr.talk_ms,
        wait_ms: cdr.wait_ms,
        hangup_cause: cdr.hangup_cause,
        hangup_side: cdr.hangup_side,
        legs: cdr.legs,
        transfers: cdr.transfers,
    }
}

/// Calls that have not ended, oldest first (supervisors and admins).
#[utoipa::path(get, path = "/api/v1/calls", tag = "calls", security(("bearer" = [])),
    responses((status = 200, body = PageOut<CallOut>)))]
async fn list_calls(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<PageOut<CallOut>>> {
    principal.require(Role::Supervisor)?;
    let tenant = principal.tenant()?;
    let now = state.clock.now();
    let mut tx = state.db.tenant_tx(tenant).await?;
    let rows = db::calls::calls_in_progress(&mut tx, tenant).await?;
    commit(tx).await?;
    // Calls in progress are few (bounded by the tenant's lines): one page holds them all.
    Ok(Json(PageOut { items: rows.into_iter().map(|r| call_out(r, now)).collect(), next_cursor: None }))
}

/// One call, in progress or ended (supervisors and admins).
#[utoipa::path(get, path = "/api/v1/calls/{id}", tag = "calls", security(("bearer" = [])), params(("id" = CallId, Path)),
    responses((status = 200, body = CallOut), (status = 404, body = crate::error::Problem)))]
async fn get_call(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<CallId>,
) -> ApiResult<Json<CallOut>> {
    principal.require(Role::Supervisor)?;
    let tenant = principal.tenant()?;
    let mut tx = state.db.tenant_tx(tenant).await?;
    let row = db::calls::get_call(&mut tx, id).await?;
    commit(tx).await?;
    Ok(Json(call_out(row, state.clock.now())))
}

fn live_calls(state: &AppState) -> ApiResult<&telephony::CallsHandle> {
    state.calls.get().ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "sip_disabled",
            "the SIP service does not run in this process (sip.enabled = false)",
        )
    })
}

/// Hangs up a call in progress (both sides get BYE; the CDR says `api_hangup`).
#[utoipa::path(post, path = "/api/v1/calls/{id}/hangup", tag = "calls", security(("bearer" = [])), params(("id" = CallId, Path)),
    responses((status = 204), (status = 404, body = crate::error::Problem)))]
async fn hangup_call(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<CallId>,
) -> ApiResult<axum::http::StatusCode> {
    principal.require(Role::Supervisor)?;
    let tenant = principal.tenant()?;
    let mut tx = state.db.tenant_tx(tenant).await?;
    let row = db::calls::get_call(&mut tx, id).await?;
    commit(tx).await?;
    if row.ended_at.is_some() {
        return Err(ApiError::conflict("call_ended", "the call has already ended"));
    }
    let calls = live_calls(&state)?;
    calls.control(tenant, id, telephony::Control::Hangup).map_err(|_| ApiError::not_found())?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Where to send the caller: exactly one of `extension`, `queue_id` and `number`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransferIn {
    /// An agent's extension in this tenant.
    extension: Option<String>,
    queue_id: Option<QueueId>,
    /// An external number (digits, optional leading `+`), called through the tenant's
    /// outbound trunk with the tenant's caller id (see `/api/v1/settings`).
    number: Option<String>,
}

/// Blind transfer of an answered call away from its agent. If the destination cannot take
/// the call (unknown, unregistered, not available), the call stays with its agent, the answer
/// is 409 `transfer_failed` with the reason, and the reason is in the CDR's transfers and the
/// audit log (`event=transfer`).
#[utoipa::path(post, path = "/api/v1/calls/{id}/transfer", tag = "calls", security(("bearer" = [])), params(("id" = CallId, Path)),
    request_body = TransferIn,
    responses((status = 204), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn transfer_call(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<CallId>,
    Json(body): Json<TransferIn>,
) -> ApiResult<axum::http::StatusCode> {
    let target = transfer_target(body)?;
    let order = |reply| telephony::Control::Transfer { target, by: principal.audit_actor(), reply };
    send_order(&state, &principal, id, order).await
}

fn transfer_target(body: TransferIn) -> ApiResult<telephony::TransferTarget> {
    Ok(match (body.extension, body.queue_id, body.number) {
        (Some(ext), None, None) if !ext.trim().is_empty() && ext.len() <= 32 => {
            telephony::TransferTarget::Extension(ext.trim().to_owned())
        }
        (None, Some(queue), None) => telephony::TransferTarget::Queue(queue.as_uuid()),
        (None, None, Some(number)) => {
            let number: String = number.chars().filter(|c| !"-.() ".contains(*c)).collect();
            let digits = number.strip_prefix('+').unwrap_or(&number);
            if !(2..=32).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::field("number", "digits with an optional leading +, 2 to 32 of them"));
            }
            telephony::TransferTarget::External(number)
        }
        _ => {
            return Err(ApiError::field("extension", "give exactly one of extension, queue_id and number"));
        }
    })
}

/// Gives a live call an order that answers with success or a reason (409 `transfer_failed`).
/// Agents may order their own calls; supervisors and admins any call of the tenant.
async fn send_order(
    state: &AppState,
    principal: &Principal,
    id: CallId,
    order: impl FnOnce(tokio::sync::oneshot::Sender<Result<(), String>>) -> telephony::Control,
) -> ApiResult<axum::http::StatusCode> {
    let tenant = principal.tenant()?;
    let mut tx = state.db.tenant_tx(tenant).await?;
    let row = db::calls::get_call(&mut tx, id).await?;
    commit(tx).await?;
    // Agents may transfer their own calls; supervisors and admins any call of the tenant.
    if !principal.role.satisfies(Role::Supervisor) && row.agent_id != principal.user_id().map(|u| u.as_uuid())
    {
        return Err(ApiError::not_found());
    }
    if row.ended_at.is_some() {
        return Err(ApiError::conflict("call_ended", "the call has already ended"));
    }
    let calls = live_calls(state)?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    calls.control(tenant, id, order(reply)).map_err(|_| ApiError::not_found())?;
    match answer.await {
        Ok(Ok(())) => Ok(axum::http::StatusCode::NO_CONTENT),
        Ok(Err(reason)) => Err(ApiError::conflict("transfer_failed", reason)),
        Err(_) => Err(ApiError::not_found()),
    }
}

/// Whom to consult: exactly one of `extension` and `number`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsultIn {
    /// An agent's extension in this tenant.
    extension: Option<String>,
    /// An external number, through the tenant's outbound trunk.
    number: Option<String>,
}

/// Attended transfer, step 1: the caller hears hold music while the agent's phone is
/// connected to the person consulted (rung now). Follow with `/consult/complete`,
/// `/consult/cancel` or `/conference`. A destination that cannot be reached answers 409 and
/// the agent keeps the caller.
#[utoipa::path(post, path = "/api/v1/calls/{id}/consult", tag = "calls", security(("bearer" = [])), params(("id" = CallId, Path)),
    request_body = ConsultIn,
    responses((status = 204), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn consult_call(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<CallId>,
    Json(body): Json<ConsultIn>,
) -> ApiResult<axum::http::StatusCode> {
    let target = match (body.extension, body.number) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::field("extension", "give exactly one of extension and number"));
        }
        (extension, number) => transfer_target(TransferIn { extension, queue_id: None, number })?,
    };
    let order = |reply| telephony::Control::Consult { target, by: principal.audit_actor(), reply };
    send_order(&state, &principal, id, order).await
}

/// Attended transfer, step 2: the person consulted takes the caller and the agent's leg
/// ends. 409 when no consultation is answered.
#[utoipa::path(post, path = "/api/v1/calls/{id}/consult/complete", tag = "calls", security(("bearer" = [])), params(("id" = CallId, Path)),
    responses((status = 204), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
async fn complete_transfer(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<CallId>,
) -> ApiResult<axum::http::StatusCode> {
    let order = |reply| telephony::Control::CompleteTransfer { by: principal.audit_actor(), reply };
    send_order(&state, &principal, id, order).await
}

/// Ends the consultation (ringing or talking): the agent has the caller back.
#[utoipa::path(post, path = "/api/v1/calls/{id}/consult/cancel", tag = "calls", security(("bearer" = [])), params(("id" = CallId, Path)),
    responses((status = 204), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
async fn cancel_consult(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<CallId>,
) -> ApiResult<axum::http::StatusCode> {
    send_order(&state, &principal, id, |reply| telephony::Control::CancelConsult { reply }).await
}

/// 3-way call: during an answered consultation, the caller, the agent and the person consulted
/// hear each other (mixed by SIVO). The agent may then hang up (the two others go on) or
/// complete the transfer.
#[utoipa::path(post, path = "/api/v1/calls/{id}/conference", tag = "calls", security(("bearer" = [])), params(("id" = CallId, Path)),
    responses((status = 204), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
async fn conference_call(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<CallId>,
) -> ApiResult<axum::http::StatusCode> {
    let order = |reply| telephony::Control::Conference { by: principal.audit_actor(), reply };
    send_order(&state, &principal, id, order).await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct CdrParams {
    /// Calls created at or after this time (RFC 3339).
    from: Option<DateTime<Utc>>,
    /// Calls created before this time (RFC 3339).
    to: Option<DateTime<Utc>>,
    direction: Option<CallDirection>,
    agent_id: Option<UserId>,
    queue_id: Option<QueueId>,
    /// The DID called (E.164), exactly.
    did: Option<String>,
    /// Digits contained in the caller's or the dialled number.
    number: Option<String>,
    /// e.g. `normal_clearing`, `cancelled`, `system_restart`.
    hangup_cause: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

/// CDRs (ended calls), newest first, with filters (supervisors and admins).
#[utoipa::path(get, path = "/api/v1/cdrs", tag = "cdrs", security(("bearer" = [])), params(CdrParams),
    responses((status = 200, body = PageOut<Cdr>), (status = 422, body = crate::error::Problem)))]
async fn list_cdrs(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<CdrParams>,
) -> ApiResult<Json<PageOut<Cdr>>> {
    principal.require(Role::Supervisor)?;
    let tenant = principal.tenant()?;
    let (cursor, limit) = PageParams { cursor: params.cursor, limit: params.limit }.parse()?;
    if let (Some(from), Some(to)) = (params.from, params.to)
        && from >= to
    {
        return Err(ApiError::field("to", "must be after `from`"));
    }
    let text = |field: &str, value: Option<String>| -> ApiResult<Option<String>> {
        match value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
            Some(v) if v.len() > 64 => Err(ApiError::field(field, "at most 64 characters")),
            other => Ok(other),
        }
    };
    let did = text("did", params.did)?;
    let number = text("number", params.number)?;
    let hangup_cause = text("hangup_cause", params.hangup_cause)?;
    let filter = db::calls::CdrFilter {
        from: params.from,
        to: params.to,
        direction: params.direction,
        agent_id: params.agent_id.map(|a| a.as_uuid()),
        queue_id: params.queue_id.map(|q| q.as_uuid()),
        did: did.as_deref(),
        number: number.as_deref(),
        hangup_cause: hangup_cause.as_deref(),
    };
    let mut tx = state.db.tenant_tx(tenant).await?;
    let page = db::calls::list_cdrs(&mut tx, tenant, &filter, cursor, limit).await?;
    commit(tx).await?;
    Ok(Json(PageOut::from_page(page, |r| r.cdr())))
}

/// One CDR (supervisors and admins); 404 while the call is in progress (see `/api/v1/calls/{id}`).
#[utoipa::path(get, path = "/api/v1/cdrs/{id}", tag = "cdrs", security(("bearer" = [])), params(("id" = CallId, Path)),
    responses((status = 200, body = Cdr), (status = 404, body = crate::error::Problem)))]
async fn get_cdr(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<CallId>,
) -> ApiResult<Json<Cdr>> {
    principal.require(Role::Supervisor)?;
    let tenant = principal.tenant()?;
    let mut tx = state.db.tenant_tx(tenant).await?;
    let row = db::calls::get_cdr(&mut tx, id).await?;
    commit(tx).await?;
    let mut cdr = row.cdr();
    // A fresh pre-signed download link (same origin, one hour) for players and CRMs.
    if let Some(serde_json::Value::Object(recording)) = &mut cdr.recording {
        let expires = state.clock.now() + chrono::Duration::hours(1);
        let url = telephony::RecordingUrls::new(&state.vault).path(tenant, id, expires);
        recording.insert("url".into(), serde_json::Value::String(url));
        recording.insert("url_expires_at".into(), serde_json::json!(expires));
    }
    Ok(Json(cdr))
}
