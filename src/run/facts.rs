//! What a finished run hands to the observers (`observe::RunFacts`): read from the run
//! context and the outcome once `summarize_run` has spoken.

use std::time::Duration;

use chrono::Utc;

use super::context::RunContext;
use super::outcome::Outcome;
use crate::observe::{OutputFacts, RawFacts, RunFacts};

/// `error_kind` of a run stopped by SIGINT / SIGTERM (`Error::kind`).
const INTERRUPTED: &str = "interrupted";

/// The facts of a run whose context exists.
pub fn of_run(ctx: &RunContext, outcome: &Outcome) -> RunFacts {
    let mut facts = of_outcome(outcome);
    let v = ctx.validated.as_ref();
    let built = ctx.built.as_ref();
    let stored = ctx.stored.as_ref().filter(|s| !s.dry_run);
    facts.stages = ctx
        .timings_ms
        .iter()
        .map(|(step, ms)| (step.as_str(), Duration::from_millis(*ms)))
        .collect();
    let meta = ctx.extracted.as_ref().map(|e| &e.meta);
    facts.raw = Some(RawFacts {
        uri: ctx.raw_uri(),
        size_bytes: meta.map(|m| m.size_bytes),
        etag: meta.and_then(|m| m.etag.clone()),
        last_modified: meta.and_then(|m| m.last_modified.clone()),
        columns: v.and_then(|v| v.stats.header.clone()),
    });
    facts.read_bytes = ctx.read_bytes;
    facts.rows = v.map(|v| v.stats.rows);
    facts.null_count = v.map(|v| v.stats.null_count);
    facts.total_cells = v.map(|v| v.stats.total_cells);
    facts.null_rate = v.map(|v| v.stats.null_rate());
    facts.rules = v.map(|v| v.rules.clone());
    let published = stored.is_some() && ctx.skip.is_none() && outcome.failed_step.is_none();
    facts.output = OutputFacts {
        version_uri: Some(ctx.version_uri()),
        prefix_uri: Some(ctx.out_store.uri("")),
        feature_version: Some(ctx.settings.version_id()),
        columns: built.map(|b| {
            b.feature
                .columns
                .iter()
                .map(|(name, ty)| (name.clone(), ty.as_str()))
                .collect()
        }),
        feature_rows: built.map(|b| b.feature.rows),
        // Every data file of the version: feature.csv and feature.parquet, as asked for.
        feature_bytes: built.map(|b| {
            [&b.feature.csv, &b.feature.parquet]
                .into_iter()
                .flatten()
                .map(|f| f.size_bytes)
                .sum()
        }),
        column_nulls: built.map_or_else(Vec::new, |b| {
            b.feature
                .profile
                .iter()
                .map(|(name, p)| (name.clone(), p.nulls, p.count))
                .collect()
        }),
        files: stored.map_or(0, |s| s.writes.len() as u64),
        written_bytes: stored.map_or(0, |s| s.writes.iter().map(|(_, size)| size).sum()),
        published,
    };
    facts
}

/// The facts an outcome alone gives (a run that failed before its context existed).
pub fn of_outcome(outcome: &Outcome) -> RunFacts {
    let finished_at = Utc::now();
    let started_at = finished_at
        - chrono::Duration::milliseconds(outcome.duration_ms.min(i64::MAX as u64) as i64);
    let execution_timestamp = outcome
        .execution_date
        .as_deref()
        .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
        .map(|d| d.timestamp());
    RunFacts {
        pipeline: outcome.pipeline.clone(),
        run_id: outcome.run_id.clone(),
        status: outcome.status.as_str(),
        exit_code: outcome.exit_code,
        failed_step: outcome.failed_step,
        error_kind: outcome.error_kind,
        error: outcome.error.clone(),
        interrupted: outcome.error_kind == Some(INTERRUPTED),
        started_at,
        finished_at,
        execution_date: outcome.execution_date.clone(),
        execution_timestamp,
        stages: Vec::new(),
        raw: None,
        read_bytes: None,
        rows: None,
        null_count: None,
        total_cells: None,
        null_rate: None,
        rules: None,
        output: OutputFacts::default(),
    }
}
