//! Prometheus metrics of a pipeline's last run, for node_exporter's textfile collector
//! (`--metrics-textfile DIR`) and for a Pushgateway (`--metrics-pushgateway URL`).
//!
//! Every metric is a gauge with a `pipeline` label and describes the last run that
//! measured it: a run that fails before counting rows leaves `featurepipe_raw_rows` as the
//! run before it measured it, and a failed run never touches
//! `featurepipe_last_success_timestamp_seconds`. Both sinks keep that rule the same way:
//! - Pushgateway: `POST` to the group `job="featurepipe", pipeline="<name>"`. A `POST`
//!   replaces only the metric families it carries; a `PUT` would replace the whole group,
//!   so a failed run (which has no success time to push) would erase the last success
//!   time, and the "no success for N hours" alert would never see it again.
//! - textfile: `featurepipe_<pipeline>.prom` is rewritten with this run's families and the
//!   previous file's other families (POST semantics on a file), through a temporary file
//!   and a rename, so node_exporter never reads half a file.
//!
//! Neither ever changes the run's exit code: a failure is one warning on stderr.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

use super::http;
use super::RunFacts;
use crate::config::spec::Severity;

/// The Pushgateway job every pipeline is pushed under.
pub const JOB: &str = "featurepipe";

/// The metric names, each spelled once, in the order they are written.
pub mod names {
    pub const LAST_RUN_TIMESTAMP: &str = "featurepipe_last_run_timestamp_seconds";
    pub const LAST_SUCCESS_TIMESTAMP: &str = "featurepipe_last_success_timestamp_seconds";
    pub const LAST_EXIT_CODE: &str = "featurepipe_last_exit_code";
    pub const LAST_RUN_STATUS: &str = "featurepipe_last_run_status";
    pub const LAST_RUN_DURATION: &str = "featurepipe_last_run_duration_seconds";
    pub const STAGE_DURATION: &str = "featurepipe_stage_duration_seconds";
    pub const RAW_ROWS: &str = "featurepipe_raw_rows";
    pub const FEATURE_ROWS: &str = "featurepipe_feature_rows";
    pub const RAW_NULL_RATIO: &str = "featurepipe_raw_null_ratio";
    pub const FAILED_RULES: &str = "featurepipe_failed_rules";
    pub const READ_BYTES: &str = "featurepipe_read_bytes";
    pub const WRITTEN_BYTES: &str = "featurepipe_written_bytes";
    pub const PUBLISHED_EXECUTION_TIMESTAMP: &str =
        "featurepipe_published_execution_timestamp_seconds";
    pub const BUILD_INFO: &str = "featurepipe_build_info";
}

/// Every family with its help text, in the order they are written.
const FAMILIES: [(&str, &str); 14] = [
    (names::LAST_RUN_TIMESTAMP, "When the last run ended (any status), in Unix seconds."),
    (
        names::LAST_SUCCESS_TIMESTAMP,
        "When the last run with exit code 0 ended (published, or found its version already complete), in Unix seconds.",
    ),
    (names::LAST_EXIT_CODE, "Exit code of the last run (0 ok, 3 data invalid, 4 raw not found, 5 storage, 75 busy, 99 skipped on purpose, ...)."),
    (names::LAST_RUN_STATUS, "1 for the status the last run ended with (success, skipped, failed), 0 for the others."),
    (names::LAST_RUN_DURATION, "Wall time of the last run, in seconds."),
    (names::STAGE_DURATION, "Wall time of each step of the last run, in seconds (validate_data and build_features share the one pass)."),
    (names::RAW_ROWS, "Data rows of the raw CSV, in the last run that counted them."),
    (names::FEATURE_ROWS, "Rows of feature.csv, in the last run that built it."),
    (names::RAW_NULL_RATIO, "Null cells / all cells of the raw CSV (0-1), in the last run that counted them."),
    (names::FAILED_RULES, "Rules that failed, by severity (error blocks publishing, warn does not), in the last run that checked them."),
    (names::READ_BYTES, "Bytes of the raw object read, in the last run that read it (compressed bytes for .gz/.zst)."),
    (names::WRITTEN_BYTES, "Bytes written into the version (feature.csv and/or feature.parquet, schema.json, metadata.json, _SUCCESS), in the last run that published."),
    (names::PUBLISHED_EXECUTION_TIMESTAMP, "Execution date of the version the last publishing run published, in Unix seconds."),
    (names::BUILD_INFO, "Always 1; the featurepipe version that wrote these metrics."),
];

