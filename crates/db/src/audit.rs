//! The audit log: who did what to which resource, with before/after, source IP and time.

use chrono::{DateTime, Utc};
use domain::{AuditId, TenantId};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;
use crate::page::{Cursor, Page};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AuditRow {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub at: DateTime<Utc>,
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub actor_label: Option<String>,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
}

/// Who acted: a user, an API key, SIVO itself, or the command line.
#[derive(Clone, Debug)]
pub struct Actor {
    pub kind: &'static str,
    pub id: Option<Uuid>,
    pub label: Option<String>,
}

impl Actor {
    pub fn user(id: Uuid, email: &str) -> Self {
        Self { kind: "user", id: Some(id), label: Some(email.to_owned()) }
    }
    pub fn api_key(id: Uuid, name: &str) -> Self {
        Self { kind: "api_key", id: Some(id), label: Some(name.to_owned()) }
    }
    pub fn system() -> Self {
        Self { kind: "system", id: None, label: None }
    }
    pub fn cli() -> Self {
        Self { kind: "cli", id: None, label: std::env::var("USER").ok() }
    }
    pub fn anonymous() -> Self {
        Self { kind: "anonymous", id: None, label: None }
    }
}

#[derive(Clone, Debug)]
pub struct NewAudit {
    pub id: AuditId,
    pub tenant_id: Option<TenantId>,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
}

pub async fn insert(conn: &mut PgConnection, a: &NewAudit) -> Result<()> {
    sqlx::query(
        "insert into audit_log (id, tenant_id, at, actor_kind, actor_id, actor_label, action, resource_type,
                                resource_id, before, after, source_ip, request_id)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(a.id.as_uuid())
    .bind(a.tenant_id.map(|t| t.as_uuid()))
    .bind(a.at)
    .bind(a.actor.kind)
    .bind(a.actor.id)
    .bind(a.actor.label.as_deref())
    .bind(&a.action)
    .bind(&a.resource_type)
    .bind(a.resource_id.as_deref())
    .bind(a.before.as_ref())
    .bind(a.after.as_ref())
    .bind(a.source_ip.as_deref())
    .bind(a.request_id.as_deref())
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// The acting user (or API key) id.
    pub actor_id: Option<Uuid>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    /// Matches an action exactly or any dot-separated segment of it, so `event=transfer`
    /// finds `call.transfer.failed` and `login` finds `auth.login.failed`.
    pub event: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// Newest first. `tenant` None lists platform-level entries (superadmin, platform transaction).
pub async fn list(
    conn: &mut PgConnection,
    tenant: Option<TenantId>,
    f: &AuditFilter,
    after: Option<Cursor>,
    limit: usize,
) -> Result<Page<AuditRow>> {
    let rows: Vec<AuditRow> = sqlx::query_as(
        "select * from audit_log
         where tenant_id is not distinct from $1
           and ($2::uuid is null or actor_id = $2)
           and ($3::text is null or resource_type = $3)
           and ($4::text is null or resource_id = $4)
           and ($5::text is null or action = $5 or ('.' || action || '.') like ('%.' || $5 || '.%'))
           and ($6::timestamptz is null or at >= $6)
           and ($7::timestamptz is null or at < $7)
           and ($8::timestamptz is null or (at, id) < ($8, $9))
         order by at desc, id desc limit $10",
    )
    .bind(tenant.map(|t| t.as_uuid()))
    .bind(f.actor_id)
    .bind(f.resource_type.as_deref())
    .bind(f.resource_id.as_deref())
    .bind(f.event.as_deref().map(escape_like))
    .bind(f.from)
    .bind(f.to)
    .bind(after.map(|c| c.at))
    .bind(after.map(|c| c.id))
    .bind(limit as i64 + 1)
    .fetch_all(conn)
    .await?;
    Ok(Page::from_overfetch(rows, limit, |r| Cursor { at: r.at, id: r.id }))
}

/// `%` and `_` in a filter are literal characters, not wildcards.
fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}
