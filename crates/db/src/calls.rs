//! Calls: the runtime record the B2BUA keeps while a call lives, which becomes the CDR when it
//! ends. Every state change writes its event (`call.created`, `queue.entered`, `call.answered`,
//! `call.transferred`, `queue.abandoned`, `call.ended`, and the agents' status changes) to the
//! outbox in the caller's transaction, with the call's next `sequence` taken from the row.
//!
//! All functions take the caller's connection: the caller owns the transaction, so a change and
//! its events commit (or vanish) together.

use chrono::{DateTime, Utc};
use domain::calls::{CallDurations, CallState, Cdr, HangupSide};
use domain::events::{
    AgentStatus, CallAnswered, CallCreated, CallDirection, CallEnded, CallTransferred, Event, EventPayload,
    QueueAbandoned, QueueEntered, TransferKind,
};
use domain::{CallId, EventId, QueueId, TenantId, UserId};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::page::{Cursor, Page};
use crate::{DbError, Result};

pub use crate::agent_states::set_agent_status;
pub use crate::queues::get_queue;

/// A catalog event with a fresh, time-ordered id.
pub(crate) fn event(tenant: TenantId, at: DateTime<Utc>, payload: EventPayload) -> Event {
    Event::new(EventId(Uuid::now_v7()), tenant, at, payload)
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct CallRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub direction: String,
    pub from_number: String,
    pub to_number: String,
    pub did: Option<String>,
    pub did_id: Option<Uuid>,
    pub trunk_id: Option<Uuid>,
    pub queue_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub queued_at: Option<DateTime<Utc>>,
    pub last_queued_at: Option<DateTime<Utc>>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub hangup_cause: Option<String>,
    pub hangup_side: Option<String>,
    pub next_sequence: i64,
    pub legs: serde_json::Value,
    pub transfers: serde_json::Value,
    pub timeline: serde_json::Value,
    pub recording: Option<serde_json::Value>,
}

impl CallRow {
    pub fn call_id(&self) -> CallId {
        CallId(self.id)
    }

    /// Columns are constrained by CHECKs, so unknown values mean a broken database.
    pub fn state(&self) -> CallState {
        CallState::parse(&self.state).unwrap_or(CallState::Ended)
    }

    pub fn direction(&self) -> CallDirection {
        CallDirection::parse(&self.direction).unwrap_or(CallDirection::Inbound)
    }

    /// Durations up to the end, or up to `now` while the call lasts.
    pub fn durations(&self, now: DateTime<Utc>) -> CallDurations {
        CallDurations::compute(
            self.created_at,
            self.queued_at,
            self.answered_at,
            self.ended_at.unwrap_or(now),
        )
    }

    /// The CDR; durations of a call in progress run to `now`.
    pub fn cdr_at(&self, now: DateTime<Utc>) -> Cdr {
        let d = self.durations(now);
        Cdr {
            id: self.call_id(),
            direction: self.direction(),
            from: self.from_number.clone(),
            to: self.to_number.clone(),
            did: self.did.clone(),
            queue_id: self.queue_id.map(QueueId),
            agent_id: self.agent_id.map(UserId),
            created_at: self.created_at,
            queued_at: self.queued_at,
            answered_at: self.answered_at,
            ended_at: self.ended_at,
            duration_ms: d.duration_ms,
            talk_ms: d.talk_ms,
            wait_ms: d.wait_ms,
            hangup_cause: self.hangup_cause.clone(),
            hangup_side: self.hangup_side.as_deref().and_then(HangupSide::parse),
            legs: self.legs.clone(),
            transfers: self.transfers.clone(),
            recording: self.recording.clone(),
            timeline: self.timeline.clone(),
        }
    }

    /// The CDR of an ended call (for one in progress, durations run to its creation).
    pub fn cdr(&self) -> Cdr {
        self.cdr_at(self.ended_at.unwrap_or(self.created_at))
    }

