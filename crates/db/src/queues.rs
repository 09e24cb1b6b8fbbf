//! ACD queues and their members (agents and supervisors who take the queue's calls). Tenant
//! transactions only.

use chrono::{DateTime, Utc};
use domain::{TenantId, UserId};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::page::{Cursor, Page};
use crate::{DbError, Result};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct QueueRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub ring_timeout_secs: i32,
    pub max_wait_secs: i32,
    /// `none`, `queue`, `agent` or `hangup` (`domain::calls::OverflowType`).
    pub overflow_type: String,
    pub overflow_id: Option<Uuid>,
    /// An 8 kHz mono WAV file on the server; None plays the generated tone.
    pub music_on_hold: Option<String>,
    pub record_calls: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl QueueRow {
    pub fn overflow(&self) -> domain::calls::OverflowType {
        domain::calls::OverflowType::parse(&self.overflow_type).unwrap_or(domain::calls::OverflowType::None)
    }
}

/// Fields an admin sets.
pub struct QueueFields<'a> {
    pub name: &'a str,
    pub ring_timeout_secs: i32,
    pub max_wait_secs: i32,
    pub overflow_type: &'a str,
    pub overflow_id: Option<Uuid>,
    pub music_on_hold: Option<&'a str>,
    pub record_calls: bool,
}

