//! How the pipeline has been doing, from `_runs/`: per day (or ISO week) the runs,
//! successes, failures by error kind, skips, success rate, duration percentiles, rows and
//! rule outcomes (`featurepipe runs`). Reading is [`read`]; [`summarize`] is pure.
//!
//! Definitions (docs/versions.md repeats them for whoever loads the CSV):
//! - a run's day is the day its `started_at` falls on in the pipeline zone; a skip's, the
//!   day its counter filed it under;
//! - `runs` = successes + failures + skips; `success_rate` = successes / (successes +
//!   failures): a skip did no work, so it neither helps nor hurts;
//! - durations are of runs that did work (successes and failures); percentiles are
//!   nearest-rank (p50 of 1, 2, 3, 4 s is 2 s: a duration some run really took);
//! - `rows` is the sum of raw rows over successful runs;
//! - rule counts add up every run's checked rules; `rule_pass_rate` = passed / checked.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::catalog::{bounded, parse_utc};
use super::is_version_id;
use super::layout::RUNS_DIR;
use super::run_record::{is_skip_counter, read_skips, RuleCounts};
use crate::log::Status;
use crate::storage::{ObjectStore, StorageResult};

/// How runs are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Period {
    Day,
    /// ISO weeks, named by their Monday.
    Week,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
        }
    }

    /// The first day of the period `day` falls in.
    fn start(self, day: NaiveDate) -> NaiveDate {
        match self {
            Period::Day => day,
            Period::Week => {
                day - chrono::Duration::days(i64::from(day.weekday().num_days_from_monday()))
            }
        }
    }
}

/// What `runs` needs of a run record (reading stays tolerant of older and newer fields).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RecordRow {
    #[serde(default)]
    pub run_id: String,
    pub status: String,
    pub error_kind: Option<String>,
    pub started_at: String,
    pub duration_ms: Option<u64>,
    pub rows: Option<u64>,
    /// Failed `warn` rules, for records written before `rules` existed.
    pub warnings: Option<u64>,
    pub rules: Option<RuleCounts>,
}

/// Skips of one day, for one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipDay {
    pub day: NaiveDate,
    pub reason: String,
    pub count: u64,
}

/// Every record and skip count since the cutoff.
#[derive(Debug, Default)]
pub struct History {
    pub records: Vec<RecordRow>,
    pub skips: Vec<SkipDay>,
}

/// Reads `_runs/` of `store`: the records of runs started at or after `since` (all with
/// `None`), and the skip counters' days from `since`'s day on (in `tz`). A record's run
/// id starts with its start time, so older records are passed over without reading them.
pub async fn read(
    store: Arc<dyn ObjectStore>,
    since: Option<DateTime<Utc>>,
    tz: Tz,
) -> StorageResult<History> {
    let keys = store.list(RUNS_DIR).await?;
    let mut record_keys = Vec::new();
    let mut versions = Vec::new();
    for key in keys {
        let mut parts = key.split('/').skip(1);
        let Some(version) = parts.next().filter(|v| is_version_id(v)) else {
            continue;
        };
        if is_skip_counter(&key) {
            if versions.last() != Some(&version.to_string()) {
                versions.push(version.to_string());
            }
            continue;
        }
        let run_id = key
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".json");
        if let (Some(since), Some(started)) = (since, run_id_time(run_id)) {
            if started < since {
                continue;
            }
        }
        record_keys.push(key);
    }
    versions.dedup();

    let records = bounded(record_keys, |key| {
        let store = store.clone();
        async move {
            let Some(bytes) = store.get_small(&key).await? else {
                return Ok(None);
            };
            Ok(match serde_json::from_slice::<RecordRow>(&bytes) {
                Ok(row) => Some(row),
                Err(e) => {
                    tracing::warn!("ignoring unreadable run record {}: {e}", store.uri(&key));
                    None
                }
            })
        }
    })
    .await?;
    let records = records
        .into_iter()
        .flatten()
        .filter(|r| match (since, parse_utc(&r.started_at)) {
            (Some(since), Some(started)) => started >= since,
            _ => true,
        })
        .collect();

    let counters = bounded(versions, |version| {
        let store = store.clone();
        async move { read_skips(store.as_ref(), &version).await }
    })
    .await?;
    let first_day = since.map(|s| s.with_timezone(&tz).date_naive());
    let mut skips = Vec::new();
    for counter in counters.into_iter().flatten() {
        for (day, reasons) in counter.by_day {
            let Ok(day) = NaiveDate::parse_from_str(&day, "%Y-%m-%d") else {
                continue;
            };
            if first_day.is_some_and(|first| day < first) {
                continue;
            }
            skips.extend(
                reasons
                    .into_iter()
                    .map(|(reason, count)| SkipDay { day, reason, count }),
            );
        }
    }
    Ok(History { records, skips })
}

