//! The cross-tenant work queue: which jobs are due, and who holds them. Only ids and times live
//! here; the job's data stays in tenant tables. Claims use `FOR UPDATE SKIP LOCKED` and a lease,
//! so any number of workers (processes) can share the queue, and a worker that dies mid-job
//! releases it when the lease runs out.

use chrono::{DateTime, Utc};
use domain::TenantId;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;

pub const KIND_OUTBOX_FANOUT: &str = "outbox_fanout";
pub const KIND_WEBHOOK_DELIVERY: &str = "webhook_delivery";

/// The notification channel a trigger signals on every insert.
pub const CHANNEL: &str = "sivo_work";

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ClaimedJob {
    pub job_id: Uuid,
    pub tenant_id: Uuid,
    pub kind: String,
    pub group_key: Option<Uuid>,
    pub lock_token: Uuid,
}

impl ClaimedJob {
    pub fn tenant(&self) -> TenantId {
        TenantId(self.tenant_id)
    }
}

pub async fn push(
    conn: &mut PgConnection,
    job_id: Uuid,
    tenant: TenantId,
    kind: &str,
    group_key: Option<Uuid>,
    due_at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "insert into work_queue (job_id, tenant_id, kind, group_key, due_at) values ($1, $2, $3, $4, $5)
         on conflict (job_id) do update set due_at = excluded.due_at, locked_until = null, lock_token = null",
    )
    .bind(job_id)
    .bind(tenant.as_uuid())
    .bind(kind)
    .bind(group_key)
    .bind(due_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Claims up to `limit` due jobs (platform transaction), skipping jobs whose group is in
/// `saturated_groups`. Each claim gets a fresh token and holds until `now + lease`.
pub async fn claim(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    lease: chrono::Duration,
    limit: i64,
    saturated_groups: &[Uuid],
) -> Result<Vec<ClaimedJob>> {
    Ok(sqlx::query_as(
        // `= any(array(…))` keeps the update on the primary key whatever plan the prepared
        // statement settles on (a join may become a scan of the whole queue per claim).
        "update work_queue set locked_until = $2, lock_token = gen_random_uuid()
         where job_id = any(array(
             select job_id from work_queue
             where due_at <= $1 and (locked_until is null or locked_until < $1)
               and (group_key is null or not (group_key = any($4)))
             order by due_at limit $3 for update skip locked))
         returning job_id, tenant_id, kind, group_key, lock_token",
    )
    .bind(now)
    .bind(now + lease)
    .bind(limit)
    .bind(saturated_groups)
    .fetch_all(conn)
    .await?)
}

/// Removes a finished job, if we still hold it. False means our lease ran out and another worker
/// took the job over.
pub async fn complete(conn: &mut PgConnection, job_id: Uuid, lock_token: Uuid) -> Result<bool> {
    let done = sqlx::query("delete from work_queue where job_id = $1 and lock_token = $2")
        .bind(job_id)
        .bind(lock_token)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Releases a held job to run again at `due_at`.
pub async fn reschedule(
    conn: &mut PgConnection,
    job_id: Uuid,
    lock_token: Uuid,
    due_at: DateTime<Utc>,
) -> Result<bool> {
    let done = sqlx::query(
        "update work_queue set due_at = $3, locked_until = null, lock_token = null where job_id = $1 and lock_token = $2",
    )
    .bind(job_id)
    .bind(lock_token)
    .bind(due_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Releases held jobs (`(job id, lock token)` pairs; those another worker took over are left
/// alone) to run again at `due_at`, in one statement.
pub async fn release(
    conn: &mut PgConnection,
    job_ids: &[Uuid],
    lock_tokens: &[Uuid],
    due_at: DateTime<Utc>,
) -> Result<u64> {
    let done = sqlx::query(
        "update work_queue set due_at = $3, locked_until = null, lock_token = null
         where job_id = any($1) and (job_id, lock_token) in (select * from unnest($1::uuid[], $2::uuid[]))",
    )
    .bind(job_ids)
    .bind(lock_tokens)
    .bind(due_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Removes jobs regardless of who holds them (their subjects are gone or finished).
pub async fn remove_many(conn: &mut PgConnection, job_ids: &[Uuid]) -> Result<()> {
    sqlx::query("delete from work_queue where job_id = any($1)").bind(job_ids).execute(conn).await?;
    Ok(())
}

/// Removes a job regardless of who holds it (the job's subject is gone or finished).
pub async fn remove(conn: &mut PgConnection, job_id: Uuid) -> Result<()> {
    sqlx::query("delete from work_queue where job_id = $1").bind(job_id).execute(conn).await?;
    Ok(())
}

/// Number of jobs in the queue (platform transaction), for metrics and tests.
pub async fn depth(conn: &mut PgConnection) -> Result<i64> {
    Ok(sqlx::query_scalar("select count(*) from work_queue").fetch_one(conn).await?)
}

/// A connection that hears about newly queued work.
pub async fn listen(db: &crate::Db) -> Result<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect_with(db.pool()).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
