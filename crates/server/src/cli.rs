//! Command-line interface: argument parsing and the administrative subcommands.
//!
//! Admin commands print their result on stdout (for scripts) and problems on stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use domain::Role;

use crate::config::{Config, Overrides};
use crate::database::Database;

#[derive(Parser, Debug)]
#[command(name = "sivo", version, about = "SIVO: a self-hostable, multi-tenant cloud contact center")]
pub(crate) struct Args {
    /// TOML configuration file (layered over the defaults, under SIVO_* environment variables).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory: embedded database, master key, logs [env: SIVO_DATA_DIR] [default: ./var]
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run SIVO: HTTP API (and, with no DATABASE_URL, its own PostgreSQL) until Ctrl-C.
    Serve {
        /// Address for the HTTP API and web app [env: SIVO_HTTP_ADDR] [default: 127.0.0.1:8080]
        #[arg(long, value_name = "HOST:PORT")]
        http_addr: Option<SocketAddr>,
        /// Address for SIP over UDP and TCP [env: SIVO_SIP_ADDR] [default: 0.0.0.0:5060]
        #[arg(long, value_name = "HOST:PORT")]
        sip_addr: Option<SocketAddr>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage tenant users (agents, supervisors, admins).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage platform operators.
    Superadmin {
        #[command(subcommand)]
        command: SuperadminCommand,
    },
    /// Manage integrators' API keys.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Print the OpenAPI document (JSON) that the HTTP API serves at /api/openapi.json.
    Openapi,
    /// Inspect configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand, Debug)]
enum TenantCommand {
    /// Create a tenant.
    Create {
        /// 3-40 characters of a-z, 0-9 and inner '-'.
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
        /// free, pro or enterprise.
        #[arg(long, default_value = "free")]
        plan: String,
    },
    /// List tenants.
    List,
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Create a user in a tenant. Without --password-stdin a strong password is generated and printed once.
    Create {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = ["agent", "supervisor", "admin"])]
        role: String,
        /// Display name (default: the part of the e-mail before '@').
        #[arg(long)]
        name: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand, Debug)]
