//! Login, logout, the current user, and TOTP enrolment.
//!
//! Login answers unknown e-mail, wrong password, locked and disabled accounts with the same
//! status and body, and does exactly one Argon2 verification on every path, so neither the
//! response nor its timing tells whether an account exists.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use domain::{Role, SessionId, TenantId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::commit;
use super::users::UserOut;
use crate::AppState;
use crate::crypto::{self, totp};
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::principal::{Actor, EnrollmentPrincipal, Principal, RequestCtx, SESSION_COOKIE};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(change_password))
        .routes(routes!(totp_enroll))
        .routes(routes!(totp_confirm))
        .routes(routes!(totp_disable))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginIn {
    email: String,
    password: String,
    /// The current 6-digit code from the authenticator app (required for admins).
    totp_code: Option<String>,
    /// A one-time recovery code, instead of `totp_code`.
    recovery_code: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct LoginOut {
    /// Bearer token for `Authorization: Bearer …` (also set as the `sivo_session` cookie).
    token: String,
    expires_at: DateTime<Utc>,
    /// True when the token may only enrol a second factor (admins without MFA yet).
    mfa_enrollment_required: bool,
    user: UserOut,
}

fn invalid_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "invalid credentials; after 5 failed attempts in 15 minutes the account is locked for a while, try again later",
    )
}

fn mfa_required() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "mfa_required",
        "this account needs a TOTP code (totp_code) or a recovery code",
    )
}

/// Log in with e-mail and password (plus a TOTP code for MFA accounts).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginIn,
    responses((status = 200, body = LoginOut), (status = 401, description = "invalid_credentials or mfa_required", body = crate::error::Problem)))]
async fn login(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Json(input): Json<LoginIn>,
) -> ApiResult<Response> {
    // Bound the work an anonymous caller can cause before hashing.
    if input.email.len() > 254 || input.password.chars().count() > domain::validate::PASSWORD_MAX_CHARS * 4 {
        return Err(invalid_credentials());
    }
    let now = state.clock.now();
    let found = {
        let mut tx = state.db.platform_tx().await?;
        let user = db::users::find_by_email(&mut tx, &input.email).await?;
        commit(tx).await?;
        user
    };
    let password = input.password.clone();
    let hash = found.as_ref().map_or_else(|| state.dummy_password_hash.clone(), |u| u.password_hash.clone());
    let password_ok = tokio::task::spawn_blocking(move || crypto::verify_password(&password, &hash))
        .await
        .map_err(|_| ApiError::internal())?;

    let Some(user) = found else {
        state.metrics.login("unknown_user");
        let mut tx = state.db.platform_tx().await?;
        let mut entry =
            ctx.audit(None, db::audit::Actor::anonymous(), "auth.login.failed", "user", None, now);
        entry.after = Some(serde_json::json!({"reason": "unknown_email"}));
        db::audit::insert(&mut tx, &entry).await?;
        commit(tx).await?;
        return Err(invalid_credentials());
    };

    let tenant = user.tenant();
    let user_id = user.user_id();
    let role = user.role();
    let mut tx = open_for(&state, tenant).await?;
    let actor = db::audit::Actor::user(user.id, &user.email);
    let audit = |action: &str, reason: Option<&str>| {
        let mut entry = ctx.audit(tenant, actor.clone(), action, "user", Some(user.id.to_string()), now);
        entry.after = reason.map(|r| serde_json::json!({"reason": r}));
        entry
    };

    if user.locked_until.is_some_and(|until| until > now) {
        state.metrics.login("locked");
        db::audit::insert(&mut tx, &audit("auth.login.refused", Some("account_locked"))).await?;
        commit(tx).await?;
        return Err(invalid_credentials());
    }
    if user.disabled {
        state.metrics.login("disabled");
        db::audit::insert(&mut tx, &audit("auth.login.refused", Some("account_disabled"))).await?;
        commit(tx).await?;
        return Err(invalid_credentials());
    }
    if !password_ok {
        state.metrics.login("bad_password");
        record_failure(&state, &mut tx, tenant, user_id, "bad_password", now, &audit).await?;
        commit(tx).await?;
        return Err(invalid_credentials());
    }

    let mfa_needed = user.totp_enabled || role.requires_mfa();
    let mut enrollment_only = false;
    if user.totp_enabled {
        match (input.totp_code.as_deref(), input.recovery_code.as_deref()) {
            (None, None) => {
                // Right password, second factor missing: not a failure, but say what is needed.
                state.metrics.login("mfa_required");
                commit(tx).await?;
                return Err(mfa_required());
            }
            (Some(code), _) => {
                let secret = decrypt_totp_secret(&state, &user)?;
                let step = totp::verify(&secret, code, now.timestamp().max(0) as u64);
                let fresh = match step {
                    Some(step) => db::users::consume_totp_step(&mut tx, user_id, step as i64).await?,
                    None => false,
                };
                if !fresh {
                    let reason = if step.is_some() { "totp_replayed" } else { "bad_totp" };
                    state.metrics.login("bad_totp");
                    record_failure(&state, &mut tx, tenant, user_id, reason, now, &audit).await?;
                    commit(tx).await?;
                    return Err(invalid_credentials());
                }
            }
            (None, Some(code)) => {
                let hash = crypto::sha256(crypto::normalize_recovery_code(code).as_bytes());
                if !db::auth::use_recovery_code(&mut tx, user_id, &hash, now).await? {
                    state.metrics.login("bad_recovery_code");
                    record_failure(&state, &mut tx, tenant, user_id, "bad_recovery_code", now, &audit)
                        .await?;
                    commit(tx).await?;
                    return Err(invalid_credentials());
                }
                db::audit::insert(&mut tx, &audit("auth.mfa.recovery_code_used", None)).await?;
            }
        }
    } else if mfa_needed {
        // An admin who has never enrolled: a short session that can only enrol.
        enrollment_only = true;
    }

    db::auth::clear_failures(&mut tx, user_id).await?;
    let token = crypto::random_token();
    let (idle, absolute) = if enrollment_only {
        (Duration::minutes(10), Duration::minutes(10))
    } else {
        let idle = if role.requires_mfa() {
            state.config.admin_idle_timeout
        } else {
            state.config.session_idle_timeout
        };
        (to_chrono(idle), to_chrono(state.config.session_absolute_timeout))
    };
    let expires_at = now + absolute;
    db::sessions::create(
        &mut tx,
        db::sessions::NewSession {
            id: SessionId(Uuid::new_v4()),
            tenant_id: tenant,
            user_id,
            token_hash: &crypto::sha256(token.as_bytes()),
            kind: if enrollment_only { "mfa_enrollment" } else { "full" },
            now,
            idle_timeout_s: idle.num_seconds() as i32,
            expires_at,
            source_ip: ctx.source_ip.as_deref(),
            user_agent: ctx.user_agent.as_deref(),
        },
    )
    .await?;
    let action = if enrollment_only { "auth.login.mfa_enrollment_pending" } else { "auth.login.succeeded" };
    db::audit::insert(&mut tx, &audit(action, None)).await?;
    commit(tx).await?;
    state.metrics.login(if enrollment_only { "enrollment_pending" } else { "succeeded" });

    let body = LoginOut {
        token: token.clone(),
        expires_at,
        mfa_enrollment_required: enrollment_only,
        user: UserOut::from(user),
    };
    let mut response = Json(body).into_response();
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        absolute.num_seconds(),
        if state.config.cookie_secure { "; Secure" } else { "" }
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

fn to_chrono(d: std::time::Duration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::hours(12))
}

