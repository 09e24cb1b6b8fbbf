//! The webhook event catalog: the 13 event types integrators subscribe to, with typed payloads.
//!
//! The serialized form is the public contract (spec `001`): an envelope
//! `{id, type, tenant_id, created_at, data}`. `id` is stable across delivery attempts
//! (`X-Sivo-Event-Id`); call events carry a per-call `sequence` because delivery order
//! across events is not guaranteed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{CallId, EventId, QueueId, TenantId, UserId};

/// Every event type in the catalog, with its wire name.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
pub enum EventType {
    #[serde(rename = "call.created")]
    CallCreated,
    #[serde(rename = "call.answered")]
    CallAnswered,
    #[serde(rename = "call.transferred")]
    CallTransferred,
    #[serde(rename = "call.ended")]
    CallEnded,
    #[serde(rename = "call.recorded")]
    CallRecorded,
    #[serde(rename = "transcript.segment")]
    TranscriptSegment,
    #[serde(rename = "transcript.completed")]
    TranscriptCompleted,
    #[serde(rename = "queue.entered")]
    QueueEntered,
    #[serde(rename = "queue.abandoned")]
    QueueAbandoned,
    #[serde(rename = "agent.status_changed")]
    AgentStatusChanged,
    #[serde(rename = "agent.paused")]
    AgentPaused,
    #[serde(rename = "ivr.completed")]
    IvrCompleted,
    #[serde(rename = "ai_agent.completed")]
    AiAgentCompleted,
}

impl EventType {
    pub const ALL: [Self; 13] = [
        Self::CallCreated,
        Self::CallAnswered,
        Self::CallTransferred,
        Self::CallEnded,
        Self::CallRecorded,
        Self::TranscriptSegment,
        Self::TranscriptCompleted,
        Self::QueueEntered,
        Self::QueueAbandoned,
        Self::AgentStatusChanged,
        Self::AgentPaused,
        Self::IvrCompleted,
        Self::AiAgentCompleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CallCreated => "call.created",
            Self::CallAnswered => "call.answered",
            Self::CallTransferred => "call.transferred",
            Self::CallEnded => "call.ended",
            Self::CallRecorded => "call.recorded",
            Self::TranscriptSegment => "transcript.segment",
            Self::TranscriptCompleted => "transcript.completed",
            Self::QueueEntered => "queue.entered",
            Self::QueueAbandoned => "queue.abandoned",
            Self::AgentStatusChanged => "agent.status_changed",
            Self::AgentPaused => "agent.paused",
            Self::IvrCompleted => "ivr.completed",
            Self::AiAgentCompleted => "ai_agent.completed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One catalog event, as written to the outbox and delivered to webhooks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: EventId,
    pub tenant_id: TenantId,
    pub created_at: DateTime<Utc>,
    #[serde(flatten)]
    pub payload: EventPayload,
}

impl Event {
    pub fn new(id: EventId, tenant_id: TenantId, created_at: DateTime<Utc>, payload: EventPayload) -> Self {
        Self { id, tenant_id, created_at, payload }
    }

    pub fn event_type(&self) -> EventType {
        self.payload.event_type()
    }

    /// The call this event belongs to, if any, with its per-call sequence number.
    pub fn call_sequence(&self) -> Option<(CallId, u64)> {
        use EventPayload as P;
        match &self.payload {
            P::CallCreated(d) => Some((d.call_id, d.sequence)),
            P::CallAnswered(d) => Some((d.call_id, d.sequence)),
            P::CallTransferred(d) => Some((d.call_id, d.sequence)),
            P::CallEnded(d) => Some((d.call_id, d.sequence)),
            P::CallRecorded(d) => Some((d.call_id, d.sequence)),
            P::TranscriptSegment(d) => Some((d.call_id, d.sequence)),
            P::TranscriptCompleted(d) => Some((d.call_id, d.sequence)),
            P::QueueEntered(d) => Some((d.call_id, d.sequence)),
            P::QueueAbandoned(d) => Some((d.call_id, d.sequence)),
            P::IvrCompleted(d) => Some((d.call_id, d.sequence)),
            P::AiAgentCompleted(d) => Some((d.call_id, d.sequence)),
            P::AgentStatusChanged(_) | P::AgentPaused(_) => None,
        }
    }
}

/// The typed `data` of each event; `type` is the tag on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum EventPayload {
    #[serde(rename = "call.created")]
    CallCreated(CallCreated),
    #[serde(rename = "call.answered")]
    CallAnswered(CallAnswered),
    #[serde(rename = "call.transferred")]
    CallTransferred(CallTransferred),
    #[serde(rename = "call.ended")]
    CallEnded(CallEnded),
    #[serde(rename = "call.recorded")]
    CallRecorded(CallRecorded),
    #[serde(rename = "transcript.segment")]
    TranscriptSegment(TranscriptSegment),
    #[serde(rename = "transcript.completed")]
    TranscriptCompleted(TranscriptCompleted),
    #[serde(rename = "queue.entered")]
    QueueEntered(QueueEntered),
    #[serde(rename = "queue.abandoned")]
    QueueAbandoned(QueueAbandoned),
    #[serde(rename = "agent.status_changed")]
    AgentStatusChanged(AgentStatusChanged),
    #[serde(rename = "agent.paused")]
    AgentPaused(AgentPaused),
    #[serde(rename = "ivr.completed")]
    IvrCompleted(IvrCompleted),
    #[serde(rename = "ai_agent.completed")]
    AiAgentCompleted(AiAgentCompleted),
}