/// The statuses a run can end with, for the state set.
const END_STATUSES: [&str; 3] = ["success", "skipped", "failed"];

/// Where to send the metrics.
#[derive(Debug, Clone, Default)]
pub struct Sinks {
    /// node_exporter's textfile collector folder.
    pub textfile_dir: Option<PathBuf>,
    /// Pushgateway base URL (`http://pushgateway:9091`).
    pub pushgateway: Option<String>,
}

impl Sinks {
    pub fn any(&self) -> bool {
        self.textfile_dir.is_some() || self.pushgateway.is_some()
    }
}

/// One metric family: its samples, each with its labels besides `pipeline`.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    fn one(name: &'static str, value: f64) -> Self {
        Family {
            name,
            samples: vec![(Vec::new(), value)],
        }
    }
}

/// What the run measured, as families: only the ones it knows (see the module doc).
pub fn families(f: &RunFacts) -> Vec<Family> {
    let mut out = vec![Family::one(
        names::LAST_RUN_TIMESTAMP,
        seconds(f.finished_at),
    )];
    if f.exit_code == 0 {
        out.push(Family::one(
            names::LAST_SUCCESS_TIMESTAMP,
            seconds(f.finished_at),
        ));
    }
    out.push(Family::one(names::LAST_EXIT_CODE, f64::from(f.exit_code)));
    out.push(Family {
        name: names::LAST_RUN_STATUS,
        samples: END_STATUSES
            .iter()
            .map(|s| {
                let value = if *s == f.status { 1.0 } else { 0.0 };
                (vec![("status", (*s).to_string())], value)
            })
            .collect(),
    });
    out.push(Family::one(
        names::LAST_RUN_DURATION,
        (f.finished_at - f.started_at).num_milliseconds().max(0) as f64 / 1000.0,
    ));
    if !f.stages.is_empty() {
        out.push(Family {
            name: names::STAGE_DURATION,
            samples: f
                .stages
                .iter()
                .map(|(stage, d)| (vec![("stage", (*stage).to_string())], d.as_secs_f64()))
                .collect(),
        });
    }
    if let Some(rows) = f.rows {
        out.push(Family::one(names::RAW_ROWS, rows as f64));
    }
    if let Some(rows) = f.output.feature_rows {
        out.push(Family::one(names::FEATURE_ROWS, rows as f64));
    }
    if let Some(rate) = f.null_rate {
        out.push(Family::one(names::RAW_NULL_RATIO, rate));
    }
    if let Some(rules) = &f.rules {
        let failed = |severity: Severity| {
            rules
                .iter()
                .filter(|r| !r.passed && r.severity == severity)
                .count() as f64
        };
        out.push(Family {
            name: names::FAILED_RULES,
            samples: [Severity::Error, Severity::Warn]
                .into_iter()
                .map(|s| (vec![("severity", s.as_str().to_string())], failed(s)))
                .collect(),
        });
    }
    if let Some(bytes) = f.read_bytes {
        out.push(Family::one(names::READ_BYTES, bytes as f64));
    }
    if f.output.published {
        out.push(Family::one(
            names::WRITTEN_BYTES,
            f.output.written_bytes as f64,
        ));
        if let Some(ts) = f.execution_timestamp {
            out.push(Family::one(names::PUBLISHED_EXECUTION_TIMESTAMP, ts as f64));
        }
    }
    out.push(Family {
        name: names::BUILD_INFO,
        samples: vec![(
            vec![("version", env!("CARGO_PKG_VERSION").to_string())],
            1.0,
        )],
    });
    out
}

