//! SIP: agents' SIP accounts (extension and encrypted password) and their registration
//! bindings. All in tenant transactions.

use chrono::{DateTime, Utc};
use domain::{TenantId, UserId};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;
use crate::page::{Cursor, Page};

#[derive(Clone, sqlx::FromRow)]
pub struct SipAccountRow {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub extension: String,
    pub password_enc: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for SipAccountRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipAccountRow")
            .field("user_id", &self.user_id)
            .field("extension", &self.extension)
            .finish_non_exhaustive()
    }
}

pub async fn get_account(conn: &mut PgConnection, user: UserId) -> Result<Option<SipAccountRow>> {
    Ok(sqlx::query_as("select * from sip_accounts where user_id = $1")
        .bind(user.as_uuid())
        .fetch_optional(conn)
        .await?)
}

/// Creates the user's account with the next free numeric extension (from 1000), or returns
/// the existing one. `password_enc` is only used if the account is new.
pub async fn ensure_account(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    password_enc: &str,
    now: DateTime<Utc>,
) -> Result<SipAccountRow> {
    // Concurrent creations may pick the same number; the unique key makes one retry.
    for _ in 0..5 {
        if let Some(row) = get_account(&mut *conn, user).await? {
            return Ok(row);
        }
        let inserted: Option<SipAccountRow> = sqlx::query_as(
            "insert into sip_accounts (user_id, tenant_id, extension, password_enc, created_at, updated_at)
             select $1, $2, (coalesce(max(extension::bigint), 999) + 1)::text, $3, $4, $4
               from sip_accounts where tenant_id = $2 and extension ~ '^[0-9]{1,12}$'
             on conflict do nothing
             returning *",
        )
        .bind(user.as_uuid())
        .bind(tenant.as_uuid())
        .bind(password_enc)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = inserted {
            return Ok(row);
        }
    }
    Err(crate::DbError::Conflict("sip_accounts_tenant_id_extension_key".into()))
}

/// `LISTEN` channel announcing that an agent's SIP password changed, as `<tenant id>:<user id>`
/// (sent by [`set_password`] in the caller's transaction, so only once it commits): registrars
/// drop the credentials they cached for that agent.
pub const ACCOUNTS_CHANNEL: &str = "sivo_sip_accounts";

/// Sets a new (encrypted) SIP password and announces it on [`ACCOUNTS_CHANNEL`].
pub async fn set_password(
    conn: &mut PgConnection,
    user: UserId,
    password_enc: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "with changed as (
             update sip_accounts set password_enc = $2, updated_at = $3 where user_id = $1
             returning tenant_id, user_id)
         select pg_notify($4, tenant_id::text || ':' || user_id::text) from changed",
    )
    .bind(user.as_uuid())
    .bind(password_enc)
    .bind(now)
    .bind(ACCOUNTS_CHANNEL)
    .execute(conn)
    .await?;
    Ok(())
}

/// What the registrar needs to check a REGISTER for an extension.
#[derive(Clone, sqlx::FromRow)]
pub struct AuthAccount {
    pub user_id: Uuid,
    pub password_enc: String,
    pub role: String,
    pub disabled: bool,
}

/// The account of an active agent or supervisor with this extension.
pub async fn find_by_extension(conn: &mut PgConnection, extension: &str) -> Result<Option<AuthAccount>> {
    Ok(sqlx::query_as(
        "select a.user_id, a.password_enc, u.role, u.disabled
           from sip_accounts a join users u on u.id = a.user_id
          where a.extension = $1 and u.role in ('agent', 'supervisor') and not u.disabled",
    )
    .bind(extension)
    .fetch_optional(conn)
    .await?)
}

/// An agent with its extension and registration summary.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AgentRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: String,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub extension: Option<String>,
    /// Live bindings (not expired).
    pub registrations: i64,
    /// Of the most recent live binding.
    pub transport: Option<String>,
    pub user_agent: Option<String>,
    pub registered_until: Option<DateTime<Utc>>,
    /// Availability (`agent_states`); None means logged out.
    pub status: Option<String>,
    pub pause_reason: Option<String>,
    /// Queues the agent is a member of, oldest membership first.
    pub queue_ids: Vec<Uuid>,
}