    /// The CDR as JSON: exactly `GET /api/v1/cdrs/{id}` and `call.ended`'s `data.cdr`.
    pub fn cdr_json(&self) -> serde_json::Value {
        serde_json::to_value(self.cdr()).expect("a CDR serializes: plain data with string keys")
    }
}

pub struct NewCall<'a> {
    pub id: CallId,
    pub direction: CallDirection,
    pub from: &'a str,
    pub to: &'a str,
    pub did: Option<&'a str>,
    pub did_id: Option<Uuid>,
    pub trunk_id: Option<Uuid>,
    pub at: DateTime<Utc>,
}

/// Records a new call (state `ringing`) and writes `call.created` (sequence 1).
pub async fn create_call(conn: &mut PgConnection, tenant: TenantId, call: &NewCall<'_>) -> Result<()> {
    sqlx::query(
        "insert into calls (id, tenant_id, direction, from_number, to_number, did, did_id, trunk_id, state,
                            created_at, next_sequence)
         values ($1, $2, $3, $4, $5, $6, $7, $8, 'ringing', $9, 2)",
    )
    .bind(call.id.as_uuid())
    .bind(tenant.as_uuid())
    .bind(call.direction.as_str())
    .bind(call.from)
    .bind(call.to)
    .bind(call.did)
    .bind(call.did_id)
    .bind(call.trunk_id)
    .bind(call.at)
    .execute(&mut *conn)
    .await?;
    let payload = EventPayload::CallCreated(CallCreated {
        call_id: call.id,
        sequence: 1,
        direction: call.direction,
        from: call.from.to_owned(),
        to: call.to.to_owned(),
        did: call.did.map(str::to_owned),
    });
    crate::outbox::enqueue(conn, &event(tenant, call.at, payload)).await
}

/// Locks the call row for the rest of the transaction.
async fn lock_call(conn: &mut PgConnection, call: CallId) -> Result<CallRow> {
    Ok(sqlx::query_as("select * from calls where id = $1 for update")
        .bind(call.as_uuid())
        .fetch_one(conn)
        .await?)
}

/// Locks an open call; `NotFound` if it does not exist (in this tenant) or has ended.
async fn lock_open_call(conn: &mut PgConnection, call: CallId) -> Result<CallRow> {
    let row = lock_call(conn, call).await?;
    if row.state() == CallState::Ended {
        return Err(DbError::NotFound);
    }
    Ok(row)
}

/// Puts the call in `queue` (state `queued`) and writes `queue.entered` with its 1-based
/// position among the calls waiting there. `NotFound` if the call is not open or the queue does
/// not exist.
pub async fn enter_queue(
    conn: &mut PgConnection,
    tenant: TenantId,
    call: CallId,
    queue: Uuid,
    at: DateTime<Utc>,
) -> Result<u32> {
    // Entries into one queue take turns, so concurrent callers get distinct positions.
    sqlx::query_scalar::<_, Uuid>("select id from queues where id = $1 for no key update")
        .bind(queue)
        .fetch_one(&mut *conn)
        .await?;
    lock_open_call(&mut *conn, call).await?;
    let sequence: i64 = sqlx::query_scalar(
        "update calls set state = 'queued', queue_id = $2, queued_at = coalesce(queued_at, $3), last_queued_at = $3,
                next_sequence = next_sequence + 1
          where id = $1 returning next_sequence - 1",
    )
    .bind(call.as_uuid())
    .bind(queue)
    .bind(at)
    .fetch_one(&mut *conn)
    .await?;
    let position: i64 = sqlx::query_scalar(
        "select count(*) from calls c, calls me
          where me.id = $2 and c.queue_id = $1 and c.state = 'queued'
            and (c.last_queued_at, c.id) <= (me.last_queued_at, me.id)",
    )
    .bind(queue)
    .bind(call.as_uuid())
    .fetch_one(&mut *conn)
    .await?;
    let position = u32::try_from(position).unwrap_or(u32::MAX);
    let payload = EventPayload::QueueEntered(QueueEntered {
        call_id: call,
        sequence: sequence as u64,
        queue_id: QueueId(queue),
        position,
    });
    crate::outbox::enqueue(conn, &event(tenant, at, payload)).await?;
    Ok(position)
}

