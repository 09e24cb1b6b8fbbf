//! Relay throughput of one media shard through real loopback sockets.
//!
//! `cargo bench -p media --bench relay`. Two endpoints (plain threads with blocking sockets)
//! send 172-byte PCMU packets into a bridged pair of legs on a single shard; we count what
//! comes out of the other leg. The senders keep at most a window of packets in flight, so
//! socket buffers never overflow and the number is what the shard sustains, not what the
//! kernel drops. Runs: one direction same codec, both directions same codec, and PCMU→PCMA
//! transcoding. `BENCH_PACKETS` sets packets per direction (default 200,000). Bounded: each
//! run stops after 30 s whatever happened.
#![allow(clippy::print_stdout)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use media::{Codec, CodecKind, Media, MediaConfig, rtp};

const WINDOW: u64 = 64;
const LIMIT: Duration = Duration::from_secs(30);

struct Direction {
    from: UdpSocket,
    to: SocketAddr,
    sink: UdpSocket,
}

/// Sends `n` packets from each direction at once; returns (packets relayed, seconds).
fn run(directions: Vec<Direction>, n: u64) -> (u64, f64) {
    let start = Instant::now();
    let mut threads = Vec::new();
    let mut received_counts = Vec::new();
    for (d, direction) in directions.into_iter().enumerate() {
        let received = Arc::new(AtomicU64::new(0));
        received_counts.push(received.clone());
        let Direction { from, to, sink } = direction;
        sink.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let counter = received.clone();
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while counter.load(Ordering::Relaxed) < n && start.elapsed() < LIMIT {
                if sink.recv(&mut buf).is_ok() {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
        threads.push(std::thread::spawn(move || {
            let mut packet = Vec::with_capacity(172);
            let ssrc = 0x1000 + d as u32;
            for i in 0..n {
                // Keep the window: wait for the relay to catch up.
                while i >= received.load(Ordering::Relaxed) + WINDOW {
                    if start.elapsed() > LIMIT {
                        return;
                    }
                    std::thread::yield_now();
                }
                packet.clear();
                rtp::write_simple(
                    false,
                    0,
                    i as u16,
                    (i as u32).wrapping_mul(160),
                    ssrc,
                    &[0x55; 160],
                    &mut packet,
                );
                let _ = from.send_to(&packet, to);
            }
        }));
    }
    for thread in threads {
        thread.join().unwrap();
    }
    let relayed: u64 = received_counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    (relayed, start.elapsed().as_secs_f64())
}

fn main() {
    let n: u64 = std::env::var("BENCH_PACKETS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let media = Media::start(MediaConfig {
        bind_ip: "127.0.0.1".parse().unwrap(),
        advertised_ip: None,
        port_min: 42000,
        port_max: 42999,
        shards: 1,
    })
    .unwrap();
    println!("media relay, 1 shard, {n} packets per direction, window {WINDOW}");
    for (name, codec_b, both_ways) in [
        ("PCMU→PCMU, one way", CodecKind::Pcmu, false),
        ("PCMU↔PCMU, both ways", CodecKind::Pcmu, true),
        ("PCMU→PCMA (transcoding), one way", CodecKind::Pcma, false),
    ] {
        let endpoint_a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let endpoint_b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (leg_a, leg_b) = runtime.block_on(async {
            let a = media.open_leg(1).await.unwrap();
            let b = media.open_leg(1).await.unwrap();
            media
                .set_remote(a.id, endpoint_a.local_addr().unwrap(), Codec::new(CodecKind::Pcmu))
                .await
                .unwrap();
            media.set_remote(b.id, endpoint_b.local_addr().unwrap(), Codec::new(codec_b)).await.unwrap();
            media.bridge(a.id, b.id).await.unwrap();
            (a, b)
        });
        let mut directions = vec![Direction {
            from: endpoint_a.try_clone().unwrap(),
            to: leg_a.local,
            sink: endpoint_b.try_clone().unwrap(),
        }];
        if both_ways {
            directions.push(Direction { from: endpoint_b, to: leg_b.local, sink: endpoint_a });
        }
        let expected = n * directions.len() as u64;
        let (relayed, seconds) = run(directions, n);
        let stats = runtime.block_on(media.stats(leg_b.id)).unwrap();
        println!(
            "{name:36} {relayed:>8}/{expected} packets in {seconds:6.2} s = {:>8.0} packets/s ({:.0} concurrent 20 ms streams); leg B sent {}",
            relayed as f64 / seconds,
            relayed as f64 / seconds / 50.0,
            stats.packets_sent,
        );
        runtime.block_on(async {
            media.close_leg(leg_a.id).await.unwrap();
            media.close_leg(leg_b.id).await.unwrap();
        });
    }
    media.shutdown();
}
