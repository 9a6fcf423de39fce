//! Resolves flags, environment, pipeline file and built-in defaults into one validated
//! [`RunSettings`]. Precedence: flag > environment (clap merges those two) > pipeline
//! file > built-in default. Every error names the flag, variable or file line to fix.

use crate::cli::CommonArgs;
use crate::context::RunSettings;
use crate::error::{Error, Result};
use crate::execution_date::{parse_timezone, ExecutionDate, DEFAULT_TIMEZONE};
use crate::pipeline::{Features, PipelineSpec, RowFeatureKind, DEFAULT_PIPELINE};
pub use crate::pipeline_file::{load, LoadedFile, PipelineFile};
use crate::storage::StorageUri;

/// Built-in raw input: the bundled fixture, so a fresh checkout runs with no setup.
pub const DEFAULT_RAW: &str = "fixtures/user_events_{ds_nodash}.csv";
/// Built-in output prefix: a local folder beside the checkout.
pub const DEFAULT_FEATURES: &str = "out/features/daily_user_events";

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
    let spec = &loaded.spec;
    Ok(serde_json::json!({
        "file": loaded.path.display().to_string(),
        "name": name,
        "timezone": tz_name,
        "source": {
            "path": raw,
            "delimiter": char::from(spec.source.delimiter).to_string(),
            "null_tokens": spec.source.null_tokens,
        },
        "output": { "prefix": prefix },
        "rules": spec.rules.iter().map(describe_rule).collect::<Vec<_>>(),
        "features": describe_features(&spec.features),
    }))
}

fn describe_rule(r: &crate::pipeline::Rule) -> serde_json::Value {
    let mut rule = serde_json::json!({
        "rule": r.check.name(),
        "threshold": r.check.threshold(),
        "severity": r.severity.as_str(),
    });
    if let Some(o) = rule.as_object_mut() {
        if let Some(column) = r.check.column() {
            o.insert("column".into(), column.into());
        }
        if r.check.takes_mostly() {
            o.insert("mostly".into(), r.mostly.into());
        }
    }
    rule
}

fn describe_features(features: &Features) -> serde_json::Value {
    use serde_json::json;
    let types = features.columns();
    let columns: Vec<serde_json::Value> = match features {
        Features::Rows(rows) => rows
            .iter()
            .zip(&types)
            .map(|(f, (_, ty))| match &f.kind {
                RowFeatureKind::Column { column, .. } => {
                    json!({ "name": f.name, "type": ty.as_str(), "column": column })
                }
                RowFeatureKind::RowSum { columns } => {
                    json!({ "name": f.name, "type": ty.as_str(), "row_sum": columns })
                }
            })
            .collect(),
        Features::Entities(e) => {
            let keys = e.key_columns();
            let aggs = e.aggregates.iter().zip(&types[keys.len()..]);
            keys.iter()
                .map(|k| json!({ "name": k, "type": "string", "key": true }))
                .chain(aggs.map(|(a, (_, ty))| {
                    let mut v =
                        json!({ "name": a.name, "type": ty.as_str(), "agg": a.function.as_str() });
                    if let (Some(o), Some(c)) = (v.as_object_mut(), a.function.column()) {
                        o.insert("column".into(), c.into());
                    }
                    if let (
                        Some(o),
                        crate::pipeline::AggFunction::First { by, .. }
                        | crate::pipeline::AggFunction::Last { by, .. },
                    ) = (v.as_object_mut(), &a.function)
                    {
                        o.insert("by".into(), by.clone().into());
                    }
                    v
                }))
                .collect()
        }
    };
    let mut out = json!({
        "grain": features.grain(),
        "key_columns": features.key_columns(),
        "columns": columns,
    });
    if let (Some(o), Features::Entities(e)) = (out.as_object_mut(), features) {
        o.insert("group_by".into(), json!(e.group_by));
        if let Some(b) = &e.time_bucket {
            o.insert(
                "time_bucket".into(),
                json!({ "column": b.column, "every": b.every.as_str(), "name": b.name }),
            );
        }
    }
    out
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
