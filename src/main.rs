//! The `featurepipe` binary: parse flags, run the command, exit with its code.

use std::process::ExitCode;

use clap::Parser;
use featurepipe::cli::{Cli, Command};

fn main() -> ExitCode {
    // A bug must still end in one clear line and exit code 1, never a panic dump.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("featurepipe: error: internal error (please report this as a bug): {info}");
        std::process::exit(i32::from(featurepipe::error::exit_code::INTERNAL));
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return ExitCode::from(featurepipe::run::reject_flags(err)),
    };
    let code = match cli.command {
        Command::Run(args) => featurepipe::run::execute(args),
        Command::Backfill(args) => featurepipe::backfill::execute(args),
        Command::CheckConfig(args) => featurepipe::check_config::execute(args),
    };
    ExitCode::from(code)
}
