//! `summarize_run`: always runs, also after a failure. Logs exactly one summary line,
//! prints the machine-readable result on stdout, the one-sentence error on stderr, and
//! decides the exit code.

use serde_json::json;

use crate::context::{RunContext, SkipReason};
use crate::dp_log::{keys, DpLine, Status, Step};
use crate::error::{exit_code, Error};
use crate::redact::redact;

/// How the stages ended: with an error in a step, or not.
pub type Failure = Option<(Step, Error)>;

/// What is known about a run that failed before its context existed.
pub struct EarlyRun<'a> {
    pub pipeline: &'a str,
    pub run_id: &'a str,
    pub duration_ms: u64,
}

/// The summary values, from a full context or from an early failure.
#[derive(Default)]
struct Summary {
    pipeline: String,
    run_id: String,
    execution_date: Option<String>,
    raw_path: Option<String>,
    feature_prefix: Option<String>,
    feature_version: Option<String>,
    rows: Option<u64>,
    null_rate: Option<f64>,
    valid: Option<bool>,
    stored_rows: Option<u64>,
    latest_moved: Option<bool>,
    dry_run: bool,
    duration_ms: u64,
}

/// Summarizes a run whose context exists; returns the exit code.
pub fn run(ctx: &RunContext, failure: Failure) -> u8 {
    let v = ctx.validated.as_ref();
    let summary = Summary {
        pipeline: ctx.settings.pipeline.clone(),
        run_id: ctx.run_id.clone(),
        execution_date: Some(ctx.settings.execution_date.to_rfc3339()),
        raw_path: Some(ctx.raw_store.uri(&ctx.raw_key)),
        feature_prefix: Some(ctx.version_uri()),
        feature_version: Some(ctx.settings.version_id()),
        rows: v.map(|v| v.stats.rows),
        null_rate: v.map(|v| v.stats.null_rate()),
        valid: v.map(|v| v.valid()),
        stored_rows: ctx.stored.as_ref().filter(|s| !s.dry_run).map(|s| s.rows),
        latest_moved: ctx.stored.as_ref().map(|s| s.latest_moved),
        dry_run: ctx.settings.dry_run,
        duration_ms: ctx.started.elapsed().as_millis() as u64,
    };
    // stdout carries exactly one document: a completed dry run's plan, else the result.
    let plan_printed = ctx.settings.dry_run && failure.is_none() && ctx.skip.is_none();
    if plan_printed {
        print_dry_run_plan(ctx);
    }
    finish(&summary, failure, ctx.skip, plan_printed)
}

/// Summarizes a run that failed while resolving its settings (step `configure`).
pub fn early(run: EarlyRun<'_>, error: Error) -> u8 {
    let summary = Summary {
        pipeline: run.pipeline.to_string(),
        run_id: run.run_id.to_string(),
        duration_ms: run.duration_ms,
        ..Summary::default()
    };
    finish(&summary, Some((Step::Configure, error)), None, false)
}

fn finish(s: &Summary, failure: Failure, skip: Option<SkipReason>, plan_printed: bool) -> u8 {
    let (status, code) = match (&failure, skip) {
        (Some((_, e)), _) => (Status::Failed, e.exit_code()),
        (None, Some(SkipReason::RawMissing)) => (Status::Skipped, exit_code::SKIPPED_ON_PURPOSE),
        (None, Some(_)) => (Status::Skipped, exit_code::SUCCESS),
        (None, None) => (Status::Success, exit_code::SUCCESS),
    };
    let error = failure.as_ref().map(|(_, e)| redact(&e.to_string()));
    let mut line = DpLine::new(&s.pipeline, Step::SummarizeRun, status, &s.run_id)
        .with(keys::EXECUTION_DATE, s.execution_date.clone())
        .with(keys::RAW_PATH, s.raw_path.clone())
        .with(keys::FEATURE_PREFIX, s.feature_prefix.clone())
        .with(keys::FEATURE_VERSION, s.feature_version.clone())
        .with(keys::ROWS, s.rows)
        .rate(keys::NULL_RATE, s.null_rate)
        .with(keys::VALID, s.valid)
        .with(keys::STORED_ROWS, s.stored_rows)
        .with(keys::DRY_RUN, s.dry_run)
        .with(keys::DURATION_MS, s.duration_ms)
        .with(keys::EXIT_CODE, i32::from(code));
    if let Some(reason) = skip {
        line = line.with(keys::REASON, reason.as_str());
    }
    if let Some((step, e)) = &failure {
        line = line
            .with(keys::FAILED_STEP, step.as_str())
            .with(keys::ERROR_KIND, e.kind())
            .with(keys::ERROR, error.clone());
    }
    line.emit();

    let result = json!({
        "status": status.as_str(),
        "exit_code": code,
        "pipeline": s.pipeline,
        "run_id": s.run_id,
        "execution_date": s.execution_date,
        "feature_version": s.feature_version,
        "feature_prefix": s.feature_prefix,
        "rows": s.rows,
        "null_rate": s.null_rate,
        "valid": s.valid,
        "stored_rows": s.stored_rows,
        "latest_moved": s.latest_moved,
        "dry_run": s.dry_run,
        "reason": skip.map(SkipReason::as_str),
        "failed_step": failure.as_ref().map(|(step, _)| step.as_str()),
        "error": error,
        "duration_ms": s.duration_ms,
    });
    if !plan_printed {
        println!("{result}");
    }
    match (&error, skip) {
        (Some(msg), _) => eprintln!("featurepipe: error: {msg}"),
        (None, Some(SkipReason::RawMissing)) => eprintln!(
            "featurepipe: skipped: raw input {} does not exist (--skip-if-missing)",
            s.raw_path.as_deref().unwrap_or("?")
        ),
        (None, Some(SkipReason::VersionComplete)) => eprintln!(
            "featurepipe: {} is already complete; nothing to do (use --force to rewrite it)",
            s.feature_prefix.as_deref().unwrap_or("the version")
        ),
        (None, Some(SkipReason::PublishedConcurrently)) => eprintln!(
            "featurepipe: another run published {} while this one was working; kept its result",
            s.feature_prefix.as_deref().unwrap_or("the version")
        ),
        (None, None) => {}
    }
    code
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
        Some(true) if ctx.settings.force => "rewrite (--force)",
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
