//! Who is calling: a session (bearer token or cookie) or an API key, resolved to a tenant and role.
//! Also the request context (source IP, request id) that audit entries record.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use chrono::{DateTime, Duration, Utc};
use domain::{ApiKeyId, AuditId, Role, SessionId, TenantId, UserId};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::{AppState, crypto};

pub const SESSION_COOKIE: &str = "sivo_session";
/// Refresh `last_seen_at` at most this often per session: idle expiry is exact to within it.
const TOUCH_EVERY_SECS: i64 = 60;

#[derive(Clone, Debug)]
pub enum Actor {
    User { id: UserId, email: String, session: SessionId },
    ApiKey { id: ApiKeyId, name: String },
}

/// An authenticated caller. Handlers receive it as an extractor; a session that may only
/// enrol MFA is refused here unless the handler asks for [`EnrollmentPrincipal`].
#[derive(Clone, Debug)]
pub struct Principal {
    pub actor: Actor,
    /// None for superadmins.
    pub tenant: Option<TenantId>,
    pub role: Role,
    pub ctx: RequestCtx,
}

impl Principal {
    /// Refuses with 403 unless the caller's role satisfies `needed`.
    pub fn require(&self, needed: Role) -> ApiResult<()> {
        if self.role.satisfies(needed) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("this action needs the {needed} role")))
        }
    }

    /// The caller's tenant, or 403 for platform users on tenant routes.
    pub fn tenant(&self) -> ApiResult<TenantId> {
        self.tenant.ok_or_else(|| {
            ApiError::forbidden("this route acts inside a tenant; superadmins use /api/v1/tenants")
        })
    }

    pub fn user_id(&self) -> Option<UserId> {
        match &self.actor {
            Actor::User { id, .. } => Some(*id),
            Actor::ApiKey { .. } => None,
        }
    }

    pub fn audit_actor(&self) -> db::audit::Actor {
        match &self.actor {
            Actor::User { id, email, .. } => db::audit::Actor::user(id.as_uuid(), email),
            Actor::ApiKey { id, name } => db::audit::Actor::api_key(id.as_uuid(), name),
        }
    }

    /// An audit entry by this principal, stamped with the request's IP and id.
    pub fn audit(
        &self,
        action: &str,
        resource_type: &str,
        resource_id: Option<String>,
        at: DateTime<Utc>,
    ) -> db::audit::NewAudit {
        self.ctx.audit(self.tenant, self.audit_actor(), action, resource_type, resource_id, at)
    }
}

/// A principal whose session may be limited to MFA enrolment (admins who have not enrolled yet).
pub struct EnrollmentPrincipal(pub Principal, pub bool);

/// Source address and request id, for audit entries.
#[derive(Clone, Debug, Default)]
pub struct RequestCtx {
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
    pub user_agent: Option<String>,
}

