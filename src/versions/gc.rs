//! Removing what a prefix no longer needs (`featurepipe gc`): complete versions beyond
//! `--keep` and/or older than `--older-than`, incomplete versions nobody wrote for
//! `--grace`, the `_runs/` and `_leases/` entries of what is removed, and lease
//! generations below the top of what is kept.
//!
//! What makes it safe beside running pipelines:
//! - the version `_latest` names is never removed (`_latest` is read again, under the
//!   lease, right before each version);
//! - a version is removed only by the holder of its lease: gc takes `_leases/<version>`
//!   like a run does, so a run and a gc of one version never interleave (the run exits
//!   75 and retries; gc leaves a version another run holds for the next gc);
//! - under the lease the version is looked at again: one that became complete since it
//!   was listed, or was rewritten, is left alone;
//! - `_SUCCESS` goes first, then the other files, each only as the revision gc looked at
//!   (`delete_if`, DeleteObjects with ETags): a reader never sees a complete version with
//!   files missing, and a stalled writer's newer file is never removed by mistake;
//! - its lease generations go last, after release, and only those up to gc's own: a run
//!   that took the lease since keeps it.
//!
//! [`plan`] decides (pure); [`execute`] acts on the plan, or with `dry_run` only reports
//! what it would do.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::catalog::{self, parse_utc, Entry, Listing};
use super::is_version_id;
use super::latest::read_latest;
use super::layout::{self, GC_DIR, LEASES_DIR, RUNS_DIR};
use super::lease::{self, generations, Acquired, Lease};
use crate::storage::{join_key, BatchDelete, ObjectStore, PutMode, StorageError, StorageResult};
use crate::values::duration::Span;
use crate::values::execution_date::ExecutionDate;

/// Reports kept in `_gc/` (older ones are removed, so gc does not grow what it cleans).
pub const REPORTS_KEPT: usize = 100;

/// What may be removed.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Keep the newest N complete versions.
    pub keep: Option<usize>,
    /// Keep complete versions whose execution date is younger than this.
    pub older_than: Option<Span>,
    /// Keep incomplete versions written to more recently than this.
    pub grace: Span,
    pub now: DateTime<Utc>,
    /// The pipeline zone: version ids are wall-clock times in it.
    pub tz: Tz,
}

/// What a version is, as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Complete,
    Incomplete,
    /// No version folder: only `_runs/` or `_leases/` entries (runs that failed before
    /// writing anything, or what a crashed gc left).
    Orphan,
}

/// What gc does (or did) with a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Keep,
    Delete,
    /// `--dry-run`: would be deleted.
    WouldDelete,
    Deleted,
    /// Planned for deletion, left alone (leased, changed, named by `_latest`).
    Skipped,
    Failed,
}

/// One version's line in the report.
#[derive(Debug, Clone, Serialize)]
pub struct VersionReport {
    pub version: String,
    pub state: State,
    pub action: Action,
    pub reason: String,
    /// Objects deleted (or that would be), with their bytes: the version's files, its run
    /// records and its lease generations.
    pub objects: usize,
    pub bytes: u64,
    #[serde(skip)]
    planned: Option<Entry>,
}

/// What gc did, as printed and written to `_gc/<gc_id>.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub gc_id: String,
    pub prefix: String,
    pub started_at: String,
    pub dry_run: bool,
    pub policy: PolicyReport,
    pub latest: Option<String>,
    pub versions: Vec<VersionReport>,
    /// Lease generations below the top of kept versions (and `_latest`'s).
    pub stale_lease_objects: usize,
    pub stale_lease_bytes: u64,
    pub versions_deleted: usize,
    pub objects_deleted: usize,
    pub bytes_freed: u64,
    pub errors: Vec<String>,
    /// Where the report was filed (`_gc/<gc_id>.json`); `None` with `--dry-run`, and when
    /// the prefix holds nothing featurepipe wrote (a mistyped prefix is not created).
    pub filed: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyReport {
    pub keep: Option<usize>,
    pub older_than: Option<String>,
    pub grace: String,
}

