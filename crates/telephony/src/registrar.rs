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
//!
//! Bindings live in PostgreSQL (`sip_registrations`, with the node that holds each one), where
//! the API and the call engine read them. A REGISTER that changes them is one statement
//! (`db::sip::register`) in a transaction that commits asynchronously (soft state), and
//! announces the change on `db::outbox::CHANGES_CHANNEL` in that transaction.
//!
//! Refreshes are mostly absorbed in memory. This node remembers each agent's bindings as its last
//! write left them; a REGISTER that only refreshes bindings this node holds, unchanged (same
//! contact, transport, source, connection, q and user agent), while the expiry already stored
//! is within a small bucket below the one asked for, is answered with that stored expiry and
//! writes nothing. So the database is never behind: the expiry a phone is granted is exactly
//! the row's `expires_at`, a crash loses nothing, and an agent whose phone stops refreshing
//! turns unregistered at that time. What is not written is the latest Call-ID and CSeq (the
//! row keeps those of its last write); this node checks the order of requests against the
//! ones it remembers. Remembered bindings are trusted only while this node listens on
//! `CHANGES_CHANNEL` (every change by any node is announced there and drops the memory of that
//! agent) and for at most `BINDINGS_CACHE_TTL`.
//!
//! A sweep deletes expired bindings of the tenants this node registers for every
//! `RegistrarConfig::sweep_interval` and announces those changes, so an expiry nobody else
//! notices still reaches the web app.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, SubsecRound, Utc};
use db::Db;
use domain::{TenantId, UserId};
use sip::auth::{self, AuthConfig, AuthFailure, Authenticator, Credentials, NonceSecret, Verification};
use sip::transaction::{ConnectionId, Peer};
use sip::{Contacts, HeaderName, Request, Response, StatusCode};
use tokio::sync::watch;
use uuid::Uuid;

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
    /// How often expired bindings are deleted (and the change announced) in the tenants this
    /// node registers for.
    pub sweep_interval: Duration,
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
            sweep_interval: Duration::from_secs(15),
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

/// How long an expired cache entry (tenant, account) keeps being used by others while the
/// first request to find it expired reads it again: at thousands of REGISTERs a second, every
/// request would otherwise read it until the first read returns, and those reads queue for
/// the pool.
const REFRESH_GRACE: Duration = Duration::from_secs(2);

/// Whether a cache entry stamped `at` may be used. The first caller to find it expired gets
/// false and reads it again; its stamp is moved so that others use it for `REFRESH_GRACE`
/// meanwhile (and if that read fails, someone reads again after that).
fn fresh_or_claim(at: &mut Instant, ttl: Duration) -> bool {
    if at.elapsed() < ttl {
        return true;
    }
    if let Some(claimed) = Instant::now().checked_sub(ttl.saturating_sub(REFRESH_GRACE)) {
        *at = claimed;
    }
    false
}

/// How long remembered bindings answer refreshes without a database write, at most. Every change
/// is announced and drops them sooner; this bounds what a lost announcement can cost.
const BINDINGS_CACHE_TTL: Duration = Duration::from_secs(30);
/// A refresh is answered from memory when the stored expiry is at most this far below the one
/// asked for (a tenth of it, at most a minute): the phone is granted the stored one, which is
/// a little shorter, and refreshes a little earlier.
const EXPIRY_BUCKET_MAX: i64 = 60;
const MAX_CACHED_AGENTS: usize = 100_000;

/// An agent's bindings as this node last wrote (or read) them, except `call_id` and `cseq`,
/// which are the latest this node accepted.
struct CachedBindings {
    bindings: Vec<db::sip::BindingRow>,
    stored: Instant,
    /// The write that stored them (see [`BindingsSlot`]).
    write: u64,
}

