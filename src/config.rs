//! Resolves flags, environment, pipeline file and built-in defaults into one validated
//! [`RunSettings`]. Precedence: flag > environment (clap merges those two) > pipeline
//! file > built-in default. Every error names the flag, variable or file line to fix.

use std::path::Path;

use serde::Deserialize;

use crate::cli::CommonArgs;
use crate::context::RunSettings;
use crate::error::{Error, Result};
use crate::execution_date::{parse_timezone, ExecutionDate, DEFAULT_TIMEZONE};
use crate::pipeline::{PipelineSpec, DEFAULT_PIPELINE};
use crate::storage::StorageUri;

/// Built-in raw input: the bundled fixture, so a fresh checkout runs with no setup.
pub const DEFAULT_RAW: &str = "fixtures/user_events_{ds_nodash}.csv";
/// Built-in output prefix: a local folder beside the checkout.
pub const DEFAULT_FEATURES: &str = "out/features/daily_user_events";

/// The pipeline file (`--config`). Unknown keys are errors, not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub source: Option<SourceSection>,
    pub output: Option<OutputSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    pub path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    pub prefix: Option<String>,
}

/// Reads a pipeline file; errors name the file and the TOML line.
pub fn load_pipeline_file(path: &Path) -> Result<PipelineFile> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Usage(format!(
            "cannot read pipeline file {} (--config / DP_CONFIG): {e}",
            path.display()
        ))
    })?;
    toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        let at = line.map(|l| format!(", line {l}")).unwrap_or_default();
        Error::Usage(format!(
            "pipeline file {}{at}: {}",
            path.display(),
            e.message().trim_end()
        ))
    })
}

/// The pipeline name as best known before full resolution (for early failure lines).
pub fn pipeline_name_hint(args: &CommonArgs) -> String {
    args.pipeline
        .clone()
        .unwrap_or_else(|| DEFAULT_PIPELINE.to_string())
}

/// Where a run's execution date comes from.
#[derive(Debug, Clone, Copy)]
pub enum When<'a> {
    /// `run --execution-date` (or `DP_EXECUTION_DATE`); `None` means now.
    Flag(Option<&'a str>),
    /// A backfill date: this wall-clock time in the pipeline zone.
    Local(chrono::NaiveDateTime),
}

/// How a run treats a version that is already complete, and which runs happen at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rerun {
    /// Skip a complete version (the default).
    IfIncomplete,
    /// Rewrite it (`--force`, `backfill --reprocess all`).
    Always,
    /// Only if the last run failed or left it incomplete (`backfill --reprocess failed`).
    IfFailed,
}

/// Turns raw flags into validated settings.
pub fn resolve(args: &CommonArgs, when: When<'_>, rerun: Rerun) -> Result<RunSettings> {
    let file = match &args.config {
        Some(path) => load_pipeline_file(path)?,
        None => PipelineFile::default(),
    };
    let pipeline = args
        .pipeline
        .clone()
        .or(file.name)
        .unwrap_or_else(|| DEFAULT_PIPELINE.to_string());
    validate_pipeline_name(&pipeline)?;

    let tz_name = args
        .timezone
        .clone()
        .or(file.timezone)
        .unwrap_or_else(|| DEFAULT_TIMEZONE.name().to_string());
    let timezone = parse_timezone(&tz_name)?;
    let execution_date = match when {
        When::Flag(Some(s)) => ExecutionDate::parse(s, timezone)?,
        When::Flag(None) => ExecutionDate::now(timezone),
        When::Local(local) => ExecutionDate::local(local, timezone),
    };

    let raw_template = args
        .raw
        .clone()
        .or(file.source.and_then(|s| s.path))
        .unwrap_or_else(|| DEFAULT_RAW.to_string());
    let raw = StorageUri::parse(
        &execution_date.render(&raw_template, "--raw / DP_RAW_PATH")?,
        "--raw / DP_RAW_PATH",
    )?;
    let features_template = args
        .features
        .clone()
        .or(file.output.and_then(|o| o.prefix))
        .unwrap_or_else(|| DEFAULT_FEATURES.to_string());
    let features = StorageUri::parse(
        &execution_date.render(&features_template, "--features / DP_FEATURE_PATH")?,
        "--features / DP_FEATURE_PATH",
    )?;
    if let StorageUri::Local(path) = &raw {
        if path.as_os_str().is_empty() || raw.split_last().1.is_empty() {
            return Err(Error::Usage(format!(
                "--raw / DP_RAW_PATH {raw_template:?} names a folder, not a file"
            )));
        }
    }
    if let Some(url) = &args.endpoint_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::Usage(format!(
                "--endpoint-url {:?} must start with http:// or https://",
                crate::redact::redact(url)
            )));
        }
    }

    Ok(RunSettings {
        pipeline,
        timezone,
        execution_date,
        raw,
        features,
        dry_run: args.dry_run,
        rerun: if args.force { Rerun::Always } else { rerun },
        skip_if_missing: args.skip_if_missing,
        lease_ttl: args.lease_ttl,
        spec: PipelineSpec::seed(),
    })
}

/// Pipeline names go into log lines and paths: keep them to a safe alphabet.
fn validate_pipeline_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "pipeline name {name:?} (--pipeline / DP_PIPELINE_NAME) may only use letters, digits, '_', '-' and '.'"
        )))
    }
}
