//! The tenant's contact-center settings (admins): today, whether every call is recorded.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::commit;
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::principal::TenantAdmin;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_settings, update_settings))
}

#[derive(Clone, Serialize, ToSchema)]
pub(crate) struct SettingsOut {
    /// Record every call (queues can also record their own calls).
    record_calls: bool,
    /// Absent until first changed.
    updated_at: Option<DateTime<Utc>>,
}

impl From<db::tenant_settings::SettingsRow> for SettingsOut {
    fn from(r: db::tenant_settings::SettingsRow) -> Self {
        Self { record_calls: r.record_calls, updated_at: r.updated_at }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettingsPatch {
    record_calls: Option<bool>,
}

/// The tenant's settings.
#[utoipa::path(get, path = "/api/v1/settings", tag = "settings", security(("bearer" = [])),
    responses((status = 200, body = SettingsOut)))]
async fn get_settings(
    State(state): State<AppState>,
    TenantAdmin { tenant, .. }: TenantAdmin,
) -> ApiResult<Json<SettingsOut>> {
    let mut tx = state.db.tenant_tx(tenant).await?;
    let row = db::tenant_settings::get(&mut tx, tenant).await?;
    commit(tx).await?;
    Ok(Json(row.into()))
}

/// Change the tenant's settings.
#[utoipa::path(patch, path = "/api/v1/settings", tag = "settings", security(("bearer" = [])), request_body = SettingsPatch,
    responses((status = 200, body = SettingsOut), (status = 422, body = crate::error::Problem)))]
async fn update_settings(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Json(patch): Json<SettingsPatch>,
) -> ApiResult<Json<SettingsOut>> {
    let now = state.clock.now();
    let mut tx = state.db.tenant_tx(tenant).await?;
    let before = SettingsOut::from(db::tenant_settings::get(&mut tx, tenant).await?);
    let Some(record_calls) = patch.record_calls.filter(|r| *r != before.record_calls) else {
        commit(tx).await?;
        return Ok(Json(before));
    };
    let after =
        SettingsOut::from(db::tenant_settings::set_record_calls(&mut tx, tenant, record_calls, now).await?);
    let mut entry = principal.audit("settings.updated", "tenant", Some(tenant.to_string()), now);
    entry.before = serde_json::to_value(&before).ok();
    entry.after = serde_json::to_value(&after).ok();
    db::audit::insert(&mut tx, &entry).await?;
    commit(tx).await?;
    Ok(Json(after))
}
