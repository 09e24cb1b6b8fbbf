//! Getting a database for a command: an external server from `DATABASE_URL`, the embedded
//! cluster that a running `sivo serve` already supervises, or our own embedded cluster.

use anyhow::Context as _;
use db::embedded::{EmbeddedConfig, EmbeddedPostgres};
use sqlx::postgres::PgConnectOptions;

use crate::config::Config;

/// An open database, and the embedded cluster if this process owns one.
pub(crate) struct Database {
    pub(crate) db: db::Db,
    pub(crate) embedded: Option<EmbeddedPostgres>,
}

/// Owner and application connection options.
struct Endpoints {
    owner: PgConnectOptions,
    app: AppEndpoint,
}

enum AppEndpoint {
    Login(PgConnectOptions),
    SetRole(PgConnectOptions),
}

impl Database {
    /// For `serve`: owns the embedded cluster (stopping an orphan left by a killed sivo).
    pub(crate) async fn open_owned(config: &Config) -> anyhow::Result<Self> {
        Self::open(config, true).await
    }

    /// For admin commands: share the cluster of a running `sivo serve` if there is one.
    pub(crate) async fn open_shared(config: &Config) -> anyhow::Result<Self> {
        Self::open(config, false).await
    }

    async fn open(config: &Config, own: bool) -> anyhow::Result<Self> {
        let (endpoints, embedded) = match &config.database.url {
            Some(url) => {
                let owner: PgConnectOptions = url.expose().parse().context("database.url")?;
                let app = match &config.database.app_url {
                    Some(app) => AppEndpoint::Login(app.expose().parse().context("database.app_url")?),
                    None => AppEndpoint::SetRole(owner.clone()),
                };
                (Endpoints { owner, app }, None)
            }
            None => {
                let running = if own { None } else { db::embedded::running_cluster(&config.data_dir).await };
                match running {
                    Some(layout) => {
                        tracing::debug!("using the embedded PostgreSQL of the running sivo serve");
                        let owner = layout
                            .connect_options(db::embedded::SUPERUSER, db::embedded::DATABASE)
                            .options([("role", db::roles::OWNER_ROLE)]);
                        let app = AppEndpoint::Login(
                            layout.connect_options(db::roles::APP_ROLE, db::embedded::DATABASE),
                        );
                        (Endpoints { owner, app }, None)
                    }
                    None => {
                        let pg = EmbeddedPostgres::start(&EmbeddedConfig {
                            data_dir: config.data_dir.clone(),
                            unsafe_fast: false,
                        })
                        .await
                        .context("starting the embedded PostgreSQL")?;
                        let endpoints = Endpoints {
                            owner: pg.owner_options(),
                            app: AppEndpoint::Login(pg.app_options()),
                        };
                        (endpoints, Some(pg))
                    }
                }
            }
        };
        db::migrate(&endpoints.owner).await.context("applying database migrations")?;
        let max = config.database.max_connections;
        let db = match endpoints.app {
            AppEndpoint::Login(options) => db::Db::connect(options, max).await,
            AppEndpoint::SetRole(options) => db::Db::connect_as_role(options, db::roles::APP_ROLE, max).await,
        }
        .context("connecting as the application role sivo_app")?;
        Ok(Self { db, embedded })
    }

    /// Closes the pool and stops the embedded cluster if we own it.
    pub(crate) async fn close(self) -> anyhow::Result<()> {
        self.db.close().await;
        if let Some(pg) = self.embedded {
            pg.stop().await.context("stopping the embedded PostgreSQL")?;
        }
        Ok(())
    }
}
