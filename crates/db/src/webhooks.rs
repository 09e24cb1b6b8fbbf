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

/// The endpoint fields a delivery attempt needs, read fresh with every batch (so a changed URL,
/// a disabled endpoint or a rotated secret applies to the next attempt).
#[derive(Clone, sqlx::FromRow)]
pub struct Target {
    pub url: String,
    pub secret_enc: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("enabled", &self.enabled).finish_non_exhaustive()
    }
}

/// One (event, endpoint) pair to deliver, from [`take_fan_outs`] or [`claim_fan_outs`].
#[derive(Clone, Debug)]
pub struct FanOutTarget {
    pub event_id: Uuid,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub endpoint_id: Uuid,
    pub target: Target,
}

/// What a fan-out took off the queue.
#[derive(Debug, Default)]
pub struct FanOut {
    /// Events taken (some may go to no endpoint).
    pub events: usize,
    pub targets: Vec<FanOutTarget>,
}

#[derive(sqlx::FromRow)]
struct FanOutRow {
    event_id: Uuid,
    event_type: String,
    payload: Option<serde_json::Value>,
    endpoint_id: Option<Uuid>,
    url: Option<String>,
    secret_enc: Option<String>,
    enabled: Option<bool>,
    disabled_reason: Option<String>,
}

fn fan_out_from(rows: Vec<FanOutRow>) -> FanOut {
    let mut events = std::collections::HashSet::new();
    let mut targets = Vec::with_capacity(rows.len());
    for r in rows {
        events.insert(r.event_id);
        if let (Some(endpoint_id), Some(payload), Some(url), Some(secret_enc), Some(enabled)) =
            (r.endpoint_id, r.payload, r.url, r.secret_enc, r.enabled)
        {
            targets.push(FanOutTarget {
                event_id: r.event_id,
                event_type: r.event_type,
                payload,
                endpoint_id,
                target: Target { url, secret_enc, enabled, disabled_reason: r.disabled_reason },
            });
        }
    }
    FanOut { events: events.len(), targets }
}

/// Marks the `dequeued` jobs' events dispatched and pairs them with the endpoints to deliver to:
/// the tester's one endpoint, or the enabled endpoints subscribed to the event type (a row with
/// no endpoint for an event that goes nowhere).
macro_rules! fan_out_tail {
    () => {
        ",
         events as (
            update outbox o set dispatched_at = $2 where o.id = any(array(select job_id from dequeued))
            returning o.id, o.event_type, o.payload, o.target_endpoint_id)
         select e.id as event_id, e.event_type, case when w.id is null then null else e.payload end as payload,
                w.id as endpoint_id, w.url, w.secret_enc, w.enabled, w.disabled_reason
         from events e left join webhook_endpoints w
           on w.id = e.target_endpoint_id
           or (e.target_endpoint_id is null and w.enabled
               and (cardinality(w.event_types) = 0 or e.event_type = any(w.event_types)))
         order by e.id, w.id"
    };
}

/// Fan-out of a batch of claimed outbox jobs, first half (tenant transaction): removes the jobs we
/// still hold (`(job id, lock token)` pairs; a job whose lease another worker took over is left
/// alone), marks their events dispatched, and returns every (event, endpoint) pair to deliver.
/// One statement. The caller creates the deliveries with [`queue_deliveries`] in the same
/// transaction, so the jobs leave the queue exactly when their deliveries exist.
pub async fn take_fan_outs(
    conn: &mut PgConnection,
    job_ids: &[Uuid],
    lock_tokens: &[Uuid],
    now: DateTime<Utc>,
) -> Result<FanOut> {
    let rows: Vec<FanOutRow> = sqlx::query_as(concat!(
        "with dequeued as (
                delete from work_queue
                where job_id = any($1) and kind = 'outbox_fanout'
                  and (job_id, lock_token) in (select * from unnest($1::uuid[], $3::uuid[]))
                returning job_id)",
        fan_out_tail!()
    ))
    .bind(job_ids)
    .bind(now)
    .bind(lock_tokens)
    .fetch_all(conn)
    .await?;
    Ok(fan_out_from(rows))
}

