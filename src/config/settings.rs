//! Resolves flags, environment, pipeline file and built-in defaults into one validated
//! [`RunSettings`]. Precedence: flag > environment (the command line layer tells which of
//! the two gave a value) > pipeline file > built-in default. Each value keeps its
//! [`Origin`], and every error names it (`--timezone`, `DP_TIMEZONE`,
//! `orders.toml line 4: timezone`). `run` and `backfill` resolve through [`resolve`];
//! `check-config` and `status`, which run nothing, through [`resolve_pipeline`].
//!
//! The raw input and the feature prefix have no built-in default: a path relative to
//! whatever directory cron starts in would fail (or, with `--skip-if-missing`, skip)
//! every night without a word. A run that is given neither is a usage error naming the
//! flag, the variable and the pipeline file's key.

use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;
use toml::Spanned;

use super::origin::{Origin, Setting};
use super::pipeline_file::{self, LoadedFile};
use super::spec::{
    parquet_columns_conflict, parse_memory_size, Features, MemoryBudget, OutputFormats,
    PipelineSpec, DEFAULT_MEMORY_BUDGET, DEFAULT_PIPELINE, MEMORY_BUDGET_KEY,
};
use crate::error::{Error, Result};
use crate::storage::pattern::{names_many, ObjectPattern};
use crate::storage::s3::S3Options;
use crate::storage::StorageUri;
use crate::values::execution_date::{parse_timezone, ExecutionDate, DEFAULT_TIMEZONE};
use crate::values::shorten;

/// What the command line and environment gave a run, each value with where it came
/// from (built by the command line layer, which alone knows flags from variables).
#[derive(Debug, Clone)]
pub struct Flags {
    pub raw: Option<Setting<String>>,
    pub features: Option<Setting<String>>,
    pub pipeline: Option<Setting<String>>,
    pub timezone: Option<Setting<String>>,
    /// The pipeline file.
    pub config: Option<Setting<PathBuf>>,
    pub endpoint_url: Option<Setting<String>>,
    /// Entity grain's memory budget (`--memory-budget`, `DP_MEMORY_BUDGET`).
    pub memory_budget: Option<Setting<String>>,
    /// `--output-formats`: format names, comma-separated.
    pub output_formats: Option<Setting<String>>,
    /// `--min-files`: parts a many-file raw input needs.
    pub min_files: Option<Setting<u64>>,
    /// `--require-marker`: the completion marker the raw drop needs.
    pub require_marker: Option<Setting<String>>,
    pub dry_run: bool,
    pub force: bool,
    pub skip_if_missing: bool,
    pub lease_ttl: Duration,
    /// S3 connection settings (their `endpoint_url` is filled in from the flag above).
    pub s3: S3Options,
}

impl Default for Flags {
    /// Nothing given: no paths, no run options, the default lease and S3 tuning.
    fn default() -> Self {
        Flags {
            raw: None,
            features: None,
            pipeline: None,
            timezone: None,
            config: None,
            endpoint_url: None,
            memory_budget: None,
            output_formats: None,
            min_files: None,
            require_marker: None,
            dry_run: false,
            force: false,
            skip_if_missing: false,
            lease_ttl: DEFAULT_LEASE_TTL,
            s3: S3Options::default(),
        }
    }
}

impl Flags {
    /// Nothing given but a pipeline file: what `check-config` checks.
    pub fn only_file(file: Setting<PathBuf>) -> Self {
        Flags {
            config: Some(file),
            ..Flags::default()
        }
    }
}

/// How long a run's lease lasts without renewal, unless `--lease-ttl` says otherwise.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(60);

