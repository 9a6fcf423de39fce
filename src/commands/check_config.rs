//! `featurepipe check-config FILE`: validates a pipeline file without running anything
//! and prints the pipeline it describes as JSON, so a file can be reviewed (and
//! CI-checked) before the nightly run meets it. The file is checked exactly as a run
//! checks it (the same settings resolution), over the built-in defaults; flags and
//! `DP_*` variables would still override it at run time.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::config::spec::{AggFunction, Features, RowFeatureKind, Rule};
use crate::config::{self, Flags, Origin, Rerun, RunSettings, Setting, When};
use crate::error::{Finished, Result};

pub const CHECK_CONFIG_AFTER_HELP: &str = "\
Checks everything a run would reject before reading data: unknown keys and rule kinds, wrong
types, impossible thresholds, regexes that do not compile, bad strftime formats, duplicate
output columns, and (when [source] columns lists the raw header) rules or features naming a
column that cannot exist. Prints the resolved pipeline as JSON: source format, every rule
with its threshold, severity and mostly, and the output columns with their types.

Examples:
  featurepipe check-config fixtures/pipelines/strict_daily_user_events.toml
  featurepipe check-config fixtures/pipelines/daily_user_features.toml";

/// `featurepipe check-config FILE`.
#[derive(Debug, Clone, Args)]
pub struct CheckConfigArgs {
    /// The pipeline file (TOML), as given to --config
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Exit 0 and the resolved pipeline on stdout, or exit 2 and one sentence naming the line.
pub fn execute(args: CheckConfigArgs) -> Result<Finished> {
    let flags = Flags::only_file(Setting::new(args.file.clone(), Origin::Flag("FILE".into())));
    // Templates are checked by rendering them for today.
    let settings = config::resolve(&flags, &When::Given(None), Rerun::IfIncomplete)?;
    let described = describe(&args.file, &settings);
    let text = serde_json::to_string_pretty(&described).unwrap_or_else(|_| described.to_string());
    println!("{text}");
    Ok(Finished::success())
}

/// The pipeline the settings describe, as JSON.
fn describe(file: &Path, settings: &RunSettings) -> serde_json::Value {
    let spec = &settings.spec;
    serde_json::json!({
        "file": file.display().to_string(),
        "name": settings.pipeline,
        "timezone": settings.timezone.name(),
        "source": describe_source(settings),
        "output": {
            "prefix": settings.templates.features,
            "formats": settings.output.value.names(),
        },
        "rules": spec.rules.iter().map(describe_rule).collect::<Vec<_>>(),
        "features": describe_features(&spec.features),
    })
}

fn describe_source(settings: &RunSettings) -> serde_json::Value {
    let spec = &settings.spec;
    let mut source = serde_json::json!({
        "path": settings.templates.raw,
        "delimiter": char::from(spec.source.delimiter).to_string(),
        "null_tokens": spec.source.null_tokens,
    });
    if let Some(o) = source.as_object_mut() {
        // A many-file path: how many parts make a whole drop.
        if settings.raw_parts.is_some() {
            o.insert("min_files".into(), settings.min_files.value.into());
        }
        if let Some(marker) = &settings.require_marker {
            o.insert("require_marker".into(), marker.value.clone().into());
        }
    }
    source
}

fn describe_rule(r: &Rule) -> serde_json::Value {
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
                RowFeatureKind::Column { column, format, .. } => {
                    let mut v = json!({ "name": f.name, "type": ty.as_str(), "column": column });
                    if let (Some(o), Some(format)) = (v.as_object_mut(), format) {
                        o.insert("format".into(), format.clone().into());
                    }
                    v
                }
                RowFeatureKind::RowSum { columns } => {
                    json!({ "name": f.name, "type": ty.as_str(), "row_sum": columns })
                }
            })
            .collect(),
        Features::Entities(e) => {
            let keys = e.key_columns();
            let aggs = e.aggregates.iter().zip(&types[keys.len()..]);
            types[..keys.len()]
                .iter()
                .map(|(k, ty)| json!({ "name": k, "type": ty.as_str(), "key": true }))
                .chain(aggs.map(|(a, (_, ty))| {
                    let mut v =
                        json!({ "name": a.name, "type": ty.as_str(), "agg": a.function.as_str() });
                    if let (Some(o), Some(c)) = (v.as_object_mut(), a.function.column()) {
                        o.insert("column".into(), c.into());
                    }
                    if let (Some(o), AggFunction::First { by, .. } | AggFunction::Last { by, .. }) =
                        (v.as_object_mut(), &a.function)
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
