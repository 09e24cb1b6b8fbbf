//! The registrar (RFC 3261 §10.3) for agents' extensions, with Digest authentication.
//!
//! The AOR is `sip:<extension>@<slug>.<base domain>`; the domain is also the realm. The tenant
//! comes from the slug (the `tenants` identity table, in a platform transaction); the account
//! and the bindings are read and written in that tenant's transaction.
//!
//! An unknown domain, an unknown extension and a wrong password take the same path: the
//! digest is checked against a dummy HA1 when there is no account, and every failure is
//! answered with the same fresh 401 challenge. Failures count against the source address and
//! the account name (see `guard`); bans are answered with 403 and audit-logged.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use db::Db;
use domain::{TenantId, UserId};
use sip::auth::{self, AuthConfig, AuthFailure, Authenticator, Credentials, NonceSecret, Verification};
use sip::transaction::{ConnectionId, Peer};
use sip::{Contacts, HeaderName, Request, Response, StatusCode};

use crate::guard::{Guard, GuardConfig};

/// Expiry bounds (seconds).
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    /// Shorter requested expiries get 423 Interval Too Brief.
    pub min_expires: u32,
    /// Longer ones are shortened to this.
    pub max_expires: u32,
    /// Used when the request names none.
    pub default_expires: u32,
    /// Bindings per extension.
    pub max_bindings: usize,
    pub guard: GuardConfig,
    /// Digest algorithms challenged with, one WWW-Authenticate each, in this order. Only
    /// MD5 by default: JsSIP and sipp answer only the first challenge and know only MD5, and
    /// libre (baresip 1.0, Debian 12) refuses a 401 that carries any non-MD5 challenge.
    /// Add SHA-256 (RFC 8760) when every client supports it; clients that read all challenges
    /// then pick it.
    pub algorithms: Vec<auth::Algorithm>,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        Self {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 600,
            max_bindings: 10,
            guard: GuardConfig::default(),
            algorithms: vec![auth::Algorithm::Md5],
        }
    }
}

/// How long a slug → tenant lookup is reused.
const TENANT_CACHE_TTL: Duration = Duration::from_secs(30);
/// Realms whose nonce-count tables are kept.
const MAX_REALMS: usize = 10_000;
/// How long an account lookup is reused: a new SIP password or a disabled agent takes effect
/// within this time.
const ACCOUNT_CACHE_TTL: Duration = Duration::from_secs(5);
const MAX_CACHED_ACCOUNTS: usize = 100_000;

/// An account lookup (or its absence) and when it was made.
type CachedAccount = (Option<db::sip::AuthAccount>, Instant);

pub(crate) struct Registrar {
    db: Db,
    vault: vault::Vault,
    base_domain: String,
    node_id: String,
    config: RegistrarConfig,
    secret: NonceSecret,
    realms: Mutex<HashMap<String, Authenticator>>,
    tenants: Mutex<HashMap<String, (Option<TenantId>, Instant)>>,
    accounts: Mutex<HashMap<(TenantId, String), CachedAccount>>,
    guard: Guard,
    /// Tenants with bindings on each stream connection, to drop them when it closes.
    connections: Mutex<HashMap<ConnectionId, HashSet<TenantId>>>,
}

/// An agent whose Digest credentials checked out.
#[derive(Clone, Debug)]
pub(crate) struct AgentAuth {
    pub(crate) tenant: TenantId,
    pub(crate) user: UserId,
    pub(crate) extension: String,
}

enum Authenticated {
    Agent(AgentAuth),
    /// The answer to send instead (a challenge, 403, 400).
    Refused(Response),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn random() -> u64 {
    rand::random()
}

impl Registrar {
    pub(crate) fn new(
        db: Db,
        vault: vault::Vault,
        base_domain: &str,
        node_id: &str,
        config: RegistrarConfig,
    ) -> Self {
        let secret: [u8; 32] = rand::random();
        Self {
            db,
            vault,
            base_domain: base_domain.to_ascii_lowercase(),
            node_id: node_id.to_owned(),
            guard: Guard::new(config.guard.clone()),
            config,
            secret: NonceSecret::new(secret.to_vec()),
            realms: Mutex::new(HashMap::new()),
            tenants: Mutex::new(HashMap::new()),
            accounts: Mutex::new(HashMap::new()),
            connections: Mutex::new(HashMap::new()),
        }
    }