/// The instant a version id names (wall-clock time in `tz`).
pub fn version_time(version: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let stamp = version.strip_prefix("v_")?;
    let naive = NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S").ok()?;
    Some(ExecutionDate::local(naive, tz).datetime().to_utc())
}

/// Decides every version's fate: `listing`'s, and `orphans` (ids only under `_runs/` or
/// `_leases/`).
pub fn plan(listing: &Listing, orphans: &[String], policy: &Policy) -> Vec<VersionReport> {
    let latest = listing.latest.as_ref().map(|l| l.feature_version.as_str());
    let complete: Vec<&str> = listing
        .versions
        .iter()
        .rev()
        .filter(|e| e.complete)
        .map(|e| e.version.as_str())
        .collect();
    // The N-th newest complete version: anything older is beyond --keep.
    let keep_from = policy
        .keep
        .map(|n| complete.get(n.saturating_sub(1)).copied());
    let expired = |version: &str| -> Option<String> {
        let mut why = Vec::new();
        if let Some(cut) = keep_from {
            match cut {
                Some(nth) if version < nth => {
                    why.push(format!("older than {}", newest(policy.keep.unwrap_or(0))))
                }
                _ => return None,
            }
        }
        if let Some(span) = policy.older_than {
            let age = version_time(version, policy.tz).map(|t| policy.now - t);
            match age {
                Some(age) if age > span.chrono() => why.push(format!("older than {span}")),
                _ => return None,
            }
        }
        (!why.is_empty()).then(|| why.join(" and "))
    };
    let line =
        |version: &str, state, action, reason: String, planned: Option<&Entry>| VersionReport {
            version: version.to_string(),
            state,
            action,
            reason,
            objects: 0,
            bytes: 0,
            planned: planned.cloned(),
        };

    let mut lines = Vec::new();
    for e in &listing.versions {
        let v = e.version.as_str();
        let state = if e.complete {
            State::Complete
        } else {
            State::Incomplete
        };
        if Some(v) == latest {
            lines.push(line(
                v,
                state,
                Action::Keep,
                "named by _latest".into(),
                Some(e),
            ));
            continue;
        }
        if let Some(holder) = &e.writing {
            lines.push(line(
                v,
                state,
                Action::Keep,
                format!("being written by {holder}"),
                Some(e),
            ));
            continue;
        }
        let (action, reason) = if e.complete {
            match expired(v) {
                Some(why) => (Action::Delete, why),
                None => (Action::Keep, kept_because(policy)),
            }
        } else {
            let written = e.last_write.as_deref().and_then(parse_utc);
            let idle = written.map(|t| policy.now - t);
            match idle {
                Some(idle) if idle <= policy.grace.chrono() => (
                    Action::Keep,
                    format!(
                        "incomplete, written {} ago (within --grace {})",
                        ago(idle),
                        policy.grace
                    ),
                ),
                Some(idle) => (
                    Action::Delete,
                    format!(
                        "incomplete, last written {} ago (more than --grace {})",
                        ago(idle),
                        policy.grace
                    ),
                ),
                None => (Action::Delete, "incomplete, and nothing in it".into()),
            }
        };
        lines.push(line(v, state, action, reason, Some(e)));
    }
    for v in orphans {
        let (action, reason) = match expired(v) {
            Some(why) => (Action::Delete, format!("only run records or leases; {why}")),
            None => (Action::Keep, "only run records or leases; recent".into()),
        };
        lines.push(line(v, State::Orphan, action, reason, None));
    }
    lines.sort_by(|a, b| a.version.cmp(&b.version));
    lines
}

/// `the newest complete`, `the 7 newest complete`.
fn newest(n: usize) -> String {
    if n == 1 {
        "the newest complete".into()
    } else {
        format!("the {n} newest complete")
    }
}

