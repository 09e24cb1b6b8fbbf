//! SIP trunks (carrier connections with allowed source networks and a live status) and DIDs
//! (numbers routed to a destination). Tenant transactions only.
//!
//! The SIP service keeps an in-memory index of every tenant's trunks. It loads it tenant by
//! tenant ([`list_all`] in each tenant's transaction, the tenant ids from the `tenants`
//! identity table), and reloads one tenant when [`notify_changed`] fires on channel
//! [`CHANNEL`], so no query ever needs to see trunks across tenants.

use chrono::{DateTime, Utc};
use domain::TenantId;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;
use crate::page::{Cursor, Page};

/// `LISTEN` channel carrying the id of a tenant whose trunks changed.
pub const CHANNEL: &str = "sivo_trunks";

#[derive(Clone, sqlx::FromRow)]
pub struct TrunkRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub host: String,
    pub port: i32,
    pub transport: String,
    pub allowed_cidrs: Vec<String>,
    pub username: Option<String>,
    pub password_enc: Option<String>,
    pub register: bool,
    pub keepalive: bool,
    pub status: String,
    pub status_reason: Option<String>,
    pub status_changed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for TrunkRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrunkRow")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Fields an admin sets.
pub struct TrunkFields<'a> {
    pub name: &'a str,
    pub host: &'a str,
    pub port: i32,
    pub transport: &'a str,
    pub allowed_cidrs: &'a [String],
    pub username: Option<&'a str>,
    pub password_enc: Option<&'a str>,
    pub register: bool,
    pub keepalive: bool,
}