async fn open_for(state: &AppState, tenant: Option<TenantId>) -> ApiResult<db::Tx> {
    Ok(match tenant {
        Some(t) => state.db.tenant_tx(t).await?,
        None => state.db.platform_tx().await?,
    })
}

/// Counts a failure; the one that reaches the threshold locks the account and is audit-logged.
async fn record_failure(
    state: &AppState,
    tx: &mut db::Tx,
    tenant: Option<TenantId>,
    user: UserId,
    reason: &str,
    now: DateTime<Utc>,
    audit: &impl Fn(&str, Option<&str>) -> db::audit::NewAudit,
) -> ApiResult<()> {
    let since = now - to_chrono(state.config.lockout_window);
    let failures = db::auth::record_failure(tx, tenant, user, reason, now, since).await?;
    db::audit::insert(tx, &audit("auth.login.failed", Some(reason))).await?;
    if failures >= i64::from(state.config.lockout_threshold) {
        db::auth::lock_until(tx, user, now + to_chrono(state.config.lockout_duration)).await?;
        db::audit::insert(tx, &audit("auth.lockout", Some("too_many_failures"))).await?;
        state.metrics.login("locked_out");
    }
    Ok(())
}

fn totp_context(user: Uuid) -> String {
    format!("user-totp:{user}")
}

fn decrypt_totp_secret(state: &AppState, user: &db::users::UserRow) -> ApiResult<Vec<u8>> {
    let sealed = user.totp_secret_enc.as_deref().ok_or_else(ApiError::internal)?;
    state.vault.decrypt(sealed, &totp_context(user.id)).map_err(|e| {
        tracing::error!(error = %e, "cannot decrypt a TOTP secret (was the master key changed?)");
        ApiError::internal()
    })
}

