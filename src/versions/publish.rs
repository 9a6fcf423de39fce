//! The publish protocol: how a run makes a version visible, whole and right, so that a
//! version with `_SUCCESS` always holds exactly the files its manifest lists.
//!
//! Writes are fenced, not merely re-checked (docs/layout.md, "Why a stalled run cannot
//! corrupt a version", has the argument):
//! - every object of a version is *created* (S3 `If-None-Match: *` on PUT and on
//!   CompleteMultipartUpload; a hard link locally), never overwritten: once a file is
//!   there, no other writer can replace it;
//! - what an earlier, unfinished attempt left is removed only by the lease holder, and
//!   only as the revision it looked at (S3 `If-Match`, locally under a folder lock): a
//!   writer that stalled past its lease cannot remove what the next holder wrote since;
//! - a leftover data file that holds exactly the bytes this run would write (S3: the same
//!   ETag) is kept, not replaced, so no revision is ever reused for other bytes;
//! - `_SUCCESS` is created last, after a HEAD of every file confirms it is the one this
//!   run wrote; a `_SUCCESS` that describes other bytes than the files is withdrawn.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use bytes::Bytes;

use super::completeness::{self, Completeness};
use super::documents::{to_pretty_json, FileDigest, SuccessManifest};
use super::layout;
use super::lease::Lease;
use crate::error::{Error, Result};
use crate::interrupt::Interrupt;
use crate::storage::{join_key, ObjectStore, PutMode, StorageError, Upload};

/// One file of the version to publish.
pub enum VersionFile<'a> {
    /// A large file streamed into a staged upload during the pass. The upload stays with
    /// its owner: it is taken only to be committed, and whatever is left (a leftover with
    /// the same bytes was kept, or publishing stopped early) the owner aborts.
    Staged {
        name: &'static str,
        upload: &'a mut Option<Box<dyn Upload>>,
        digest: FileDigest,
    },
    /// A small document written in one go.
    Document { name: &'static str, body: Bytes },
}

impl VersionFile<'_> {
    fn name(&self) -> &'static str {
        match self {
            VersionFile::Staged { name, .. } | VersionFile::Document { name, .. } => name,
        }
    }
}

/// How a publication ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// This run's version is complete.
    Done,
    /// Another run completed the version first; this run's files were not written.
    ByAnother,
}

/// A version being published by the holder of its lease.
pub struct Publication<'a> {
    pub store: &'a dyn ObjectStore,
    pub version: &'a str,
    /// `None` in tests and for writers that need no lease.
    pub lease: Option<&'a Lease>,
    /// Replace a complete version (`--force`): its `_SUCCESS` is withdrawn first.
    pub rewrite: bool,
    pub interrupt: &'a Interrupt,
}

