//! API keys for integrators: created by admins, shown once, revocable.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::ApiKeyId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{PageOut, PageParams, commit};
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::ops::{self, OpActor};
use crate::principal::TenantAdmin;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_keys, create_key)).routes(routes!(revoke_key))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ApiKeyOut {
    id: ApiKeyId,
    name: String,
    /// The public part of the key (`sivo_<prefix>_…`), to tell keys apart.
    prefix: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<db::api_keys::ApiKeyRow> for ApiKeyOut {
    fn from(r: db::api_keys::ApiKeyRow) -> Self {
        Self {
            id: ApiKeyId(r.id),
            name: r.name,
            prefix: r.prefix,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ApiKeyCreatedOut {
    #[serde(flatten)]
    api_key: ApiKeyOut,
    /// The key itself. It is shown only in this response; SIVO keeps only a hash.
    key: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiKeyIn {
    name: String,
}

/// List the tenant's API keys (never the keys themselves).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = PageOut<ApiKeyOut>)))]
async fn list_keys(
    State(state): State<AppState>,
    TenantAdmin { tenant, .. }: TenantAdmin,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<PageOut<ApiKeyOut>>> {
    let (cursor, limit) = params.parse()?;
    let mut tx = state.db.tenant_tx(tenant).await?;
    let page = db::api_keys::list(&mut tx, tenant, cursor, limit).await?;
    commit(tx).await?;
    Ok(Json(PageOut::from_page(page, ApiKeyOut::from)))
}

/// Create an API key; the response is the only time the key is shown.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", security(("bearer" = [])), request_body = ApiKeyIn,
    responses((status = 201, body = ApiKeyCreatedOut)))]
async fn create_key(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Json(input): Json<ApiKeyIn>,
) -> ApiResult<(StatusCode, Json<ApiKeyCreatedOut>)> {
    let by = OpActor { actor: principal.audit_actor(), ctx: principal.ctx.clone() };
    let (row, key) =
        ops::create_api_key(&state.db, tenant, &input.name, principal.user_id(), &by, state.clock.now())
            .await?;
    Ok((StatusCode::CREATED, Json(ApiKeyCreatedOut { api_key: ApiKeyOut::from(row), key })))
}

/// Revoke an API key; requests with it fail at once.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys", security(("bearer" = [])), params(("id" = ApiKeyId, Path)),
    responses((status = 204, description = "revoked"), (status = 404, body = crate::error::Problem)))]
async fn revoke_key(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Path(id): Path<ApiKeyId>,
) -> ApiResult<StatusCode> {
    let now = state.clock.now();
    let mut tx = state.db.tenant_tx(tenant).await?;
    let row = db::api_keys::revoke(&mut tx, id, now).await?;
    let mut entry = principal.audit("api_key.revoked", "api_key", Some(id.to_string()), now);
    entry.before = Some(serde_json::json!({"name": row.name, "prefix": row.prefix}));
    db::audit::insert(&mut tx, &entry).await?;
    commit(tx).await?;
    Ok(StatusCode::NO_CONTENT)
}
