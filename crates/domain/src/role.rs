//! User roles and what each may do.

use serde::{Deserialize, Serialize};

/// A user's role. Tenant roles form a ladder (agent < supervisor < admin); `Superadmin`
/// is a platform operator who belongs to no tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Agent,
    Supervisor,
    Admin,
    Superadmin,
}

impl Role {
    pub const ALL: [Self; 4] = [Self::Agent, Self::Supervisor, Self::Admin, Self::Superadmin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Supervisor => "supervisor",
            Self::Admin => "admin",
            Self::Superadmin => "superadmin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Admins and superadmins cannot log in without a second factor.
    pub fn requires_mfa(self) -> bool {
        matches!(self, Self::Admin | Self::Superadmin)
    }

    /// Whether this role may act on tenant resources that need `needed`.
    /// Superadmins do not act inside tenants through tenant routes; they use the
    /// platform routes, so they do not satisfy tenant role checks.
    pub fn satisfies(self, needed: Self) -> bool {
        match (self, needed) {
            (Self::Superadmin, Self::Superadmin) => true,
            (Self::Superadmin, _) | (_, Self::Superadmin) => false,
            (have, need) => have.rank() >= need.rank(),
        }
    }

    fn rank(self) -> u8 {
        match self {
            Self::Agent => 0,
            Self::Supervisor => 1,
            Self::Admin => 2,
            Self::Superadmin => 3,
        }
    }

    /// Roles that have a SIP extension and can take calls.
    pub fn is_agent_like(self) -> bool {
        matches!(self, Self::Agent | Self::Supervisor)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_and_platform_role_are_separate() {
        assert!(Role::Admin.satisfies(Role::Agent));
        assert!(Role::Supervisor.satisfies(Role::Supervisor));
        assert!(!Role::Agent.satisfies(Role::Supervisor));
        assert!(!Role::Superadmin.satisfies(Role::Admin));
        assert!(!Role::Admin.satisfies(Role::Superadmin));
        assert!(Role::Superadmin.satisfies(Role::Superadmin));
    }

    #[test]
    fn round_trips_names() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
