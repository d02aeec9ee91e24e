//! `elastickv-chaos`: command-line entry point of the fault-injection
//! harness. `check` judges a recorded history; a `run` subcommand (cluster
//! launching, nemeses) is to be added next to it.
//!
//! Exit codes: 0 valid, 1 invalid, 2 unknown (a checker gave up), 3 the
//! history could not be read or checked at all.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use elastickv_chaos::bank::{check_bank, BankConfig};
use elastickv_chaos::counter::check_counter;
use elastickv_chaos::elle::check_list_append;
use elastickv_chaos::linearizable::{check_register, RegisterConfig};
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