fn kept_because(policy: &Policy) -> String {
    match (policy.keep, policy.older_than) {
        (Some(1), Some(span)) => format!("the newest complete, or younger than {span}"),
        (Some(1), None) => "the newest complete".into(),
        (Some(n), Some(span)) => format!("among {}, or younger than {span}", newest(n)),
        (Some(n), None) => format!("among {}", newest(n)),
        (None, Some(span)) => format!("younger than {span}"),
        (None, None) => "no --keep or --older-than given".into(),
    }
}

/// `3d`, `5h`, `12m`: roughly how long ago.
fn ago(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(0) as u64;
    let (n, unit) = match secs {
        s if s >= 86_400 => (s / 86_400, "d"),
        s if s >= 3600 => (s / 3600, "h"),
        s if s >= 60 => (s / 60, "m"),
        s => (s, "s"),
    };
    format!("{n}{unit}")
}

/// How a gc run goes.
pub struct Gc {
    pub store: Arc<dyn ObjectStore>,
    pub gc_id: String,
    pub policy: Policy,
    pub dry_run: bool,
    pub lease_ttl: Duration,
}

/// One object to delete, as looked at.
#[derive(Debug, Clone)]
struct Doomed {
    key: String,
    size: u64,
    revision: Option<String>,
}

impl Gc {
    /// Lists, plans, and deletes (or with `dry_run` reports); writes the report to
    /// `_gc/<gc_id>.json` unless dry. The first storage error (if any) comes back beside
    /// the report: gc goes on with the other versions first.
    pub async fn run(&self) -> StorageResult<(Report, Option<StorageError>)> {
        let store = self.store.clone();
        let listing = catalog::list(store.clone()).await?;
        let mut orphans: Vec<String> = Vec::new();
        let mut housekeeping = false;
        for dir in [RUNS_DIR, LEASES_DIR] {
            let folders = store.list_folders(dir).await?;
            housekeeping |= !folders.is_empty();
            for id in folders {
                if is_version_id(&id) && listing.get(&id).is_none() && !orphans.contains(&id) {
                    orphans.push(id);
                }
            }
        }
        // No version, no `_latest`, no run record or lease: nothing featurepipe wrote is
        // here, most likely a mistyped prefix. Say so, and write nothing there.
        let empty = listing.versions.is_empty() && listing.latest.is_none() && !housekeeping;
        if empty {
            tracing::warn!(
                "nothing under {}: no version, _latest, run record or lease (is this the right \
                 prefix?); no report written",
                store.uri("")
            );
        }
        let mut versions = plan(&listing, &orphans, &self.policy);
        let mut report = Report {
            gc_id: self.gc_id.clone(),
            prefix: store.uri(""),
            started_at: self.policy.now.with_timezone(&self.policy.tz).to_rfc3339(),
            dry_run: self.dry_run,
            policy: PolicyReport {
                keep: self.policy.keep,
                older_than: self.policy.older_than.map(|s| s.to_string()),
                grace: self.policy.grace.to_string(),
            },
            latest: listing.latest.as_ref().map(|l| l.feature_version.clone()),
            versions: Vec::new(),
            stale_lease_objects: 0,
            stale_lease_bytes: 0,
            versions_deleted: 0,
            objects_deleted: 0,
            bytes_freed: 0,
            errors: Vec::new(),
            filed: None,
        };
        let mut first_error: Option<StorageError> = None;
        let mut note = |report: &mut Report, e: StorageError| {
            report.errors.push(e.to_string());
            first_error.get_or_insert(e);
        };

        for line in &mut versions {
            if line.action != Action::Delete {
                continue;
            }
            let done = if self.dry_run {
                self.preview(line).await
            } else {
                self.remove(line).await
            };
            if let Err(e) = done {
                line.action = Action::Failed;
                line.reason = format!("{}; failed: {e}", line.reason);
                note(&mut report, e);
            }
        }

        // Lease generations below the top, of every lease dir still in use.
        let removed: Vec<&str> = versions
            .iter()
            .filter(|l| matches!(l.action, Action::Deleted | Action::WouldDelete))
            .map(|l| l.version.as_str())
            .collect();
        match self.stale_leases(&removed).await {
            Ok((objects, bytes)) => {
                report.stale_lease_objects = objects;
                report.stale_lease_bytes = bytes;
            }
            Err(e) => note(&mut report, e),
        }

        let gone = |l: &&VersionReport| matches!(l.action, Action::Deleted | Action::WouldDelete);
        report.versions_deleted = versions.iter().filter(gone).count();
        report.objects_deleted = versions
            .iter()
            .filter(gone)
            .map(|l| l.objects)
            .sum::<usize>()
            + report.stale_lease_objects;
        report.bytes_freed =
            versions.iter().filter(gone).map(|l| l.bytes).sum::<u64>() + report.stale_lease_bytes;
        report.versions = versions;

        if !self.dry_run && !empty {
            report.filed = Some(join_key(GC_DIR, &format!("{}.json", self.gc_id)));
            if let Err(e) = self.file_report(&report).await {
                report.filed = None;
                note(&mut report, e);
            }
        }
        Ok((report, first_error))
    }

