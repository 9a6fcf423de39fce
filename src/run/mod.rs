//! One run of a pipeline for one execution date: the stage loop over a [`RunContext`].
//!
//! `extract_raw_data`, then the one streaming pass that `validate_data` and
//! `build_features` share (both start together and each ends with what its side found),
//! then `store_features`; `summarize_run` runs whatever happened. `featurepipe run` runs
//! one; `backfill` runs one per date.

pub mod context;
pub mod facts;
pub mod outcome;
pub mod stages;

use std::sync::Arc;
use std::time::Instant;

use crate::config::RunSettings;
use crate::error::{Error, Result};
use crate::interrupt::Interrupt;
use crate::log::{keys, DpLine, Status, Step};
use crate::observe::lineage::RunStart;
use crate::observe::progress::{Counters, Measure, Watch};
use crate::observe::Observe;
use crate::pass;
use crate::storage::s3::ClientError;
use crate::storage::Opener;
use crate::versions::layout;
use context::{Report, RunContext};
use outcome::{Failure, Outcome};
use stages::summarize_run::{self, EarlyRun};
use stages::{build_features, extract_raw_data, store_features, validate_data};

/// One run to do: its resolved settings (or why they could not be resolved).
pub struct RunRequest {
    pub settings: Result<RunSettings>,
    pub run_id: String,
    pub started: Instant,
    /// The pipeline name to log if the settings could not be resolved.
    pub pipeline_hint: String,
    /// The execution date as the user gave it, for the line of a run that fails to start.
    pub execution_date_hint: Option<String>,
    pub report: Report,
    /// Progress, metrics and lineage settings, shared by every run of the process.
    pub observe: Arc<Observe>,
}

/// How a run ended: what `summarize_run` reported, the error that failed it, and the
/// sentence a run that did not fail leaves for stderr.
pub struct RunEnd {
    pub outcome: Outcome,
    pub error: Option<Error>,
    pub note: Option<String>,
    /// A completed dry run's plan ([`Report::Stdout`] only): stdout carries it instead of
    /// the outcome's result.
    pub plan: Option<serde_json::Value>,
}

/// Runs one pipeline run: the stages in order, then `summarize_run` whatever happened.
/// Never panics on bad input; the outcome carries the exit code.
pub async fn run_one(request: RunRequest, interrupt: Interrupt) -> RunEnd {
    let RunRequest {
        settings,
        run_id,
        started,
        pipeline_hint,
        execution_date_hint,
        report,
        observe,
    } = request;
    let opened = match settings {
        Ok(settings) => {
            let observe = observe.clone();
            open(settings, &run_id, started, interrupt, report, observe).await
        }
        Err(e) => Err(e),
    };
    let mut ctx = match opened {
        Ok(ctx) => ctx,
        Err(e) => {
            let early = EarlyRun {
                pipeline: &pipeline_hint,
                run_id: &run_id,
                execution_date: execution_date_hint,
                duration_ms: started.elapsed().as_millis() as u64,
                report,
            };
            let outcome = summarize_run::early(early, &e);
            observe.ended(&facts::of_outcome(&outcome), None).await;
            return RunEnd {
                outcome,
                error: Some(e),
                note: None,
                plan: None,
            };
        }
    };

    let version_uri = ctx.version_uri();
    let lineage = ctx.observe.started(&RunStart {
        pipeline: &ctx.settings.pipeline,
        run_id: &ctx.run_id,
        started_at: chrono::Utc::now() - ctx.started.elapsed(),
        execution_date: Some(&ctx.settings.execution_date.to_rfc3339()),
        raw_uri: Some(&ctx.raw_uri()),
        version_uri: Some(&version_uri),
    });
    let failure: Failure = run_stages(&mut ctx).await.err();
    // Whatever stopped the run, nothing staged may linger (S3: abort the multipart
    // uploads). The staged files' one owner is the context; this is where they are
    // aborted, and the only place.
    for upload in ctx.staged.take_all() {
        upload.abort().await;
    }
    // The lease is given up while the run record is written: two independent writes.
    let lease = ctx.lease.take();
    let release = async move {
        if let Some(lease) = lease {
            lease.release().await;
        }
    };
    let ((), (outcome, note, plan)) = tokio::join!(release, summarize_run::run(&ctx, &failure));
    ctx.observe
        .ended(&facts::of_run(&ctx, &outcome), Some(lineage))
        .await;
    RunEnd {
        outcome,
        error: failure.map(|(_, e)| e),
        note,
        plan,
    }
}

