//! SIVO's SIP drivers on tokio: the transports (UDP and TCP on one address, TLS), the core task
//! that drives the sans-IO [`sip::transaction::Endpoint`], the registrar, SIP trunks (source
//! address gate, OPTIONS keepalive) and the inbound INVITE gate.
//!
//! # Shape
//!
//! - `core`: one task owns the transaction endpoint and the UDP socket; it never waits on the
//!   database. Requests that need PostgreSQL are answered by spawned tasks through a channel.
//! - `transport`: stream connections (accept, outbound connect with reuse, framing, CRLF
//!   keep-alive answers, limits on size, count and idleness).
//! - `services`: the transaction user: RFC 3261 §8.2 prechecks (`policy`), OPTIONS, the
//!   registrar, the INVITE gate.
//!
//! Tenants are found without crossing the row-level security wall: a REGISTER's domain
//! `<slug>.<base domain>` names the tenant (looked up in the `tenants` identity table), and an
//! INVITE's source address is matched against an in-memory index of every trunk's CIDRs,
//! loaded tenant by tenant in tenant transactions (see `trunks`).

mod calls;
mod core;
mod guard;
mod policy;
mod recordings;
mod registrar;
mod secure;
mod services;
mod transport;
mod trunks;

use std::net::SocketAddr;
use std::sync::Arc;

use sip::transaction::EndpointConfig;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::calls::{CallConfig, Control, LiveCall, TransferTarget};
pub use crate::core::Outcome;
pub use crate::guard::GuardConfig;
pub use crate::recordings::RecordingUrls;
pub use crate::registrar::RegistrarConfig;
pub use crate::secure::TlsIdentity;
pub use crate::transport::StreamLimits;
pub use crate::trunks::{TrunkConfig, normalize_cidr, normalize_ip};
pub use sip::auth::Algorithm as DigestAlgorithm;

/// Settings of the SIP service.
#[derive(Debug, Clone)]
pub struct SipConfig {
    /// UDP and TCP are bound here (port 0: one free port for both).
    pub addr: SocketAddr,
    /// Tenants' SIP domains are `<slug>.<base_domain>`.
    pub base_domain: String,
    /// Names this process in registration bindings (which node holds the connection).
    pub node_id: String,
    /// Largest SIP message accepted on any transport.
    pub max_message_bytes: usize,
    /// Live server transactions (about 1 KB each; a non-INVITE one lives 32 s over UDP after
    /// its answer). Beyond it, new requests get 503 with Retry-After.
    pub max_transactions: usize,
    pub stream: StreamLimits,
    pub registrar: RegistrarConfig,
    pub trunks: TrunkConfig,
    /// Certificate for SIP over TLS and WSS.
    pub tls_identity: Option<TlsIdentity>,
    /// SIP over TLS (RFC 3261 §26), usually port 5061.
    pub tls_addr: Option<SocketAddr>,
    /// SIP over WebSocket (RFC 7118), plain, e.g. behind a TLS-terminating proxy.
    pub ws_addr: Option<SocketAddr>,
    /// SIP over secure WebSocket, what browsers use.
    pub wss_addr: Option<SocketAddr>,
    /// RTP ports and addresses.
    pub media: media::MediaConfig,
    pub calls: CallConfig,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([0, 0, 0, 0], 5060)),
            base_domain: "sip.localhost".into(),
            node_id: "node-1".into(),
            max_message_bytes: 64 * 1024,
            max_transactions: 200_000,
            stream: StreamLimits::default(),
            registrar: RegistrarConfig::default(),
            trunks: TrunkConfig::default(),
            tls_identity: None,
            tls_addr: None,
            ws_addr: None,
            wss_addr: None,
            media: media::MediaConfig::default(),
            calls: CallConfig::default(),
        }
    }
}

/// The API's handle on live calls.
#[derive(Clone)]
pub struct CallsHandle(Arc<calls::Calls>);

impl CallsHandle {
    /// The tenant's calls in progress on this node, oldest first.
    pub fn live(&self, tenant: domain::TenantId) -> Vec<LiveCall> {
        self.0.live(tenant)
    }

    /// Gives a live call of `tenant` an order; the order comes back if no such call is here.
    pub fn control(
        &self,
        tenant: domain::TenantId,
        call: domain::CallId,
        order: Control,
    ) -> Result<(), Control> {
        self.0.control(tenant, call, order)
    }
}

/// The running SIP service.
pub struct Telephony {
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    ws_addr: Option<SocketAddr>,
    wss_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    calls: CallsHandle,
    media: media::Media,
}

