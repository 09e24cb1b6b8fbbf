//! TLS (rustls) and SIP over WebSocket (RFC 7118, `sip` subprotocol, plain or over TLS).
//!
//! TLS connections are ordinary stream connections once the handshake is done (the same
//! framing task as TCP). A WebSocket carries exactly one SIP message per WebSocket message,
//! so its task parses each one as a datagram; it sends a WebSocket ping every 30 s and answers
//! the peer's pings (tungstenite does), which keeps NAT bindings and proxies open.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sip::Transport;
use sip::transaction::{ConnectionId, Peer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::core::Command;
use crate::transport::{StreamCtx, canonical, spawn_stream};

/// A certificate chain and its private key, PEM.
#[derive(Clone)]
pub struct TlsIdentity {
    pub cert_chain_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsIdentity(..)")
    }
}

/// How long a TLS or WebSocket handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const WS_PING_EVERY: Duration = Duration::from_secs(30);

pub(crate) fn acceptor(identity: &TlsIdentity) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_owned());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&identity.cert_chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| bad("the SIP TLS certificate is not valid PEM"))?;
    if certs.is_empty() {
        return Err(bad("the SIP TLS certificate file holds no certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(&identity.key_pem)
        .map_err(|_| bad("the SIP TLS key is not a PEM private key"))?;
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(&e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| bad(&format!("the SIP TLS certificate and key do not work together: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// What a listener speaks.
#[derive(Clone)]
pub(crate) enum Kind {
    Tls(tokio_rustls::TlsAcceptor),
    Ws,
    Wss(tokio_rustls::TlsAcceptor),
}

/// Accepts connections on `listener` until stopped.
pub(crate) async fn accept(listener: TcpListener, kind: Kind, ctx: StreamCtx) {
    let mut stop = ctx.stop.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = crate::stopped(&mut stop) => return,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "sip accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let kind = kind.clone();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let addr = canonical(addr);
            let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
                match kind {
                    Kind::Tls(acceptor) => {
                        let tls = acceptor.accept(stream).await?;
                        spawn_stream(tls, Transport::Tls, addr, true, ctx);
                        Ok::<_, std::io::Error>(())
                    }
                    Kind::Ws => websocket(stream, Transport::Ws, addr, ctx).await,
                    Kind::Wss(acceptor) => {
                        let tls = acceptor.accept(stream).await?;
                        websocket(tls, Transport::Wss, addr, ctx).await
                    }
                }
            })
            .await;
            if let Ok(Err(e)) = result {
                tracing::debug!(error = %e, "sip tls/websocket handshake failed");
            }
        });
    }
}

/// Checks the opening handshake for the `sip` subprotocol (RFC 7118 §4.1) and echoes it.
#[allow(clippy::result_large_err)] // The signature is tungstenite's.
fn negotiate(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    let offers_sip = request
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("sip"));
    if !offers_sip {
        let mut refusal = ErrorResponse::new(Some("the sip WebSocket subprotocol is required".into()));
        *refusal.status_mut() = StatusCode::BAD_REQUEST;
        return Err(refusal);
    }
    response.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("sip"));
    Ok(response)
}

async fn websocket<S>(
    stream: S,
    transport: Transport,
    addr: SocketAddr,
    ctx: StreamCtx,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(ctx.message_limits.max_message_size);
    config.max_frame_size = Some(ctx.message_limits.max_message_size);
    let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, negotiate, Some(config))
        .await
        .map_err(std::io::Error::other)?;
    let Some((id, rx)) = ctx.connections.register(transport.clone(), addr, true, &ctx.limits) else {
        return Ok(());
    };
    let peer = Peer { transport, addr, connection: Some(id) };
    tokio::spawn(run_ws(ws, peer, rx, ctx));
    Ok(())
}

async fn run_ws<S>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    peer: Peer,
    mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    ctx: StreamCtx,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = peer.connection.unwrap_or(ConnectionId(0));
    let mut stop = ctx.stop.clone();
    let mut deadline = Instant::now() + ctx.limits.idle_timeout;
    let mut ping = tokio::time::interval(WS_PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            incoming = ws.next() => {
                let data = match incoming {
                    Some(Ok(WsMessage::Text(t))) => t.as_bytes().to_vec(),
                    Some(Ok(WsMessage::Binary(b))) => b.to_vec(),
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => {
                        deadline = Instant::now() + ctx.limits.idle_timeout;
                        continue;
                    }
                    Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => break,
                };
                deadline = Instant::now() + ctx.limits.idle_timeout;
                // Keep-alive CRLFs are tolerated; everything else is one SIP message.
                if data.iter().all(|b| matches!(b, b'\r' | b'\n')) {
                    continue;
                }
                let command = match sip::parse_datagram_with(&data, &ctx.message_limits) {
                    Ok(message) => Command::Message { peer: peer.clone(), message },
                    Err(error) => Command::ParseError { peer: peer.clone(), error },
                };
                if ctx.core.send(command).await.is_err() {
                    break;
                }
            }
            out = rx.recv() => {
                let Some(bytes) = out else { break };
                let message = match String::from_utf8(bytes) {
                    Ok(text) => WsMessage::Text(text.into()),
                    Err(e) => WsMessage::Binary(e.into_bytes().into()),
                };
                if ws.send(message).await.is_err() {
                    break;
                }
            }
            _ = ping.tick() => {
                if ws.send(WsMessage::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
            () = tokio::time::sleep_until(deadline) => break,
            () = crate::stopped(&mut stop) => break,
        }
    }
    let _ = ws.close(None).await;
    ctx.connections.remove(id);
    let _ = ctx.core.send(Command::Closed { id }).await;
}
