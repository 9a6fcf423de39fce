//! Resolves flags, environment, pipeline file and built-in defaults into one validated
//! [`RunSettings`]. Precedence: flag > environment (clap merges those two) > pipeline
//! file > built-in default. Every error names the flag, variable or file line to fix.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::cli::CommonArgs;
use crate::context::RunSettings;
use crate::error::{Error, Result};
use crate::execution_date::{parse_timezone, ExecutionDate, DEFAULT_TIMEZONE};
use crate::pipeline::{Check, PipelineSpec, Rule, Severity, DEFAULT_PIPELINE};
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
    /// Replaces the built-in rules when present (an empty list means no rules).
    pub rules: Option<Vec<Spanned<RuleEntry>>>,
}

/// One `[[rules]]` entry: `rule = "<kind>"` plus that kind's keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleEntry {
    MinRows {
        value: u64,
        #[serde(default)]
        severity: Severity,
    },
    MaxRows {
        value: u64,
        #[serde(default)]
        severity: Severity,
    },
    MaxNullRate {
        value: f64,
        #[serde(default)]
        severity: Severity,
    },
    RequiredColumns {
        columns: Vec<String>,
        #[serde(default)]
        severity: Severity,
    },
    RowsVsHistory {
        versions: usize,
        max_change: f64,
        #[serde(default)]
        severity: Severity,
    },
    NullRateChange {
        max_change: f64,
        #[serde(default)]
        severity: Severity,
    },
}

impl RuleEntry {
    /// The checked rule, or why the entry makes no sense.
    fn to_rule(&self) -> std::result::Result<Rule, String> {
        let (check, severity) = match self {
            RuleEntry::MinRows { value, severity } => (Check::MinRows(*value), *severity),
            RuleEntry::MaxRows { value, severity } => (Check::MaxRows(*value), *severity),
            RuleEntry::MaxNullRate { value, severity } => {
                if !(0.0..=1.0).contains(value) {
                    return Err(format!(
                        "max_null_rate value {value} must be between 0 and 1"
                    ));
                }
                (Check::MaxNullRate(*value), *severity)
            }
            RuleEntry::RequiredColumns { columns, severity } => {
                if columns.is_empty() || columns.iter().any(|c| c.is_empty()) {
                    return Err("required_columns needs a non-empty list of column names".into());
                }
                (Check::RequiredColumns(columns.clone()), *severity)
            }
            RuleEntry::RowsVsHistory {
                versions,
                max_change,
                severity,
            } => {
                if !(1..=366).contains(versions) {
                    return Err(format!(
                        "rows_vs_history versions {versions} must be between 1 and 366"
                    ));
                }
                if !(*max_change >= 0.0 && max_change.is_finite()) {
                    return Err(format!(
                        "rows_vs_history max_change {max_change} must be a fraction of at least 0 (0.2 = 20%)"
                    ));
                }
                (
                    Check::RowsVsHistory {
                        versions: *versions,
                        max_change: *max_change,
                    },
                    *severity,
                )
            }
            RuleEntry::NullRateChange {
                max_change,
                severity,
            } => {
                if !(0.0..=1.0).contains(max_change) {
                    return Err(format!(
                        "null_rate_change max_change {max_change} must be between 0 and 1"
                    ));
                }
                (
                    Check::NullRateChange {
                        max_change: *max_change,
                    },
                    *severity,
                )
            }
        };
        Ok(Rule { check, severity })
    }
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

/// A pipeline file, parsed and checked.
pub struct LoadedFile {
    pub path: PathBuf,
    pub file: PipelineFile,
    /// The file's `[[rules]]` (or the built-in ones) over the built-in features.
    pub spec: PipelineSpec,
}

/// Reads and checks a pipeline file (`--config`, `check-config`); every error names the
/// file and, where it can, the TOML line.
pub fn load(path: &Path) -> Result<LoadedFile> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Usage(format!(
            "cannot read pipeline file {} (--config / DP_CONFIG): {e}",
            path.display()
        ))
    })?;
    let at = |offset: usize, message: &str| {
        let line = text[..offset.min(text.len())].matches('\n').count() + 1;
        Error::Usage(format!(
            "pipeline file {}, line {line}: {}",
            path.display(),
            message.trim_end()
        ))
    };
    let file: PipelineFile = toml::from_str(&text).map_err(|e| match e.span() {
        Some(span) => at(span.start, e.message()),
        None => Error::Usage(format!(
            "pipeline file {}: {}",
            path.display(),
            e.message().trim_end()
        )),
    })?;
    let mut spec = PipelineSpec::seed();
    if let Some(entries) = &file.rules {
        spec.rules = entries
            .iter()
            .map(|entry| {
                entry
                    .get_ref()
                    .to_rule()
                    .map_err(|message| at(entry.span().start, &message))
            })
            .collect::<Result<_>>()?;
        let min = spec.rules.iter().find_map(|r| match r.check {
            Check::MinRows(n) => Some(n),
            _ => None,
        });
        let max = spec.rules.iter().find_map(|r| match r.check {
            Check::MaxRows(n) => Some(n),
            _ => None,
        });
        if let (Some(min), Some(max)) = (min, max) {
            if min > max {
                return Err(Error::Usage(format!(
                    "pipeline file {}: min_rows {min} is more than max_rows {max}: no data can pass",
                    path.display()
                )));
            }
        }
    }
    Ok(LoadedFile {
        path: path.to_path_buf(),
        file,
        spec,
    })
}