/// The call is answered (by `agent`, or by the far end of an outbound call): state `answered`,
/// `answered_at` (the first answer is kept), `agent_id`; writes `call.answered`. The agent goes
/// `on_call`; a different agent who had the call before (a transfer, also to an external
/// number: `agent` `None`) becomes free again.
pub async fn answer_call(
    conn: &mut PgConnection,
    tenant: TenantId,
    call: CallId,
    agent: Option<UserId>,
    at: DateTime<Utc>,
) -> Result<()> {
    let before = lock_open_call(&mut *conn, call).await?;
    let row: CallRow = sqlx::query_as(
        "update calls set state = 'answered', answered_at = coalesce(answered_at, $3), agent_id = coalesce($2, agent_id),
                next_sequence = next_sequence + 1
          where id = $1 returning *",
    )
    .bind(call.as_uuid())
    .bind(agent.map(|a| a.as_uuid()))
    .bind(at)
    .fetch_one(&mut *conn)
    .await?;
    let payload = EventPayload::CallAnswered(CallAnswered {
        call_id: call,
        sequence: (row.next_sequence - 1) as u64,
        agent_id: row.agent_id.map(UserId),
        queue_id: row.queue_id.map(QueueId),
        answered_at: at,
    });
    crate::outbox::enqueue(&mut *conn, &event(tenant, at, payload)).await?;
    // Answered by someone else than the agent who had it: a transfer, to another agent or
    // (agent `None`) to an external number.
    if let Some(previous) = before.agent_id.map(UserId)
        && before.answered_at.is_some()
        && agent != Some(previous)
    {
        release_agent(&mut *conn, tenant, previous, call, at).await?;
    }
    if let Some(agent) = agent {
        crate::agent_states::change_status(conn, tenant, agent, AgentStatus::OnCall, None, None, at).await?;
    }
    Ok(())
}

/// After `agent` left `call`: if they have no other open call, `on_call` becomes `available`
/// and their idle time starts now (an agent already available just restarts the idle time; a
/// break or logout chosen during the call stays).
async fn release_agent(
    conn: &mut PgConnection,
    tenant: TenantId,
    agent: UserId,
    call: CallId,
    at: DateTime<Utc>,
) -> Result<()> {
    let busy: bool = sqlx::query_scalar(
        "select exists (select 1 from calls where agent_id = $1 and ended_at is null and id <> $2)",
    )
    .bind(agent.as_uuid())
    .bind(call.as_uuid())
    .fetch_one(&mut *conn)
    .await?;
    if busy {
        return Ok(());
    }
    let Some(state) = crate::agent_states::get_state(&mut *conn, agent).await? else { return Ok(()) };
    match state.status() {
        AgentStatus::OnCall => {
            crate::agent_states::change_status(
                conn,
                tenant,
                agent,
                AgentStatus::Available,
                None,
                Some(at),
                at,
            )
            .await?;
        }
        AgentStatus::Available => {
            sqlx::query("update agent_states set idle_since = $2 where user_id = $1")
                .bind(agent.as_uuid())
                .bind(at)
                .execute(conn)
                .await?;
        }
        AgentStatus::OnBreak | AgentStatus::LoggedOut => {}
    }
    Ok(())
}

