//! Administrative operations shared by the HTTP handlers and the `sivo` command line, so both
//! validate, hash and audit in exactly one way.

use chrono::{DateTime, Utc};
use domain::{ApiKeyId, Role, TenantId, UserId};
use uuid::Uuid;

use crate::crypto;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::principal::RequestCtx;
use crate::routes::commit;

/// Who performs an operation, for the audit log.
pub struct OpActor {
    pub actor: db::audit::Actor,
    pub ctx: RequestCtx,
}

impl OpActor {
    pub fn cli() -> Self {
        Self { actor: db::audit::Actor::cli(), ctx: RequestCtx::default() }
    }
}

pub struct NewTenantInput {
    pub slug: String,
    pub name: String,
    pub plan: Option<String>,
}

pub const PLANS: [&str; 3] = ["free", "pro", "enterprise"];

pub fn validate_plan(plan: &str) -> Result<(), String> {
    if PLANS.contains(&plan) { Ok(()) } else { Err(format!("must be one of {}", PLANS.join(", "))) }
}

pub async fn create_tenant(
    db: &db::Db,
    input: NewTenantInput,
    by: &OpActor,
    now: DateTime<Utc>,
) -> ApiResult<db::tenants::TenantRow> {
    let mut errors = Vec::new();
    if let Err(e) = domain::validate::validate_slug(&input.slug) {
        errors.push(FieldError { field: "slug".into(), message: e.into() });
    }
    if let Err(e) = domain::validate::validate_name(&input.name, 120) {
        errors.push(FieldError { field: "name".into(), message: e });
    }
    let plan = input.plan.unwrap_or_else(|| "free".into());
    if let Err(e) = validate_plan(&plan) {
        errors.push(FieldError { field: "plan".into(), message: e });
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let mut tx = db.platform_tx().await?;
    let row = db::tenants::create(
        &mut tx,
        db::tenants::NewTenant {
            id: TenantId(Uuid::new_v4()),
            slug: &input.slug,
            name: input.name.trim(),
            plan: &plan,
            now,
        },
    )
    .await?;
    let mut entry =
        by.ctx.audit(None, by.actor.clone(), "tenant.created", "tenant", Some(row.id.to_string()), now);
    entry.after = serde_json::to_value(&row).ok();
    db::audit::insert(&mut tx, &entry).await?;
    commit(tx).await?;
    Ok(row)
}

pub struct NewUserInput {
    pub email: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub password: String,
}

/// Creates a user in `tenant` (None only for superadmins). Hashing runs on a blocking thread.
pub async fn create_user(
    db: &db::Db,
    tenant: Option<TenantId>,
    input: NewUserInput,
    by: &OpActor,
    now: DateTime<Utc>,
) -> ApiResult<db::users::UserRow> {
    let mut errors = Vec::new();
    let email = input.email.trim().to_owned();
    if let Err(e) = domain::validate::validate_email(&email) {
        errors.push(FieldError { field: "email".into(), message: e.into() });
    }
    let display_name =
        input.display_name.clone().unwrap_or_else(|| email.split('@').next().unwrap_or("").to_owned());
    if let Err(e) = domain::validate::validate_name(&display_name, 120) {
        errors.push(FieldError { field: "display_name".into(), message: e });
    }
    if let Err(e) = domain::validate::validate_password(&input.password) {
        errors.push(FieldError { field: "password".into(), message: e.to_string() });
    }
    if (input.role == Role::Superadmin) != tenant.is_none() {
        let message =
            if tenant.is_some() { "superadmins belong to no tenant" } else { "tenant users need a tenant" };
        errors.push(FieldError { field: "role".into(), message: message.into() });
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let password = input.password;
    let hash = tokio::task::spawn_blocking(move || crypto::hash_password(&password))
        .await
        .map_err(|_| ApiError::internal())?;
    let mut tx = match tenant {
        Some(t) => db.tenant_tx(t).await?,
        None => db.platform_tx().await?,
    };
    let row = db::users::create(
        &mut tx,
        db::users::NewUser {
            id: UserId(Uuid::new_v4()),
            tenant_id: tenant,
            email: &email,
            display_name: display_name.trim(),
            role: input.role,
            password_hash: &hash,
            now,
        },
    )
    .await?;
    let mut entry =
        by.ctx.audit(tenant, by.actor.clone(), "user.created", "user", Some(row.id.to_string()), now);
    entry.after = serde_json::to_value(crate::routes::users::UserOut::from(row.clone())).ok();
    db::audit::insert(&mut tx, &entry).await?;
    commit(tx).await?;
    Ok(row)
}

/// Creates an API key; the returned string is the only time the key exists in clear.
pub async fn create_api_key(
    db: &db::Db,
    tenant: TenantId,
    name: &str,
    created_by: Option<UserId>,
    by: &OpActor,
    now: DateTime<Utc>,
) -> ApiResult<(db::api_keys::ApiKeyRow, String)> {
    domain::validate::validate_name(name, 80).map_err(|e| ApiError::field("name", e))?;
    let (prefix, key) = crypto::new_api_key();
    let mut tx = db.tenant_tx(tenant).await?;
    let row = db::api_keys::create(
        &mut tx,
        db::api_keys::NewApiKey {
            id: ApiKeyId(Uuid::new_v4()),
            tenant_id: tenant,
            name: name.trim(),
            prefix: &prefix,
            key_hash: &crypto::sha256(key.as_bytes()),
            created_by,
            now,
        },
    )
    .await?;
    let mut entry = by.ctx.audit(
        Some(tenant),
        by.actor.clone(),
        "api_key.created",
        "api_key",
        Some(row.id.to_string()),
        now,
    );
    entry.after = Some(serde_json::json!({"name": row.name, "prefix": row.prefix}));
    db::audit::insert(&mut tx, &entry).await?;
    commit(tx).await?;
    Ok((row, key))
}
