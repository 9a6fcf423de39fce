//! The command line: parse, set up logging once, hand the command its flags. Each
//! subcommand's flags live with it in `commands/`.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::build_info;
use crate::commands::args::Sources;
use crate::commands::backfill::{self, BackfillArgs};
use crate::commands::check_config::{self, CheckConfigArgs};
use crate::commands::completions::{self, CompletionsArgs};
use crate::commands::gc::{self, GcArgs};
use crate::commands::infer::{self, InferArgs};
use crate::commands::man::{self, ManArgs};
use crate::commands::run::{self, RunArgs};
use crate::commands::runs::{self, RunsArgs};
use crate::commands::status::{self, StatusArgs};
use crate::commands::versions::{self, VersionsArgs};
use crate::config::spec::DEFAULT_PIPELINE;
use crate::error::{Error, Finished, Result};
use crate::log::{self, LogFormat};
use crate::run::context::Report;
use crate::run::stages::summarize_run::{self, EarlyRun};
use crate::values::execution_date::DEFAULT_TIMEZONE;
use crate::values::ids::new_run_id;

const ABOUT: &str = "Turns a raw CSV drop (S3, MinIO or a local folder) into a versioned, \
validated, documented feature set.";

const AFTER_HELP: &str = "\
Every flag can also be set by its DP_* variable (named in each command's --help).

Examples:
  # the bundled example pipeline on the bundled fixture, into ./out (from the repository)
  featurepipe run --config fixtures/pipelines/daily_user_events.toml --execution-date 2025-11-19

  # how fresh its feature set is
  featurepipe status --config fixtures/pipelines/daily_user_events.toml

  # completion of commands and flags in bash
  featurepipe completions bash > ~/.local/share/bash-completion/completions/featurepipe";

#[derive(Debug, Parser)]
#[command(name = "featurepipe", version = build_info::VERSION_LINE, about = ABOUT,
          after_help = AFTER_HELP)]
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
    /// Show how fresh a feature prefix is: the newest complete version, its age, rows and
    /// null rate, and the last run; with --max-age, exit 6 when it is too old.
    #[command(after_help = status::STATUS_AFTER_HELP)]
    Status(StatusArgs),
    /// List, show and compare the versions under a prefix (documents only, read-only).
    #[command(after_help = versions::VERSIONS_AFTER_HELP)]
    Versions(VersionsArgs),
    /// How the pipeline has been doing: runs, successes, failures, skips, durations and
    /// rules per day or week, from the run records (table, JSON or CSV).
    #[command(after_help = runs::RUNS_AFTER_HELP)]
    Runs(RunsArgs),
    /// Delete old versions (--keep N, --older-than AGE) and stale leftovers; never the
    /// version _latest names, nor one a run is writing.
    #[command(after_help = gc::GC_AFTER_HELP)]
    Gc(GcArgs),
    /// Print a starting pipeline file for a sample CSV: delimiter, columns, types, rules.
    #[command(after_help = infer::INFER_AFTER_HELP)]
    Infer(InferArgs),
    /// Print the shell completion script for bash, zsh, fish, elvish or PowerShell.
    #[command(after_help = completions::COMPLETIONS_AFTER_HELP)]
    Completions(CompletionsArgs),
    /// Print the manual page (roff), or write one page per command into a folder.
    #[command(after_help = man::MAN_AFTER_HELP)]
    Man(ManArgs),
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
    // Each command resolves what it can first, so that its log lines carry the pipeline's
    // zone; then logging is set up, once, and the command runs.
    let ((format, tz), job): (_, Box<dyn FnOnce() -> Result<Finished> + '_>) = match cli.command {
        Command::Run(args) => {
            let prepared = run::prepare(&args, &sources);
            (prepared.log_setup(), Box::new(move || prepared.execute()))
        }
        Command::Backfill(args) => {
            let prepared = backfill::prepare(args, &sources);
            (prepared.log_setup(), Box::new(move || prepared.execute()))
        }
        Command::CheckConfig(args) => (
            (args.log_format, DEFAULT_TIMEZONE),
            Box::new(|| check_config::execute(args, &sources)),
        ),
        Command::Status(args) => {
            let prepared = status::prepare(args, &sources);
            (prepared.log_setup(), Box::new(move || prepared.execute()))
        }
        Command::Versions(args) => {
            let prepared = versions::prepare(args, sub_matches, sub_definition);
            (prepared.log_setup(), Box::new(move || prepared.execute()))
        }
        Command::Runs(args) => {
            let prepared = runs::prepare(args, &sources);
            (prepared.log_setup(), Box::new(move || prepared.execute()))
        }
        Command::Gc(args) => {
            let prepared = gc::prepare(args, &sources);
            (prepared.log_setup(), Box::new(move || prepared.execute()))
        }
        Command::Infer(args) => (
            (log::requested_format(), DEFAULT_TIMEZONE),
            Box::new(|| infer::execute(args)),
        ),
        Command::Completions(args) => (
            (log::requested_format(), DEFAULT_TIMEZONE),
            Box::new(|| completions::execute(args, Cli::command())),
        ),
        Command::Man(args) => (
            (log::requested_format(), DEFAULT_TIMEZONE),
            Box::new(|| man::execute(args, Cli::command())),
        ),
    };
    log::init(format, tz);
    job()
}

