//! Webhook endpoints, deliveries (one per event and endpoint) and the log of attempts.

use chrono::{DateTime, Utc};
use domain::TenantId;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::page::{Cursor, Page};
use crate::{DbError, Result};

#[derive(Clone, sqlx::FromRow)]
pub struct EndpointRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub url: String,
    pub description: String,
    pub enabled: bool,
    pub event_types: Vec<String>,
    pub secret_enc: String,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for EndpointRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointRow")
            .field("id", &self.id)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl EndpointRow {
    pub fn subscribes_to(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type)
    }
}

pub struct NewEndpoint<'a> {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub url: &'a str,
    pub description: &'a str,
    pub enabled: bool,
    pub event_types: &'a [String],
    pub secret_enc: &'a str,
    pub now: DateTime<Utc>,
}

pub async fn create_endpoint(conn: &mut PgConnection, e: NewEndpoint<'_>) -> Result<EndpointRow> {
    Ok(sqlx::query_as(
        "insert into webhook_endpoints (id, tenant_id, url, description, enabled, event_types, secret_enc, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $8) returning *",
    )
    .bind(e.id)
    .bind(e.tenant_id.as_uuid())
    .bind(e.url)
    .bind(e.description)
    .bind(e.enabled)
    .bind(e.event_types)
    .bind(e.secret_enc)
    .bind(e.now)
    .fetch_one(conn)
    .await?)
}

pub async fn get_endpoint(conn: &mut PgConnection, id: Uuid) -> Result<EndpointRow> {
    Ok(sqlx::query_as("select * from webhook_endpoints where id = $1").bind(id).fetch_one(conn).await?)
}

