//! Per-tenant API keys for integrators. Only a hash is stored; the key is shown once.

use chrono::{DateTime, Utc};
use domain::{ApiKeyId, TenantId, UserId};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::page::{Cursor, Page};
use crate::{DbError, Result};

#[derive(Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub key_hash: Vec<u8>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for ApiKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyRow")
            .field("id", &self.id)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

pub struct NewApiKey<'a> {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub name: &'a str,
    pub prefix: &'a str,
    pub key_hash: &'a [u8],
    pub created_by: Option<UserId>,
    pub now: DateTime<Utc>,
}

pub async fn create(conn: &mut PgConnection, k: NewApiKey<'_>) -> Result<ApiKeyRow> {
    Ok(sqlx::query_as(
        "insert into api_keys (id, tenant_id, name, prefix, key_hash, created_by, created_at)
         values ($1, $2, $3, $4, $5, $6, $7) returning *",
    )
    .bind(k.id.as_uuid())
    .bind(k.tenant_id.as_uuid())
    .bind(k.name)
    .bind(k.prefix)
    .bind(k.key_hash)
    .bind(k.created_by.map(|u| u.as_uuid()))
    .bind(k.now)
    .fetch_one(conn)
    .await?)
}

/// Finds an unrevoked key by its public prefix (platform transaction).
pub async fn lookup_by_prefix(conn: &mut PgConnection, prefix: &str) -> Result<Option<ApiKeyRow>> {
    Ok(sqlx::query_as("select * from api_keys where prefix = $1 and revoked_at is null")
        .bind(prefix)
        .fetch_optional(conn)
        .await?)
}

pub async fn touch(conn: &mut PgConnection, id: ApiKeyId, now: DateTime<Utc>) -> Result<()> {
    sqlx::query("update api_keys set last_used_at = $2 where id = $1")
        .bind(id.as_uuid())
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn get(conn: &mut PgConnection, id: ApiKeyId) -> Result<ApiKeyRow> {
    Ok(sqlx::query_as("select * from api_keys where id = $1").bind(id.as_uuid()).fetch_one(conn).await?)
}

pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    after: Option<Cursor>,
    limit: usize,
) -> Result<Page<ApiKeyRow>> {
    let rows: Vec<ApiKeyRow> = sqlx::query_as(
        "select * from api_keys where tenant_id = $1
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

pub async fn revoke(conn: &mut PgConnection, id: ApiKeyId, now: DateTime<Utc>) -> Result<ApiKeyRow> {
    sqlx::query_as("update api_keys set revoked_at = coalesce(revoked_at, $2) where id = $1 returning *")
        .bind(id.as_uuid())
        .bind(now)
        .fetch_optional(conn)
        .await?
        .ok_or(DbError::NotFound)
}
