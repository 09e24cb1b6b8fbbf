//! Calls, queues and agent availability: the states, their wire names, and the CDR (call detail
//! record) with the durations derived from its timestamps.
//!
//! The text forms are what PostgreSQL stores (check constraints in `0004_contact_center.sql`)
//! and what the API shows, so `as_str`/`parse` and serde agree (tested below).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::events::{AgentStatus, CallDirection};
use crate::ids::{CallId, QueueId, UserId};

macro_rules! wire_names {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name),+
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_names!(AgentStatus {
    Available => "available",
    OnCall => "on_call",
    OnBreak => "on_break",
    LoggedOut => "logged_out",
});

impl AgentStatus {
    /// `on_call` is set by the call itself (answer, hang-up), never by a person.
    pub fn settable_by_hand(self) -> bool {
        !matches!(self, Self::OnCall)
    }
}

wire_names!(CallDirection {
    Inbound => "inbound",
    Outbound => "outbound",
});

/// Where a call is in its life. `ended` calls are CDRs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// Created, not yet queued or answered (routing, ringing an agent directly, dialling out).
    Ringing,
    /// Waiting in a queue for an agent.
    Queued,
    Answered,
    Ended,
}

wire_names!(CallState {
    Ringing => "ringing",
    Queued => "queued",
    Answered => "answered",
    Ended => "ended",
});

/// Who ended the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HangupSide {
    Caller,
    Agent,
    /// The called party of an agent's outbound call (an external number).
    Callee,
    /// SIVO itself: max wait with overflow `hangup`, a failure, a restart.
    System,
}

wire_names!(HangupSide {
    Caller => "caller",
    Agent => "agent",
    Callee => "callee",
    System => "system",
});

/// Where a queued call goes when it has waited `max_wait_secs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverflowType {
    /// Keep waiting.
    None,
    /// Move to another queue (`overflow_id`).
    Queue,
    /// Ring one agent (`overflow_id`).
    Agent,
    /// End the call.
    Hangup,
}

wire_names!(OverflowType {
    None => "none",
    Queue => "queue",
    Agent => "agent",
    Hangup => "hangup",
});

impl OverflowType {
    /// Whether `overflow_id` must name something.
    pub fn needs_target(self) -> bool {
        matches!(self, Self::Queue | Self::Agent)
    }
}

/// Durations derived from a call's timestamps, in milliseconds (never negative).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CallDurations {
    /// Created to ended.
    pub duration_ms: u64,
    /// Answered to ended.
    pub talk_ms: u64,
    /// First queue entry to answer, or to the end when no answer followed it.
    pub wait_ms: u64,
}

fn ms_between(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    u64::try_from((to - from).num_milliseconds()).unwrap_or(0)
}

impl CallDurations {
    /// `end` is `ended_at`, or the current time for a call in progress.
    pub fn compute(
        created_at: DateTime<Utc>,
        queued_at: Option<DateTime<Utc>>,
        answered_at: Option<DateTime<Utc>>,
        end: DateTime<Utc>,
    ) -> Self {
        let wait_ms = queued_at.map_or(0, |q| {
            // Answered before it was ever queued (a transfer into a queue): the wait runs to the end.
            let until = answered_at.filter(|a| *a >= q).unwrap_or(end);
            ms_between(q, until)
        });
        Self {
            duration_ms: ms_between(created_at, end),
            talk_ms: answered_at.map_or(0, |a| ms_between(a, end)),
            wait_ms,
        }
    }
}

/// The call detail record: one per call, served by `GET /api/v1/cdrs/{id}` and carried whole in
/// `call.ended` (`data.cdr`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Cdr {
    /// The call id ("SIP channel UUID").
    pub id: CallId,
    pub direction: CallDirection,
    /// Caller number or URI user.
    pub from: String,
    /// Dialled number.
    pub to: String,
    /// The DID the call came in on (E.164), for inbound calls.
    pub did: Option<String>,
    /// The last queue the call waited in.
    pub queue_id: Option<QueueId>,
    /// The last agent who answered.
    pub agent_id: Option<UserId>,
    pub created_at: DateTime<Utc>,
    /// First entry into a queue.
    pub queued_at: Option<DateTime<Utc>>,
    /// First answer by an agent (or the remote party of an outbound call).
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_ms: u64,
    pub talk_ms: u64,
    pub wait_ms: u64,
    /// `normal_clearing`, `no_answer`, `busy`, `cancelled`, `max_wait`, `system_restart`…
    pub hangup_cause: Option<String>,
    pub hangup_side: Option<HangupSide>,
    /// The call's legs (A-leg and B-legs) with their codecs and media statistics.
    #[schema(value_type = Vec<Object>)]
    pub legs: serde_json::Value,
    /// Transfer history, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub transfers: serde_json::Value,
    /// The recording, if the call was recorded.
    #[schema(value_type = Option<Object>)]
    pub recording: Option<serde_json::Value>,
    /// The "Technical" timeline: SIP responses, codecs per leg, RTP counters, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub timeline: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn wire_names_match_serde() {
        for s in AgentStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
            assert_eq!(AgentStatus::parse(s.as_str()), Some(*s));
        }
        for s in CallState::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
        }
        for s in HangupSide::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
        }
        for s in OverflowType::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
        }
        for s in CallDirection::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
        }
        assert_eq!(AgentStatus::parse("busy"), None);
        assert!(!AgentStatus::OnCall.settable_by_hand());
        assert!(AgentStatus::OnBreak.settable_by_hand());
    }

    #[test]
    fn durations_of_answered_abandoned_and_direct_calls() {
        // Queued after 2 s, answered after 12 s, ended after 72 s.
        let d = CallDurations::compute(t(0), Some(t(2)), Some(t(12)), t(72));
        assert_eq!(d, CallDurations { duration_ms: 72_000, talk_ms: 60_000, wait_ms: 10_000 });
        // Abandoned in the queue.
        let d = CallDurations::compute(t(0), Some(t(1)), None, t(31));
        assert_eq!(d, CallDurations { duration_ms: 31_000, talk_ms: 0, wait_ms: 30_000 });
        // Straight to an agent, never queued.
        let d = CallDurations::compute(t(0), None, Some(t(5)), t(10));
        assert_eq!(d, CallDurations { duration_ms: 10_000, talk_ms: 5_000, wait_ms: 0 });
        // Answered, then transferred into a queue: the wait runs from the queue entry.
        let d = CallDurations::compute(t(0), Some(t(20)), Some(t(5)), t(50));
        assert_eq!(d.wait_ms, 30_000);
        // Clock skew never makes a negative duration.
        let d = CallDurations::compute(t(10), None, None, t(0));
        assert_eq!(d.duration_ms, 0);
    }
}
