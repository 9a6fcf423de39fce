//! `featurepipe versions list | show | diff`: what a prefix holds, one version in full,
//! and two versions side by side. Read-only, from the documents alone
//! (`versions::catalog`, `versions::compare`): no feature file is ever read.

use chrono::DateTime;
use chrono_tz::Tz;
use clap::{ArgMatches, Args, Subcommand};
use serde_json::{json, Value};

use super::args::Sources;
use super::output::{self, human_bytes, plain, plural, ReportFormat, DASH};
use super::prefix::{self, LocationArgs, Prefix};
use crate::config::PipelineSettings;
use crate::error::{Error, Finished, Result};
use crate::log::{self, LogFormat};
use crate::versions::catalog::{self, Documents, Entry, Listing};
use crate::versions::compare::{self, VersionDiff};
use crate::versions::documents::Change;
use crate::versions::schema_diff::ColumnChanges;

#[derive(Debug, Clone, Args)]
pub struct VersionsArgs {
    #[command(subcommand)]
    pub command: VersionsCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum VersionsCommand {
    /// Every version: complete or not, execution date, created_at, rows, null rate, size,
    /// and which one _latest names
    #[command(after_help = LIST_AFTER_HELP)]
    List(ListArgs),
    /// One version: schema, metadata summary, validation results, profile, what produced
    /// it and the run that wrote it
    #[command(after_help = SHOW_AFTER_HELP)]
    Show(ShowArgs),
    /// Two versions side by side: schema, rows, null rate, per-column profile changes and
    /// whether the producing pipeline changed
    #[command(after_help = DIFF_AFTER_HELP)]
    Diff(DiffArgs),
}

pub const VERSIONS_AFTER_HELP: &str = "\
Examples:
  featurepipe versions list --features s3://feature-bucket/features/daily_user_events
  featurepipe versions show latest --config pipeline.toml
  featurepipe versions diff --config pipeline.toml --output json";

const LIST_AFTER_HELP: &str = "\
Reads each version's _SUCCESS and metadata.json (never feature.csv). A version is complete
when its _SUCCESS lists files that are all there with their sizes; an incomplete one says why,
and who is writing it if a run holds its lease.

Examples:
  featurepipe versions list --features s3://feature-bucket/features/daily_user_events
  featurepipe versions list --config pipeline.toml --output json
  DP_FEATURE_PATH=out/features/daily_user_events featurepipe versions list";

const SHOW_AFTER_HELP: &str = "\
VERSION is a version id (v_20251119T000000), a unique start of one (v_20251119, 20251119,
2025-11-19), or latest.

Examples:
  featurepipe versions show latest --features s3://feature-bucket/features/daily_user_events
  featurepipe versions show 2025-11-19 --config pipeline.toml
  featurepipe versions show v_20251119T000000 --output json --config pipeline.toml";

const DIFF_AFTER_HELP: &str = "\
Without versions: the complete version before latest, against latest. With one: that one
against latest. Both must be complete. Changes are B minus A (relative: to the size of A).

Examples:
  featurepipe versions diff --features s3://feature-bucket/features/daily_user_events
  featurepipe versions diff 2025-11-01 2025-11-19 --config pipeline.toml
  featurepipe versions diff v_20251118T000000 --output json --config pipeline.toml";

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// How the report is printed on stdout
    #[arg(long, env = "DP_VERSIONS_OUTPUT", value_enum, default_value_t = ReportFormat::Table)]
    pub output: ReportFormat,

    #[command(flatten)]
    pub location: LocationArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    /// The version: v_20251119T000000, a unique start of one (2025-11-19), or latest
    #[arg(value_name = "VERSION")]
    pub version: String,

    /// How the report is printed on stdout
    #[arg(long, env = "DP_VERSIONS_OUTPUT", value_enum, default_value_t = ReportFormat::Table)]
    pub output: ReportFormat,

    #[command(flatten)]
    pub location: LocationArgs,
}

#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// The older version [default: the complete version before B]
    #[arg(value_name = "A")]
    pub a: Option<String>,

    /// The newer version [default: latest]
    #[arg(value_name = "B")]
    pub b: Option<String>,

    /// How the report is printed on stdout
    #[arg(long, env = "DP_VERSIONS_OUTPUT", value_enum, default_value_t = ReportFormat::Table)]
    pub output: ReportFormat,

    #[command(flatten)]
    pub location: LocationArgs,
}

/// A versions subcommand with its settings resolved (or the reason they could not be).
pub struct Prepared {
    command: VersionsCommand,
    settings: Result<PipelineSettings>,
}

