//! Configuration: built-in defaults → optional TOML file (`--config`) → `SIVO_*` environment
//! variables (nested keys with `__`, e.g. `SIVO_AUTH__LOCKOUT_THRESHOLD`) → command-line flags.
//! `DATABASE_URL` is honoured as `database.url`. Validated once, here, into typed settings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use figment::Figment;
use figment::providers::{Env, Format as _, Serialized, Toml};
use serde::{Deserialize, Serialize};
use vault::Secret;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// Where SIVO keeps its embedded database, master key and logs.
    pub(crate) data_dir: PathBuf,
    /// HTTP API and web app.
    pub(crate) http_addr: SocketAddr,
    /// SIP over UDP and TCP (both bound here).
    pub(crate) sip_addr: SocketAddr,
    pub(crate) database: DatabaseConfig,
    pub(crate) secrets: SecretsConfig,
    pub(crate) auth: AuthConfig,
    pub(crate) http: HttpConfig,
    pub(crate) webhooks: WebhooksConfig,
    pub(crate) sip: SipSettings,
    pub(crate) media: MediaSettings,
    pub(crate) log: LogConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MediaSettings {
    /// Address RTP sockets bind to.
    pub(crate) bind_ip: std::net::IpAddr,
    /// Address written into SDP (the public one behind NAT); default: `bind_ip`, or the
    /// address towards each peer when `bind_ip` is a wildcard.
    pub(crate) advertised_ip: Option<std::net::IpAddr>,
    /// RTP port range (even ports RTP, the next odd one RTCP); open it in the firewall.
    pub(crate) rtp_port_min: u16,
    pub(crate) rtp_port_max: u16,
    /// Media threads; default: one per core.
    pub(crate) shards: Option<usize>,
    /// Where call recordings are written; default: `<data_dir>/recordings`.
    pub(crate) recordings_dir: Option<PathBuf>,
    /// Queues' hold-music files must lie in here; default: `<data_dir>/music`.
    pub(crate) music_dir: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SipSettings {
    /// Run the SIP service in this process.
    pub(crate) enabled: bool,
    /// Tenants' SIP domains are `<slug>.<base_domain>`.
    pub(crate) base_domain: String,
    /// Names this process in registration bindings; default: the host name.
    pub(crate) node_id: Option<String>,
    pub(crate) max_message_bytes: usize,
    /// Live SIP server transactions (about 1 KB each); beyond it, 503.
    pub(crate) max_transactions: usize,
    pub(crate) max_connections: usize,
    pub(crate) max_connections_per_ip: usize,
    /// Stream connections silent for this long are closed.
    pub(crate) idle_timeout_secs: u64,
    /// The `wss://` URL softphones use (given to them with their SIP credentials).
    pub(crate) wss_url: Option<String>,
    /// SIP over TLS, e.g. `0.0.0.0:5061` (needs `tls_cert` and `tls_key`).
    pub(crate) tls_addr: Option<SocketAddr>,
    /// SIP over WebSocket (RFC 7118), e.g. behind a proxy that terminates TLS.
    pub(crate) ws_addr: Option<SocketAddr>,
    /// SIP over secure WebSocket, what browsers use (needs `tls_cert` and `tls_key`).
    pub(crate) wss_addr: Option<SocketAddr>,
    /// PEM certificate chain and private key for TLS and WSS.
    pub(crate) tls_cert: Option<PathBuf>,
    pub(crate) tls_key: Option<PathBuf>,
    /// Digest algorithms offered to registering phones, in order: `MD5`, `SHA-256`.
    pub(crate) digest_algorithms: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhooksConfig {
    /// Run the delivery worker in this process (several processes may share the queue).
    pub(crate) worker: bool,
    /// Deliveries in flight at once, and per endpoint.
    pub(crate) concurrency: usize,
    pub(crate) per_endpoint_concurrency: usize,
    /// Percent of jitter added to retry delays (never earlier than the schedule).
    pub(crate) max_jitter_pct: u32,
    /// How long a claimed job stays with a worker; after a crash it is retried when this runs out.
    pub(crate) lease_secs: u64,
    /// DEVELOPMENT AND TESTS ONLY: allow loopback and private targets (off in production).
    pub(crate) allow_private_targets: bool,
    /// DEVELOPMENT AND TESTS ONLY: a PEM file of extra CA certificates to trust (a test CA).
    pub(crate) extra_root_ca: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DatabaseConfig {
    /// External PostgreSQL for migrations (the schema owner). Unset: the embedded cluster.
    pub(crate) url: Option<Secret<String>>,
    /// How the application connects (a login that is, or is a member of, `sivo_app`).
    /// Unset with `url` set: connect with `url` and `SET ROLE sivo_app`.
    pub(crate) app_url: Option<Secret<String>>,
    pub(crate) max_connections: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecretsConfig {
    /// Base64 of 32 bytes. Unset: `<data_dir>/master.key`, created on first start.
    pub(crate) master_key: Option<Secret<String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthConfig {
    pub(crate) session_idle_timeout_secs: u64,
    pub(crate) admin_idle_timeout_secs: u64,
    pub(crate) session_absolute_timeout_secs: u64,
    pub(crate) lockout_threshold: u32,
    pub(crate) lockout_window_secs: u64,
    pub(crate) lockout_duration_secs: u64,
    pub(crate) totp_issuer: String,
    /// Set when SIVO is reached over HTTPS (directly or behind a proxy).
    pub(crate) cookie_secure: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpConfig {
    pub(crate) max_body_bytes: usize,
    /// The built web app; served at `/` when the directory exists.
    pub(crate) web_dir: PathBuf,
    /// How the outside world reaches this server's HTTP, e.g. `https://sivo.example.com`
    /// (recording download URLs start so); default: `http://<http_addr>`.
    pub(crate) public_url: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogConfig {
    /// `pretty` for terminals, `json` for log pipelines.
    pub(crate) format: String,
    /// An `EnvFilter` directive; `RUST_LOG` overrides it.
    pub(crate) filter: String,
}

impl Default for Config {
    fn default() -> Self {
        let api = api::ApiConfig::default();
        Self {
            data_dir: PathBuf::from("./var"),
            http_addr: "127.0.0.1:8080".parse().expect("constant address"),
            database: DatabaseConfig { url: None, app_url: None, max_connections: 32 },
            secrets: SecretsConfig { master_key: None },
            auth: AuthConfig {
                session_idle_timeout_secs: api.session_idle_timeout.as_secs(),
                admin_idle_timeout_secs: api.admin_idle_timeout.as_secs(),
                session_absolute_timeout_secs: api.session_absolute_timeout.as_secs(),
                lockout_threshold: api.lockout_threshold,
                lockout_window_secs: api.lockout_window.as_secs(),
                lockout_duration_secs: api.lockout_duration.as_secs(),
                totp_issuer: api.totp_issuer,
                cookie_secure: api.cookie_secure,
            },
            http: HttpConfig {
                max_body_bytes: api.max_body_bytes,
                web_dir: PathBuf::from("web/dist"),
                public_url: None,
            },
            webhooks: WebhooksConfig {
                worker: true,
                concurrency: 128,
                per_endpoint_concurrency: 8,
                max_jitter_pct: 10,
                lease_secs: 60,
                allow_private_targets: false,
                extra_root_ca: None,
            },
            sip_addr: "0.0.0.0:5060".parse().expect("constant address"),
            sip: SipSettings {
                enabled: true,
                base_domain: "sip.localhost".into(),
                node_id: None,
                max_message_bytes: 64 * 1024,
                max_transactions: 200_000,
                max_connections: 10_000,
                max_connections_per_ip: 100,
                idle_timeout_secs: 3600,
                wss_url: None,
                tls_addr: None,
                ws_addr: None,
                wss_addr: None,
                tls_cert: None,
                tls_key: None,
                digest_algorithms: vec!["MD5".into()],
            },
            media: MediaSettings {
                bind_ip: std::net::IpAddr::from([0, 0, 0, 0]),
                advertised_ip: None,
                rtp_port_min: 20_000,
                rtp_port_max: 30_000,
                shards: None,
                recordings_dir: None,
                music_dir: None,
            },
            log: LogConfig { format: "pretty".into(), filter: "info".into() },
        }
    }
}

/// Flags that override every other layer.
#[derive(Clone, Debug, Default)]
pub(crate) struct Overrides {
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) http_addr: Option<SocketAddr>,
    pub(crate) sip_addr: Option<SocketAddr>,
}

impl Config {
    pub(crate) fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Self::default()));
        if let Some(file) = file {
            if !file.is_file() {
                bail!("config file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        // Environment variables are shared with other tools, so a `SIVO_*` variable that names no
        // section is ignored with a warning; inside a known section, unknown keys are errors.
        let sections = Self::section_names();
        for (key, _) in std::env::vars() {
            if let Some(rest) = key.strip_prefix("SIVO_") {
                let section = rest.split("__").next().unwrap_or_default().to_ascii_lowercase();
                if !sections.contains(&section) && rest != "PG_BINDIR" {
                    warn_ignored(&key);
                }
            }
        }
        figment = figment
            .merge(Env::prefixed("SIVO_").split("__").lowercase(true).filter(move |key| {
                sections.contains(&key.as_str().split('.').next().unwrap_or_default().to_ascii_lowercase())
            }))
            .merge(Env::raw().only(&["DATABASE_URL"]).map(|_| "database.url".into()));
        let mut config: Self = figment.extract().map_err(|e| {
            let lines: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
            anyhow::anyhow!("invalid configuration: {}", lines.join("; "))
        })?;
        if let Some(dir) = &overrides.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(addr) = overrides.http_addr {
            config.http_addr = addr;
        }
        if let Some(addr) = overrides.sip_addr {
            config.sip_addr = addr;
        }
        config.validate()?;
        Ok(config)
    }

    /// Top-level setting names, taken from the struct itself so new sections need no list.
    fn section_names() -> Vec<String> {
        match serde_json::to_value(Self::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        let m = &self.media;
        if m.rtp_port_min < 1024 || m.rtp_port_max < m.rtp_port_min || m.rtp_port_max - m.rtp_port_min < 3 {
            bail!(
                "media.rtp_port_min and media.rtp_port_max must form a range of at least 4 ports above 1023, got {}-{}",
                m.rtp_port_min,
                m.rtp_port_max
            );
        }
        if m.shards == Some(0) {
            bail!("media.shards must be at least 1");
        }
        let a = &self.auth;
        if a.lockout_threshold == 0 {
            bail!("auth.lockout_threshold must be at least 1");
        }
        for (name, secs) in [
            ("auth.session_idle_timeout_secs", a.session_idle_timeout_secs),
            ("auth.admin_idle_timeout_secs", a.admin_idle_timeout_secs),
            ("auth.session_absolute_timeout_secs", a.session_absolute_timeout_secs),
            ("auth.lockout_window_secs", a.lockout_window_secs),
            ("auth.lockout_duration_secs", a.lockout_duration_secs),
        ] {
            if secs == 0 || secs > 30 * 24 * 3600 {
                bail!("{name} must be between 1 and 2592000 seconds (30 days), got {secs}");
            }
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.http.max_body_bytes) {
            bail!("http.max_body_bytes must be between 1024 and 16777216");
        }
        if !matches!(self.log.format.as_str(), "pretty" | "json") {
            bail!("log.format must be \"pretty\" or \"json\", got {:?}", self.log.format);
        }
        let w = &self.webhooks;
        if w.concurrency == 0 || w.per_endpoint_concurrency == 0 || w.max_jitter_pct > 50 {
            bail!(
                "webhooks.concurrency and per_endpoint_concurrency must be at least 1, max_jitter_pct at most 50"
            );
        }
        if !(15..=3600).contains(&w.lease_secs) {
            bail!("webhooks.lease_secs must be between 15 (above the 10 s request limit) and 3600");
        }
        if let Some(ca) = &w.extra_root_ca
            && !ca.is_file()
        {
            bail!("webhooks.extra_root_ca: {} is not a file", ca.display());
        }
        let s = &self.sip;
        if !(1500..=1024 * 1024).contains(&s.max_message_bytes) {
            bail!("sip.max_message_bytes must be between 1500 and 1048576");
        }
        if s.max_connections == 0
            || s.max_connections_per_ip == 0
            || s.idle_timeout_secs == 0
            || s.max_transactions == 0
        {
            bail!(
                "sip.max_transactions, max_connections, max_connections_per_ip and idle_timeout_secs must be at least 1"
            );
        }
        let domain_ok = !s.base_domain.is_empty()
            && s.base_domain.len() <= 200
            && s.base_domain
                .split('.')
                .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        if !domain_ok {
            bail!("sip.base_domain must be a DNS name such as sip.example.com, got {:?}", s.base_domain);
        }
        if (s.tls_addr.is_some() || s.wss_addr.is_some()) && (s.tls_cert.is_none() || s.tls_key.is_none()) {
            bail!("sip.tls_addr and sip.wss_addr need sip.tls_cert and sip.tls_key (PEM files)");
        }
        for (name, path) in [("sip.tls_cert", &s.tls_cert), ("sip.tls_key", &s.tls_key)] {
            if let Some(p) = path
                && !p.is_file()
            {
                bail!("{name}: {} is not a file", p.display());
            }
        }
        if s.digest_algorithms.is_empty()
            || s.digest_algorithms.iter().any(|a| !matches!(a.as_str(), "MD5" | "SHA-256"))
        {
            bail!("sip.digest_algorithms must list MD5 and/or SHA-256");
        }
        if self.database.max_connections == 0 {
            bail!("database.max_connections must be at least 1");
        }
        if let Some(key) = &self.secrets.master_key {
            vault::Vault::from_base64(key.expose()).context("secrets.master_key")?;
        }
        for (name, url) in
            [("database.url", &self.database.url), ("database.app_url", &self.database.app_url)]
        {
            if let Some(url) = url {
                url.expose()
                    .parse::<sqlx::postgres::PgConnectOptions>()
                    .map_err(|e| anyhow::anyhow!("{name} is not a valid PostgreSQL URL: {e}"))?;
            }
        }
        Ok(())
    }

    pub(crate) fn api_config(&self) -> api::ApiConfig {
        let a = &self.auth;
        api::ApiConfig {
            session_idle_timeout: Duration::from_secs(a.session_idle_timeout_secs),
            admin_idle_timeout: Duration::from_secs(a.admin_idle_timeout_secs),
            session_absolute_timeout: Duration::from_secs(a.session_absolute_timeout_secs),
            lockout_threshold: a.lockout_threshold,
            lockout_window: Duration::from_secs(a.lockout_window_secs),
            lockout_duration: Duration::from_secs(a.lockout_duration_secs),
            totp_issuer: a.totp_issuer.clone(),
            cookie_secure: a.cookie_secure,
            max_body_bytes: self.http.max_body_bytes,
            web_dir: self.http.web_dir.join("index.html").is_file().then(|| self.http.web_dir.clone()),
            webhooks_allow_private_targets: self.webhooks.allow_private_targets,
            sip_base_domain: self.sip.base_domain.to_ascii_lowercase(),
            sip_wss_url: self.sip.wss_url.clone(),
        }
    }

    pub(crate) fn webhook_worker_config(&self) -> anyhow::Result<webhooks::WorkerConfig> {
        let w = &self.webhooks;
        let mut extra_root_certs_pem = Vec::new();
        if let Some(path) = &w.extra_root_ca {
            extra_root_certs_pem
                .push(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
        }
        Ok(webhooks::WorkerConfig {
            concurrency: w.concurrency,
            per_endpoint: w.per_endpoint_concurrency,
            max_jitter_pct: w.max_jitter_pct,
            lease: Duration::from_secs(w.lease_secs),
            client: webhooks::client::ClientConfig {
                allow_private_targets: w.allow_private_targets,
                extra_root_certs_pem,
            },
            ..webhooks::WorkerConfig::default()
        })
    }

    pub(crate) fn sip_config(&self) -> anyhow::Result<telephony::SipConfig> {
        let s = &self.sip;
        let node_id = s.node_id.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "node-1".into())
        });
        let tls_identity = match (&s.tls_cert, &s.tls_key) {
            (Some(cert), Some(key)) => Some(telephony::TlsIdentity {
                cert_chain_pem: std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?,
                key_pem: std::fs::read(key).with_context(|| format!("reading {}", key.display()))?,
            }),
            _ => None,
        };
        let algorithms =
            s.digest_algorithms.iter().filter_map(|a| telephony::DigestAlgorithm::parse(a)).collect();
        let m = &self.media;
        let media = media::MediaConfig {
            bind_ip: m.bind_ip,
            advertised_ip: m.advertised_ip,
            port_min: m.rtp_port_min,
            port_max: m.rtp_port_max,
            shards: m.shards.unwrap_or_else(|| media::MediaConfig::default().shards),
        };
        let calls = telephony::CallConfig {
            recordings_dir: m.recordings_dir.clone().unwrap_or_else(|| self.data_dir.join("recordings")),
            music_dir: m.music_dir.clone().unwrap_or_else(|| self.data_dir.join("music")),
            public_http_url: self.public_url(),
            ..telephony::CallConfig::default()
        };
        Ok(telephony::SipConfig {
            addr: self.sip_addr,
            base_domain: s.base_domain.to_ascii_lowercase(),
            node_id,
            max_message_bytes: s.max_message_bytes,
            max_transactions: s.max_transactions,
            stream: telephony::StreamLimits {
                max_connections: s.max_connections,
                max_connections_per_ip: s.max_connections_per_ip,
                idle_timeout: Duration::from_secs(s.idle_timeout_secs),
            },
            registrar: telephony::RegistrarConfig { algorithms, ..telephony::RegistrarConfig::default() },
            tls_identity,
            tls_addr: s.tls_addr,
            ws_addr: s.ws_addr,
            wss_addr: s.wss_addr,
            media,
            calls,
            ..telephony::SipConfig::default()
        })
    }

    /// Where the outside world reaches our HTTP, without a trailing slash.
    pub(crate) fn public_url(&self) -> String {
        match &self.http.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.http_addr),
        }
    }

    /// Whether `sip_addr` is the built-in default (then a busy port is a warning, not a failure).
    pub(crate) fn sip_addr_is_default(&self) -> bool {
        self.sip_addr == Self::default().sip_addr
    }

    pub(crate) fn vault(&self) -> anyhow::Result<vault::Vault> {
        match &self.secrets.master_key {
            Some(key) => Ok(vault::Vault::from_base64(key.expose())?),
            None => {
                std::fs::create_dir_all(&self.data_dir)
                    .with_context(|| format!("creating data directory {}", self.data_dir.display()))?;
                Ok(vault::Vault::load_or_create(&self.data_dir.join("master.key"))?)
            }
        }
    }

    /// The effective configuration as TOML, secrets redacted.
    pub(crate) fn to_redacted_toml(&self) -> anyhow::Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }
}

#[allow(clippy::print_stderr)]
fn warn_ignored(key: &str) {
    eprintln!("warning: ignoring environment variable {key}: it names no SIVO setting");
}
