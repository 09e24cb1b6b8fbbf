//! `loadgen`: the media load behind `scripts/bench.sh media`.
//!
//! - `loadgen provision` sets up a sivo tenant over the HTTP API (trunk, queue, DID, agents).
//! - `loadgen sivo` registers the agents and places calls as a carrier from the trunk's
//!   address; sivo's queue answers and rings the agents, which answer; then 20 ms PCMU flows
//!   both ways on every call.
//! - `loadgen rtpengine` sets up the same calls on rtpengine over its ng protocol and sends
//!   the same RTP through it.
//!
//! Both step N upward and report loss, jitter, delay and server CPU per step as JSON.

mod cpu;
mod engine;
mod provision;
mod rtpengine;
mod runner;
mod sdp;
mod sivo;

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Media load generator for scripts/bench.sh media")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct PlanArgs {
    /// Concurrent calls to try, in order; the search stops at the first that fails.
    #[arg(long, value_delimiter = ',', default_value = "100,250,500,1000,1500,2000")]
    steps: Vec<usize>,
    /// Measurement window of each step.
    #[arg(long, default_value_t = 10.0)]
    step_secs: f64,
    /// Window held at the highest passing N (0: none).
    #[arg(long, default_value_t = 60.0)]
    final_secs: f64,
    /// Wait between the last call bridged and the window.
    #[arg(long, default_value_t = 3.0)]
    settle_secs: f64,
    /// Calls started per second while ramping.
    #[arg(long, default_value_t = 100.0)]
    cps: f64,
    #[arg(long, default_value_t = 200)]
    max_pending: usize,
    /// RTP sockets on each side (carrier, agents).
    #[arg(long, default_value_t = 4)]
    sockets_per_side: usize,
    #[arg(long, default_value_t = 0.1)]
    max_loss_pct: f64,
    #[arg(long, default_value_t = 5.0)]
    max_jitter_ms: f64,
    /// Processes whose CPU is the server's (comma-separated pids).
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// The CPU the server is pinned to, to report how busy it was.
    #[arg(long)]
    server_core: Option<usize>,
    /// Where the JSON report goes.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Creates trunk, queue, DID and agents in a sivo tenant; writes "extension password" lines.
    Provision {
        #[arg(long)]
        http: SocketAddr,
        #[arg(long, env = "LOADGEN_API_KEY")]
        api_key: String,
        #[arg(long)]
        agents: usize,
        #[arg(long, default_value = "+4930555000")]
        did: String,
        #[arg(long, default_value = "127.0.0.2/32")]
        carrier_cidr: String,
        #[arg(long, default_value_t = 4)]
        threads: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Calls through sivo: carrier → DID → queue → registered agents.
    Sivo {
        #[arg(long)]
        sip: SocketAddrV4,
        /// The tenant's SIP domain (<slug>.<sip.base_domain>).
        #[arg(long)]
        domain: String,
        #[arg(long, default_value = "+4930555000")]
        did: String,
        #[arg(long)]
        agents_file: PathBuf,
        #[command(flatten)]
        plan: PlanArgs,
    },
    /// The same calls through rtpengine (ng protocol).
    Rtpengine {
        #[arg(long)]
        ng: SocketAddrV4,
        #[command(flatten)]
        plan: PlanArgs,
    },
}

const CARRIER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const AGENT_IP: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn plan(args: &PlanArgs) -> runner::Plan {
    runner::Plan {
        steps: args.steps.clone(),
        step_secs: args.step_secs,
        final_secs: args.final_secs,
        settle_secs: args.settle_secs,
        cps: args.cps.max(1.0),
        max_pending: args.max_pending.max(1),
        server_pids: args.server_pid.clone(),
        server_core: args.server_core,
        max_loss_pct: args.max_loss_pct,
        max_jitter_ms: args.max_jitter_ms,
    }
}

fn write_report(
    path: &PathBuf,
    target: &str,
    args: &PlanArgs,
    outcome: &runner::Outcome,
) -> anyhow::Result<()> {
    let report = serde_json::json!({
        "target": target,
        "plan": {
            "steps": args.steps, "step_secs": args.step_secs, "final_secs": args.final_secs,
            "settle_secs": args.settle_secs, "cps": args.cps, "sockets_per_side": args.sockets_per_side,
            "max_loss_pct": args.max_loss_pct, "max_jitter_ms": args.max_jitter_ms,
        },
        "outcome": outcome,
    });
    std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Provision { http, api_key, agents, did, carrier_cidr, threads, out } => {
            let started = Instant::now();
            let api = provision::Api { addr: http, key: api_key };
            let lines = provision::provision(&api, agents, &did, &carrier_cidr, threads)?;
            std::fs::write(&out, lines.join("\n") + "\n")?;
            let _ = writeln!(
                std::io::stderr(),
                "provisioned {} agents in {:.1} s",
                lines.len(),
                started.elapsed().as_secs_f64()
            );
        }
        Command::Sivo { sip, domain, did, agents_file, plan: args } => {
            let text = std::fs::read_to_string(&agents_file)
                .with_context(|| format!("reading {}", agents_file.display()))?;
            let agents: Vec<(String, String)> = text
                .lines()
                .filter_map(|l| l.split_once(' '))
                .map(|(e, p)| (e.to_owned(), p.trim().to_owned()))
                .collect();
            let needed = args.steps.iter().copied().max().unwrap_or(0);
            anyhow::ensure!(agents.len() >= needed, "{} agents for up to {needed} calls", agents.len());
            let mut engine = engine::Engine::new(&[CARRIER_IP, AGENT_IP], args.sockets_per_side)?;
            let mut sivo = sivo::Sivo::new(sivo::Config {
                server: sip,
                domain,
                did,
                agents,
                carrier_ip: CARRIER_IP,
                agent_ip: AGENT_IP,
                sockets_per_side: args.sockets_per_side.max(1),
            })?;
            let started = Instant::now();
            sivo.register_all(&mut engine, Instant::now() + Duration::from_secs(300))?;
            let _ = writeln!(
                std::io::stderr(),
                "sivo: {needed} agents registered in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            let outcome = runner::run(&mut engine, &mut sivo, &plan(&args), "sivo     ");
            write_report(&args.out, "sivo", &args, &outcome)?;
        }
        Command::Rtpengine { ng, plan: args } => {
            let mut engine = engine::Engine::new(&[CARRIER_IP, AGENT_IP], args.sockets_per_side)?;
            let mut rtpengine = rtpengine::Rtpengine::new(ng, CARRIER_IP, args.sockets_per_side)?;
            let outcome = runner::run(&mut engine, &mut rtpengine, &plan(&args), "rtpengine");
            write_report(&args.out, "rtpengine", &args, &outcome)?;
        }
    }
    Ok(())
}
