//! A run's result: the `summarize_run` line, the JSON on stdout, the run record and a
//! backfill's table row all say exactly this.

use serde::Serialize;
use serde_json::json;

use super::context::SkipReason;
use crate::error::{Error, Finished};
use crate::log::redact::redact;
use crate::log::{Status, Step};
use crate::versions::documents::RuleResult;

/// How the stages ended: with an error in a step, or not.
pub type Failure = Option<(Step, Error)>;

/// What one run did.
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
    /// Rows of the feature file (for row grain equal to `rows`; for entity grain the
    /// number of keys).
    pub feature_rows: Option<u64>,
    pub stored_rows: Option<u64>,
    pub latest_moved: Option<bool>,
    pub dry_run: bool,
    pub reason: Option<SkipReason>,
    pub failed_step: Option<&'static str>,
    pub error_kind: Option<&'static str>,
    pub error: Option<String>,
    pub duration_ms: u64,
    /// Every rule's verdict, in the pipeline's order (as `metadata.json` `validation`),
    /// whether the run succeeded or failed; `None` if validation never ran.
    pub validation: Option<Vec<RuleResult>>,
}

impl Outcome {
    /// The outcome's status and exit code follow from how the stages ended: a failure's
    /// code ([`Error::exit_code`]), or a success / skip's ([`Finished::exit_code`]).
    pub fn new(
        pipeline: &str,
        run_id: &str,
        failure: Option<(Step, &Error)>,
        skip: Option<SkipReason>,
    ) -> Self {
        let (status, exit_code) = match (failure, skip) {
            (Some((_, e)), _) => (Status::Failed, e.exit_code()),
            (None, skip) => {
                let status = if skip.is_some() {
                    Status::Skipped
                } else {
                    Status::Success
                };
                (status, finished(skip, None).exit_code())
            }
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
            feature_rows: None,
            stored_rows: None,
            latest_moved: None,
            dry_run: false,
            reason: skip,
            failed_step: failure.map(|(step, _)| step.as_str()),
            error_kind: failure.map(|(_, e)| e.kind()),
            error: failure.map(|(_, e)| redact(&e.to_string())),
            duration_ms: 0,
            validation: None,
        }
    }

    /// The one-line JSON result of `featurepipe run` on stdout.
    pub fn result_json(&self) -> serde_json::Value {
        json!({
            "status": self.status.as_str(),
            "exit_code": self.exit_code,
            "pipeline": self.pipeline,
            "run_id": self.run_id,
            "execution_date": self.execution_date,
            "feature_version": self.feature_version,
            "feature_prefix": self.feature_prefix,
            "rows": self.rows,
            "null_rate": self.null_rate,
            "valid": self.valid,
            "warnings": self.warnings,
            "feature_rows": self.feature_rows,
            "stored_rows": self.stored_rows,
            "latest_moved": self.latest_moved,
            "dry_run": self.dry_run,
            "reason": self.reason.map(SkipReason::as_str),
            "failed_step": self.failed_step,
            "error": self.error,
            "duration_ms": self.duration_ms,
            "validation": self.validation,
        })
    }
}

/// How a run that did not fail ends for the process.
pub fn finished(skip: Option<SkipReason>, note: Option<String>) -> Finished {
    Finished {
        skipped_on_purpose: skip.is_some_and(SkipReason::on_purpose),
        note,
    }
}
