//! Leases: at most one run writes a version (or moves `_latest`) at a time.
//!
//! A cron overlap, or an Airflow retry racing a zombie task, starts two runs of one
//! version. Without a lease both stage their files, and the loser overwrites the winner's
//! `feature.csv` before its own `_SUCCESS` create fails. The lease is built only from the
//! storage trait's create-if-absent write (S3 `If-None-Match: *`; on local disk a hard
//! link, i.e. a lock file), so it works the same on both backends:
//!
//! - a lease is a folder of numbered generations `<dir>/<generation>.json`; the holder is
//!   the writer of the highest generation while that one is neither released nor expired;
//! - to acquire, a run creates generation `top + 1`: only one contender can;
//! - the holder rewrites its own object (nobody else writes it) with a later expiry every
//!   third of the TTL. A holder that was killed stops renewing, and once its expiry has
//!   passed the next run takes over: a crash never blocks the next run for longer than
//!   the TTL;
//! - before each publishing write the holder checks it is still the top generation and
//!   inside its own deadline, so a zombie that lost its lease stops before writing;
//! - a new holder deletes older generations; the top one is never deleted, so generation
//!   numbers only grow and a zombie cannot mistake an old folder state for its own.
//!
//! Expiry is wall-clock time written into the object, so hosts sharing a prefix need
//! clocks within a small fraction of the TTL (NTP gives milliseconds).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::storage::{ObjectStore, PutMode, StorageError, StorageResult};

/// How many create races one acquisition may lose before giving up.
const MAX_CREATE_RACES: usize = 8;

/// The lease object's content: who holds it, and until when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub run_id: String,
    pub host: String,
    pub pid: u32,
    pub acquired_at: String,
    /// RFC 3339, UTC; readers compare [`Self::expires_at_ms`].
    pub expires_at: String,
    pub expires_at_ms: i64,
    /// Set when the holder finished: the next run need not wait for the expiry.
    pub released: bool,
}

impl LeaseRecord {
    fn new(run_id: &str, acquired_at: String, ttl: Duration) -> Self {
        let mut record = LeaseRecord {
            run_id: run_id.to_string(),
            host: host_name(),
            pid: std::process::id(),
            acquired_at,
            expires_at: String::new(),
            expires_at_ms: 0,
            released: false,
        };
        record.extend(ttl);
        record
    }

    /// Moves the expiry to now + `ttl`.
    fn extend(&mut self, ttl: Duration) {
        let expires = Utc::now() + ttl;
        self.expires_at = expires.to_rfc3339_opts(SecondsFormat::Millis, true);
        self.expires_at_ms = expires.timestamp_millis();
    }

    /// Whether this record still holds the lease at wall-clock `now_ms`.
    pub fn is_live(&self, now_ms: i64) -> bool {
        !self.released && self.expires_at_ms > now_ms
    }

    /// "run X (pid P on H) until T", for messages.
    pub fn describe(&self) -> String {
        format!(
            "run {} (pid {} on {}) until {}",
            self.run_id, self.pid, self.host, self.expires_at
        )
    }

    fn to_bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec_pretty(self).unwrap_or_default())
    }
}

/// The outcome of [`Lease::acquire`].
pub enum Acquired {
    /// This run holds the lease until it releases it (or stops renewing it).
    Held(Lease),
    /// Another live run holds it.
    Busy(LeaseRecord),
}

/// A held lease, renewed in the background until released or dropped.
pub struct Lease {
    store: Arc<dyn ObjectStore>,
    dir: String,
    generation: u64,
    record: Arc<Mutex<LeaseRecord>>,
    /// Monotonic deadline: the lease is surely ours until then (a renewal moves it).
    deadline: Arc<Mutex<Instant>>,
    ttl: Duration,
    renewer: JoinHandle<()>,
    /// [`Lease::check_exclusive`]'s probe, awaited before the lease is released.
    probe: Option<JoinHandle<()>>,
}