/// Where a run's execution date comes from.
#[derive(Debug, Clone)]
pub enum When {
    /// `run --execution-date` (or `DP_EXECUTION_DATE`); `None` means now.
    Given(Option<Setting<String>>),
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

/// Resolved, validated settings of one run.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub pipeline: String,
    pub timezone: Tz,
    pub execution_date: ExecutionDate,
    /// No execution date was given: it is the current time, so the version id is too, and
    /// a re-run will not find this version (the command warns).
    pub execution_date_is_now: bool,
    /// The raw input after template rendering, and where its template was set.
    pub raw: Setting<StorageUri>,
    /// The raw input is many files (a glob or a folder ending in `/`): which.
    pub raw_parts: Option<ObjectPattern>,
    /// At least this many parts, or the drop is not there yet (many-file input only).
    pub min_files: Setting<u64>,
    /// A file that must be beside the raw input (the upstream writer's `_SUCCESS`), or
    /// the drop is not there yet.
    pub require_marker: Option<Setting<String>>,
    /// The feature prefix after template rendering; versions go below it.
    pub features: Setting<StorageUri>,
    /// The files each version holds (`feature.csv`, `feature.parquet`).
    pub output: Setting<OutputFormats>,
    /// The path templates as given, before rendering (for `check-config`).
    pub templates: Templates,
    /// The pipeline file, when there is one.
    pub pipeline_file: Option<PathBuf>,
    /// SHA-256 of the pipeline file as read (recorded in `metadata.json`).
    pub pipeline_file_sha256: Option<String>,
    pub dry_run: bool,
    /// What to do with a version that is already complete.
    pub rerun: Rerun,
    pub skip_if_missing: bool,
    /// How long this run's lease on its version lasts without renewal.
    pub lease_ttl: Duration,
    pub s3: S3Options,
    pub spec: PipelineSpec,
}

/// The raw and feature path templates, unrendered.
#[derive(Debug, Clone)]
pub struct Templates {
    pub raw: String,
    pub features: String,
}

impl RunSettings {
    /// `v_YYYYMMDDTHHMMSS` for this run's execution date.
    pub fn version_id(&self) -> String {
        self.execution_date.version_id()
    }
}

/// The value a flag or variable gave, else the pipeline file's (with its line): the one
/// place for that precedence. `None` when neither gave one.
fn pick(
    given: &Option<Setting<String>>,
    loaded: Option<&LoadedFile>,
    in_file: impl Fn(&LoadedFile) -> Option<&Spanned<String>>,
    key: &'static str,
) -> Option<Setting<String>> {
    if let Some(given) = given {
        return Some(given.clone());
    }
    let loaded = loaded?;
    let spanned = in_file(loaded)?;
    Some(Setting::new(
        spanned.get_ref().clone(),
        loaded.origin(spanned.span(), key),
    ))
}

/// [`pick`], else the built-in default.
fn pick_or(
    given: &Option<Setting<String>>,
    loaded: Option<&LoadedFile>,
    in_file: impl Fn(&LoadedFile) -> Option<&Spanned<String>>,
    key: &'static str,
    default: &str,
) -> Setting<String> {
    pick(given, loaded, in_file, key)
        .unwrap_or_else(|| Setting::new(default.to_string(), Origin::Default(key)))
}

/// What flags, environment and pipeline file say before any date is known: enough for
/// the commands that run nothing (`check-config`, `status`).
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    pub pipeline: String,
    pub timezone: Tz,
    /// The raw input's path template, if a flag, variable or the file gave one.
    pub raw: Option<Setting<String>>,
    /// The feature prefix's template, if a flag, variable or the file gave one.
    pub features: Option<Setting<String>>,
    /// `min_files`, if a flag, variable or the file gave it (checked to be at least 1).
    pub min_files: Option<Setting<u64>>,
    /// `require_marker`, if given (checked to be a file name).
    pub require_marker: Option<Setting<String>>,
    /// The files each version holds, checked against the feature columns.
    pub output: Setting<OutputFormats>,
    /// The pipeline file, when there is one.
    pub pipeline_file: Option<PathBuf>,
    /// SHA-256 of the pipeline file as read (recorded in `metadata.json`).
    pub pipeline_file_sha256: Option<String>,
    /// S3 connection settings, with the checked `--endpoint-url`.
    pub s3: S3Options,
    pub spec: PipelineSpec,
}

