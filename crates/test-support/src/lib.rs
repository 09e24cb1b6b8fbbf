//! Test harness: a real PostgreSQL per test process (SIVO's own embedded cluster code, started in
//! a temporary directory) and a fresh, migrated database per test, cloned from a template.
//!
//! The cluster is started from a dedicated thread that lives as long as the process, because the
//! PostgreSQL child is bound to its parent thread with `PR_SET_PDEATHSIG`: when the test binary
//! exits, PostgreSQL shuts down instead of lingering.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use db::embedded::{EmbeddedConfig, EmbeddedPostgres};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};

struct Cluster {
    /// Options for the superuser on a given database.
    superuser: Box<dyn Fn(&str) -> PgConnectOptions + Send + Sync>,
    owner: Box<dyn Fn(&str) -> PgConnectOptions + Send + Sync>,
    app: Box<dyn Fn(&str) -> PgConnectOptions + Send + Sync>,
    data_dir: PathBuf,
    next_db: AtomicU32,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

fn root_dir() -> PathBuf {
    std::env::temp_dir().join("sivo-test-pg")
}

/// Removes clusters left by earlier test processes that are gone.
fn sweep_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(root_dir()) else { return };
    for entry in entries.filter_map(Result::ok) {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if !PathBuf::from(format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        sweep_stale_clusters();
        let data_dir = root_dir().join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&data_dir);
        let (tx, rx) = std::sync::mpsc::channel();
        let config = EmbeddedConfig { data_dir: data_dir.clone(), unsafe_fast: true };
        std::thread::Builder::new()
            .name("test-postgres".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let pg = runtime.block_on(async {
                    let pg = EmbeddedPostgres::start(&config).await.map_err(|e| e.to_string())?;
                    db::migrate(&pg.owner_options()).await.map_err(|e| e.to_string())?;
                    Ok::<_, String>(pg)
                });
                match pg {
                    Ok(pg) => {
                        let layout = pg.layout().clone();
                        tx.send(Ok(layout)).unwrap();
                        // Keep the child (and this thread, its parent) alive for the whole process.
                        runtime.block_on(std::future::pending::<()>());
                        drop(pg);
                    }
                    Err(e) => tx.send(Err(e)).unwrap(),
                }
            })
            .unwrap();
        let layout = match rx.recv().unwrap() {
            Ok(layout) => layout,
            Err(e) => panic!("could not start the test PostgreSQL: {e}"),
        };
        let (l1, l2, l3) = (layout.clone(), layout.clone(), layout);
        Cluster {
            superuser: Box::new(move |db| l1.connect_options(db::embedded::SUPERUSER, db)),
            owner: Box::new(move |db| {
                l2.connect_options(db::embedded::SUPERUSER, db).options([("role", db::roles::OWNER_ROLE)])
            }),
            app: Box::new(move |db| l3.connect_options(db::roles::APP_ROLE, db)),
            data_dir,
            next_db: AtomicU32::new(0),
        }
    })
}

pub mod receiver;

/// A fresh database with every migration applied, private to one test.
pub struct TestDb {
    pub name: String,
    pub db: db::Db,
}

impl TestDb {
    pub async fn new() -> Self {
        let cluster = cluster();
        let n = cluster.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}_{n}", std::process::id());
        let mut conn = (cluster.superuser)("postgres").connect().await.expect("connect as superuser");
        sqlx::query(&format!(
            "create database {name} template {} owner {}",
            db::embedded::DATABASE,
            db::roles::OWNER_ROLE
        ))
        .execute(&mut conn)
        .await
        .expect("create test database");
        conn.close().await.ok();
        let db = db::Db::connect(app_options(&name), 8).await.expect("connect as sivo_app");
        Self { name, db }
    }

    pub fn app_options(&self) -> PgConnectOptions {
        app_options(&self.name)
    }

    /// The owner role: bypasses nothing (RLS is forced) but may read the catalog freely.
    pub fn owner_options(&self) -> PgConnectOptions {
        (cluster().owner)(&self.name)
    }

    pub fn superuser_options(&self) -> PgConnectOptions {
        (cluster().superuser)(&self.name)
    }
}

fn app_options(name: &str) -> PgConnectOptions {
    (cluster().app)(name)
}

/// Where the shared test cluster lives (for tests that want to inspect logs).
pub fn cluster_dir() -> PathBuf {
    cluster().data_dir.clone()
}