    /// `--dry-run`: what removing `line`'s version would delete, and whether a live lease
    /// would stop it.
    async fn preview(&self, line: &mut VersionReport) -> StorageResult<()> {
        let store = self.store.as_ref();
        if let Some(holder) = lease::live_holder(store, &lease_dir(&line.version)).await? {
            line.action = Action::Skipped;
            line.reason = format!("{}; but leased by {}", line.reason, holder.describe());
            return Ok(());
        }
        let files = self.inventory(&line.version).await?;
        let leases = self
            .look(&store.list(&lease_dir(&line.version)).await?)
            .await?;
        line.objects = files.len() + leases.len();
        line.bytes = files.iter().chain(&leases).map(|d| d.size).sum();
        line.action = Action::WouldDelete;
        Ok(())
    }

    /// Removes `line`'s version under its lease (see the module doc for the order).
    async fn remove(&self, line: &mut VersionReport) -> StorageResult<()> {
        let store = self.store.as_ref();
        let v = line.version.clone();
        // The lease objects there now: taking the lease removes the older ones, the rest
        // go at the end. (gc's own generation is its own business: not counted.)
        let prior = self.look(&store.list(&lease_dir(&v)).await?).await?;
        let lease = match Lease::acquire(
            self.store.clone(),
            &lease_dir(&v),
            &self.gc_id,
            self.lease_ttl,
        )
        .await?
        {
            Acquired::Held(lease) => lease,
            Acquired::Busy(holder) => {
                line.action = Action::Skipped;
                line.reason = format!("{}; but leased by {}", line.reason, holder.describe());
                return Ok(());
            }
        };
        let removed = self.remove_held(line, &lease).await;
        let generation = lease.generation();
        lease.release().await;
        if !removed? {
            return Ok(());
        }
        // Gc's own lease generation and older ones; a run that took over since keeps its.
        let leases: Vec<String> = generations(store, &lease_dir(&v))
            .await?
            .into_iter()
            .filter(|(g, _)| *g <= generation)
            .map(|(_, key)| key)
            .collect();
        let leases = self.look(&leases).await?;
        self.delete_all(&leases, false).await?;
        line.objects += prior.len();
        line.bytes += prior.iter().map(|d| d.size).sum::<u64>();
        Ok(())
    }

