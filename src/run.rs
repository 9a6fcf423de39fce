//! `featurepipe run`: resolves settings, opens storage, runs the four working stages in
//! order over one [`RunContext`], then `summarize_run` whatever happened. [`run_one`] is
//! the same run for `backfill`, which calls it once per date.

use std::sync::Arc;
use std::time::Instant;

use crate::cli::{CommonArgs, RunArgs};
use crate::config::{self, Rerun, When};
use crate::context::{Report, RunContext, RunSettings};
use crate::dp_log::{self, keys, DpLine, Status, Step};
use crate::error::{Error, Result};
use crate::execution_date::DEFAULT_TIMEZONE;
use crate::interrupt::Interrupt;
use crate::pipeline::DEFAULT_PIPELINE;
use crate::run_id::new_run_id;
use crate::stages::summarize_run::{self, EarlyRun, Outcome};
use crate::stages::{build_features, extract_raw_data, store_features, validate_data};
use crate::storage::local::LocalStore;
use crate::storage::s3::{build_client, S3Store};
use crate::storage::{ObjectStore, StorageUri};

/// `featurepipe run`: one run, its result on stdout; returns the process exit code.
pub fn execute(args: RunArgs) -> u8 {
    let run_id = new_run_id();
    let started = Instant::now();
    // Settings first, so log time stamps use the pipeline zone even when it comes from
    // the pipeline file; a bad zone is then reported by `configure`, in Seoul time.
    let when = When::Flag(args.execution_date.as_deref());
    let settings = config::resolve(&args.common, when, Rerun::IfIncomplete);
    let log_tz = match &settings {
        Ok(s) => s.timezone,
        Err(_) => DEFAULT_TIMEZONE,
    };
    dp_log::init(args.common.log_format, log_tz);
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let request = RunRequest {
        settings,
        run_id,
        started,
        execution_date_hint: args.execution_date.clone(),
        report: Report::Stdout,
    };
    runtime.block_on(async {
        let interrupt = Interrupt::listen();
        run_one(&args.common, request, interrupt).await.exit_code
    })
}

/// The async runtime every command runs on: two workers, as the machine has two cores
/// to spare for I/O beside the scanner and feature threads.
pub fn runtime() -> std::result::Result<tokio::runtime::Runtime, u8> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("featurepipe: error: cannot start the async runtime: {e}");
            crate::error::exit_code::INTERNAL
        })
}

/// Flags clap rejected (unknown flag, bad value): still one `summarize_run` line, so the
/// failed run shows up in Loki, then clap's own explanation, exit 2. `--help` and
/// `--version` print and exit 0.
pub fn reject_flags(err: clap::Error) -> u8 {
    if !err.use_stderr() {
        let _ = err.print();
        return crate::error::exit_code::SUCCESS;
    }
    let format = match std::env::var("DP_LOG_FORMAT").as_deref() {
        Ok("json") => dp_log::LogFormat::Json,
        _ => dp_log::LogFormat::Text,
    };
    dp_log::init(format, DEFAULT_TIMEZONE);
    let _ = err.print();
    let sentence = err
        .to_string()
        .lines()
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
        .to_string();
    let help = match std::env::args().nth(1).as_deref() {
        Some(command @ ("run" | "backfill")) => format!("featurepipe {command} --help"),
        _ => "featurepipe --help".to_string(),
    };
    let pipeline = std::env::var("DP_PIPELINE_NAME").unwrap_or_else(|_| DEFAULT_PIPELINE.into());
    let run_id = new_run_id();
    let early = EarlyRun {
        pipeline: &pipeline,
        run_id: &run_id,
        execution_date: std::env::var("DP_EXECUTION_DATE").ok(),
        duration_ms: 0,
        report: Report::Stdout,
    };
    summarize_run::early(early, Error::Usage(format!("{sentence} (see {help})"))).exit_code
}

/// One run to do: its resolved settings (or why they could not be resolved).
pub struct RunRequest {
    pub settings: Result<RunSettings>,
    pub run_id: String,
    pub started: Instant,
    /// The execution date as the user gave it, for the line of a run that fails to start.
    pub execution_date_hint: Option<String>,
    pub report: Report,
}