/// The working stages, in order; `Err` names the step that failed.
async fn run_stages(ctx: &mut RunContext) -> std::result::Result<(), (Step, Error)> {
    let since = begin(ctx, Step::ExtractRawData);
    let extracted = match ctx.interrupt.check() {
        Ok(()) => extract_raw_data::run(ctx).await,
        Err(signal) => Err(signal.into()),
    };
    end(ctx, Step::ExtractRawData, since, extracted)?;
    if ctx.skip.is_some() {
        return Ok(());
    }

    // validate_data and build_features run together over one read of the raw object.
    let validate_since = begin(ctx, Step::ValidateData);
    let build_since = begin(ctx, Step::BuildFeatures);
    let (found, history, features, timing) = match read_raw(ctx).await {
        Ok(read) => read,
        Err(e) => {
            // Whatever stopped the pass (the read, the CSV, the staged upload, a signal)
            // is reported by the stage that reads: validate_data.
            let failed = end(ctx, Step::ValidateData, validate_since, Err(e));
            skipped(ctx, Step::BuildFeatures, build_since);
            return failed;
        }
    };
    let validated = validate_data::finish(ctx, found, history, timing);
    if let Err(e) = validated {
        let failed = end(ctx, Step::ValidateData, validate_since, Err(e));
        skipped(ctx, Step::BuildFeatures, build_since);
        return failed;
    }
    end(ctx, Step::ValidateData, validate_since, Ok(()))?;
    let built = build_features::finish(ctx, features);
    end(ctx, Step::BuildFeatures, build_since, built)?;

    let since = begin(ctx, Step::StoreFeatures);
    let stored = match ctx.interrupt.check() {
        Ok(()) => store_features::run(ctx).await,
        Err(signal) => Err(signal.into()),
    };
    end(ctx, Step::StoreFeatures, since, stored)
}

/// What the one pass found for each side, the earlier versions, and how it went.
type Read = (
    pass::ValidationFound,
    Vec<crate::versions::history::PastVersion>,
    pass::FeaturesBuilt,
    pass::PassTiming,
);

/// The one pass over the raw object: validate_data's and build_features' sides over a
/// single read, while the earlier versions (history rules, drift) are read beside it.
async fn read_raw(ctx: &mut RunContext) -> Result<Read> {
    ctx.interrupt.check()?;
    let source = ctx
        .extracted
        .as_mut()
        .and_then(|e| e.source.take())
        .ok_or_else(|| Error::Internal("the pass ran without an opened raw object".into()))?;
    let validation = validate_data::side(&ctx.settings.spec);
    let (features, parquet) = build_features::side(ctx).await?;
    // The pass borrows the staged uploads; the context keeps owning them.
    let mut staged = std::mem::take(&mut ctx.staged);
    let formats = ctx.settings.output.value;
    let (mut csv_upload, mut parquet_upload) = (None, None);
    for (name, upload) in staged.iter_mut() {
        match name {
            layout::FEATURE_CSV => csv_upload = upload.as_mut(),
            layout::FEATURE_PARQUET => parquet_upload = upload.as_mut(),
            _ => {}
        }
    }
    let outputs = pass::Outputs {
        csv: formats.csv.then_some(pass::Target { upload: csv_upload }),
        parquet: parquet.map(|layout| {
            (
                layout,
                pass::Target {
                    upload: parquet_upload,
                },
            )
        }),
    };
    let counters = Counters::new();
    let total = ctx.extracted.as_ref().map(|e| e.meta.size_bytes);
    let watch = Watch::start(
        progress_settings(ctx),
        line(ctx, Step::Progress, Status::Started),
        Measure::Bytes { total },
        counters.clone(),
    );
    let (read, history) = tokio::join!(
        pass::read_once(
            source,
            validation,
            features,
            outputs,
            &ctx.interrupt,
            &counters
        ),
        validate_data::read_history(ctx),
    );
    watch.finish().await;
    ctx.read_bytes = Some(counters.done());
    ctx.staged = staged;
    let read = read?;
    Ok((read.validation, history?, read.features, read.timing))
}