    /// Under the lease: checks the version is still what was planned, then deletes
    /// `_SUCCESS`, the other files and the run records. `false` if it was left alone.
    async fn remove_held(&self, line: &mut VersionReport, lease: &Lease) -> StorageResult<bool> {
        let store = self.store.as_ref();
        let v = line.version.clone();
        let skip = |line: &mut VersionReport, why: &str| {
            line.action = Action::Skipped;
            line.reason = format!("{}; but {why}", line.reason);
            Ok(false)
        };
        if read_latest(store)
            .await?
            .is_some_and(|l| l.feature_version == v)
        {
            return skip(line, "_latest names it now");
        }
        let now = catalog::entry(store, &v).await?;
        let unchanged = match (&line.planned, line.state) {
            (Some(planned), State::Complete) => now.complete && now.manifest == planned.manifest,
            (Some(_), State::Incomplete) => !now.complete,
            (_, State::Orphan) => now.objects == 0 && !now.complete,
            (None, _) => false,
        };
        if !unchanged {
            return skip(
                line,
                "it changed since it was listed (left for the next gc)",
            );
        }

        let files = self.inventory(&v).await?;
        let (marker, rest): (Vec<Doomed>, Vec<Doomed>) = files
            .into_iter()
            .partition(|d| d.key == join_key(&v, layout::SUCCESS));
        if let Err(e) = lease.ensure_held().await {
            return skip(line, &format!("its lease was lost ({e})"));
        }
        // The completion mark first: from here on the version is incomplete to readers.
        for m in &marker {
            let deleted = match &m.revision {
                Some(revision) => store.delete_if(&m.key, revision).await,
                None => store.delete(&m.key).await,
            };
            match deleted {
                Ok(()) => {
                    line.objects += 1;
                    line.bytes += m.size;
                }
                Err(StorageError::PreconditionFailed { .. }) => {
                    return skip(
                        line,
                        "another writer replaced its _SUCCESS (left for the next gc)",
                    );
                }
                Err(e) => return Err(e),
            }
        }
        if let Err(e) = lease.ensure_held().await {
            return skip(
                line,
                &format!("its lease was lost after _SUCCESS was removed ({e})"),
            );
        }
        let (objects, bytes) = self.delete_all(&rest, true).await?;
        line.objects += objects;
        line.bytes += bytes;
        if let Err(e) = store.clear_staging(&v).await {
            tracing::warn!("could not clear unfinished uploads in {v}: {e}");
        }
        line.action = Action::Deleted;
        Ok(true)
    }

    /// The version folder's objects and its run records, each with size and revision
    /// (run records and counters are deleted whatever they hold: runs write them without
    /// the lease).
    async fn inventory(&self, version: &str) -> StorageResult<Vec<Doomed>> {
        let store = self.store.as_ref();
        let mut found = self.look(&store.list(version).await?).await?;
        let mut records = self
            .look(&store.list(&join_key(RUNS_DIR, version)).await?)
            .await?;
        for r in &mut records {
            r.revision = None;
        }
        found.extend(records);
        Ok(found)
    }

    /// HEADs `keys` (a few at a time); gone ones are left out.
    async fn look(&self, keys: &[String]) -> StorageResult<Vec<Doomed>> {
        let store = self.store.clone();
        let seen = catalog::bounded(keys.to_vec(), move |key| {
            let store = store.clone();
            async move {
                Ok(store.head(&key).await?.map(|m| Doomed {
                    key,
                    size: m.size_bytes,
                    revision: m.revision,
                }))
            }
        })
        .await?;
        Ok(seen.into_iter().flatten().collect())
    }

    /// Deletes `doomed` in batches (conditionally on their revisions with `fenced`);
    /// returns what went, or the first failure.
    async fn delete_all(&self, doomed: &[Doomed], fenced: bool) -> StorageResult<(usize, u64)> {
        if doomed.is_empty() {
            return Ok((0, 0));
        }
        let batch: Vec<BatchDelete> = doomed
            .iter()
            .map(|d| BatchDelete {
                key: d.key.clone(),
                revision: if fenced { d.revision.clone() } else { None },
            })
            .collect();
        let failed = self.store.delete_batch(&batch).await?;
        let gone: Vec<&Doomed> = doomed
            .iter()
            .filter(|d| !failed.iter().any(|(k, _)| *k == d.key))
            .collect();
        let counted = (gone.len(), gone.iter().map(|d| d.size).sum());
        match failed.into_iter().next() {
            None => Ok(counted),
            Some((_, e)) => Err(e),
        }
    }