/// End this session at once.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "session revoked")))]
async fn logout(
    State(state): State<AppState>,
    EnrollmentPrincipal(principal, _): EnrollmentPrincipal,
) -> ApiResult<Response> {
    let Actor::User { session, .. } = &principal.actor else {
        return Err(ApiError::bad_request(
            "not_a_session",
            "API keys are revoked with DELETE /api/v1/api-keys/{id}",
        ));
    };
    let now = state.clock.now();
    let mut tx = open_for(&state, principal.tenant).await?;
    db::sessions::revoke(&mut tx, *session, now).await?;
    db::audit::insert(&mut tx, &principal.audit("auth.logout", "session", Some(session.to_string()), now))
        .await?;
    commit(tx).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&clear) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MeOut {
    /// `user` or `api_key`.
    kind: &'static str,
    role: Role,
    tenant_id: Option<TenantId>,
    user: Option<UserOut>,
    api_key_name: Option<String>,
    /// Only a second factor may be enrolled with this session.
    mfa_enrollment_required: bool,
}

/// Who am I: the user (or API key) behind this token.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])), responses((status = 200, body = MeOut)))]
async fn me(
    State(state): State<AppState>,
    EnrollmentPrincipal(principal, enrollment_only): EnrollmentPrincipal,
) -> ApiResult<Json<MeOut>> {
    let (user, api_key_name) = match &principal.actor {
        Actor::User { id, .. } => {
            let mut tx = open_for(&state, principal.tenant).await?;
            let row = db::users::get(&mut tx, *id).await?;
            commit(tx).await?;
            (Some(UserOut::from(row)), None)
        }
        Actor::ApiKey { name, .. } => (None, Some(name.clone())),
    };
    Ok(Json(MeOut {
        kind: if user.is_some() { "user" } else { "api_key" },
        role: principal.role,
        tenant_id: principal.tenant,
        user,
        api_key_name,
        mfa_enrollment_required: enrollment_only,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordChangeIn {
    current_password: String,
    new_password: String,
}

/// Change my password; every other session of mine ends.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "auth", security(("bearer" = [])), request_body = PasswordChangeIn,
    responses((status = 204, description = "changed")))]
async fn change_password(
    State(state): State<AppState>,
    principal: Principal,
    Json(input): Json<PasswordChangeIn>,
) -> ApiResult<StatusCode> {
    let Actor::User { id, session, .. } = principal.actor.clone() else {
        return Err(ApiError::forbidden("API keys have no password"));
    };
    domain::validate::validate_password(&input.new_password)
        .map_err(|e| ApiError::field("new_password", e.to_string()))?;
    let mut tx = open_for(&state, principal.tenant).await?;
    let user = db::users::get(&mut tx, id).await?;
    let current = input.current_password;
    let stored = user.password_hash.clone();
    let new_password = input.new_password;
    let (ok, new_hash) = tokio::task::spawn_blocking(move || {
        (crypto::verify_password(&current, &stored), crypto::hash_password(&new_password))
    })
    .await
    .map_err(|_| ApiError::internal())?;
    if !ok {
        return Err(ApiError::field("current_password", "is not your current password"));
    }
    let now = state.clock.now();
    db::users::update(
        &mut tx,
        id,
        db::users::UserPatch { password_hash: Some(&new_hash), ..Default::default() },
        now,
    )
    .await?;
    // Every other session ends; the one that made the change stays.
    db::sessions::revoke_all_for_user(&mut tx, id, Some(session), now).await?;
    db::audit::insert(&mut tx, &principal.audit("auth.password.changed", "user", Some(id.to_string()), now))
        .await?;
    commit(tx).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TotpEnrollOut {
    /// The shared secret in base32, for manual entry.
    secret: String,
    /// `otpauth://` URI for authenticator apps.
    otpauth_uri: String,
    /// The URI as an SVG QR code.
    qr_svg: String,
}

/// Start TOTP enrolment: a new secret, not active until confirmed with a code.
#[utoipa::path(post, path = "/api/v1/auth/mfa/totp/enroll", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = TotpEnrollOut), (status = 409, description = "already enabled", body = crate::error::Problem)))]
async fn totp_enroll(
    State(state): State<AppState>,
    EnrollmentPrincipal(principal, _): EnrollmentPrincipal,
) -> ApiResult<Json<TotpEnrollOut>> {
    let Actor::User { id, email, .. } = principal.actor.clone() else {
        return Err(ApiError::forbidden("API keys cannot enrol MFA"));
    };
    let now = state.clock.now();
    let mut tx = open_for(&state, principal.tenant).await?;
    let user = db::users::get(&mut tx, id).await?;
    if user.totp_enabled {
        return Err(ApiError::conflict(
            "mfa_already_enabled",
            "TOTP is already enabled; disable it first to enrol a new device",
        ));
    }
    let secret = totp::new_secret();
    let sealed = state.vault.encrypt(&secret, &totp_context(id.as_uuid()));
    db::users::set_pending_totp(&mut tx, id, &sealed, now).await?;
    db::audit::insert(
        &mut tx,
        &principal.audit("auth.mfa.enrollment_started", "user", Some(id.to_string()), now),
    )
    .await?;
    commit(tx).await?;
    let uri = totp::otpauth_uri(&secret, &state.config.totp_issuer, &email);
    Ok(Json(TotpEnrollOut {
        secret: totp::secret_base32(&secret),
        qr_svg: totp::qr_svg(&uri),
        otpauth_uri: uri,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TotpCodeIn {
    /// The current 6-digit code.
    code: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TotpConfirmOut {
    /// Ten one-time codes for when the device is lost. Shown once; store them safely.
    recovery_codes: Vec<String>,
    /// True when this was an enrolment-only session, now ended: log in again with a code.
    session_ended: bool,
}

/// Confirm enrolment with a first code; returns recovery codes once.
#[utoipa::path(post, path = "/api/v1/auth/mfa/totp/confirm", tag = "auth", security(("bearer" = [])), request_body = TotpCodeIn,
    responses((status = 200, body = TotpConfirmOut), (status = 422, body = crate::error::Problem)))]
async fn totp_confirm(
    State(state): State<AppState>,
    EnrollmentPrincipal(principal, enrollment_only): EnrollmentPrincipal,
    Json(input): Json<TotpCodeIn>,
) -> ApiResult<Json<TotpConfirmOut>> {
    let Actor::User { id, session, .. } = principal.actor.clone() else {
        return Err(ApiError::forbidden("API keys cannot enrol MFA"));
    };
    let now = state.clock.now();
    let mut tx = open_for(&state, principal.tenant).await?;
    let user = db::users::get(&mut tx, id).await?;
    if user.totp_enabled {
        return Err(ApiError::conflict("mfa_already_enabled", "TOTP is already enabled"));
    }
    if user.totp_secret_enc.is_none() {
        return Err(ApiError::conflict("mfa_not_enrolling", "start with POST /api/v1/auth/mfa/totp/enroll"));
    }
    let secret = decrypt_totp_secret(&state, &user)?;
    let Some(step) = totp::verify(&secret, &input.code, now.timestamp().max(0) as u64) else {
        return Err(ApiError::field(
            "code",
            "the code does not match; check the device clock and try the current code",
        ));
    };
    db::users::enable_totp(&mut tx, id, step as i64, now).await?;
    let codes = crypto::new_recovery_codes();
    let hashes: Vec<Vec<u8>> = codes.iter().map(|c| crypto::sha256(c.as_bytes())).collect();
    db::auth::replace_recovery_codes(&mut tx, principal.tenant, id, &hashes).await?;
    if enrollment_only {
        db::sessions::revoke(&mut tx, session, now).await?;
    }
    db::audit::insert(&mut tx, &principal.audit("auth.mfa.enabled", "user", Some(id.to_string()), now))
        .await?;
    commit(tx).await?;
    Ok(Json(TotpConfirmOut { recovery_codes: codes, session_ended: enrollment_only }))
}

/// Turn TOTP off (not allowed for roles that require MFA).
#[utoipa::path(delete, path = "/api/v1/auth/mfa/totp", tag = "auth", security(("bearer" = [])), request_body = TotpCodeIn,
    responses((status = 204, description = "disabled"), (status = 409, body = crate::error::Problem)))]
async fn totp_disable(
    State(state): State<AppState>,
    principal: Principal,
    Json(input): Json<TotpCodeIn>,
) -> ApiResult<StatusCode> {
    let Actor::User { id, .. } = principal.actor.clone() else {
        return Err(ApiError::forbidden("API keys have no MFA"));
    };
    if principal.role.requires_mfa() {
        return Err(ApiError::conflict(
            "mfa_required_for_role",
            format!("MFA is mandatory for the {} role", principal.role),
        ));
    }
    let now = state.clock.now();
    let mut tx = open_for(&state, principal.tenant).await?;
    let user = db::users::get(&mut tx, id).await?;
    if !user.totp_enabled {
        return Err(ApiError::conflict("mfa_not_enabled", "TOTP is not enabled"));
    }
    let secret = decrypt_totp_secret(&state, &user)?;
    let fresh = match totp::verify(&secret, &input.code, now.timestamp().max(0) as u64) {
        Some(step) => db::users::consume_totp_step(&mut tx, id, step as i64).await?,
        None => false,
    };
    if !fresh {
        return Err(ApiError::field("code", "the code does not match or was already used"));
    }
    db::users::disable_totp(&mut tx, id, now).await?;
    db::audit::insert(&mut tx, &principal.audit("auth.mfa.disabled", "user", Some(id.to_string()), now))
        .await?;
    commit(tx).await?;
    Ok(StatusCode::NO_CONTENT)
}