impl RequestCtx {
    pub fn audit(
        &self,
        tenant: Option<TenantId>,
        actor: db::audit::Actor,
        action: &str,
        resource_type: &str,
        resource_id: Option<String>,
        at: DateTime<Utc>,
    ) -> db::audit::NewAudit {
        db::audit::NewAudit {
            // Time-ordered ids keep entries with equal timestamps in creation order.
            id: AuditId(Uuid::now_v7()),
            tenant_id: tenant,
            at,
            actor,
            action: action.to_owned(),
            resource_type: resource_type.to_owned(),
            resource_id,
            before: None,
            after: None,
            source_ip: self.source_ip.clone(),
            request_id: self.request_id.clone(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        // The peer address of the TCP connection; forwarded headers are not trusted.
        let source_ip = ConnectInfo::<SocketAddr>::from_request_parts(parts, _state)
            .await
            .ok()
            .map(|c| c.0.ip().to_canonical().to_string());
        let header = |name: &str| {
            parts.headers.get(name).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(256).collect())
        };
        Ok(Self { source_ip, request_id: header("x-request-id"), user_agent: header("user-agent") })
    }
}

/// The bearer token from `Authorization`, else the session cookie.
pub fn presented_token(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned())
            .filter(|t| !t.is_empty());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

async fn authenticate(parts: &mut Parts, state: &AppState) -> ApiResult<(Principal, bool)> {
    let ctx = RequestCtx::from_request_parts(parts, state).await?;
    let token = presented_token(&parts.headers).ok_or_else(|| {
        ApiError::unauthorized("send a session token or API key as Authorization: Bearer …")
    })?;
    let now = state.clock.now();
    if let Some(prefix) = crypto::api_key_prefix(&token) {
        let mut tx = state.db.platform_tx().await?;
        let key = db::api_keys::lookup_by_prefix(&mut tx, prefix).await?;
        let Some(key) =
            key.filter(|k| crypto::constant_time_eq(&k.key_hash, &crypto::sha256(token.as_bytes())))
        else {
            return Err(ApiError::unauthorized("invalid or revoked API key"));
        };
        if key.last_used_at.is_none_or(|t| (now - t).num_seconds() >= TOUCH_EVERY_SECS) {
            db::api_keys::touch(&mut tx, ApiKeyId(key.id), now).await?;
        }
        tx.commit().await.map_err(db::DbError::from)?;
        // API keys act with admin rights inside their tenant.
        let principal = Principal {
            actor: Actor::ApiKey { id: ApiKeyId(key.id), name: key.name },
            tenant: Some(TenantId(key.tenant_id)),
            role: Role::Admin,
            ctx,
        };
        return Ok((principal, false));
    }

    let mut tx = state.db.platform_tx().await?;
    let session =
        db::sessions::lookup(&mut tx, &crypto::sha256(token.as_bytes())).await?.ok_or_else(|| {
            ApiError::new(
                http::StatusCode::UNAUTHORIZED,
                "session_invalid",
                "session is invalid or has ended; log in again",
            )
        })?;
    let expired = now >= session.expires_at
        || now >= session.last_seen_at + Duration::seconds(i64::from(session.idle_timeout_s));
    if expired || session.disabled {
        db::sessions::revoke(&mut tx, SessionId(session.session_id), now).await?;
        tx.commit().await.map_err(db::DbError::from)?;
        return Err(ApiError::new(
            http::StatusCode::UNAUTHORIZED,
            "session_expired",
            "session has expired; log in again",
        ));
    }
    if (now - session.last_seen_at).num_seconds() >= TOUCH_EVERY_SECS {
        db::sessions::touch(&mut tx, SessionId(session.session_id), now).await?;
    }
    tx.commit().await.map_err(db::DbError::from)?;
    let role = Role::parse(&session.role).ok_or_else(ApiError::internal)?;
    let principal = Principal {
        actor: Actor::User {
            id: UserId(session.user_id),
            email: session.email,
            session: SessionId(session.session_id),
        },
        tenant: session.tenant_id.map(TenantId),
        role,
        ctx,
    };
    Ok((principal, session.kind == "mfa_enrollment"))
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (principal, enrollment_only) = authenticate(parts, state).await?;
        if enrollment_only {
            return Err(ApiError::new(
                http::StatusCode::FORBIDDEN,
                "mfa_enrollment_required",
                "enrol a second factor first: POST /api/v1/auth/mfa/totp/enroll, then /confirm",
            ));
        }
        Ok(principal)
    }
}

/// A tenant admin (or API key), checked before the body is read: other roles get 403 whatever
/// they send.
pub struct TenantAdmin {
    pub principal: Principal,
    pub tenant: TenantId,
}

impl FromRequestParts<AppState> for TenantAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        principal.require(Role::Admin)?;
        let tenant = principal.tenant()?;
        Ok(Self { principal, tenant })
    }
}

/// A platform operator, checked before the body is read.
pub struct Superadmin(pub Principal);

impl FromRequestParts<AppState> for Superadmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        principal.require(Role::Superadmin)?;
        Ok(Self(principal))
    }
}

impl FromRequestParts<AppState> for EnrollmentPrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (principal, enrollment_only) = authenticate(parts, state).await?;
        Ok(Self(principal, enrollment_only))
    }
}
