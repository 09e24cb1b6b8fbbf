//! The step search, the same for sivo and rtpengine: ramp to N bridged calls, let them
//! settle, measure a window (loss, jitter, delay, CPU of the server and of ourselves), and go
//! to the next N while the criteria hold; then hold the highest passing N for the final window.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cpu::CpuMeter;
use crate::engine::{Engine, WindowReport, realtime_ns};

/// What drives calls: sivo's SIP or rtpengine's ng.
pub(crate) trait Signalling {
    /// Reads what arrived and runs retransmission timers.
    fn service(&mut self, engine: &mut Engine, now: Instant);
    /// Starts one more call.
    fn place_call(&mut self, engine: &mut Engine, now: Instant);
    /// Calls with media relayed both ways.
    fn bridged(&self) -> usize;
    /// Calls started and neither bridged nor failed yet.
    fn pending(&self) -> usize;
    fn failed(&self) -> usize;
    /// Calls whose teardown is under way.
    fn ending(&self) -> usize;
    /// Ends `count` bridged calls.
    fn hang_up(&mut self, engine: &mut Engine, count: usize, now: Instant);
    fn notes(&self) -> serde_json::Value;
}

/// Runs media and signalling until `until`. Receive times come from the kernel, so the loop
/// need not wake per packet: it works once per 1 ms slot and sleeps in between, reading what
/// queued meanwhile in batches.
pub(crate) fn pump(engine: &mut Engine, signalling: &mut dyn Signalling, until: Instant) {
    loop {
        let now = Instant::now();
        engine.send_due(now);
        engine.receive();
        signalling.service(engine, now);
        let now = Instant::now();
        if now >= until {
            return;
        }
        let next = engine.next_due().min(until);
        if next > now {
            std::thread::sleep(next - now);
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) steps: Vec<usize>,
    pub(crate) step_secs: f64,
    pub(crate) final_secs: f64,
    pub(crate) settle_secs: f64,
    /// Calls started per second while ramping.
    pub(crate) cps: f64,
    /// Calls started and not yet bridged, at most.
    pub(crate) max_pending: usize,
    pub(crate) server_pids: Vec<u32>,
    /// The CPU the server is pinned to (its busy share is reported: others may use it too).
    pub(crate) server_core: Option<usize>,
    pub(crate) max_loss_pct: f64,
    pub(crate) max_jitter_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Step {
    pub(crate) calls: usize,
    pub(crate) window_secs: f64,
    pub(crate) pass: bool,
    pub(crate) reason: Option<String>,
    /// CPU of the server processes over the window, in % of one core.
    pub(crate) server_cpu_pct: f64,
    /// Server CPU µs per call per second of call (= CPU % × 10⁴ / calls).
    pub(crate) server_cpu_us_per_call_s: f64,
    pub(crate) loadgen_cpu_pct: f64,
    /// How busy the server's CPU was, all processes included (other work on the machine too).
    pub(crate) server_core_busy_pct: Option<f64>,
    pub(crate) media: WindowReport,
    pub(crate) ramp_secs: f64,
    /// Calls set up by the ramp to this step (those already bridged before it excluded).
    pub(crate) ramp_calls: usize,
    /// Calls set up per second during the ramp (the generator offers at most `cps`).
    pub(crate) ramp_calls_per_s: f64,
    /// CPU of the server's process tree (its PostgreSQL included) during the ramp, % of one
    /// core: call set-up plus relaying the calls already up.
    pub(crate) ramp_server_tree_cpu_pct: f64,
    /// That CPU per call set up, µs (relaying included, so an upper bound of set-up cost).
    pub(crate) ramp_server_tree_cpu_us_per_call: f64,
}

/// What a ramp took.
#[derive(Debug, Clone, Copy, Default)]
struct Ramp {
    secs: f64,
    calls: usize,
    tree_cpu_secs: f64,
}

impl Ramp {
    fn per_s(&self) -> f64 {
        if self.secs > 0.0 { self.calls as f64 / self.secs } else { 0.0 }
    }

    fn cpu_pct(&self) -> f64 {
        if self.secs > 0.0 { self.tree_cpu_secs / self.secs * 100.0 } else { 0.0 }
    }

    fn cpu_us_per_call(&self) -> f64 {
        if self.calls > 0 { self.tree_cpu_secs * 1e6 / self.calls as f64 } else { 0.0 }
    }
}

/// CPU seconds of the server processes and all their descendants.
fn server_tree_cpu(plan: &Plan) -> f64 {
    plan.server_pids.iter().map(|p| crate::cpu::tree_cpu_seconds(*p)).sum()
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Outcome {
    pub(crate) steps: Vec<Step>,
    /// The highest N that passed, held for the final window.
    pub(crate) best: Option<Step>,
    pub(crate) failed_calls: usize,
    pub(crate) notes: serde_json::Value,
}

fn say(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Starts calls until `target` are bridged (bounded in time).
fn ramp_to(engine: &mut Engine, s: &mut dyn Signalling, plan: &Plan, target: usize) -> Result<Ramp, String> {
    let started = Instant::now();
    let cpu_before = server_tree_cpu(plan);
    let missing = target.saturating_sub(s.bridged());
    let deadline = started + Duration::from_secs_f64(missing as f64 / plan.cps * 3.0 + 60.0);
    let interval = Duration::from_secs_f64(1.0 / plan.cps);
    let mut next = started;
    let failed_before = s.failed();
    loop {
        let now = Instant::now();
        let (bridged, pending) = (s.bridged(), s.pending());
        if bridged >= target {
            let secs = started.elapsed().as_secs_f64();
            return Ok(Ramp {
                secs,
                calls: missing,
                tree_cpu_secs: (server_tree_cpu(plan) - cpu_before).max(0.0),
            });
        }
        if now >= deadline {
            return Err(format!(
                "set-up: {bridged} of {target} calls bridged after {:.0} s ({pending} pending, {} failed)",
                started.elapsed().as_secs_f64(),
                s.failed() - failed_before
            ));
        }
        if s.failed() - failed_before > target / 20 + 10 {
            return Err(format!(
                "set-up: {} calls failed while ramping to {target}",
                s.failed() - failed_before
            ));
        }
        // Catch up at most a few calls at once after a stall.
        let mut burst = 0;
        while next <= now && bridged + s.pending() < target && s.pending() < plan.max_pending && burst < 8 {
            s.place_call(engine, now);
            next += interval;
            burst += 1;
        }
        if next < now - Duration::from_millis(100) {
            next = now;
        }
        pump(engine, s, now + Duration::from_millis(2));
    }
}

fn measure(
    engine: &mut Engine,
    s: &mut dyn Signalling,
    plan: &Plan,
    calls: usize,
    secs: f64,
    ramp: Ramp,
) -> Step {
    let settle = Instant::now() + Duration::from_secs_f64(plan.settle_secs);
    pump(engine, s, settle);
    let start = realtime_ns();
    let end = start + (secs * 1e9) as u64;
    engine.begin_window(start, end);
    let mut pids = plan.server_pids.clone();
    pids.push(std::process::id());
    let meter = CpuMeter::start(&pids, plan.server_core);
    pump(engine, s, Instant::now() + Duration::from_secs_f64(secs));
    let (cpu, wall) = meter.stop();
    let server_core_busy_pct = meter.core_busy_pct();
    // Packets sent at the end of the window are still on their way.
    pump(engine, s, Instant::now() + Duration::from_millis(500));
    let media = engine.end_window();
    let loadgen = cpu.last().copied().unwrap_or(0.0);
    let server: f64 = cpu.iter().take(plan.server_pids.len()).sum();
    let server_cpu_pct = server / wall * 100.0;
    let mut reasons = Vec::new();
    if media.streams < 2 * calls {
        reasons.push(format!("{} of {} streams up for the whole window", media.streams, 2 * calls));
    }
    if media.loss_pct >= plan.max_loss_pct {
        reasons.push(format!("loss {:.3} %", media.loss_pct));
    }
    if media.jitter_p99_ms >= plan.max_jitter_ms {
        reasons.push(format!("jitter p99 {:.2} ms", media.jitter_p99_ms));
    }
    Step {
        calls,
        window_secs: wall,
        pass: reasons.is_empty(),
        reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
        server_cpu_pct,
        server_cpu_us_per_call_s: if calls == 0 { 0.0 } else { server * 1e6 / (calls as f64 * wall) },
        loadgen_cpu_pct: loadgen / wall * 100.0,
        server_core_busy_pct,
        media,
        ramp_secs: ramp.secs,
        ramp_calls: ramp.calls,
        ramp_calls_per_s: ramp.per_s(),
        ramp_server_tree_cpu_pct: ramp.cpu_pct(),
        ramp_server_tree_cpu_us_per_call: ramp.cpu_us_per_call(),
    }
}

fn describe(label: &str, step: &Step) {
    let m = &step.media;
    say(&format!(
        "{label} N={:5}  ramp {} calls at {:.1}/s (server process tree {:.0} % CPU, {:.0} µs/call)  loss {:.3} % ({} silent streams)  jitter mean {:.2} p99 {:.2} max {:.2} ms  delay p50 {:.2} p99 {:.2} ms  server CPU {:5.1} % ({:.1} µs/call·s, core busy {:.0} %)  loadgen CPU {:5.1} % late {:.1} ms  {}",
        step.calls,
        step.ramp_calls,
        step.ramp_calls_per_s,
        step.ramp_server_tree_cpu_pct,
        step.ramp_server_tree_cpu_us_per_call,
        m.loss_pct,
        m.silent_streams,
        m.jitter_mean_ms,
        m.jitter_p99_ms,
        m.jitter_max_ms,
        m.delay_p50_ms,
        m.delay_p99_ms,
        step.server_cpu_pct,
        step.server_cpu_us_per_call_s,
        step.server_core_busy_pct.unwrap_or(0.0),
        step.loadgen_cpu_pct,
        m.loadgen_max_late_ms,
        step.reason.as_deref().unwrap_or("pass"),
    ));
}

/// Ends every call (bounded in time).
pub(crate) fn hang_up_all(engine: &mut Engine, s: &mut dyn Signalling) {
    let n = s.bridged();
    s.hang_up(engine, n, Instant::now());
    let deadline = Instant::now() + Duration::from_secs(15);
    while s.ending() > 0 && Instant::now() < deadline {
        pump(engine, s, Instant::now() + Duration::from_millis(50));
    }
}

pub(crate) fn run(engine: &mut Engine, s: &mut dyn Signalling, plan: &Plan, label: &str) -> Outcome {
    let mut steps = Vec::new();
    let mut best_n = None;
    for &n in &plan.steps {
        let ramp = match ramp_to(engine, s, plan, n) {
            Ok(secs) => secs,
            Err(reason) => {
                say(&format!("{label} N={n:5}  {reason}"));
                steps.push(Step {
                    calls: n,
                    window_secs: 0.0,
                    pass: false,
                    reason: Some(reason),
                    server_cpu_pct: 0.0,
                    server_cpu_us_per_call_s: 0.0,
                    loadgen_cpu_pct: 0.0,
                    server_core_busy_pct: None,
                    media: WindowReport::default(),
                    ramp_secs: 0.0,
                    ramp_calls: 0,
                    ramp_calls_per_s: 0.0,
                    ramp_server_tree_cpu_pct: 0.0,
                    ramp_server_tree_cpu_us_per_call: 0.0,
                });
                break;
            }
        };
        let step = measure(engine, s, plan, n, plan.step_secs, ramp);
        describe(label, &step);
        let pass = step.pass;
        steps.push(step);
        if !pass {
            break;
        }
        best_n = Some(n);
    }
    let mut best = None;
    if let Some(n) = best_n
        && plan.final_secs > 0.0
    {
        // Fresh calls for the final window: a server pushed past its limit by the failing
        // step may not recover the calls it had then (rtpengine does not).
        hang_up_all(engine, s);
        pump(engine, s, Instant::now() + Duration::from_secs_f64(plan.settle_secs));
        match ramp_to(engine, s, plan, n) {
            Ok(ramp) => {
                let step = measure(engine, s, plan, n, plan.final_secs, ramp);
                describe(&format!("{label} final"), &step);
                best = Some(step);
            }
            Err(reason) => say(&format!("{label} final N={n}: {reason}")),
        }
    }
    hang_up_all(engine, s);
    Outcome { steps, best, failed_calls: s.failed(), notes: s.notes() }
}