/// The start time a run id begins with (`20251119T000000Z-...`).
fn run_id_time(run_id: &str) -> Option<DateTime<Utc>> {
    let stamp = run_id.get(..16)?;
    NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc())
}

/// One period's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PeriodStats {
    /// The period's first day (`YYYY-MM-DD`, pipeline zone).
    pub period: String,
    pub runs: u64,
    pub successes: u64,
    pub failures: u64,
    pub skips: u64,
    /// Error kind -> failures.
    pub failures_by_kind: BTreeMap<String, u64>,
    /// Reason -> skips.
    pub skips_by_reason: BTreeMap<String, u64>,
    pub success_rate: Option<f64>,
    pub p50_duration_ms: Option<u64>,
    pub p95_duration_ms: Option<u64>,
    pub rows: u64,
    pub rules_checked: u64,
    pub rules_passed: u64,
    pub rules_warn_failed: u64,
    pub rules_error_failed: u64,
    pub rule_pass_rate: Option<f64>,
}

/// Groups `history` by `period` (days in `tz`), oldest first; periods without runs are
/// left out.
pub fn summarize(history: &History, period: Period, tz: Tz) -> Vec<PeriodStats> {
    let mut by_period: BTreeMap<NaiveDate, (PeriodStats, Vec<u64>)> = BTreeMap::new();
    for r in &history.records {
        let Some(started) = parse_utc(&r.started_at) else {
            continue;
        };
        let (stats, durations) = slot(
            &mut by_period,
            period,
            started.with_timezone(&tz).date_naive(),
        );
        stats.runs += 1;
        if r.status == Status::Skipped.as_str() {
            // A skip recorded in full (before skip counters existed).
            stats.skips += 1;
            *stats.skips_by_reason.entry("recorded".into()).or_default() += 1;
            continue;
        }
        if r.status == Status::Success.as_str() {
            stats.successes += 1;
            stats.rows += r.rows.unwrap_or(0);
        } else {
            stats.failures += 1;
            let kind = r.error_kind.clone().unwrap_or_else(|| "unknown".into());
            *stats.failures_by_kind.entry(kind).or_default() += 1;
        }
        durations.extend(r.duration_ms);
        match r.rules {
            Some(rules) => {
                stats.rules_checked += rules.checked;
                stats.rules_passed += rules.passed;
                stats.rules_warn_failed += rules.warn_failed;
                stats.rules_error_failed += rules.error_failed;
            }
            None => stats.rules_warn_failed += r.warnings.unwrap_or(0),
        }
    }
    for s in &history.skips {
        let (stats, _) = slot(&mut by_period, period, s.day);
        stats.runs += s.count;
        stats.skips += s.count;
        *stats.skips_by_reason.entry(s.reason.clone()).or_default() += s.count;
    }
    by_period
        .into_values()
        .map(|(mut stats, mut durations)| {
            let worked = stats.successes + stats.failures;
            stats.success_rate = (worked > 0).then(|| stats.successes as f64 / worked as f64);
            stats.rule_pass_rate = (stats.rules_checked > 0)
                .then(|| stats.rules_passed as f64 / stats.rules_checked as f64);
            durations.sort_unstable();
            stats.p50_duration_ms = percentile(&durations, 50);
            stats.p95_duration_ms = percentile(&durations, 95);
            stats
        })
        .collect()
}

