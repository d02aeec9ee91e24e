//! `elastickv-chaos`: command-line entry point of the fault-injection
//! harness. `run` starts a proxied cluster, runs workloads under a seeded
//! nemesis schedule and checks the histories; `check` judges a recorded
//! history; `stale-read` runs the targeted isolated-leader read scenario.
//!
//! Exit codes: 0 valid, 1 invalid, 2 unknown (a checker gave up), 3 the
//! harness failed (history unreadable, cluster did not start or heal).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use elastickv_chaos::bank::{check_bank, BankConfig};
use elastickv_chaos::counter::check_counter;
use elastickv_chaos::elle::check_list_append;
use elastickv_chaos::linearizable::{check_register, RegisterConfig};
use elastickv_chaos::runner::RunConfig;
use elastickv_chaos::schedule::parse_kinds;
use elastickv_chaos::workload::WorkloadKind;
use elastickv_chaos::{CheckResult, History, Validity};

#[derive(Parser)]
#[command(
    name = "elastickv-chaos",
    about = "Jepsen-style fault-injection harness for Elastickv"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a recorded history (JSON lines) and print the verdict.
    Check(CheckArgs),
    /// Start a cluster, run workloads under faults, check the histories.
    Run(RunArgs),
    /// Targeted scenario: isolate the leader, write through the majority,
    /// read from the isolated node (invalid iff reads are unsafe).
    StaleRead(StaleReadArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum RunWorkload {
    Register,
    ListAppend,
    Bank,
    Counter,
    All,
}

#[derive(Args)]
struct RunArgs {
    #[arg(long, value_enum, default_value = "all")]
    workload: RunWorkload,
    /// Comma-separated: partition,kill,pause,clock,leader,membership (or
    /// all, none).
    #[arg(long, default_value = "partition,kill,pause,clock,leader")]
    nemesis: String,
    /// Overlapping fault episodes (e.g. a partition while a node is
    /// paused) instead of one fault at a time.
    #[arg(long)]
    overlap: bool,
    /// Seconds of workload under faults (healing, settling and final
    /// reads come after).
    #[arg(long, default_value_t = 60)]
    time_limit: u64,
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Schedule and client seed (random if absent; always printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Output directory (histories, results, nemesis log).
    #[arg(long, default_value = "chaos-out")]
    out: PathBuf,
    /// Start nodes with --unsafeLocalReads (expect anomalies).
    #[arg(long)]
    unsafe_local_reads: bool,
    /// Client workers per workload.
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// Operations per second per worker.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// Operation budget per workload.
    #[arg(long, default_value_t = 100_000)]
    max_ops: u64,
    /// Keep node data directories and logs.
    #[arg(long)]
    keep_data: bool,
}

#[derive(Args)]
struct StaleReadArgs {
    /// Start nodes with --unsafeLocalReads.
    #[arg(long)]
    unsafe_local_reads: bool,
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Workload {
    Register,
    ListAppend,
    Bank,
    Counter,
}

#[derive(Args)]
struct CheckArgs {
    /// Which checker to run.
    #[arg(long, value_enum)]
    workload: Workload,
    /// History file, one JSON event per line.
    history: PathBuf,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Bank: the constant total (inferred from reads if absent).
    #[arg(long)]
    bank_total: Option<i64>,
    /// Bank: comma-separated account names (inferred if absent).
    #[arg(long, value_delimiter = ',')]
    bank_accounts: Option<Vec<String>>,
    /// Bank: allow negative balances.
    #[arg(long)]
    bank_allow_negative: bool,
    /// Register: WGL cache budget per key, in 64-bit words.
    #[arg(long, default_value_t = RegisterConfig::default().max_cache_words)]
    max_cache_words: usize,
}

fn check(args: &CheckArgs) -> anyhow::Result<CheckResult> {
    let history = History::from_path(&args.history)
        .with_context(|| format!("reading {}", args.history.display()))?;
    let result = match args.workload {
        Workload::Register => check_register(
            &history,
            &RegisterConfig {
                max_cache_words: args.max_cache_words,
                ..RegisterConfig::default()
            },
        )?,
        Workload::ListAppend => check_list_append(&history)?,
        Workload::Bank => check_bank(
            &history,
            &BankConfig {
                total: args.bank_total,
                accounts: args
                    .bank_accounts
                    .as_ref()
                    .map(|a| a.iter().cloned().collect::<BTreeSet<_>>()),
                allow_negative: args.bank_allow_negative,
            },
        )?,
        Workload::Counter => check_counter(&history)?,
    };
    if let Some(out) = &args.out {
        let json = serde_json::to_string_pretty(&result)?;
        std::fs::write(out, json).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(result)
}

fn exit_for(v: Validity) -> ExitCode {
    match v {
        Validity::Valid => ExitCode::SUCCESS,
        Validity::Invalid => ExitCode::from(1),
        Validity::Unknown => ExitCode::from(2),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn run(args: &RunArgs) -> anyhow::Result<Validity> {
    let seed = args.seed.unwrap_or_else(rand::random);
    let workloads = match args.workload {
        RunWorkload::Register => vec![WorkloadKind::Register],
        RunWorkload::ListAppend => vec![WorkloadKind::ListAppend],
        RunWorkload::Bank => vec![WorkloadKind::Bank],
        RunWorkload::Counter => vec![WorkloadKind::Counter],
        RunWorkload::All => WorkloadKind::ALL.to_vec(),
    };
    let mut cfg = RunConfig::new(args.out.clone());
    cfg.workloads = workloads;
    cfg.nemeses = parse_kinds(&args.nemesis)?;
    cfg.time_limit = Duration::from_secs(args.time_limit);
    cfg.nodes = args.nodes;
    cfg.seed = seed;
    cfg.unsafe_local_reads = args.unsafe_local_reads;
    cfg.keep_data = args.keep_data;
    cfg.overlap = args.overlap;
    cfg.workload.workers = args.workers;
    cfg.workload.rate_hz = args.rate;
    cfg.workload.max_ops = args.max_ops;
    anyhow::ensure!(cfg.nodes >= 3, "--nodes must be at least 3");
    println!(
        "seed {seed}: {} node(s), {} s, nemeses [{}]{}, workloads [{}]",
        cfg.nodes,
        args.time_limit,
        cfg.nemeses
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(","),
        if cfg.overlap { " overlapping" } else { "" },
        cfg.workloads
            .iter()
            .map(|w| w.name())
            .collect::<Vec<_>>()
            .join(",")
    );
    let steps = cfg.schedule();
    println!("schedule: {} fault(s)", steps.len());
    for s in &steps {
        println!(
            "  +{:>6} ms for {:>5} ms: {}",
            s.at_ms,
            s.hold_ms,
            serde_json::to_string(&s.fault)?
        );
    }
    let outcome = runtime()?.block_on(elastickv_chaos::runner::run(&cfg))?;
    for w in &outcome.workloads {
        println!(
            "\n{} events ({} ok, {} fail, {} info)",
            w.events, w.ok, w.fail, w.info
        );
        print!("{}", w.result);
    }
    let v = outcome.validity();
    println!(
        "\nfaults applied: {} (most held at once: {})",
        serde_json::to_string(&outcome.fault_counts)?,
        outcome.max_concurrent_faults
    );
    println!(
        "\nseed {seed}: overall {} ({} fault(s) applied); output in {}",
        match v {
            Validity::Valid => "VALID",
            Validity::Invalid => "INVALID",
            Validity::Unknown => "UNKNOWN",
        },
        outcome.faults_applied,
        args.out.display()
    );
    Ok(v)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .init();
    }
    match cli.command {
        Command::Run(args) => match run(&args) {
            Ok(v) => exit_for(v),
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(3)
            }
        },
        Command::StaleRead(args) => {
            let r = runtime().and_then(|rt| {
                rt.block_on(elastickv_chaos::runner::stale_read_scenario(
                    args.unsafe_local_reads,
                    args.out.as_deref(),
                ))
            });
            match r {
                Ok(result) => {
                    print!("{result}");
                    exit_for(result.valid)
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(3)
                }
            }
        }
        Command::Check(args) => match check(&args) {
            Ok(result) => {
                if args.json {
                    match serde_json::to_string_pretty(&result) {
                        Ok(s) => println!("{s}"),
                        Err(e) => {
                            eprintln!("error: {e}");
                            return ExitCode::from(3);
                        }
                    }
                } else {
                    print!("{result}");
                }
                match result.valid {
                    Validity::Valid => ExitCode::SUCCESS,
                    Validity::Invalid => ExitCode::from(1),
                    Validity::Unknown => ExitCode::from(2),
                }
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(3)
            }
        },
    }
}
