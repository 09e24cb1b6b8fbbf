//! SIP trunks: the source-address gate for inbound INVITEs and the OPTIONS keepalive that
//! keeps each trunk's status (`ok`/`fail` with a reason) current.
//!
//! # The index, without crossing the RLS wall
//!
//! An INVITE arrives before we know its tenant. Instead of a query over every tenant's trunks
//! (which the forced row-level security forbids, and should), this node keeps an in-memory
//! index of all trunks: at start it lists tenant ids from the `tenants` identity table
//! (platform transaction) and reads each tenant's trunks in that tenant's own transaction.
//! Afterwards it reloads a single tenant whenever a change is announced on the PostgreSQL
//! channel `sivo_trunks` (sent by the API in the transaction that changed the trunk, so
//! every node hears it on commit), plus a full reload every few minutes as a safety net.
//!
//! Only the packet's source address is matched (IPv4-mapped IPv6 normalised to IPv4), never
//! a header. Several tenants may list the same carrier network; then the called number (a
//! DID, looked up in each candidate tenant's transaction) decides.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use db::Db;
use domain::TenantId;
use ipnet::IpNet;
use sip::auth::DigestClient;
use sip::transaction::Peer;
use sip::{HeaderName, Host, Method, Request, Response, SipUri, StatusCode, Transport, Uri, Via};
use tokio::sync::watch;
use uuid::Uuid;

use crate::core::{CoreHandle, Outcome};
use crate::transport::StreamCtx;

/// Trunk keepalive settings.
#[derive(Debug, Clone)]
pub struct TrunkConfig {
    /// How often each trunk is pinged with OPTIONS.
    pub keepalive_interval: Duration,
    /// A ping without a final response after this long is a timeout.
    pub keepalive_timeout: Duration,
    /// Full reload of the index, in case a notification was missed.
    pub reload_interval: Duration,
}

impl Default for TrunkConfig {
    fn default() -> Self {
        Self {
            keepalive_interval: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(5),
            reload_interval: Duration::from_secs(300),
        }
    }
}

/// One trunk as the SIP service needs it.
pub(crate) struct TrunkEntry {
    id: Uuid,
    tenant: TenantId,
    host: String,
    port: u16,
    transport: String,
    cidrs: Vec<IpNet>,
    keepalive: bool,
    /// Register to the carrier with the credentials.
    register: bool,
    credentials: Option<(String, String)>,
}

impl std::fmt::Debug for TrunkEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrunkEntry")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl TrunkEntry {
    fn allows(&self, ip: IpAddr) -> bool {
        self.cidrs.iter().any(|net| net.contains(&ip))
    }
}

pub(crate) struct Trunks {
    db: Db,
    vault: vault::Vault,
    core: CoreHandle,
    streams: StreamCtx,
    base_domain: String,
    config: TrunkConfig,
    index: RwLock<HashMap<TenantId, Vec<Arc<TrunkEntry>>>>,
    /// Trunks with a ping in flight: one at a time each, so a late timeout can never
    /// overwrite a newer answer.
    pinging: std::sync::Mutex<std::collections::HashSet<Uuid>>,
    registrations: std::sync::Mutex<HashMap<Uuid, Registration>>,
}