impl Telephony {
    /// Binds the sockets and starts the tasks. Fails if the address is taken.
    pub async fn start(config: SipConfig, db: db::Db, vault: vault::Vault) -> std::io::Result<Self> {
        let (udp, tcp) = bind_pair(config.addr).await?;
        let acceptor = config.tls_identity.as_ref().map(secure::acceptor).transpose()?;
        let needs_cert = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "SIP over TLS and WSS need a certificate and key",
            )
        };
        let mut secure_listeners = Vec::new();
        for (addr, kind) in [
            (config.tls_addr, acceptor.clone().map(secure::Kind::Tls)),
            (config.ws_addr, Some(secure::Kind::Ws)),
            (config.wss_addr, acceptor.clone().map(secure::Kind::Wss)),
        ] {
            let Some(addr) = addr else {
                secure_listeners.push(None);
                continue;
            };
            let kind = kind.ok_or_else(needs_cert)?;
            secure_listeners.push(Some((TcpListener::bind(addr).await?, kind)));
        }
        let local =
            |l: &Option<(TcpListener, secure::Kind)>| l.as_ref().and_then(|(l, _)| l.local_addr().ok());
        let (tls_addr, ws_addr, wss_addr) =
            (local(&secure_listeners[0]), local(&secure_listeners[1]), local(&secure_listeners[2]));
        let udp_addr = udp.local_addr()?;
        let tcp_addr = tcp.local_addr()?;
        let limits = sip::Limits { max_message_size: config.max_message_bytes, ..sip::Limits::default() };
        let (stop, stop_rx) = watch::channel(false);
        let (handle, rx) = core::channel();
        let connections = transport::Connections::default();
        let stream_ctx = transport::StreamCtx {
            connections: connections.clone(),
            core: handle.clone(),
            limits: config.stream.clone(),
            message_limits: limits,
            stop: stop_rx.clone(),
            local_addr: udp_addr,
        };
        let registrar = Arc::new(registrar::Registrar::new(
            db.clone(),
            vault.clone(),
            &config.base_domain,
            &config.node_id,
            config.registrar.clone(),
        ));
        let media = media::Media::start(config.media.clone())?;
        let orphan_db = db.clone();
        let started = chrono::Utc::now();
        let gate = Arc::new(trunks::Trunks::new(
            db.clone(),
            vault.clone(),
            handle.clone(),
            stream_ctx.clone(),
            &config.base_domain,
            config.trunks.clone(),
        ));
        let calls = Arc::new(calls::Calls::new(calls::CallCtx {
            core: handle.clone(),
            db: db.clone(),
            media: media.clone(),
            streams: stream_ctx.clone(),
            node_id: config.node_id.clone(),
            base_domain: config.base_domain.clone(),
            config: config.calls.clone(),
            urls: RecordingUrls::new(&vault),
            trunks: gate.clone(),
        }));
        let tu = Arc::new(services::Services {
            registrar: registrar.clone(),
            gate: gate.clone(),
            calls: calls.clone(),
        });
        let endpoint_config = EndpointConfig {
            limits,
            max_server_transactions: config.max_transactions,
            ..EndpointConfig::default()
        };
        let core = core::Core::new(endpoint_config, Arc::new(udp), connections, rx, handle, tu);
        let tasks = vec![
            tokio::spawn(core.run(stop_rx.clone())),
            tokio::spawn(transport::accept_tcp(tcp, stream_ctx.clone())),
            tokio::spawn(gate.clone().watch_changes(stop_rx.clone())),
            tokio::spawn(gate.keepalive(stop_rx.clone())),
            tokio::spawn(registrar.maintain(stop_rx.clone())),
            tokio::spawn(async move {
                match calls::close_orphans(&orphan_db, started).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(calls = n, "closed calls left open by a previous run"),
                    Err(e) => tracing::warn!(error = %e, "could not close calls left open by a previous run"),
                }
            }),
        ];
        let mut tasks = tasks;
        for (listener, kind) in secure_listeners.into_iter().flatten() {
            tasks.push(tokio::spawn(secure::accept(listener, kind, stream_ctx.clone())));
        }
        tracing::info!(udp = %udp_addr, tcp = %tcp_addr, tls = ?tls_addr, ws = ?ws_addr, wss = ?wss_addr, "SIP listening");
        Ok(Self {
            udp_addr,
            tcp_addr,
            tls_addr,
            ws_addr,
            wss_addr,
            stop,
            tasks,
            calls: CallsHandle(calls),
            media,
        })
    }

    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    pub fn wss_addr(&self) -> Option<SocketAddr> {
        self.wss_addr
    }

    pub fn calls(&self) -> CallsHandle {
        self.calls.clone()
    }

    /// Stops accepting, closes connections and ends every task.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.media.shutdown();
        for task in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        }
    }
}

/// UDP and TCP on the same address; with port 0, on the same free port.
async fn bind_pair(addr: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    if addr.port() != 0 {
        let udp = UdpSocket::bind(addr).await?;
        let tcp = TcpListener::bind(addr).await?;
        return Ok((udp, tcp));
    }
    let mut last = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(addr).await?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port for UDP and TCP")))
}

/// Resolves once `stop` holds true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}