/// The memory of one agent's bindings, and the writes in flight for the agent.
///
/// A write stores its result when it ends unless the agent's bindings were announced as changed
/// (or forgotten) since it started — the announcement may be of a change committed after the
/// write's statement, so its result may be stale — and unless a write that started later has
/// stored already. Writes do not void what is remembered while they run: under load, refreshes
/// keep arriving while one is written, and if each of them went to the database the memory
/// would never be refilled (each write's result outdated by the next one's start) and every
/// REGISTER would be written from then on.
#[derive(Default)]
struct BindingsSlot {
    /// Bumped by announcements and forgetting.
    invalidations: u64,
    /// Numbers the writes.
    started: u64,
    /// Writes in flight.
    writes: u32,
    cached: Option<CachedBindings>,
}

/// What a write must show when it ends to store its result.
struct WriteTicket {
    invalidations: u64,
    write: u64,
}

type AgentKey = (TenantId, UserId);

/// Every agent's [`BindingsSlot`].
#[derive(Default)]
struct BindingsMemory {
    slots: Mutex<HashMap<AgentKey, BindingsSlot>>,
}

impl BindingsMemory {
    /// A write of the agent's bindings begins.
    fn started(&self, key: AgentKey) -> WriteTicket {
        let mut slots = lock(&self.slots);
        if !slots.contains_key(&key) && slots.len() >= MAX_CACHED_AGENTS {
            slots.retain(|_, slot| slot.writes > 0);
        }
        let slot = slots.entry(key).or_default();
        slot.started += 1;
        slot.writes += 1;
        WriteTicket { invalidations: slot.invalidations, write: slot.started }
    }

    /// A write ended, with the bindings it left (`None` when it wrote nothing or failed): they
    /// are remembered unless something newer is known (see [`BindingsSlot`]).
    fn done(&self, key: AgentKey, ticket: &WriteTicket, bindings: Option<Vec<db::sip::BindingRow>>) {
        let mut slots = lock(&self.slots);
        let Some(slot) = slots.get_mut(&key) else { return };
        slot.writes = slot.writes.saturating_sub(1);
        if let Some(bindings) = bindings
            && slot.invalidations == ticket.invalidations
            && slot.cached.as_ref().is_none_or(|c| c.write < ticket.write)
        {
            slot.cached = Some(CachedBindings { bindings, stored: Instant::now(), write: ticket.write });
        }
        if slot.writes == 0 && slot.cached.is_none() {
            slots.remove(&key);
        }
    }

    /// The agent's bindings changed elsewhere (or may have): ask the database next time, and
    /// do not remember what writes in flight return.
    fn forget(&self, key: AgentKey) {
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.get_mut(&key) {
            slot.invalidations += 1;
            slot.cached = None;
            if slot.writes == 0 {
                slots.remove(&key);
            }
        }
    }

    /// Forgets every remembered binding (announcements may have been missed).
    fn forget_all(&self) {
        lock(&self.slots).retain(|_, slot| {
            slot.invalidations += 1;
            slot.cached = None;
            slot.writes > 0
        });
    }
}

