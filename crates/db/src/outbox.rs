//! The transactional outbox: events are written in the same transaction as the change they
//! describe, so an event exists if and only if its change committed. Webhook delivery, realtime
//! pushes and the Salesforce push read from here.
//!
//! Realtime: every event meant for everyone (not a tester's event for one endpoint) is announced
//! on [`REALTIME_CHANNEL`] by a `pg_notify` in the same transaction, so PostgreSQL delivers the
//! notification only if the event commits. The payload is `<tenant id>:<event id>` (events can
//! exceed NOTIFY's 8000 bytes); listeners read the event with [`payloads`] in a tenant transaction.

use chrono::{DateTime, Utc};
use domain::TenantId;
use domain::events::Event;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;

/// `LISTEN` channel announcing committed events as `<tenant id>:<event id>`.
pub const REALTIME_CHANNEL: &str = "sivo_events";

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub call_id: Option<Uuid>,
    pub call_sequence: Option<i64>,
    pub target_endpoint_id: Option<Uuid>,
    pub dispatched_at: Option<DateTime<Utc>>,
}

/// Appends `event` inside the caller's (tenant) transaction, and queues its fan-out to the
/// delivery channels.
pub async fn enqueue(conn: &mut PgConnection, event: &Event) -> Result<()> {
    enqueue_for(conn, event, None).await
}

/// Like [`enqueue`], but delivered only to one webhook endpoint (the tester's synthetic events).
pub async fn enqueue_for(conn: &mut PgConnection, event: &Event, only_endpoint: Option<Uuid>) -> Result<()> {
    let payload = serde_json::to_value(event).expect("events serialize: plain data with string keys");
    let (call_id, sequence) = event.call_sequence().unzip();
    // One round trip: the insert, its fan-out job, and (for events meant for everyone) the
    // realtime notification, which PostgreSQL holds back until the transaction commits and drops
    // if it rolls back.
    sqlx::query(
        "with inserted as (
             insert into outbox (id, tenant_id, event_type, payload, created_at, call_id, call_sequence, target_endpoint_id)
             values ($1, $2, $3, $4, $5, $6, $7, $8)
             returning id, tenant_id, target_endpoint_id),
         queued as (
             insert into work_queue (job_id, tenant_id, kind, group_key, due_at)
             select id, tenant_id, $10, null, $5 from inserted
             on conflict (job_id) do update set due_at = excluded.due_at, locked_until = null, lock_token = null)
         select pg_notify($9, tenant_id::text || ':' || id::text) from inserted where target_endpoint_id is null",
    )
    .bind(event.id.as_uuid())
    .bind(event.tenant_id.as_uuid())
    .bind(event.event_type().as_str())
    .bind(payload)
    .bind(event.created_at)
    .bind(call_id.map(|c| c.as_uuid()))
    .bind(sequence.map(|s| s as i64))
    .bind(only_endpoint)
    .bind(REALTIME_CHANNEL)
    .bind(crate::work_queue::KIND_OUTBOX_FANOUT)
    .execute(conn)
    .await?;
    Ok(())
}

/// `LISTEN` channel announcing that a resource the web app shows changed without an event of its
/// own (an agent's SIP registration, a trunk's keepalive status), as
/// `<tenant id>:<resource>:<resource id>`. These are hints to re-read over REST, not events:
/// they are neither stored nor delivered to webhooks.
pub const CHANGES_CHANNEL: &str = "sivo_changes";

/// A resource kind announced on [`CHANGES_CHANNEL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Changed {
    /// An agent's SIP registration (bindings) changed; the id is the agent's user id.
    AgentRegistration,
    /// A trunk's keepalive status changed; the id is the trunk id.
    TrunkStatus,
}

impl Changed {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AgentRegistration => "agent.registration",
            Self::TrunkStatus => "trunk.status",
        }
    }
}

/// Announces on [`CHANGES_CHANNEL`] that `resource` changed; PostgreSQL delivers it only if the
/// caller's transaction commits.
pub async fn notify_changed(
    conn: &mut PgConnection,
    tenant: TenantId,
    resource: Changed,
    id: Uuid,
) -> Result<()> {
    sqlx::query("select pg_notify($1, $2)")
        .bind(CHANGES_CHANNEL)
        .bind(format!("{}:{}:{}", tenant.as_uuid(), resource.as_str(), id))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<OutboxRow> {
    Ok(sqlx::query_as("select * from outbox where id = $1").bind(id).fetch_one(conn).await?)
}

pub async fn list_recent(conn: &mut PgConnection, tenant: TenantId, limit: i64) -> Result<Vec<OutboxRow>> {
    Ok(sqlx::query_as("select * from outbox where tenant_id = $1 order by created_at desc, id desc limit $2")
        .bind(tenant.as_uuid())
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

/// An event as pushed to realtime clients: the webhook body (`payload`) and its time.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PushedEvent {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub payload: serde_json::Value,
}

/// The events among `ids` that are meant for everyone (tenant transaction: other tenants' ids
/// find nothing), oldest first.
pub async fn payloads(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<PushedEvent>> {
    Ok(sqlx::query_as(
        "select id, created_at, payload from outbox
         where id = any($1) and target_endpoint_id is null order by created_at, id",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?)
}

/// Events meant for everyone created at or after `since` (tenant transaction), oldest first, at
/// most `limit`: what a realtime listener missed while its connection was down.
pub async fn created_since(
    conn: &mut PgConnection,
    tenant: TenantId,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<PushedEvent>> {
    Ok(sqlx::query_as(
        "select id, created_at, payload from outbox
         where tenant_id = $1 and created_at >= $2 and target_endpoint_id is null
         order by created_at, id limit $3",
    )
    .bind(tenant.as_uuid())
    .bind(since)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// A connection that hears about committed events on [`REALTIME_CHANNEL`].
pub async fn listen(db: &crate::Db) -> Result<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect_with(db.pool()).await?;
    listener.listen(REALTIME_CHANNEL).await?;
    Ok(listener)
}
