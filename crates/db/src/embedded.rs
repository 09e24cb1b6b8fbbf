//! A private PostgreSQL cluster inside SIVO's data directory, so one command gives a working system.
//!
//! We run Debian's `postgres` binaries ourselves: `initdb` on first start, then `postgres` as a
//! child process listening only on a Unix socket in a private directory (no TCP port to collide
//! with, nothing reachable from the network). Authentication is `trust` on that socket; the
//! directory's permissions are the boundary. When running as root, PostgreSQL refuses to start,
//! so the cluster runs as the `postgres` system user.
//!
//! The child gets `PR_SET_PDEATHSIG`, so if SIVO dies (even by SIGKILL) PostgreSQL performs a
//! fast shutdown instead of lingering as an orphan holding the data directory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};

/// Name of the database SIVO uses inside the embedded cluster.
pub const DATABASE: &str = "sivo";
/// The cluster's bootstrap superuser (used only to create roles and the database).
pub const SUPERUSER: &str = "sivo_super";
/// Port number only names the socket file (`.s.PGSQL.<port>`); nothing listens on TCP.
const SOCKET_PORT: u16 = 5432;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL server binaries (initdb, postgres) were not found in {searched}.\n\
         Install them with:  sudo apt-get install -y postgresql\n\
         or point SIVO at an existing server with DATABASE_URL=postgres://…,\n\
         or set SIVO_PG_BINDIR to the directory that holds initdb and postgres"
    )]
    BinariesMissing { searched: String },
    #[error(
        "running as root, but there is no 'postgres' system user to run the embedded cluster as; \
         install Debian's postgresql package (it creates the user) or run sivo as a normal user"
    )]
    NoPostgresUser,
    #[error("the data directory path {0} is too long for a Unix socket (keep it under ~80 characters)")]
    PathTooLong(String),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("initdb failed (exit {status}); its output:\n{output}")]
    InitdbFailed { status: String, output: String },
    #[error("PostgreSQL did not become ready within {secs} s; last lines of {log}:\n{tail}")]
    NotReady { secs: u64, log: String, tail: String },
    #[error("PostgreSQL exited during start-up ({status}); last lines of {log}:\n{tail}")]
    ExitedEarly { status: String, log: String, tail: String },
    #[error("setting up the embedded database failed: {0}")]
    Sql(#[from] sqlx::Error),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EmbeddedError {
    let what = what.into();
    move |source| EmbeddedError::Io { what, source }
}

/// Where the cluster lives and how it runs.
#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    /// SIVO's data directory; the cluster lives in `<dir>/pg`, its socket in `<dir>/run`.
    pub data_dir: PathBuf,
    /// Trade durability for speed (fsync off). Only for throwaway test clusters.
    pub unsafe_fast: bool,
}

/// Paths derived from the data directory.
#[derive(Clone, Debug)]
pub struct Layout {
    pub cluster_dir: PathBuf,
    pub socket_dir: PathBuf,
    pub log_file: PathBuf,
}

impl Layout {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            cluster_dir: data_dir.join("pg"),
            socket_dir: data_dir.join("run"),
            log_file: data_dir.join("log").join("postgres.log"),
        }
    }

    /// Connection options for `user` on the embedded socket.
    pub fn connect_options(&self, user: &str, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.socket_dir)
            .port(SOCKET_PORT)
            .username(user)
            .database(database)
            .application_name("sivo")
            .log_statements(tracing::log::LevelFilter::Trace)
    }

    fn socket_file(&self) -> PathBuf {
        self.socket_dir.join(format!(".s.PGSQL.{SOCKET_PORT}"))
    }
}

/// Finds `initdb` and `postgres`: `$SIVO_PG_BINDIR`, then Debian's versioned directories
/// (newest first), then `$PATH`.
pub fn find_bindir() -> Result<PathBuf, EmbeddedError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    // An explicit setting is authoritative: no silent fallback to another installation.
    if let Some(dir) = std::env::var_os("SIVO_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        if dir.join("initdb").is_file() && dir.join("postgres").is_file() {
            return Ok(dir);
        }
        return Err(EmbeddedError::BinariesMissing {
            searched: format!("{} (SIVO_PG_BINDIR)", dir.display()),
        });
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                Some((version, e.path().join("bin")))
            })
            .collect();
        versions.sort_by_key(|v| std::cmp::Reverse(v.0));
        candidates.extend(versions.into_iter().map(|(_, p)| p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    for dir in &candidates {
        if dir.join("initdb").is_file() && dir.join("postgres").is_file() {
            return Ok(dir.clone());
        }
    }
    let searched = candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
    Err(EmbeddedError::BinariesMissing {
        searched: if searched.is_empty() { "(nowhere: PATH is empty)".into() } else { searched },
    })
}

/// The unprivileged user the cluster runs as when we are root.
#[derive(Clone, Copy, Debug)]
struct RunAs {
    uid: nix::unistd::Uid,
    gid: nix::unistd::Gid,
}

fn run_as() -> Result<Option<RunAs>, EmbeddedError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let user = nix::unistd::User::from_name("postgres")
        .map_err(|e| EmbeddedError::Io { what: "looking up user 'postgres'".into(), source: e.into() })?
        .ok_or(EmbeddedError::NoPostgresUser)?;
    Ok(Some(RunAs { uid: user.uid, gid: user.gid }))
}