/// A REGISTER's contacts as the registrar reads them.
struct Wanted {
    wildcard: bool,
    /// Contact, granted expiry in seconds (0 removes), q; each contact once (the last wins).
    contacts: Vec<(String, u32, Option<f32>)>,
    call_id: String,
    cseq: i64,
    transport: String,
    source: String,
    connection_id: Option<i64>,
    user_agent: Option<String>,
}

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
    /// Agents' bindings as this node last wrote them (see the module documentation).
    bindings_cache: BindingsMemory,
    /// Whether announcements of changes are being heard: remembered bindings are used only then.
    listening: AtomicBool,
    /// Tenants this node has written bindings for: the sweep looks at these.
    swept: Mutex<HashSet<TenantId>>,
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
            bindings_cache: BindingsMemory::default(),
            listening: AtomicBool::new(false),
            swept: Mutex::new(HashSet::new()),
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
        if let Some((tenant, at)) = lock(&self.tenants).get_mut(slug)
            && fresh_or_claim(at, TENANT_CACHE_TTL)
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
    /// "no such account", which keeps scanners off the database), or read afresh with
    /// `reread`. A new password also drops the cached account at once (`ACCOUNTS_CHANNEL`).
    /// Returns the account and whether it was read from the database just now.
    async fn account(
        &self,
        tenant: TenantId,
        extension: &str,
        reread: bool,
    ) -> Result<(Option<db::sip::AuthAccount>, bool), db::DbError> {
        let key = (tenant, extension.to_owned());
        if !reread
            && let Some((account, at)) = lock(&self.accounts).get_mut(&key)
            && fresh_or_claim(at, ACCOUNT_CACHE_TTL)
        {
            return Ok((account.clone(), false));
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
        Ok((account, true))
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
            Authenticated::Agent(agent) => self.bindings(request, peer, agent.tenant, agent.user).await,
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
        let (mut account, fetched) = match tenant {
            Some(t) if credentials.username == extension => self.account(t, &extension, false).await?,
            _ => (None, true),
        };
        let mut verdict = self.verify(request, &credentials, &realm, account.as_ref());
        // A cached account may predate a password change announced a moment ago (or on a node
        // whose announcement was lost): read it again before calling the digest wrong, so a
        // phone given a new password gets in at once. A wrong response does not consume the
        // nonce count, so the same credentials can be checked twice. Not for a cached "no such
        // account": guesses at unknown extensions stay off the database (a new agent waits for
        // the cache's few seconds), and guesses at a real one are few before the ban.
        if verdict == Verification::Failed(AuthFailure::WrongResponse)
            && !fetched
            && account.is_some()
            && let Some(t) = tenant
        {
            let (again, _) = self.account(t, &extension, true).await?;
            if again.as_ref().map(|a| &a.password_enc) != account.as_ref().map(|a| &a.password_enc) {
                account = again;
                verdict = self.verify(request, &credentials, &realm, account.as_ref());
            }
        }
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

    /// Checks the digest against the account's password, or against a dummy one when there is
    /// no account (the same work, so unknown users cannot be told apart by timing).
    fn verify(
        &self,
        request: &Request,
        credentials: &Credentials,
        realm: &str,
        account: Option<&db::sip::AuthAccount>,
    ) -> Verification {
        let ha1 = account
            .and_then(|a| {
                let context = format!("sip-password:{}", a.user_id);
                let password = self.vault.decrypt(&a.password_enc, &context).ok()?;
                let password = String::from_utf8(password).ok()?;
                Some(auth::ha1(credentials.algorithm, &credentials.username, realm, &password))
            })
            // No account: a digest that matches nothing, computed the same way.
            .unwrap_or_else(|| {
                auth::ha1(credentials.algorithm, &credentials.username, realm, "\u{0}no-account")
            });
        self.with_realm(realm, |a| a.verify(SystemTime::now(), request, credentials, &ha1))
    }

    /// Applies the REGISTER's bindings (authenticated for `user`) and lists the result.
    async fn bindings(
        &self,
        request: &Request,
        peer: &Peer,
        tenant: TenantId,
        user: UserId,
    ) -> Result<Response, db::DbError> {
        let Ok(contacts) = request.headers.contacts() else {
            return Ok(Response::for_request(request, StatusCode::BAD_REQUEST));
        };
        let header_expires = request.headers.expires().ok().flatten();
        let mut wanted = Wanted {
            wildcard: matches!(contacts, Contacts::Wildcard),
            contacts: Vec::new(),
            call_id: request.headers.call_id().unwrap_or_default().to_owned(),
            cseq: request.headers.cseq().map(|c| i64::from(c.seq)).unwrap_or(0),
            transport: peer.transport.as_str().to_ascii_lowercase(),
            source: peer.addr.to_string(),
            connection_id: peer.connection.map(|c| c.0 as i64),
            user_agent: request.headers.get(&HeaderName::UserAgent).map(|ua| ua.chars().take(200).collect()),
        };
        // Requested expiry per contact, checked before anything is written (§10.3 step 6).
        for contact in contacts.addresses() {
            let expires = contact.expires().or(header_expires).unwrap_or(self.config.default_expires);
            if expires > 0 && expires < self.config.min_expires {
                let mut r = Response::for_request(request, StatusCode::INTERVAL_TOO_BRIEF);
                r.headers.push(HeaderName::MinExpires, self.config.min_expires.to_string());
                return Ok(r);
            }
            // A contact listed twice counts once, the last one winning (as applied in order).
            let uri = contact.uri.to_string();
            wanted.contacts.retain(|(c, ..)| *c != uri);
            wanted.contacts.push((uri, expires.min(self.config.max_expires), contact.q()));
        }
        // PostgreSQL keeps microseconds: a finer `now` would make the stored expiry a fraction
        // shorter than the one computed here, and the answer one second short.
        let now: DateTime<Utc> = Utc::now().trunc_subsecs(6);
        if let Some(answer) = self.answer_from_memory(request, (tenant, user), &wanted, now) {
            return Ok(answer);
        }
        let key = (tenant, user);
        let ticket = self.write_started(key);
        let registered = match self.write_bindings(tenant, user, &wanted, now).await {
            Ok(r) if r.allowed => r,
            Ok(_) => {
                // Refused: nothing was written, what is remembered still holds.
                self.write_done(key, &ticket, None);
                return Ok(Response::for_request(request, StatusCode::FORBIDDEN)
                    .with_reason("Too Many Registrations"));
            }
            Err(e) => {
                // The commit may or may not have happened: remember nothing.
                self.write_done(key, &ticket, None);
                self.forget_bindings(key);
                return Err(e);
            }
        };
        if let Some(id) = peer.connection
            && !wanted.contacts.is_empty()
        {
            lock(&self.connections).entry(id).or_default().insert(tenant);
        }
        if !registered.bindings.is_empty() {
            lock(&self.swept).insert(tenant);
        }
        let answer = listing(request, &registered.bindings, now);
        self.write_done(key, &ticket, Some(registered.bindings));
        Ok(answer)
    }

    /// The database side of a REGISTER: one statement, and the announcement when the agent's
    /// bindings changed, in one transaction.
    async fn write_bindings(
        &self,
        tenant: TenantId,
        user: UserId,
        wanted: &Wanted,
        now: DateTime<Utc>,
    ) -> Result<db::sip::Registered, db::DbError> {
        let contacts: Vec<db::sip::WantedBinding> = wanted
            .contacts
            .iter()
            .map(|(contact, expires, q)| db::sip::WantedBinding {
                contact: contact.clone(),
                expires_at: (*expires > 0).then(|| now + chrono::Duration::seconds(i64::from(*expires))),
                q: *q,
            })
            .collect();
        // Bindings are soft state that phones refresh: commit without waiting for the WAL.
        let mut tx = self.db.tenant_tx_async_commit(tenant).await?;
        let registered = db::sip::register(
            &mut tx,
            &db::sip::Registration {
                tenant,
                user,
                wildcard: wanted.wildcard,
                contacts: &contacts,
                call_id: &wanted.call_id,
                cseq: wanted.cseq,
                transport: &wanted.transport,
                source: &wanted.source,
                node_id: &self.node_id,
                connection_id: wanted.connection_id,
                user_agent: wanted.user_agent.as_deref(),
                max_bindings: self.config.max_bindings,
                now,
            },
        )
        .await?;
        if !registered.allowed {
            tx.rollback().await?;
            return Ok(registered);
        }
        if registered.changed {
            db::outbox::notify_changed(&mut tx, tenant, db::outbox::Changed::AgentRegistration, user.0)
                .await?;
        }
        tx.commit().await?;
        Ok(registered)
    }

    /// The answer to a REGISTER that only refreshes bindings this node wrote, unchanged, when
    /// the expiry already stored is within the bucket below the one asked for: that stored
    /// expiry is granted and nothing is written (see the module documentation). `None` when
    /// the database must be asked.
    fn answer_from_memory(
        &self,
        request: &Request,
        key: (TenantId, UserId),
        wanted: &Wanted,
        now: DateTime<Utc>,
    ) -> Option<Response> {
        if wanted.wildcard || !self.listening.load(Ordering::Acquire) {
            return None;
        }
        let mut slots = lock(&self.bindings_cache.slots);
        let slot = slots.get_mut(&key)?;
        // While a write for the agent is in flight (the one that found the memory too old or
        // the stored expiry too short), the others are answered from memory rather than all
        // queueing on the same row: past the age limit by one write, and with what is stored
        // even if it is below the bucket (still never more than the row holds).
        let writing = slot.writes > 0;
        let cached = slot.cached.as_mut()?;
        // Expired bindings are purged by a write, and the purge is a change to announce; a
        // binding about to expire is left to the database as well, so no answer says 0.
        if (cached.stored.elapsed() >= BINDINGS_CACHE_TTL && !writing)
            || cached.bindings.iter().any(|b| b.expires_at <= now + chrono::Duration::seconds(1))
        {
            return None;
        }
        let mut refreshed = Vec::with_capacity(wanted.contacts.len());
        for (contact, expires, q) in &wanted.contacts {
            let i = cached.bindings.iter().position(|b| b.contact == *contact)?;
            let b = &cached.bindings[i];
            let unchanged = b.node_id == self.node_id
                && b.connection_id == wanted.connection_id
                && b.transport == wanted.transport
                && b.source == wanted.source
                && b.q.map(f32::to_bits) == q.map(f32::to_bits)
                && b.user_agent == wanted.user_agent;
            let asked = i64::from(*expires);
            let floor = if writing {
                i64::from(self.config.min_expires)
            } else {
                (asked - (asked / 10).min(EXPIRY_BUCKET_MAX)).max(i64::from(self.config.min_expires))
            };
            let left = b.expires_at - now;
            // Never more than asked (the row would outlive the binding), nor much less.
            let fits = left <= chrono::Duration::seconds(asked) && left >= chrono::Duration::seconds(floor);
            if *expires == 0 || !unchanged || !fits {
                return None;
            }
            refreshed.push(i);
        }
        for i in refreshed {
            let b = &mut cached.bindings[i];
            // Same Call-ID and a CSeq not above: out of order, changes nothing (§10.3 step 7),
            // as the database path would do.
            if !(b.call_id == wanted.call_id && b.cseq >= wanted.cseq) {
                b.call_id.clone_from(&wanted.call_id);
                b.cseq = wanted.cseq;
            }
        }
        Some(listing(request, &cached.bindings, now))
    }

    fn write_started(&self, key: (TenantId, UserId)) -> WriteTicket {
        self.bindings_cache.started(key)
    }

    fn write_done(
        &self,
        key: (TenantId, UserId),
        ticket: &WriteTicket,
        bindings: Option<Vec<db::sip::BindingRow>>,
    ) {
        self.bindings_cache.done(key, ticket, bindings);
    }

    fn forget_bindings(&self, key: (TenantId, UserId)) {
        self.bindings_cache.forget(key);
    }

    fn forget_all_bindings(&self) {
        self.bindings_cache.forget_all();
    }

    /// An announcement on one of the channels of `db::sip::listen`.
    fn announced(&self, channel: &str, payload: &str) {
        if channel == db::outbox::CHANGES_CHANNEL {
            // `<tenant>:agent.registration:<user>`; other resources are not ours.
            let mut parts = payload.splitn(3, ':');
            if let (Some(tenant), Some(kind), Some(user)) = (parts.next(), parts.next(), parts.next())
                && kind == db::outbox::Changed::AgentRegistration.as_str()
                && let (Ok(tenant), Ok(user)) = (tenant.parse::<Uuid>(), user.parse::<Uuid>())
            {
                self.forget_bindings((TenantId(tenant), UserId(user)));
            }
        } else if channel == db::sip::ACCOUNTS_CHANNEL
            && let Some((tenant, user)) = payload.split_once(':')
            && let (Ok(tenant), Ok(user)) = (tenant.parse::<Uuid>(), user.parse::<Uuid>())
        {
            lock(&self.accounts).retain(|(t, _), (account, _)| {
                !(t.0 == tenant && account.as_ref().is_some_and(|a| a.user_id == user))
            });
        }
    }

    /// Runs until `stop`: clears what this node held before a restart, listens for
    /// announcements (remembered bindings are used only while it does), and sweeps expired
    /// bindings.
    pub(crate) async fn maintain(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let sweeper = self.clone();
        let sweep_stop = stop.clone();
        tokio::join!(self.listen(stop), async move {
            if let Err(e) = sweeper.forget_previous_connections().await {
                tracing::warn!(error = %e, "could not clear this node's stale SIP bindings");
            }
            sweeper.sweep(sweep_stop).await;
        });
    }

    async fn listen(&self, mut stop: watch::Receiver<bool>) {
        loop {
            let mut listener = match db::sip::listen(&self.db).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "could not listen for SIP binding changes; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(5)) => continue,
                        () = crate::stopped(&mut stop) => return,
                    }
                }
            };
            // What was announced while nobody listened is unknown: start from nothing.
            self.forget_all_bindings();
            self.listening.store(true, Ordering::Release);
            loop {
                tokio::select! {
                    n = listener.try_recv() => match n {
                        Ok(Some(n)) => self.announced(n.channel(), n.payload()),
                        // The connection dropped: announcements are lost until it is back.
                        Ok(None) | Err(_) => break,
                    },
                    () = crate::stopped(&mut stop) => {
                        self.listening.store(false, Ordering::Release);
                        return;
                    }
                }
            }
            self.listening.store(false, Ordering::Release);
            self.forget_all_bindings();
        }
    }

    /// Every `sweep_interval`, deletes the expired bindings of the tenants this node registers
    /// for and announces which agents lost one: nobody else notices a phone that just stops
    /// refreshing (the API is right regardless, it only counts live bindings).
    async fn sweep(&self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.config.sweep_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = crate::stopped(&mut stop) => return,
            }
            let tenants: Vec<TenantId> = lock(&self.swept).iter().copied().collect();
            for tenant in tenants {
                let result = async {
                    let mut tx = self.db.tenant_tx(tenant).await?;
                    let users = db::sip::purge_expired(&mut tx, Utc::now()).await?;
                    announce(&mut tx, tenant, &users).await?;
                    tx.commit().await?;
                    Ok::<_, db::DbError>(users)
                }
                .await;
                match result {
                    Ok(users) => users.into_iter().for_each(|u| self.forget_bindings((tenant, UserId(u)))),
                    Err(e) => tracing::warn!(error = %e, "could not purge expired SIP bindings"),
                }
            }
        }
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
            id: domain::AuditId(Uuid::now_v7()),
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
                    let users =
                        db::sip::remove_connection_bindings(&mut tx, &this.node_id, Some(id.0 as i64))
                            .await?;
                    announce(&mut tx, tenant, &users).await?;
                    tx.commit().await?;
                    Ok::<_, db::DbError>(users)
                }
                .await;
                match result {
                    Ok(users) => users.into_iter().for_each(|u| this.forget_bindings((tenant, UserId(u)))),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not remove the bindings of a closed connection")
                    }
                }
            }
        });
    }

    /// At start: connection-bound bindings this node held before a restart are dead, and
    /// expired ones go too.
    pub(crate) async fn forget_previous_connections(&self) -> Result<(), db::DbError> {
        let mut tx = self.db.platform_tx().await?;
        let tenants = db::tenants::list(&mut tx, None, 100_000).await?;
        tx.commit().await?;
        for t in tenants.items {
            let tenant = t.tenant_id();
            let mut tx = self.db.tenant_tx(tenant).await?;
            let mut users = db::sip::remove_connection_bindings(&mut tx, &self.node_id, None).await?;
            users.extend(db::sip::purge_expired(&mut tx, Utc::now()).await?);
            users.sort_unstable();
            users.dedup();
            announce(&mut tx, tenant, &users).await?;
            tx.commit().await?;
            users.into_iter().for_each(|u| self.forget_bindings((tenant, UserId(u))));
        }
        Ok(())
    }
}