/// Flags clap rejected (unknown flag, bad value): `--help` and `--version` print and
/// succeed; otherwise a `run` or `backfill` still logs one `summarize_run` line, so the
/// failed run shows up in Loki, then clap's own explanation (text logs only: with
/// `--log-format json` every stderr line is JSON), and a usage error naming where to look.
fn rejected(err: clap::Error) -> Result<Finished> {
    if !err.use_stderr() {
        let _ = err.print();
        return Ok(Finished::success());
    }
    let format = log::requested_format();
    log::init(format, DEFAULT_TIMEZONE);
    if format == LogFormat::Text {
        let _ = err.print();
    }
    let command = std::env::args().nth(1);
    let help = match command.as_deref() {
        Some(
            command @ ("run" | "backfill" | "check-config" | "status" | "gc" | "runs"
            | "completions" | "man"),
        ) => {
            format!("featurepipe {command} --help")
        }
        Some("versions") => match std::env::args().nth(2).as_deref() {
            Some(sub @ ("list" | "show" | "diff")) => format!("featurepipe versions {sub} --help"),
            _ => "featurepipe versions --help".to_string(),
        },
        _ => "featurepipe --help".to_string(),
    };
    let error = Error::Usage(format!("{} (see {help})", sentence(&err)));
    if !matches!(command.as_deref(), Some("run" | "backfill")) {
        return Err(error);
    }
    let pipeline = std::env::var("DP_PIPELINE_NAME").unwrap_or_else(|_| DEFAULT_PIPELINE.into());
    let run_id = new_run_id();
    let early = EarlyRun {
        pipeline: &crate::values::shorten(&pipeline),
        run_id: &run_id,
        execution_date: std::env::var("DP_EXECUTION_DATE").ok(),
        duration_ms: 0,
        report: Report::Stdout,
    };
    let outcome = summarize_run::early(early, &error);
    // stdout carries the result as JSON, as for any failed run (`--output` is among what
    // clap rejected).
    println!("{}", outcome.result_json());
    Err(error)
}

/// Clap's explanation as one sentence: its first paragraph on one line (a list of missing
/// arguments included), naming the `DP_*` variable when the bad value came from one.
fn sentence(err: &clap::Error) -> String {
    let text = err.to_string();
    let mut parts = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("Usage:") {
            break;
        }
        parts.push(line.trim_start_matches("error: "));
    }
    let mut sentence = if parts.is_empty() {
        "invalid arguments".to_string()
    } else {
        parts.join(" ")
    };
    if let Some(var) = bad_value_from_variable(err) {
        sentence.push_str(&format!(" (the value came from {var})"));
    }
    sentence
}

/// The variable a rejected value came from: the argument clap names has a `DP_*`
/// variable that is set, and its flag is not on the command line.
fn bad_value_from_variable(err: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(invalid)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = invalid.split([' ', '=']).next()?.strip_prefix("--")?;
    let definition = Cli::command();
    let sub = definition.find_subcommand(std::env::args().nth(1)?.as_str())?;
    let arg = sub.get_arguments().find(|a| a.get_long() == Some(long))?;
    let var = arg.get_env()?.to_string_lossy().into_owned();
    let flag = format!("--{long}");
    let on_command_line = std::env::args()
        .skip(2)
        .any(|a| a == flag || a.starts_with(&format!("{flag}=")));
    (!on_command_line && std::env::var_os(&var).is_some()).then_some(var)
}