    fn with_realm<T>(&self, realm: &str, f: impl FnOnce(&mut Authenticator) -> T) -> T {
        let mut realms = lock(&self.realms);
        if !realms.contains_key(realm) && realms.len() >= MAX_REALMS {
            realms.clear();
        }
        let authenticator = realms.entry(realm.to_owned()).or_insert_with(|| {
            let mut config = AuthConfig::new(realm, self.secret.clone());
            config.algorithms = self.config.algorithms.clone();
            Authenticator::new(config)
        });
        f(authenticator)
    }

    fn challenge(&self, request: &Request, realm: &str, stale: bool, proxy: bool) -> Response {
        self.with_realm(realm, |a| {
            a.challenge_response(SystemTime::now(), &mut random, request, stale, proxy)
        })
    }

    /// The tenant whose SIP domain this is, if any.
    async fn tenant_for(&self, domain: &str) -> Result<Option<TenantId>, db::DbError> {
        let Some(slug) = domain.strip_suffix(&self.base_domain).and_then(|s| s.strip_suffix('.')) else {
            return Ok(None);
        };
        if slug.is_empty() || slug.contains('.') {
            return Ok(None);
        }
        if let Some((tenant, at)) = lock(&self.tenants).get(slug)
            && at.elapsed() < TENANT_CACHE_TTL
        {
            return Ok(*tenant);
        }
        let mut tx = self.db.platform_tx().await?;
        let tenant = match db::tenants::get_by_slug(&mut tx, slug).await {
            Ok(row) => Some(row.tenant_id()),
            Err(db::DbError::NotFound) => None,
            Err(e) => return Err(e),
        };
        tx.commit().await?;
        let mut cache = lock(&self.tenants);
        if cache.len() >= MAX_REALMS {
            cache.clear();
        }
        cache.insert(slug.to_owned(), (tenant, Instant::now()));
        Ok(tenant)
    }

    /// The active agent account with this extension, cached for a few seconds (including
    /// "no such account", which keeps scanners off the database).
    async fn account(
        &self,
        tenant: TenantId,
        extension: &str,
    ) -> Result<Option<db::sip::AuthAccount>, db::DbError> {
        let key = (tenant, extension.to_owned());
        if let Some((account, at)) = lock(&self.accounts).get(&key)
            && at.elapsed() < ACCOUNT_CACHE_TTL
        {
            return Ok(account.clone());
        }
        let mut tx = self.db.tenant_tx(tenant).await?;
        let account = db::sip::find_by_extension(&mut tx, extension).await?;
        tx.commit().await?;
        let mut cache = lock(&self.accounts);
        if cache.len() >= MAX_CACHED_ACCOUNTS {
            cache.retain(|_, (_, at)| at.elapsed() < ACCOUNT_CACHE_TTL);
            if cache.len() >= MAX_CACHED_ACCOUNTS {
                cache.clear();
            }
        }
        cache.insert(key, (account.clone(), Instant::now()));
        Ok(account)
    }