pub async fn create_queue(
    conn: &mut PgConnection,
    id: Uuid,
    tenant: TenantId,
    f: &QueueFields<'_>,
    now: DateTime<Utc>,
) -> Result<QueueRow> {
    Ok(sqlx::query_as(
        "insert into queues (id, tenant_id, name, ring_timeout_secs, max_wait_secs, overflow_type, overflow_id,
                             music_on_hold, record_calls, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) returning *",
    )
    .bind(id)
    .bind(tenant.as_uuid())
    .bind(f.name)
    .bind(f.ring_timeout_secs)
    .bind(f.max_wait_secs)
    .bind(f.overflow_type)
    .bind(f.overflow_id)
    .bind(f.music_on_hold)
    .bind(f.record_calls)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

/// One queue of the transaction's tenant; `NotFound` otherwise.
pub async fn get_queue(conn: &mut PgConnection, id: Uuid) -> Result<QueueRow> {
    Ok(sqlx::query_as("select * from queues where id = $1").bind(id).fetch_one(conn).await?)
}

pub async fn list_queues(
    conn: &mut PgConnection,
    tenant: TenantId,
    after: Option<Cursor>,
    limit: usize,
) -> Result<Page<QueueRow>> {
    let rows: Vec<QueueRow> = sqlx::query_as(
        "select * from queues where tenant_id = $1
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

pub async fn update_queue(
    conn: &mut PgConnection,
    id: Uuid,
    f: &QueueFields<'_>,
    now: DateTime<Utc>,
) -> Result<QueueRow> {
    Ok(sqlx::query_as(
        "update queues set name = $2, ring_timeout_secs = $3, max_wait_secs = $4, overflow_type = $5,
                overflow_id = $6, music_on_hold = $7, record_calls = $8, updated_at = $9
          where id = $1 returning *",
    )
    .bind(id)
    .bind(f.name)
    .bind(f.ring_timeout_secs)
    .bind(f.max_wait_secs)
    .bind(f.overflow_type)
    .bind(f.overflow_id)
    .bind(f.music_on_hold)
    .bind(f.record_calls)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

/// Deletes the queue and its memberships. Calls keep its id (CDRs outlive queues).
pub async fn delete_queue(conn: &mut PgConnection, id: Uuid) -> Result<()> {
    let done = sqlx::query("delete from queues where id = $1").bind(id).execute(conn).await?;
    if done.rows_affected() == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// What still sends calls to the queue, so deleting it would strand them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueUsage {
    /// Numbers of DIDs routed to it.
    pub dids: Vec<String>,
    /// Names of queues overflowing to it.
    pub overflowing_queues: Vec<String>,
}

impl QueueUsage {
    pub fn is_empty(&self) -> bool {
        self.dids.is_empty() && self.overflowing_queues.is_empty()
    }
}

pub async fn queue_usage(conn: &mut PgConnection, id: Uuid) -> Result<QueueUsage> {
    let dids: Vec<String> = sqlx::query_scalar(
        "select number from dids where destination_type = 'queue' and destination_id = $1 order by number",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let overflowing_queues: Vec<String> = sqlx::query_scalar(
        "select name from queues where overflow_type = 'queue' and overflow_id = $1 and id <> $1 order by name",
    )
    .bind(id)
    .fetch_all(conn)
    .await?;
    Ok(QueueUsage { dids, overflowing_queues })
}

/// A queue member with what the member list shows.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MemberRow {
    pub queue_id: Uuid,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub email: String,
    pub display_name: String,
    pub role: String,
    pub extension: Option<String>,
    /// None: no state row, i.e. logged out.
    pub status: Option<String>,
}

/// Adds a member; false if they already were one.
pub async fn add_member(
    conn: &mut PgConnection,
    tenant: TenantId,
    queue: Uuid,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<bool> {
    let done = sqlx::query(
        "insert into queue_members (tenant_id, queue_id, user_id, created_at) values ($1, $2, $3, $4)
         on conflict (queue_id, user_id) do nothing",
    )
    .bind(tenant.as_uuid())
    .bind(queue)
    .bind(user.as_uuid())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes a member; false if they were not one.
pub async fn remove_member(conn: &mut PgConnection, queue: Uuid, user: UserId) -> Result<bool> {
    let done = sqlx::query("delete from queue_members where queue_id = $1 and user_id = $2")
        .bind(queue)
        .bind(user.as_uuid())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

const MEMBER_SELECT: &str = "select m.queue_id, m.user_id, m.created_at, u.email, u.display_name, u.role,
        a.extension, s.status
   from queue_members m
   join users u on u.id = m.user_id
   left join sip_accounts a on a.user_id = m.user_id
   left join agent_states s on s.user_id = m.user_id";

/// Members in the order they were added.
pub async fn list_members(
    conn: &mut PgConnection,
    queue: Uuid,
    after: Option<Cursor>,
    limit: usize,
) -> Result<Page<MemberRow>> {
    let sql = format!(
        "{MEMBER_SELECT}
          where m.queue_id = $1 and ($2::timestamptz is null or (m.created_at, m.user_id) > ($2, $3))
          order by m.created_at, m.user_id limit $4"
    );
    let rows: Vec<MemberRow> = sqlx::query_as(&sql)
        .bind(queue)
        .bind(after.map(|c| c.at))
        .bind(after.map(|c| c.id))
        .bind(limit as i64 + 1)
        .fetch_all(conn)
        .await?;
    Ok(Page::from_overfetch(rows, limit, |r| Cursor { at: r.created_at, id: r.user_id }))
}

pub async fn get_member(conn: &mut PgConnection, queue: Uuid, user: UserId) -> Result<MemberRow> {
    let sql = format!("{MEMBER_SELECT} where m.queue_id = $1 and m.user_id = $2");
    Ok(sqlx::query_as(&sql).bind(queue).bind(user.as_uuid()).fetch_one(conn).await?)
}

/// The queues a user is a member of, oldest membership first.
pub async fn queue_ids_of(conn: &mut PgConnection, user: UserId) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "select queue_id from queue_members where user_id = $1 order by created_at, queue_id",
    )
    .bind(user.as_uuid())
    .fetch_all(conn)
    .await?)
}

/// Queue memberships of several users at once (for agent lists), as (user, queue) pairs.
pub async fn queue_ids_of_users(conn: &mut PgConnection, users: &[Uuid]) -> Result<Vec<(Uuid, Uuid)>> {
    Ok(sqlx::query_as(
        "select user_id, queue_id from queue_members where user_id = any($1) order by created_at, queue_id",
    )
    .bind(users)
    .fetch_all(conn)
    .await?)
}
