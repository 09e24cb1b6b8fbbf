//! A webhook receiver for tests: real HTTPS (rustls) with certificates from a throwaway test CA,
//! a hand-written HTTP/1.1 loop so it can misbehave precisely (hang, drip, reset, redirect, huge
//! bodies, a certificate from the wrong CA), and a record of every request it got.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// What the receiver does with a request.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Answer this status with a small body.
    Status(u16),
    /// 429 with `Retry-After: <secs>`.
    TooManyRequests { retry_after_secs: u64 },
    /// 302 to `location`.
    Redirect { location: String },
    /// Read the request, then never answer.
    Hang,
    /// Send a 200 head promising a body, then one byte per second.
    SlowDrip,
    /// Send half a response head, then reset the connection.
    ResetMidResponse,
    /// 200 with a body of this many bytes.
    HugeBody(usize),
}

/// A certificate authority that exists only for the test run.
pub struct TestCa {
    pub cert_pem: String,
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        Self { cert_pem: cert.pem(), cert, key }
    }

    /// A server certificate for `localhost` and 127.0.0.1 / ::1, signed by this CA.
    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("leaf params");
        params.subject_alt_names.push(rcgen::SanType::IpAddress("127.0.0.1".parse().expect("ip")));
        params.subject_alt_names.push(rcgen::SanType::IpAddress("::1".parse().expect("ip")));
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("leaf certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("server certificate");
        Arc::new(config)
    }

    /// Writes the CA certificate to a file (for `webhooks.extra_root_ca`).
    pub fn write_pem(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("test-ca.pem");
        std::fs::write(&path, &self.cert_pem).expect("write CA");
        path
    }
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// Order of arrival across all receivers sharing a [`Sequence`].
    pub seq: u64,
    /// When it arrived (for latency benchmarks; tests order events with `seq`).
    pub at: std::time::Instant,
}

/// A shared counter to order events across receivers without reading clocks.
#[derive(Clone, Default)]
pub struct Sequence(Arc<AtomicU64>);

impl Sequence {
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    behaviour: Arc<Mutex<Behaviour>>,
    received: Arc<Mutex<Vec<Received>>>,
    /// Sequence numbers at which connections ended (client gave up or we finished).
    closed: Arc<Mutex<Vec<u64>>>,
    connections: Arc<AtomicUsize>,
}

impl Receiver {
    /// Starts an HTTPS receiver on 127.0.0.1 with a certificate from `ca`.
    pub async fn start(ca: &TestCa, behaviour: Behaviour, seq: Sequence) -> Self {
        Self::start_on("127.0.0.1:0", ca, behaviour, seq).await
    }

    pub async fn start_on(bind: &str, ca: &TestCa, behaviour: Behaviour, seq: Sequence) -> Self {
        let listener = TcpListener::bind(bind).await.expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let acceptor = tokio_rustls::TlsAcceptor::from(ca.server_config());
        let behaviour = Arc::new(Mutex::new(behaviour));
        let received = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (b, r, c, n) = (behaviour.clone(), received.clone(), closed.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                // Small responses in several writes would otherwise wait on delayed ACKs (~40 ms).
                let _ = tcp.set_nodelay(true);
                n.fetch_add(1, Ordering::SeqCst);
                let (acceptor, b, r, c, seq) =
                    (acceptor.clone(), b.clone(), r.clone(), c.clone(), seq.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        serve_connection(tls, b, r, &seq).await;
                    }
                    c.lock().unwrap().push(seq.next());
                });
            }
        });
        Self { addr, behaviour, received, closed, connections }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/hook", self.addr.port())
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn closed(&self) -> Vec<u64> {
        self.closed.lock().unwrap().clone()
    }

    /// TCP connections accepted, including ones whose TLS handshake failed.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn serve_connection<S>(
    mut stream: S,
    behaviour: Arc<Mutex<Behaviour>>,
    received: Arc<Mutex<Vec<Received>>>,
    seq: &Sequence,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buf = Vec::new();
    loop {
        // Read one request: head, then Content-Length bytes of body.
        let head_end = loop {
            if let Some(pos) = find(&buf, b"\r\n\r\n") {
                break pos + 4;
            }
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let headers: HashMap<String, String> = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head_end..head_end + length].to_vec();
        buf.drain(..head_end + length);
        received.lock().unwrap().push(Received {
            headers,
            body,
            seq: seq.next(),
            at: std::time::Instant::now(),
        });

        let behaviour = behaviour.lock().unwrap().clone();
        let ok = match behaviour {
            Behaviour::Status(code) => respond(&mut stream, code, &[], b"ok").await,
            Behaviour::TooManyRequests { retry_after_secs } => {
                respond(&mut stream, 429, &[("Retry-After", retry_after_secs.to_string())], b"slow down")
                    .await
            }
            Behaviour::Redirect { location } => {
                respond(&mut stream, 302, &[("Location", location)], b"").await
            }
            Behaviour::Hang => {
                // Hold the connection until the client gives up.
                let mut sink = [0u8; 1024];
                while let Ok(n) = stream.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
                return;
            }
            Behaviour::SlowDrip => {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n").await;
                for _ in 0..1000 {
                    if stream.write_all(b"x").await.is_err() || stream.flush().await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                return;
            }
            Behaviour::ResetMidResponse => {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Le").await;
                let _ = stream.flush().await;
                return; // dropping the stream closes the connection mid-head
            }
            Behaviour::HugeBody(n) => {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n");
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'z'; 64 * 1024];
                let mut left = n;
                while left > 0 {
                    let k = left.min(chunk.len());
                    if stream.write_all(&chunk[..k]).await.is_err() {
                        return;
                    }
                    left -= k;
                }
                true
            }
        };
        if !ok {
            return;
        }
    }
}

async fn respond<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    code: u16,
    headers: &[(&str, String)],
    body: &[u8],
) -> bool {
    let mut out = format!("HTTP/1.1 {code} Test\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    stream.write_all(out.as_bytes()).await.is_ok()
        && stream.write_all(body).await.is_ok()
        && stream.flush().await.is_ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A plain TCP listener that only counts connections: proof that nothing reached it.
pub struct Sentinel {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl Sentinel {
    pub async fn start(bind: &str) -> Self {
        let listener = TcpListener::bind(bind).await.expect("bind sentinel");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((_socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        Self { addr, accepted }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}