fn seconds(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// The text exposition format (0.0.4) of `families`, each with `pipeline="<pipeline>"`.
pub fn render(pipeline: &str, families: &[Family]) -> String {
    let mut out = String::new();
    for (name, help) in FAMILIES {
        if let Some(family) = families.iter().find(|f| f.name == name) {
            render_family(&mut out, pipeline, family, help);
        }
    }
    out
}

fn render_family(out: &mut String, pipeline: &str, family: &Family, help: &str) {
    let _ = writeln!(out, "# HELP {} {help}", family.name);
    let _ = writeln!(out, "# TYPE {} gauge", family.name);
    for (labels, value) in &family.samples {
        let _ = write!(out, "{}{{pipeline=\"{}\"", family.name, escape(pipeline));
        for (k, v) in labels {
            let _ = write!(out, ",{k}=\"{}\"", escape(v));
        }
        let _ = writeln!(out, "}} {}", number(*value));
    }
}

/// A label value, escaped as the text format wants.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{value}")
    }
}

/// This run's families over the previous file's: every family this run measured
/// replaces the previous one; the others are kept as they were (known families only).
pub fn merge(previous: &str, pipeline: &str, families: &[Family]) -> String {
    let new: HashSet<&str> = families.iter().map(|f| f.name).collect();
    let mut kept: BTreeMap<&str, String> = BTreeMap::new();
    for line in previous.lines() {
        let Some(name) = family_of(line) else {
            continue;
        };
        if new.contains(name) {
            continue;
        }
        if let Some((known, _)) = FAMILIES.iter().find(|(n, _)| *n == name) {
            let text = kept.entry(known).or_default();
            text.push_str(line);
            text.push('\n');
        }
    }
    let mut out = String::new();
    for (name, help) in FAMILIES {
        if let Some(family) = families.iter().find(|f| f.name == name) {
            render_family(&mut out, pipeline, family, help);
        } else if let Some(text) = kept.get(name) {
            out.push_str(text);
        }
    }
    out
}

/// The family a line of the text format belongs to.
fn family_of(line: &str) -> Option<&str> {
    let line = line.trim();
    if let Some(rest) = line
        .strip_prefix("# HELP ")
        .or_else(|| line.strip_prefix("# TYPE "))
    {
        return rest.split_whitespace().next();
    }
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    line.split(['{', ' ']).next()
}

/// `featurepipe_<pipeline>.prom`, with anything but letters, digits, `_`, `-` and `.`
/// in the name replaced by `_`.
pub fn textfile_name(pipeline: &str) -> String {
    let safe: String = pipeline
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("featurepipe_{safe}.prom")
}

