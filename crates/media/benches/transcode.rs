//! CPU cost of G.711 ↔ Opus transcoding per call, against opus-tools as the reference.
//!
//! `cargo bench -p media --bench transcode`. One "call-second" is what a shard does for one
//! bridged browser (Opus) ↔ PSTN (PCMU) call in a second of audio: 50 PCMU packets decoded,
//! re-framed and encoded as Opus, and 50 Opus packets decoded, re-framed and encoded as PCMU,
//! through the same [`Decoder`], [`Reframer`] and [`Encoder`] the shard uses (sockets, SRTP and
//! RTP bookkeeping excluded: `scripts/bench.sh media` measures those). The signal is the hold
//! music (chords with a bass line: not silence, which Opus would encode for nearly free).
//!
//! Reference, side by side: `opusenc --comp 5 --bitrate 24 --framesize 20` and `opusdec --rate
//! 8000` (Debian's opus-tools, libopus 1.3) on the same audio as one 8 kHz WAV, wall time of both
//! processes per second of audio. They read and write files and resample to 48 kHz before
//! encoding, so the ratio is an order-of-magnitude check, not a race on equal terms. Skipped
//! when opusenc is not installed (`apt-get install opus-tools`). `BENCH_CALL_SECONDS` sets the
//! audio transcoded (default 600 call-seconds). Times are CPU time from `/proc/self/stat`
//! (ours: user + system; the reference's: its waited-for children's), so other load on the
//! machine lengthens the run but not the figure; wall time is printed alongside.
#![allow(clippy::print_stdout)]

use std::process::Command;
use std::time::Instant;

use media::codec::FRAME_SAMPLES;
use media::reframe::Reframer;
use media::tone::{FrameSource, MusicOnHold};
use media::{CodecKind, Decoder, Encoder};

/// CPU seconds used so far: (this process, its waited-for children), from `/proc/self/stat`.
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<f64> = rest.split_whitespace().map(|f| f.parse().unwrap_or(0.0)).collect();
    // utime, stime, cutime, cstime are fields 14-17 of the line, 12-15 after the name.
    let ticks = |i: usize| fields.get(i).copied().unwrap_or(0.0) / CLOCK_TICKS;
    (ticks(11) + ticks(12), ticks(13) + ticks(14))
}

/// `sysconf(_SC_CLK_TCK)` on Linux.
const CLOCK_TICKS: f64 = 100.0;

fn main() {
    let call_seconds: usize =
        std::env::var("BENCH_CALL_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(600).max(1);
    let frames = call_seconds * 50;

    // The audio, as both sides would send it: PCMU from the PSTN, Opus from the browser.
    let mut music = MusicOnHold::new();
    let mut pcm = Vec::with_capacity(frames * FRAME_SAMPLES);
    let mut frame = [0i16; FRAME_SAMPLES];
    for _ in 0..frames {
        music.next_frame(&mut frame);
        pcm.extend_from_slice(&frame);
    }
    let mut pcmu_packets = Vec::with_capacity(frames);
    let mut opus_packets = Vec::with_capacity(frames);
    let mut browser = Encoder::new(CodecKind::Opus).expect("opus encoder");
    for chunk in pcm.chunks(FRAME_SAMPLES) {
        let mut payload = Vec::new();
        CodecKind::Pcmu.encode(chunk, &mut payload);
        pcmu_packets.push(payload);
        let mut payload = Vec::new();
        browser.encode(chunk, &mut payload).expect("opus encode");
        opus_packets.push(payload);
    }

    let start = Instant::now();
    let (cpu_start, _) = cpu_seconds();
    // PSTN → browser.
    let (mut from_pstn, mut to_browser) =
        (Decoder::new(CodecKind::Pcmu).expect("decoder"), Encoder::new(CodecKind::Opus).expect("encoder"));
    // Browser → PSTN.
    let (mut from_browser, mut to_pstn) =
        (Decoder::new(CodecKind::Opus).expect("decoder"), Encoder::new(CodecKind::Pcmu).expect("encoder"));
    let (mut towards_browser, mut towards_pstn) = (Reframer::new(), Reframer::new());
    let (mut decoded, mut payload) = (Vec::with_capacity(960), Vec::with_capacity(1500));
    let mut bytes_out = 0usize;
    for (i, (pcmu, opus)) in pcmu_packets.iter().zip(&opus_packets).enumerate() {
        decoded.clear();
        from_pstn.decode(pcmu, &mut decoded).expect("pcmu decode");
        towards_browser.push(1, 8000, (i * 160) as u32, false, &decoded, 48_000);
        while let Some(frame) = towards_browser.pop() {
            payload.clear();
            to_browser.encode(&frame.samples, &mut payload).expect("opus encode");
            bytes_out += payload.len();
        }
        decoded.clear();
        from_browser.decode(opus, &mut decoded).expect("opus decode");
        towards_pstn.push(2, 48_000, (i * 960) as u32, false, &decoded, 8000);
        while let Some(frame) = towards_pstn.pop() {
            payload.clear();
            to_pstn.encode(&frame.samples, &mut payload).expect("pcmu encode");
            bytes_out += payload.len();
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let ours = cpu_seconds().0 - cpu_start;
    let ours_per_call = ours * 1e6 / call_seconds as f64;
    println!(
        "sivo transcode: {call_seconds} call-seconds in {ours:.2} s CPU ({wall:.2} s wall): {ours_per_call:.0} us \
         CPU per call-second (both directions), ceiling {:.0} transcoded calls per core ({bytes_out} bytes out)",
        1e6 / ours_per_call
    );

    if Command::new("opusenc").arg("--version").output().is_err() {
        println!("reference skipped: opusenc not installed (apt-get install opus-tools)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("sivo-transcode-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (wav, opus, back) = (dir.join("in.wav"), dir.join("out.opus"), dir.join("back.wav"));
    std::fs::write(&wav, media::wav::encode_pcm16(8000, 1, &pcm)).expect("write wav");
    let (_, children_start) = cpu_seconds();
    let encoded = Command::new("opusenc")
        .args(["--quiet", "--comp", "5", "--bitrate", "24", "--framesize", "20"])
        .arg(&wav)
        .arg(&opus)
        .status()
        .expect("opusenc");
    let decoded = Command::new("opusdec").args(["--quiet", "--rate", "8000"]).arg(&opus).arg(&back).status();
    let reference = cpu_seconds().1 - children_start;
    let _ = std::fs::remove_dir_all(&dir);
    if !encoded.success() || !decoded.is_ok_and(|s| s.success()) {
        println!("reference failed: opusenc/opusdec did not succeed");
        return;
    }
    let reference_per_second = reference * 1e6 / call_seconds as f64;
    println!(
        "opus-tools reference: opusenc + opusdec of the same {call_seconds} s: {reference:.2} s CPU, \
         {reference_per_second:.0} us CPU per audio second; sivo/reference CPU ratio {:.2}",
        ours_per_call / reference_per_second
    );
}
