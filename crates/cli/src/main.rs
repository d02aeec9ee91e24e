//! `elastickv-cli`: a command-line client for an Elastickv node's gRPC API
//! (`RawKV` and `elastickv.admin.Admin`). See `elastickv-cli --help`.

mod cli;
mod output;
mod run;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Parse before starting a runtime: --help and usage errors exit at once
    // (clap exits 2 on bad usage, 0 on --help/--version).
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run::run(cli)) {
        Ok(outcome) => {
            // A closed pipe (e.g. `| head`) is not worth an error message.
            let _ = std::io::stdout().write_all(outcome.stdout.as_bytes());
            let _ = std::io::stderr().write_all(outcome.stderr.as_bytes());
            ExitCode::from(outcome.exit)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