/// Serialises the textfile rewrites of one process (a backfill's dates end together).
static TEXTFILE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Rewrites `<dir>/featurepipe_<pipeline>.prom`: merged with the previous file, written
/// to a hidden temporary file (node_exporter reads only `*.prom`), then renamed.
pub async fn write_textfile(
    dir: &Path,
    pipeline: &str,
    families: &[Family],
) -> Result<PathBuf, String> {
    let _one_at_a_time = TEXTFILE.lock().await;
    let name = textfile_name(pipeline);
    let path = dir.join(&name);
    let previous = match tokio::fs::read_to_string(&path).await {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let text = merge(&previous, pipeline, families);
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = async {
        tokio::fs::write(&temp, text.as_bytes()).await?;
        tokio::fs::File::open(&temp).await?.sync_all().await?;
        tokio::fs::rename(&temp, &path).await
    };
    if let Err(e) = written.await {
        let _ = tokio::fs::remove_file(&temp).await;
        return Err(format!("cannot write {}: {e}", path.display()));
    }
    Ok(path)
}

/// `<base>/metrics/job/featurepipe/pipeline/<pipeline>`: the group's URL. A value that is
/// not plain URL-path text goes base64url-encoded (`pipeline@base64/...`), as the
/// Pushgateway's API defines.
pub fn group_url(base: &str, pipeline: &str) -> String {
    let base = base.trim_end_matches('/');
    let plain = !pipeline.is_empty()
        && pipeline
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if plain {
        format!("{base}/metrics/job/{JOB}/pipeline/{pipeline}")
    } else {
        format!(
            "{base}/metrics/job/{JOB}/pipeline@base64/{}",
            base64url(pipeline.as_bytes())
        )
    }
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    if out.is_empty() {
        out.push('=');
    }
    out
}

/// POSTs `families` to the pipeline's group (see the module doc for why POST).
pub async fn push(
    base: &str,
    pipeline: &str,
    families: &[Family],
    timeout: Duration,
) -> Result<String, String> {
    let url = group_url(base, pipeline);
    let body = Bytes::from(render(pipeline, families));
    let reply = http::send(
        http::Method::POST,
        &url,
        &[("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        body,
        timeout,
    )
    .await?;
    if reply.ok() {
        Ok(url)
    } else {
        Err(format!("{url} answered {}: {}", reply.status, reply.body))
    }
}

/// Writes and pushes the run's metrics where asked; failures are warnings.
pub async fn export(sinks: &Sinks, facts: &RunFacts, timeout: Duration) {
    if !sinks.any() {
        return;
    }
    let families = families(facts);
    let textfile = async {
        if let Some(dir) = &sinks.textfile_dir {
            if let Err(e) = write_textfile(dir, &facts.pipeline, &families).await {
                tracing::warn!("metrics textfile not written (the run's result stands): {e}");
            }
        }
    };
    let pushed = async {
        if let Some(base) = &sinks.pushgateway {
            if let Err(e) = push(base, &facts.pipeline, &families, timeout).await {
                tracing::warn!(
                    "metrics not pushed to the Pushgateway (the run's result stands): {e}"
                );
            }
        }
    };
    tokio::join!(textfile, pushed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipeline_name_becomes_a_safe_file_name_and_group() {
        assert_eq!(
            textfile_name("daily_user_events"),
            "featurepipe_daily_user_events.prom"
        );
        assert_eq!(textfile_name("a/b c"), "featurepipe_a_b_c.prom");
        assert_eq!(
            group_url("http://pg:9091/", "daily"),
            "http://pg:9091/metrics/job/featurepipe/pipeline/daily"
        );
        // The Pushgateway documentation's example: "/path/to/job" -> L3BhdGgvdG8vam9i
        assert_eq!(base64url(b"/path/to/job"), "L3BhdGgvdG8vam9i");
        assert_eq!(base64url(b"a/b"), "YS9i");
        assert_eq!(base64url(b"ab"), "YWI=");
        assert_eq!(
            group_url("http://pg:9091", "a/b"),
            "http://pg:9091/metrics/job/featurepipe/pipeline@base64/YS9i"
        );
    }

    #[test]
    fn merge_replaces_measured_families_and_keeps_the_rest() {
        let previous = render(
            "p",
            &[
                Family::one(names::LAST_RUN_TIMESTAMP, 100.0),
                Family::one(names::LAST_SUCCESS_TIMESTAMP, 100.0),
                Family::one(names::RAW_ROWS, 300.0),
            ],
        ) + "# HELP something_else x\nsomething_else 1\n";
        let now = [
            Family::one(names::LAST_RUN_TIMESTAMP, 200.0),
            Family::one(names::LAST_EXIT_CODE, 3.0),
        ];
        let merged = merge(&previous, "p", &now);
        assert!(merged.contains("featurepipe_last_run_timestamp_seconds{pipeline=\"p\"} 200\n"));
        assert!(!merged.contains("featurepipe_last_run_timestamp_seconds{pipeline=\"p\"} 100"));
        assert!(merged.contains("featurepipe_last_success_timestamp_seconds{pipeline=\"p\"} 100\n"));
        assert!(merged.contains("featurepipe_raw_rows{pipeline=\"p\"} 300\n"));
        assert!(merged.contains("featurepipe_last_exit_code{pipeline=\"p\"} 3\n"));
        assert!(!merged.contains("something_else"));
        // Families stay whole and in the documented order.
        let order: Vec<&str> = merged
            .lines()
            .filter(|l| l.starts_with("# TYPE"))
            .map(|l| l.split(' ').nth(2).unwrap())
            .collect();
        assert_eq!(
            order,
            [
                names::LAST_RUN_TIMESTAMP,
                names::LAST_SUCCESS_TIMESTAMP,
                names::LAST_EXIT_CODE,
                names::RAW_ROWS
            ]
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let text = render("a\"b\\c\nd", &[Family::one(names::LAST_EXIT_CODE, 0.0)]);
        assert!(text.contains(r#"{pipeline="a\"b\\c\nd"} 0"#), "{text}");
        assert_eq!(number(0.0237), "0.0237");
        assert_eq!(number(1765072119.5), "1765072119.5");
    }
}
