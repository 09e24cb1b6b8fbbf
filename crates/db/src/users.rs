//! Users of every role. Tenant users are read in tenant transactions; superadmins (no tenant)
//! in platform transactions.

use chrono::{DateTime, Utc};
use domain::{Role, TenantId, UserId};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::page::{Cursor, Page};
use crate::{DbError, Result};

#[derive(Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub email: String,
    pub display_name: String,
    pub role: String,
    pub password_hash: String,
    pub totp_secret_enc: Option<String>,
    pub totp_enabled: bool,
    pub totp_last_step: i64,
    pub locked_until: Option<DateTime<Utc>>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for UserRow {
    // Hashes and encrypted secrets stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow").field("id", &self.id).field("role", &self.role).finish_non_exhaustive()
    }
}

impl UserRow {
    pub fn user_id(&self) -> UserId {
        UserId(self.id)
    }
    pub fn tenant(&self) -> Option<TenantId> {
        self.tenant_id.map(TenantId)
    }
    /// The role column is constrained by a CHECK, so an unknown value means a broken database.
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Agent)
    }
}

pub struct NewUser<'a> {
    pub id: UserId,
    pub tenant_id: Option<TenantId>,
    pub email: &'a str,
    pub display_name: &'a str,
    pub role: Role,
    pub password_hash: &'a str,
    pub now: DateTime<Utc>,
}

pub async fn create(conn: &mut PgConnection, u: NewUser<'_>) -> Result<UserRow> {
    Ok(sqlx::query_as(
        "insert into users (id, tenant_id, email, display_name, role, password_hash, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $7) returning *",
    )
    .bind(u.id.as_uuid())
    .bind(u.tenant_id.map(|t| t.as_uuid()))
    .bind(u.email)
    .bind(u.display_name)
    .bind(u.role.as_str())
    .bind(u.password_hash)
    .bind(u.now)
    .fetch_one(conn)
    .await?)
}

pub async fn get(conn: &mut PgConnection, id: UserId) -> Result<UserRow> {
    Ok(sqlx::query_as("select * from users where id = $1").bind(id.as_uuid()).fetch_one(conn).await?)
}

pub async fn find_by_email(conn: &mut PgConnection, email: &str) -> Result<Option<UserRow>> {
    Ok(sqlx::query_as("select * from users where lower(email) = lower($1)")
        .bind(email)
        .fetch_optional(conn)
        .await?)
}

/// Whether any superadmin exists (platform transaction), for the first-start hint.
pub async fn superadmin_exists(conn: &mut PgConnection) -> Result<bool> {
    Ok(sqlx::query_scalar("select exists (select 1 from users where role = 'superadmin')")
        .fetch_one(conn)
        .await?)
}

pub struct UserFilter {
    pub role: Option<Role>,
}

pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: &UserFilter,
    after: Option<Cursor>,
    limit: usize,
) -> Result<Page<UserRow>> {
    let rows: Vec<UserRow> = sqlx::query_as(
        "select * from users where tenant_id = $1
           and ($2::text is null or role = $2)
           and ($3::timestamptz is null or (created_at, id) > ($3, $4))
         order by created_at, id limit $5",
    )
    .bind(tenant.as_uuid())
    .bind(filter.role.map(Role::as_str))
    .bind(after.map(|c| c.at))
    .bind(after.map(|c| c.id))
    .bind(limit as i64 + 1)
    .fetch_all(conn)
    .await?;
    Ok(Page::from_overfetch(rows, limit, |r| Cursor { at: r.created_at, id: r.id }))
}

#[derive(Default)]
pub struct UserPatch<'a> {
    pub display_name: Option<&'a str>,
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub password_hash: Option<&'a str>,
}

pub async fn update(
    conn: &mut PgConnection,
    id: UserId,
    p: UserPatch<'_>,
    now: DateTime<Utc>,
) -> Result<UserRow> {
    Ok(sqlx::query_as(
        "update users set display_name = coalesce($2, display_name), role = coalesce($3, role),
                disabled = coalesce($4, disabled), password_hash = coalesce($5, password_hash), updated_at = $6
         where id = $1 returning *",
    )
    .bind(id.as_uuid())
    .bind(p.display_name)
    .bind(p.role.map(Role::as_str))
    .bind(p.disabled)
    .bind(p.password_hash)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

pub async fn delete(conn: &mut PgConnection, id: UserId) -> Result<()> {
    let done = sqlx::query("delete from users where id = $1").bind(id.as_uuid()).execute(conn).await?;
    if done.rows_affected() == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// Stores a TOTP secret awaiting confirmation (not yet enabled).
pub async fn set_pending_totp(
    conn: &mut PgConnection,
    id: UserId,
    secret_enc: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("update users set totp_secret_enc = $2, totp_enabled = false, updated_at = $3 where id = $1")
        .bind(id.as_uuid())
        .bind(secret_enc)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn enable_totp(
    conn: &mut PgConnection,
    id: UserId,
    accepted_step: i64,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("update users set totp_enabled = true, totp_last_step = $2, updated_at = $3 where id = $1")
        .bind(id.as_uuid())
        .bind(accepted_step)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn disable_totp(conn: &mut PgConnection, id: UserId, now: DateTime<Utc>) -> Result<()> {
    sqlx::query(
        "update users set totp_enabled = false, totp_secret_enc = null, totp_last_step = 0, updated_at = $2
         where id = $1",
    )
    .bind(id.as_uuid())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query("delete from mfa_recovery_codes where user_id = $1").bind(id.as_uuid()).execute(conn).await?;
    Ok(())
}

/// Records that TOTP step `step` was used, only if it is newer than the last one used.
/// Returns false when the step was already used (a replayed code). The conditional update makes
/// two concurrent logins with the same code race safely: only one wins.
pub async fn consume_totp_step(conn: &mut PgConnection, id: UserId, step: i64) -> Result<bool> {
    let done = sqlx::query("update users set totp_last_step = $2 where id = $1 and totp_last_step < $2")
        .bind(id.as_uuid())
        .bind(step)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}
