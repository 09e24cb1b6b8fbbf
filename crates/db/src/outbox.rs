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
}

/// Appends `event` inside the caller's (tenant) transaction.
pub async fn enqueue(conn: &mut PgConnection, event: &Event) -> Result<()> {
    let payload = serde_json::to_value(event).expect("events serialize: plain data with string keys");
    let (call_id, sequence) = event.call_sequence().unzip();
    sqlx::query(
        "insert into outbox (id, tenant_id, event_type, payload, created_at, call_id, call_sequence)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(event.id.as_uuid())
    .bind(event.tenant_id.as_uuid())
    .bind(event.event_type().as_str())
    .bind(payload)
    .bind(event.created_at)
    .bind(call_id.map(|c| c.as_uuid()))
    .bind(sequence.map(|s| s as i64))
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn list_recent(conn: &mut PgConnection, tenant: TenantId, limit: i64) -> Result<Vec<OutboxRow>> {
    Ok(sqlx::query_as("select * from outbox where tenant_id = $1 order by created_at desc, id desc limit $2")
        .bind(tenant.as_uuid())
        .bind(limit)
        .fetch_all(conn)
        .await?)
}
