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

/// Puts the call in `queue` (state `queued`) and writes `queue.entered` with its 1-based
/// position among the calls waiting there. `NotFound` if the call is not open or the queue does
/// not exist.
///
/// No queue-wide lock: the call's own row is the only one locked, so callers entering one queue
/// never wait for each other. The position counts the calls queued before this one whose entry
/// has committed; two calls entering within the same few milliseconds may both see neither and
/// get the same position (it is information for the caller and the wallboard; routing orders
/// by `last_queued_at`, not by it).
pub async fn enter_queue(
    conn: &mut PgConnection,
    tenant: TenantId,
    call: CallId,
    queue: Uuid,
    at: DateTime<Utc>,
) -> Result<u32> {
    // One statement: the update locks and changes the call row; the count runs on the
    // statement's snapshot, where this call is not queued yet, hence the + 1.
    let (sequence, position): (i64, i64) = sqlx::query_as(
        "with me as (
             update calls set state = 'queued', queue_id = $2, queued_at = coalesce(queued_at, $3),
                    last_queued_at = $3, next_sequence = next_sequence + 1
              where id = $1 and state <> 'ended' and exists (select 1 from queues where id = $2)
             returning next_sequence - 1 as sequence)
         select me.sequence,
                1 + (select count(*) from calls c
                      where c.queue_id = $2 and c.state = 'queued' and c.id <> $1
                        and (c.last_queued_at, c.id) < ($3, $1))
           from me",
    )
    .bind(call.as_uuid())
    .bind(queue)
    .bind(at)
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