fn prepare_dir(path: &Path, mode: u32, owner: Option<RunAs>) -> Result<(), EmbeddedError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(path).map_err(io(format!("creating {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io(format!("setting permissions of {}", path.display())))?;
    if let Some(owner) = owner {
        nix::unistd::chown(path, Some(owner.uid), Some(owner.gid)).map_err(|e| EmbeddedError::Io {
            what: format!("handing {} to the postgres user", path.display()),
            source: e.into(),
        })?;
    }
    Ok(())
}

/// When root runs the cluster as `postgres`, that user must be able to traverse every parent
/// of the data directory. Temporary directories are created 0700, so open them to traversal
/// (x only, not read) where needed.
fn ensure_traversable(dir: &Path) -> Result<(), EmbeddedError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut current = Some(dir);
    while let Some(path) = current {
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o001 == 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o001))
                    .map_err(io(format!("making {} traversable for the postgres user", path.display())))?;
            }
        }
        current = path.parent();
    }
    Ok(())
}

/// A running cluster we own. Dropping it without [`EmbeddedPostgres::stop`] kills PostgreSQL.
pub struct EmbeddedPostgres {
    layout: Layout,
    child: tokio::process::Child,
}

impl EmbeddedPostgres {
    /// Initialises the cluster if needed, starts PostgreSQL and waits until it accepts connections,
    /// then creates SIVO's roles and database. An orphaned PostgreSQL still running on this data
    /// directory (from a SIVO that was killed) is shut down first.
    pub async fn start(config: &EmbeddedConfig) -> Result<Self, EmbeddedError> {
        let bindir = find_bindir()?;
        let owner = run_as()?;
        let data_dir = std::path::absolute(&config.data_dir).map_err(io("resolving the data directory"))?;
        let layout = Layout::new(&data_dir);
        if layout.socket_file().as_os_str().len() > 100 {
            return Err(EmbeddedError::PathTooLong(data_dir.display().to_string()));
        }
        std::fs::create_dir_all(&data_dir).map_err(io(format!("creating {}", data_dir.display())))?;
        if owner.is_some() {
            ensure_traversable(&data_dir)?;
        }
        let log_dir = layout.log_file.parent().unwrap_or(&data_dir).to_path_buf();
        prepare_dir(&log_dir, 0o750, None)?;
        prepare_dir(&layout.socket_dir, 0o700, owner)?;

        if !layout.cluster_dir.join("PG_VERSION").is_file() {
            prepare_dir(&layout.cluster_dir, 0o700, owner)?;
            initdb(&bindir, &layout, owner, config.unsafe_fast).await?;
        } else {
            stop_orphan(&bindir, &layout, owner).await;
        }

        let child = spawn_postgres(&bindir, &layout, owner, config.unsafe_fast)?;
        let mut this = Self { layout, child };
        this.wait_ready(Duration::from_secs(60)).await?;
        this.bootstrap().await?;
        Ok(this)
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<(), EmbeddedError> {
        let started = tokio::time::Instant::now();
        let options = self.layout.connect_options(SUPERUSER, "postgres");
        loop {
            if let Some(status) = self.child.try_wait().map_err(io("checking on postgres"))? {
                return Err(EmbeddedError::ExitedEarly {
                    status: status.to_string(),
                    log: self.layout.log_file.display().to_string(),
                    tail: log_tail(&self.layout.log_file),
                });
            }
            if self.layout.socket_file().exists()
                && let Ok(conn) = options.connect().await
            {
                let _ = conn.close().await;
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(EmbeddedError::NotReady {
                    secs: limit.as_secs(),
                    log: self.layout.log_file.display().to_string(),
                    tail: log_tail(&self.layout.log_file),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates the owner and application roles and the database, idempotently.
    async fn bootstrap(&self) -> Result<(), EmbeddedError> {
        let mut conn = self.layout.connect_options(SUPERUSER, "postgres").connect().await?;
        crate::roles::ensure_roles(&mut conn, true).await?;
        let exists: bool = sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(DATABASE)
            .fetch_one(&mut conn)
            .await?;
        if !exists {
            sqlx::query(&format!(
                "create database {DATABASE} owner {} encoding 'UTF8'",
                crate::roles::OWNER_ROLE
            ))
            .execute(&mut conn)
            .await?;
        }
        conn.close().await?;
        Ok(())
    }

    /// Connection options for migrations: the superuser acting as the owner role, so every object
    /// is owned by `sivo_owner` (see `crate::roles`).
    pub fn owner_options(&self) -> PgConnectOptions {
        self.layout.connect_options(SUPERUSER, DATABASE).options([("role", crate::roles::OWNER_ROLE)])
    }

    /// Connection options for the application role.
    pub fn app_options(&self) -> PgConnectOptions {
        self.layout.connect_options(crate::roles::APP_ROLE, DATABASE)
    }

    /// Superuser options on another database of this cluster (tests create throwaway databases).
    pub fn superuser_options(&self, database: &str) -> PgConnectOptions {
        self.layout.connect_options(SUPERUSER, database)
    }

    /// Fast shutdown: disconnect clients, checkpoint, exit. Waits for PostgreSQL to finish.
    pub async fn stop(mut self) -> Result<(), EmbeddedError> {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGINT,
            );
        }
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(result) => {
                result.map_err(io("waiting for postgres to stop"))?;
            }
            Err(_) => {
                tracing::warn!("postgres did not stop within 30 s; killing it");
                let _ = self.child.kill().await;
            }
        }
        Ok(())
    }

    /// Resolves when the PostgreSQL process exits on its own (crash, or killed by someone).
    pub async fn exited(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait().await
    }
}

/// Whether a PostgreSQL is accepting connections on this data directory's socket right now.
/// Admin commands use it to share the cluster of a running `sivo serve`.
pub async fn running_cluster(data_dir: &Path) -> Option<Layout> {
    let data_dir = std::path::absolute(data_dir).ok()?;
    let layout = Layout::new(&data_dir);
    if !layout.socket_file().exists() {
        return None;
    }
    let conn = layout.connect_options(SUPERUSER, "postgres").connect().await.ok()?;
    let _ = conn.close().await;
    Some(layout)
}

async fn initdb(
    bindir: &Path,
    layout: &Layout,
    owner: Option<RunAs>,
    fast: bool,
) -> Result<(), EmbeddedError> {
    let mut cmd = tokio::process::Command::new(bindir.join("initdb"));
    cmd.arg("-D")
        .arg(&layout.cluster_dir)
        .args(["-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if fast {
        cmd.arg("--no-sync");
    }
    if let Some(owner) = owner {
        cmd.uid(owner.uid.as_raw()).gid(owner.gid.as_raw());
    }
    let output = cmd.output().await.map_err(io("running initdb"))?;
    if !output.status.success() {
        return Err(EmbeddedError::InitdbFailed {
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    Ok(())
}

/// If a previous SIVO died without stopping its cluster, stop that PostgreSQL so we can own a
/// fresh child. `pg_ctl stop` understands a stale `postmaster.pid` and does nothing then.
async fn stop_orphan(bindir: &Path, layout: &Layout, owner: Option<RunAs>) {
    if !layout.cluster_dir.join("postmaster.pid").exists() {
        return;
    }
    let mut cmd = tokio::process::Command::new(bindir.join("pg_ctl"));
    cmd.arg("stop")
        .arg("-D")
        .arg(&layout.cluster_dir)
        .args(["-m", "fast", "-w", "-t", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(owner) = owner {
        cmd.uid(owner.uid.as_raw()).gid(owner.gid.as_raw());
    }
    if let Ok(status) = cmd.status().await
        && status.success()
    {
        tracing::info!("stopped a PostgreSQL left running by an earlier sivo");
    }
}

fn spawn_postgres(
    bindir: &Path,
    layout: &Layout,
    owner: Option<RunAs>,
    fast: bool,
) -> Result<tokio::process::Child, EmbeddedError> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&layout.log_file)
        .map_err(io(format!("opening {}", layout.log_file.display())))?;
    let log_err = log.try_clone().map_err(io("duplicating the log handle"))?;
    let mut cmd = std::process::Command::new(bindir.join("postgres"));
    cmd.arg("-D")
        .arg(&layout.cluster_dir)
        .arg("-k")
        .arg(&layout.socket_dir)
        .args(["-p", &SOCKET_PORT.to_string()])
        .args(["-c", "listen_addresses="])
        .args(["-c", "unix_socket_permissions=0700"])
        .args(["-c", "max_connections=200"])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    if fast {
        cmd.args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]);
    }
    if let Some(owner) = owner {
        use std::os::unix::process::CommandExt as _;
        cmd.uid(owner.uid.as_raw()).gid(owner.gid.as_raw());
    }
    set_parent_death_signal(&mut cmd);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    cmd.spawn().map_err(io(format!("starting {}", bindir.join("postgres").display())))
}

/// Ask the kernel to send SIGINT (PostgreSQL's "fast shutdown") to the child when its parent
/// thread dies. Callers spawn from a thread that lives as long as the process (the main thread
/// or a tokio worker of the main runtime).
#[allow(unsafe_code)]
fn set_parent_death_signal(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: the closure runs between fork and exec and calls only prctl(2), which is
    // async-signal-safe; it touches no memory shared with the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGINT).map_err(std::io::Error::from)
        });
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