    /// Answers a REGISTER that passed the prechecks.
    pub(crate) async fn register(&self, request: Request, peer: Peer) -> Response {
        match self.try_register(&request, &peer).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "registrar database error");
                let mut r = Response::for_request(&request, StatusCode::SERVER_INTERNAL_ERROR);
                r.headers.push(HeaderName::RetryAfter, "5");
                r
            }
        }
    }

    async fn try_register(&self, request: &Request, peer: &Peer) -> Result<Response, db::DbError> {
        let Ok(to) = request.headers.to() else {
            return Ok(Response::for_request(request, StatusCode::BAD_REQUEST));
        };
        let Some(aor) = to.uri.as_sip() else {
            return Ok(Response::for_request(request, StatusCode::BAD_REQUEST));
        };
        match self.authenticate(request, peer, aor, false).await? {
            Authenticated::Agent(agent) => {
                // Bindings are soft state that phones refresh: commit without waiting for the WAL.
                let tx = self.db.tenant_tx_async_commit(agent.tenant).await?;
                self.bindings(tx, request, peer, agent.tenant, agent.user).await
            }
            Authenticated::Refused(response) => Ok(response),
        }
    }

    /// Authenticates an INVITE from one of our phones: the From URI is the agent's AOR
    /// (`<extension>@<tenant domain>`, also the realm) and the credentials must be that
    /// extension's. Refusals are a 407 challenge (RFC 3261 §22.3), 403 when banned, 400 for
    /// a digest URI that is not the Request-URI, or 500 when the database fails.
    pub(crate) async fn authenticate_invite(
        &self,
        request: &Request,
        peer: &Peer,
    ) -> Result<AgentAuth, Response> {
        let Some(aor) = request.headers.from().ok().and_then(|f| f.uri.as_sip().cloned()) else {
            return Err(Response::for_request(request, StatusCode::BAD_REQUEST));
        };
        match self.authenticate(request, peer, &aor, true).await {
            Ok(Authenticated::Agent(agent)) => Ok(agent),
            Ok(Authenticated::Refused(response)) => Err(response),
            Err(e) => {
                tracing::warn!(error = %e, "database error while authenticating an INVITE");
                let mut r = Response::for_request(request, StatusCode::SERVER_INTERNAL_ERROR);
                r.headers.push(HeaderName::RetryAfter, "5");
                Err(r)
            }
        }
    }

    /// Whether `domain` is a tenant's SIP domain (`<slug>.<base domain>`) that exists.
    pub(crate) async fn is_tenant_domain(&self, domain: &str) -> bool {
        matches!(self.tenant_for(&domain.to_ascii_lowercase()).await, Ok(Some(_)))
    }

    /// The Digest check shared by REGISTER (401, `proxy` false) and INVITE (407).
    async fn authenticate(
        &self,
        request: &Request,
        peer: &Peer,
        aor: &sip::SipUri,
        proxy: bool,
    ) -> Result<Authenticated, db::DbError> {
        let source = peer.addr.ip().to_canonical();
        let now = Instant::now();
        if self.guard.source_banned(source, now) {
            return Ok(Authenticated::Refused(Response::for_request(request, StatusCode::FORBIDDEN)));
        }
        let realm = aor.host.to_string().to_ascii_lowercase();
        let extension = aor.user_unescaped().and_then(|u| String::from_utf8(u).ok()).unwrap_or_default();
        // No credentials for this realm, or unusable ones (another scheme, broken
        // parameters): a fresh challenge (RFC 4475 §3.3.7).
        let Some(Ok(credentials)) = Credentials::find(&request.headers, &realm, proxy) else {
            return Ok(Authenticated::Refused(self.challenge(request, &realm, false, proxy)));
        };
        let account_key = format!("{}@{realm}", credentials.username);
        if self.guard.account_banned(&account_key, now) {
            return Ok(Authenticated::Refused(Response::for_request(request, StatusCode::FORBIDDEN)));
        }
        let tenant = self.tenant_for(&realm).await?;
        let account = match tenant {
            Some(t) if credentials.username == extension => self.account(t, &extension).await?,
            _ => None,
        };
        let ha1 = account
            .as_ref()
            .and_then(|a| {
                let context = format!("sip-password:{}", a.user_id);
                let password = self.vault.decrypt(&a.password_enc, &context).ok()?;
                let password = String::from_utf8(password).ok()?;
                Some(auth::ha1(credentials.algorithm, &credentials.username, &realm, &password))
            })
            // No account: a digest that matches nothing, computed the same way.
            .unwrap_or_else(|| {
                auth::ha1(credentials.algorithm, &credentials.username, &realm, "\u{0}no-account")
            });
        let verdict = self.with_realm(&realm, |a| a.verify(SystemTime::now(), request, &credentials, &ha1));
        if let (Verification::Authorized, Some(account), Some(tenant)) = (verdict, &account, tenant) {
            return Ok(Authenticated::Agent(AgentAuth { tenant, user: UserId(account.user_id), extension }));
        }
        let refusal = match (verdict, account, tenant) {
            (Verification::Stale, Some(_), Some(_)) => self.challenge(request, &realm, true, proxy),
            (Verification::Failed(AuthFailure::UriMismatch), ..) => {
                Response::for_request(request, StatusCode::BAD_REQUEST)
                    .with_reason("Digest URI Does Not Match Request-URI")
            }
            _ => {
                let banned = self.guard.fail(source, &account_key, now);
                if banned.source || banned.account {
                    self.audit_ban(tenant, &account_key, source, banned).await;
                }
                self.challenge(request, &realm, false, proxy)
            }
        };
        Ok(Authenticated::Refused(refusal))
    }

    /// Applies the REGISTER's bindings (authenticated for `user`) and lists the result.
    async fn bindings(
        &self,
        mut tx: db::Tx,
        request: &Request,
        peer: &Peer,
        tenant: TenantId,
        user: UserId,
    ) -> Result<Response, db::DbError> {
        let Ok(contacts) = request.headers.contacts() else {
            return Ok(Response::for_request(request, StatusCode::BAD_REQUEST));
        };
        let header_expires = request.headers.expires().ok().flatten();
        let call_id = request.headers.call_id().unwrap_or_default().to_owned();
        let cseq = request.headers.cseq().map(|c| i64::from(c.seq)).unwrap_or(0);
        // Requested expiry per contact, checked before anything is written (§10.3 step 6).
        let mut wanted = Vec::new();
        for contact in contacts.addresses() {
            let expires = contact.expires().or(header_expires).unwrap_or(self.config.default_expires);
            if expires > 0 && expires < self.config.min_expires {
                let mut r = Response::for_request(request, StatusCode::INTERVAL_TOO_BRIEF);
                r.headers.push(HeaderName::MinExpires, self.config.min_expires.to_string());
                return Ok(r);
            }
            wanted.push((contact.uri.to_string(), expires.min(self.config.max_expires), contact.q()));
        }
        let now: DateTime<Utc> = Utc::now();
        let user_agent: Option<String> =
            request.headers.get(&HeaderName::UserAgent).map(|ua| ua.chars().take(200).collect());
        let source = peer.addr.to_string();
        let transport = peer.transport.as_str().to_ascii_lowercase();
        let connection_id = peer.connection.map(|c| c.0 as i64);
        if let Contacts::Wildcard = contacts {
            db::sip::remove_bindings(&mut tx, user, None).await?;
        }
        let existing = db::sip::live_bindings_purging_expired(&mut tx, user, now).await?;
        let new_count =
            wanted.iter().filter(|(c, e, _)| *e > 0 && !existing.iter().any(|b| b.contact == *c)).count();
        if existing.len() + new_count > self.config.max_bindings {
            tx.rollback().await?;
            return Ok(
                Response::for_request(request, StatusCode::FORBIDDEN).with_reason("Too Many Registrations")
            );
        }
        // The answer lists the bindings as they are after this request.
        let mut current: Vec<(String, DateTime<Utc>)> =
            existing.iter().map(|b| (b.contact.clone(), b.expires_at)).collect();
        for (contact, expires, q) in &wanted {
            current.retain(|(c, _)| c != contact);
            if *expires == 0 {
                db::sip::remove_binding(&mut tx, user, contact).await?;
                continue;
            }
            let expires_at = now + chrono::Duration::seconds(i64::from(*expires));
            current.push((contact.clone(), expires_at));
            db::sip::upsert_binding(
                &mut tx,
                &db::sip::NewBinding {
                    tenant,
                    user,
                    contact,
                    expires_at,
                    call_id: &call_id,
                    cseq,
                    q: *q,
                    transport: &transport,
                    source: &source,
                    node_id: &self.node_id,
                    connection_id,
                    user_agent: user_agent.as_deref(),
                    now,
                },
            )
            .await?;
        }
        tx.commit().await?;
        if let Some(id) = peer.connection
            && !wanted.is_empty()
        {
            lock(&self.connections).entry(id).or_default().insert(tenant);
        }
        let mut r = Response::for_request(request, StatusCode::OK);
        for (contact, expires_at) in &current {
            let left = (*expires_at - now).num_seconds().max(0);
            r.headers.push(HeaderName::Contact, format!("<{contact}>;expires={left}"));
        }
        r.headers.push(HeaderName::Date, httpdate(now));
        Ok(r)
    }

    async fn audit_ban(
        &self,
        tenant: Option<TenantId>,
        account: &str,
        source: IpAddr,
        banned: crate::guard::Banned,
    ) {
        let mut entries = Vec::new();
        let at = Utc::now();
        let entry = |action: &str, resource_type: &str, resource_id: String| db::audit::NewAudit {
            id: domain::AuditId(uuid::Uuid::now_v7()),
            tenant_id: None,
            at,
            actor: db::audit::Actor::system(),
            action: action.to_owned(),
            resource_type: resource_type.to_owned(),
            resource_id: Some(resource_id),
            before: None,
            after: Some(serde_json::json!({
                "account": account,
                "source": source.to_string(),
                "ban_seconds": self.config.guard.ban.as_secs(),
            })),
            source_ip: Some(source.to_string()),
            request_id: None,
        };
        if banned.account {
            entries.push((tenant, entry("sip.account_banned", "sip_account", account.to_owned())));
        }
        if banned.source {
            entries.push((None, entry("sip.source_banned", "sip_source", source.to_string())));
        }
        tracing::warn!(
            account_banned = banned.account,
            source_banned = banned.source,
            "SIP authentication failures: temporary ban"
        );
        for (tenant, mut e) in entries {
            e.tenant_id = tenant;
            let result = async {
                let mut tx = match tenant {
                    Some(t) => self.db.tenant_tx(t).await?,
                    None => self.db.platform_tx().await?,
                };
                db::audit::insert(&mut tx, &e).await?;
                tx.commit().await?;
                Ok::<_, db::DbError>(())
            }
            .await;
            if let Err(err) = result {
                tracing::warn!(error = %err, "could not audit a SIP ban");
            }
        }
    }

    /// A stream connection closed: its bindings can no longer be reached.
    pub(crate) fn connection_closed(self: &Arc<Self>, id: ConnectionId) {
        let Some(tenants) = lock(&self.connections).remove(&id) else { return };
        let this = self.clone();
        tokio::spawn(async move {
            for tenant in tenants {
                let result = async {
                    let mut tx = this.db.tenant_tx(tenant).await?;
                    db::sip::remove_connection_bindings(&mut tx, &this.node_id, Some(id.0 as i64)).await?;
                    tx.commit().await?;
                    Ok::<_, db::DbError>(())
                }
                .await;
                if let Err(e) = result {
                    tracing::warn!(error = %e, "could not remove the bindings of a closed connection");
                }
            }
        });
    }

    /// At start: connection-bound bindings this node held before a restart are dead.
    pub(crate) async fn forget_previous_connections(&self) -> Result<(), db::DbError> {
        let mut tx = self.db.platform_tx().await?;
        let tenants = db::tenants::list(&mut tx, None, 100_000).await?;
        tx.commit().await?;
        for t in tenants.items {
            let mut tx = self.db.tenant_tx(t.tenant_id()).await?;
            db::sip::remove_connection_bindings(&mut tx, &self.node_id, None).await?;
            db::sip::purge_expired(&mut tx, Utc::now()).await?;
            tx.commit().await?;
        }
        Ok(())
    }
}

/// RFC 7231 IMF-fixdate, for the Date header of a 200 to REGISTER.
fn httpdate(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}
