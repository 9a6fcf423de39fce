//! `featurepipe check-config FILE`: validates a pipeline file without running anything
//! and prints the pipeline it describes (JSON by default, or a table), so a file can be
//! reviewed (and CI-checked) before the nightly run meets it. The file is checked exactly as a run
//! checks it (the same settings resolution), over the built-in defaults; flags and
//! `DP_*` variables would still override it at run time. `DP_CONFIG` names the file when
//! no FILE is given.

use std::path::{Path, PathBuf};

use clap::Args;

use super::args::Sources;
use super::output::{self, plain, ReportFormat, DASH};
use crate::config::describe;
use crate::config::{self, Flags, Origin, PipelineSettings, Setting};
use crate::error::{Error, Finished, Result};
use crate::log::LogFormat;
use crate::storage::pattern::names_many;
use crate::values::execution_date::ExecutionDate;

pub const CHECK_CONFIG_AFTER_HELP: &str = "\
Checks everything a run would reject before reading data: unknown keys and rule kinds, wrong
types, impossible thresholds, regexes that do not compile, bad strftime formats, duplicate
output columns, and (when [source] columns lists the raw header) rules or features naming a
column that cannot exist. Prints the resolved pipeline, as JSON by default (--output table
for a person): source format, every rule with its threshold, severity and mostly, and the
output columns with their types.

Examples:
  featurepipe check-config fixtures/pipelines/strict_daily_user_events.toml
  featurepipe check-config fixtures/pipelines/daily_user_features.toml --output table
  DP_CONFIG=fixtures/pipelines/daily_user_features.toml featurepipe check-config";

/// `featurepipe check-config FILE`.
#[derive(Debug, Clone, Args)]
pub struct CheckConfigArgs {
    /// The pipeline file (TOML), as given to --config
    #[arg(value_name = "FILE", env = "DP_CONFIG")]
    pub file: PathBuf,

    /// How the pipeline is printed on stdout: json (indented), or table, for a person
    #[arg(long, env = "DP_CHECK_CONFIG_OUTPUT", value_enum, default_value_t = ReportFormat::Json)]
    pub output: ReportFormat,

    /// Log line format on stderr (the error sentence of a file that does not check)
    #[arg(long, env = "DP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Exit 0 and the resolved pipeline on stdout, or exit 2 and one sentence naming the line.
pub fn execute(args: CheckConfigArgs, sources: &Sources<'_>) -> Result<Finished> {
    let origin = match sources.origin("file") {
        Origin::Default(_) => Origin::Flag("FILE".into()),
        other => other,
    };
    let flags = Flags::only_file(Setting::new(args.file.clone(), origin));
    let settings = config::resolve_pipeline(&flags)?;
    // Templates are checked by rendering them for today.
    let today = ExecutionDate::now(settings.timezone);
    for template in [&settings.raw, &settings.features].into_iter().flatten() {
        today
            .render(&template.value)
            .map_err(|e| Error::Usage(format!("{}: {e}", template.origin)))?;
    }
    let described = describe(&args.file, &settings);
    let text = match args.output {
        ReportFormat::Json => {
            let text =
                serde_json::to_string_pretty(&described).unwrap_or_else(|_| described.to_string());
            format!("{text}\n")
        }
        ReportFormat::Table => table(&described),
    };
    output::write_stdout(text.as_bytes())?;
    Ok(Finished::success())
}

/// The described pipeline for a person: its settings, then a table of its rules and one
/// of its output columns (each with where its value comes from).
fn table(d: &serde_json::Value) -> String {
    let at = |path: &str| d.pointer(path).map_or_else(|| DASH.into(), plain);
    let unset = |path: &str| match d.pointer(path) {
        Some(serde_json::Value::Null) | None => "not set (give it as a flag or variable)".into(),
        Some(v) => plain(v),
    };
    let null_tokens = d
        .pointer("/source/null_tokens")
        .and_then(serde_json::Value::as_array)
        .map_or_else(
            || DASH.into(),
            |t| {
                t.iter()
                    .map(|v| format!("{:?}", plain(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        );
    let mut out = output::facts(&[
        ("file", at("/file")),
        ("pipeline", at("/name")),
        ("timezone", at("/timezone")),
        ("raw path", unset("/source/path")),
        ("delimiter", format!("{:?}", at("/source/delimiter"))),
        ("null tokens", null_tokens),
        ("feature prefix", unset("/output/prefix")),
        ("grain", at("/features/grain")),
    ]);

    let rules = d.get("rules").and_then(serde_json::Value::as_array);
    out.push_str(&format!(
        "\n{}\n",
        output::plural(rules.map_or(0, Vec::len) as u64, "rule", "rules")
    ));
    let mut rows = vec![["rule", "column", "severity", "threshold", "mostly"]
        .map(String::from)
        .to_vec()];
    for r in rules.into_iter().flatten() {
        let get = |k: &str| r.get(k).map_or_else(|| DASH.into(), plain);
        rows.push(vec![
            get("rule"),
            get("column"),
            get("severity"),
            output::cut(&get("threshold"), 60),
            get("mostly"),
        ]);
    }
    out.push_str(&output::table(&rows));

    let columns = d
        .pointer("/features/columns")
        .and_then(serde_json::Value::as_array);
    out.push_str(&format!(
        "\n{}\n",
        output::plural(
            columns.map_or(0, Vec::len) as u64,
            "output column",
            "output columns"
        )
    ));
    let mut rows = vec![["column", "type", "from"].map(String::from).to_vec()];
    for c in columns.into_iter().flatten() {
        let get = |k: &str| c.get(k).map_or_else(|| DASH.into(), plain);
        // Whatever else describes the column: `column=amount`, `agg=sum`, `key=true`.
        let from = c
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| !matches!(k.as_str(), "name" | "type"))
            .map(|(k, v)| format!("{k}={}", plain(v)))
            .collect::<Vec<_>>()
            .join(" ");
        rows.push(vec![get("name"), get("type"), from]);
    }
    out.push_str(&output::table(&rows));
    out
}

/// The pipeline the settings describe, as JSON (a path the file does not set is null:
/// the run must then be given it as a flag or variable).
fn describe(file: &Path, settings: &PipelineSettings) -> serde_json::Value {
    let spec = &settings.spec;
    let template = |t: &Option<Setting<String>>| t.as_ref().map(|t| t.value.clone());
    serde_json::json!({
        "file": file.display().to_string(),
        "name": settings.pipeline,
        "timezone": settings.timezone.name(),
        "source": source(settings),
        "output": {
            "prefix": template(&settings.features),
            "formats": settings.output.value.names(),
        },
        "rules": describe::rules(&spec.rules),
        "features": describe::features(&spec.features),
    })
}

/// `[source]`: the path, the CSV dialect, and the drop checks a many-file path has.
fn source(settings: &PipelineSettings) -> serde_json::Value {
    let spec = &settings.spec;
    let path = settings.raw.as_ref().map(|t| t.value.clone());
    let mut source = serde_json::json!({
        "path": path,
        "delimiter": char::from(spec.source.delimiter).to_string(),
        "null_tokens": spec.source.null_tokens,
    });
    if let Some(o) = source.as_object_mut() {
        // A many-file path: how many parts make a whole drop.
        if path.as_deref().is_some_and(names_many) {
            let min_files = settings.min_files.as_ref().map_or(1, |m| m.value);
            o.insert("min_files".into(), min_files.into());
        }
        if let Some(marker) = &settings.require_marker {
            o.insert("require_marker".into(), marker.value.clone().into());
        }
    }
    source
}