/// Appends to the call's "Technical" timeline: an array appends its elements, anything else
/// is appended as one entry. No event.
pub async fn add_timeline(
    conn: &mut PgConnection,
    _tenant: TenantId,
    call: CallId,
    entries: &serde_json::Value,
) -> Result<()> {
    let done = sqlx::query(
        "update calls set timeline = timeline || case when jsonb_typeof($2) = 'array' then $2 else jsonb_build_array($2) end
          where id = $1",
    )
    .bind(call.as_uuid())
    .bind(entries)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// The `call.transferred` fields that are not the call's own.
pub struct TransferEvent<'a> {
    pub kind: TransferKind,
    pub from_agent_id: Option<UserId>,
    /// An extension, a queue or an external number.
    pub destination: &'a str,
    pub succeeded: bool,
    pub failure_reason: Option<&'a str>,
    pub at: DateTime<Utc>,
}

/// Appends `transfer` (one JSON object, kept as given) to the call's transfer history and
/// writes `call.transferred`.
pub async fn add_transfer(
    conn: &mut PgConnection,
    tenant: TenantId,
    call: CallId,
    transfer: &serde_json::Value,
    event_fields: &TransferEvent<'_>,
) -> Result<()> {
    let sequence: i64 = sqlx::query_scalar(
        "update calls set transfers = transfers || jsonb_build_array($2::jsonb), next_sequence = next_sequence + 1
          where id = $1 returning next_sequence - 1",
    )
    .bind(call.as_uuid())
    .bind(transfer)
    .fetch_one(&mut *conn)
    .await?;
    let payload = EventPayload::CallTransferred(CallTransferred {
        call_id: call,
        sequence: sequence as u64,
        kind: event_fields.kind,
        from_agent_id: event_fields.from_agent_id,
        destination: event_fields.destination.to_owned(),
        succeeded: event_fields.succeeded,
        failure_reason: event_fields.failure_reason.map(str::to_owned),
    });
    crate::outbox::enqueue(conn, &event(tenant, event_fields.at, payload)).await
}

