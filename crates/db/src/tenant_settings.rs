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
    /// The trunk agents' outbound calls leave through (else the tenant's first trunk).
    pub outbound_trunk_id: Option<Uuid>,
    /// The number outbound calls present (else the first DID on the trunk).
    pub outbound_caller_id: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl SettingsRow {
    fn defaults(tenant: TenantId) -> Self {
        Self {
            tenant_id: tenant.as_uuid(),
            record_calls: false,
            outbound_trunk_id: None,
            outbound_caller_id: None,
            updated_at: None,
        }
    }
}

const COLUMNS: &str = "tenant_id, record_calls, outbound_trunk_id, outbound_caller_id, updated_at";

pub async fn get(conn: &mut PgConnection, tenant: TenantId) -> Result<SettingsRow> {
    let row: Option<SettingsRow> =
        sqlx::query_as(&format!("select {COLUMNS} from tenant_settings where tenant_id = $1"))
            .bind(tenant.as_uuid())
            .fetch_optional(conn)
            .await?;
    Ok(row.unwrap_or_else(|| SettingsRow::defaults(tenant)))
}

/// Stores every setting at once (the caller read, changed and validated them).
pub async fn put(conn: &mut PgConnection, settings: &SettingsRow, now: DateTime<Utc>) -> Result<SettingsRow> {
    Ok(sqlx::query_as(&format!(
        "insert into tenant_settings (tenant_id, record_calls, outbound_trunk_id, outbound_caller_id, updated_at)
         values ($1, $2, $3, $4, $5)
         on conflict (tenant_id) do update set record_calls = excluded.record_calls,
             outbound_trunk_id = excluded.outbound_trunk_id, outbound_caller_id = excluded.outbound_caller_id,
             updated_at = excluded.updated_at
         returning {COLUMNS}"
    ))
    .bind(settings.tenant_id)
    .bind(settings.record_calls)
    .bind(settings.outbound_trunk_id)
    .bind(settings.outbound_caller_id.as_deref())
    .bind(now)
    .fetch_one(conn)
    .await?)
}

pub async fn set_record_calls(
    conn: &mut PgConnection,
    tenant: TenantId,
    record_calls: bool,
    now: DateTime<Utc>,
) -> Result<SettingsRow> {
    let mut settings = get(&mut *conn, tenant).await?;
    settings.record_calls = record_calls;
    put(conn, &settings, now).await
}

/// Where an agent's call to an external number goes out.
#[derive(Clone, Debug)]
pub struct OutboundRoute {
    pub trunk_id: Uuid,
    /// `None` when the tenant has neither a configured caller id nor any DID.
    pub caller_id: Option<String>,
}

/// The trunk and caller id for outbound calls: the configured ones, else the tenant's first
/// trunk (one whose keepalive is OK first) and the first DID on it (or any DID). `None` when the
/// tenant has no trunk.
pub async fn outbound_route(conn: &mut PgConnection, tenant: TenantId) -> Result<Option<OutboundRoute>> {
    let settings = get(&mut *conn, tenant).await?;
    let trunk: Option<Uuid> = match settings.outbound_trunk_id {
        Some(id) => Some(id),
        None => {
            sqlx::query_scalar(
                "select id from sip_trunks order by (status = 'ok') desc, created_at, id limit 1",
            )
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    let Some(trunk_id) = trunk else { return Ok(None) };
    let caller_id = match settings.outbound_caller_id {
        Some(number) => Some(number),
        None => {
            sqlx::query_scalar(
                "select number from dids order by (trunk_id = $1) desc, created_at, id limit 1",
            )
            .bind(trunk_id)
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    Ok(Some(OutboundRoute { trunk_id, caller_id }))
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
