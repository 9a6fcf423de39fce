//! The command line: parse, set up logging once, hand the command its flags. Each
//! subcommand's flags live with it in `commands/`.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::commands::args::Sources;
use crate::commands::backfill::{self, BackfillArgs};
use crate::commands::check_config::{self, CheckConfigArgs};
use crate::commands::infer::{self, InferArgs};
use crate::commands::run::{self, RunArgs};
use crate::config::spec::DEFAULT_PIPELINE;
use crate::error::{Error, Finished, Result};
use crate::log::{self, LogFormat};
use crate::run::context::Report;
use crate::run::stages::summarize_run::{self, EarlyRun};
use crate::values::execution_date::DEFAULT_TIMEZONE;
use crate::values::ids::new_run_id;

const ABOUT: &str = "Turns a raw CSV drop (S3, MinIO or a local folder) into a versioned, \
validated, documented feature set.";

#[derive(Debug, Parser)]
#[command(name = "featurepipe", version, about = ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pipeline once: extract, validate, build, store, summarize.
    #[command(after_help = run::RUN_AFTER_HELP)]
    Run(RunArgs),
    /// Run the pipeline for many past dates, one run per date, and print a table.
    #[command(after_help = backfill::BACKFILL_AFTER_HELP)]
    Backfill(BackfillArgs),
    /// Check a pipeline file and print the pipeline it describes (exit 2 names the line).
    #[command(after_help = check_config::CHECK_CONFIG_AFTER_HELP)]
    CheckConfig(CheckConfigArgs),
    /// Print a starting pipeline file for a sample CSV: delimiter, columns, types, rules.
    #[command(after_help = infer::INFER_AFTER_HELP)]
    Infer(InferArgs),
}

/// Parses the command line, sets up logging, runs the command. `main` prints the last
/// sentence and exits with the code this ending maps to.
pub fn execute() -> Result<Finished> {
    let definition = Cli::command();
    let matches = match definition.clone().try_get_matches() {
        Ok(matches) => matches,
        Err(err) => return rejected(err),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => return rejected(err),
    };
    let (name, sub_matches) = matches
        .subcommand()
        .ok_or_else(|| Error::Internal("no subcommand was parsed".into()))?;
    let sub_definition = definition
        .find_subcommand(name)
        .ok_or_else(|| Error::Internal(format!("no definition of subcommand {name}")))?;
    let sources = Sources::new(sub_matches, sub_definition);
    match cli.command {
        Command::Run(args) => {
            let prepared = run::prepare(&args, &sources);
            let (format, tz) = prepared.log_setup();
            log::init(format, tz);
            prepared.execute()
        }
        Command::Backfill(args) => {
            let prepared = backfill::prepare(args, &sources);
            let (format, tz) = prepared.log_setup();
            log::init(format, tz);
            prepared.execute()
        }
        Command::CheckConfig(args) => {
            log::init(LogFormat::Text, DEFAULT_TIMEZONE);
            check_config::execute(args)
        }
        Command::Infer(args) => {
            log::init(LogFormat::Text, DEFAULT_TIMEZONE);
            infer::execute(args)
        }
    }
}

/// Flags clap rejected (unknown flag, bad value): `--help` and `--version` print and
/// succeed; otherwise still one `summarize_run` line, so the failed run shows up in Loki,
/// then clap's own explanation, and a usage error naming where to look.
fn rejected(err: clap::Error) -> Result<Finished> {
    if !err.use_stderr() {
        let _ = err.print();
        return Ok(Finished::success());
    }
    let format = match std::env::var("DP_LOG_FORMAT").as_deref() {
        Ok("json") => LogFormat::Json,
        _ => LogFormat::Text,
    };
    log::init(format, DEFAULT_TIMEZONE);
    let _ = err.print();
    let sentence = err
        .to_string()
        .lines()
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
        .to_string();
    let help = match std::env::args().nth(1).as_deref() {
        Some(command @ ("run" | "backfill")) => format!("featurepipe {command} --help"),
        _ => "featurepipe --help".to_string(),
    };
    let error = Error::Usage(format!("{sentence} (see {help})"));
    let pipeline = std::env::var("DP_PIPELINE_NAME").unwrap_or_else(|_| DEFAULT_PIPELINE.into());
    let run_id = new_run_id();
    let early = EarlyRun {
        pipeline: &crate::values::shorten(&pipeline),
        run_id: &run_id,
        execution_date: std::env::var("DP_EXECUTION_DATE").ok(),
        duration_ms: 0,
        report: Report::Stdout,
    };
    summarize_run::early(early, &error);
    Err(error)
}