pub async fn list_endpoints(
    conn: &mut PgConnection,
    tenant: TenantId,
    after: Option<Cursor>,
    limit: usize,
) -> Result<Page<EndpointRow>> {
    let rows: Vec<EndpointRow> = sqlx::query_as(
        "select * from webhook_endpoints where tenant_id = $1
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

/// Enabled endpoints of the tenant that subscribe to `event_type` (or to everything).
pub async fn matching_endpoints(
    conn: &mut PgConnection,
    tenant: TenantId,
    event_type: &str,
) -> Result<Vec<EndpointRow>> {
    Ok(sqlx::query_as(
        "select * from webhook_endpoints where tenant_id = $1 and enabled
           and (cardinality(event_types) = 0 or $2 = any(event_types))",
    )
    .bind(tenant.as_uuid())
    .bind(event_type)
    .fetch_all(conn)
    .await?)
}

#[derive(Default)]
pub struct EndpointPatch<'a> {
    pub url: Option<&'a str>,
    pub description: Option<&'a str>,
    pub enabled: Option<bool>,
    pub event_types: Option<&'a [String]>,
    pub secret_enc: Option<&'a str>,
}

pub async fn update_endpoint(
    conn: &mut PgConnection,
    id: Uuid,
    p: EndpointPatch<'_>,
    now: DateTime<Utc>,
) -> Result<EndpointRow> {
    Ok(sqlx::query_as(
        "update webhook_endpoints set url = coalesce($2, url), description = coalesce($3, description),
                enabled = coalesce($4, enabled), event_types = coalesce($5, event_types),
                secret_enc = coalesce($6, secret_enc),
                disabled_reason = case when coalesce($4, enabled) then null else disabled_reason end,
                updated_at = $7
         where id = $1 returning *",
    )
    .bind(id)
    .bind(p.url)
    .bind(p.description)
    .bind(p.enabled)
    .bind(p.event_types)
    .bind(p.secret_enc)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

/// Disables an endpoint on the receiver's behalf (410 Gone).
pub async fn disable_endpoint(
    conn: &mut PgConnection,
    id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "update webhook_endpoints set enabled = false, disabled_reason = $2, updated_at = $3 where id = $1",
    )
    .bind(id)
    .bind(reason)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn delete_endpoint(conn: &mut PgConnection, id: Uuid) -> Result<()> {
    // Queue entries of its deliveries go too; the deliveries cascade with the endpoint.
    sqlx::query("delete from work_queue where group_key = $1").bind(id).execute(&mut *conn).await?;
    let done = sqlx::query("delete from webhook_endpoints where id = $1").bind(id).execute(conn).await?;
    if done.rows_affected() == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

#[derive(Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub body: Vec<u8>,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub dead_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub succeeded_at: Option<DateTime<Utc>>,
    pub dead_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for DeliveryRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryRow")
            .field("id", &self.id)
            .field("event_id", &self.event_id)
            .field("status", &self.status)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// Creates the delivery and queues it in one statement; None when it already existed.
pub async fn create_and_queue_delivery(
    conn: &mut PgConnection,
    tenant: TenantId,
    endpoint_id: Uuid,
    event_id: Uuid,
    event_type: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "with d as (
            insert into webhook_deliveries (id, tenant_id, endpoint_id, event_id, event_type, body, status, next_attempt_at, created_at, updated_at)
            values ($1, $2, $3, $4, $5, $6, 'pending', $7, $7, $7)
            on conflict (endpoint_id, event_id) do nothing returning id)
         insert into work_queue (job_id, tenant_id, kind, group_key, due_at)
         select id, $2, 'webhook_delivery', $3, $7 from d returning job_id",
    )
    .bind(Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(endpoint_id)
    .bind(event_id)
    .bind(event_type)
    .bind(body)
    .bind(now)
    .fetch_optional(conn)
    .await?)
}

/// A pending delivery with what sending it needs from its endpoint, in one query.
pub async fn get_delivery_for_send(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<(DeliveryRow, EndpointRow)>> {
    let delivery: Option<DeliveryRow> = sqlx::query_as("select * from webhook_deliveries where id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(delivery) = delivery else { return Ok(None) };
    let endpoint = get_endpoint(conn, delivery.endpoint_id).await?;
    Ok(Some((delivery, endpoint)))
}

/// The success path in one statement: log the attempt, mark the delivery, and take the job off
/// the queue if we still hold it. Returns false when our lease had run out (caller rolls back).
pub async fn finish_success(
    conn: &mut PgConnection,
    a: &AttemptRecord<'_>,
    lock_token: Uuid,
    now: DateTime<Utc>,
) -> Result<bool> {
    let dequeued: i64 = sqlx::query_scalar(
        "with attempt as (
            insert into webhook_attempts (id, tenant_id, endpoint_id, delivery_id, event_id, event_type, attempt, started_at,
                                          latency_ms, http_status, error, response_excerpt, succeeded)
            values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, null, $11, true)),
         done as (
            update webhook_deliveries set status = 'succeeded', attempts = $7, last_status = $10, last_error = null,
                   next_attempt_at = null, succeeded_at = $13, updated_at = $13 where id = $4),
         dequeued as (delete from work_queue where job_id = $4 and lock_token = $12 returning 1)
         select count(*) from dequeued",
    )
    .bind(Uuid::now_v7())
    .bind(a.delivery.tenant_id)
    .bind(a.delivery.endpoint_id)
    .bind(a.delivery.id)
    .bind(a.delivery.event_id)
    .bind(&a.delivery.event_type)
    .bind(a.attempt)
    .bind(a.started_at)
    .bind(a.latency_ms)
    .bind(a.http_status)
    .bind(a.response_excerpt)
    .bind(lock_token)
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(dequeued == 1)
}

pub async fn get_delivery(conn: &mut PgConnection, id: Uuid) -> Result<DeliveryRow> {
    Ok(sqlx::query_as("select * from webhook_deliveries where id = $1").bind(id).fetch_one(conn).await?)
}

/// What happened on one attempt.
pub struct AttemptRecord<'a> {
    pub delivery: &'a DeliveryRow,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub latency_ms: i32,
    pub http_status: Option<i32>,
    pub error: Option<&'a str>,
    pub response_excerpt: Option<&'a str>,
    pub succeeded: bool,
}

pub async fn record_attempt(conn: &mut PgConnection, a: &AttemptRecord<'_>) -> Result<()> {
    sqlx::query(
        "insert into webhook_attempts (id, tenant_id, endpoint_id, delivery_id, event_id, event_type, attempt, started_at,
                                       latency_ms, http_status, error, response_excerpt, succeeded)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(Uuid::now_v7())
    .bind(a.delivery.tenant_id)
    .bind(a.delivery.endpoint_id)
    .bind(a.delivery.id)
    .bind(a.delivery.event_id)
    .bind(&a.delivery.event_type)
    .bind(a.attempt)
    .bind(a.started_at)
    .bind(a.latency_ms)
    .bind(a.http_status)
    .bind(a.error)
    .bind(a.response_excerpt)
    .bind(a.succeeded)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn mark_failed(
    conn: &mut PgConnection,
    id: Uuid,
    attempts: i32,
    status: Option<i32>,
    error: &str,
    next_attempt_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "update webhook_deliveries set attempts = $2, last_status = $3, last_error = $4, next_attempt_at = $5, updated_at = $6
         where id = $1",
    )
    .bind(id)
    .bind(attempts)
    .bind(status)
    .bind(error)
    .bind(next_attempt_at)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn mark_dead(
    conn: &mut PgConnection,
    id: Uuid,
    attempts: i32,
    status: Option<i32>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "update webhook_deliveries set status = 'dead', attempts = $2, last_status = $3, last_error = $4, dead_reason = $4,
                next_attempt_at = null, dead_at = $5, updated_at = $5 where id = $1",
    )
    .bind(id)
    .bind(attempts)
    .bind(status)
    .bind(reason)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Puts dead deliveries back in line (all of the endpoint's, or the listed ones) with a fresh
/// attempt budget; returns the ids revived.
pub async fn revive_dead(
    conn: &mut PgConnection,
    endpoint_id: Uuid,
    only: Option<&[Uuid]>,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "update webhook_deliveries set status = 'pending', attempts = 0, dead_reason = null, dead_at = null,
                next_attempt_at = $3, updated_at = $3
         where endpoint_id = $1 and status = 'dead' and ($2::uuid[] is null or id = any($2))
         returning id",
    )
    .bind(endpoint_id)
    .bind(only)
    .bind(now)
    .fetch_all(conn)
    .await?)
}

pub async fn list_dead(
    conn: &mut PgConnection,
    endpoint_id: Uuid,
    after: Option<Cursor>,
    limit: usize,
) -> Result<Page<DeliveryRow>> {
    let rows: Vec<DeliveryRow> = sqlx::query_as(
        "select * from webhook_deliveries where endpoint_id = $1 and status = 'dead'
           and ($2::timestamptz is null or (dead_at, id) < ($2, $3))
         order by dead_at desc, id desc limit $4",
    )
    .bind(endpoint_id)
    .bind(after.map(|c| c.at))
    .bind(after.map(|c| c.id))
    .bind(limit as i64 + 1)
    .fetch_all(conn)
    .await?;
    Ok(Page::from_overfetch(rows, limit, |r| Cursor { at: r.dead_at.unwrap_or(r.updated_at), id: r.id }))
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AttemptRow {
    pub id: Uuid,
    pub delivery_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub latency_ms: i32,
    pub http_status: Option<i32>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
    pub succeeded: bool,
}

/// The endpoint's most recent attempts, newest first.
pub async fn recent_attempts(
    conn: &mut PgConnection,
    endpoint_id: Uuid,
    limit: i64,
) -> Result<Vec<AttemptRow>> {
    Ok(sqlx::query_as(
        "select id, delivery_id, event_id, event_type, attempt, started_at, latency_ms, http_status, error,
                response_excerpt, succeeded
         from webhook_attempts where endpoint_id = $1 order by started_at desc, id desc limit $2",
    )
    .bind(endpoint_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Attempts of one delivery, oldest first (the tester waits on these).
pub async fn attempts_of(conn: &mut PgConnection, delivery_id: Uuid) -> Result<Vec<AttemptRow>> {
    Ok(sqlx::query_as(
        "select id, delivery_id, event_id, event_type, attempt, started_at, latency_ms, http_status, error,
                response_excerpt, succeeded
         from webhook_attempts where delivery_id = $1 order by started_at, id",
    )
    .bind(delivery_id)
    .fetch_all(conn)
    .await?)
}

pub async fn delivery_for_event(
    conn: &mut PgConnection,
    endpoint_id: Uuid,
    event_id: Uuid,
) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar("select id from webhook_deliveries where endpoint_id = $1 and event_id = $2")
        .bind(endpoint_id)
        .bind(event_id)
        .fetch_optional(conn)
        .await?)
}

/// Keeps the attempt log bounded: drops attempts older than `before`, except each endpoint's
/// newest `keep` (so "last 100 deliveries" is always answerable).
pub async fn prune_attempts(conn: &mut PgConnection, before: DateTime<Utc>, keep: i64) -> Result<u64> {
    let done = sqlx::query(
        "delete from webhook_attempts a where a.started_at < $1 and a.id not in (
            select id from (select id, row_number() over (partition by endpoint_id order by started_at desc) as n
                            from webhook_attempts) ranked where n <= $2)",
    )
    .bind(before)
    .bind(keep)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