/// The figures (and durations) of the period `day` falls in.
fn slot(
    periods: &mut BTreeMap<NaiveDate, (PeriodStats, Vec<u64>)>,
    period: Period,
    day: NaiveDate,
) -> &mut (PeriodStats, Vec<u64>) {
    let start = period.start(day);
    periods.entry(start).or_insert_with(|| {
        let stats = PeriodStats {
            period: start.format("%Y-%m-%d").to_string(),
            ..PeriodStats::default()
        };
        (stats, Vec::new())
    })
}

/// Nearest-rank percentile of sorted values: the smallest value with at least `p`% of
/// the values at or below it.
fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: &str, started_at: &str, ms: u64, kind: Option<&str>) -> RecordRow {
        RecordRow {
            run_id: "r".into(),
            status: status.into(),
            error_kind: kind.map(str::to_string),
            started_at: started_at.into(),
            duration_ms: Some(ms),
            rows: Some(100),
            warnings: None,
            rules: Some(RuleCounts {
                checked: 3,
                passed: if status == "success" { 3 } else { 2 },
                warn_failed: 0,
                error_failed: u64::from(status != "success"),
            }),
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 95), Some(7));
        assert_eq!(percentile(&[1, 2, 3, 4], 50), Some(2));
        let twenty: Vec<u64> = (1..=20).collect();
        assert_eq!(percentile(&twenty, 95), Some(19));
        assert_eq!(percentile(&twenty, 50), Some(10));
    }

    #[test]
    fn days_follow_the_pipeline_zone_and_weeks_start_on_monday() {
        let seoul: Tz = "Asia/Seoul".parse().unwrap();
        // 2025-11-18T20:00Z is already the 19th in Seoul.
        let history = History {
            records: vec![
                record("success", "2025-11-18T20:00:00Z", 1000, None),
                record("failed", "2025-11-19T10:00:00+09:00", 3000, Some("storage")),
                record("success", "2025-11-17T10:00:00+09:00", 2000, None),
            ],
            skips: vec![SkipDay {
                day: NaiveDate::from_ymd_opt(2025, 11, 19).unwrap(),
                reason: "version_complete".into(),
                count: 4,
            }],
        };
        let days = summarize(&history, Period::Day, seoul);
        assert_eq!(days.len(), 2);
        let d19 = &days[1];
        assert_eq!(d19.period, "2025-11-19");
        assert_eq!(
            (d19.runs, d19.successes, d19.failures, d19.skips),
            (6, 1, 1, 4)
        );
        assert_eq!(d19.success_rate, Some(0.5));
        assert_eq!(d19.failures_by_kind["storage"], 1);
        assert_eq!(d19.skips_by_reason["version_complete"], 4);
        assert_eq!(
            (d19.p50_duration_ms, d19.p95_duration_ms),
            (Some(1000), Some(3000))
        );
        assert_eq!(d19.rows, 100);
        assert_eq!(
            (d19.rules_checked, d19.rules_passed, d19.rules_error_failed),
            (6, 5, 1)
        );

        // 11-17 (Monday) and 11-19 share a week.
        let weeks = summarize(&history, Period::Week, seoul);
        assert_eq!(weeks.len(), 1);
        assert_eq!(weeks[0].period, "2025-11-17");
        assert_eq!(weeks[0].runs, 7);
        assert_eq!(weeks[0].p50_duration_ms, Some(2000));
    }

    #[test]
    fn run_ids_carry_their_start_time() {
        let t = run_id_time("20251119T010203Z-abcdef12").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-11-19T01:02:03+00:00");
        assert_eq!(run_id_time("hand-written"), None);
    }
}