/// Resolves the prefix's settings; `matches` and `definition` are `versions`' own (its
/// subcommand's flags carry their origins). Errors wait until logging is set up.
pub fn prepare(args: VersionsArgs, matches: &ArgMatches, definition: &clap::Command) -> Prepared {
    let settings = match matches.subcommand() {
        Some((name, sub_matches)) => match definition.find_subcommand(name) {
            Some(sub_definition) => {
                let sources = Sources::new(sub_matches, sub_definition);
                location(&args.command).resolve(&sources)
            }
            None => Err(Error::Internal(format!("no definition of versions {name}"))),
        },
        None => Err(Error::Internal("no versions subcommand was parsed".into())),
    };
    Prepared {
        command: args.command,
        settings,
    }
}

fn location(command: &VersionsCommand) -> &LocationArgs {
    match command {
        VersionsCommand::List(a) => &a.location,
        VersionsCommand::Show(a) => &a.location,
        VersionsCommand::Diff(a) => &a.location,
    }
}

impl Prepared {
    /// How to log: the chosen format, in the pipeline's zone.
    pub fn log_setup(&self) -> (LogFormat, Tz) {
        location(&self.command).log_setup(&self.settings)
    }

    pub fn execute(self) -> Result<Finished> {
        let settings = self.settings?;
        let output = match &self.command {
            VersionsCommand::List(a) => a.output,
            VersionsCommand::Show(a) => a.output,
            VersionsCommand::Diff(a) => a.output,
        };
        let runtime = super::runtime()?;
        let text = runtime.block_on(async {
            let prefix = prefix::open(settings).await?;
            let listing = catalog::list(prefix.store.clone()).await?;
            match &self.command {
                VersionsCommand::List(_) => Ok(list(&prefix, &listing, output)),
                VersionsCommand::Show(a) => show(&prefix, &listing, &a.version, output).await,
                VersionsCommand::Diff(a) => {
                    diff(&prefix, &listing, a.a.as_deref(), a.b.as_deref(), output).await
                }
            }
        })?;
        log::stdout(&text);
        Ok(Finished::success())
    }
}

fn list(prefix: &Prefix, listing: &Listing, output: ReportFormat) -> String {
    let latest = listing.latest.as_ref().map(|l| l.feature_version.clone());
    if output == ReportFormat::Json {
        let doc = json!({
            "prefix": prefix.uri(),
            "latest": latest,
            "versions": listing.versions,
        });
        return pretty(&doc);
    }
    let mut rows = vec![[
        "version",
        "status",
        "execution_date",
        "created_at",
        "rows",
        "null_rate",
        "size",
        "latest",
        "note",
    ]
    .map(String::from)
    .to_vec()];
    for e in &listing.versions {
        rows.push(vec![
            e.version.clone(),
            status(e).to_string(),
            e.summary
                .execution_date
                .as_deref()
                .map_or_else(|| DASH.into(), short_time),
            e.summary
                .created_at
                .as_deref()
                .map_or_else(|| DASH.into(), short_time),
            opt(e.summary.rows),
            e.summary
                .null_rate
                .map_or_else(|| DASH.into(), |r| format!("{r:.4}")),
            human_bytes(e.size_bytes),
            if e.latest { "*".into() } else { String::new() },
            e.writing
                .as_deref()
                .map(|w| format!("being written by {w}"))
                .or_else(|| e.incomplete.clone())
                .unwrap_or_default(),
        ]);
    }
    let complete = listing.versions.iter().filter(|e| e.complete).count();
    let bytes: u64 = listing.versions.iter().map(|e| e.size_bytes).sum();
    let mut out = output::table(&rows);
    out.push_str(&format!(
        "\n{} under {}: {complete} complete, {} incomplete, {}; _latest: {}\n",
        plural(listing.versions.len() as u64, "version", "versions"),
        prefix.uri(),
        listing.versions.len() - complete,
        human_bytes(bytes),
        latest.as_deref().unwrap_or("none"),
    ));
    out
}