impl PipelineSettings {
    /// The feature prefix, required (for `status`): rendered, and refused if it changes
    /// with the execution date, since then there is no one prefix to look at.
    pub fn fixed_prefix(&self) -> Result<Setting<StorageUri>> {
        let Some(template) = &self.features else {
            return Err(Error::Usage(missing_paths(false, true, self)));
        };
        let now = ExecutionDate::now(self.timezone);
        let rendered = location(template, &now)?;
        let other = ExecutionDate::local(chrono::NaiveDateTime::default(), self.timezone);
        if location(template, &other)?.value != rendered.value {
            return Err(at(
                &template.origin,
                format!(
                    "{:?} changes with the execution date; give the prefix itself (--features)",
                    shorten(&template.value)
                ),
            ));
        }
        Ok(rendered)
    }
}

/// Reads the pipeline file and picks name, zone, path templates and spec.
pub fn resolve_pipeline(flags: &Flags) -> Result<PipelineSettings> {
    let loaded = match &flags.config {
        Some(config) => Some(pipeline_file::load(&config.value, &config.origin)?),
        None => None,
    };
    let file = loaded.as_ref();
    let name = pick_or(
        &flags.pipeline,
        file,
        |l| l.file.name.as_ref(),
        "name",
        DEFAULT_PIPELINE,
    );
    validate_pipeline_name(&name)?;
    let tz_name = pick_or(
        &flags.timezone,
        file,
        |l| l.file.timezone.as_ref(),
        "timezone",
        DEFAULT_TIMEZONE.name(),
    );
    let timezone = parse_timezone(&tz_name.value).map_err(|e| at(&tz_name.origin, e))?;
    let raw = pick(
        &flags.raw,
        file,
        |l| l.file.source.as_ref()?.path.as_ref(),
        "[source] path",
    );
    let features = pick(
        &flags.features,
        file,
        |l| l.file.output.as_ref()?.prefix.as_ref(),
        "[output] prefix",
    );
    let mut s3 = flags.s3.clone();
    if let Some(url) = &flags.endpoint_url {
        check_endpoint_url(url)?;
        s3.endpoint_url = Some(url.value.clone());
    }
    // Entity grain's; parsed whatever the grain, so that a bad value is never ignored.
    let budget = pick_or(
        &flags.memory_budget,
        file,
        |l| l.file.features.as_ref()?.memory_budget.as_ref(),
        MEMORY_BUDGET_KEY,
        DEFAULT_MEMORY_BUDGET,
    );
    let budget = MemoryBudget {
        bytes: parse_memory_size(&budget.value).map_err(|e| at(&budget.origin, e))?,
        origin: budget.origin,
    };
    let output = output_formats(flags, file)?;
    let min_files = min_files(flags, file)?;
    let require_marker = require_marker(flags, file)?;
    let pipeline_file = loaded.as_ref().map(|l| l.path.clone());
    let pipeline_file_sha256 = loaded.as_ref().map(|l| l.sha256());
    let mut spec = match loaded {
        Some(l) => l.spec,
        None => PipelineSpec::built_in(),
    };
    if let Features::Entities(entity) = &mut spec.features {
        entity.memory_budget = budget;
    }
    if output.value.parquet {
        if let Some(conflict) = parquet_columns_conflict(&spec.features.columns()) {
            return Err(at(&output.origin, conflict));
        }
    }
    Ok(PipelineSettings {
        pipeline: name.value,
        timezone,
        raw,
        features,
        min_files,
        require_marker,
        output,
        pipeline_file,
        pipeline_file_sha256,
        s3,
        spec,
    })
}