    /// Deletes (or counts, dry) lease generations below the top of every lease folder
    /// except those of `removed` versions (their whole folder went with them).
    async fn stale_leases(&self, removed: &[&str]) -> StorageResult<(usize, u64)> {
        let store = self.store.as_ref();
        let mut by_dir: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for key in store.list(LEASES_DIR).await? {
            if let Some((dir, _)) = key.rsplit_once('/') {
                by_dir.entry(dir.to_string()).or_default().push(key);
            }
        }
        let mut stale = Vec::new();
        for dir in by_dir.keys() {
            let name = dir.rsplit('/').next().unwrap_or_default();
            if removed.contains(&name) {
                continue;
            }
            let mut found = generations(store, dir).await?;
            found.pop();
            stale.extend(found.into_iter().map(|(_, key)| key));
        }
        let stale = self.look(&stale).await?;
        if self.dry_run {
            return Ok((stale.len(), stale.iter().map(|d| d.size).sum()));
        }
        self.delete_all(&stale, false).await
    }

    /// Writes the report where `filed` says (`_gc/<gc_id>.json`) and keeps the newest
    /// [`REPORTS_KEPT`].
    async fn file_report(&self, report: &Report) -> StorageResult<()> {
        let store = self.store.as_ref();
        let Some(key) = &report.filed else {
            return Ok(());
        };
        let body = serde_json::to_vec_pretty(report).unwrap_or_default();
        store.put(key, body.into(), PutMode::Overwrite).await?;
        let mut reports = store.list(GC_DIR).await?;
        if reports.len() > REPORTS_KEPT {
            reports.truncate(reports.len() - REPORTS_KEPT);
            let old: Vec<BatchDelete> = reports
                .into_iter()
                .map(|key| BatchDelete {
                    key,
                    revision: None,
                })
                .collect();
            store.delete_batch(&old).await?;
        }
        Ok(())
    }
}