impl Publication<'_> {
    fn key(&self, name: &str) -> String {
        join_key(self.version, name)
    }

    async fn ensure_held(&self) -> Result<()> {
        match self.lease {
            Some(lease) => lease.ensure_held().await,
            None => Ok(()),
        }
    }

    /// Publishes `files` and then `_SUCCESS` listing them with `manifest`'s header.
    pub async fn publish(
        &self,
        files: Vec<VersionFile<'_>>,
        run_id: &str,
        completed_at: String,
    ) -> Result<Published> {
        self.ensure_held().await?;
        match completeness::check(self.store, self.version).await? {
            Completeness::Complete(_) if !self.rewrite => return Ok(Published::ByAnother),
            Completeness::Complete(_) => {}
            Completeness::Incomplete(why) => {
                if self.store.head(&self.key(layout::SUCCESS)).await?.is_some() {
                    tracing::warn!(
                        "{} is incomplete ({why}): rewriting it",
                        self.store.uri(self.version)
                    );
                }
            }
        }
        // A stop signal before anything changes: publish nothing.
        self.interrupt.check()?;
        // Withdraw the completion mark first, so readers never pair old and new files;
        // then what else an earlier attempt left (documents carry run ids, so their
        // revisions are never reused).
        self.remove_leftover(layout::SUCCESS).await?;
        for file in &files {
            if let VersionFile::Document { name, .. } = file {
                self.remove_leftover(name).await?;
            }
        }

        let mut digests = std::collections::BTreeMap::new();
        let mut documents = Vec::new();
        for file in files {
            let name = file.name();
            match file {
                VersionFile::Staged { upload, digest, .. } => {
                    self.commit_staged(name, upload).await?;
                    digests.insert(name.to_string(), digest);
                }
                VersionFile::Document { body, .. } => {
                    digests.insert(name.to_string(), super::documents::digest(&body));
                    documents.push((name, body));
                }
            }
        }
        let writes = documents
            .iter()
            .map(|(name, body)| self.create(name, body.clone()));
        all_of(writes).await?;
        self.confirm_files(&digests).await?;

        // Last safe point: without `_SUCCESS` the version stays incomplete, and the next
        // run rewrites it.
        self.interrupt.check()?;
        self.ensure_held().await?;
        let manifest = SuccessManifest {
            feature_version: self.version.to_string(),
            run_id: run_id.to_string(),
            completed_at,
            files: digests,
        };
        let published = self.create_marker(&manifest).await?;
        // A killed or stalled writer's staging (temporary files, multipart uploads) has no
        // place in a complete version.
        if let Err(e) = self.store.clear_staging(self.version).await {
            tracing::warn!(
                "could not clear unfinished uploads in {}: {e}",
                self.version
            );
        }
        Ok(published)
    }

    /// Removes `name` if an earlier attempt left it, as the revision seen now.
    async fn remove_leftover(&self, name: &str) -> Result<()> {
        let key = self.key(name);
        let Some(meta) = self.store.head(&key).await? else {
            return Ok(());
        };
        self.ensure_held().await?;
        match meta.revision {
            Some(revision) => self.fenced(self.store.delete_if(&key, &revision).await),
            // A backend without revisions cannot fence: remove it as it is.
            None => Ok(self.store.delete(&key).await?),
        }
    }

    /// Commits a staged file; a leftover with exactly its bytes is kept instead (and the
    /// upload left to its owner to abort).
    async fn commit_staged(&self, name: &str, staged: &mut Option<Box<dyn Upload>>) -> Result<()> {
        let key = self.key(name);
        let Some(upload) = staged.as_mut() else {
            return Err(Error::Internal(format!("no staged upload of {name}")));
        };
        if let Some(meta) = self.store.head(&key).await? {
            let ours = upload.expected_revision().await?;
            if ours.is_some() && ours == meta.revision {
                return Ok(());
            }
            self.ensure_held().await?;
            match meta.revision {
                Some(revision) => self.fenced(self.store.delete_if(&key, &revision).await)?,
                None => self.store.delete(&key).await?,
            }
        }
        let Some(upload) = staged.take() else {
            return Err(Error::Internal(format!("no staged upload of {name}")));
        };
        match upload.commit(PutMode::Create).await {
            Err(
                StorageError::AlreadyExists { uri } | StorageError::PreconditionFailed { uri, .. },
            ) => Err(another_writer(&uri)),
            other => Ok(other?),
        }
    }

    /// Creates a document; another writer's object in its place stops the run.
    async fn create(&self, name: &str, body: Bytes) -> Result<()> {
        match self.store.put(&self.key(name), body, PutMode::Create).await {
            Err(StorageError::AlreadyExists { uri }) => Err(another_writer(&uri)),
            other => Ok(other?),
        }
    }

    /// Every file is there with the size this run wrote.
    async fn confirm_files(
        &self,
        digests: &std::collections::BTreeMap<String, FileDigest>,
    ) -> Result<()> {
        for (name, digest) in digests {
            let key = self.key(name);
            match self.store.head(&key).await? {
                Some(meta) if meta.size_bytes == digest.size_bytes => {}
                _ => return Err(another_writer(&self.store.uri(&key))),
            }
        }
        Ok(())
    }

    /// Creates `_SUCCESS`. One that is already there and describes other bytes (a stalled
    /// writer's, made after this run cleared it) is withdrawn and replaced once.
    async fn create_marker(&self, manifest: &SuccessManifest) -> Result<Published> {
        let key = self.key(layout::SUCCESS);
        let body = Bytes::from(to_pretty_json(manifest)?);
        for _ in 0..2 {
            match self.store.put(&key, body.clone(), PutMode::Create).await {
                Ok(()) => return Ok(Published::Done),
                Err(StorageError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            let Some(meta) = self.store.head(&key).await? else {
                continue;
            };
            let existing = self.store.get_small(&key).await?.unwrap_or_default();
            if let Ok(theirs) = serde_json::from_slice::<SuccessManifest>(&existing) {
                if theirs.files == manifest.files {
                    // The same files, byte for byte: the version is complete either way.
                    return Ok(Published::ByAnother);
                }
            }
            self.ensure_held().await?;
            match meta.revision {
                Some(revision) => self.fenced(self.store.delete_if(&key, &revision).await)?,
                None => self.store.delete(&key).await?,
            }
        }
        Err(another_writer(&self.store.uri(&key)))
    }

    /// A conditional write that found the object changed: another writer is at work.
    fn fenced(&self, result: crate::storage::StorageResult<()>) -> Result<()> {
        match result {
            Err(StorageError::PreconditionFailed { uri, .. }) => Err(another_writer(&uri)),
            other => Ok(other?),
        }
    }
}

fn another_writer(uri: &str) -> Error {
    Error::Busy(format!(
        "another writer changed {uri} while this run was publishing; stopped without \
         completing the version (run again: the next run finds it complete or rewrites it)"
    ))
}

/// Runs the futures concurrently (the documents' writes are independent) and to the end:
/// a write dropped half-way could not clean up after itself. Returns the first error.
async fn all_of<F: Future<Output = Result<()>>>(futures: impl Iterator<Item = F>) -> Result<()> {
    let mut pending: Vec<Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut first_error = None;
    std::future::poll_fn(move |cx| {
        let mut i = 0;
        while i < pending.len() {
            match pending[i].as_mut().poll(cx) {
                Poll::Ready(result) => {
                    if let (Err(e), None) = (result, &first_error) {
                        first_error = Some(e);
                    }
                    drop(pending.swap_remove(i));
                }
                Poll::Pending => i += 1,
            }
        }
        if pending.is_empty() {
            Poll::Ready(first_error.take().map_or(Ok(()), Err))
        } else {
            Poll::Pending
        }
    })
    .await
}
