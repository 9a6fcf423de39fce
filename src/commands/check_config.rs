//! `featurepipe check-config FILE`: validates a pipeline file without running anything
//! and prints the pipeline it describes as JSON, so a file can be reviewed (and
//! CI-checked) before the nightly run meets it. The file is checked exactly as a run
//! checks it (the same settings resolution), over the built-in defaults; flags and
//! `DP_*` variables would still override it at run time. `DP_CONFIG` names the file when
//! no FILE is given.

use std::path::{Path, PathBuf};

use clap::Args;

use super::args::Sources;
use crate::config::describe;
use crate::config::{self, Flags, Origin, PipelineSettings, Setting};
use crate::error::{Error, Finished, Result};
use crate::log::{self, LogFormat};
use crate::storage::pattern::names_many;
use crate::values::execution_date::ExecutionDate;

pub const CHECK_CONFIG_AFTER_HELP: &str = "\
Checks everything a run would reject before reading data: unknown keys and rule kinds, wrong
types, impossible thresholds, regexes that do not compile, bad strftime formats, duplicate
output columns, and (when [source] columns lists the raw header) rules or features naming a
column that cannot exist. Prints the resolved pipeline as JSON: source format, every rule
with its threshold, severity and mostly, and the output columns with their types.

Examples:
  featurepipe check-config fixtures/pipelines/strict_daily_user_events.toml
  DP_CONFIG=fixtures/pipelines/daily_user_features.toml featurepipe check-config";

/// `featurepipe check-config FILE`.
#[derive(Debug, Clone, Args)]
pub struct CheckConfigArgs {
    /// The pipeline file (TOML), as given to --config
    #[arg(value_name = "FILE", env = "DP_CONFIG")]
    pub file: PathBuf,

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
    let text = serde_json::to_string_pretty(&described).unwrap_or_else(|_| described.to_string());
    log::stdout(&format!("{text}\n"));
    Ok(Finished::success())
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