/// Replaces the call's legs while it lasts (codecs negotiated, a B-leg added). No event.
pub async fn set_legs(conn: &mut PgConnection, call: CallId, legs: &serde_json::Value) -> Result<()> {
    let done = sqlx::query("update calls set legs = $2 where id = $1")
        .bind(call.as_uuid())
        .bind(legs)
        .execute(conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// Stores the recording's description (also after the call ended: the file is finished last).
/// No event: `call.recorded` carries a signed URL, which the caller makes.
pub async fn set_recording(
    conn: &mut PgConnection,
    call: CallId,
    recording: &serde_json::Value,
) -> Result<()> {
    let done = sqlx::query("update calls set recording = $2 where id = $1")
        .bind(call.as_uuid())
        .bind(recording)
        .execute(conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// How a call ended.
pub struct CallEnd<'a> {
    pub at: DateTime<Utc>,
    /// `normal_clearing`, `cancelled`, `no_answer`, `max_wait`, `system_restart`…
    pub hangup_cause: &'a str,
    /// `caller`, `agent` or `system`.
    pub hangup_side: &'a str,
    /// The call's legs, replacing what was stored (JSON `null` keeps them).
    pub legs: serde_json::Value,
    /// Appended to the timeline (an array appends its elements; `null` appends nothing).
    pub timeline: serde_json::Value,
    pub recording: Option<serde_json::Value>,
}

/// Ends the call and returns its CDR JSON (exactly `GET /api/v1/cdrs/{id}`). Writes
/// `queue.abandoned` when the caller hung up while waiting in a queue (`waited_ms` since the
/// latest queue entry), then `call.ended` with the full CDR; the call's agent becomes free
/// (`on_call` → `available`, idle since `at`). Idempotent: ending an ended call changes nothing,
/// writes nothing, and returns the stored CDR.
pub async fn end_call(
    conn: &mut PgConnection,
    tenant: TenantId,
    call: CallId,
    end: &CallEnd<'_>,
) -> Result<serde_json::Value> {
    let before = lock_call(&mut *conn, call).await?;
    if before.state() == CallState::Ended {
        return Ok(before.cdr_json());
    }
    let abandoned = (before.state() == CallState::Queued && end.hangup_side == HangupSide::Caller.as_str())
        .then_some(before.queue_id.zip(before.last_queued_at))
        .flatten();
    let events = if abandoned.is_some() { 2 } else { 1 };
    let legs = (!end.legs.is_null()).then_some(&end.legs);
    let timeline = (!end.timeline.is_null()).then_some(&end.timeline);
    let row: CallRow = sqlx::query_as(
        "update calls set state = 'ended', ended_at = $2, hangup_cause = $3, hangup_side = $4,
                legs = coalesce($5, legs),
                timeline = timeline || case when $6::jsonb is null then '[]'::jsonb
                                            when jsonb_typeof($6) = 'array' then $6 else jsonb_build_array($6) end,
                recording = coalesce($7, recording),
                next_sequence = next_sequence + $8
          where id = $1 returning *",
    )
    .bind(call.as_uuid())
    .bind(end.at)
    .bind(end.hangup_cause)
    .bind(end.hangup_side)
    .bind(legs)
    .bind(timeline)
    .bind(end.recording.as_ref())
    .bind(events)
    .fetch_one(&mut *conn)
    .await?;
    let mut sequence = before.next_sequence as u64;
    if let Some((queue, entered)) = abandoned {
        let payload = EventPayload::QueueAbandoned(QueueAbandoned {
            call_id: call,
            sequence,
            queue_id: QueueId(queue),
            waited_ms: u64::try_from((end.at - entered).num_milliseconds()).unwrap_or(0),
        });
        crate::outbox::enqueue(&mut *conn, &event(tenant, end.at, payload)).await?;
        sequence += 1;
    }
    let cdr = row.cdr_json();
    let payload = EventPayload::CallEnded(CallEnded {
        call_id: call,
        sequence,
        hangup_cause: end.hangup_cause.to_owned(),
        hangup_side: end.hangup_side.to_owned(),
        duration_ms: row.cdr().duration_ms,
        cdr: cdr.clone(),
    });
    crate::outbox::enqueue(&mut *conn, &event(tenant, end.at, payload)).await?;
    if let Some(agent) = row.agent_id.map(UserId) {
        release_agent(conn, tenant, agent, call, end.at).await?;
    }
    Ok(cdr)
}

/// A queue member who can take a call now.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Candidate {
    pub user_id: UserId,
    pub extension: String,
    pub idle_since: Option<DateTime<Utc>>,
}

/// Members of `queue` who are `available`, enabled, registered (a binding unexpired at `now`)
/// and on no open call, longest idle first (never idle, i.e. no `idle_since`, before all).
pub async fn queue_candidates(
    conn: &mut PgConnection,
    _tenant: TenantId,
    queue: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<Candidate>> {
    let rows: Vec<(Uuid, String, Option<DateTime<Utc>>)> = sqlx::query_as(
        "select m.user_id, a.extension, s.idle_since
           from queue_members m
           join users u on u.id = m.user_id and not u.disabled and u.role in ('agent', 'supervisor')
           join agent_states s on s.user_id = m.user_id and s.status = 'available'
           join sip_accounts a on a.user_id = m.user_id
          where m.queue_id = $1
            and exists (select 1 from sip_registrations r where r.user_id = m.user_id and r.expires_at > $2)
            and not exists (select 1 from calls c where c.agent_id = m.user_id and c.ended_at is null)
          order by s.idle_since asc nulls first, s.changed_at, m.user_id",
    )
    .bind(queue)
    .bind(now)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(user_id, extension, idle_since)| Candidate { user_id: UserId(user_id), extension, idle_since })
        .collect())
}

/// The tenant's calls that have not ended, oldest first. On startup, the B2BUA ends those its
/// node left open (`end_call` with hang-up cause `system_restart`).
pub async fn calls_in_progress(conn: &mut PgConnection, tenant: TenantId) -> Result<Vec<CallRow>> {
    Ok(sqlx::query_as(
        "select * from calls where tenant_id = $1 and ended_at is null order by created_at, id",
    )
    .bind(tenant.as_uuid())
    .fetch_all(conn)
    .await?)
}

/// One call of the transaction's tenant, in progress or ended.
pub async fn get_call(conn: &mut PgConnection, id: CallId) -> Result<CallRow> {
    Ok(sqlx::query_as("select * from calls where id = $1").bind(id.as_uuid()).fetch_one(conn).await?)
}

/// One ended call (a CDR); `NotFound` while it is in progress.
pub async fn get_cdr(conn: &mut PgConnection, id: CallId) -> Result<CallRow> {
    Ok(sqlx::query_as("select * from calls where id = $1 and ended_at is not null")
        .bind(id.as_uuid())
        .fetch_one(conn)
        .await?)
}

/// CDR search; every field narrows the result.
#[derive(Clone, Debug, Default)]
pub struct CdrFilter<'a> {
    /// `created_at >= from`.
    pub from: Option<DateTime<Utc>>,
    /// `created_at < to`.
    pub to: Option<DateTime<Utc>>,
    pub direction: Option<CallDirection>,
    pub agent_id: Option<Uuid>,
    pub queue_id: Option<Uuid>,
    /// The DID, exactly.
    pub did: Option<&'a str>,
    /// Contained in the caller's or the dialled number.
    pub number: Option<&'a str>,
    pub hangup_cause: Option<&'a str>,
}

