//! The streaming GET behind [`super::S3Store::get`].

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use super::client::{describe, is_precondition_failed, root_cause};
use super::S3Store;
use crate::storage::{ChunkSource, ObjectStore, StorageError, StorageResult};

/// A streaming GET that survives a broken connection: the SDK retries a request, not a
/// body, so when the body fails part-way the read resumes with `Range: bytes=N-`, pinned
/// to the same object by `If-Match: <etag>`, within the configured attempts and back-off.
pub(super) struct S3Chunks {
    store: S3Store,
    key: String,
    etag: Option<String>,
    /// Content-Length of the object, to notice a body that ends early.
    size: Option<u64>,
    delivered: u64,
    resumes_left: u32,
    backoff: Duration,
    body: ByteStream,
}

impl S3Chunks {
    /// Wraps the body of a successful GET; the resume budget is the client's own retry
    /// policy (`--s3-max-attempts`, `--s3-initial-backoff`).
    pub(super) fn new(store: S3Store, key: &str, out: GetObjectOutput) -> Self {
        let retry = store.client.config().retry_config().cloned();
        S3Chunks {
            key: key.to_string(),
            etag: out.e_tag().map(str::to_string),
            size: out.content_length().and_then(|n| u64::try_from(n).ok()),
            delivered: 0,
            resumes_left: retry
                .as_ref()
                .map_or(0, |r| r.max_attempts().saturating_sub(1)),
            backoff: retry
                .as_ref()
                .map_or(Duration::from_secs(1), |r| r.initial_backoff()),
            body: out.body,
            store,
        }
    }

    /// Why the current body failed, in one sentence.
    fn interruption(cause: &str) -> String {
        // The SDK's stalled-stream protection reports a silent server in throughput terms.
        if cause.contains("throughput") {
            "download stalled: the server stopped sending data for over 5 s".to_string()
        } else {
            format!("download interrupted: {cause}")
        }
    }

    /// Re-opens the body at the first byte not yet delivered.
    async fn resume(&mut self, why: String) -> StorageResult<()> {
        let uri = self.store.uri(&self.key);
        loop {
            if self.resumes_left == 0 {
                return Err(StorageError::other("read", uri, why));
            }
            self.resumes_left -= 1;
            tracing::warn!(
                "{why}; resuming {uri} at byte {} after {:?}",
                self.delivered,
                self.backoff
            );
            tokio::time::sleep(self.backoff).await;
            self.backoff = self.backoff.saturating_mul(2);
            let mut req = self
                .store
                .client
                .get_object()
                .bucket(&self.store.bucket)
                .key(self.store.key(&self.key))
                .range(format!("bytes={}-", self.delivered));
            if let Some(etag) = &self.etag {
                req = req.if_match(etag);
            }
            match req.send().await {
                Ok(out) => {
                    self.body = out.body;
                    return Ok(());
                }
                Err(e) if is_precondition_failed(&e) => {
                    return Err(StorageError::other(
                        "read",
                        uri,
                        "the object was replaced while it was being read; run again",
                    ));
                }
                Err(e) => {
                    tracing::warn!("resuming {uri} failed: {}", describe(&e));
                }
            }
        }
    }
}

#[async_trait]
impl ChunkSource for S3Chunks {
    async fn next_chunk(&mut self) -> StorageResult<Option<Bytes>> {
        loop {
            match self.body.try_next().await {
                Ok(Some(chunk)) => {
                    self.delivered += chunk.len() as u64;
                    return Ok(Some(chunk));
                }
                Ok(None) => match self.size {
                    Some(size) if self.delivered < size => {
                        let why =
                            format!("download ended after {} of {size} bytes", self.delivered);
                        self.resume(why).await?;
                    }
                    _ => return Ok(None),
                },
                Err(e) => self.resume(Self::interruption(&root_cause(&e))).await?,
            }
        }
    }
}
