//! Server-side sessions: the bearer token's hash, idle and absolute expiry, revocation.

use chrono::{DateTime, Utc};
use domain::{SessionId, TenantId, UserId};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;

pub struct NewSession<'a> {
    pub id: SessionId,
    pub tenant_id: Option<TenantId>,
    pub user_id: UserId,
    pub token_hash: &'a [u8],
    pub kind: &'a str,
    pub now: DateTime<Utc>,
    pub idle_timeout_s: i32,
    pub expires_at: DateTime<Utc>,
    pub source_ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

pub async fn create(conn: &mut PgConnection, s: NewSession<'_>) -> Result<()> {
    sqlx::query(
        "insert into sessions (id, tenant_id, user_id, token_hash, kind, created_at, last_seen_at,
                               idle_timeout_s, expires_at, source_ip, user_agent)
         values ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9, $10)",
    )
    .bind(s.id.as_uuid())
    .bind(s.tenant_id.map(|t| t.as_uuid()))
    .bind(s.user_id.as_uuid())
    .bind(s.token_hash)
    .bind(s.kind)
    .bind(s.now)
    .bind(s.idle_timeout_s)
    .bind(s.expires_at)
    .bind(s.source_ip)
    .bind(s.user_agent)
    .execute(conn)
    .await?;
    Ok(())
}

/// What an authenticated request needs to know, joined from the session and its user.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SessionAuth {
    pub session_id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub user_id: Uuid,
    pub kind: String,
    pub last_seen_at: DateTime<Utc>,
    pub idle_timeout_s: i32,
    pub expires_at: DateTime<Utc>,
    pub role: String,
    pub email: String,
    pub disabled: bool,
}

/// Finds a live (not revoked) session by token hash. Runs in a platform transaction: the
/// tenant is what we are trying to learn. Expiry is checked by the caller, which knows `now`.
pub async fn lookup(conn: &mut PgConnection, token_hash: &[u8]) -> Result<Option<SessionAuth>> {
    Ok(sqlx::query_as(
        "select s.id as session_id, s.tenant_id, s.user_id, s.kind, s.last_seen_at, s.idle_timeout_s,
                s.expires_at, u.role, u.email, u.disabled
         from sessions s join users u on u.id = s.user_id
         where s.token_hash = $1 and s.revoked_at is null",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await?)
}

/// Slides the idle window. Callers throttle this so a busy client does not write on every request.
pub async fn touch(conn: &mut PgConnection, id: SessionId, now: DateTime<Utc>) -> Result<()> {
    sqlx::query("update sessions set last_seen_at = $2 where id = $1")
        .bind(id.as_uuid())
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn revoke(conn: &mut PgConnection, id: SessionId, now: DateTime<Utc>) -> Result<()> {
    sqlx::query("update sessions set revoked_at = $2 where id = $1 and revoked_at is null")
        .bind(id.as_uuid())
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends every session of a user but `except` (password change, disabling, MFA reset).
pub async fn revoke_all_for_user(
    conn: &mut PgConnection,
    user: UserId,
    except: Option<SessionId>,
    now: DateTime<Utc>,
) -> Result<u64> {
    let done = sqlx::query(
        "update sessions set revoked_at = $2
         where user_id = $1 and revoked_at is null and ($3::uuid is null or id <> $3)",
    )
    .bind(user.as_uuid())
    .bind(now)
    .bind(except.map(|s| s.as_uuid()))
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Deletes sessions that ended more than a day ago; returns how many.
pub async fn purge_ended(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<u64> {
    let done = sqlx::query(
        "delete from sessions where (revoked_at is not null and revoked_at < $1 - interval '1 day')
            or expires_at < $1 - interval '1 day'",
    )
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
