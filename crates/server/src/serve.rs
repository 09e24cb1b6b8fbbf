//! `sivo serve`: wires the database, the HTTP API and background maintenance, supervises the
//! embedded PostgreSQL, and shuts everything down cleanly on Ctrl-C or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use db::embedded::{EmbeddedConfig, EmbeddedPostgres};
use tokio::sync::watch;

use crate::config::Config;
use crate::database::Database;

pub(crate) async fn run(config: Config) -> anyhow::Result<()> {
    init_tracing(&config);
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let _lock = lock_data_dir(&config)?;
    let vault = config.vault().context("loading the master key")?;

    let database = Database::open_owned(&config).await?;
    let state = api::AppState::new(
        database.db.clone(),
        vault.clone(),
        Arc::new(api::SystemClock),
        config.api_config(),
    );
    let listener = tokio::net::TcpListener::bind(config.http_addr).await.with_context(|| {
        format!("binding the HTTP address {} (set --http-addr or SIVO_HTTP_ADDR)", config.http_addr)
    })?;
    let local = listener.local_addr()?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let http = tokio::spawn(api::serve(listener, api::router(state.clone()), wait_for(stop_rx.clone())));
    let maintenance = tokio::spawn(maintenance(database.db.clone(), stop_rx.clone()));
    // Outbox events to logged-in users over Socket.IO; on stop it disconnects every socket, which
    // also ends the long-polling requests the HTTP drain below would otherwise wait for.
    let realtime = tokio::spawn(api::realtime::run(state.clone(), stop_rx.clone()));
    let worker = if config.webhooks.worker {
        let worker = webhooks::Worker::new(
            database.db.clone(),
            vault.clone(),
            Arc::new(api::SystemClock),
            config.webhook_worker_config()?,
        )
        .context("starting the webhook worker")?;
        if config.webhooks.allow_private_targets {
            tracing::warn!(
                "webhooks.allow_private_targets is on: webhooks may reach loopback and private networks (development only)"
            );
        }
        Some(tokio::spawn(worker.run(stop_rx.clone())))
    } else {
        None
    };
    let sip = start_sip(&config, &database.db, &vault).await?;
    if let Some(sip) = &sip {
        let _ = state.calls.set(sip.calls());
    }
    announce(&config, &database.db, local).await;

    let Database { db, embedded } = database;
    let mut supervisor = embedded.map(|pg| Supervisor { pg, config: config.clone() });
    tokio::select! {
        () = shutdown_signal() => tracing::info!("shutting down"),
        result = async {
            match supervisor.as_mut() {
                Some(s) => s.watch().await,
                None => std::future::pending().await,
            }
        } => {
            tracing::error!(error = %result.as_ref().err().map(ToString::to_string).unwrap_or_default(), "the embedded PostgreSQL could not be kept running");
        }
    }
    let _ = stop_tx.send(true);
    match tokio::time::timeout(Duration::from_secs(20), http).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server stopped with an error"),
        Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server task failed"),
        Err(_) => tracing::warn!("HTTP connections did not drain within 20 s"),
    }
    maintenance.abort();
    if tokio::time::timeout(Duration::from_secs(5), realtime).await.is_err() {
        tracing::warn!("the realtime listener did not stop within 5 s");
    }
    if let Some(sip) = sip {
        sip.shutdown().await;
    }
    if let Some(worker) = worker {
        let _ = tokio::time::timeout(Duration::from_secs(15), worker).await;
    }
    db.close().await;
    if let Some(s) = supervisor {
        s.pg.stop().await.context("stopping the embedded PostgreSQL")?;
        tracing::info!("embedded PostgreSQL stopped");
    }
    Ok(())
}

/// Starts SIP unless disabled. A busy default port (another softphone or PBX on 5060) only
/// disables SIP with a warning; an address set explicitly must bind or `serve` fails.
async fn start_sip(
    config: &Config,
    db: &db::Db,
    vault: &vault::Vault,
) -> anyhow::Result<Option<telephony::Telephony>> {
    if !config.sip.enabled {
        return Ok(None);
    }
    match telephony::Telephony::start(config.sip_config()?, db.clone(), vault.clone()).await {
        Ok(sip) => Ok(Some(sip)),
        Err(e) if config.sip_addr_is_default() => {
            tracing::error!(error = %e, addr = %config.sip_addr, "SIP is disabled: cannot bind the default SIP address (set --sip-addr or SIVO_SIP_ADDR)");
            Ok(None)
        }
        Err(e) => Err(anyhow::anyhow!(e)).with_context(|| {
            format!(
                "binding the SIP address {} over UDP and TCP (set --sip-addr or SIVO_SIP_ADDR)",
                config.sip_addr
            )
        }),
    }
}

