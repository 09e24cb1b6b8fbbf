//! Agents' availability (`available`, `on_call`, `on_break` with a reason, `logged_out`), set by
//! the agent through the API and by calls (answer → on call, hang-up → available). Every change
//! writes `agent.status_changed` (and `agent.paused` for a break) to the outbox in the caller's
//! transaction. An agent without a row is logged out.

use chrono::{DateTime, Utc};
use domain::events::{AgentPaused, AgentStatus, AgentStatusChanged, EventPayload};
use domain::{TenantId, UserId};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AgentStateRow {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub status: String,
    pub pause_reason: Option<String>,
    pub changed_at: DateTime<Utc>,
    /// When the agent last became free; longest-idle routing orders by it.
    pub idle_since: Option<DateTime<Utc>>,
}

impl AgentStateRow {
    /// The status column is constrained by a CHECK, so an unknown value means a broken database.
    pub fn status(&self) -> AgentStatus {
        AgentStatus::parse(&self.status).unwrap_or(AgentStatus::LoggedOut)
    }
}

/// The agent's state row; None means logged out (never changed status).
pub async fn get_state(conn: &mut PgConnection, user: UserId) -> Result<Option<AgentStateRow>> {
    Ok(sqlx::query_as("select * from agent_states where user_id = $1")
        .bind(user.as_uuid())
        .fetch_optional(conn)
        .await?)
}

/// States of several agents at once (for lists); agents without a row are absent.
pub async fn get_states(conn: &mut PgConnection, users: &[Uuid]) -> Result<Vec<AgentStateRow>> {
    Ok(sqlx::query_as("select * from agent_states where user_id = any($1)")
        .bind(users)
        .fetch_all(conn)
        .await?)
}

/// Sets the agent's status (`reason` is the pause reason: required for `on_break`, dropped for
/// the others). Becoming `available` starts the idle time. Emits `agent.status_changed` (and
/// `agent.paused` for `on_break`) only when the status actually changes; a new reason for an
/// ongoing break is stored without events. Used by the API and the B2BUA.
pub async fn set_agent_status(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    status: AgentStatus,
    reason: Option<&str>,
    at: DateTime<Utc>,
) -> Result<AgentStateRow> {
    let idle_since = (status == AgentStatus::Available).then_some(at);
    change_status(conn, tenant, user, status, reason, idle_since, at).await
}

#[derive(sqlx::FromRow)]
struct ChangedRow {
    #[sqlx(flatten)]
    row: AgentStateRow,
    previous_status: Option<String>,
}

/// The one place a status is written. `idle_since` is set only when the status changes to
/// `available` (a repeated `available` keeps the agent's place in the longest-idle order).
pub(crate) async fn change_status(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    status: AgentStatus,
    reason: Option<&str>,
    idle_since: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> Result<AgentStateRow> {
    let reason = if status == AgentStatus::OnBreak { reason } else { None };
    // One statement: `before` locks the agent's row (if any) and reads it as it was; the upsert
    // writes only a change (a new status, or a new reason for the same status) and never creates
    // a row just to say "logged out". Becoming `on_call` ends the agent's offer (the call they
    // were rung for is answered).
    let changed: Option<ChangedRow> = sqlx::query_as(
        "with before as (select status, pause_reason from agent_states where user_id = $1 for update),
         changed as (
             insert into agent_states (user_id, tenant_id, status, pause_reason, changed_at, idle_since)
             select $1::uuid, $2::uuid, $3::text, $4::text, $5::timestamptz, $6::timestamptz
              where not exists (select 1 from before where status = $3 and pause_reason is not distinct from $4)
                and ($3 <> 'logged_out' or exists (select 1 from before))
             on conflict (user_id) do update set
                 status = excluded.status, pause_reason = excluded.pause_reason,
                 changed_at = case when agent_states.status = excluded.status then agent_states.changed_at
                                   else excluded.changed_at end,
                 idle_since = case when agent_states.status = excluded.status then agent_states.idle_since
                                   else coalesce(excluded.idle_since, agent_states.idle_since) end,
                 offer_call_id = case when excluded.status = 'on_call' then null else agent_states.offer_call_id end,
                 offer_until = case when excluded.status = 'on_call' then null else agent_states.offer_until end
             returning *)
         select changed.*, (select status from before) as previous_status from changed",
    )
    .bind(user.as_uuid())
    .bind(tenant.as_uuid())
    .bind(status.as_str())
    .bind(reason)
    .bind(at)
    .bind(idle_since)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(ChangedRow { row, previous_status }) = changed else {
        // Nothing changed: the stored row, or no row (logged out, which needs no row).
        return Ok(get_state(conn, user).await?.unwrap_or(AgentStateRow {
            user_id: user.as_uuid(),
            tenant_id: tenant.as_uuid(),
            status: status.as_str().to_owned(),
            pause_reason: None,
            changed_at: at,
            idle_since: None,
        }));
    };
    let previous = previous_status.as_deref().and_then(AgentStatus::parse).unwrap_or(AgentStatus::LoggedOut);
    if previous == status {
        // Only the reason of an ongoing break changed: no event.
        return Ok(row);
    }
    crate::outbox::enqueue(
        &mut *conn,
        &crate::calls::event(
            tenant,
            at,
            EventPayload::AgentStatusChanged(AgentStatusChanged {
                agent_id: user,
                previous,
                status,
                reason: reason.map(str::to_owned),
            }),
        ),
    )
    .await?;
    if status == AgentStatus::OnBreak {
        crate::outbox::enqueue(
            &mut *conn,
            &crate::calls::event(
                tenant,
                at,
                EventPayload::AgentPaused(AgentPaused {
                    agent_id: user,
                    reason: reason.unwrap_or_default().to_owned(),
                }),
            ),
        )
        .await?;
    }
    Ok(row)
}

/// Moves the tenant's agents who are still `on_call` without an open call back to `available`
/// (after a crash closed their calls). Returns how many.
pub async fn release_stale_on_call(
    conn: &mut PgConnection,
    tenant: TenantId,
    at: DateTime<Utc>,
) -> Result<usize> {
    let stale: Vec<Uuid> = sqlx::query_scalar(
        "select s.user_id from agent_states s
          where s.status = 'on_call'
            and not exists (select 1 from calls c where c.agent_id = s.user_id and c.ended_at is null)",
    )
    .fetch_all(&mut *conn)
    .await?;
    for user in &stale {
        change_status(&mut *conn, tenant, UserId(*user), AgentStatus::Available, None, Some(at), at).await?;
    }
    Ok(stale.len())
}
