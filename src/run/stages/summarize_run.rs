//! `summarize_run`: always runs, also after a failure. Logs exactly one summary line,
//! writes the run record, says what stdout carries (the outcome's result, or a completed
//! dry run's plan: `featurepipe run` prints it, as JSON or a table) and what the run's
//! last sentence on stderr is (`main` prints it for `featurepipe run`; inside a backfill
//! each date prints its own).

use serde_json::json;

use super::build_features::timings_json;
use crate::config::Rerun;
use crate::error::Error;
use crate::log::{keys, DpLine, Step};
use crate::run::context::{Report, RunContext, SkipReason};
use crate::run::outcome::{Failure, Outcome};
use crate::values::execution_date::now_iso;
use crate::versions::documents::ToolInfo;
use crate::versions::run_record::{airflow_context, count_skip, RuleCounts, RunRecord, Skip};

/// What is known about a run that failed before its context existed.
pub struct EarlyRun<'a> {
    pub pipeline: &'a str,
    pub run_id: &'a str,
    /// The execution date as given (it may be what failed to parse).
    pub execution_date: Option<String>,
    pub duration_ms: u64,
    pub report: Report,
}

/// Summarizes a run whose context exists: writes its run record (not in dry runs), logs
/// the line, and returns the outcome (its `exit_code` is the process's), the note for
/// stderr of a run that did not fail, and a completed dry run's plan for stdout.
pub async fn run(
    ctx: &RunContext,
    failure: &Failure,
) -> (Outcome, Option<String>, Option<serde_json::Value>) {
    let v = ctx.validated.as_ref();
    let settings = &ctx.settings;
    let failed = failure.as_ref().map(|(step, e)| (*step, e));
    let mut outcome = Outcome::new(&settings.pipeline, &ctx.run_id, failed, ctx.skip);
    outcome.execution_date = Some(settings.execution_date.to_rfc3339());
    outcome.feature_version = Some(settings.version_id());
    outcome.feature_prefix = Some(ctx.version_uri());
    outcome.raw_path = Some(ctx.raw_uri());
    outcome.rows = v.map(|v| v.stats.rows);
    outcome.null_rate = v.map(|v| v.stats.null_rate());
    outcome.valid = v.map(|v| v.valid());
    outcome.warnings = v.map(|v| v.warnings());
    outcome.validation = v.map(|v| v.rules.clone());
    outcome.feature_rows = ctx.built.as_ref().map(|b| b.feature.rows);
    outcome.stored_rows = ctx.stored.as_ref().filter(|s| !s.dry_run).map(|s| s.rows);
    outcome.latest_moved = ctx.stored.as_ref().map(|s| s.latest_moved);
    outcome.dry_run = settings.dry_run;
    outcome.duration_ms = ctx.started.elapsed().as_millis() as u64;

    let record_key = if settings.dry_run {
        None
    } else {
        write_record(ctx, &outcome).await
    };
    // stdout carries exactly one document: a completed dry run's plan, else the result.
    let plan = (ctx.report == Report::Stdout
        && settings.dry_run
        && failure.is_none()
        && ctx.skip.is_none())
    .then(|| dry_run_plan(ctx));
    let record_uri = record_key.map(|k| ctx.out_store.uri(&k));
    let note = finish(&outcome, record_uri, ctx.report);
    (outcome, note, plan)
}

/// Summarizes a run that failed while resolving its settings (step `configure`).
pub fn early(run: EarlyRun<'_>, error: &Error) -> Outcome {
    let mut outcome = Outcome::new(
        run.pipeline,
        run.run_id,
        Some((Step::Configure, error)),
        None,
    );
    outcome.execution_date = run.execution_date;
    outcome.duration_ms = run.duration_ms;
    finish(&outcome, None, run.report);
    outcome
}

/// `_runs/<version>/<run_id>.json`, or for a skip one more in the version's skip counter;
/// a failure to write it is logged, never fatal (the run's own result stands, and the
/// version never depends on it).
async fn write_record(ctx: &RunContext, outcome: &Outcome) -> Option<String> {
    if let Some(reason) = outcome.reason {
        return count(ctx, reason, outcome.exit_code).await;
    }
    let stats = ctx.validated.as_ref().map(|v| &v.stats);
    let started_at = chrono::Utc::now()
        - chrono::Duration::milliseconds(outcome.duration_ms.min(i64::MAX as u64) as i64);
    let record = RunRecord {
        outcome,
        started_at: started_at
            .with_timezone(&ctx.settings.timezone)
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
        finished_at: now_iso(ctx.settings.timezone),
        timings_ms: timings_json(&ctx.timings_ms),
        null_count: stats.map(|s| s.null_count),
        total_cells: stats.map(|s| s.total_cells),
        rules: ctx.validated.as_ref().map(|v| RuleCounts::of(&v.rules)),
        tool: ToolInfo::current(),
        host: crate::versions::lease::host_name(),
        pid: std::process::id(),
        airflow: airflow_context(),
    };
    let version = ctx.settings.version_id();
    match record
        .write(ctx.out_store.as_ref(), &version, &ctx.run_id)
        .await
    {
        Ok(key) => Some(key),
        Err(e) => {
            tracing::warn!("could not write the run record: {e}");
            None
        }
    }
}