async fn show(
    prefix: &Prefix,
    listing: &Listing,
    wanted: &str,
    output: ReportFormat,
) -> Result<String> {
    let version = pick(listing, wanted)?;
    let latest = listing.get(&version).is_some_and(|e| e.latest);
    let docs = catalog::documents(prefix.store.as_ref(), &version, latest).await?;
    let meta = docs.metadata.clone().unwrap_or(Value::Null);
    let summary_keys = [
        "pipeline_name",
        "execution_date",
        "created_at",
        "run_id",
        "source_raw_path",
        "rows_raw",
        "rows_feature",
        "raw_null_rate",
        "raw_valid",
        "feature_groups",
        "source",
    ];
    let summary: serde_json::Map<String, Value> = summary_keys
        .iter()
        .filter_map(|k| Some((k.to_string(), meta.get(*k)?.clone())))
        .collect();
    if output == ReportFormat::Json {
        let doc = json!({
            "version": docs.entry.version,
            "complete": docs.entry.complete,
            "incomplete": docs.entry.incomplete,
            "latest": docs.entry.latest,
            "size_bytes": docs.entry.size_bytes,
            "schema": docs.schema,
            "metadata": summary,
            "validation": meta.get("validation"),
            "profile": meta.get("profile"),
            "drift": meta.get("drift"),
            "producer": meta.get("producer"),
            "tool": meta.get("tool"),
            "run": docs.run,
        });
        return Ok(pretty(&doc));
    }
    Ok(show_table(&docs, &meta))
}

/// `versions show` as text: a summary, then schema, validation and profile tables.
fn show_table(docs: &Documents, meta: &Value) -> String {
    let e = &docs.entry;
    let text = |v: &Value, key: &str| v.get(key).map_or_else(|| DASH.to_string(), plain);
    let mut state = status(e).to_string();
    if e.latest {
        state.push_str(", _latest");
    }
    if let Some(why) = e
        .writing
        .as_deref()
        .map(|w| format!("being written by {w}"))
        .or_else(|| e.incomplete.clone())
    {
        state.push_str(&format!(": {why}"));
    }
    let mut head = vec![
        vec!["version".to_string(), format!("{} ({state})", e.version)],
        vec!["pipeline".into(), text(meta, "pipeline_name")],
        vec!["execution_date".into(), text(meta, "execution_date")],
        vec!["created_at".into(), text(meta, "created_at")],
        vec![
            "rows".into(),
            format!(
                "{} raw, {} in feature.csv",
                text(meta, "rows_raw"),
                text(meta, "rows_feature")
            ),
        ],
        vec![
            "null_rate".into(),
            meta.get("raw_null_rate")
                .and_then(Value::as_f64)
                .map_or_else(|| DASH.into(), |r| format!("{r:.4}")),
        ],
        vec!["valid".into(), text(meta, "raw_valid")],
        vec![
            "size".into(),
            format!(
                "{} in {}",
                human_bytes(e.size_bytes),
                plural(e.objects as u64, "object", "objects")
            ),
        ],
        vec!["source".into(), text(meta, "source_raw_path")],
    ];
    if let Some(p) = meta.get("producer") {
        let file = match (
            p.get("pipeline_file").and_then(Value::as_str),
            p.get("pipeline_file_sha256").and_then(Value::as_str),
        ) {
            (Some(f), Some(sha)) => format!("{f} (sha256 {})", short_hash(sha)),
            _ => "built-in pipeline".into(),
        };
        let spec = p
            .get("spec_sha256")
            .and_then(Value::as_str)
            .map(short_hash)
            .unwrap_or_default();
        head.push(vec![
            "producer".into(),
            format!("{file}; spec sha256 {spec}"),
        ]);
    }
    if let Some(t) = meta.get("tool") {
        head.push(vec![
            "built_by".into(),
            format!(
                "{} {} ({})",
                text(t, "name"),
                text(t, "version"),
                text(t, "git_commit")
            ),
        ]);
    }
    head.push(vec!["run".into(), run_line(docs.run.as_ref())]);
    let mut out = output::table(&head);

    if let Some(schema) = &docs.schema {
        out.push_str(&format!(
            "\nschema ({} grain; key columns: {})\n",
            text(schema, "grain"),
            schema
                .get("key_columns")
                .and_then(Value::as_array)
                .filter(|k| !k.is_empty())
                .map_or_else(
                    || DASH.into(),
                    |k| k.iter().map(plain).collect::<Vec<_>>().join(", ")
                )
        ));
        let mut rows = vec![vec!["column".to_string(), "type".to_string()]];
        if let Some(columns) = schema.get("columns").and_then(Value::as_object) {
            rows.extend(columns.iter().map(|(c, t)| vec![c.clone(), plain(t)]));
        }
        out.push_str(&output::table(&rows));
    }

    if let Some(rules) = meta.get("validation").and_then(Value::as_array) {
        out.push_str("\nvalidation\n");
        out.push_str(&output::validation_table(rules));
    }

    if let Some(profile) = meta.get("profile").and_then(Value::as_object) {
        out.push_str("\nprofile\n");
        let mut rows = vec![[
            "column", "type", "nulls", "min", "max", "mean", "stddev", "distinct",
        ]
        .map(String::from)
        .to_vec()];
        for (column, p) in profile {
            let num = |k: &str| compare::profile_figure(p, k).map_or_else(|| DASH.into(), number);
            rows.push(vec![
                column.clone(),
                text(p, "type"),
                num("nulls"),
                num("min"),
                num("max"),
                num("mean"),
                num("stddev"),
                num("distinct"),
            ]);
        }
        out.push_str(&output::table(&rows));
    }
    out
}

