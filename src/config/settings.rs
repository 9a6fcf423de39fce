//! Resolves flags, environment, pipeline file and built-in defaults into one validated
//! [`RunSettings`]. Precedence: flag > environment (the command line layer tells which of
//! the two gave a value) > pipeline file > built-in default. Each value keeps its
//! [`Origin`], and every error names it (`--timezone`, `DP_TIMEZONE`,
//! `orders.toml line 4: timezone`). `run`, `backfill` and `check-config` all resolve
//! through [`resolve`].

use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;
use toml::Spanned;

use super::origin::{Origin, Setting};
use super::pipeline_file::{self, LoadedFile};
use super::spec::{parquet_columns_conflict, OutputFormats, PipelineSpec, DEFAULT_PIPELINE};
use crate::error::{Error, Result};
use crate::storage::pattern::{names_many, ObjectPattern};
use crate::storage::s3::S3Options;
use crate::storage::StorageUri;
use crate::values::execution_date::{parse_timezone, ExecutionDate, DEFAULT_TIMEZONE};
use crate::values::shorten;

/// Built-in raw input: the bundled fixture, so a fresh checkout runs with no setup.
pub const DEFAULT_RAW: &str = "fixtures/user_events_{ds_nodash}.csv";
/// Built-in output prefix: a local folder beside the checkout.
pub const DEFAULT_FEATURES: &str = "out/features/daily_user_events";

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

impl Flags {
    /// Nothing given but a pipeline file: what `check-config` checks.
    pub fn only_file(file: Setting<PathBuf>) -> Self {
        Flags {
            raw: None,
            features: None,
            pipeline: None,
            timezone: None,
            config: Some(file),
            endpoint_url: None,
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

/// The value a flag or variable gave, else the pipeline file's (with its line), else the
/// built-in default: the one place for that precedence.
fn pick(
    given: &Option<Setting<String>>,
    loaded: Option<&LoadedFile>,
    in_file: impl Fn(&LoadedFile) -> Option<&Spanned<String>>,
    key: &'static str,
    default: &str,
) -> Setting<String> {
    if let Some(given) = given {
        return given.clone();
    }
    if let Some(loaded) = loaded {
        if let Some(spanned) = in_file(loaded) {
            return Setting::new(
                spanned.get_ref().clone(),
                loaded.origin(spanned.span(), key),
            );
        }
    }
    Setting::new(default.to_string(), Origin::Default(key))
}

/// Turns flags into validated settings.
pub fn resolve(flags: &Flags, when: &When, rerun: Rerun) -> Result<RunSettings> {
    let loaded = match &flags.config {
        Some(config) => Some(pipeline_file::load(&config.value, &config.origin)?),
        None => None,
    };
    let file = loaded.as_ref();
    let name = pick(
        &flags.pipeline,
        file,
        |l| l.file.name.as_ref(),
        "name",
        DEFAULT_PIPELINE,
    );
    validate_pipeline_name(&name)?;

    let tz_name = pick(
        &flags.timezone,
        file,
        |l| l.file.timezone.as_ref(),
        "timezone",
        DEFAULT_TIMEZONE.name(),
    );
    let timezone = parse_timezone(&tz_name.value).map_err(|e| at(&tz_name.origin, e))?;
    let execution_date = match when {
        When::Given(Some(date)) => {
            ExecutionDate::parse(&date.value, timezone).map_err(|e| at(&date.origin, e))?
        }
        When::Given(None) => ExecutionDate::now(timezone),
        When::Local(local) => ExecutionDate::local(*local, timezone),
    };

    let raw_template = pick(
        &flags.raw,
        file,
        |l| l.file.source.as_ref()?.path.as_ref(),
        "[source] path",
        DEFAULT_RAW,
    );
    let raw = location(&raw_template, &execution_date)?;
    let raw_parts = raw_pattern(&raw_template, &execution_date)?;
    if let (StorageUri::Local(path), None) = (&raw.value, &raw_parts) {
        if path.as_os_str().is_empty() || raw.value.split_last().1.is_empty() {
            return Err(Error::Usage(format!(
                "{}: {:?} names a folder, not a file",
                raw.origin,
                shorten(&raw_template.value)
            )));
        }
    }
    let (min_files, require_marker) = drop_checks(flags, file, raw_parts.is_some())?;
    let features_template = pick(
        &flags.features,
        file,
        |l| l.file.output.as_ref()?.prefix.as_ref(),
        "[output] prefix",
        DEFAULT_FEATURES,
    );
    let features = location(&features_template, &execution_date)?;

    let spec = match &loaded {
        Some(l) => l.spec.clone(),
        None => PipelineSpec::built_in(),
    };
    let output = output_formats(flags, file)?;
    if output.value.parquet {
        if let Some(conflict) = parquet_columns_conflict(&spec.features.columns()) {
            return Err(at(&output.origin, conflict));
        }
    }

    let mut s3 = flags.s3.clone();
    if let Some(url) = &flags.endpoint_url {
        check_endpoint_url(url)?;
        s3.endpoint_url = Some(url.value.clone());
    }

    Ok(RunSettings {
        pipeline: name.value,
        timezone,
        execution_date,
        raw,
        raw_parts,
        min_files,
        require_marker,
        features,
        output,
        templates: Templates {
            raw: raw_template.value,
            features: features_template.value,
        },
        pipeline_file: loaded.as_ref().map(|l| l.path.clone()),
        dry_run: flags.dry_run,
        rerun: if flags.force { Rerun::Always } else { rerun },
        skip_if_missing: flags.skip_if_missing,
        lease_ttl: flags.lease_ttl,
        s3,
        spec,
    })
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

/// `min_files` and `require_marker`: flag or variable, else the pipeline file, else none.
fn drop_checks(
    flags: &Flags,
    file: Option<&LoadedFile>,
    many: bool,
) -> Result<(Setting<u64>, Option<Setting<String>>)> {
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
        if !many {
            return Err(at(
                &m.origin,
                "min_files needs a raw path that names many files: a glob \
                 (raw/{ds}/part-*.csv.gz) or a folder ending in /",
            ));
        }
    }
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
    let min_files = min_files.unwrap_or_else(|| Setting::new(1, Origin::Default("min_files")));
    Ok((min_files, marker))
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

    fn flags() -> Flags {
        Flags {
            config: None,
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
    fn defaults_apply_when_nothing_is_given() {
        let s = resolve(&flags(), &date(), Rerun::IfIncomplete).unwrap();
        assert_eq!(s.pipeline, DEFAULT_PIPELINE);
        assert_eq!(s.timezone, DEFAULT_TIMEZONE);
        assert_eq!(s.version_id(), "v_20251119T000000");
        assert_eq!(s.raw.origin, Origin::Default("[source] path"));
        assert_eq!(
            s.raw.value,
            StorageUri::Local("fixtures/user_events_20251119.csv".into())
        );
        assert_eq!(s.spec, PipelineSpec::built_in());
    }

    #[test]
    fn a_flag_beats_the_pipeline_file_and_the_file_beats_the_default() {
        let (_dir, config) = pipeline_file(
            "name = \"orders\"\ntimezone = \"UTC\"\n[source]\npath = \"in/{ds}.csv\"\n",
        );
        let mut f = flags();
        f.config = config;
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
        assert_eq!(s.features.origin, Origin::Default("[output] prefix"));
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
