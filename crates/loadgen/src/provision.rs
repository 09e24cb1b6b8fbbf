//! Sets up a sivo tenant for the load through its HTTP API (with a tenant API key): a trunk
//! whose Allowed CIDRs hold the carrier's address, a queue (no recording), a DID to it, and
//! agents: user, SIP credentials, queue membership, status available. Several connections at
//! once; each request is a plain HTTP/1.1 exchange on its own connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

pub(crate) struct Api {
    pub(crate) addr: SocketAddr,
    pub(crate) key: String,
}

impl Api {
    pub(crate) fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let payload = body.map(Value::to_string).unwrap_or_default();
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(10))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{payload}",
            self.addr,
            self.key,
            payload.len()
        );
        stream.write_all(request.as_bytes())?;
        let mut response = Vec::new();
        stream.take(1 << 20).read_to_end(&mut response)?;
        let text = String::from_utf8_lossy(&response);
        let (head, body) = text.split_once("\r\n\r\n").context("no HTTP header end")?;
        let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("no status")?;
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            bail!("{method} {path}: chunked responses are not supported");
        }
        if !(200..300).contains(&status) {
            bail!("{method} {path}: {status} {body}");
        }
        if body.trim().is_empty() { Ok(Value::Null) } else { Ok(serde_json::from_str(body)?) }
    }
}

fn id(v: &Value) -> anyhow::Result<String> {
    v["id"].as_str().map(str::to_owned).context("no id in answer")
}

/// Creates the trunk, queue, DID and `agents` agents; returns "extension password" lines.
pub(crate) fn provision(
    api: &Api,
    agents: usize,
    did: &str,
    carrier_cidr: &str,
    threads: usize,
) -> anyhow::Result<Vec<String>> {
    let trunk = api.call(
        "POST",
        "/api/v1/trunks",
        Some(&json!({"name": "loadgen carrier", "host": "127.0.0.2", "transport": "udp",
                     "allowed_cidrs": [carrier_cidr], "keepalive": false})),
    )?;
    let queue = api.call(
        "POST",
        "/api/v1/queues",
        Some(
            &json!({"name": "loadgen", "ring_timeout_secs": 20, "max_wait_secs": 600, "record_calls": false}),
        ),
    )?;
    let queue = id(&queue)?;
    api.call(
        "POST",
        "/api/v1/dids",
        Some(&json!({"number": did, "trunk_id": id(&trunk)?, "destination_type": "queue", "destination_id": queue})),
    )?;
    let threads = threads.clamp(1, 32);
    let results: Vec<anyhow::Result<Vec<String>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let queue = queue.clone();
                scope.spawn(move || {
                    let mut lines = Vec::new();
                    for i in (t..agents).step_by(threads) {
                        let user = api.call(
                            "POST",
                            "/api/v1/users",
                            Some(&json!({"email": format!("loadgen{i}@bench.example"), "role": "agent",
                                         "password": format!("loadgen-password-{i}")})),
                        )?;
                        let user = id(&user)?;
                        let creds =
                            api.call("GET", &format!("/api/v1/agents/{user}/sip-credentials"), None)?;
                        api.call(
                            "POST",
                            &format!("/api/v1/queues/{queue}/members"),
                            Some(&json!({"user_id": user})),
                        )?;
                        api.call(
                            "PUT",
                            &format!("/api/v1/agents/{user}/status"),
                            Some(&json!({"status": "available"})),
                        )?;
                        let ext = creds["extension"].as_str().context("no extension")?;
                        let password = creds["password"].as_str().context("no password")?;
                        lines.push(format!("{ext} {password}"));
                    }
                    Ok(lines)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("thread panicked"))))
            .collect()
    });
    let mut all = Vec::with_capacity(agents);
    for r in results {
        all.extend(r?);
    }
    Ok(all)
}