/// Restarts the embedded PostgreSQL if it dies underneath us; the pool reconnects by itself.
struct Supervisor {
    pg: EmbeddedPostgres,
    config: Config,
}

impl Supervisor {
    /// Returns only if PostgreSQL cannot be restarted.
    async fn watch(&mut self) -> anyhow::Result<()> {
        let mut restarts = 0u32;
        loop {
            let status = self.pg.exited().await?;
            restarts += 1;
            tracing::error!(%status, restarts, "embedded PostgreSQL exited; restarting it");
            if restarts > 5 {
                bail!(
                    "embedded PostgreSQL exited {restarts} times; giving up (see {}/log/postgres.log)",
                    self.config.data_dir.display()
                );
            }
            tokio::time::sleep(Duration::from_secs(u64::from(restarts))).await;
            self.pg = EmbeddedPostgres::start(&EmbeddedConfig {
                data_dir: self.config.data_dir.clone(),
                unsafe_fast: false,
            })
            .await?;
        }
    }
}

#[allow(clippy::print_stdout)]
async fn announce(config: &Config, db: &db::Db, addr: std::net::SocketAddr) {
    let database = if config.database.url.is_some() {
        "external PostgreSQL (DATABASE_URL)".to_owned()
    } else {
        format!("embedded PostgreSQL in {}", config.data_dir.join("pg").display())
    };
    println!("SIVO is running: http://{addr}/  (API under /api/v1, OpenAPI at /api/openapi.json)");
    println!("database: {database}");
    let has_superadmin = async {
        let mut tx = db.platform_tx().await.ok()?;
        db::users::superadmin_exists(&mut tx).await.ok()
    }
    .await;
    if has_superadmin == Some(false) {
        let data_dir = config.data_dir.display();
        println!();
        println!("First start: create the platform operator (run in another terminal):");
        println!("  sivo superadmin create --email you@example.com --data-dir {data_dir}");
        println!("then a tenant and its admin:");
        println!("  sivo tenant create --slug acme --name \"Acme Inc\" --data-dir {data_dir}");
        println!(
            "  sivo user create --tenant acme --email admin@acme.example --role admin --data-dir {data_dir}"
        );
    }
    println!("Press Ctrl-C to stop.");
}

/// Housekeeping that keeps tables small: ended sessions are deleted a day after they end, webhook
/// attempts after 30 days (each endpoint keeps at least its last 100).
async fn maintenance(db: db::Db, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let purged = async {
            let now = chrono::Utc::now();
            let mut tx = db.platform_tx().await?;
            let n = db::sessions::purge_ended(&mut tx, now).await?;
            tx.commit().await?;
            let mut tx = db.platform_tx().await?;
            let tenants = db::tenants::list(&mut tx, None, 10_000).await?;
            tx.commit().await?;
            for tenant in tenants.items {
                let mut tx = db.tenant_tx(tenant.tenant_id()).await?;
                db::webhooks::prune_attempts(&mut tx, now - chrono::Duration::days(30), 100).await?;
                tx.commit().await?;
            }
            Ok::<_, db::DbError>(n)
        }
        .await;
        match purged {
            Ok(n) if n > 0 => tracing::info!(purged = n, "removed ended sessions"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "session cleanup failed"),
        }
    }
}

async fn wait_for(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = ctrl_c => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

/// One `sivo serve` per data directory: a second one would stop the first one's database.
fn lock_data_dir(config: &Config) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    let path = config.data_dir.join("sivo.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        anyhow::anyhow!(
            "another `sivo serve` is already using {} (one server per data directory)",
            config.data_dir.display()
        )
    })
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if config.log.format == "json" { builder.json().try_init() } else { builder.try_init() };
}