/// Turns flags into validated settings.
pub fn resolve(flags: &Flags, when: &When, rerun: Rerun) -> Result<RunSettings> {
    let p = resolve_pipeline(flags)?;
    let timezone = p.timezone;
    let execution_date = match when {
        When::Given(Some(date)) => {
            ExecutionDate::parse(&date.value, timezone).map_err(|e| at(&date.origin, e))?
        }
        When::Given(None) => ExecutionDate::now(timezone),
        When::Local(local) => ExecutionDate::local(*local, timezone),
    };

    // A bad value is reported before a missing one.
    let raw = p
        .raw
        .as_ref()
        .map(|t| raw_location(t, &execution_date))
        .transpose()?;
    let (raw, raw_parts) = match raw {
        Some((raw, parts)) => (Some(raw), parts),
        None => (None, None),
    };
    let features = p
        .features
        .as_ref()
        .map(|t| location(t, &execution_date))
        .transpose()?;
    let (Some(raw), Some(features)) = (raw, features) else {
        return Err(Error::Usage(missing_paths(
            p.raw.is_none(),
            p.features.is_none(),
            &p,
        )));
    };
    let min_files = match p.min_files {
        Some(m) if raw_parts.is_none() => {
            return Err(at(
                &m.origin,
                "min_files needs a raw path that names many files: a glob \
                 (raw/{ds}/part-*.csv.gz) or a folder ending in /",
            ))
        }
        Some(m) => m,
        None => Setting::new(1, Origin::Default("min_files")),
    };
    let templates = Templates {
        raw: p.raw.map(|t| t.value).unwrap_or_default(),
        features: p.features.map(|t| t.value).unwrap_or_default(),
    };

    Ok(RunSettings {
        pipeline: p.pipeline,
        timezone,
        execution_date,
        execution_date_is_now: matches!(when, When::Given(None)),
        raw_parts,
        min_files,
        require_marker: p.require_marker,
        output: p.output,
        raw,
        features,
        templates,
        pipeline_file: p.pipeline_file,
        pipeline_file_sha256: p.pipeline_file_sha256,
        dry_run: flags.dry_run,
        rerun: if flags.force { Rerun::Always } else { rerun },
        skip_if_missing: flags.skip_if_missing,
        lease_ttl: flags.lease_ttl,
        s3: p.s3,
        spec: p.spec,
    })
}

/// The sentence for a run that was not told where to read or where to write: every
/// place the path could have come from.
fn missing_paths(raw: bool, features: bool, p: &PipelineSettings) -> String {
    let mut missing = Vec::new();
    let mut keys = Vec::new();
    if raw {
        missing.push(
            "no raw input: give --raw, set DP_RAW_PATH, or set the pipeline file's \
             [source] path",
        );
        keys.push("[source] path");
    }
    if features {
        missing.push(
            "no feature prefix: give --features, set DP_FEATURE_PATH, or set the \
             pipeline file's [output] prefix",
        );
        keys.push("[output] prefix");
    }
    let file = match &p.pipeline_file {
        Some(path) => format!("{} sets no {}", path.display(), keys.join(" and no ")),
        None => "no pipeline file was given (--config or DP_CONFIG)".to_string(),
    };
    format!("{} ({file})", missing.join("; "))
}

/// The raw input's location (a file, not a folder), and the pattern when it names many
/// files (a glob or a folder ending in `/`).
fn raw_location(
    template: &Setting<String>,
    date: &ExecutionDate,
) -> Result<(Setting<StorageUri>, Option<ObjectPattern>)> {
    let raw = location(template, date)?;
    let parts = raw_pattern(template, date)?;
    if let (StorageUri::Local(path), None) = (&raw.value, &parts) {
        if path.as_os_str().is_empty() || raw.value.split_last().1.is_empty() {
            return Err(Error::Usage(format!(
                "{}: {:?} names a folder, not a file",
                raw.origin,
                shorten(&template.value)
            )));
        }
    }
    Ok((raw, parts))
}

/// The rendered raw location as a many-file pattern, when it is one.
fn raw_pattern(template: &Setting<String>, date: &ExecutionDate) -> Result<Option<ObjectPattern>> {
    let rendered = date
        .render(&template.value)
        .map_err(|e| at(&template.origin, e))?;
    if !names_many(&rendered) {
        return Ok(None);
    }
    ObjectPattern::parse(&rendered)
        .map(Some)
        .map_err(|e| at(&template.origin, e))
}