impl EventPayload {
    pub fn event_type(&self) -> EventType {
        match self {
            Self::CallCreated(_) => EventType::CallCreated,
            Self::CallAnswered(_) => EventType::CallAnswered,
            Self::CallTransferred(_) => EventType::CallTransferred,
            Self::CallEnded(_) => EventType::CallEnded,
            Self::CallRecorded(_) => EventType::CallRecorded,
            Self::TranscriptSegment(_) => EventType::TranscriptSegment,
            Self::TranscriptCompleted(_) => EventType::TranscriptCompleted,
            Self::QueueEntered(_) => EventType::QueueEntered,
            Self::QueueAbandoned(_) => EventType::QueueAbandoned,
            Self::AgentStatusChanged(_) => EventType::AgentStatusChanged,
            Self::AgentPaused(_) => EventType::AgentPaused,
            Self::IvrCompleted(_) => EventType::IvrCompleted,
            Self::AiAgentCompleted(_) => EventType::AiAgentCompleted,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallDirection {
    Inbound,
    Outbound,
}

/// Agent availability as agents and supervisors see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Available,
    OnCall,
    OnBreak,
    LoggedOut,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferKind {
    Blind,
    Attended,
    ThreeWay,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    Caller,
    Agent,
    Bot,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallCreated {
    pub call_id: CallId,
    pub sequence: u64,
    pub direction: CallDirection,
    pub from: String,
    pub to: String,
    pub did: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallAnswered {
    pub call_id: CallId,
    pub sequence: u64,
    pub agent_id: Option<UserId>,
    pub queue_id: Option<QueueId>,
    pub answered_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallTransferred {
    pub call_id: CallId,
    pub sequence: u64,
    pub kind: TransferKind,
    pub from_agent_id: Option<UserId>,
    /// Where the call went: an extension, queue or external number.
    pub destination: String,
    pub succeeded: bool,
    pub failure_reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallEnded {
    pub call_id: CallId,
    pub sequence: u64,
    pub hangup_cause: String,
    /// `caller`, `agent` or `system`.
    pub hangup_side: String,
    pub duration_ms: u64,
    /// The full CDR as served by `GET /api/v1/cdrs/{id}`.
    pub cdr: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallRecorded {
    pub call_id: CallId,
    pub sequence: u64,
    pub recording_url: String,
    pub url_expires_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub channels: u8,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranscriptSegment {
    pub call_id: CallId,
    pub sequence: u64,
    pub segment_index: u32,
    pub speaker: Speaker,
    pub text: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranscriptCompleted {
    pub call_id: CallId,
    pub sequence: u64,
    pub segments: Vec<TranscriptSegment>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueEntered {
    pub call_id: CallId,
    pub sequence: u64,
    pub queue_id: QueueId,
    pub position: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueAbandoned {
    pub call_id: CallId,
    pub sequence: u64,
    pub queue_id: QueueId,
    pub waited_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentStatusChanged {
    pub agent_id: UserId,
    pub previous: AgentStatus,
    pub status: AgentStatus,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentPaused {
    pub agent_id: UserId,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IvrCompleted {
    pub call_id: CallId,
    pub sequence: u64,
    pub flow_id: uuid::Uuid,
    pub flow_version: u32,
    pub variables: BTreeMap<String, serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AiAgentCompleted {
    pub call_id: CallId,
    pub sequence: u64,
    pub ai_agent_id: uuid::Uuid,
    /// Why the conversation ended: `hangup`, `transfer_to_queue`, `max_turns`, `error`…
    pub exit_reason: String,
    pub variables: BTreeMap<String, serde_json::Value>,
    pub turns: u32,
}

impl EventPayload {
    /// A plausible payload of type `t`, for the webhook tester ("send test event"). Ids are the
    /// caller's so the sample stays deterministic.
    pub fn sample(
        t: EventType,
        call_id: CallId,
        agent_id: UserId,
        queue_id: QueueId,
        at: DateTime<Utc>,
    ) -> Self {
        let segment = TranscriptSegment {
            call_id,
            sequence: 4,
            segment_index: 0,
            speaker: Speaker::Caller,
            text: "Hi, I'm calling about last month's invoice.".into(),
            start_ms: 1200,
            end_ms: 3900,
        };
        match t {
            EventType::CallCreated => Self::CallCreated(CallCreated {
                call_id,
                sequence: 1,
                direction: CallDirection::Inbound,
                from: "+15550100001".into(),
                to: "+15550100002".into(),
                did: Some("+15550100002".into()),
            }),
            EventType::CallAnswered => Self::CallAnswered(CallAnswered {
                call_id,
                sequence: 3,
                agent_id: Some(agent_id),
                queue_id: Some(queue_id),
                answered_at: at,
            }),
            EventType::CallTransferred => Self::CallTransferred(CallTransferred {
                call_id,
                sequence: 5,
                kind: TransferKind::Blind,
                from_agent_id: Some(agent_id),
                destination: "1002".into(),
                succeeded: true,
                failure_reason: None,
            }),
            EventType::CallEnded => Self::CallEnded(CallEnded {
                call_id,
                sequence: 6,
                hangup_cause: "normal_clearing".into(),
                hangup_side: "caller".into(),
                duration_ms: 93_000,
                cdr: serde_json::json!({"id": call_id, "sample": true}),
            }),
            EventType::CallRecorded => Self::CallRecorded(CallRecorded {
                call_id,
                sequence: 7,
                recording_url: format!("https://sivo.example/recordings/{call_id}?sig=sample"),
                url_expires_at: at,
                duration_ms: 93_000,
                channels: 2,
            }),
            EventType::TranscriptSegment => Self::TranscriptSegment(segment),
            EventType::TranscriptCompleted => Self::TranscriptCompleted(TranscriptCompleted {
                call_id,
                sequence: 8,
                segments: vec![segment],
            }),
            EventType::QueueEntered => {
                Self::QueueEntered(QueueEntered { call_id, sequence: 2, queue_id, position: 1 })
            }
            EventType::QueueAbandoned => {
                Self::QueueAbandoned(QueueAbandoned { call_id, sequence: 3, queue_id, waited_ms: 42_000 })
            }
            EventType::AgentStatusChanged => Self::AgentStatusChanged(AgentStatusChanged {
                agent_id,
                previous: AgentStatus::OnBreak,
                status: AgentStatus::Available,
                reason: None,
            }),
            EventType::AgentPaused => Self::AgentPaused(AgentPaused { agent_id, reason: "lunch".into() }),
            EventType::IvrCompleted => Self::IvrCompleted(IvrCompleted {
                call_id,
                sequence: 2,
                flow_id: uuid::Uuid::nil(),
                flow_version: 1,
                variables: BTreeMap::from([("menu_choice".to_owned(), serde_json::json!("2"))]),
            }),
            EventType::AiAgentCompleted => Self::AiAgentCompleted(AiAgentCompleted {
                call_id,
                sequence: 2,
                ai_agent_id: uuid::Uuid::nil(),
                exit_reason: "transfer_to_queue".into(),
                variables: BTreeMap::new(),
                turns: 4,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn catalog_has_thirteen_distinct_wire_names() {
        let mut names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 13);
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            // The serde name and `as_str` must agree: both are the public contract.
            assert_eq!(serde_json::to_value(t).unwrap(), serde_json::json!(t.as_str()));
        }
    }

    #[test]
    fn every_type_has_a_sample_of_that_type() {
        for t in EventType::ALL {
            let sample = EventPayload::sample(
                t,
                CallId(Uuid::nil()),
                UserId(Uuid::nil()),
                QueueId(Uuid::nil()),
                DateTime::UNIX_EPOCH,
            );
            assert_eq!(sample.event_type(), t);
        }
    }

    #[test]
    fn envelope_shape_is_id_type_tenant_created_at_data() {
        let event = Event::new(
            EventId(Uuid::nil()),
            TenantId(Uuid::nil()),
            DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            EventPayload::AgentPaused(AgentPaused { agent_id: UserId(Uuid::nil()), reason: "lunch".into() }),
        );
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "00000000-0000-0000-0000-000000000000",
                "tenant_id": "00000000-0000-0000-0000-000000000000",
                "created_at": "2023-11-14T22:13:20Z",
                "type": "agent.paused",
                "data": {"agent_id": "00000000-0000-0000-0000-000000000000", "reason": "lunch"}
            })
        );
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
        assert_eq!(back.event_type(), EventType::AgentPaused);
    }
}