fn lease_dir(version: &str) -> String {
    join_key(LEASES_DIR, version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::local::LocalStore;
    use crate::storage::spy::Spy;
    use crate::versions::catalog::fixtures::{latest, put, version};

    const V1: &str = "v_20251101T000000";
    const V2: &str = "v_20251102T000000";
    const V3: &str = "v_20251103T000000";
    const V4: &str = "v_20251104T000000";

    fn policy(keep: Option<usize>, older_than: Option<&str>) -> Policy {
        Policy {
            keep,
            older_than: older_than.map(|s| Span::parse(s).unwrap()),
            grace: Span::parse("24h").unwrap(),
            // Noon on 2025-11-05 in Seoul.
            now: "2025-11-05T03:00:00Z".parse().unwrap(),
            tz: "Asia/Seoul".parse().unwrap(),
        }
    }

    fn gc(store: Arc<dyn ObjectStore>, keep: usize, dry_run: bool) -> Gc {
        Gc {
            store,
            gc_id: "gc-test".into(),
            policy: policy(Some(keep), None),
            dry_run,
            lease_ttl: Duration::from_secs(30),
        }
    }

    fn actions(lines: &[VersionReport]) -> Vec<(&str, Action)> {
        lines
            .iter()
            .map(|l| (l.version.as_str(), l.action))
            .collect()
    }

    /// When the killed run of [`prefix`] last wrote (a week before the policy's now).
    const KILLED_AT: &str = "2025-10-29T00:00:00Z";

    /// Four complete versions, V3 named by `_latest` (V4 is newer: `_latest` not moved
    /// yet), and an incomplete one a killed run left in `root` a week ago.
    async fn prefix(store: &dyn ObjectStore, root: &std::path::Path) {
        for (i, v) in [V1, V2, V3, V4].into_iter().enumerate() {
            version(store, v, 10 + i as u64).await;
        }
        latest(store, V3).await;
        put(
            store,
            "v_20251020T000000/feature.csv",
            b"left by a killed run",
        )
        .await;
        let killed: DateTime<Utc> = KILLED_AT.parse().unwrap();
        std::fs::File::options()
            .write(true)
            .open(root.join("v_20251020T000000/feature.csv"))
            .unwrap()
            .set_modified(killed.into())
            .unwrap();
    }

    #[tokio::test]
    async fn the_plan_keeps_latest_the_newest_and_the_young() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
        prefix(store.as_ref(), dir.path()).await;
        let listing = catalog::list(store.clone()).await.unwrap();
        let orphans = ["v_20251001T000000".to_string()];

        let keep1 = plan(&listing, &orphans, &policy(Some(1), None));
        assert_eq!(
            actions(&keep1),
            [
                ("v_20251001T000000", Action::Delete),
                ("v_20251020T000000", Action::Delete),
                (V1, Action::Delete),
                (V2, Action::Delete),
                (V3, Action::Keep),
                (V4, Action::Keep),
            ]
        );
        assert_eq!(keep1[4].reason, "named by _latest");
        // One is "the newest", not "the 1 newest".
        assert_eq!(keep1[2].reason, "older than the newest complete");
        assert_eq!(keep1[5].reason, "the newest complete");
        let keep3 = plan(&listing, &[], &policy(Some(3), None));
        assert_eq!(keep3[1].reason, "older than the 3 newest complete");
        assert_eq!(keep3[2].reason, "among the 3 newest complete");
        // An hour after the killed run wrote: within the grace.
        let mut later = policy(Some(1), None);
        later.now = KILLED_AT.parse::<DateTime<Utc>>().unwrap() + chrono::Duration::hours(1);
        let soon = plan(&listing, &[], &later);
        assert_eq!(soon[0].action, Action::Keep, "{}", soon[0].reason);
        assert!(
            soon[0].reason.contains("within --grace 1d"),
            "{}",
            soon[0].reason
        );

        // At noon on 11-05, 11-01 is 4.5 days old and 11-02 3.5 days.
        let old = plan(&listing, &[], &policy(None, Some("4d")));
        assert_eq!(
            actions(&old)[1..],
            [
                (V1, Action::Delete),
                (V2, Action::Keep),
                (V3, Action::Keep),
                (V4, Action::Keep)
            ]
        );
        // Both: deleted only when beyond --keep and older.
        let both = plan(&listing, &[], &policy(Some(1), Some("4d")));
        assert_eq!(
            actions(&both)[1..3],
            [(V1, Action::Delete), (V2, Action::Keep)]
        );
        // Fewer complete versions than --keep: nothing is beyond it.
        let all = plan(&listing, &[], &policy(Some(10), None));
        assert!(all[1..].iter().all(|l| l.action == Action::Keep));
    }

    #[tokio::test]
    async fn success_goes_first_and_everything_of_a_removed_version_goes() {
        let dir = tempfile::tempdir().unwrap();
        let spy = Arc::new(Spy::new(LocalStore::new(dir.path())));
        prefix(spy.as_ref(), dir.path()).await;
        // A stale lease generation of a kept version.
        put(
            spy.as_ref(),
            "_leases/v_20251104T000000/000000000001.json",
            b"{}",
        )
        .await;
        put(
            spy.as_ref(),
            "_leases/v_20251104T000000/000000000002.json",
            b"{}",
        )
        .await;

        let (report, failure) = gc(spy.clone(), 2, false).run().await.unwrap();
        assert!(failure.is_none(), "{:?}", report.errors);
        assert_eq!(
            actions(&report.versions),
            [
                ("v_20251020T000000", Action::Deleted),
                (V1, Action::Deleted),
                (V2, Action::Deleted),
                (V3, Action::Keep),
                (V4, Action::Keep),
            ]
        );
        let calls = spy.calls();
        for v in [V1, V2] {
            let marker = calls
                .iter()
                .position(|c| *c == format!("delete_if {v}/_SUCCESS"))
                .unwrap_or_else(|| panic!("{v}/_SUCCESS not deleted conditionally: {calls:?}"));
            let first_file = calls
                .iter()
                .position(|c| c.starts_with(&format!("batch_delete {v}/")))
                .unwrap();
            assert!(marker < first_file, "{calls:?}");
        }
        let keys = spy.list("").await.unwrap();
        for v in ["v_20251020T000000", V1, V2] {
            assert!(
                !keys.iter().any(|k| k.contains(v)),
                "{v} left something: {keys:?}"
            );
        }
        // Kept: V3 and V4 whole, V4's lease down to its top generation, the report filed.
        assert!(catalog::entry(spy.as_ref(), V3).await.unwrap().complete);
        assert!(catalog::entry(spy.as_ref(), V4).await.unwrap().complete);
        assert_eq!(
            spy.list("_leases/v_20251104T000000").await.unwrap(),
            ["_leases/v_20251104T000000/000000000002.json"]
        );
        assert_eq!(report.stale_lease_objects, 1);
        assert_eq!(spy.list(GC_DIR).await.unwrap(), ["_gc/gc-test.json"]);
        // 5 objects each (4 files and the run record), the leftover, a stale lease.
        assert_eq!(report.versions[1].objects, 5);
        assert_eq!(report.objects_deleted, 5 + 5 + 1 + 1);
        assert!(report.bytes_freed > 0);
    }

    #[tokio::test]
    async fn a_dry_run_deletes_nothing_and_a_leased_or_changed_version_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
        prefix(store.as_ref(), dir.path()).await;
        let before = store.list("").await.unwrap();
        let (dry, _) = gc(store.clone(), 2, true).run().await.unwrap();
        assert_eq!(store.list("").await.unwrap(), before);
        assert_eq!(dry.versions_deleted, 3);
        assert!(dry.versions.iter().any(|l| l.action == Action::WouldDelete));

        // Another run holds V1's lease.
        let Acquired::Held(held) = Lease::acquire(
            store.clone(),
            "_leases/v_20251101T000000",
            "run-x",
            Duration::from_secs(30),
        )
        .await
        .unwrap() else {
            panic!("the lease must be free")
        };
        // V2 becomes incomplete after it is planned... (see below); V1 is leased.
        let g = gc(store.clone(), 2, false);
        let listing = catalog::list(store.clone()).await.unwrap();
        let mut lines = plan(&listing, &[], &g.policy);
        // The stale incomplete version is completed by a late run after the plan.
        let stale = lines
            .iter_mut()
            .find(|l| l.version == "v_20251020T000000")
            .unwrap();
        assert_eq!(stale.action, Action::Delete);
        version(store.as_ref(), "v_20251020T000000", 1).await;
        g.remove(stale).await.unwrap();
        assert_eq!(stale.action, Action::Skipped);
        assert!(
            stale.reason.contains("changed since it was listed"),
            "{}",
            stale.reason
        );
        assert!(
            catalog::entry(store.as_ref(), "v_20251020T000000")
                .await
                .unwrap()
                .complete
        );

        let leased = lines.iter_mut().find(|l| l.version == V1).unwrap();
        g.remove(leased).await.unwrap();
        assert_eq!(leased.action, Action::Skipped);
        assert!(
            leased.reason.contains("leased by run run-x"),
            "{}",
            leased.reason
        );
        assert!(catalog::entry(store.as_ref(), V1).await.unwrap().complete);
        held.release().await;
    }
}
