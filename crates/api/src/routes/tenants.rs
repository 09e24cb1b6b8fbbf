//! Tenants, managed by superadmins.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::{Role, TenantId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{PageOut, PageParams, commit};
use crate::AppState;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Json, Path, Query};
use crate::ops::{self, OpActor};
use crate::principal::{Principal, Superadmin};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_tenants, create_tenant)).routes(routes!(
        get_tenant,
        update_tenant,
        delete_tenant
    ))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TenantOut {
    id: TenantId,
    slug: String,
    name: String,
    /// `free`, `pro` or `enterprise`.
    plan: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<db::tenants::TenantRow> for TenantOut {
    fn from(r: db::tenants::TenantRow) -> Self {
        Self {
            id: TenantId(r.id),
            slug: r.slug,
            name: r.name,
            plan: r.plan,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantIn {
    /// 3 to 40 of a-z, 0-9 and inner '-'; becomes the SIP domain `<slug>.<base domain>`.
    slug: String,
    name: String,
    plan: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantPatch {
    name: Option<String>,
    plan: Option<String>,
}

/// List tenants (superadmin).
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = PageOut<TenantOut>)))]
async fn list_tenants(
    State(state): State<AppState>,
    _: Superadmin,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<PageOut<TenantOut>>> {
    let (cursor, limit) = params.parse()?;
    let mut tx = state.db.platform_tx().await?;
    let page = db::tenants::list(&mut tx, cursor, limit).await?;
    commit(tx).await?;
    Ok(Json(PageOut::from_page(page, TenantOut::from)))
}

/// Create a tenant (superadmin).
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", security(("bearer" = [])), request_body = TenantIn,
    responses((status = 201, body = TenantOut), (status = 409, description = "slug_taken", body = crate::error::Problem)))]
async fn create_tenant(
    State(state): State<AppState>,
    Superadmin(principal): Superadmin,
    Json(input): Json<TenantIn>,
) -> ApiResult<(StatusCode, Json<TenantOut>)> {
    let by = OpActor { actor: principal.audit_actor(), ctx: principal.ctx.clone() };
    let row = ops::create_tenant(
        &state.db,
        ops::NewTenantInput { slug: input.slug, name: input.name, plan: input.plan },
        &by,
        state.clock.now(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(TenantOut::from(row))))
}

/// One tenant: superadmins see any; a tenant's own users see theirs.
#[utoipa::path(get, path = "/api/v1/tenants/{id}", tag = "tenants", security(("bearer" = [])), params(("id" = TenantId, Path)),
    responses((status = 200, body = TenantOut), (status = 404, body = crate::error::Problem)))]
async fn get_tenant(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<TenantId>,
) -> ApiResult<Json<TenantOut>> {
    let mut tx = match principal.tenant {
        None => {
            principal.require(Role::Superadmin)?;
            state.db.platform_tx().await?
        }
        Some(own) => state.db.tenant_tx(own).await?,
    };
    let row = db::tenants::get(&mut tx, id).await?;
    commit(tx).await?;
    Ok(Json(TenantOut::from(row)))
}

/// Rename a tenant or change its plan (superadmin).
#[utoipa::path(patch, path = "/api/v1/tenants/{id}", tag = "tenants", security(("bearer" = [])), params(("id" = TenantId, Path)), request_body = TenantPatch,
    responses((status = 200, body = TenantOut), (status = 404, body = crate::error::Problem)))]
async fn update_tenant(
    State(state): State<AppState>,
    Superadmin(principal): Superadmin,
    Path(id): Path<TenantId>,
    Json(patch): Json<TenantPatch>,
) -> ApiResult<Json<TenantOut>> {
    let mut errors = Vec::new();
    if let Some(name) = &patch.name
        && let Err(e) = domain::validate::validate_name(name, 120)
    {
        errors.push(FieldError { field: "name".into(), message: e });
    }
    if let Some(plan) = &patch.plan
        && let Err(e) = ops::validate_plan(plan)
    {
        errors.push(FieldError { field: "plan".into(), message: e });
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let now = state.clock.now();
    let mut tx = state.db.platform_tx().await?;
    let before = db::tenants::get(&mut tx, id).await?;
    let row =
        db::tenants::update(&mut tx, id, patch.name.as_deref().map(str::trim), patch.plan.as_deref(), now)
            .await?;
    let mut entry = principal.audit("tenant.updated", "tenant", Some(id.to_string()), now);
    entry.before = serde_json::to_value(&before).ok();
    entry.after = serde_json::to_value(&row).ok();
    db::audit::insert(&mut tx, &entry).await?;
    commit(tx).await?;
    Ok(Json(TenantOut::from(row)))
}

/// Delete a tenant and everything in it (superadmin).
#[utoipa::path(delete, path = "/api/v1/tenants/{id}", tag = "tenants", security(("bearer" = [])), params(("id" = TenantId, Path)),
    responses((status = 204, description = "deleted"), (status = 404, body = crate::error::Problem)))]
async fn delete_tenant(
    State(state): State<AppState>,
    Superadmin(principal): Superadmin,
    Path(id): Path<TenantId>,
) -> ApiResult<StatusCode> {
    let now = state.clock.now();
    let mut tx = state.db.platform_tx().await?;
    let before = db::tenants::get(&mut tx, id).await?;
    db::tenants::delete(&mut tx, id).await?;
    let mut entry = principal.audit("tenant.deleted", "tenant", Some(id.to_string()), now);
    entry.before = serde_json::to_value(&before).ok();
    db::audit::insert(&mut tx, &entry).await?;
    commit(tx).await?;
    Ok(StatusCode::NO_CONTENT)
}
