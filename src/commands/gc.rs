//! `featurepipe gc`: removes versions a prefix no longer needs, with their run records and
//! leases, and prints what it did (`versions::gc` decides and deletes; the report also
//! goes to `<prefix>/_gc/<gc_id>.json`).

use std::time::Duration;

use chrono_tz::Tz;
use clap::Args;

use super::args::{parse_secs, BoolValue, Sources};
use super::output::{self, human_bytes, plural, ReportFormat};
use super::prefix::{self, LocationArgs};
use crate::config::PipelineSettings;
use crate::error::{Error, Finished, Result};
use crate::log::{self, LogFormat};
use crate::values::duration::Span;
use crate::values::ids::new_run_id;
use crate::versions::gc::{Action, Gc, Policy, Report};

pub const GC_AFTER_HELP: &str = "\
A complete version is deleted when it is beyond --keep (not among the N newest complete
versions) and older than --older-than (by its execution date), each where given; an
incomplete one when nobody wrote it for --grace. Never deleted: the version _latest names,
and a version another run holds a lease on (gc takes the version's lease while deleting, so a
run of that version waits for it, exit 75). _SUCCESS goes first, then the files: a reader
never sees a complete version with files missing. The version's _runs/ and _leases/ entries
go with it; lease generations below the top of kept versions go too. The report is printed
and written to <prefix>/_gc/<gc_id>.json (not with --dry-run). Exit 0 when everything planned
was deleted or left alone on purpose (leased, changed), 5 when a delete failed.

Examples:
  featurepipe gc --keep 30 --dry-run --features s3://feature-bucket/features/daily_user_events
  featurepipe gc --keep 7 --older-than 30d --config pipeline.toml
  DP_GC_OLDER_THAN=90d featurepipe gc --config pipeline.toml --output json";

/// `featurepipe gc`.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("policy").required(true).multiple(true).args(["keep", "older_than"])))]
pub struct GcArgs {
    /// Keep the N newest complete versions (and delete older ones, if also --older-than)
    #[arg(long, env = "DP_GC_KEEP", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: Option<u32>,

    /// Delete complete versions whose execution date is older than this: 30d, 2w, 12h
    /// (with --keep: only those also beyond it)
    #[arg(long, env = "DP_GC_OLDER_THAN", value_name = "AGE")]
    pub older_than: Option<Span>,

    /// Delete incomplete versions nobody wrote for this long (a crashed run's leftovers)
    #[arg(long, env = "DP_GC_GRACE", value_name = "AGE", default_value = "24h")]
    pub grace: Span,

    /// Print what would be deleted; delete nothing, write nothing
    #[arg(long, env = "DP_DRY_RUN", value_parser = BoolValue)]
    pub dry_run: bool,

    /// Seconds gc's lease on a version lasts without renewal (renewed while deleting)
    #[arg(long, env = "DP_LEASE_TTL", value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    pub lease_ttl: Duration,

    /// How the report is printed on stdout
    #[arg(long, env = "DP_GC_OUTPUT", value_enum, default_value_t = ReportFormat::Table)]
    pub output: ReportFormat,

    #[command(flatten)]
    pub location: LocationArgs,
}

/// A gc with its settings resolved (or the reason they could not be).
pub struct Prepared {
    args: GcArgs,
    settings: Result<PipelineSettings>,
}

/// Resolves the prefix's settings; errors wait until logging is set up.
pub fn prepare(args: GcArgs, sources: &Sources<'_>) -> Prepared {
    Prepared {
        settings: args.location.resolve(sources),
        args,
    }
}

impl Prepared {
    /// How to log: the chosen format, in the pipeline's zone.
    pub fn log_setup(&self) -> (LogFormat, Tz) {
        self.args.location.log_setup(&self.settings)
    }

    /// Deletes (or with `--dry-run` reports) and prints the report; exit 5 if a delete
    /// failed (after the other versions were done).
    pub fn execute(self) -> Result<Finished> {
        let Prepared { args, settings } = self;
        let settings = settings?;
        let policy = Policy {
            keep: args.keep.map(|n| n as usize),
            older_than: args.older_than,
            grace: args.grace,
            now: chrono::Utc::now(),
            tz: settings.timezone,
        };
        let runtime = super::runtime()?;
        let (report, failure) = runtime.block_on(async {
            let prefix = prefix::open(settings).await?;
            let gc = Gc {
                store: prefix.store.clone(),
                gc_id: format!("gc-{}", new_run_id()),
                policy,
                dry_run: args.dry_run,
                lease_ttl: args.lease_ttl,
            };
            Ok::<_, Error>(gc.run().await?)
        })?;
        match args.output {
            ReportFormat::Json => log::stdout(&format!(
                "{}\n",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            )),
            ReportFormat::Table => log::stdout(&table(&report)),
        }
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(Finished::success()),
        }
    }
}

fn table(r: &Report) -> String {
    let mut rows = vec![["version", "state", "action", "objects", "size", "why"]
        .map(String::from)
        .to_vec()];
    for v in &r.versions {
        let counted = matches!(v.action, Action::Deleted | Action::WouldDelete);
        rows.push(vec![
            v.version.clone(),
            serde_json::to_value(v.state)
                .ok()
                .and_then(|s| s.as_str().map(str::to_string))
                .unwrap_or_default(),
            serde_json::to_value(v.action)
                .ok()
                .and_then(|s| s.as_str().map(str::to_string))
                .unwrap_or_default(),
            if counted {
                v.objects.to_string()
            } else {
                String::new()
            },
            if counted {
                human_bytes(v.bytes)
            } else {
                String::new()
            },
            v.reason.clone(),
        ]);
    }
    let mut out = output::table(&rows);
    let verb = if r.dry_run { "would delete" } else { "deleted" };
    out.push_str(&format!(
        "\n{}: {verb} {}, {}, {} ({}); _latest: {}{}\n",
        r.gc_id,
        plural(r.versions_deleted as u64, "version", "versions"),
        plural(r.objects_deleted as u64, "object", "objects"),
        human_bytes(r.bytes_freed),
        plural(
            r.stale_lease_objects as u64,
            "stale lease object",
            "stale lease objects"
        ),
        r.latest.as_deref().unwrap_or("none"),
        match (&r.filed, r.dry_run) {
            (_, true) => " (dry run: nothing deleted)".to_string(),
            (Some(key), false) => format!("; report: {key}"),
            (None, false) => "; no report written".to_string(),
        },
    ));
    for e in &r.errors {
        out.push_str(&format!("error: {e}\n"));
    }
    out
}