/// Canonical form of an address for matching: IPv4-mapped IPv6 becomes IPv4.
pub fn normalize_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl Trunks {
    pub(crate) fn new(
        db: Db,
        vault: vault::Vault,
        core: CoreHandle,
        streams: StreamCtx,
        base_domain: &str,
        config: TrunkConfig,
    ) -> Self {
        Self {
            db,
            vault,
            core,
            streams,
            base_domain: base_domain.to_owned(),
            config,
            index: RwLock::new(HashMap::new()),
            pinging: std::sync::Mutex::new(std::collections::HashSet::new()),
            registrations: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> Vec<Arc<TrunkEntry>> {
        let index = self.index.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        index.values().flatten().cloned().collect()
    }

    /// Tenants having a trunk whose CIDRs contain `ip`.
    fn tenants_for(&self, ip: IpAddr) -> Vec<TenantId> {
        let ip = normalize_ip(ip);
        let index = self.index.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        index
            .iter()
            .filter(|(_, trunks)| trunks.iter().any(|t| t.allows(ip)))
            .map(|(tenant, _)| *tenant)
            .collect()
    }

    async fn load_tenant(&self, tenant: TenantId) -> Result<(), db::DbError> {
        let mut tx = self.db.tenant_tx(tenant).await?;
        let rows = db::trunks::list_all(&mut tx).await?;
        tx.commit().await?;
        let entries: Vec<Arc<TrunkEntry>> = rows
            .into_iter()
            .map(|row| {
                let cidrs = row.allowed_cidrs.iter().filter_map(|c| c.parse::<IpNet>().ok()).collect();
                let password = row.password_enc.as_deref().and_then(|enc| {
                    let context = format!("sip-trunk-password:{}", row.id);
                    self.vault.decrypt(enc, &context).ok().and_then(|p| String::from_utf8(p).ok())
                });
                Arc::new(TrunkEntry {
                    id: row.id,
                    tenant,
                    host: row.host,
                    port: u16::try_from(row.port).unwrap_or(5060),
                    transport: row.transport,
                    cidrs,
                    keepalive: row.keepalive,
                    register: row.register,
                    credentials: row.username.zip(password),
                })
            })
            .collect();
        let mut index = self.index.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.is_empty() {
            index.remove(&tenant);
        } else {
            index.insert(tenant, entries);
        }
        Ok(())
    }

    async fn load_all(&self) -> Result<(), db::DbError> {
        let mut tx = self.db.platform_tx().await?;
        let tenants = db::tenants::list(&mut tx, None, 100_000).await?;
        tx.commit().await?;
        let ids: Vec<TenantId> = tenants.items.iter().map(|t| t.tenant_id()).collect();
        for tenant in &ids {
            self.load_tenant(*tenant).await?;
        }
        let mut index = self.index.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        index.retain(|t, _| ids.contains(t));
        Ok(())
    }

    /// Keeps the index current: full load, then reloads on notifications.
    pub(crate) async fn watch_changes(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let listener = db::trunks::listen(&self.db).await;
            if let Err(e) = self.load_all().await {
                tracing::warn!(error = %e, "could not load SIP trunks");
            }
            let mut listener = match listener {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "could not listen for trunk changes; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(5)) => continue,
                        () = crate::stopped(&mut stop) => return,
                    }
                }
            };
            let mut reload = tokio::time::interval(self.config.reload_interval);
            reload.tick().await;
            loop {
                tokio::select! {
                    n = listener.recv() => match n {
                        Ok(n) => {
                            if let Ok(id) = n.payload().parse::<Uuid>()
                                && let Err(e) = self.load_tenant(TenantId(id)).await
                            {
                                tracing::warn!(error = %e, "could not reload a tenant's trunks");
                            }
                        }
                        // The connection dropped (database restart): start over.
                        Err(_) => break,
                    },
                    _ = reload.tick() => {
                        if let Err(e) = self.load_all().await {
                            tracing::warn!(error = %e, "could not reload SIP trunks");
                        }
                    }
                    () = crate::stopped(&mut stop) => return,
                }
            }
        }
    }

    /// The inbound INVITE gate: 403 from outside every trunk's networks, 404 for a number
    /// that is no DID of the matching tenants. Known DIDs are not routed yet (480).
    /// Where an inbound INVITE goes: the tenant and DID it reached, or the refusal — 403 when
    /// the packet's source is outside every trunk's Allowed CIDRs, 404 for an unknown DID.
    pub(crate) async fn route(
        &self,
        request: &Request,
        peer: &Peer,
    ) -> Result<(TenantId, db::trunks::DidRow), Response> {
        let tenants = self.tenants_for(peer.addr.ip());
        if tenants.is_empty() {
            return Err(Response::for_request(request, StatusCode::FORBIDDEN));
        }
        let Some(number) = called_number(request) else {
            return Err(Response::for_request(request, StatusCode::NOT_FOUND));
        };
        for tenant in tenants {
            let found = async {
                let mut tx = self.db.tenant_tx(tenant).await?;
                let did = db::trunks::find_did(&mut tx, &number).await?;
                tx.commit().await?;
                Ok::<_, db::DbError>(did)
            }
            .await;
            match found {
                Ok(Some(did)) => return Ok((tenant, did)),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "DID lookup failed");
                    return Err(Response::for_request(request, StatusCode::SERVICE_UNAVAILABLE));
                }
            }
        }
        Err(Response::for_request(request, StatusCode::NOT_FOUND))
    }

    /// Pings every trunk that wants it, forever.
    pub(crate) async fn keepalive(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.config.keepalive_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = crate::stopped(&mut stop) => return,
            }
            for trunk in self.entries().into_iter().filter(|t| t.keepalive || t.register) {
                let fresh =
                    self.pinging.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(trunk.id);
                if !fresh {
                    continue;
                }
                let this = self.clone();
                tokio::spawn(async move {
                    let (status, reason) = this.ping(&trunk).await;
                    if let Err(e) = this.record(&trunk, status, reason.as_deref()).await {
                        tracing::warn!(error = %e, "could not record a trunk's status");
                    }
                    this.pinging.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&trunk.id);
                });
            }
        }
    }

    async fn record(
        &self,
        trunk: &TrunkEntry,
        status: &str,
        reason: Option<&str>,
    ) -> Result<(), db::DbError> {
        let now = Utc::now();
        let mut tx = self.db.tenant_tx(trunk.tenant).await?;
        if let Some((before, before_reason)) =
            db::trunks::set_status(&mut tx, trunk.id, status, reason, now).await?
        {
            tracing::info!(trunk = %trunk.id, status, reason, "SIP trunk status changed");
            let entry = db::audit::NewAudit {
                id: domain::AuditId(Uuid::now_v7()),
                tenant_id: Some(trunk.tenant),
                at: now,
                actor: db::audit::Actor::system(),
                action: "trunk.status_changed".into(),
                resource_type: "trunk".into(),
                resource_id: Some(trunk.id.to_string()),
                before: Some(serde_json::json!({"status": before, "status_reason": before_reason})),
                after: Some(serde_json::json!({"status": status, "status_reason": reason})),
                source_ip: None,
                request_id: None,
            };
            db::audit::insert(&mut tx, &entry).await?;
            // Open trunk pages re-read the status (delivered only if this commits).
            db::outbox::notify_changed(&mut tx, trunk.tenant, db::outbox::Changed::TrunkStatus, trunk.id)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One keepalive round: the outbound registration when it is due, then OPTIONS. Returns
    /// the status and, for `fail`, why.
    async fn ping(&self, trunk: &TrunkEntry) -> (&'static str, Option<String>) {
        let peer = match self.peer_of(trunk).await {
            Ok(peer) => peer,
            Err(reason) => return ("fail", Some(reason)),
        };
        let local = local_addr_towards(peer.addr, &self.streams).await;
        if trunk.register && trunk.credentials.is_some() && self.registration_due(trunk.id) {
            match self.exchange(trunk, &peer, local, Method::Register).await {
                ("ok", _) => self.registered(trunk.id),
                (_, reason) => {
                    return ("fail", Some(format!("registration: {}", reason.unwrap_or_default())));
                }
            }
        }
        self.exchange(trunk, &peer, local, Method::Options).await
    }

    /// Resolves the carrier's address and, for TCP, connects (or reuses the connection).
    async fn peer_of(&self, trunk: &TrunkEntry) -> Result<Peer, String> {
        let target = match tokio::net::lookup_host((trunk.host.as_str(), trunk.port)).await {
            Ok(mut addrs) => match addrs.next() {
                Some(a) => crate::transport::canonical(a),
                None => return Err("dns: no address".into()),
            },
            Err(_) => return Err("dns: lookup failed".into()),
        };
        match trunk.transport.as_str() {
            "udp" => Ok(Peer::udp(target)),
            "tcp" => match crate::transport::connect_tcp(target, &self.streams).await {
                Ok(id) => Ok(Peer { transport: Transport::Tcp, addr: target, connection: Some(id) }),
                Err(_) => Err("connection refused".into()),
            },
            _ => Err("tls trunks are not supported yet".into()),
        }
    }

    /// Where an outbound call through `tenant`'s trunk `id` goes, or why it cannot.
    pub(crate) async fn dial(&self, tenant: TenantId, id: Uuid) -> Result<Dial, String> {
        let entry = {
            let index = self.index.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            index.get(&tenant).and_then(|trunks| trunks.iter().find(|t| t.id == id).cloned())
        };
        let trunk = entry.ok_or("the outbound trunk is not loaded on this node")?;
        let peer = self.peer_of(&trunk).await?;
        Ok(Dial {
            host: host_of(&trunk.host),
            port: trunk.port,
            peer,
            credentials: trunk.credentials.clone(),
        })
    }

    fn registration_due(&self, trunk: Uuid) -> bool {
        let state = self.registrations.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.get(&trunk).and_then(|r| r.refresh_at).is_none_or(|t| t <= std::time::Instant::now())
    }

    fn registered(&self, trunk: Uuid) {
        let mut state = self.registrations.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = state.entry(trunk).or_default();
        // Refresh at half the granted expiry (RFC 3261 §10.2.4 suggests before it runs out).
        entry.refresh_at =
            Some(std::time::Instant::now() + Duration::from_secs(u64::from(REGISTER_EXPIRES / 2)));
    }

    fn next_cseq(&self, trunk: Uuid) -> u32 {
        let mut state = self.registrations.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = state.entry(trunk).or_default();
        entry.cseq = entry.cseq.wrapping_add(1).max(1);
        entry.cseq
    }

    /// One request (with one Digest retry) and what its answer says about the trunk.
    async fn exchange(
        &self,
        trunk: &TrunkEntry,
        peer: &Peer,
        local: SocketAddr,
        method: Method,
    ) -> (&'static str, Option<String>) {
        let mut client = trunk.credentials.as_ref().map(|(u, p)| DigestClient::new(u.clone(), p.clone()));
        let mut request = self.request(trunk, peer, local, &method);
        for attempt in 0..2 {
            let outcome = tokio::time::timeout(
                self.config.keepalive_timeout,
                self.core.request(request.clone(), peer.clone()),
            )
            .await
            .unwrap_or(Outcome::Timeout);
            let response = match outcome {
                Outcome::Response(r) => r,
                Outcome::Timeout => return ("fail", Some("timeout".into())),
                Outcome::TransportError => return ("fail", Some("unreachable".into())),
            };
            let code = response.status.as_u16();
            match code {
                200..=299 => return ("ok", None),
                401 | 407 => {
                    let challenge = DigestClient::select_challenge(&response);
                    match (attempt, client.as_mut(), challenge) {
                        (0, Some(c), Some(challenge)) => {
                            request = self.request(trunk, peer, local, &method);
                            let cnonce = format!("{:016x}", rand::random::<u64>());
                            c.authorize_request(&mut request, &challenge, code == 407, &cnonce);
                        }
                        (_, None, _) => {
                            return (
                                "fail",
                                Some(format!("{code} authentication required (no credentials)")),
                            );
                        }
                        _ => return ("fail", Some(format!("{code} bad credentials"))),
                    }
                }
                403 => {
                    return ("fail", Some("403 forbidden (bad credentials or address not allowed)".into()));
                }
                408 => return ("fail", Some("408 timeout".into())),
                500..=699 => return ("fail", Some(format!("{code} {}", response.reason))),
                // Any other answer to OPTIONS means the carrier is up and talking SIP.
                _ if method == Method::Options => return ("ok", None),
                _ => return ("fail", Some(format!("{code} {}", response.reason))),
            }
        }
        ("fail", Some("authentication failed".into()))
    }

    fn request(&self, trunk: &TrunkEntry, peer: &Peer, local: SocketAddr, method: &Method) -> Request {
        let host = host_of(&trunk.host);
        let uri = SipUri::new(host.clone()).with_port(trunk.port);
        let mut request = Request::new(method.clone(), Uri::Sip(uri));
        let branch = format!(
            "{}{:016x}{:016x}",
            sip::BRANCH_MAGIC_COOKIE,
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        let mut via = Via::new(peer.transport.clone(), host_ip(local.ip()), Some(local.port()), &branch);
        via.params.set("rport", None);
        request.headers.push(HeaderName::Via, via.to_string());
        request.headers.push(HeaderName::MaxForwards, "70");
        if *method == Method::Register {
            // The account at the carrier registers our address (RFC 3261 §10.2).
            let user = trunk.credentials.as_ref().map(|(u, _)| u.as_str()).unwrap_or("sivo");
            let aor = Uri::Sip(SipUri::new(host).with_user(user));
            request.headers.push(HeaderName::From, format!("<{aor}>;tag={:016x}", rand::random::<u64>()));
            request.headers.push(HeaderName::To, format!("<{aor}>"));
            request.headers.push(HeaderName::CallId, format!("reg-{}@sivo", trunk.id.simple()));
            request.headers.push(HeaderName::CSeq, format!("{} REGISTER", self.next_cseq(trunk.id)));
            let contact = Uri::Sip(SipUri::new(host_ip(local.ip())).with_user(user).with_port(local.port()));
            request.headers.push(HeaderName::Contact, format!("<{contact}>"));
            request.headers.push(HeaderName::Expires, REGISTER_EXPIRES.to_string());
        } else {
            request.headers.push(
                HeaderName::From,
                format!("<sip:keepalive@{}>;tag={:016x}", self.base_domain, rand::random::<u64>()),
            );
            request.headers.push(HeaderName::To, format!("<{}>", Uri::Sip(SipUri::new(host))));
            request.headers.push(
                HeaderName::CallId,
                format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>()),
            );
            request.headers.push(HeaderName::CSeq, "1 OPTIONS");
        }
        request.headers.push(HeaderName::UserAgent, format!("SIVO/{}", env!("CARGO_PKG_VERSION")));
        request
    }
}

/// An outbound call's way out through a trunk.
#[derive(Clone)]
pub(crate) struct Dial {
    pub(crate) host: Host,
    pub(crate) port: u16,
    pub(crate) peer: Peer,
    /// Digest credentials for the carrier's 401/407.
    pub(crate) credentials: Option<(String, String)>,
}

/// Expiry asked for in outbound registrations to carriers (seconds).
const REGISTER_EXPIRES: u32 = 300;

/// Outbound registration state of one trunk.
#[derive(Default)]
struct Registration {
    /// None until the first successful registration.
    refresh_at: Option<std::time::Instant>,
    cseq: u32,
}

fn host_ip(ip: IpAddr) -> Host {
    match ip.to_canonical() {
        IpAddr::V4(v4) => Host::Ipv4(v4),
        IpAddr::V6(v6) => Host::Ipv6(v6),
    }
}

fn host_of(host: &str) -> Host {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => host_ip(ip),
        Err(_) => Host::Domain(host.to_owned()),
    }
}