const AGENT_SELECT: &str = "select u.id, u.tenant_id, u.email, u.display_name, u.role, u.disabled, u.created_at,
        a.extension,
        (select count(*) from sip_registrations r where r.user_id = u.id and r.expires_at > $1) as registrations,
        b.transport, b.user_agent,
        (select max(r.expires_at) from sip_registrations r where r.user_id = u.id and r.expires_at > $1) as registered_until,
        s.status, s.pause_reason,
        array(select m.queue_id from queue_members m where m.user_id = u.id order by m.created_at, m.queue_id) as queue_ids
   from users u
   left join sip_accounts a on a.user_id = u.id
   left join agent_states s on s.user_id = u.id
   left join lateral (select r.transport, r.user_agent from sip_registrations r
                       where r.user_id = u.id and r.expires_at > $1
                       order by r.updated_at desc limit 1) b on true";

pub async fn list_agents(
    conn: &mut PgConnection,
    tenant: TenantId,
    now: DateTime<Utc>,
    after: Option<Cursor>,
    limit: usize,
) -> Result<Page<AgentRow>> {
    let sql = format!(
        "{AGENT_SELECT}
          where u.tenant_id = $2 and u.role in ('agent', 'supervisor')
            and ($3::timestamptz is null or (u.created_at, u.id) > ($3, $4))
          order by u.created_at, u.id limit $5"
    );
    let rows: Vec<AgentRow> = sqlx::query_as(&sql)
        .bind(now)
        .bind(tenant.as_uuid())
        .bind(after.map(|c| c.at))
        .bind(after.map(|c| c.id))
        .bind(limit as i64 + 1)
        .fetch_all(conn)
        .await?;
    Ok(Page::from_overfetch(rows, limit, |r| Cursor { at: r.created_at, id: r.id }))
}

/// One agent (agent or supervisor role); `NotFound` for other roles and other tenants.
pub async fn get_agent(conn: &mut PgConnection, user: UserId, now: DateTime<Utc>) -> Result<AgentRow> {
    let sql = format!("{AGENT_SELECT} where u.id = $2 and u.role in ('agent', 'supervisor')");
    Ok(sqlx::query_as(&sql).bind(now).bind(user.as_uuid()).fetch_one(conn).await?)
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct BindingRow {
    pub id: Uuid,
    pub contact: String,
    pub expires_at: DateTime<Utc>,
    pub call_id: String,
    pub cseq: i64,
    pub q: Option<f32>,
    pub transport: String,
    pub source: String,
    pub node_id: String,
    pub connection_id: Option<i64>,
    pub user_agent: Option<String>,
}

/// Live bindings of a user, most recent first.
pub async fn bindings(conn: &mut PgConnection, user: UserId, now: DateTime<Utc>) -> Result<Vec<BindingRow>> {
    Ok(sqlx::query_as(
        "select id, contact, expires_at, call_id, cseq, q, transport, source, node_id, connection_id, user_agent
           from sip_registrations where user_id = $1 and expires_at > $2 order by updated_at desc",
    )
    .bind(user.as_uuid())
    .bind(now)
    .fetch_all(conn)
    .await?)
}

pub struct NewBinding<'a> {
    pub tenant: TenantId,
    pub user: UserId,
    pub contact: &'a str,
    pub expires_at: DateTime<Utc>,
    pub call_id: &'a str,
    pub cseq: i64,
    pub q: Option<f32>,
    pub transport: &'a str,
    pub source: &'a str,
    pub node_id: &'a str,
    pub connection_id: Option<i64>,
    pub user_agent: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// Adds or refreshes a binding. A refresh with the same Call-ID and a CSeq not above the
/// stored one is out of order and changes nothing (RFC 3261 §10.3 step 7); returns whether
/// the row was written.
pub async fn upsert_binding(conn: &mut PgConnection, b: &NewBinding<'_>) -> Result<bool> {
    let done = sqlx::query(
        "insert into sip_registrations (id, tenant_id, user_id, contact, expires_at, call_id, cseq, q, transport,
                                        source, node_id, connection_id, user_agent, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)
         on conflict (tenant_id, user_id, contact) do update set
             expires_at = excluded.expires_at, call_id = excluded.call_id, cseq = excluded.cseq, q = excluded.q,
             transport = excluded.transport, source = excluded.source, node_id = excluded.node_id,
             connection_id = excluded.connection_id, user_agent = excluded.user_agent, updated_at = excluded.updated_at
         where not (sip_registrations.call_id = excluded.call_id and sip_registrations.cseq >= excluded.cseq
                    and sip_registrations.expires_at > excluded.updated_at)",
    )
    .bind(Uuid::now_v7())
    .bind(b.tenant.as_uuid())
    .bind(b.user.as_uuid())
    .bind(b.contact)
    .bind(b.expires_at)
    .bind(b.call_id)
    .bind(b.cseq)
    .bind(b.q)
    .bind(b.transport)
    .bind(b.source)
    .bind(b.node_id)
    .bind(b.connection_id)
    .bind(b.user_agent)
    .bind(b.now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Removes the bindings carried by a connection that closed (or, with `None`, every
/// connection-bound binding of a node that restarted); returns the users who lost one.
pub async fn remove_connection_bindings(
    conn: &mut PgConnection,
    node_id: &str,
    connection_id: Option<i64>,
) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "with removed as (
             delete from sip_registrations where node_id = $1 and connection_id is not null
                and ($2::bigint is null or connection_id = $2)
             returning user_id)
         select distinct user_id from removed",
    )
    .bind(node_id)
    .bind(connection_id)
    .fetch_all(conn)
    .await?)
}