/// Like [`take_fan_outs`], but claims the tenant's due fan-out jobs itself (up to `limit`, oldest
/// first, skipping those another worker holds or is taking): claim and fan-out in one statement,
/// in the tenant transaction that creates the deliveries. No lease is needed: if the
/// transaction does not commit, the jobs were never taken.
pub async fn claim_fan_outs(
    conn: &mut PgConnection,
    tenant: TenantId,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<FanOut> {
    let rows: Vec<FanOutRow> = sqlx::query_as(concat!(
        "with dequeued as (
                delete from work_queue where job_id = any(array(
                    select job_id from work_queue
                    where tenant_id = $1 and kind = 'outbox_fanout' and due_at <= $2
                      and (locked_until is null or locked_until < $2)
                    order by due_at limit $3 for update skip locked))
                returning job_id)",
        fan_out_tail!()
    ))
    .bind(tenant.as_uuid())
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(fan_out_from(rows))
}

/// A delivery to create, with its exact body.
pub struct NewDelivery<'a> {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub body: &'a [u8],
    /// Queue it already leased to the caller, who sends it right away.
    pub leased: bool,
}

/// Fan-out, second half: creates the deliveries and queues them, in one statement. Those marked
/// `leased` are queued already held by the caller (until `lease_until`, each with a fresh token),
/// so the worker that fanned out sends them without claiming them again, and if it dies they come
/// back when the lease runs out; the others are due now for any worker (and notify). Returns
/// `(delivery id, lock token)` of the leased ones created (an existing delivery for the same
/// event and endpoint is left as it is).
pub async fn queue_deliveries(
    conn: &mut PgConnection,
    tenant: TenantId,
    deliveries: &[NewDelivery<'_>],
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Vec<(Uuid, Uuid)>> {
    let ids: Vec<Uuid> = deliveries.iter().map(|d| d.id).collect();
    let endpoints: Vec<Uuid> = deliveries.iter().map(|d| d.endpoint_id).collect();
    let events: Vec<Uuid> = deliveries.iter().map(|d| d.event_id).collect();
    let types: Vec<&str> = deliveries.iter().map(|d| d.event_type).collect();
    let bodies: Vec<&[u8]> = deliveries.iter().map(|d| d.body).collect();
    let leased: Vec<bool> = deliveries.iter().map(|d| d.leased).collect();
    Ok(sqlx::query_as(
        "with input as (select * from unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::bytea[], $7::bool[])
                          as i (id, endpoint_id, event_id, event_type, body, leased)),
              d as (
                insert into webhook_deliveries (id, tenant_id, endpoint_id, event_id, event_type, body, status,
                                                next_attempt_at, created_at, updated_at)
                select id, $1, endpoint_id, event_id, event_type, body, 'pending', $8, $8, $8 from input
                on conflict (endpoint_id, event_id) do nothing
                returning id, endpoint_id),
              q as (
                insert into work_queue (job_id, tenant_id, kind, group_key, due_at, locked_until, lock_token)
                select d.id, $1, 'webhook_delivery', d.endpoint_id, $8,
                       case when i.leased then $9::timestamptz end, case when i.leased then gen_random_uuid() end
                from d join input i on i.id = d.id
                returning job_id, lock_token)
         select job_id, lock_token from q where lock_token is not null",
    )
    .bind(tenant.as_uuid())
    .bind(ids)
    .bind(endpoints)
    .bind(events)
    .bind(types)
    .bind(bodies)
    .bind(leased)
    .bind(now)
    .bind(lease_until)
    .fetch_all(conn)
    .await?)
}

/// A delivery with what sending it needs from its endpoint.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SendRow {
    #[sqlx(flatten)]
    pub delivery: DeliveryRow,
    #[sqlx(flatten)]
    pub target: Target,
}