/// Our address as the target sees it: the bound SIP address, or for a wildcard bind the
/// source address the kernel would pick (a connected UDP socket sends nothing).
pub(crate) async fn local_addr_towards(target: SocketAddr, streams: &StreamCtx) -> SocketAddr {
    let bound = streams.local_addr;
    if !bound.ip().is_unspecified() {
        return bound;
    }
    let probe = async {
        let any: SocketAddr =
            if target.is_ipv4() { "0.0.0.0:0".parse().ok()? } else { "[::]:0".parse().ok()? };
        let socket = tokio::net::UdpSocket::bind(any).await.ok()?;
        socket.connect(target).await.ok()?;
        socket.local_addr().ok()
    };
    let ip = probe.await.map(|a| a.ip()).unwrap_or(bound.ip());
    SocketAddr::new(ip, bound.port())
}

/// The called number in E.164 form (`+` and digits) from the Request-URI: the user part of a
/// SIP URI or a tel: number, visual separators removed. Without a leading `+` the digits are
/// taken as a full international number.
pub(crate) fn called_number(request: &Request) -> Option<String> {
    let raw = match &request.uri {
        Uri::Sip(u) => String::from_utf8(u.user_unescaped()?).ok()?,
        Uri::Tel(t) => t.number.clone(),
        Uri::Other(_) => return None,
    };
    let raw = raw.split(';').next().unwrap_or_default();
    let digits: String = raw.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.is_empty()
        || digits.len() > 15
        || raw.chars().any(|c| !(c.is_ascii_digit() || "+-.() ".contains(c)))
    {
        return None;
    }
    Some(format!("+{digits}"))
}

