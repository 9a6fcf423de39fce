//! `summarize_run`: always runs, also after a failure. Logs exactly one summary line,
//! prints the machine-readable result on stdout, the one-sentence error on stderr, and
//! decides the exit code.

use serde::Serialize;
use serde_json::json;

use crate::config::Rerun;
use crate::context::{Report, RunContext, SkipReason};
use crate::dp_log::{keys, DpLine, Status, Step};
use crate::error::{exit_code, Error};
use crate::execution_date::now_iso;
use crate::redact::redact;
use crate::run_record::{airflow_context, RunRecord};
use crate::stages::build_features::{timings_json, ToolInfo};

/// How the stages ended: with an error in a step, or not.
pub type Failure = Option<(Step, Error)>;

/// What is known about a run that failed before its context existed.
pub struct EarlyRun<'a> {
    pub pipeline: &'a str,
    pub run_id: &'a str,
    /// The execution date as given (it may be what failed to parse).
    pub execution_date: Option<String>,
    pub duration_ms: u64,
    pub report: Report,
}

/// A run's result: the `summarize_run` line, the JSON on stdout, the run record and a
/// backfill's table row all say exactly this.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub status: Status,
    pub exit_code: u8,
    pub pipeline: String,
    pub run_id: String,
    pub execution_date: Option<String>,
    pub feature_version: Option<String>,
    pub feature_prefix: Option<String>,
    pub raw_path: Option<String>,
    pub rows: Option<u64>,
    pub null_rate: Option<f64>,
    pub valid: Option<bool>,
    /// Failed `warn` rules (they do not fail the run).
    pub warnings: Option<u64>,
    pub stored_rows: Option<u64>,
    pub latest_moved: Option<bool>,
    pub dry_run: bool,
    pub reason: Option<SkipReason>,
    pub failed_step: Option<&'static str>,
    pub error_kind: Option<&'static str>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

impl Outcome {
    fn new(pipeline: &str, run_id: &str, failure: &Failure, skip: Option<SkipReason>) -> Self {
        let (status, exit_code) = match (failure, skip) {
            (Some((_, e)), _) => (Status::Failed, e.exit_code()),
            (None, Some(SkipReason::RawMissing)) => {
                (Status::Skipped, exit_code::SKIPPED_ON_PURPOSE)
            }
            (None, Some(_)) => (Status::Skipped, exit_code::SUCCESS),
            (None, None) => (Status::Success, exit_code::SUCCESS),
        };
        Outcome {
            status,
            exit_code,
            pipeline: pipeline.to_string(),
            run_id: run_id.to_string(),
            execution_date: None,
            feature_version: None,
            feature_prefix: None,
            raw_path: None,
            rows: None,
            null_rate: None,
            valid: None,
            warnings: None,
            stored_rows: None,
            latest_moved: None,
            dry_run: false,
            reason: skip,
            failed_step: failure.as_ref().map(|(step, _)| step.as_str()),
            error_kind: failure.as_ref().map(|(_, e)| e.kind()),
            error: failure.as_ref().map(|(_, e)| redact(&e.to_string())),
            duration_ms: 0,
        }
    }
}

/// Summarizes a run whose context exists: writes its run record (not in dry runs), logs
/// the line, reports, and returns the outcome (its `exit_code` is the process's).
pub async fn run(ctx: &RunContext, failure: Failure) -> Outcome {
    let v = ctx.validated.as_ref();
    let settings = &ctx.settings;
    let mut outcome = Outcome::new(&settings.pipeline, &ctx.run_id, &failure, ctx.skip);
    outcome.execution_date = Some(settings.execution_date.to_rfc3339());
    outcome.feature_version = Some(settings.version_id());
    outcome.feature_prefix = Some(ctx.version_uri());
    outcome.raw_path = Some(ctx.raw_store.uri(&ctx.raw_key));
    outcome.rows = v.map(|v| v.stats.rows);
    outcome.null_rate = v.map(|v| v.stats.null_rate());
    outcome.valid = v.map(|v| v.valid());
    outcome.warnings = v.map(|v| v.warnings());
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
    let plan_printed =
        ctx.report == Report::Stdout && settings.dry_run && failure.is_none() && ctx.skip.is_none();
    if plan_printed {
        print_dry_run_plan(ctx);
    }
    let record_uri = record_key.map(|k| ctx.out_store.uri(&k));
    finish(&outcome, record_uri, ctx.report, plan_printed);
    outcome
}