/// Deletes the tenant's expired bindings; returns the users who lost one.
pub async fn purge_expired(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "with purged as (delete from sip_registrations where expires_at <= $1 returning user_id)
         select distinct user_id from purged",
    )
    .bind(now)
    .fetch_all(conn)
    .await?)
}

/// One contact of a REGISTER, as the registrar decided it.
#[derive(Clone, Debug)]
pub struct WantedBinding {
    pub contact: String,
    /// `None` removes the binding (expires 0).
    pub expires_at: Option<DateTime<Utc>>,
    pub q: Option<f32>,
}

/// What a REGISTER does to a user's bindings: the contacts (each at most once), whether it was
/// `Contact: *`, and how the request reached us.
pub struct Registration<'a> {
    pub tenant: TenantId,
    pub user: UserId,
    pub wildcard: bool,
    pub contacts: &'a [WantedBinding],
    pub call_id: &'a str,
    pub cseq: i64,
    pub transport: &'a str,
    pub source: &'a str,
    pub node_id: &'a str,
    pub connection_id: Option<i64>,
    pub user_agent: Option<&'a str>,
    pub max_bindings: usize,
    pub now: DateTime<Utc>,
}

/// The result of [`register`].
#[derive(Clone, Debug)]
pub struct Registered {
    /// False when the request would have left more than `max_bindings` live bindings: then
    /// nothing was written and `bindings` means nothing.
    pub allowed: bool,
    /// Whether the set of bindings changed as others see it: a binding added (or revived after
    /// its expiry), removed or purged, or moved to another transport, node, connection or user
    /// agent. A plain refresh is no change.
    pub changed: bool,
    /// The live bindings after the request.
    pub bindings: Vec<BindingRow>,
}

#[derive(sqlx::FromRow)]
struct RegisteredRow {
    allowed: bool,
    removed: i64,
    /// Whether the row is one this statement wrote (else it is as it was before).
    written: Option<bool>,
    id: Option<Uuid>,
    contact: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    call_id: Option<String>,
    cseq: Option<i64>,
    q: Option<f32>,
    transport: Option<String>,
    source: Option<String>,
    node_id: Option<String>,
    connection_id: Option<i64>,
    user_agent: Option<String>,
}