/// Announces, in the caller's transaction, that these agents' bindings changed.
async fn announce(tx: &mut db::Tx, tenant: TenantId, users: &[Uuid]) -> Result<(), db::DbError> {
    for &user in users {
        db::outbox::notify_changed(tx, tenant, db::outbox::Changed::AgentRegistration, user).await?;
    }
    Ok(())
}

/// The 200 to a REGISTER: every live binding with the seconds it has left (RFC 3261 §10.3
/// step 8), and the Date.
fn listing(request: &Request, bindings: &[db::sip::BindingRow], now: DateTime<Utc>) -> Response {
    let mut r = Response::for_request(request, StatusCode::OK);
    for b in bindings {
        let left = (b.expires_at - now).num_seconds().max(0);
        r.headers.push(HeaderName::Contact, format!("<{}>;expires={left}", b.contact));
    }
    r.headers.push(HeaderName::Date, httpdate(now));
    r
}

/// RFC 7231 IMF-fixdate, for the Date header of a 200 to REGISTER.
fn httpdate(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AgentKey {
        (TenantId(Uuid::from_u128(1)), UserId(Uuid::from_u128(2)))
    }

    fn bindings(contact: &str) -> Vec<db::sip::BindingRow> {
        vec![db::sip::BindingRow {
            id: Uuid::from_u128(3),
            contact: contact.to_owned(),
            expires_at: Utc::now(),
            call_id: "c".into(),
            cseq: 1,
            q: None,
            transport: "udp".into(),
            source: "192.0.2.1:5060".into(),
            node_id: "n".into(),
            connection_id: None,
            user_agent: None,
        }]
    }

    fn remembered(m: &BindingsMemory) -> Option<String> {
        lock(&m.slots).get(&key())?.cached.as_ref().map(|c| c.bindings[0].contact.clone())
    }

    #[test]
    fn overlapping_writes_still_refill_the_memory() {
        // Under load a write is always in flight when another ends: each result is kept unless
        // a later write's is already there.
        let m = BindingsMemory::default();
        let first = m.started(key());
        let second = m.started(key());
        let third = m.started(key());
        m.done(key(), &second, Some(bindings("second")));
        assert_eq!(remembered(&m).as_deref(), Some("second"));
        m.done(key(), &first, Some(bindings("first")));
        assert_eq!(remembered(&m).as_deref(), Some("second"), "an older result never replaces a newer one");
        m.done(key(), &third, Some(bindings("third")));
        assert_eq!(remembered(&m).as_deref(), Some("third"));
    }

    #[test]
    fn an_announcement_voids_what_writes_in_flight_return() {
        let m = BindingsMemory::default();
        let before = m.started(key());
        m.forget(key());
        let after = m.started(key());
        m.done(key(), &before, Some(bindings("before")));
        assert_eq!(remembered(&m), None, "the change announced may have committed after that write");
        m.done(key(), &after, Some(bindings("after")));
        assert_eq!(remembered(&m).as_deref(), Some("after"));
        m.forget_all();
        assert_eq!(remembered(&m), None);
        assert!(lock(&m.slots).is_empty(), "nothing in flight, nothing kept");
    }

    #[test]
    fn a_failed_write_keeps_nothing_new() {
        let m = BindingsMemory::default();
        let ok = m.started(key());
        m.done(key(), &ok, Some(bindings("ok")));
        let failed = m.started(key());
        m.done(key(), &failed, None);
        assert_eq!(remembered(&m).as_deref(), Some("ok"));
    }
}