pub async fn create_trunk(
    conn: &mut PgConnection,
    id: Uuid,
    tenant: TenantId,
    f: &TrunkFields<'_>,
    now: DateTime<Utc>,
) -> Result<TrunkRow> {
    Ok(sqlx::query_as(
        "insert into sip_trunks (id, tenant_id, name, host, port, transport, allowed_cidrs, username, password_enc,
                                 register, keepalive, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) returning *",
    )
    .bind(id)
    .bind(tenant.as_uuid())
    .bind(f.name)
    .bind(f.host)
    .bind(f.port)
    .bind(f.transport)
    .bind(f.allowed_cidrs)
    .bind(f.username)
    .bind(f.password_enc)
    .bind(f.register)
    .bind(f.keepalive)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

pub async fn get_trunk(conn: &mut PgConnection, id: Uuid) -> Result<TrunkRow> {
    Ok(sqlx::query_as("select * from sip_trunks where id = $1").bind(id).fetch_one(conn).await?)
}

pub async fn list_trunks(
    conn: &mut PgConnection,
    tenant: TenantId,
    after: Option<Cursor>,
    limit: usize,
) -> Result<Page<TrunkRow>> {
    let rows: Vec<TrunkRow> = sqlx::query_as(
        "select * from sip_trunks where tenant_id = $1
           and ($2::timestamptz is null or (created_at, id) > ($2, $3))
         order by created_at, id limit $4",
    )
    .bind(tenant.as_uuid())
    .bind(after.map(|c| c.at))
    .bind(after.map(|c| c.id))
    .bind(limit as i64 + 1)
    .fetch_all(conn)
    .await?;
    Ok(Page::from_overfetch(rows, limit, |r| Cursor { at: r.created_at, id: r.id }))
}

/// Every trunk of the transaction's tenant, for the SIP service's index.
pub async fn list_all(conn: &mut PgConnection) -> Result<Vec<TrunkRow>> {
    Ok(sqlx::query_as("select * from sip_trunks order by created_at, id").fetch_all(conn).await?)
}

pub async fn update_trunk(
    conn: &mut PgConnection,
    id: Uuid,
    f: &TrunkFields<'_>,
    now: DateTime<Utc>,
) -> Result<TrunkRow> {
    Ok(sqlx::query_as(
        "update sip_trunks set name = $2, host = $3, port = $4, transport = $5, allowed_cidrs = $6, username = $7,
                password_enc = $8, register = $9, keepalive = $10, updated_at = $11
          where id = $1 returning *",
    )
    .bind(id)
    .bind(f.name)
    .bind(f.host)
    .bind(f.port)
    .bind(f.transport)
    .bind(f.allowed_cidrs)
    .bind(f.username)
    .bind(f.password_enc)
    .bind(f.register)
    .bind(f.keepalive)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

pub async fn delete_trunk(conn: &mut PgConnection, id: Uuid) -> Result<()> {
    let done = sqlx::query("delete from sip_trunks where id = $1").bind(id).execute(conn).await?;
    if done.rows_affected() == 0 {
        return Err(crate::DbError::NotFound);
    }
    Ok(())
}

/// Whether any DID still routes through the trunk.
pub async fn trunk_in_use(conn: &mut PgConnection, id: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar("select exists (select 1 from dids where trunk_id = $1)")
        .bind(id)
        .fetch_one(conn)
        .await?)
}

/// Sets the keepalive status; returns the previous status and reason if it changed.
pub async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: &str,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<(String, Option<String>)>> {
    let before: Option<(String, Option<String>)> =
        sqlx::query_as("select status, status_reason from sip_trunks where id = $1 for update")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(before) = before else { return Ok(None) };
    if before.0 == status && before.1.as_deref() == reason {
        return Ok(None);
    }
    sqlx::query(
        "update sip_trunks set status = $2, status_reason = $3, status_changed_at = $4 where id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(reason)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(Some(before))
}

/// Tells every SIP node (on commit) that this tenant's trunks changed.
pub async fn notify_changed(conn: &mut PgConnection, tenant: TenantId) -> Result<()> {
    sqlx::query("select pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(tenant.as_uuid().to_string())
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DidRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub number: String,
    pub trunk_id: Uuid,
    pub destination_type: String,
    pub destination_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub struct DidFields<'a> {
    pub number: &'a str,
    pub trunk_id: Uuid,
    pub destination_type: &'a str,
    pub destination_id: Option<Uuid>,
}

pub async fn create_did(
    conn: &mut PgConnection,
    id: Uuid,
    tenant: TenantId,
    f: &DidFields<'_>,
    now: DateTime<Utc>,
) -> Result<DidRow> {
    Ok(sqlx::query_as(
        "insert into dids (id, tenant_id, number, trunk_id, destination_type, destination_id, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $7) returning *",
    )
    .bind(id)
    .bind(tenant.as_uuid())
    .bind(f.number)
    .bind(f.trunk_id)
    .bind(f.destination_type)
    .bind(f.destination_id)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

pub async fn get_did(conn: &mut PgConnection, id: Uuid) -> Result<DidRow> {
    Ok(sqlx::query_as("select * from dids where id = $1").bind(id).fetch_one(conn).await?)
}

pub async fn find_did(conn: &mut PgConnection, number: &str) -> Result<Option<DidRow>> {
    Ok(sqlx::query_as("select * from dids where number = $1").bind(number).fetch_optional(conn).await?)
}

pub async fn list_dids(
    conn: &mut PgConnection,
    tenant: TenantId,
    after: Option<Cursor>,
    limit: usize,
) -> Result<Page<DidRow>> {
    let rows: Vec<DidRow> = sqlx::query_as(
        "select * from dids where tenant_id = $1
           and ($2::timestamptz is null or (created_at, id) > ($2, $3))
         order by created_at, id limit $4",
    )
    .bind(tenant.as_uuid())
    .bind(after.map(|c| c.at))
    .bind(after.map(|c| c.id))
    .bind(limit as i64 + 1)
    .fetch_all(conn)
    .await?;
    Ok(Page::from_overfetch(rows, limit, |r| Cursor { at: r.created_at, id: r.id }))
}

pub async fn update_did(
    conn: &mut PgConnection,
    id: Uuid,
    f: &DidFields<'_>,
    now: DateTime<Utc>,
) -> Result<DidRow> {
    Ok(sqlx::query_as(
        "update dids set number = $2, trunk_id = $3, destination_type = $4, destination_id = $5, updated_at = $6
          where id = $1 returning *",
    )
    .bind(id)
    .bind(f.number)
    .bind(f.trunk_id)
    .bind(f.destination_type)
    .bind(f.destination_id)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

pub async fn delete_did(conn: &mut PgConnection, id: Uuid) -> Result<()> {
    let done = sqlx::query("delete from dids where id = $1").bind(id).execute(conn).await?;
    if done.rows_affected() == 0 {
        return Err(crate::DbError::NotFound);
    }
    Ok(())
}

/// A `LISTEN`ing connection for [`CHANNEL`].
pub async fn listen(db: &crate::Db) -> Result<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect_with(db.pool()).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
