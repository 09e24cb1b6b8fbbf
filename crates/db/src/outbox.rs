//! The transactional outbox: events are written in the same transaction as the change they
//! describe, so an event exists if and only if its change committed. Webhook delivery, realtime
//! pushes and the Salesforce push read from here.

use chrono::{DateTime, Utc};
use domain::TenantId;
use domain::events::Event;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;

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
    sqlx::query(
        "insert into outbox (id, tenant_id, event_type, payload, created_at, call_id, call_sequence, target_endpoint_id)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(event.id.as_uuid())
    .bind(event.tenant_id.as_uuid())
    .bind(event.event_type().as_str())
    .bind(payload)
    .bind(event.created_at)
    .bind(call_id.map(|c| c.as_uuid()))
    .bind(sequence.map(|s| s as i64))
    .bind(only_endpoint)
    .execute(&mut *conn)
    .await?;
    crate::work_queue::push(
        conn,
        event.id.as_uuid(),
        event.tenant_id,
        crate::work_queue::KIND_OUTBOX_FANOUT,
        None,
        event.created_at,
    )
    .await
}

/// Marks the event as handed to the delivery channels and removes its fan-out job (if still
/// held with `lock_token`), in one statement. False when the lease was lost.
pub async fn finish_fan_out(
    conn: &mut PgConnection,
    id: Uuid,
    lock_token: Uuid,
    now: DateTime<Utc>,
) -> Result<bool> {
    let dequeued: i64 = sqlx::query_scalar(
        "with marked as (update outbox set dispatched_at = $2 where id = $1),
              dequeued as (delete from work_queue where job_id = $1 and lock_token = $3 returning 1)
         select count(*) from dequeued",
    )
    .bind(id)
    .bind(now)
    .bind(lock_token)
    .fetch_one(conn)
    .await?;
    Ok(dequeued == 1)
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