/// Summarizes a run that failed while resolving its settings (step `configure`).
pub fn early(run: EarlyRun<'_>, error: Error) -> Outcome {
    let failure = Some((Step::Configure, error));
    let mut outcome = Outcome::new(run.pipeline, run.run_id, &failure, None);
    outcome.execution_date = run.execution_date;
    outcome.duration_ms = run.duration_ms;
    finish(&outcome, None, run.report, false);
    outcome
}

/// `_runs/<version>/<run_id>.json`; a failure to write it is logged, never fatal (the
/// run's own result stands, and the version never depends on it).
async fn write_record(ctx: &RunContext, outcome: &Outcome) -> Option<String> {
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
        tool: ToolInfo::current(),
        host: crate::lease::host_name(),
        pid: std::process::id(),
        airflow: airflow_context(),
    };
    match record.write(ctx.out_store.as_ref()).await {
        Ok(key) => Some(key),
        Err(e) => {
            tracing::warn!("could not write the run record: {e}");
            None
        }
    }
}

fn finish(o: &Outcome, record_uri: Option<String>, report: Report, plan_printed: bool) {
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

    if report == Report::Stdout && !plan_printed {
        println!("{}", result_json(o));
    }
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
    match (&o.error, o.reason) {
        (Some(msg), _) => eprintln!("{me}: error: {msg}"),
        (None, Some(SkipReason::RawMissing)) => eprintln!(
            "{me}: skipped: raw input {} does not exist (--skip-if-missing)",
            o.raw_path.as_deref().unwrap_or("?")
        ),
        (None, Some(SkipReason::VersionComplete)) => eprintln!(
            "{me}: {version} is already complete; nothing to do (use --force to rewrite it)"
        ),
        (None, Some(SkipReason::PublishedConcurrently)) => eprintln!(
            "{me}: another run published {version} while this one was working; kept its result"
        ),
        (None, Some(SkipReason::NothingToReprocess)) => {
            eprintln!("{me}: {version} is complete or was never run; nothing to reprocess")
        }
        (None, None) => {}
    }
}

/// The one-line JSON result of `featurepipe run` on stdout.
fn result_json(o: &Outcome) -> serde_json::Value {
    json!({
        "status": o.status.as_str(),
        "exit_code": o.exit_code,
        "pipeline": o.pipeline,
        "run_id": o.run_id,
        "execution_date": o.execution_date,
        "feature_version": o.feature_version,
        "feature_prefix": o.feature_prefix,
        "rows": o.rows,
        "null_rate": o.null_rate,
        "valid": o.valid,
        "warnings": o.warnings,
        "stored_rows": o.stored_rows,
        "latest_moved": o.latest_moved,
        "dry_run": o.dry_run,
        "reason": o.reason.map(SkipReason::as_str),
        "failed_step": o.failed_step,
        "error": o.error,
        "duration_ms": o.duration_ms,
    })
}

/// `--dry-run`: what would be written, on stdout, as pretty JSON.
fn print_dry_run_plan(ctx: &RunContext) {
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
    let plan = json!({
        "dry_run": true,
        "pipeline": ctx.settings.pipeline,
        "run_id": ctx.run_id,
        "execution_date": ctx.settings.execution_date.to_rfc3339(),
        "feature_version": ctx.settings.version_id(),
        "version_uri": ctx.version_uri(),
        "action": action,
        "raw_path": ctx.raw_store.uri(&ctx.raw_key),
        "rows_raw": v.map(|v| v.stats.rows),
        "rows_feature": v.map(|v| v.feature.rows),
        "raw_null_rate": v.map(|v| v.stats.null_rate()),
        "raw_valid": v.map(|v| v.valid()),
        "writes": writes,
        "schema": schema,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&plan).unwrap_or_else(|_| plan.to_string())
    );
}