impl Lease {
    /// Tries once to take the lease in `dir` of `store` for `run_id`.
    pub async fn acquire(
        store: Arc<dyn ObjectStore>,
        dir: &str,
        run_id: &str,
        ttl: Duration,
    ) -> StorageResult<Acquired> {
        let dir = dir.trim_end_matches('/').to_string();
        // The earliest moment this run may have created its record: a deadline counted
        // from here is never later than the one written into the record.
        let first_try = Instant::now();
        let mut mine: Option<LeaseRecord> = None;
        for _ in 0..MAX_CREATE_RACES {
            let generations = generations(store.as_ref(), &dir).await?;
            let next = match generations.last() {
                None => 1,
                Some(&(top, ref key)) => match read_record(store.as_ref(), key).await? {
                    // Our own record: a create whose reply was lost, taken as a refusal.
                    Some(record) if record.run_id == run_id && !record.released => {
                        let record = mine.clone().unwrap_or(record);
                        return Ok(Acquired::Held(Lease::start(
                            store, dir, top, record, first_try, ttl,
                        )));
                    }
                    Some(record) if record.is_live(Utc::now().timestamp_millis()) => {
                        return Ok(Acquired::Busy(record))
                    }
                    // Released, expired, unreadable or just deleted: take over.
                    _ => top + 1,
                },
            };
            let record = LeaseRecord::new(run_id, now_rfc3339(), ttl);
            mine = Some(record.clone());
            let key = generation_key(&dir, next);
            match store.put(&key, record.to_bytes(), PutMode::Create).await {
                Ok(()) => {
                    // A server whose create-if-absent is not atomic may have let a rival
                    // overwrite it: the holder is whoever the record names.
                    match read_record(store.as_ref(), &key).await? {
                        Some(now) if now.run_id != run_id => continue,
                        _ => {}
                    }
                    // Older generations are history; the top one (ours) always stays.
                    for (generation, key) in &generations {
                        if *generation < next {
                            let _ = store.delete(key).await;
                        }
                    }
                    return Ok(Acquired::Held(Lease::start(
                        store, dir, next, record, first_try, ttl,
                    )));
                }
                // Another contender created it first (or our own reply was lost): look
                // again.
                Err(StorageError::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StorageError::other(
            "acquire the lease",
            store.uri(&dir),
            "lost the create race too often; too many runs at once",
        ))
    }

    /// Like [`Self::acquire`], but waits up to `patience` for a busy lease (polling), for
    /// short critical sections such as moving `_latest`.
    pub async fn acquire_waiting(
        store: Arc<dyn ObjectStore>,
        dir: &str,
        run_id: &str,
        ttl: Duration,
        patience: Duration,
    ) -> Result<Lease> {
        let give_up = Instant::now() + patience;
        let mut pause = Duration::from_millis(50);
        loop {
            match Lease::acquire(store.clone(), dir, run_id, ttl).await? {
                Acquired::Held(lease) => return Ok(lease),
                Acquired::Busy(holder) if Instant::now() >= give_up => {
                    return Err(Error::Busy(format!(
                        "{} is held by {}; gave up after {}s, try again later",
                        store.uri(dir),
                        holder.describe(),
                        patience.as_secs()
                    )))
                }
                Acquired::Busy(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    fn start(
        store: Arc<dyn ObjectStore>,
        dir: String,
        generation: u64,
        record: LeaseRecord,
        started: Instant,
        ttl: Duration,
    ) -> Lease {
        let record = Arc::new(Mutex::new(record));
        let deadline = Arc::new(Mutex::new(started + ttl));
        let renewer = tokio::spawn(renew(
            store.clone(),
            generation_key(&dir, generation),
            record.clone(),
            deadline.clone(),
            ttl,
        ));
        Lease {
            store,
            dir,
            generation,
            record,
            deadline,
            ttl,
            renewer,
            probe: None,
        }
    }

    /// Checks in the background that the store refuses a second create of this lease's
    /// object, which is what keeps two runs apart. An S3-compatible server that ignores
    /// `If-None-Match: *` (older MinIO, some emulators) lets both runs "create" it; that
    /// gets a `WARN` line instead of going unnoticed. The probe re-creates the holder's own
    /// record as compact JSON (same content, other bytes, so it is not mistaken for a
    /// retry of our own create): where it is wrongly accepted, nothing changes in meaning.
    pub fn check_exclusive(&mut self) {
        let store = self.store.clone();
        let key = generation_key(&self.dir, self.generation);
        let body = Bytes::from(serde_json::to_vec(&*lock(&self.record)).unwrap_or_default());
        self.probe = Some(tokio::spawn(async move {
            match store.put(&key, body, PutMode::Create).await {
                Err(StorageError::AlreadyExists { .. }) => {}
                Ok(()) => tracing::warn!(
                    "{}: the storage accepted a create-if-absent write over an existing \
                     object (S3 If-None-Match: * ignored); two runs of one version at once \
                     are not kept apart there",
                    store.uri(&key)
                ),
                Err(e) => tracing::debug!("could not check create-if-absent writes: {e}"),
            }
        }));
    }

    /// `Ok` if this run still holds the lease with time to spare for one more write;
    /// call before every write that makes something visible.
    pub async fn ensure_held(&self) -> Result<()> {
        let deadline = *lock(&self.deadline);
        if Instant::now() + self.ttl / 4 >= deadline {
            return Err(Error::Busy(format!(
                "the lease {} could not be renewed in time; stopped before publishing so \
                 that another run can take over (check the storage connection)",
                self.store.uri(&generation_key(&self.dir, self.generation))
            )));
        }
        let generations = generations(self.store.as_ref(), &self.dir).await?;
        let run_id = lock(&self.record).run_id.clone();
        match generations.last() {
            // The top generation, and still naming this run: a server whose creates are
            // not atomic can let a rival overwrite the record of the same generation.
            Some((top, key)) if *top == self.generation => {
                match read_record(self.store.as_ref(), key).await? {
                    Some(record) if record.run_id != run_id => Err(Error::Busy(format!(
                        "this run's lease on {} was overwritten by {}; stopped before \
                         publishing",
                        self.store.uri(&self.dir),
                        record.describe()
                    ))),
                    _ => Ok(()),
                }
            }
            Some((_, key)) => {
                let holder = read_record(self.store.as_ref(), key)
                    .await?
                    .map(|r| r.describe())
                    .unwrap_or_else(|| "another run".into());
                Err(Error::Busy(format!(
                    "this run's lease on {} expired and was taken over by {holder}; \
                     stopped before publishing",
                    self.store.uri(&self.dir)
                )))
            }
            None => Err(Error::Busy(format!(
                "this run's lease on {} vanished; stopped before publishing",
                self.store.uri(&self.dir)
            ))),
        }
    }

    /// This holder's generation: the lease objects up to it are this holder's or older.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Gives the lease up now, so the next run need not wait for the expiry.
    pub async fn release(mut self) {
        self.renewer.abort();
        // Wrongly accepted, the probe rewrites the record: it must not follow the release.
        if let Some(probe) = self.probe.take() {
            let _ = probe.await;
        }
        let body = {
            let mut record = lock(&self.record);
            record.released = true;
            record.to_bytes()
        };
        let key = generation_key(&self.dir, self.generation);
        if let Err(e) = self.store.put(&key, body, PutMode::Overwrite).await {
            tracing::warn!("could not release the lease (it expires by itself): {e}");
        }
    }
}

impl Drop for Lease {
    /// A lease dropped without [`Lease::release`] (a panic) just stops being renewed.
    fn drop(&mut self) {
        self.renewer.abort();
        if let Some(probe) = &self.probe {
            probe.abort();
        }
    }
}

/// Rewrites the holder's own object with a later expiry every third of the TTL.
async fn renew(
    store: Arc<dyn ObjectStore>,
    key: String,
    record: Arc<Mutex<LeaseRecord>>,
    deadline: Arc<Mutex<Instant>>,
    ttl: Duration,
) {
    loop {
        tokio::time::sleep(ttl / 3).await;
        let started = Instant::now();
        let body = {
            let mut record = lock(&record);
            record.extend(ttl);
            record.to_bytes()
        };
        match store.put(&key, body, PutMode::Overwrite).await {
            Ok(()) => *lock(&deadline) = started + ttl,
            Err(e) => tracing::warn!("could not renew the lease {}: {e}", store.uri(&key)),
        }
    }
}

/// The live holder of the lease in `dir`, if any: who is writing (for reports; taking
/// the lease is what decides).
pub async fn live_holder(store: &dyn ObjectStore, dir: &str) -> StorageResult<Option<LeaseRecord>> {
    let Some((_, key)) = generations(store, dir).await?.pop() else {
        return Ok(None);
    };
    let now = Utc::now().timestamp_millis();
    Ok(read_record(store, &key).await?.filter(|r| r.is_live(now)))
}

/// The generations present in `dir`, lowest first.
pub(crate) async fn generations(
    store: &dyn ObjectStore,
    dir: &str,
) -> StorageResult<Vec<(u64, String)>> {
    let mut found: Vec<(u64, String)> = store
        .list(dir)
        .await?
        .into_iter()
        .filter_map(|key| {
            let name = key.rsplit('/').next()?;
            let generation = name.strip_suffix(".json")?.parse().ok()?;
            Some((generation, key))
        })
        .collect();
    found.sort();
    Ok(found)
}

async fn read_record(store: &dyn ObjectStore, key: &str) -> StorageResult<Option<LeaseRecord>> {
    Ok(store
        .get_small(key)
        .await?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

/// `<dir>/<generation>.json`, zero-padded so the names sort like the numbers.
pub(crate) fn generation_key(dir: &str, generation: u64) -> String {
    format!("{dir}/{generation:012}.json")
}

fn now_rfc3339() -> String {
    DateTime::<Utc>::from(std::time::SystemTime::now()).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The machine's name, for "who holds this lease" messages.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Locks a mutex whose data stays valid even if a holder panicked.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::local::LocalStore;

    fn store() -> (tempfile::TempDir, Arc<dyn ObjectStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path().to_path_buf()));
        (dir, store)
    }

    const TTL: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn one_holder_at_a_time_and_release_frees_it() {
        let (_dir, store) = store();
        let Acquired::Held(a) = Lease::acquire(store.clone(), "_leases/v1", "a", TTL)
            .await
            .unwrap()
        else {
            panic!("first acquire must hold")
        };
        match Lease::acquire(store.clone(), "_leases/v1", "b", TTL)
            .await
            .unwrap()
        {
            Acquired::Busy(holder) => assert_eq!(holder.run_id, "a"),
            Acquired::Held(_) => panic!("two holders"),
        }
        a.ensure_held().await.unwrap();
        a.release().await;
        let Acquired::Held(b) = Lease::acquire(store.clone(), "_leases/v1", "b", TTL)
            .await
            .unwrap()
        else {
            panic!("a released lease must be free")
        };
        b.ensure_held().await.unwrap();
        // Older generations are cleaned up; the holder's stays.
        assert_eq!(
            store.list("_leases/v1").await.unwrap(),
            ["_leases/v1/000000000002.json"]
        );
    }

    #[tokio::test]
    async fn an_expired_holder_is_taken_over_and_then_knows_it_lost() {
        let (_dir, store) = store();
        let short = Duration::from_millis(300);
        let Acquired::Held(zombie) = Lease::acquire(store.clone(), "l", "zombie", short)
            .await
            .unwrap()
        else {
            panic!("first acquire must hold")
        };
        // The zombie stops renewing (as if frozen), and its expiry passes.
        zombie.renewer.abort();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let Acquired::Held(next) = Lease::acquire(store.clone(), "l", "next", TTL)
            .await
            .unwrap()
        else {
            panic!("an expired lease must be taken over")
        };
        let lost = zombie.ensure_held().await.unwrap_err();
        assert!(matches!(lost, Error::Busy(_)), "{lost}");
        next.ensure_held().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn renewal_keeps_a_short_lease_alive() {
        let (_dir, store) = store();
        // Outlived three times over, renewed every 0.5 s (margins for a loaded machine).
        let short = Duration::from_millis(1500);
        let Acquired::Held(a) = Lease::acquire(store.clone(), "l", "a", short)
            .await
            .unwrap()
        else {
            panic!("first acquire must hold")
        };
        tokio::time::sleep(Duration::from_millis(4500)).await;
        assert!(matches!(
            Lease::acquire(store.clone(), "l", "b", short)
                .await
                .unwrap(),
            Acquired::Busy(_)
        ));
        a.ensure_held().await.unwrap();
    }
}