/// Runs one pipeline run: the four working stages in order, then `summarize_run`
/// whatever happened. Never panics on bad input; the outcome carries the exit code.
pub async fn run_one(common: &CommonArgs, request: RunRequest, interrupt: Interrupt) -> Outcome {
    let RunRequest {
        settings,
        run_id,
        started,
        execution_date_hint,
        report,
    } = request;
    let opened = match settings {
        Ok(settings) => open(settings, common, &run_id, started, interrupt, report).await,
        Err(e) => Err(e),
    };
    let mut ctx = match opened {
        Ok(ctx) => ctx,
        Err(e) => {
            let pipeline = config::pipeline_name_hint(common);
            let early = EarlyRun {
                pipeline: &pipeline,
                run_id: &run_id,
                execution_date: execution_date_hint,
                duration_ms: started.elapsed().as_millis() as u64,
                report,
            };
            return summarize_run::early(early, e);
        }
    };

    let mut failure = None;
    for step in [
        Step::ExtractRawData,
        Step::ValidateData,
        Step::BuildFeatures,
        Step::StoreFeatures,
    ] {
        line(&ctx, step, Status::Started).emit();
        let t = Instant::now();
        let result = match ctx.interrupt.check() {
            Err(e) => Err(e),
            Ok(()) => match step {
                Step::ExtractRawData => extract_raw_data::run(&mut ctx).await,
                Step::ValidateData => validate_data::run(&mut ctx).await,
                Step::BuildFeatures => build_features::run(&mut ctx).await,
                _ => store_features::run(&mut ctx).await,
            },
        };
        let ms = t.elapsed().as_millis() as u64;
        ctx.timings_ms.push((step, ms));
        match result {
            Err(e) => {
                step_line(&ctx, step, Status::Failed)
                    .with(keys::DURATION_MS, ms)
                    .with(keys::ERROR_KIND, e.kind())
                    .with(keys::ERROR, e.to_string())
                    .emit();
                failure = Some((step, e));
                break;
            }
            Ok(()) => {
                let status = if ctx.skip.is_some() {
                    Status::Skipped
                } else {
                    Status::Success
                };
                let mut l = step_line(&ctx, step, status).with(keys::DURATION_MS, ms);
                if let Some(reason) = ctx.skip {
                    l = l.with(keys::REASON, reason.as_str());
                }
                l.emit();
                if ctx.skip.is_some() {
                    break;
                }
            }
        }
    }
    // Whatever stopped the run, nothing staged may linger (S3: abort the multipart upload),
    // and the version is free for the next run at once.
    if let Some(upload) = ctx.validated.as_mut().and_then(|v| v.feature.upload.take()) {
        upload.abort().await;
    }
    // The lease is given up while the run record is written: two independent writes.
    let lease = ctx.lease.take();
    let release = async move {
        if let Some(lease) = lease {
            lease.release().await;
        }
    };
    let ((), outcome) = tokio::join!(release, summarize_run::run(&ctx, failure));
    outcome
}

/// The `configure` step, second half: storage handles for the resolved settings.
async fn open(
    settings: RunSettings,
    args: &CommonArgs,
    run_id: &str,
    started: Instant,
    interrupt: Interrupt,
    report: Report,
) -> Result<RunContext> {
    let mut s3_client = None;
    let (raw_dir, raw_key) = settings.raw.split_last();
    let raw_store = open_store(&raw_dir, args, &mut s3_client).await?;
    let out_store = open_store(&settings.features, args, &mut s3_client).await?;
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
        extracted: None,
        validated: None,
        built: None,
        stored: None,
    })
}

/// Opens the store for a location; the S3 client is built once, only if needed.
async fn open_store(
    uri: &StorageUri,
    args: &CommonArgs,
    client: &mut Option<aws_sdk_s3::Client>,
) -> Result<Arc<dyn ObjectStore>> {
    match uri {
        StorageUri::Local(path) => {
            // Absolute, so metadata and logs say where the data really was.
            let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            Ok(Arc::new(LocalStore::new(path)))
        }
        StorageUri::S3 { bucket, key } => {
            if client.is_none() {
                let opts = args.s3.options(args.endpoint_url.clone());
                *client = Some(build_client(&opts).await.map_err(Error::Usage)?);
            }
            let c = client
                .clone()
                .ok_or_else(|| Error::Internal("no S3 client".into()))?;
            Ok(Arc::new(S3Store::new(c, bucket.clone(), key.clone())))
        }
    }
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
            let l = l.with(keys::RAW_PATH, ctx.raw_store.uri(&ctx.raw_key));
            match &ctx.extracted {
                Some(e) => e.log_fields(l),
                None => l,
            }
        }
        Step::ValidateData => match &ctx.validated {
            Some(v) => v.log_fields(l),
            None => l,
        },
        Step::BuildFeatures => match &ctx.built {
            Some(b) => b.log_fields(l),
            None => l,
        },
        Step::StoreFeatures => match &ctx.stored {
            Some(s) => s.log_fields(l),
            None => l.with(keys::FEATURE_PREFIX, ctx.version_uri()),
        },
        Step::Configure | Step::SummarizeRun | Step::BackfillSummary => l,
    }
}
