//! `_latest`: the pointer to the newest complete version of a prefix. It only moves
//! forward: a backfill of an older date never moves it back. Each move replaces exactly
//! the pointer it read (S3 `If-Match`, locally under a folder lock), so a writer that
//! stalled between reading and writing cannot move it back either.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::documents::to_pretty_json;
use super::layout::{LATEST, LEASES_DIR};
use super::lease::Lease;
use crate::error::{Error, Result};
use crate::storage::{join_key, ObjectStore, PutMode, StorageError};

/// `_latest`: a pointer to the newest complete version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatestPointer {
    pub feature_version: String,
    pub path: String,
    pub execution_date: String,
    pub run_id: String,
    pub updated_at: String,
}

/// What `_latest` names now; `None` if there is no pointer or it cannot be read (a
/// warning says which).
pub async fn read_latest(
    store: &dyn ObjectStore,
) -> crate::storage::StorageResult<Option<LatestPointer>> {
    let Some(bytes) = store.get_small(LATEST).await? else {
        return Ok(None);
    };
    match serde_json::from_slice::<LatestPointer>(&bytes) {
        Ok(pointer) => Ok(Some(pointer)),
        Err(e) => {
            tracing::warn!("ignoring unreadable {}: {e}", store.uri(LATEST));
            Ok(None)
        }
    }
}

/// How long a run waits for another run's `_latest` lease (held for two requests).
const LATEST_PATIENCE: Duration = Duration::from_secs(60);

/// Points `_latest` at `pointer`'s version unless it already points at a newer one;
/// `refresh` also rewrites a pointer already at this version (a rewrite of it: the
/// pointer names the new run). Read, compare and write happen under the `_latest` lease,
/// so runs of different dates finishing together cannot move it backwards. Returns
/// whether it moved.
pub async fn move_latest(
    store: Arc<dyn ObjectStore>,
    pointer: &LatestPointer,
    lease_ttl: Duration,
    refresh: bool,
) -> Result<bool> {
    let version = pointer.feature_version.as_str();
    // Most skipped runs find nothing to do: no lease needed to see that.
    if !is_behind(store.as_ref(), version, refresh).await? {
        return Ok(false);
    }
    let lease = Lease::acquire_waiting(
        store.clone(),
        &join_key(LEASES_DIR, LATEST),
        &pointer.run_id,
        lease_ttl,
        LATEST_PATIENCE,
    )
    .await?;
    let moved = write_if_behind(store.as_ref(), &lease, pointer, refresh).await;
    lease.release().await;
    moved
}

async fn write_if_behind(
    store: &dyn ObjectStore,
    lease: &Lease,
    pointer: &LatestPointer,
    refresh: bool,
) -> Result<bool> {
    let body = Bytes::from(to_pretty_json(pointer)?);
    for _ in 0..MOVE_TRIES {
        // The revision first: if the pointer changes after it, the write below fails.
        let seen = store.head(LATEST).await?;
        if !is_behind(store, &pointer.feature_version, refresh).await? {
            return Ok(false);
        }
        lease.ensure_held().await?;
        let written = match seen.and_then(|m| m.revision) {
            Some(revision) => store.replace_if(LATEST, body.clone(), &revision).await,
            None => store.put(LATEST, body.clone(), PutMode::Create).await,
        };
        match written {
            Ok(()) => return Ok(true),
            // Moved by another writer meanwhile: look again.
            Err(StorageError::PreconditionFailed { .. } | StorageError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Busy(format!(
        "{} kept changing while this run tried to move it",
        store.uri(LATEST)
    )))
}

/// How often a run tries to move `_latest` when other writers move it meanwhile.
const MOVE_TRIES: usize = 3;

/// Whether `_latest` is missing, unreadable, or older than `version` (or at it, with
/// `or_at`).
async fn is_behind(store: &dyn ObjectStore, version: &str, or_at: bool) -> Result<bool> {
    let Some(bytes) = store.get_small(LATEST).await? else {
        return Ok(true);
    };
    match serde_json::from_slice::<LatestPointer>(&bytes) {
        Ok(current) => Ok(current.feature_version.as_str() < version
            || (or_at && current.feature_version == version)),
        Err(e) => {
            tracing::warn!("replacing unreadable {}: {e}", store.uri(LATEST));
            Ok(true)
        }
    }
}