enum SuperadminCommand {
    /// Create a platform operator (MFA enrolment is required at first login).
    Create {
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand, Debug)]
enum ApiKeyCommand {
    /// Create an API key for a tenant; the key is printed once.
    Create {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print the effective configuration (secrets redacted) and exit non-zero if it is invalid.
    Check,
}

pub(crate) fn error(message: &str) {
    eprintln!("error: {message}");
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let (http_addr, sip_addr) = match &args.command {
        Command::Serve { http_addr, sip_addr } => (*http_addr, *sip_addr),
        _ => (None, None),
    };
    let overrides = Overrides { data_dir: args.data_dir.clone(), http_addr, sip_addr };
    let config = Config::load(args.config.as_deref(), &overrides)?;
    match args.command {
        Command::Serve { .. } => crate::serve::run(config).await,
        Command::Openapi => {
            use std::io::Write as _;
            let text = serde_json::to_string_pretty(&api::openapi())?;
            // `sivo openapi | head` closes the pipe early: that is not an error.
            match writeln!(std::io::stdout().lock(), "{text}") {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }
        Command::Config { command: ConfigCommand::Check } => {
            print!("{}", config.to_redacted_toml()?);
            eprintln!("configuration is valid");
            Ok(())
        }
        command => {
            init_quiet_tracing();
            let database = Database::open_shared(&config).await?;
            let result = admin(&database.db, command).await;
            database.close().await?;
            result
        }
    }
}

/// Admin commands log only warnings, so their stdout stays clean for scripts.
fn init_quiet_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

async fn admin(db: &db::Db, command: Command) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let by = api::ops::OpActor::cli();
    match command {
        Command::Migrate => println!("migrations applied"),
        Command::Tenant { command: TenantCommand::Create { slug, name, plan } } => {
            let input = api::ops::NewTenantInput { slug, name, plan: Some(plan) };
            let row = api::ops::create_tenant(db, input, &by, now).await.map_err(explain)?;
            println!("created tenant {} ({}) id={}", row.slug, row.name, row.id);
        }
        Command::Tenant { command: TenantCommand::List } => {
            let mut tx = db.platform_tx().await?;
            let mut cursor = None;
            loop {
                let page = db::tenants::list(&mut tx, cursor, 200).await?;
                for t in &page.items {
                    println!("{}\t{}\t{}\t{}", t.id, t.slug, t.plan, t.name);
                }
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        Command::User { command: UserCommand::Create { tenant, email, role, name, password_stdin } } => {
            let role = Role::parse(&role).context("role")?;
            let tenant_row = {
                let mut tx = db.platform_tx().await?;
                let row = db::tenants::get_by_slug(&mut tx, &tenant).await;
                tx.commit().await?;
                match row {
                    Ok(row) => row,
                    Err(db::DbError::NotFound) => {
                        bail!("no tenant with slug {tenant:?}; list them with `sivo tenant list`")
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            let (password, generated) = password(password_stdin)?;
            let input =
                api::ops::NewUserInput { email, display_name: name, role, password: password.clone() };
            let row = api::ops::create_user(db, Some(tenant_row.tenant_id()), input, &by, now)
                .await
                .map_err(explain)?;
            println!("created {} {} in tenant {} id={}", row.role, row.email, tenant_row.slug, row.id);
            if generated {
                println!("password (shown once): {password}");
            }
            if role.requires_mfa() {
                println!("MFA is mandatory for this role: the first login returns an enrolment-only session");
            }
        }
        Command::Superadmin { command: SuperadminCommand::Create { email, password_stdin } } => {
            let (password, generated) = password(password_stdin)?;
            let input = api::ops::NewUserInput {
                email,
                display_name: None,
                role: Role::Superadmin,
                password: password.clone(),
            };
            let row = api::ops::create_user(db, None, input, &by, now).await.map_err(explain)?;
            println!("created superadmin {} id={}", row.email, row.id);
            if generated {
                println!("password (shown once): {password}");
            }
            println!("MFA enrolment is required at first login (POST /api/v1/auth/login, or the web app)");
        }
        Command::ApiKey { command: ApiKeyCommand::Create { tenant, name } } => {
            let tenant_row = {
                let mut tx = db.platform_tx().await?;
                let row = db::tenants::get_by_slug(&mut tx, &tenant).await;
                tx.commit().await?;
                row.map_err(|_| {
                    anyhow::anyhow!("no tenant with slug {tenant:?}; list them with `sivo tenant list`")
                })?
            };
            let (row, key) = api::ops::create_api_key(db, tenant_row.tenant_id(), &name, None, &by, now)
                .await
                .map_err(explain)?;
            println!("created API key {} ({}) id={}", row.name, row.prefix, row.id);
            println!("key (shown once): {key}");
        }
        Command::Serve { .. } | Command::Config { .. } | Command::Openapi => unreachable!("handled by run"),
    }
    Ok(())
}

/// Turns an API error into a message that says what to fix.
fn explain(e: api::ApiError) -> anyhow::Error {
    if e.errors.is_empty() {
        anyhow::anyhow!("{}", e.detail)
    } else {
        let fields: Vec<String> =
            e.errors.iter().map(|f| format!("--{}: {}", f.field.replace('_', "-"), f.message)).collect();
        anyhow::anyhow!("{}", fields.join("; "))
    }
}

fn password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if from_stdin {
        let mut input = String::new();
        std::io::stdin().take(4096).read_to_string(&mut input).context("reading the password from stdin")?;
        let line = input.lines().next().unwrap_or("").to_owned();
        if line.is_empty() {
            bail!("--password-stdin: standard input was empty");
        }
        Ok((line, false))
    } else {
        Ok((api::crypto::random_token()[..24].to_owned(), true))
    }
}