/// Ended calls, newest first.
pub async fn list_cdrs(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: &CdrFilter<'_>,
    after: Option<Cursor>,
    limit: usize,
) -> Result<Page<CallRow>> {
    let rows: Vec<CallRow> = sqlx::query_as(
        "select * from calls
          where tenant_id = $1 and ended_at is not null
            and ($2::timestamptz is null or (created_at, id) < ($2, $3))
            and ($4::timestamptz is null or created_at >= $4)
            and ($5::timestamptz is null or created_at < $5)
            and ($6::text is null or direction = $6)
            and ($7::uuid is null or agent_id = $7)
            and ($8::uuid is null or queue_id = $8)
            and ($9::text is null or did = $9)
            and ($10::text is null or strpos(from_number, $10) > 0 or strpos(to_number, $10) > 0)
            and ($11::text is null or hangup_cause = $11)
          order by created_at desc, id desc limit $12",
    )
    .bind(tenant.as_uuid())
    .bind(after.map(|c| c.at))
    .bind(after.map(|c| c.id))
    .bind(filter.from)
    .bind(filter.to)
    .bind(filter.direction.map(CallDirection::as_str))
    .bind(filter.agent_id)
    .bind(filter.queue_id)
    .bind(filter.did)
    .bind(filter.number)
    .bind(filter.hangup_cause)
    .bind(limit as i64 + 1)
    .fetch_all(conn)
    .await?;
    Ok(Page::from_overfetch(rows, limit, |r| Cursor { at: r.created_at, id: r.id }))
}

/// Writes `call.recorded` for a finished recording: the pre-signed download URL (made by the
/// caller, which holds the signing key) and how long the audio is.
pub async fn recorded(
    conn: &mut PgConnection,
    tenant: TenantId,
    call: CallId,
    recording_url: &str,
    url_expires_at: DateTime<Utc>,
    duration_ms: u64,
    at: DateTime<Utc>,
) -> Result<()> {
    let sequence: i64 = sqlx::query_scalar(
        "update calls set next_sequence = next_sequence + 1 where id = $1 returning next_sequence - 1",
    )
    .bind(call.as_uuid())
    .fetch_one(&mut *conn)
    .await?;
    let payload = EventPayload::CallRecorded(domain::events::CallRecorded {
        call_id: call,
        sequence: sequence as u64,
        recording_url: recording_url.to_owned(),
        url_expires_at,
        duration_ms,
        channels: 2,
    });
    crate::outbox::enqueue(conn, &event(tenant, at, payload)).await
}