/// Counts a skip of this run's version (`run_record::count_skip`); returns the counter's
/// key.
async fn count(ctx: &RunContext, reason: SkipReason, exit_code: u8) -> Option<String> {
    let finished = chrono::Utc::now().with_timezone(&ctx.settings.timezone);
    let skip = Skip {
        run_id: ctx.run_id.clone(),
        at: finished.to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
        reason: reason.as_str().to_string(),
        exit_code,
        host: crate::versions::lease::host_name(),
        pid: std::process::id(),
        airflow: airflow_context(),
    };
    let day = finished.format("%Y-%m-%d").to_string();
    let version = ctx.settings.version_id();
    match count_skip(ctx.out_store.as_ref(), &version, &day, skip).await {
        Ok(key) => Some(key),
        Err(e) => {
            tracing::warn!("could not count the skip: {e}");
            None
        }
    }
}

/// Logs the line; returns the sentence a run that did not fail leaves for stderr (inside
/// a backfill, prints it and every error sentence itself).
fn finish(o: &Outcome, record_uri: Option<String>, report: Report) -> Option<String> {
    let mut line = DpLine::new(&o.pipeline, Step::SummarizeRun, o.status, &o.run_id)
        .with(keys::EXECUTION_DATE, o.execution_date.clone())
        .with(keys::RAW_PATH, o.raw_path.clone())
        .with(keys::FEATURE_PREFIX, o.feature_prefix.clone())
        .with(keys::FEATURE_VERSION, o.feature_version.clone())
        .with(keys::ROWS, o.rows)
        .rate(keys::NULL_RATE, o.null_rate)
        .with(keys::VALID, o.valid)
        .with(keys::WARNINGS, o.warnings)
        .with(keys::STORED_ROWS, o.stored_rows)
        .with(keys::DRY_RUN, o.dry_run)
        .with(keys::DURATION_MS, o.duration_ms)
        .with(keys::EXIT_CODE, i32::from(o.exit_code));
    if let Some(reason) = o.reason {
        line = line.with(keys::REASON, reason.as_str());
    }
    if let (Some(step), Some(kind)) = (o.failed_step, o.error_kind) {
        line = line
            .with(keys::FAILED_STEP, step)
            .with(keys::ERROR_KIND, kind)
            .with(keys::ERROR, o.error.clone());
    }
    if let Some(uri) = record_uri {
        line = line.with(keys::RUN_RECORD, uri);
    }
    line.emit();

    let version = o.feature_prefix.as_deref().unwrap_or("the version");
    // Inside a backfill many runs share stderr: each sentence names its version.
    let me = match (report, &o.feature_version) {
        (Report::Quiet, Some(v)) => format!("featurepipe: {v}"),
        (Report::Quiet, None) => format!(
            "featurepipe: {}",
            o.execution_date.as_deref().unwrap_or("?")
        ),
        (Report::Stdout, _) => "featurepipe".to_string(),
    };
    let note = o.reason.map(|reason| match reason {
        SkipReason::RawMissing => format!(
            "{me}: skipped: raw input {} does not exist (--skip-if-missing)",
            o.raw_path.as_deref().unwrap_or("?")
        ),
        SkipReason::VersionComplete => format!(
            "{me}: {version} is already complete; nothing to do (use --force to rewrite it)"
        ),
        SkipReason::PublishedConcurrently => format!(
            "{me}: another run published {version} while this one was working; kept its result"
        ),
        SkipReason::NothingToReprocessComplete => format!(
            "{me}: nothing to reprocess: {version} is complete and its last run did not fail \
             (--reprocess all rewrites it)"
        ),
        SkipReason::NothingToReprocessNeverRun => format!(
            "{me}: nothing to reprocess: {version} was never run (no run record, no files), so \
             it has not failed (--reprocess none runs it)"
        ),
    });
    match report {
        // `main` prints the last sentence of `featurepipe run`.
        Report::Stdout => note,
        Report::Quiet => {
            if let Some(msg) = &o.error {
                crate::log::sentence(true, &format!("{me}: error: {msg}"));
            }
            if let Some(note) = &note {
                crate::log::sentence(false, note);
            }
            None
        }
    }
}

/// `--dry-run`: what would be written, for stdout.
fn dry_run_plan(ctx: &RunContext) -> serde_json::Value {
    let writes: Vec<_> = ctx
        .stored
        .iter()
        .flat_map(|s| s.writes.iter())
        .map(|(uri, size)| json!({ "uri": uri, "size_bytes": size }))
        .collect();
    let schema: serde_json::Value = ctx
        .built
        .as_ref()
        .and_then(|b| serde_json::from_slice(&b.schema_json).ok())
        .unwrap_or_default();
    let action = match ctx.extracted.as_ref().map(|e| e.version_was_complete) {
        Some(true) if ctx.settings.rerun == Rerun::Always => "rewrite (--force)",
        Some(true) => "skip (version already complete)",
        _ => "publish",
    };
    let v = ctx.validated.as_ref();
    json!({
        "dry_run": true,
        "pipeline": ctx.settings.pipeline,
        "run_id": ctx.run_id,
        "execution_date": ctx.settings.execution_date.to_rfc3339(),
        "feature_version": ctx.settings.version_id(),
        "version_uri": ctx.version_uri(),
        "action": action,
        "raw_path": ctx.raw_uri(),
        "rows_raw": v.map(|v| v.stats.rows),
        "rows_feature": ctx.built.as_ref().map(|b| b.feature.rows),
        "raw_null_rate": v.map(|v| v.stats.null_rate()),
        "raw_valid": v.map(|v| v.valid()),
        "warnings": v.map(|v| v.warnings()),
        "validation": v.map(|v| &v.rules),
        "writes": writes,
        "schema": schema,
    })
}