/// Applies a REGISTER to the user's bindings in one statement (one round trip): purges the
/// expired ones, removes (expires 0, or every binding for `Contact: *`), adds and refreshes,
/// refuses past `max_bindings`, and returns the live bindings afterwards. A refresh with the same
/// Call-ID and a CSeq not above the stored one is out of order and changes nothing (RFC 3261
/// §10.3 step 7). Contacts must be unique within `r.contacts` (PostgreSQL cannot update a row
/// twice in one statement).
pub async fn register(conn: &mut PgConnection, r: &Registration<'_>) -> Result<Registered> {
    let adds: Vec<&WantedBinding> = r.contacts.iter().filter(|c| c.expires_at.is_some()).collect();
    let removes: Vec<&str> =
        r.contacts.iter().filter(|c| c.expires_at.is_none()).map(|c| c.contact.as_str()).collect();
    let ids: Vec<Uuid> = adds.iter().map(|_| Uuid::now_v7()).collect();
    let add_contacts: Vec<&str> = adds.iter().map(|c| c.contact.as_str()).collect();
    let add_expires: Vec<DateTime<Utc>> = adds.iter().filter_map(|c| c.expires_at).collect();
    let add_qs: Vec<Option<f32>> = adds.iter().map(|c| c.q).collect();
    // Data-modifying CTEs all see the snapshot taken before the statement (`cur`), never each
    // other's effects; so the purge leaves alone the contacts this request adds (deleting and
    // upserting one row in one statement is an error), and the caller gets the rows as they
    // were and as written, and assembles the result. The request's contacts come as arrays
    // rather than a joined table: sub-plans cost more to set up on every execution than the
    // statement's actual work on a handful of rows.
    let rows: Vec<RegisteredRow> = sqlx::query_as(
        "with cur as (
             select id, contact, expires_at, call_id, cseq, q, transport, source, node_id, connection_id, user_agent
               from sip_registrations where user_id = $1),
         verdict as (
             select count(*) filter (where expires_at > $13 and not $6 and contact <> all($5))
                  + cardinality($4::text[])
                  - count(*) filter (where expires_at > $13 and contact = any($4)) <= $14 as ok
               from cur),
         removed as (
             delete from sip_registrations s
              where s.user_id = $1 and (select ok from verdict)
                and ($6 or s.expires_at <= $13 or s.contact = any($5))
                and s.contact <> all($4)
             returning 1),
         upserted as (
             insert into sip_registrations (id, tenant_id, user_id, contact, expires_at, call_id, cseq, q, transport,
                                            source, node_id, connection_id, user_agent, created_at, updated_at)
             select a.id, $2, $1, a.contact, a.expires_at, $7, $8, a.q, $9, $10, $11, $12, $15, $13, $13
               from unnest($3::uuid[], $4::text[], $16::timestamptz[], $17::real[]) as a(id, contact, expires_at, q)
              where (select ok from verdict)
             on conflict (tenant_id, user_id, contact) do update set
                 expires_at = excluded.expires_at, call_id = excluded.call_id, cseq = excluded.cseq, q = excluded.q,
                 transport = excluded.transport, source = excluded.source, node_id = excluded.node_id,
                 connection_id = excluded.connection_id, user_agent = excluded.user_agent,
                 updated_at = excluded.updated_at
             where not (sip_registrations.call_id = excluded.call_id and sip_registrations.cseq >= excluded.cseq
                        and sip_registrations.expires_at > excluded.updated_at)
             returning id, contact, expires_at, call_id, cseq, q, transport, source, node_id, connection_id, user_agent)
         select (select ok from verdict) as allowed, (select count(*) from removed) as removed, b.*
           from (select 1) one
           left join (select false as written, * from cur union all select true, * from upserted) b on true",
    )
    .bind(r.user.as_uuid())
    .bind(r.tenant.as_uuid())
    .bind(&ids)
    .bind(&add_contacts)
    .bind(&removes)
    .bind(r.wildcard)
    .bind(r.call_id)
    .bind(r.cseq)
    .bind(r.transport)
    .bind(r.source)
    .bind(r.node_id)
    .bind(r.connection_id)
    .bind(r.now)
    .bind(i64::try_from(r.max_bindings).unwrap_or(i64::MAX))
    .bind(r.user_agent)
    .bind(&add_expires)
    .bind(&add_qs)
    .fetch_all(conn)
    .await?;
    let allowed = rows.first().is_some_and(|row| row.allowed);
    let removed = rows.first().map_or(0, |row| row.removed);
    let (mut before, mut written) = (Vec::new(), Vec::new());
    for row in rows {
        let fresh = row.written;
        let Some(b) = (|| {
            Some(BindingRow {
                id: row.id?,
                contact: row.contact?,
                expires_at: row.expires_at?,
                call_id: row.call_id?,
                cseq: row.cseq?,
                q: row.q,
                transport: row.transport?,
                source: row.source?,
                node_id: row.node_id?,
                connection_id: row.connection_id,
                user_agent: row.user_agent,
            })
        })() else {
            continue;
        };
        if fresh == Some(true) { written.push(b) } else { before.push(b) }
    }
    // A change others see: something removed or purged, a binding new (or revived after its
    // expiry), or one that moved to another transport, node, connection or user agent.
    let changed = removed > 0
        || written.iter().any(|w| {
            before.iter().find(|b| b.contact == w.contact).is_none_or(|b| {
                b.expires_at <= r.now
                    || b.transport != w.transport
                    || b.node_id != w.node_id
                    || b.connection_id != w.connection_id
                    || b.user_agent != w.user_agent
            })
        });
    let mut bindings = written;
    if !r.wildcard {
        let kept: Vec<BindingRow> = before
            .into_iter()
            .filter(|b| {
                b.expires_at > r.now
                    && !bindings.iter().any(|w| w.contact == b.contact)
                    && !removes.contains(&b.contact.as_str())
            })
            .collect();
        bindings.extend(kept);
    }
    Ok(Registered { allowed, changed, bindings })
}

/// A connection that hears what registrars must know: changed bindings
/// ([`crate::outbox::CHANGES_CHANNEL`]) and changed SIP passwords ([`ACCOUNTS_CHANNEL`]).
pub async fn listen(db: &crate::Db) -> Result<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect_with(db.pool()).await?;
    listener.listen_all([crate::outbox::CHANGES_CHANNEL, ACCOUNTS_CHANNEL]).await?;
    Ok(listener)
}