/// `min_files`: flag or variable, else the pipeline file, else none (a default of 1 is
/// applied once the raw path is known to name many files).
fn min_files(flags: &Flags, file: Option<&LoadedFile>) -> Result<Option<Setting<u64>>> {
    let source = file.and_then(|l| Some((l, l.file.source.as_ref()?)));
    let min_files = match (&flags.min_files, source) {
        (Some(given), _) => Some(given.clone()),
        (None, Some((l, s))) => s
            .min_files
            .as_ref()
            .map(|v| Setting::new(*v.get_ref(), l.origin(v.span(), "[source] min_files"))),
        (None, None) => None,
    };
    if let Some(m) = &min_files {
        if m.value == 0 {
            return Err(at(&m.origin, "min_files must be at least 1"));
        }
    }
    Ok(min_files)
}

/// `require_marker`: flag or variable, else the pipeline file, else none; a file name.
fn require_marker(flags: &Flags, file: Option<&LoadedFile>) -> Result<Option<Setting<String>>> {
    let source = file.and_then(|l| Some((l, l.file.source.as_ref()?)));
    let marker = match (&flags.require_marker, source) {
        (Some(given), _) => Some(given.clone()),
        (None, Some((l, s))) => s.require_marker.as_ref().map(|v| {
            Setting::new(
                v.get_ref().clone(),
                l.origin(v.span(), "[source] require_marker"),
            )
        }),
        (None, None) => None,
    };
    if let Some(m) = &marker {
        let name = m.value.as_str();
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(at(
                &m.origin,
                format!(
                    "require_marker {:?} must be a file name such as \"_SUCCESS\" (it is \
                     looked for beside the raw files)",
                    shorten(name)
                ),
            ));
        }
    }
    Ok(marker)
}

/// `--output-formats` / `DP_OUTPUT_FORMATS` (comma-separated), else the pipeline file's
/// `[output] formats`, else `feature.csv` only.
fn output_formats(flags: &Flags, file: Option<&LoadedFile>) -> Result<Setting<OutputFormats>> {
    if let Some(given) = &flags.output_formats {
        let formats =
            OutputFormats::from_names(given.value.split(',')).map_err(|e| at(&given.origin, e))?;
        return Ok(Setting::new(formats, given.origin.clone()));
    }
    let in_file = file.and_then(|l| Some((l, l.file.output.as_ref()?.formats.as_ref()?)));
    if let Some((loaded, spanned)) = in_file {
        let origin = loaded.origin(spanned.span(), "[output] formats");
        let formats = OutputFormats::from_names(spanned.get_ref().iter().map(String::as_str))
            .map_err(|e| at(&origin, e))?;
        return Ok(Setting::new(formats, origin));
    }
    Ok(Setting::new(
        OutputFormats::default(),
        Origin::Default("[output] formats"),
    ))
}

/// The pipeline name as best known when settings cannot be resolved (for the log line of
/// a run that fails to start): the flag, else the pipeline file's `name` if the file can
/// be read, else the default.
pub fn pipeline_name_hint(flags: &Flags) -> String {
    if let Some(name) = &flags.pipeline {
        return shorten(&name.value);
    }
    flags
        .config
        .as_ref()
        .and_then(|c| pipeline_file::name_in(&c.value))
        .map(|n| shorten(&n))
        .unwrap_or_else(|| DEFAULT_PIPELINE.to_string())
}

/// An error about a value, prefixed with where it came from.
fn at(origin: &Origin, problem: impl std::fmt::Display) -> Error {
    Error::Usage(format!("{origin}: {problem}"))
}

/// Renders a path template for the execution date and parses it as a storage URI.
fn location(template: &Setting<String>, date: &ExecutionDate) -> Result<Setting<StorageUri>> {
    let rendered = date
        .render(&template.value)
        .map_err(|e| at(&template.origin, e))?;
    let uri = StorageUri::parse(&rendered).map_err(|e| at(&template.origin, e))?;
    Ok(Setting::new(uri, template.origin.clone()))
}

/// Pipeline names go into log lines and paths: keep them to a safe alphabet.
fn validate_pipeline_name(name: &Setting<String>) -> Result<()> {
    let n = &name.value;
    let ok = !n.is_empty()
        && n.len() <= 128
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(at(
            &name.origin,
            format!(
                "pipeline name {:?} may only use letters, digits, '_', '-' and '.' (at most 128)",
                shorten(n)
            ),
        ))
    }
}

