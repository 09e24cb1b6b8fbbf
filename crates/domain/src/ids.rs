//! Typed ids: a `TenantId` can never be passed where a `UserId` is expected.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            utoipa::ToSchema,
        )]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// A tenant: the unit of isolation. Every tenant row carries one.
    TenantId
);
id_type!(
    /// A user of any role (agents are users with role agent or supervisor).
    UserId
);
id_type!(
    /// A login session (server-side, revocable).
    SessionId
);
id_type!(
    /// A per-tenant API key for integrators.
    ApiKeyId
);
id_type!(
    /// A catalog event; the same value is sent as `X-Sivo-Event-Id` on every delivery attempt.
    EventId
);
id_type!(
    /// A call; its value is the "SIP channel UUID" used in CDRs, events and Salesforce.
    CallId
);
id_type!(
    /// An ACD queue.
    QueueId
);
id_type!(
    /// An audit log entry.
    AuditId
);