/// Parses and normalises a CIDR (or a bare address, as a /32 or /128): host bits cleared,
/// IPv4-mapped IPv6 written as IPv4.
pub fn normalize_cidr(text: &str) -> Option<IpNet> {
    let text = text.trim();
    let net = match text.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => IpNet::from(text.parse::<IpAddr>().ok()?),
    };
    let net = match net {
        IpNet::V6(v6) => match v6.addr().to_ipv4_mapped() {
            Some(v4) if v6.prefix_len() >= 96 => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).ok()?,
            _ => net,
        },
        IpNet::V4(_) => net,
    };
    Some(net.trunc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_are_normalised() {
        assert_eq!(normalize_cidr("185.45.152.180/24").unwrap().to_string(), "185.45.152.0/24");
        assert_eq!(normalize_cidr("127.0.0.2").unwrap().to_string(), "127.0.0.2/32");
        assert_eq!(normalize_cidr("::ffff:10.1.2.3/120").unwrap().to_string(), "10.1.2.0/24");
        assert_eq!(normalize_cidr("2001:db8::1/32").unwrap().to_string(), "2001:db8::/32");
        assert!(normalize_cidr("300.1.1.1/8").is_none());
        assert!(normalize_cidr("10.0.0.0/33").is_none());
        let net = normalize_cidr("::ffff:127.0.0.2").unwrap();
        assert!(net.contains(&normalize_ip("::ffff:127.0.0.2".parse().unwrap())));
    }
}