/// A run inside a backfill logs progress lines but draws no bar: the backfill draws one
/// for its dates.
fn progress_settings(ctx: &RunContext) -> crate::observe::progress::ProgressSettings {
    let settings = ctx.observe.progress;
    match ctx.report {
        Report::Stdout => settings,
        Report::Quiet => settings.lines_only(),
    }
}

/// Logs a step's `started` line; returns when it started.
fn begin(ctx: &RunContext, step: Step) -> Instant {
    line(ctx, step, Status::Started).emit();
    Instant::now()
}

/// Records a finished step's time and logs its end line; passes its error on, naming the
/// step.
fn end(
    ctx: &mut RunContext,
    step: Step,
    since: Instant,
    result: Result<()>,
) -> std::result::Result<(), (Step, Error)> {
    let ms = since.elapsed().as_millis() as u64;
    ctx.timings_ms.push((step, ms));
    match result {
        Err(e) => {
            step_line(ctx, step, Status::Failed)
                .with(keys::DURATION_MS, ms)
                .with(keys::ERROR_KIND, e.kind())
                .with(keys::ERROR, e.to_string())
                .emit();
            Err((step, e))
        }
        Ok(()) => {
            let status = if ctx.skip.is_some() {
                Status::Skipped
            } else {
                Status::Success
            };
            let mut l = step_line(ctx, step, status).with(keys::DURATION_MS, ms);
            if let Some(reason) = ctx.skip {
                l = l.with(keys::REASON, reason.as_str());
            }
            l.emit();
            Ok(())
        }
    }
}

/// Ends build_features when validate_data failed: what it computed is not published.
fn skipped(ctx: &mut RunContext, step: Step, since: Instant) {
    let ms = since.elapsed().as_millis() as u64;
    ctx.timings_ms.push((step, ms));
    line(ctx, step, Status::Skipped)
        .with(keys::DURATION_MS, ms)
        .with(keys::REASON, "validate_data_failed")
        .emit();
}

/// The store for the resolved settings: storage handles for the raw input and the prefix.
async fn open(
    settings: RunSettings,
    run_id: &str,
    started: Instant,
    interrupt: Interrupt,
    report: Report,
    observe: Arc<Observe>,
) -> Result<RunContext> {
    let mut opener = Opener::new(settings.s3.clone());
    // Many files: the store is their folder, the key the glob (for messages and
    // metadata); one file: its folder and its name.
    let (raw_dir, raw_key) = match &settings.raw_parts {
        Some(pattern) => (pattern.folder.clone(), pattern.glob.clone()),
        None => settings.raw.value.split_last(),
    };
    let usage = |e: ClientError| Error::Usage(e.to_string());
    let raw_store = opener.open(&raw_dir).await.map_err(usage)?;
    let out_store = opener.open(&settings.features.value).await.map_err(usage)?;
    Ok(RunContext {
        settings,
        run_id: run_id.to_string(),
        started,
        raw_store,
        raw_key,
        out_store,
        timings_ms: Vec::new(),
        interrupt,
        skip: None,
        lease: None,
        report,
        observe,
        read_bytes: None,
        staged: Default::default(),
        extracted: None,
        validated: None,
        built: None,
        stored: None,
    })
}

fn line(ctx: &RunContext, step: Step, status: Status) -> DpLine {
    let s: &RunSettings = &ctx.settings;
    DpLine::new(&s.pipeline, step, status, &ctx.run_id)
        .with(keys::EXECUTION_DATE, s.execution_date.to_rfc3339())
        .with(keys::FEATURE_VERSION, s.version_id())
}

/// A step's end line with the fields its typed result contributes.
fn step_line(ctx: &RunContext, step: Step, status: Status) -> DpLine {
    let l = line(ctx, step, status);
    match step {
        Step::ExtractRawData => {
            let l = l.with(keys::RAW_PATH, ctx.raw_uri());
            match &ctx.extracted {
                Some(e) => e.log_fields(l),
                None => l,
            }
        }
        Step::ValidateData => match &ctx.validated {
            Some(v) => v.log_fields(l),
            None => l,
        },
        Step::BuildFeatures => build_features::line_fields(ctx, l),
        Step::StoreFeatures => match &ctx.stored {
            Some(s) => s.log_fields(l),
            None => l.with(keys::FEATURE_PREFIX, ctx.version_uri()),
        },
        Step::Configure | Step::SummarizeRun | Step::BackfillSummary | Step::Progress => l,
    }
}
