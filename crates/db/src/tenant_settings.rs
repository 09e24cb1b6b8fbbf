//! Per-tenant settings of the contact center (a business table, unlike the `tenants` identity
//! table). A tenant without a row has the defaults.

use chrono::{DateTime, Utc};
use domain::TenantId;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SettingsRow {
    pub tenant_id: Uuid,
    /// Record every call of the tenant.
    pub record_calls: bool,
    pub updated_at: Option<DateTime<Utc>>,
}

pub async fn get(conn: &mut PgConnection, tenant: TenantId) -> Result<SettingsRow> {
    let row: Option<SettingsRow> = sqlx::query_as(
        "select tenant_id, record_calls, updated_at from tenant_settings where tenant_id = $1",
    )
    .bind(tenant.as_uuid())
    .fetch_optional(conn)
    .await?;
    Ok(row.unwrap_or(SettingsRow { tenant_id: tenant.as_uuid(), record_calls: false, updated_at: None }))
}

pub async fn set_record_calls(
    conn: &mut PgConnection,
    tenant: TenantId,
    record_calls: bool,
    now: DateTime<Utc>,
) -> Result<SettingsRow> {
    Ok(sqlx::query_as(
        "insert into tenant_settings (tenant_id, record_calls, updated_at) values ($1, $2, $3)
         on conflict (tenant_id) do update set record_calls = excluded.record_calls, updated_at = excluded.updated_at
         returning tenant_id, record_calls, updated_at",
    )
    .bind(tenant.as_uuid())
    .bind(record_calls)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

/// Whether a call should be recorded: the tenant records everything, or the call's queue does.
pub async fn recording_wanted(
    conn: &mut PgConnection,
    tenant: TenantId,
    queue: Option<Uuid>,
) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "select coalesce((select record_calls from tenant_settings where tenant_id = $1), false)
             or coalesce((select record_calls from queues where id = $2), false)",
    )
    .bind(tenant.as_uuid())
    .bind(queue)
    .fetch_one(conn)
    .await?)
}
