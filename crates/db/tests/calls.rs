//! The B2BUA's database functions against a real PostgreSQL: a call's life (created, queued,
//! answered, transferred, ended) with its events in the caller's transaction and per-call
//! sequences, idempotent ends, abandons, agents' statuses, and the longest-idle candidate list.

use chrono::{DateTime, Duration, Utc};
use db::calls::{self, CallEnd, NewCall};
use db::{agent_states, queues, sip, tenants, users};
use domain::events::{AgentStatus, CallDirection, Event, EventPayload, TransferKind};
use domain::{CallId, Role, TenantId, UserId};
use serde_json::json;
use test_support::TestDb;
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    // Whole milliseconds: PostgreSQL keeps microseconds, and the tests compare round trips.
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap()
}

async fn tenant(t: &TestDb, slug: &str) -> TenantId {
    let id = TenantId(Uuid::new_v4());
    let mut tx = t.db.platform_tx().await.unwrap();
    tenants::create(&mut tx, tenants::NewTenant { id, slug, name: slug, plan: "free", now: Utc::now() })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

/// An agent with a SIP account; `registered_until` adds a binding.
async fn agent(t: &TestDb, tenant: TenantId, name: &str, registered_until: Option<DateTime<Utc>>) -> UserId {
    let now = Utc::now();
    let user = UserId(Uuid::new_v4());
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    users::create(
        &mut tx,
        users::NewUser {
            id: user,
            tenant_id: Some(tenant),
            email: &format!("{name}@{tenant}.example.com"),
            display_name: name,
            role: Role::Agent,
            password_hash: "x",
            now,
        },
    )
    .await
    .unwrap();
    sip::ensure_account(&mut tx, tenant, user, "v1:x", now).await.unwrap();
    if let Some(until) = registered_until {
        sip::upsert_binding(
            &mut tx,
            &sip::NewBinding {
                tenant,
                user,
                contact: &format!("sip:{name}@192.0.2.7:5060"),
                expires_at: until,
                call_id: "c",
                cseq: 1,
                q: None,
                transport: "udp",
                source: "192.0.2.7:5060",
                node_id: "n",
                connection_id: None,
                user_agent: None,
                now,
            },
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    user
}

async fn queue(t: &TestDb, tenant: TenantId, name: &str, members: &[UserId]) -> Uuid {
    let id = Uuid::new_v4();
    let now = Utc::now();
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    queues::create_queue(
        &mut tx,
        id,
        tenant,
        &queues::QueueFields {
            name,
            ring_timeout_secs: 20,
            max_wait_secs: 300,
            overflow_type: "none",
            overflow_id: None,
            music_on_hold: None,
            record_calls: false,
        },
        now,
    )
    .await
    .unwrap();
    for m in members {
        assert!(queues::add_member(&mut tx, tenant, id, *m, now).await.unwrap());
    }
    tx.commit().await.unwrap();
    id
}

async fn set_status(t: &TestDb, tenant: TenantId, user: UserId, status: AgentStatus, at: DateTime<Utc>) {
    let reason = (status == AgentStatus::OnBreak).then_some("lunch");
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    agent_states::set_agent_status(&mut tx, tenant, user, status, reason, at).await.unwrap();
    tx.commit().await.unwrap();
}

fn new_call(id: CallId, at: DateTime<Utc>) -> NewCall<'static> {
    NewCall {
        id,
        direction: CallDirection::Inbound,
        from: "+15550100001",
        to: "+4930123456",
        did: Some("+4930123456"),
        did_id: None,
        trunk_id: None,
        at,
    }
}

/// All events of the tenant, oldest first.
async fn events(t: &TestDb, tenant: TenantId) -> Vec<Event> {
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    let rows = db::outbox::list_recent(&mut tx, tenant, 1000).await.unwrap();
    let mut events: Vec<Event> =
        rows.into_iter().rev().map(|r| serde_json::from_value(r.payload).unwrap()).collect();
    // Equal timestamps keep insertion order: ids are time-ordered (v7).
    events.sort_by_key(|e| (e.created_at, e.id.as_uuid()));
    events
}

fn call_events(events: &[Event], call: CallId) -> Vec<(String, u64)> {
    events
        .iter()
        .filter_map(|e| {
            e.call_sequence().filter(|(c, _)| *c == call).map(|(_, s)| (e.event_type().to_string(), s))
        })
        .collect()
}

fn status_changes(events: &[Event], user: UserId) -> Vec<(AgentStatus, AgentStatus)> {
    events
        .iter()
        .filter_map(|e| match &e.payload {
            EventPayload::AgentStatusChanged(d) if d.agent_id == user => Some((d.previous, d.status)),
            _ => None,
        })
        .collect()
}

fn end(at: DateTime<Utc>, side: &'static str) -> CallEnd<'static> {
    CallEnd {
        at,
        hangup_cause: "normal_clearing",
        hangup_side: side,
        legs: json!([{"leg": "a", "codec": "PCMU"}, {"leg": "b", "codec": "PCMU"}]),
        timeline: json!([{"at": at, "sip": "BYE"}]),
        recording: None,
    }
}

#[tokio::test]
async fn a_queued_call_is_answered_and_ended_with_ordered_events_and_a_cdr() {
    let t = TestDb::new().await;
    let tenant = tenant(&t, "life").await;
    let at = t0();
    let alice = agent(&t, tenant, "alice", Some(at + Duration::hours(1))).await;
    let q = queue(&t, tenant, "sales", &[alice]).await;
    set_status(&t, tenant, alice, AgentStatus::Available, at).await;

    let first = CallId(Uuid::now_v7());
    let second = CallId(Uuid::now_v7());
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    calls::create_call(&mut tx, tenant, &new_call(first, at)).await.unwrap();
    calls::create_call(&mut tx, tenant, &new_call(second, at + Duration::seconds(1))).await.unwrap();
    assert_eq!(calls::enter_queue(&mut tx, tenant, first, q, at + Duration::seconds(2)).await.unwrap(), 1);
    assert_eq!(calls::enter_queue(&mut tx, tenant, second, q, at + Duration::seconds(3)).await.unwrap(), 2);
    tx.commit().await.unwrap();

    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    let waiting = calls::calls_in_progress(&mut tx, tenant).await.unwrap();
    assert_eq!(waiting.iter().map(|c| c.call_id()).collect::<Vec<_>>(), [first, second]);
    assert!(waiting.iter().all(|c| c.state == "queued" && c.queue_id == Some(q)));
    calls::answer_call(&mut tx, tenant, first, Some(alice), at + Duration::seconds(12)).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    let state = agent_states::get_state(&mut tx, alice).await.unwrap().unwrap();
    assert_eq!(state.status(), AgentStatus::OnCall);
    // Busy agents are no candidates.
    assert!(calls::queue_candidates(&mut tx, tenant, q, at).await.unwrap().is_empty());
    calls::add_timeline(&mut tx, tenant, first, &json!([{"sip": "200 OK"}])).await.unwrap();
    calls::add_timeline(&mut tx, tenant, first, &json!({"rtp": {"packets": 10}})).await.unwrap();
    let ended_at = at + Duration::seconds(72);
    let cdr = calls::end_call(&mut tx, tenant, first, &end(ended_at, "agent")).await.unwrap();
    tx.commit().await.unwrap();

    assert_eq!(cdr["id"], first.to_string());
    assert_eq!(cdr["direction"], "inbound");
    assert_eq!(cdr["from"], "+15550100001");
    assert_eq!(cdr["did"], "+4930123456");
    assert_eq!(cdr["queue_id"], q.to_string());
    assert_eq!(cdr["agent_id"], alice.to_string());
    assert_eq!(cdr["duration_ms"], 72_000);
    assert_eq!(cdr["talk_ms"], 60_000);
    assert_eq!(cdr["wait_ms"], 10_000);
    assert_eq!(cdr["hangup_cause"], "normal_clearing");
    assert_eq!(cdr["hangup_side"], "agent");
    assert_eq!(cdr["legs"][1]["leg"], "b");
    assert_eq!(cdr["timeline"].as_array().unwrap().len(), 3, "{cdr}");
    assert_eq!(cdr["timeline"][1]["rtp"]["packets"], 10);
    assert_eq!(cdr["recording"], serde_json::Value::Null);

    let all = events(&t, tenant).await;
    assert_eq!(
        call_events(&all, first),
        [
            ("call.created".to_owned(), 1),
            ("queue.entered".to_owned(), 2),
            ("call.answered".to_owned(), 3),
            ("call.ended".to_owned(), 4)
        ]
    );
    assert_eq!(call_events(&all, second), [("call.created".to_owned(), 1), ("queue.entered".to_owned(), 2)]);
    let ended = all.iter().find_map(|e| match &e.payload {
        EventPayload::CallEnded(d) if d.call_id == first => Some(d.clone()),
        _ => None,
    });
    let ended = ended.unwrap();
    // call.ended carries exactly the CDR the API serves.
    assert_eq!(ended.cdr, cdr);
    assert_eq!(ended.duration_ms, 72_000);
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    assert_eq!(calls::get_cdr(&mut tx, first).await.unwrap().cdr_json(), cdr);
    assert!(matches!(calls::get_cdr(&mut tx, second).await, Err(db::DbError::NotFound)));
    // The agent is free again, idle since the hang-up, and a candidate.
    let state = agent_states::get_state(&mut tx, alice).await.unwrap().unwrap();
    assert_eq!(state.status(), AgentStatus::Available);
    assert_eq!(state.idle_since, Some(ended_at));
    let candidates = calls::queue_candidates(&mut tx, tenant, q, ended_at).await.unwrap();
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0].user_id, alice);
    assert_eq!(candidates[0].extension, "1000");
    tx.rollback().await.unwrap();
    assert_eq!(
        status_changes(&all, alice),
        [
            (AgentStatus::LoggedOut, AgentStatus::Available),
            (AgentStatus::Available, AgentStatus::OnCall),
            (AgentStatus::OnCall, AgentStatus::Available)
        ]
    );
}

#[tokio::test]
async fn changes_and_their_events_vanish_together_on_rollback() {
    let t = TestDb::new().await;
    let tenant = tenant(&t, "rollback").await;
    let at = t0();
    let alice = agent(&t, tenant, "alice", Some(at + Duration::hours(1))).await;
    let q = queue(&t, tenant, "sales", &[alice]).await;
    set_status(&t, tenant, alice, AgentStatus::Available, at).await;
    let before = events(&t, tenant).await.len();

    let call = CallId(Uuid::now_v7());
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    calls::create_call(&mut tx, tenant, &new_call(call, at)).await.unwrap();
    calls::enter_queue(&mut tx, tenant, call, q, at).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(events(&t, tenant).await.len(), before);
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    assert!(matches!(calls::get_call(&mut tx, call).await, Err(db::DbError::NotFound)));
    tx.rollback().await.unwrap();

    // Committed creation, rolled-back answer: the call still rings, the agent is still free.
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    calls::create_call(&mut tx, tenant, &new_call(call, at)).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    calls::answer_call(&mut tx, tenant, call, Some(alice), at).await.unwrap();
    tx.rollback().await.unwrap();
    let all = events(&t, tenant).await;
    assert_eq!(all.len(), before + 1);
    assert_eq!(call_events(&all, call), [("call.created".to_owned(), 1)]);
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    assert_eq!(calls::get_call(&mut tx, call).await.unwrap().state, "ringing");
    assert_eq!(
        agent_states::get_state(&mut tx, alice).await.unwrap().unwrap().status(),
        AgentStatus::Available
    );
    // The rolled-back answer did not use up a sequence number.
    calls::answer_call(&mut tx, tenant, call, Some(alice), at).await.unwrap();
    tx.commit().await.unwrap();
    let all = events(&t, tenant).await;
    assert_eq!(call_events(&all, call), [("call.created".to_owned(), 1), ("call.answered".to_owned(), 2)]);
}

#[tokio::test]
async fn ending_twice_changes_nothing_and_writes_no_second_event() {
    let t = TestDb::new().await;
    let tenant = tenant(&t, "idem").await;
    let at = t0();
    let call = CallId(Uuid::now_v7());
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    calls::create_call(&mut tx, tenant, &new_call(call, at)).await.unwrap();
    let first =
        calls::end_call(&mut tx, tenant, call, &end(at + Duration::seconds(5), "caller")).await.unwrap();
    tx.commit().await.unwrap();
    let count = events(&t, tenant).await.len();
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    let mut later = end(at + Duration::seconds(50), "system");
    later.hangup_cause = "system_restart";
    let second = calls::end_call(&mut tx, tenant, call, &later).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(first, second);
    assert_eq!(second["hangup_cause"], "normal_clearing");
    assert_eq!(second["duration_ms"], 5_000);
    assert_eq!(events(&t, tenant).await.len(), count);
    // A ringing call that was never queued is no abandon.
    let all = events(&t, tenant).await;
    assert_eq!(call_events(&all, call), [("call.created".to_owned(), 1), ("call.ended".to_owned(), 2)]);
    // Ended calls cannot be queued or answered any more.
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    assert!(matches!(calls::answer_call(&mut tx, tenant, call, None, at).await, Err(db::DbError::NotFound)));
    assert!(calls::calls_in_progress(&mut tx, tenant).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_caller_hanging_up_in_the_queue_is_an_abandon() {
    let t = TestDb::new().await;
    let tenant = tenant(&t, "abandon").await;
    let at = t0();
    let q = queue(&t, tenant, "support", &[]).await;
    let gone = CallId(Uuid::now_v7());
    let dropped = CallId(Uuid::now_v7());
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    for call in [gone, dropped] {
        calls::create_call(&mut tx, tenant, &new_call(call, at)).await.unwrap();
        calls::enter_queue(&mut tx, tenant, call, q, at + Duration::seconds(1)).await.unwrap();
    }
    let cdr =
        calls::end_call(&mut tx, tenant, gone, &end(at + Duration::seconds(43), "caller")).await.unwrap();
    // The system ending a waiting call (max wait, restart) is not the caller abandoning.
    let mut restart = end(at + Duration::seconds(50), "system");
    restart.hangup_cause = "system_restart";
    restart.legs = serde_json::Value::Null;
    restart.timeline = serde_json::Value::Null;
    let restarted = calls::end_call(&mut tx, tenant, dropped, &restart).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(cdr["wait_ms"], 42_000);
    assert_eq!(cdr["talk_ms"], 0);
    assert_eq!(cdr["answered_at"], serde_json::Value::Null);
    assert_eq!(restarted["legs"], json!([]));
    assert_eq!(restarted["timeline"], json!([]));

    let all = events(&t, tenant).await;
    assert_eq!(
        call_events(&all, gone),
        [
            ("call.created".to_owned(), 1),
            ("queue.entered".to_owned(), 2),
            ("queue.abandoned".to_owned(), 3),
            ("call.ended".to_owned(), 4)
        ]
    );
    let abandoned: Vec<_> = all
        .iter()
        .filter_map(|e| match &e.payload {
            EventPayload::QueueAbandoned(d) => Some(d.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(abandoned.len(), 1);
    assert_eq!(abandoned[0].waited_ms, 42_000);
    assert_eq!(abandoned[0].queue_id.as_uuid(), q);
    assert_eq!(
        call_events(&all, dropped),
        [("call.created".to_owned(), 1), ("queue.entered".to_owned(), 2), ("call.ended".to_owned(), 3)]
    );
}

#[tokio::test]
async fn transfers_are_recorded_and_the_new_agent_takes_over() {
    let t = TestDb::new().await;
    let tenant = tenant(&t, "xfer").await;
    let at = t0();
    let alice = agent(&t, tenant, "alice", Some(at + Duration::hours(1))).await;
    let bob = agent(&t, tenant, "bob", Some(at + Duration::hours(1))).await;
    set_status(&t, tenant, alice, AgentStatus::Available, at).await;
    set_status(&t, tenant, bob, AgentStatus::Available, at).await;
    let call = CallId(Uuid::now_v7());
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    calls::create_call(&mut tx, tenant, &new_call(call, at)).await.unwrap();
    calls::answer_call(&mut tx, tenant, call, Some(alice), at + Duration::seconds(2)).await.unwrap();
    let failed = json!({"kind": "blind", "to": "1009", "succeeded": false, "reason": "unregistered"});
    calls::add_transfer(
        &mut tx,
        tenant,
        call,
        &failed,
        &calls::TransferEvent {
            kind: TransferKind::Blind,
            from_agent_id: Some(alice),
            destination: "1009",
            succeeded: false,
            failure_reason: Some("unregistered"),
            at: at + Duration::seconds(10),
        },
    )
    .await
    .unwrap();
    let ok = json!({"kind": "blind", "to": "1001", "succeeded": true});
    calls::add_transfer(
        &mut tx,
        tenant,
        call,
        &ok,
        &calls::TransferEvent {
            kind: TransferKind::Blind,
            from_agent_id: Some(alice),
            destination: "1001",
            succeeded: true,
            failure_reason: None,
            at: at + Duration::seconds(20),
        },
    )
    .await
    .unwrap();
    calls::answer_call(&mut tx, tenant, call, Some(bob), at + Duration::seconds(21)).await.unwrap();
    // Alice is free the moment Bob has the call.
    let a = agent_states::get_state(&mut tx, alice).await.unwrap().unwrap();
    assert_eq!((a.status(), a.idle_since), (AgentStatus::Available, Some(at + Duration::seconds(21))));
    let cdr =
        calls::end_call(&mut tx, tenant, call, &end(at + Duration::seconds(60), "caller")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(cdr["transfers"], json!([failed, ok]));
    assert_eq!(cdr["agent_id"], bob.to_string());
    // The first answer counts for talk time.
    assert_eq!(cdr["talk_ms"], 58_000);
    let all = events(&t, tenant).await;
    let kinds: Vec<String> = call_events(&all, call).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        kinds,
        [
            "call.created",
            "call.answered",
            "call.transferred",
            "call.transferred",
            "call.answered",
            "call.ended"
        ]
    );
    let sequences: Vec<u64> = call_events(&all, call).into_iter().map(|(_, s)| s).collect();
    assert_eq!(sequences, [1, 2, 3, 4, 5, 6]);
    let failure = all.iter().find_map(|e| match &e.payload {
        EventPayload::CallTransferred(d) if !d.succeeded => Some(d.clone()),
        _ => None,
    });
    assert_eq!(failure.unwrap().failure_reason.as_deref(), Some("unregistered"));
    assert_eq!(
        status_changes(&all, bob),
        [
            (AgentStatus::LoggedOut, AgentStatus::Available),
            (AgentStatus::Available, AgentStatus::OnCall),
            (AgentStatus::OnCall, AgentStatus::Available)
        ]
    );
}

#[tokio::test]
async fn agent_status_events_only_when_the_status_changes() {
    let t = TestDb::new().await;
    let tenant = tenant(&t, "status").await;
    let at = t0();
    let alice = agent(&t, tenant, "alice", None).await;
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    // No row is logged out already: nothing to announce.
    agent_states::set_agent_status(&mut tx, tenant, alice, AgentStatus::LoggedOut, None, at).await.unwrap();
    assert!(agent_states::get_state(&mut tx, alice).await.unwrap().is_none());
    let row =
        agent_states::set_agent_status(&mut tx, tenant, alice, AgentStatus::Available, Some("ignored"), at)
            .await
            .unwrap();
    assert_eq!(
        (row.status(), row.pause_reason.as_deref(), row.idle_since),
        (AgentStatus::Available, None, Some(at))
    );
    // Available again keeps the place in the longest-idle order.
    let later = at + Duration::seconds(30);
    let row = agent_states::set_agent_status(&mut tx, tenant, alice, AgentStatus::Available, None, later)
        .await
        .unwrap();
    assert_eq!(row.idle_since, Some(at));
    let row =
        agent_states::set_agent_status(&mut tx, tenant, alice, AgentStatus::OnBreak, Some("lunch"), later)
            .await
            .unwrap();
    assert_eq!(row.pause_reason.as_deref(), Some("lunch"));
    // A new reason for the same break: stored, not announced.
    let row =
        agent_states::set_agent_status(&mut tx, tenant, alice, AgentStatus::OnBreak, Some("training"), later)
            .await
            .unwrap();
    assert_eq!(row.pause_reason.as_deref(), Some("training"));
    tx.commit().await.unwrap();
    // A break needs a reason (a CHECK constraint says so).
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    assert!(
        agent_states::set_agent_status(&mut tx, tenant, alice, AgentStatus::OnBreak, None, later)
            .await
            .is_err()
    );
    tx.rollback().await.unwrap();
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    agent_states::set_agent_status(&mut tx, tenant, alice, AgentStatus::LoggedOut, None, later)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let all = events(&t, tenant).await;
    assert_eq!(
        status_changes(&all, alice),
        [
            (AgentStatus::LoggedOut, AgentStatus::Available),
            (AgentStatus::Available, AgentStatus::OnBreak),
            (AgentStatus::OnBreak, AgentStatus::LoggedOut)
        ]
    );
    let paused: Vec<String> = all
        .iter()
        .filter_map(|e| match &e.payload {
            EventPayload::AgentPaused(d) => Some(d.reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(paused, ["lunch"]);
}

#[tokio::test]
async fn candidates_are_available_registered_free_members_longest_idle_first() {
    let t = TestDb::new().await;
    let tenant = tenant(&t, "acd").await;
    let now = t0();
    let live = Some(now + Duration::minutes(10));
    let old = agent(&t, tenant, "old", live).await;
    let recent = agent(&t, tenant, "recent", live).await;
    let never_idle = agent(&t, tenant, "never", live).await;
    let on_break = agent(&t, tenant, "onbreak", live).await;
    let unregistered = agent(&t, tenant, "unreg", None).await;
    let expired = agent(&t, tenant, "expired", Some(now - Duration::seconds(1))).await;
    let busy = agent(&t, tenant, "busy", live).await;
    let disabled = agent(&t, tenant, "disabled", live).await;
    let logged_out = agent(&t, tenant, "loggedout", live).await;
    let outsider = agent(&t, tenant, "outsider", live).await;
    let members = [old, recent, never_idle, on_break, unregistered, expired, busy, disabled, logged_out];
    let q = queue(&t, tenant, "sales", &members).await;
    queue(&t, tenant, "other", &[outsider]).await;

    set_status(&t, tenant, recent, AgentStatus::Available, now - Duration::seconds(10)).await;
    set_status(&t, tenant, old, AgentStatus::Available, now - Duration::seconds(100)).await;
    for user in [never_idle, unregistered, expired, busy, disabled, outsider] {
        set_status(&t, tenant, user, AgentStatus::Available, now - Duration::seconds(500)).await;
    }
    set_status(&t, tenant, on_break, AgentStatus::OnBreak, now - Duration::seconds(900)).await;
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    sqlx::query("update agent_states set idle_since = null where user_id = $1")
        .bind(never_idle.as_uuid())
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("update users set disabled = true where id = $1")
        .bind(disabled.as_uuid())
        .execute(&mut *tx)
        .await
        .unwrap();
    // Busy: on a call, yet marked available by hand.
    let call = CallId(Uuid::now_v7());
    calls::create_call(&mut tx, tenant, &new_call(call, now)).await.unwrap();
    calls::answer_call(&mut tx, tenant, call, Some(busy), now).await.unwrap();
    agent_states::set_agent_status(&mut tx, tenant, busy, AgentStatus::Available, None, now).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    let candidates = calls::queue_candidates(&mut tx, tenant, q, now).await.unwrap();
    let order: Vec<UserId> = candidates.iter().map(|c| c.user_id).collect();
    assert_eq!(order, [never_idle, old, recent]);
    assert_eq!(candidates[0].idle_since, None);
    assert_eq!(candidates[1].idle_since, Some(now - Duration::seconds(100)));
    // Registrations are judged at `now`: later, every binding has expired.
    assert!(calls::queue_candidates(&mut tx, tenant, q, now + Duration::hours(1)).await.unwrap().is_empty());
    // Another tenant's queue id finds nobody.
    let other = self::tenant(&t, "acd-other").await;
    tx.rollback().await.unwrap();
    let mut tx = t.db.tenant_tx(other).await.unwrap();
    assert!(calls::queue_candidates(&mut tx, other, q, now).await.unwrap().is_empty());
    assert!(matches!(calls::get_queue(&mut tx, q).await, Err(db::DbError::NotFound)));
}

#[tokio::test]
async fn calls_left_open_by_a_crash_are_closed_and_their_agents_freed() {
    let t = TestDb::new().await;
    let tenant = tenant(&t, "crash").await;
    let at = t0();
    let alice = agent(&t, tenant, "alice", Some(at + Duration::hours(1))).await;
    set_status(&t, tenant, alice, AgentStatus::Available, at).await;
    let talking = CallId(Uuid::now_v7());
    let ringing = CallId(Uuid::now_v7());
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    calls::create_call(&mut tx, tenant, &new_call(talking, at)).await.unwrap();
    calls::create_call(&mut tx, tenant, &new_call(ringing, at)).await.unwrap();
    calls::answer_call(&mut tx, tenant, talking, Some(alice), at).await.unwrap();
    tx.commit().await.unwrap();

    // Startup: end what is open.
    let restart = at + Duration::minutes(5);
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    let open = calls::calls_in_progress(&mut tx, tenant).await.unwrap();
    assert_eq!(open.len(), 2);
    for call in open {
        let end = CallEnd {
            at: restart,
            hangup_cause: "system_restart",
            hangup_side: "system",
            legs: serde_json::Value::Null,
            timeline: json!([{"event": "closed after a restart"}]),
            recording: None,
        };
        let cdr = calls::end_call(&mut tx, tenant, call.call_id(), &end).await.unwrap();
        assert_eq!(cdr["hangup_cause"], "system_restart");
    }
    assert!(calls::calls_in_progress(&mut tx, tenant).await.unwrap().is_empty());
    assert_eq!(agent_states::release_stale_on_call(&mut tx, tenant, restart).await.unwrap(), 0);
    let state = agent_states::get_state(&mut tx, alice).await.unwrap().unwrap();
    assert_eq!((state.status(), state.idle_since), (AgentStatus::Available, Some(restart)));
    tx.commit().await.unwrap();
}

/// Waits for a database future that must not block on another open transaction (a hang is
/// the failure; the bound only turns it into a panic instead of a stuck test run).
async fn without_waiting<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what} waited for another transaction's lock"))
}

#[tokio::test]
async fn callers_entering_one_queue_do_not_wait_for_each_other() {
    let t = TestDb::new().await;
    let tenant = tenant(&t, "no-queue-lock").await;
    let at = t0();
    let q = queue(&t, tenant, "sales", &[]).await;
    let (first, second) = (CallId(Uuid::now_v7()), CallId(Uuid::now_v7()));
    for (call, offset) in [(first, 0), (second, 1)] {
        let mut tx = t.db.tenant_tx(tenant).await.unwrap();
        calls::create_call(&mut tx, tenant, &new_call(call, at + Duration::seconds(offset))).await.unwrap();
        tx.commit().await.unwrap();
    }
    // The first entry is not committed yet when the second one runs: with a queue-wide lock
    // the second would wait for it.
    let mut one = t.db.tenant_tx(tenant).await.unwrap();
    assert_eq!(calls::enter_queue(&mut one, tenant, first, q, at + Duration::seconds(2)).await.unwrap(), 1);
    let mut two = t.db.tenant_tx(tenant).await.unwrap();
    let position = without_waiting(
        "enter_queue",
        calls::enter_queue(&mut two, tenant, second, q, at + Duration::seconds(3)),
    )
    .await
    .unwrap();
    // The first entry was invisible to the second (uncommitted): positions may repeat.
    assert_eq!(position, 1);
    one.commit().await.unwrap();
    two.commit().await.unwrap();
    // Once committed, later callers count both.
    let third = CallId(Uuid::now_v7());
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    calls::create_call(&mut tx, tenant, &new_call(third, at + Duration::seconds(4))).await.unwrap();
    assert_eq!(calls::enter_queue(&mut tx, tenant, third, q, at + Duration::seconds(5)).await.unwrap(), 3);
    // An unknown queue or an ended call is NotFound, as before.
    assert!(matches!(
        calls::enter_queue(&mut tx, tenant, third, Uuid::new_v4(), at).await,
        Err(db::DbError::NotFound)
    ));
    calls::end_call(&mut tx, tenant, third, &end(at + Duration::seconds(6), "caller")).await.unwrap();
    assert!(matches!(calls::enter_queue(&mut tx, tenant, third, q, at).await, Err(db::DbError::NotFound)));
    tx.commit().await.unwrap();
    let all = events(&t, tenant).await;
    assert_eq!(
        call_events(&all, third),
        [
            ("call.created".to_owned(), 1),
            ("queue.entered".to_owned(), 2),
            ("queue.abandoned".to_owned(), 3),
            ("call.ended".to_owned(), 4)
        ]
    );
}

#[tokio::test]
async fn candidates_are_capped_and_start_with_the_longest_idle() {
    let t = TestDb::new().await;
    let tenant = tenant(&t, "many-agents").await;
    let now = t0();
    let n = usize::try_from(calls::CANDIDATE_LIMIT).unwrap() + 6;
    let mut agents = Vec::new();
    for i in 0..n {
        agents.push(agent(&t, tenant, &format!("a{i}"), Some(now + Duration::hours(1))).await);
    }
    let q = queue(&t, tenant, "big", &agents).await;
    // a0 idle longest, then a1, …
    for (i, a) in agents.iter().enumerate() {
        set_status(&t, tenant, *a, AgentStatus::Available, now - Duration::seconds(1000 - i as i64)).await;
    }
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    let candidates = calls::queue_candidates(&mut tx, tenant, q, now).await.unwrap();
    assert_eq!(candidates.len(), usize::try_from(calls::CANDIDATE_LIMIT).unwrap());
    assert_eq!(candidates.iter().map(|c| c.user_id).collect::<Vec<_>>(), agents[..candidates.len()]);
}

#[tokio::test]
async fn a_pick_reserves_the_agent_for_one_call_without_waiting_for_other_picks() {
    let t = TestDb::new().await;
    let tenant = tenant(&t, "claims").await;
    let now = t0();
    let until = now + Duration::seconds(25);
    let [old, mid, new] = [
        agent(&t, tenant, "old", Some(now + Duration::hours(1))).await,
        agent(&t, tenant, "mid", Some(now + Duration::hours(1))).await,
        agent(&t, tenant, "new", Some(now + Duration::hours(1))).await,
    ];
    let q = queue(&t, tenant, "sales", &[old, mid, new]).await;
    set_status(&t, tenant, old, AgentStatus::Available, now - Duration::seconds(300)).await;
    set_status(&t, tenant, mid, AgentStatus::Available, now - Duration::seconds(200)).await;
    set_status(&t, tenant, new, AgentStatus::Available, now - Duration::seconds(100)).await;
    let [a, b, c] = [CallId(Uuid::now_v7()), CallId(Uuid::now_v7()), CallId(Uuid::now_v7())];
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    for call in [a, b, c] {
        calls::create_call(&mut tx, tenant, &new_call(call, now)).await.unwrap();
        calls::enter_queue(&mut tx, tenant, call, q, now).await.unwrap();
    }
    tx.commit().await.unwrap();

    // Two picks in flight at once (as on two nodes): the second skips the row the first has
    // locked instead of waiting for it, and takes the next agent.
    let mut one = t.db.tenant_tx(tenant).await.unwrap();
    let first = calls::claim_agent(&mut one, tenant, q, a, &[], now, until).await.unwrap().unwrap();
    assert_eq!(first.user_id, old);
    assert_eq!(first.extension, "1000");
    let mut two = t.db.tenant_tx(tenant).await.unwrap();
    let second = without_waiting("claim_agent", calls::claim_agent(&mut two, tenant, q, b, &[], now, until))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.user_id, mid);
    one.commit().await.unwrap();
    two.commit().await.unwrap();

    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    // Reserved agents are nobody's candidates; the round's tried agents are excluded.
    let free: Vec<UserId> =
        calls::queue_candidates(&mut tx, tenant, q, now).await.unwrap().iter().map(|c| c.user_id).collect();
    assert_eq!(free, [new]);
    assert_eq!(calls::claim_agent(&mut tx, tenant, q, c, &[new], now, until).await.unwrap(), None);
    // A reservation lapses by itself (its node died while ringing).
    let later = calls::claim_agent(&mut tx, tenant, q, c, &[new], until, until + Duration::seconds(25))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(later.user_id, old);
    // Releasing someone else's reservation does nothing; releasing one's own frees the agent.
    assert!(!calls::release_offer(&mut tx, a, old).await.unwrap());
    assert!(calls::release_offer(&mut tx, c, old).await.unwrap());
    assert_eq!(
        calls::claim_agent(&mut tx, tenant, q, c, &[], now, until).await.unwrap().unwrap().user_id,
        old
    );
    // The answer ends the reservation (the agent is on call); so does the end of the call.
    calls::answer_call(&mut tx, tenant, c, Some(old), now).await.unwrap();
    calls::end_call(&mut tx, tenant, b, &end(now + Duration::seconds(5), "caller")).await.unwrap();
    let states = agent_states::get_states(&mut tx, &[old.as_uuid(), mid.as_uuid()]).await.unwrap();
    assert!(states.iter().all(|s| s.status() != AgentStatus::OnCall || s.user_id == old.as_uuid()));
    let offers: Vec<(Uuid, Option<Uuid>)> = sqlx::query_as(
        "select user_id, offer_call_id from agent_states where user_id = any($1) order by user_id",
    )
    .bind(vec![old.as_uuid(), mid.as_uuid()])
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    assert!(offers.iter().all(|(_, offer)| offer.is_none()), "{offers:?}");
    let free: Vec<UserId> =
        calls::queue_candidates(&mut tx, tenant, q, now).await.unwrap().iter().map(|c| c.user_id).collect();
    assert_eq!(free, [mid, new]);
    tx.commit().await.unwrap();
}
