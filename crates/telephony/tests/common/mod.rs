//! Shared by the telephony integration tests: running sipp (Debian package `sip-tester`) with a
//! scenario from `tests/sipp/`, with placeholders substituted.

#![allow(dead_code, unreachable_pub, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Writes `tests/sipp/<name>` with `FINAL` replaced, into a per-process directory.
pub fn scenario(name: &str, final_status: Option<u16>) -> PathBuf {
    let text = std::fs::read_to_string(format!("{}/tests/sipp/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let text = match final_status {
        Some(s) => text.replace("FINAL", &s.to_string()),
        None => text,
    };
    let dir = work_dir();
    let path = dir.join(format!("{}-{}-{name}", final_status.unwrap_or(0), uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, text).unwrap();
    path
}

pub fn work_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sivo-sipp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn free_udp_port(ip: &str) -> u16 {
    std::net::UdpSocket::bind((ip, 0)).unwrap().local_addr().unwrap().port()
}

/// Runs sipp to completion (its own `-timeout` bounds it); true if every call succeeded.
pub async fn run(args: Vec<String>) -> bool {
    let dir = work_dir();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("sipp").args(&args).arg("-nostdin").current_dir(&dir).output()
    })
    .await
    .unwrap()
    .expect("sipp (Debian package sip-tester) must be installed");
    if !output.status.success() {
        eprintln!("sipp stdout: {}", String::from_utf8_lossy(&output.stdout));
        eprintln!("sipp stderr: {}", String::from_utf8_lossy(&output.stderr));
    }
    output.status.success()
}

/// A sipp running in the background (a UAS), killed on drop.
pub struct Background(Child);

impl Background {
    pub fn start(args: &[String]) -> Self {
        let child = Command::new("sipp")
            .args(args)
            .arg("-nostdin")
            .current_dir(work_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp (Debian package sip-tester) must be installed");
        Self(child)
    }
}

impl Background {
    /// Waits up to `timeout` for sipp to finish; true if it exited successfully.
    pub fn wait_success(mut self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return status.success();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
