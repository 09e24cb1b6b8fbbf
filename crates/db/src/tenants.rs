//! Tenants: created and listed by superadmins (platform transactions).

use chrono::{DateTime, Utc};
use domain::TenantId;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;
use crate::page::{Cursor, Page};

#[derive(Clone, Debug, sqlx::FromRow, serde::Serialize)]
pub struct TenantRow {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub plan: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TenantRow {
    pub fn tenant_id(&self) -> TenantId {
        TenantId(self.id)
    }
}

pub struct NewTenant<'a> {
    pub id: TenantId,
    pub slug: &'a str,
    pub name: &'a str,
    pub plan: &'a str,
    pub now: DateTime<Utc>,
}

pub async fn create(conn: &mut PgConnection, t: NewTenant<'_>) -> Result<TenantRow> {
    Ok(sqlx::query_as(
        "insert into tenants (id, slug, name, plan, created_at, updated_at) values ($1, $2, $3, $4, $5, $5)
         returning *",
    )
    .bind(t.id.as_uuid())
    .bind(t.slug)
    .bind(t.name)
    .bind(t.plan)
    .bind(t.now)
    .fetch_one(conn)
    .await?)
}

pub async fn get(conn: &mut PgConnection, id: TenantId) -> Result<TenantRow> {
    Ok(sqlx::query_as("select * from tenants where id = $1").bind(id.as_uuid()).fetch_one(conn).await?)
}

pub async fn get_by_slug(conn: &mut PgConnection, slug: &str) -> Result<TenantRow> {
    Ok(sqlx::query_as("select * from tenants where slug = $1").bind(slug).fetch_one(conn).await?)
}

pub async fn list(conn: &mut PgConnection, after: Option<Cursor>, limit: usize) -> Result<Page<TenantRow>> {
    let rows: Vec<TenantRow> = sqlx::query_as(
        "select * from tenants where ($1::timestamptz is null or (created_at, id) > ($1, $2))
         order by created_at, id limit $3",
    )
    .bind(after.map(|c| c.at))
    .bind(after.map(|c| c.id))
    .bind(limit as i64 + 1)
    .fetch_all(conn)
    .await?;
    Ok(Page::from_overfetch(rows, limit, |r| Cursor { at: r.created_at, id: r.id }))
}

pub async fn update(
    conn: &mut PgConnection,
    id: TenantId,
    name: Option<&str>,
    plan: Option<&str>,
    now: DateTime<Utc>,
) -> Result<TenantRow> {
    Ok(sqlx::query_as(
        "update tenants set name = coalesce($2, name), plan = coalesce($3, plan), updated_at = $4
         where id = $1 returning *",
    )
    .bind(id.as_uuid())
    .bind(name)
    .bind(plan)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

pub async fn delete(conn: &mut PgConnection, id: TenantId) -> Result<()> {
    let done = sqlx::query("delete from tenants where id = $1").bind(id.as_uuid()).execute(conn).await?;
    if done.rows_affected() == 0 {
        return Err(crate::DbError::NotFound);
    }
    Ok(())
}
