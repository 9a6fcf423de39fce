//! One object-shaped storage trait with two backends: a local folder and S3.
//!
//! The pipeline only ever talks to [`ObjectStore`], so local dry runs and production S3
//! runs take the same code path. Keys are `/`-separated and relative to the store's root
//! (a folder, or a bucket plus key prefix). This layer knows nothing of runs, versions or
//! the command line: its errors are its own ([`StorageError`]), typed by what a caller can
//! do about them.
//!
//! Visibility rules every backend keeps (the conformance suite in `tests/` checks them):
//! - a [`Upload`] is invisible until [`Upload::commit`]; [`Upload::abort`] leaves nothing;
//! - [`PutMode::Create`] (on `put` and on `commit`) fails with
//!   [`StorageError::AlreadyExists`] if the key exists, unless it holds exactly the bytes
//!   being created (see [`created_already`]);
//! - [`ObjectStore::delete_if`] removes an object only while it is the revision the caller
//!   saw: a writer that stalled cannot remove what another wrote since (and so does each
//!   object of [`ObjectStore::delete_batch`] given a revision);
//! - a folder exists only while something is below it: once its last object is deleted,
//!   `list_folders` no longer names it (S3 has no folders; a local store removes the
//!   emptied folder);
//! - a reader never sees a partly written object, and every write's error reaches the
//!   caller (a full disk is an error, never an empty file).

pub mod local;
pub mod pattern;
pub mod s3;
#[cfg(test)]
pub(crate) mod spy;
mod uri;

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;

pub use uri::{StorageUri, UriError};

/// What a HEAD tells us about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub size_bytes: u64,
    /// S3's ETag (quotes removed); `None` on local disk.
    pub etag: Option<String>,
    /// RFC 3339 in UTC, when the backend knows it.
    pub last_modified: Option<String>,
    /// Changes whenever the object is replaced: S3's ETag; on local disk the file's device,
    /// inode, size and modification time. What [`ObjectStore::delete_if`] compares.
    pub revision: Option<String>,
}

/// One object for [`ObjectStore::delete_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchDelete {
    pub key: String,
    /// Remove it only while it is this revision (as [`ObjectStore::delete_if`]); `None`:
    /// whatever it holds.
    pub revision: Option<String>,
}

/// How a small object is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Replace whatever is there.
    Overwrite,
    /// Only if nothing is there (S3 `If-None-Match: *`, a hard link on local disk), or
    /// exactly these bytes are (see [`created_already`]).
    Create,
}

/// Storage failures, each naming the object and what to check, typed by what a caller
/// can do: a missing object, a lost create race, a changed object, no permission, a
/// server that is unavailable (after the retries), or anything else.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("{uri} was not found")]
    NotFound { uri: String },
    /// The key names something that is not an object (a folder, a device, a pipe).
    #[error("{uri} is not a file ({what})")]
    NotAFile { uri: String, what: &'static str },
    /// A create-if-absent write met an object that is already there.
    #[error("{uri} already exists")]
    AlreadyExists { uri: String },
    /// A conditional request's condition no longer holds: the object changed.
    #[error("cannot {op} {uri}: {detail}")]
    PreconditionFailed {
        op: &'static str,
        uri: String,
        detail: String,
    },
    #[error("cannot {op} {uri}: {detail}")]
    PermissionDenied {
        op: &'static str,
        uri: String,
        detail: String,
    },
    /// Throttled, 5xx, timed out or disconnected, after the retries.
    #[error("cannot {op} {uri}: {detail}")]
    Unavailable {
        op: &'static str,
        uri: String,
        detail: String,
    },
    #[error("cannot {op} {uri}: {detail}")]
    Other {
        op: &'static str,
        uri: String,
        detail: String,
    },
}

/// What kind of failure a [`StorageError`] is (for the constructors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    PreconditionFailed,
    PermissionDenied,
    Unavailable,
    Other,
}

impl StorageError {
    /// A failure of `op` on `uri`, of `kind`.
    pub fn new(
        kind: FailureKind,
        op: &'static str,
        uri: impl Into<String>,
        detail: impl fmt::Display,
    ) -> Self {
        let (uri, detail) = (uri.into(), detail.to_string());
        match kind {
            FailureKind::PreconditionFailed => StorageError::PreconditionFailed { op, uri, detail },
            FailureKind::PermissionDenied => StorageError::PermissionDenied { op, uri, detail },
            FailureKind::Unavailable => StorageError::Unavailable { op, uri, detail },
            FailureKind::Other => StorageError::Other { op, uri, detail },
        }
    }

