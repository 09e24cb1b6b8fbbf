//! The tenant's contact-center settings (admins): whether every call is recorded, and how
//! agents' outbound calls leave (trunk and presented caller id).

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::commit;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::principal::TenantAdmin;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_settings, update_settings))
}

#[derive(Clone, Serialize, ToSchema)]
pub(crate) struct SettingsOut {
    /// Record every call (queues can also record their own calls).
    record_calls: bool,
    /// The trunk agents' calls to external numbers leave through; `null`: the tenant's first
    /// trunk (one whose keepalive is OK first).
    outbound_trunk_id: Option<uuid::Uuid>,
    /// The number those calls present (From and P-Asserted-Identity); `null`: the first DID
    /// on the trunk.
    outbound_caller_id: Option<String>,
    /// Absent until first changed.
    updated_at: Option<DateTime<Utc>>,
}

impl From<db::tenant_settings::SettingsRow> for SettingsOut {
    fn from(r: db::tenant_settings::SettingsRow) -> Self {
        Self {
            record_calls: r.record_calls,
            outbound_trunk_id: r.outbound_trunk_id,
            outbound_caller_id: r.outbound_caller_id,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettingsPatch {
    record_calls: Option<bool>,
    /// A trunk of this tenant, or `null` for the default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<uuid::Uuid>, nullable)]
    outbound_trunk_id: Option<Option<uuid::Uuid>>,
    /// E.164-style digits with an optional leading `+` (3 to 20 digits), or `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    outbound_caller_id: Option<Option<String>>,
}

/// Tells a field given as `null` (`Some(None)`: clear it) from one left out (`None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
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
    let row = db::tenant_settings::get(&mut tx, tenant).await?;
    let before = SettingsOut::from(row.clone());
    let mut changed = row.clone();
    if let Some(record_calls) = patch.record_calls {
        changed.record_calls = record_calls;
    }
    if let Some(trunk) = patch.outbound_trunk_id {
        if let Some(id) = trunk {
            match db::trunks::get_trunk(&mut tx, id).await {
                Ok(_) => {}
                Err(db::DbError::NotFound) => {
                    return Err(ApiError::field("outbound_trunk_id", "no such SIP trunk in this tenant"));
                }
                Err(e) => return Err(e.into()),
            }
        }
        changed.outbound_trunk_id = trunk;
    }
    if let Some(caller_id) = patch.outbound_caller_id {
        if let Some(number) = &caller_id {
            let digits = number.strip_prefix('+').unwrap_or(number);
            if !(3..=20).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::field(
                    "outbound_caller_id",
                    "a phone number: 3 to 20 digits with an optional leading +",
                ));
            }
        }
        changed.outbound_caller_id = caller_id;
    }
    if changed.record_calls == row.record_calls
        && changed.outbound_trunk_id == row.outbound_trunk_id
        && changed.outbound_caller_id == row.outbound_caller_id
    {
        commit(tx).await?;
        return Ok(Json(before));
    }
    let after = SettingsOut::from(db::tenant_settings::put(&mut tx, &changed, now).await?);
    let mut entry = principal.audit("settings.updated", "tenant", Some(tenant.to_string()), now);
    entry.before = serde_json::to_value(&before).ok();
    entry.after = serde_json::to_value(&after).ok();
    db::audit::insert(&mut tx, &entry).await?;
    commit(tx).await?;
    Ok(Json(after))
}
