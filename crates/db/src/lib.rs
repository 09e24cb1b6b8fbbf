//! All of SIVO's SQL: the connection pool, migrations, tenant-scoped transactions and the queries,
//! grouped by aggregate. No other crate talks to PostgreSQL.
//!
//! Every query runs inside a transaction opened by [`Db::tenant_tx`] (which sets
//! `app.tenant_id` for that transaction only) or [`Db::platform_tx`] (identity tables across
//! tenants, for login and superadmin work). Row-level security does the filtering; the queries
//! still name `tenant_id` where it helps the planner use an index.

pub mod agent_states;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod calls;
pub mod embedded;
pub mod outbox;
pub mod page;
pub mod queues;
pub mod roles;
pub mod sessions;
pub mod sip;
pub mod tenant_settings;
pub mod tenants;
pub mod trunks;
pub mod users;
pub mod webhooks;
pub mod work_queue;

use std::time::Duration;

use domain::TenantId;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions as _, Connection as _, PgPool, Postgres};

pub use sqlx::PgConnection;

/// The migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub type Tx = sqlx::Transaction<'static, Postgres>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("not found")]
    NotFound,
    /// A unique constraint was violated; carries the constraint name.
    #[error("conflicts with an existing row ({0})")]
    Conflict(String),
    #[error("database error: {0}")]
    Sqlx(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Database(ref db) if db.code().as_deref() == Some("23505") => {
                Self::Conflict(db.constraint().unwrap_or("unique").to_owned())
            }
            other => Self::Sqlx(other),
        }
    }
}

pub type Result<T, E = DbError> = std::result::Result<T, E>;

/// The application's handle on the database: a pool of `sivo_app` connections.
#[derive(Clone, Debug)]
pub struct Db {
    pool: PgPool,
}

impl Db {
    /// Connects as the application role. `max_connections` bounds the pool.
    pub async fn connect(options: PgConnectOptions, max_connections: u32) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .idle_timeout(Duration::from_secs(300))
            .test_before_acquire(false)
            .connect_with(options.log_statements(tracing::log::LevelFilter::Trace))
            .await?;
        Ok(Self { pool })
    }

    /// Like [`Db::connect`], but every connection switches to `role` first. For external servers
    /// where only one login is available: that login must be a member of `sivo_app`.
    pub async fn connect_as_role(options: PgConnectOptions, role: &'static str, max: u32) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    sqlx::query(&format!("set role {role}")).execute(conn).await?;
                    Ok(())
                })
            })
            .connect_with(options.log_statements(tracing::log::LevelFilter::Trace))
            .await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Opens a transaction in which only `tenant`'s rows exist. The setting is transaction-local
    /// (`set_config(…, true)`), so it cannot leak to the next user of the pooled connection,
    /// whether the transaction commits or rolls back. One round trip: `BEGIN` and the setting
    /// travel together. A `TenantId` formats as a bare UUID, so it is safe to inline.
    pub async fn tenant_tx(&self, tenant: TenantId) -> Result<Tx> {
        let begin = format!("BEGIN; SELECT set_config('app.tenant_id', '{}', true)", tenant.as_uuid());
        Ok(self.pool.begin_with(begin).await?)
    }

    /// Like [`Db::tenant_tx`], for soft state that clients repeat (SIP registration bindings):
    /// the commit does not wait for the WAL to reach disk (`synchronous_commit = off`, for this
    /// transaction only), so a crash may lose its last fraction of a second.
    pub async fn tenant_tx_async_commit(&self, tenant: TenantId) -> Result<Tx> {
        let begin = format!(
            "BEGIN; SELECT set_config('app.tenant_id', '{}', true), set_config('synchronous_commit', 'off', true)",
            tenant.as_uuid()
        );
        Ok(self.pool.begin_with(begin).await?)
    }

    /// Opens a transaction in platform mode: identity tables (tenants, users, sessions, API keys,
    /// audit log) are visible across tenants; tenant business tables remain empty.
    pub async fn platform_tx(&self) -> Result<Tx> {
        Ok(self.pool.begin_with("BEGIN; SELECT set_config('app.platform', 'on', true)").await?)
    }

    /// A transaction with no tenant at all: sees nothing in tenant tables. Used by tests to prove it.
    pub async fn bare_tx(&self) -> Result<Tx> {
        Ok(self.pool.begin().await?)
    }

    /// `SELECT 1`, for readiness probes.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    /// After the database restarted, every idle pooled connection is dead and would fail one
    /// query each. Pings the idle ones and closes those that do not answer, so callers recover
    /// in one step instead of one failure per connection.
    pub async fn discard_broken_connections(&self) -> usize {
        let mut held = Vec::new();
        for _ in 0..self.pool.num_idle() {
            match self.pool.try_acquire() {
                Some(conn) => held.push(conn),
                None => break,
            }
        }
        let mut discarded = 0;
        for mut conn in held {
            if conn.ping().await.is_err() {
                conn.close_on_drop();
                discarded += 1;
            }
        }
        discarded
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Applies pending migrations on a connection that acts as the owner role.
pub async fn migrate(owner: &PgConnectOptions) -> Result<()> {
    let mut conn = owner.clone().log_statements(tracing::log::LevelFilter::Trace).connect().await?;
    // On an external server the migrating login may itself be the owner; make sure the
    // application role exists (needs CREATEROLE, or create it beforehand as documented).
    roles::ensure_roles(&mut conn, false).await?;
    MIGRATOR.run(&mut conn).await?;
    conn.close().await?;
    Ok(())
}