    /// A failure that fits no more specific kind.
    pub fn other(op: &'static str, uri: impl Into<String>, detail: impl fmt::Display) -> Self {
        Self::new(FailureKind::Other, op, uri, detail)
    }
}

pub type StorageResult<T> = std::result::Result<T, StorageError>;

/// A byte stream read from storage, pulled chunk by chunk.
#[async_trait]
pub trait ChunkSource: Send + Sync {
    /// The next chunk, or `None` at the end.
    async fn next_chunk(&mut self) -> StorageResult<Option<Bytes>>;
}

/// A large object written as a stream; invisible to readers until committed.
#[async_trait]
pub trait Upload: Send + Sync {
    /// Appends bytes. Backends may send parts concurrently in the background.
    async fn write(&mut self, data: Bytes) -> StorageResult<()>;
    /// Says that no more bytes follow: a backend may start sending what it still buffers
    /// now (still invisible), so that `commit` has less left to do. Optional: `commit`
    /// works without it. No `write` may follow it.
    async fn finish_writes(&mut self) -> StorageResult<()> {
        Ok(())
    }
    /// Makes the object visible, whole, under its key. With [`PutMode::Create`] it fails
    /// with [`StorageError::AlreadyExists`] (and leaves the key as it was) if the key
    /// exists. A failed commit leaves nothing staged.
    async fn commit(self: Box<Self>, mode: PutMode) -> StorageResult<()>;
    /// The [`ObjectMeta::revision`] the committed object will have, when the backend can
    /// tell in advance (S3: the ETag of the bytes written, known once every part is up):
    /// an existing object with this revision holds exactly these bytes. Call after the
    /// last `write`.
    async fn expected_revision(&mut self) -> StorageResult<Option<String>> {
        Ok(None)
    }
    /// Drops everything written so far; the key is left as it was.
    async fn abort(self: Box<Self>);
}

