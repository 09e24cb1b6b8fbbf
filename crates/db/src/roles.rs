//! The two database roles: `sivo_owner` owns the schema and runs migrations; `sivo_app` is what
//! the application connects as. `sivo_app` owns nothing, is not a superuser and lacks BYPASSRLS,
//! so every query it runs goes through the row-level security policies.

use sqlx::PgConnection;

pub const OWNER_ROLE: &str = "sivo_owner";
pub const APP_ROLE: &str = "sivo_app";

/// Creates both roles if missing. `app_can_login` is true for the embedded cluster (the app logs
/// in as `sivo_app` over the private socket); on an external server the DBA chooses.
pub async fn ensure_roles(conn: &mut PgConnection, app_can_login: bool) -> Result<(), sqlx::Error> {
    for (role, attributes) in [
        (OWNER_ROLE, "nologin nosuperuser nocreatedb nocreaterole nobypassrls"),
        (
            APP_ROLE,
            if app_can_login {
                "login nosuperuser nocreatedb nocreaterole nobypassrls noinherit"
            } else {
                "nologin nosuperuser nocreatedb nocreaterole nobypassrls noinherit"
            },
        ),
    ] {
        let exists: bool = sqlx::query_scalar("select exists (select 1 from pg_roles where rolname = $1)")
            .bind(role)
            .fetch_one(&mut *conn)
            .await?;
        if !exists {
            // Role names are our constants, never user input.
            sqlx::query(&format!("create role {role} {attributes}")).execute(&mut *conn).await?;
        }
    }
    Ok(())
}
