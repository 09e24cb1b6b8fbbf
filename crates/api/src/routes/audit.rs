//! Reading the audit log: admins see their tenant's, superadmins the platform's.

// utoipa's IntoParams expansion names the params type with a redundant path.
#![allow(unused_qualifications)]

use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::{AuditId, Role, TenantId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{PageOut, PageParams, commit};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};
use crate::principal::Principal;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AuditOut {
    id: AuditId,
    tenant_id: Option<TenantId>,
    at: DateTime<Utc>,
    /// `user`, `api_key`, `system`, `cli` or `anonymous`.
    actor_kind: String,
    actor_id: Option<Uuid>,
    actor_label: Option<String>,
    /// What happened, e.g. `auth.login.failed`, `user.updated`, `auth.lockout`.
    event: String,
    resource_type: String,
    resource_id: Option<String>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    source_ip: Option<String>,
    request_id: Option<String>,
}

impl From<db::audit::AuditRow> for AuditOut {
    fn from(r: db::audit::AuditRow) -> Self {
        Self {
            id: AuditId(r.id),
            tenant_id: r.tenant_id.map(TenantId),
            at: r.at,
            actor_kind: r.actor_kind,
            actor_id: r.actor_id,
            actor_label: r.actor_label,
            event: r.action,
            resource_type: r.resource_type,
            resource_id: r.resource_id,
            before: r.before,
            after: r.after,
            source_ip: r.source_ip,
            request_id: r.request_id,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditParams {
    /// The acting user's (or API key's) id.
    user: Option<Uuid>,
    /// Resource type (`user`, `tenant`, `api_key`, `session`…), optionally `type:id`.
    resource: Option<String>,
    /// An event name or one of its dot-separated parts (`event=transfer`, `event=login`).
    event: Option<String>,
    /// Entries at or after this time (RFC 3339).
    from: Option<DateTime<Utc>>,
    /// Entries before this time (RFC 3339).
    to: Option<DateTime<Utc>>,
    cursor: Option<String>,
    limit: Option<u32>,
}

/// Audit log entries, newest first, with filters.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("bearer" = [])), params(AuditParams),
    responses((status = 200, body = PageOut<AuditOut>)))]
async fn list_audit(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<AuditParams>,
) -> ApiResult<Json<PageOut<AuditOut>>> {
    let (cursor, limit) = PageParams { cursor: params.cursor, limit: params.limit }.parse()?;
    if let (Some(from), Some(to)) = (params.from, params.to)
        && from >= to
    {
        return Err(ApiError::field("to", "must be after `from`"));
    }
    let (resource_type, resource_id) = match params.resource.as_deref() {
        Some(r) => match r.split_once(':') {
            Some((t, id)) => (Some(t.to_owned()), Some(id.to_owned())),
            None => (Some(r.to_owned()), None),
        },
        None => (None, None),
    };
    let filter = db::audit::AuditFilter {
        actor_id: params.user,
        resource_type,
        resource_id,
        event: params.event.filter(|e| !e.is_empty()),
        from: params.from,
        to: params.to,
    };
    let (mut tx, tenant) = match principal.tenant {
        Some(tenant) => {
            principal.require(Role::Admin)?;
            (state.db.tenant_tx(tenant).await?, Some(tenant))
        }
        None => {
            principal.require(Role::Superadmin)?;
            (state.db.platform_tx().await?, None)
        }
    };
    let page = db::audit::list(&mut tx, tenant, &filter, cursor, limit).await?;
    commit(tx).await?;
    Ok(Json(PageOut::from_page(page, AuditOut::from)))
}
