//! Login bookkeeping: failed attempts, temporary locks, and MFA recovery codes.

use chrono::{DateTime, Utc};
use domain::{TenantId, UserId};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;

/// Records a failed attempt and returns how many failures the account has had since `since`.
pub async fn record_failure(
    conn: &mut PgConnection,
    tenant: Option<TenantId>,
    user: UserId,
    reason: &str,
    now: DateTime<Utc>,
    since: DateTime<Utc>,
) -> Result<i64> {
    sqlx::query("insert into login_failures (tenant_id, user_id, at, reason) values ($1, $2, $3, $4)")
        .bind(tenant.map(|t| t.as_uuid()))
        .bind(user.as_uuid())
        .bind(now)
        .bind(reason)
        .execute(&mut *conn)
        .await?;
    // Old failures are irrelevant to the window; drop them so the table stays small.
    sqlx::query("delete from login_failures where user_id = $1 and at <= $2")
        .bind(user.as_uuid())
        .bind(since)
        .execute(&mut *conn)
        .await?;
    Ok(sqlx::query_scalar("select count(*) from login_failures where user_id = $1 and at > $2")
        .bind(user.as_uuid())
        .bind(since)
        .fetch_one(conn)
        .await?)
}

pub async fn lock_until(conn: &mut PgConnection, user: UserId, until: DateTime<Utc>) -> Result<()> {
    sqlx::query("update users set locked_until = $2 where id = $1")
        .bind(user.as_uuid())
        .bind(until)
        .execute(conn)
        .await?;
    Ok(())
}

/// After a successful login the slate is clean.
pub async fn clear_failures(conn: &mut PgConnection, user: UserId) -> Result<()> {
    sqlx::query("delete from login_failures where user_id = $1")
        .bind(user.as_uuid())
        .execute(&mut *conn)
        .await?;
    sqlx::query("update users set locked_until = null where id = $1 and locked_until is not null")
        .bind(user.as_uuid())
        .execute(conn)
        .await?;
    Ok(())
}

/// Replaces the user's recovery codes with new ones (hashes only).
pub async fn replace_recovery_codes(
    conn: &mut PgConnection,
    tenant: Option<TenantId>,
    user: UserId,
    code_hashes: &[Vec<u8>],
) -> Result<()> {
    sqlx::query("delete from mfa_recovery_codes where user_id = $1")
        .bind(user.as_uuid())
        .execute(&mut *conn)
        .await?;
    for hash in code_hashes {
        sqlx::query(
            "insert into mfa_recovery_codes (id, tenant_id, user_id, code_hash) values ($1, $2, $3, $4)",
        )
        .bind(Uuid::new_v4())
        .bind(tenant.map(|t| t.as_uuid()))
        .bind(user.as_uuid())
        .bind(hash)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Marks an unused recovery code as used; false if there was none with that hash.
pub async fn use_recovery_code(
    conn: &mut PgConnection,
    user: UserId,
    code_hash: &[u8],
    now: DateTime<Utc>,
) -> Result<bool> {
    let done = sqlx::query(
        "update mfa_recovery_codes set used_at = $3 where user_id = $1 and code_hash = $2 and used_at is null",
    )
    .bind(user.as_uuid())
    .bind(code_hash)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn remaining_recovery_codes(conn: &mut PgConnection, user: UserId) -> Result<i64> {
    Ok(sqlx::query_scalar("select count(*) from mfa_recovery_codes where user_id = $1 and used_at is null")
        .bind(user.as_uuid())
        .fetch_one(conn)
        .await?)
}