#[derive(sqlx::FromRow)]
struct AnsweredRow {
    sequence: i64,
    agent_id: Option<Uuid>,
    queue_id: Option<Uuid>,
    previous_agent_id: Option<Uuid>,
    previous_answered_at: Option<DateTime<Utc>>,
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
    // One statement: `before` locks the open call row and reads it as it was; the update
    // sees that lock as its own.
    let row: AnsweredRow = sqlx::query_as(
        "with before as (select id, agent_id, answered_at from calls where id = $1 and state <> 'ended' for update)
         update calls c set state = 'answered', answered_at = coalesce(c.answered_at, $3),
                agent_id = coalesce($2, c.agent_id), next_sequence = c.next_sequence + 1
           from before where c.id = before.id
         returning c.next_sequence - 1 as sequence, c.agent_id, c.queue_id,
                   before.agent_id as previous_agent_id, before.answered_at as previous_answered_at",
    )
    .bind(call.as_uuid())
    .bind(agent.map(|a| a.as_uuid()))
    .bind(at)
    .fetch_one(&mut *conn)
    .await?;
    let payload = EventPayload::CallAnswered(CallAnswered {
        call_id: call,
        sequence: row.sequence as u64,
        agent_id: row.agent_id.map(UserId),
        queue_id: row.queue_id.map(QueueId),
        answered_at: at,
    });
    crate::outbox::enqueue(&mut *conn, &event(tenant, at, payload)).await?;
    // Answered by someone else than the agent who had it: a transfer, to another agent or
    // (agent `None`) to an external number.
    if let Some(previous) = row.previous_agent_id.map(UserId)
        && row.previous_answered_at.is_some()
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
    // The agent's state, locked, unless another open call still has them.
    let status: Option<String> = sqlx::query_scalar(
        "select status from agent_states
          where user_id = $1
            and not exists (select 1 from calls where agent_id = $1 and ended_at is null and id <> $2)
            for update",
    )
    .bind(agent.as_uuid())
    .bind(call.as_uuid())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(status) = status.as_deref().and_then(AgentStatus::parse) else { return Ok(()) };
    match status {
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

#[derive(sqlx::FromRow)]
struct EndedRow {
    #[sqlx(flatten)]
    row: CallRow,
    previous_state: String,
    previous_queue_id: Option<Uuid>,
    previous_last_queued_at: Option<DateTime<Utc>>,
    previous_next_sequence: i64,
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
    let legs = (!end.legs.is_null()).then_some(&end.legs);
    let timeline = (!end.timeline.is_null()).then_some(&end.timeline);
    // One statement: `before` locks the row and reads it as it was (the abandon needs the
    // state before the end); an ended (or unknown) call updates nothing.
    let ended: Option<EndedRow> = sqlx::query_as(
        "with before as (select id, state, queue_id, last_queued_at, next_sequence from calls where id = $1 for update)
         update calls c set state = 'ended', ended_at = $2, hangup_cause = $3, hangup_side = $4,
                legs = coalesce($5, c.legs),
                timeline = c.timeline || case when $6::jsonb is null then '[]'::jsonb
                                              when jsonb_typeof($6) = 'array' then $6 else jsonb_build_array($6) end,
                recording = coalesce($7, c.recording),
                next_sequence = c.next_sequence
                    + case when before.state = 'queued' and $4 = 'caller' and before.queue_id is not null
                                and before.last_queued_at is not null then 2 else 1 end
           from before where c.id = before.id and before.state <> 'ended'
         returning c.*, before.state as previous_state, before.queue_id as previous_queue_id,
                   before.last_queued_at as previous_last_queued_at, before.next_sequence as previous_next_sequence",
    )
    .bind(call.as_uuid())
    .bind(end.at)
    .bind(end.hangup_cause)
    .bind(end.hangup_side)
    .bind(legs)
    .bind(timeline)
    .bind(end.recording.as_ref())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(ended) = ended else {
        // Ended already (idempotent: the stored CDR), or no such call (`NotFound`).
        return Ok(get_call(conn, call).await?.cdr_json());
    };
    let abandoned = (ended.previous_state == CallState::Queued.as_str()
        && end.hangup_side == HangupSide::Caller.as_str())
    .then_some(ended.previous_queue_id.zip(ended.previous_last_queued_at))
    .flatten();
    let row = ended.row;
    let mut sequence = ended.previous_next_sequence as u64;
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
    // An agent still being rung for the call is free for others.
    sqlx::query("update agent_states set offer_call_id = null, offer_until = null where offer_call_id = $1")
        .bind(call.as_uuid())
        .execute(&mut *conn)
        .await?;
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

/// How many candidates [`queue_candidates`] returns at most.
pub const CANDIDATE_LIMIT: i64 = 64;

/// Who may be offered a call of queue `$1` at `$2`, in longest-idle order: an available agent
/// (or supervisor) of the queue, enabled, with a SIP account and a binding unexpired at `$2`,
/// on no open call and not reserved for another call's offer (a lapsed reservation does not
/// count). Only `agent_states` is in `from`, and every other condition is a scalar subquery,
/// which PostgreSQL runs per row and never turns into a join: the plan is always a walk of
/// `agent_states_idle_idx` in routing order that stops once enough rows qualify — it reads about
/// as many rows as it returns (plus the available members who are not registered), whatever the
/// statistics say (on a fresh database they are often wrong, and a registrations-first plan
/// sorting every member cost 10–200 ms per pick at 2,000 agents).
const PICKABLE: &str = "
    select s.user_id, e.extension, s.idle_since
      from agent_states s,
           lateral (select (select a.extension from sip_accounts a where a.user_id = s.user_id) as extension) e
     where s.status = 'available'
       and (s.offer_until is null or s.offer_until <= $2)
       and e.extension is not null
       and (select true from queue_members m where m.queue_id = $1 and m.user_id = s.user_id)
       and (select not u.disabled and u.role in ('agent', 'supervisor') from users u where u.id = s.user_id)
       and (select true from sip_registrations r where r.user_id = s.user_id and r.expires_at > $2 limit 1)
       and (select true from calls c where c.agent_id = s.user_id and c.ended_at is null limit 1) is null";

/// The members of `queue` who can take a call at `now` — available, enabled, registered (a
/// binding unexpired at `now`), on no open call and not reserved by another call's offer —
/// longest idle first (never idle, i.e. no `idle_since`, before all), at most
/// [`CANDIDATE_LIMIT`]. Reads only; [`claim_agent`] is the pick that reserves.
pub async fn queue_candidates(
    conn: &mut PgConnection,
    _tenant: TenantId,
    queue: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<Candidate>> {
    let sql = format!("{PICKABLE} order by s.idle_since asc nulls first, s.changed_at, s.user_id limit $3");
    let rows: Vec<(Uuid, String, Option<DateTime<Utc>>)> =
        sqlx::query_as(&sql).bind(queue).bind(now).bind(CANDIDATE_LIMIT).fetch_all(conn).await?;
    Ok(rows
        .into_iter()
        .map(|(user_id, extension, idle_since)| Candidate { user_id: UserId(user_id), extension, idle_since })
        .collect())
}

/// Picks and reserves the longest-idle member of `queue` who can take `call` now (see
/// [`queue_candidates`]), skipping the agents in `exclude` (those this call already tried in
/// this round): their state row gets `offer_call_id = call` until `until`, after which the
/// reservation lapses by itself (a node that died while ringing). `None`: nobody.
///
/// Correct with any number of pickers on any number of nodes: the pick locks the agent's
/// state row with `for update skip locked`, so a concurrent pick takes the next agent instead
/// of waiting, and the reservation it writes in the same statement makes every later pick
/// skip the agent until [`release_offer`], the answer (`on_call`) or [`end_call`] clears it.
/// Nothing queue-wide is locked.
pub async fn claim_agent(
    conn: &mut PgConnection,
    _tenant: TenantId,
    queue: Uuid,
    call: CallId,
    exclude: &[UserId],
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Option<Candidate>> {
    let exclude: Vec<Uuid> = exclude.iter().map(|u| u.as_uuid()).collect();
    let sql = format!(
        "with pick as ({PICKABLE} and s.user_id <> all($3)
                        order by s.idle_since asc nulls first, s.changed_at, s.user_id
                        limit 1 for update of s skip locked)
         update agent_states s set offer_call_id = $4, offer_until = $5
           from pick where s.user_id = pick.user_id
         returning s.user_id, pick.extension, s.idle_since"
    );
    let row: Option<(Uuid, String, Option<DateTime<Utc>>)> = sqlx::query_as(&sql)
        .bind(queue)
        .bind(now)
        .bind(&exclude)
        .bind(call.as_uuid())
        .bind(until)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|(user_id, extension, idle_since)| Candidate {
        user_id: UserId(user_id),
        extension,
        idle_since,
    }))
}

/// Ends `agent`'s reservation for `call` (the offer failed or was withdrawn); a reservation
/// another call holds by now is left alone. `false` if there was none.
pub async fn release_offer(conn: &mut PgConnection, call: CallId, agent: UserId) -> Result<bool> {
    let done = sqlx::query(
        "update agent_states set offer_call_id = null, offer_until = null where user_id = $1 and offer_call_id = $2",
    )
    .bind(agent.as_uuid())
    .bind(call.as_uuid())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
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