/// The run that wrote a version, in one line.
fn run_line(run: Option<&Value>) -> String {
    let Some(r) = run else {
        return "no run record".into();
    };
    let get = |k: &str| r.get(k).map(plain).unwrap_or_else(|| DASH.into());
    let secs = r
        .get("duration_ms")
        .and_then(Value::as_f64)
        .map_or_else(|| DASH.into(), |ms| format!("{:.2}s", ms / 1000.0));
    format!(
        "{}: {} in {secs}, started {} on {} (pid {})",
        get("run_id"),
        get("status"),
        r.get("started_at")
            .and_then(Value::as_str)
            .map_or_else(|| DASH.into(), short_time),
        get("host"),
        get("pid"),
    )
}

async fn diff(
    prefix: &Prefix,
    listing: &Listing,
    a: Option<&str>,
    b: Option<&str>,
    output: ReportFormat,
) -> Result<String> {
    let b = match b {
        Some(b) => pick(listing, b)?,
        None => pick(listing, "latest")?,
    };
    let a = match a {
        Some(a) => pick(listing, a)?,
        None => listing
            .complete_before(&b)
            .map(|e| e.version.clone())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "no complete version before {b} to compare with (give two versions: featurepipe versions diff A B)"
                ))
            })?,
    };
    let mut docs = Vec::new();
    for v in [&a, &b] {
        let latest = listing.get(v).is_some_and(|e| e.latest);
        let d = catalog::documents(prefix.store.as_ref(), v, latest).await?;
        if let Some(why) = &d.entry.incomplete {
            return Err(Error::Usage(format!(
                "{v} is not complete ({why}): only complete versions are compared"
            )));
        }
        docs.push(d);
    }
    let d = compare::diff(&docs[0], &docs[1]);
    if output == ReportFormat::Json {
        return Ok(pretty(&serde_json::to_value(&d).unwrap_or_default()));
    }
    Ok(diff_table(&d))
}

fn diff_table(d: &VersionDiff) -> String {
    let mut rows = vec![vec![
        String::new(),
        d.a.clone(),
        d.b.clone(),
        "change".into(),
    ]];
    for (name, change, rate) in [
        ("rows", &d.rows, false),
        ("feature_rows", &d.feature_rows, false),
        ("null_rate", &d.null_rate, true),
    ] {
        rows.push(change_row(name, change.as_ref(), rate));
    }
    let mut out = output::table(&rows);
    out.push('\n');
    out.push_str(&format!(
        "columns: {}\n",
        changes_text(d.columns.as_ref(), true)
    ));
    out.push_str(&format!(
        "header:  {}\n",
        changes_text(d.header.as_ref(), false)
    ));

    if !d.profile.is_empty() {
        out.push_str("\nprofile\n");
        let mut rows = vec![vec![
            "column".to_string(),
            "figure".into(),
            d.a.clone(),
            d.b.clone(),
            "change".into(),
        ]];
        for c in &d.profile {
            for s in &c.stats {
                let mut row = change_row(s.stat, Some(&s.change), false);
                row.insert(0, c.column.clone());
                rows.push(row);
            }
        }
        out.push_str(&output::table(&rows));
    }

    let p = &d.producer;
    let verdict = match p.changed {
        Some(true) => "changed",
        Some(false) => "unchanged",
        None => "unknown (a version does not record what produced it)",
    };
    let mut what = Vec::new();
    for (name, changed) in [
        ("source format", p.source_changed),
        ("rules", p.rules_changed),
        ("features", p.features_changed),
    ] {
        if changed == Some(true) {
            what.push(name.to_string());
        }
    }
    if p.pipeline_file_sha256[0] != p.pipeline_file_sha256[1] {
        let sha = |s: &Option<String>| s.as_deref().map_or_else(|| "none".into(), short_hash);
        what.push(format!(
            "pipeline file sha256 {} -> {}",
            sha(&p.pipeline_file_sha256[0]),
            sha(&p.pipeline_file_sha256[1])
        ));
    }
    if p.tool[0] != p.tool[1] {
        let tool = |t: &Option<String>| t.clone().unwrap_or_else(|| "unknown".into());
        what.push(format!(
            "build {} -> {}",
            tool(&p.tool[0]),
            tool(&p.tool[1])
        ));
    }
    out.push_str(&format!(
        "\npipeline: {verdict}{}\n",
        if what.is_empty() {
            String::new()
        } else {
            format!(" ({})", what.join("; "))
        }
    ));
    out
}