/// The deliveries among `ids` with their endpoints, in one query (tenant transaction).
pub async fn deliveries_for_send(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<SendRow>> {
    Ok(sqlx::query_as(
        "select d.*, w.url, w.secret_enc, w.enabled, w.disabled_reason
         from webhook_deliveries d join webhook_endpoints w on w.id = d.endpoint_id
         where d.id = any($1)",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?)
}

/// A 2xx attempt to record with [`finish_successes`].
#[derive(Clone, Debug)]
pub struct Success {
    pub delivery_id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub latency_ms: i32,
    pub http_status: i32,
    pub response_excerpt: Option<String>,
    /// The token of our claim on the delivery's job.
    pub lock_token: Uuid,
}

/// The success path for a batch of one tenant's deliveries, in one statement: logs every
/// attempt, and for each job we still hold, takes it off the queue and marks the delivery
/// succeeded. A job whose lease ran out and was taken over keeps its state (the new owner
/// decides); its attempt is logged with a note that the result was not applied. Returns, in
/// input order, whether each job was still ours.
pub async fn finish_successes(
    conn: &mut PgConnection,
    tenant: TenantId,
    batch: &[Success],
    now: DateTime<Utc>,
) -> Result<Vec<bool>> {
    let attempt_ids: Vec<Uuid> = batch.iter().map(|_| Uuid::now_v7()).collect();
    let deliveries: Vec<Uuid> = batch.iter().map(|s| s.delivery_id).collect();
    let endpoints: Vec<Uuid> = batch.iter().map(|s| s.endpoint_id).collect();
    let events: Vec<Uuid> = batch.iter().map(|s| s.event_id).collect();
    let types: Vec<&str> = batch.iter().map(|s| s.event_type.as_str()).collect();
    let attempts: Vec<i32> = batch.iter().map(|s| s.attempt).collect();
    let started: Vec<DateTime<Utc>> = batch.iter().map(|s| s.started_at).collect();
    let latencies: Vec<i32> = batch.iter().map(|s| s.latency_ms).collect();
    let statuses: Vec<i32> = batch.iter().map(|s| s.http_status).collect();
    let excerpts: Vec<Option<&str>> = batch.iter().map(|s| s.response_excerpt.as_deref()).collect();
    let tokens: Vec<Uuid> = batch.iter().map(|s| s.lock_token).collect();
    let dequeued: Vec<Uuid> = sqlx::query_scalar(
        "with input as (
            select * from unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::text[], $7::int[],
                                 $8::timestamptz[], $9::int[], $10::int[], $11::text[], $12::uuid[])
              as i (attempt_id, delivery_id, endpoint_id, event_id, event_type, attempt, started_at,
                    latency_ms, http_status, response_excerpt, lock_token)),
         dequeued as (
            delete from work_queue
            where job_id = any($3) and (job_id, lock_token) in (select delivery_id, lock_token from input)
            returning job_id),
         done as (
            update webhook_deliveries d set status = 'succeeded', attempts = i.attempt, last_status = i.http_status,
                   last_error = null, next_attempt_at = null, succeeded_at = $13, updated_at = $13
            from input i
            where d.id = any(array(select job_id from dequeued)) and i.delivery_id = d.id),
         logged as (
            insert into webhook_attempts (id, tenant_id, endpoint_id, delivery_id, event_id, event_type, attempt,
                                          started_at, latency_ms, http_status, error, response_excerpt, succeeded)
            select i.attempt_id, $1, i.endpoint_id, i.delivery_id, i.event_id, i.event_type, i.attempt, i.started_at,
                   i.latency_ms, i.http_status,
                   case when q.job_id is null then 'lease expired during the attempt; result not applied' end,
                   i.response_excerpt, true
            from input i left join dequeued q on q.job_id = i.delivery_id)
         select job_id from dequeued",
    )
    .bind(tenant.as_uuid())
    .bind(attempt_ids)
    .bind(&deliveries)
    .bind(endpoints)
    .bind(events)
    .bind(types)
    .bind(attempts)
    .bind(started)
    .bind(latencies)
    .bind(statuses)
    .bind(excerpts)
    .bind(tokens)
    .bind(now)
    .fetch_all(conn)
    .await?;
    let ours: std::collections::HashSet<Uuid> = dequeued.into_iter().collect();
    Ok(deliveries.iter().map(|d| ours.contains(d)).collect())
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
