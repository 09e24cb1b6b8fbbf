//! Users of a tenant, managed by its admins.

// utoipa's IntoParams expansion names the params type with a redundant path.
#![allow(unused_qualifications)]

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::{Role, TenantId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{PageOut, PageParams, commit};
use crate::AppState;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Json, Path, Query};
use crate::ops::{self, OpActor};
use crate::principal::{Principal, TenantAdmin};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(reset_mfa))
}

/// A user as the API shows it (never the password hash or MFA secret).
#[derive(Clone, Serialize, ToSchema)]
pub(crate) struct UserOut {
    pub(crate) id: UserId,
    pub(crate) tenant_id: Option<TenantId>,
    pub(crate) email: String,
    pub(crate) display_name: String,
    pub(crate) role: Role,
    pub(crate) mfa_enabled: bool,
    /// Set while the account is temporarily locked after failed logins.
    pub(crate) locked_until: Option<DateTime<Utc>>,
    pub(crate) disabled: bool,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

impl From<db::users::UserRow> for UserOut {
    fn from(row: db::users::UserRow) -> Self {
        Self {
            id: row.user_id(),
            tenant_id: row.tenant(),
            role: row.role(),
            email: row.email,
            display_name: row.display_name,
            mfa_enabled: row.totp_enabled,
            locked_until: row.locked_until,
            disabled: row.disabled,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserIn {
    email: String,
    display_name: Option<String>,
    role: Role,
    /// 12 to 128 characters.
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserPatch {
    display_name: Option<String>,
    role: Option<Role>,
    disabled: Option<bool>,
    /// Sets a new password and ends the user's sessions.
    password: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserListParams {
    role: Option<Role>,
    cursor: Option<String>,
    limit: Option<u32>,
}

fn by(principal: &Principal) -> OpActor {
    OpActor { actor: principal.audit_actor(), ctx: principal.ctx.clone() }
}

/// List the tenant's users.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = [])), params(UserListParams),
    responses((status = 200, body = PageOut<UserOut>)))]
async fn list_users(
    State(state): State<AppState>,
    TenantAdmin { tenant, .. }: TenantAdmin,
    Query(params): Query<UserListParams>,
) -> ApiResult<Json<PageOut<UserOut>>> {
    let (cursor, limit) = PageParams { cursor: params.cursor, limit: params.limit }.parse()?;
    let mut tx = state.db.tenant_tx(tenant).await?;
    let page =
        db::users::list(&mut tx, tenant, &db::users::UserFilter { role: params.role }, cursor, limit).await?;
    commit(tx).await?;
    Ok(Json(PageOut::from_page(page, UserOut::from)))
}

/// Create a user (agent, supervisor or admin) in the tenant.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", security(("bearer" = [])), request_body = UserIn,
    responses((status = 201, body = UserOut), (status = 409, description = "email_taken", body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn create_user(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Json(input): Json<UserIn>,
) -> ApiResult<(StatusCode, Json<UserOut>)> {
    let input = ops::NewUserInput {
        email: input.email,
        display_name: input.display_name,
        role: input.role,
        password: input.password,
    };
    let row = ops::create_user(&state.db, Some(tenant), input, &by(&principal), state.clock.now()).await?;
    Ok((StatusCode::CREATED, Json(UserOut::from(row))))
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = UserId, Path)),
    responses((status = 200, body = UserOut), (status = 404, body = crate::error::Problem)))]
async fn get_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<UserId>,
) -> ApiResult<Json<UserOut>> {
    // Everyone may read themselves; reading others needs admin.
    let tenant = principal.tenant()?;
    if principal.user_id() != Some(id) {
        principal.require(Role::Admin)?;
    }
    let mut tx = state.db.tenant_tx(tenant).await?;
    let row = db::users::get(&mut tx, id).await?;
    commit(tx).await?;
    Ok(Json(UserOut::from(row)))
}

/// Change a user's name, role, password or disabled flag.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = UserId, Path)), request_body = UserPatch,
    responses((status = 200, body = UserOut), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn update_user(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Path(id): Path<UserId>,
    Json(patch): Json<UserPatch>,
) -> ApiResult<Json<UserOut>> {
    let mut errors = Vec::new();
    if let Some(name) = &patch.display_name
        && let Err(e) = domain::validate::validate_name(name, 120)
    {
        errors.push(FieldError { field: "display_name".into(), message: e });
    }
    if patch.role == Some(Role::Superadmin) {
        errors.push(FieldError { field: "role".into(), message: "superadmins belong to no tenant".into() });
    }
    if let Some(password) = &patch.password
        && let Err(e) = domain::validate::validate_password(password)
    {
        errors.push(FieldError { field: "password".into(), message: e.to_string() });
    }
    if principal.user_id() == Some(id)
        && (patch.disabled == Some(true) || patch.role.is_some_and(|r| r != Role::Admin))
    {
        errors.push(FieldError {
            field: "role".into(),
            message: "you cannot demote or disable yourself".into(),
        });
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let password_hash = match patch.password.clone() {
        Some(p) => Some(
            tokio::task::spawn_blocking(move || crate::crypto::hash_password(&p))
                .await
                .map_err(|_| ApiError::internal())?,
        ),
        None => None,
    };
    let now = state.clock.now();
    let mut tx = state.db.tenant_tx(tenant).await?;
    let before = UserOut::from(db::users::get(&mut tx, id).await?);
    let row = db::users::update(
        &mut tx,
        id,
        db::users::UserPatch {
            display_name: patch.display_name.as_deref().map(str::trim),
            role: patch.role,
            disabled: patch.disabled,
            password_hash: password_hash.as_deref(),
        },
        now,
    )
    .await?;
    if password_hash.is_some() || patch.disabled == Some(true) || patch.role.is_some_and(|r| r != before.role)
    {
        db::sessions::revoke_all_for_user(&mut tx, id, None, now).await?;
    }
    let after = UserOut::from(row);
    let mut entry = principal.audit("user.updated", "user", Some(id.to_string()), now);
    entry.before = serde_json::to_value(&before).ok();
    entry.after = serde_json::to_value(&after).ok();
    if password_hash.is_some() {
        entry
            .after
            .as_mut()
            .and_then(|v| v.as_object_mut())
            .map(|o| o.insert("password_changed".into(), true.into()));
    }
    db::audit::insert(&mut tx, &entry).await?;
    commit(tx).await?;
    Ok(Json(after))
}

/// Delete a user.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = UserId, Path)),
    responses((status = 204, description = "deleted"), (status = 404, body = crate::error::Problem)))]
async fn delete_user(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Path(id): Path<UserId>,
) -> ApiResult<StatusCode> {
    if principal.user_id() == Some(id) {
        return Err(ApiError::conflict("cannot_delete_self", "you cannot delete your own account"));
    }
    let now = state.clock.now();
    let mut tx = state.db.tenant_tx(tenant).await?;
    let before = UserOut::from(db::users::get(&mut tx, id).await?);
    db::users::delete(&mut tx, id).await?;
    let mut entry = principal.audit("user.deleted", "user", Some(id.to_string()), now);
    entry.before = serde_json::to_value(&before).ok();
    db::audit::insert(&mut tx, &entry).await?;
    commit(tx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a user's second factor (lost device) and end their sessions; they enrol again at next login.
#[utoipa::path(post, path = "/api/v1/users/{id}/mfa/reset", tag = "users", security(("bearer" = [])), params(("id" = UserId, Path)),
    responses((status = 204, description = "reset"), (status = 404, body = crate::error::Problem)))]
async fn reset_mfa(
    State(state): State<AppState>,
    TenantAdmin { principal, tenant }: TenantAdmin,
    Path(id): Path<UserId>,
) -> ApiResult<StatusCode> {
    let now = state.clock.now();
    let mut tx = state.db.tenant_tx(tenant).await?;
    db::users::get(&mut tx, id).await?;
    db::users::disable_totp(&mut tx, id, now).await?;
    db::sessions::revoke_all_for_user(&mut tx, id, None, now).await?;
    db::audit::insert(&mut tx, &principal.audit("auth.mfa.reset", "user", Some(id.to_string()), now)).await?;
    commit(tx).await?;
    Ok(StatusCode::NO_CONTENT)
}