/// `featurepipe check-config`: the pipeline a file describes, over the built-in defaults
/// (flags and `DP_*` variables would still override it at run time), checked the way a
/// run checks it: name, time zone, path templates and URIs, rules.
pub fn describe(loaded: &LoadedFile) -> Result<serde_json::Value> {
    let FileSettings {
        name,
        timezone: tz_name,
        raw,
        prefix,
    } = FileSettings::of(&loaded.file);
    validate_pipeline_name(&name)?;
    let timezone = parse_timezone(&tz_name)?;
    // Templates are checked by rendering them for today.
    let today = ExecutionDate::now(timezone);
    for (template, what) in [(&raw, "[source] path"), (&prefix, "[output] prefix")] {
        StorageUri::parse(&today.render(template, what)?, what)?;
    }
    let rules: Vec<_> = loaded
        .spec
        .rules
        .iter()
        .map(|r| {
            serde_json::json!({
                "rule": r.check.name(),
                "threshold": r.check.threshold(),
                "severity": r.severity.as_str(),
            })
        })
        .collect();
    Ok(serde_json::json!({
        "file": loaded.path.display().to_string(),
        "name": name,
        "timezone": tz_name,
        "source": { "path": raw },
        "output": { "prefix": prefix },
        "rules": rules,
        "features": [{
            "name": "row_sum",
            "kind": "row_sum",
            "columns": loaded.spec.row_sum_columns,
        }],
    }))
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

/// What a pipeline file sets, each value falling back to the built-in default: the one
/// place for "file, else default" (flags and environment override it in [`resolve`]).
struct FileSettings {
    name: String,
    timezone: String,
    raw: String,
    prefix: String,
}

impl FileSettings {
    fn of(file: &PipelineFile) -> Self {
        FileSettings {
            name: file.name.clone().unwrap_or_else(|| DEFAULT_PIPELINE.into()),
            timezone: file
                .timezone
                .clone()
                .unwrap_or_else(|| DEFAULT_TIMEZONE.name().into()),
            raw: file
                .source
                .as_ref()
                .and_then(|s| s.path.clone())
                .unwrap_or_else(|| DEFAULT_RAW.into()),
            prefix: file
                .output
                .as_ref()
                .and_then(|o| o.prefix.clone())
                .unwrap_or_else(|| DEFAULT_FEATURES.into()),
        }
    }
}

/// Turns raw flags into validated settings.
pub fn resolve(args: &CommonArgs, when: When<'_>, rerun: Rerun) -> Result<RunSettings> {
    let (file, spec) = match &args.config {
        Some(path) => {
            let loaded = load(path)?;
            (loaded.file, loaded.spec)
        }
        None => (PipelineFile::default(), PipelineSpec::seed()),
    };
    let base = FileSettings::of(&file);
    let pipeline = args.pipeline.clone().unwrap_or(base.name);
    validate_pipeline_name(&pipeline)?;

    let tz_name = args.timezone.clone().unwrap_or(base.timezone);
    let timezone = parse_timezone(&tz_name)?;
    let execution_date = match when {
        When::Flag(Some(s)) => ExecutionDate::parse(s, timezone)?,
        When::Flag(None) => ExecutionDate::now(timezone),
        When::Local(local) => ExecutionDate::local(local, timezone),
    };

    let raw_template = args.raw.clone().unwrap_or(base.raw);
    let raw = StorageUri::parse(
        &execution_date.render(&raw_template, "--raw / DP_RAW_PATH")?,
        "--raw / DP_RAW_PATH",
    )?;
    let features_template = args.features.clone().unwrap_or(base.prefix);
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
        spec,
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