/// `name  a  b  +change (+relative%)`.
fn change_row(name: &str, change: Option<&Change>, rate: bool) -> Vec<String> {
    let show = |x: f64| if rate { format!("{x:.4}") } else { number(x) };
    let Some(c) = change else {
        return vec![name.into(), DASH.into(), DASH.into(), DASH.into()];
    };
    let delta = match (c.change, c.relative) {
        (Some(d), Some(r)) => format!("{}{} ({:+.1}%)", sign(d), show(d.abs()), r * 100.0),
        (Some(d), None) => format!("{}{}", sign(d), show(d.abs())),
        _ => DASH.into(),
    };
    vec![
        name.into(),
        c.previous.map_or_else(|| DASH.into(), show),
        show(c.current),
        delta,
    ]
}

fn sign(x: f64) -> &'static str {
    if x < 0.0 {
        "-"
    } else {
        "+"
    }
}

/// `added x (float); removed y; retyped z string -> integer` or `unchanged`.
fn changes_text(changes: Option<&ColumnChanges>, typed: bool) -> String {
    let Some(c) = changes else {
        return "unknown (a document is missing or unreadable)".into();
    };
    if c.is_empty() {
        return "unchanged".into();
    }
    let mut parts = Vec::new();
    if !c.added.is_empty() {
        parts.push(format!("added {}", c.added.join(", ")));
    }
    if !c.removed.is_empty() {
        parts.push(format!("removed {}", c.removed.join(", ")));
    }
    if typed && !c.retyped.is_empty() {
        let r: Vec<String> = c
            .retyped
            .iter()
            .map(|r| format!("{} {} -> {}", r.column, r.from, r.to))
            .collect();
        parts.push(format!("retyped {}", r.join(", ")));
    }
    if c.reordered {
        parts.push("reordered".into());
    }
    parts.join("; ")
}

/// The version `wanted` names: `latest`, an id, or a unique start of one (dashes and the
/// `v_` may be left out: `2025-11-19`, `20251119`).
fn pick(listing: &Listing, wanted: &str) -> Result<String> {
    let wanted = wanted.trim();
    if wanted == "latest" {
        return listing
            .latest
            .as_ref()
            .map(|l| l.feature_version.clone())
            .ok_or_else(|| Error::Usage("this prefix has no _latest yet: name a version".into()));
    }
    let id = wanted.replace(['-', ':'], "");
    let id = if id.starts_with("v_") {
        id
    } else {
        format!("v_{id}")
    };
    if let Some(e) = listing.get(&id) {
        return Ok(e.version.clone());
    }
    let matches: Vec<&Entry> = listing
        .versions
        .iter()
        .filter(|e| e.version.starts_with(&id))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.version.clone()),
        [] => Err(Error::Usage(format!(
            "no version {:?} under this prefix (see featurepipe versions list)",
            crate::values::shorten(wanted)
        ))),
        many => Err(Error::Usage(format!(
            "{:?} names {} versions ({}): give more of the id",
            crate::values::shorten(wanted),
            many.len(),
            many.iter()
                .map(|e| e.version.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn status(e: &Entry) -> &'static str {
    match (e.complete, &e.writing) {
        (true, _) => "complete",
        (false, Some(_)) => "writing",
        (false, None) => "incomplete",
    }
}

/// `2025-11-19 00:00:00+09:00` from an RFC 3339 time (whole seconds).
fn short_time(text: &str) -> String {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%:z").to_string())
        .unwrap_or_else(|_| text.to_string())
}

fn opt(n: Option<u64>) -> String {
    n.map_or_else(|| DASH.into(), |n| n.to_string())
}

/// A figure for a table: whole numbers without decimals, large ones with 2, small with 4.
fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else if x.abs() >= 1000.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}

fn short_hash(sha: &str) -> String {
    sha.chars().take(12).collect()
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}