/// The storage trait: a small object-store interface shared by local disk and S3.
#[async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// The user-facing URI of `key`, for messages and metadata.
    fn uri(&self, key: &str) -> String;
    /// Metadata of `key`, or `None` if it does not exist.
    async fn head(&self, key: &str) -> StorageResult<Option<ObjectMeta>>;
    /// Streams `key`; [`StorageError::NotFound`] if it does not exist.
    async fn get(&self, key: &str) -> StorageResult<Box<dyn ChunkSource>>;
    /// Streams `key` if it is still the object a HEAD described as `seen` (same ETag,
    /// where the backend has one), so that what is read is what the run recorded;
    /// [`StorageError::PreconditionFailed`] if it was replaced in between.
    async fn get_unchanged(
        &self,
        key: &str,
        seen: &ObjectMeta,
    ) -> StorageResult<Box<dyn ChunkSource>> {
        let _ = seen;
        self.get(key).await
    }
    /// Writes a small object in one go.
    async fn put(&self, key: &str, body: Bytes, mode: PutMode) -> StorageResult<()>;
    /// Replaces `key` only while it is `revision` (S3 `If-Match` on PUT; locally under a
    /// lock on its folder): [`StorageError::PreconditionFailed`] if it was replaced or
    /// removed since. For pointers that several writers move.
    async fn replace_if(&self, key: &str, body: Bytes, revision: &str) -> StorageResult<()>;
    /// Starts a streamed write of a large object.
    async fn start_upload(&self, key: &str) -> StorageResult<Box<dyn Upload>>;
    /// Removes `key`; removing a missing key is not an error.
    async fn delete(&self, key: &str) -> StorageResult<()>;
    /// Removes what unfinished writes left below the folder `dir` (local temporary files,
    /// S3 multipart uploads never completed or aborted): a killed writer's leftovers, or a
    /// stalled one's. Returns how many it removed.
    async fn clear_staging(&self, dir: &str) -> StorageResult<usize>;
    /// Removes `key` only while it is `revision` (S3 `If-Match`; locally under a lock on
    /// its folder): [`StorageError::PreconditionFailed`] if it was replaced since. A
    /// missing key is not an error.
    async fn delete_if(&self, key: &str, revision: &str) -> StorageResult<()>;
    /// Removes many objects, each as [`Self::delete_if`] (given a revision) or
    /// [`Self::delete`]; missing ones are not errors. Returns the objects it could not
    /// remove, each with why (one that changed: [`StorageError::PreconditionFailed`]);
    /// `Err` when a request as a whole failed. S3 overrides this with DeleteObjects (up to
    /// 1000 keys a request); the default removes them one by one.
    async fn delete_batch(
        &self,
        objects: &[BatchDelete],
    ) -> StorageResult<Vec<(String, StorageError)>> {
        let mut failed = Vec::new();
        for object in objects {
            let deleted = match &object.revision {
                Some(revision) => self.delete_if(&object.key, revision).await,
                None => self.delete(&object.key).await,
            };
            if let Err(e) = deleted {
                failed.push((object.key.clone(), e));
            }
        }
        Ok(failed)
    }
    /// Every key below the folder `dir` (recursively), store-relative and sorted; empty if
    /// there is none. Run records and leases are found this way; staged uploads and
    /// temporary files are not objects and never listed.
    async fn list(&self, dir: &str) -> StorageResult<Vec<String>>;
    /// The names of the folders directly below `dir` (one level, sorted): how earlier
    /// versions are found without listing every file of every version.
    async fn list_folders(&self, dir: &str) -> StorageResult<Vec<String>>;

    /// Whether the store's container (an S3 bucket) exists: `Some(false)` only when the
    /// backend is sure it does not, `None` when it cannot tell (no permission to ask, or a
    /// local folder, which is created on write). Lets a typo in a bucket name fail as a
    /// configuration error instead of "not found" or a late upload failure.
    async fn container_exists(&self) -> Option<bool> {
        None
    }

    /// Every object below the folder `dir` (recursively) with its metadata, sorted by
    /// key: how the parts of a many-file raw input are found, with the size and ETag
    /// `metadata.json` records. The default asks for each object; S3 takes them from the
    /// listing itself (paginated).
    async fn list_objects(&self, dir: &str) -> StorageResult<Vec<(String, ObjectMeta)>> {
        let mut objects = Vec::new();
        for key in self.list(dir).await? {
            if let Some(meta) = self.head(&key).await? {
                objects.push((key, meta));
            }
        }
        Ok(objects)
    }

    /// Reads a whole small object (pointers, manifests), `None` if missing.
    async fn get_small(&self, key: &str) -> StorageResult<Option<Vec<u8>>> {
        let mut src = match self.get(key).await {
            Ok(src) => src,
            Err(StorageError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        while let Some(chunk) = src.next_chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(Some(out))
    }
}

/// Opens stores for storage locations: a local folder (made absolute, so metadata and logs
/// say where the data really was) or an S3 bucket and prefix, building the S3 client once
/// and only if one is needed.
pub struct Opener {
    s3: s3::S3Options,
    client: Option<aws_sdk_s3::Client>,
}

impl Opener {
    pub fn new(s3: s3::S3Options) -> Self {
        Opener { s3, client: None }
    }

    /// The store rooted at `location`.
    pub async fn open(
        &mut self,
        location: &StorageUri,
    ) -> Result<std::sync::Arc<dyn ObjectStore>, s3::ClientError> {
        match location {
            StorageUri::Local(path) => {
                let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                Ok(std::sync::Arc::new(local::LocalStore::new(path)))
            }
            StorageUri::S3 { bucket, key } => {
                let client = match &self.client {
                    Some(c) => c.clone(),
                    None => self
                        .client
                        .insert(s3::build_client(&self.s3).await?)
                        .clone(),
                };
                let store = s3::S3Store::new(client, bucket.clone(), key.clone());
                Ok(std::sync::Arc::new(store.with_reads(&self.s3)))
            }
        }
    }
}

/// Joins a store-relative prefix and a name with exactly one `/`.
pub fn join_key(prefix: &str, name: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

/// Whether a create that met an existing object had in fact happened: the object holds
/// exactly the bytes being created. On S3 the SDK retries a create whose reply was lost,
/// and the retry meets what the first attempt wrote; taking that for another writer's
/// object would make a run lose its own lease or `_SUCCESS`. What callers create is
/// unique (run ids, times, hosts), so equal bytes cannot be another writer's.
pub(crate) async fn created_already<S: ObjectStore + ?Sized>(
    store: &S,
    key: &str,
    body: &[u8],
) -> bool {
    let ours = store.get_small(key).await.ok().flatten().as_deref() == Some(body);
    if ours {
        tracing::warn!(
            "{}: a create found the object already there, holding exactly the bytes being \
             created (a retry after a lost reply): taken as created",
            store.uri(key)
        );
    }
    ours
}