/// An S3 endpoint is an http(s) URL without credentials: they would be signed into the
/// Host header (so they can never work) and could leak into debug logs.
fn check_endpoint_url(url: &Setting<String>) -> Result<()> {
    let text = &url.value;
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"));
    let Some(rest) = rest else {
        return Err(at(
            &url.origin,
            format!(
                "{:?} must start with http:// or https://",
                crate::log::redact::redact(&shorten(text))
            ),
        ));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(at(
            &url.origin,
            "must not hold a user name or password (credentials come from the AWS chain: \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ...)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the paths given (as flags): what every run needs.
    fn flags() -> Flags {
        Flags {
            config: None,
            raw: flag("--raw", "fixtures/user_events_{ds_nodash}.csv"),
            features: flag("--features", "out"),
            ..Flags::only_file(Setting::new(PathBuf::new(), Origin::Default("file")))
        }
    }

    fn flag(name: &str, value: &str) -> Option<Setting<String>> {
        Some(Setting::new(value.to_string(), Origin::Flag(name.into())))
    }

    fn env(name: &str, value: &str) -> Option<Setting<String>> {
        Some(Setting::new(value.to_string(), Origin::Env(name.into())))
    }

    fn date() -> When {
        When::Given(Some(Setting::new(
            "2025-11-19".into(),
            Origin::Flag("--execution-date".into()),
        )))
    }

    fn error(flags: &Flags) -> String {
        match resolve(flags, &date(), Rerun::IfIncomplete) {
            Err(Error::Usage(m)) => m,
            Err(e) => panic!("not a usage error: {e}"),
            Ok(_) => panic!("resolved"),
        }
    }

    fn pipeline_file(text: &str) -> (tempfile::TempDir, Option<Setting<PathBuf>>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.toml");
        std::fs::write(&path, text).unwrap();
        let origin = Origin::Flag("--config".into());
        (dir, Some(Setting::new(path, origin)))
    }

    #[test]
    fn defaults_apply_to_name_and_zone_only() {
        let s = resolve(&flags(), &date(), Rerun::IfIncomplete).unwrap();
        assert_eq!(s.pipeline, DEFAULT_PIPELINE);
        assert_eq!(s.timezone, DEFAULT_TIMEZONE);
        assert_eq!(s.version_id(), "v_20251119T000000");
        assert!(!s.execution_date_is_now);
        assert_eq!(s.raw.origin, Origin::Flag("--raw".into()));
        assert_eq!(
            s.raw.value,
            StorageUri::Local("fixtures/user_events_20251119.csv".into())
        );
        assert_eq!(s.spec, PipelineSpec::built_in());
    }

    #[test]
    fn a_run_without_paths_names_every_place_to_give_them() {
        let mut f = flags();
        f.raw = None;
        let m = error(&f);
        for needle in ["--raw", "DP_RAW_PATH", "[source] path", "--config"] {
            assert!(m.contains(needle), "{needle}: {m}");
        }
        assert!(!m.contains("--features"), "{m}");

        f.features = None;
        let m = error(&f);
        for needle in ["--raw", "DP_FEATURE_PATH", "[output] prefix"] {
            assert!(m.contains(needle), "{needle}: {m}");
        }

        // A pipeline file without the keys is named too.
        let (_dir, config) = pipeline_file("name = \"orders\"\n");
        let mut f = flags();
        f.features = None;
        f.config = config;
        let m = error(&f);
        assert!(m.contains("orders.toml sets no [output] prefix"), "{m}");
        assert!(m.contains("DP_FEATURE_PATH"), "{m}");
    }

    #[test]
    fn no_execution_date_means_now_and_says_so() {
        let s = resolve(&flags(), &When::Given(None), Rerun::IfIncomplete).unwrap();
        assert!(s.execution_date_is_now);
    }

    #[test]
    fn status_needs_a_prefix_that_does_not_change_with_the_date() {
        let p = resolve_pipeline(&flags()).unwrap();
        assert_eq!(
            p.fixed_prefix().unwrap().value,
            StorageUri::Local("out".into())
        );
        let mut f = flags();
        f.features = flag("--features", "out/{ds}");
        let e = resolve_pipeline(&f).unwrap().fixed_prefix().unwrap_err();
        assert!(e.to_string().starts_with("--features: "), "{e}");
        f.features = None;
        let e = resolve_pipeline(&f).unwrap().fixed_prefix().unwrap_err();
        assert!(e.to_string().contains("DP_FEATURE_PATH"), "{e}");
    }

    #[test]
    fn a_flag_beats_the_pipeline_file_and_the_file_beats_the_default() {
        let (_dir, config) = pipeline_file(
            "name = \"orders\"\ntimezone = \"UTC\"\n[source]\npath = \"in/{ds}.csv\"\n",
        );
        let mut f = flags();
        f.config = config;
        f.raw = None;
        f.timezone = env("DP_TIMEZONE", "Asia/Tokyo");
        let s = resolve(&f, &date(), Rerun::IfIncomplete).unwrap();
        assert_eq!(s.pipeline, "orders");
        assert_eq!(s.timezone.name(), "Asia/Tokyo");
        assert_eq!(s.raw.value, StorageUri::Local("in/2025-11-19.csv".into()));
        assert!(
            matches!(
                &s.raw.origin,
                Origin::File {
                    line: 4,
                    key: "[source] path",
                    ..
                }
            ),
            "{:?}",
            s.raw.origin
        );
        assert_eq!(s.features.origin, Origin::Flag("--features".into()));
    }

    #[test]
    fn errors_name_the_flag_the_variable_or_the_file_line() {
        let mut f = flags();
        f.timezone = flag("--timezone", "Mars/Base");
        let m = error(&f);
        assert!(m.starts_with("--timezone: \"Mars/Base\""), "{m}");

        let mut f = flags();
        f.timezone = env("DP_TIMEZONE", "Mars/Base");
        assert!(error(&f).starts_with("DP_TIMEZONE: "));

        let (_dir, config) = pipeline_file("name = \"ok\"\n\n\ntimezone = \"Mars/Base\"\n");
        let mut f = flags();
        f.config = config;
        let m = error(&f);
        assert!(m.contains("orders.toml line 4: timezone: "), "{m}");

        let (_dir, config) = pipeline_file("name = \"not ok\"\n");
        let mut f = flags();
        f.config = config;
        let m = error(&f);
        assert!(m.contains("orders.toml line 1: name: "), "{m}");

        let (_dir, config) = pipeline_file("[source]\npath = \"gs://b/x.csv\"\n");
        let mut f = flags();
        f.config = config;
        f.raw = None;
        let m = error(&f);
        assert!(m.contains("orders.toml line 2: [source] path: "), "{m}");

        let mut f = flags();
        f.features = flag("--features", "out/{ds");
        assert!(error(&f).starts_with("--features: "));
    }

    #[test]
    fn a_long_bad_value_is_not_echoed_whole() {
        let mut f = flags();
        f.pipeline = flag("--pipeline", &"x ".repeat(5_000_000));
        let m = error(&f);
        assert!(m.len() < 300, "{} bytes", m.len());
    }

    #[test]
    fn endpoint_urls_with_credentials_are_refused() {
        let mut f = flags();
        f.endpoint_url = flag("--endpoint-url", "http://admin:hunter2@localhost:9000");
        let m = error(&f);
        assert!(m.starts_with("--endpoint-url: must not hold"), "{m}");
        assert!(!m.contains("hunter2"));
        let mut f = flags();
        f.endpoint_url = flag("--endpoint-url", "localhost:9000");
        assert!(error(&f).contains("http://"));
    }

    #[test]
    fn the_name_hint_reads_the_pipeline_file() {
        let (_dir, config) = pipeline_file("name = \"orders\"\ntimezone = \"Mars/Base\"\n");
        let mut f = flags();
        f.config = config;
        assert_eq!(pipeline_name_hint(&f), "orders");
        f.pipeline = flag("--pipeline", "given");
        assert_eq!(pipeline_name_hint(&f), "given");
    }
}
