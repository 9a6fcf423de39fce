//! The streaming GET behind [`super::S3Store::get`]: one byte range of one object, read
//! to its end through broken connections, never from another object.
//!
//! The SDK retries a request, not a body: when a body fails part-way, [`RangeBody`]
//! resumes with `Range: bytes=N-END` and `If-Match`. A server may ignore `If-Match` on GET
//! (s3s-fs does), so every response is checked here as well: its ETag must be the one the
//! read started with and its `Content-Range` exactly the bytes asked for, of an object of
//! the original size. Anything else means the object changed (or was deleted) while it was
//! being read, and the read fails (exit 5) naming the change: the bytes already handed on
//! cannot be taken back, so splicing in or restarting with the new object would both be
//! wrong; the next run reads the new object whole.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use super::client::{describe, root_cause, sdk_error};
use super::S3Store;
use crate::storage::{ChunkSource, FailureKind, ObjectStore, StorageError, StorageResult};

/// The object a read is pinned to: what its first response said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pinned {
    /// As the server sent it (quotes included); `None` if it sent none.
    pub etag: Option<String>,
    pub size: u64,
}

/// A GET of `key`, for bytes `start..end` when `range` is given.
pub(super) async fn send_get(
    store: &S3Store,
    key: &str,
    range: Option<(u64, u64)>,
    if_match: Option<&str>,
) -> Result<GetObjectOutput, SdkError<GetObjectError, aws_sdk_s3::config::http::HttpResponse>> {
    let mut req = store
        .client
        .get_object()
        .bucket(&store.bucket)
        .key(store.key(key));
    if let Some((start, end)) = range {
        req = req.range(format!("bytes={start}-{}", end - 1));
    }
    if let Some(etag) = if_match {
        req = req.if_match(etag);
    }
    req.send().await
}

/// The bytes a response carries: `(first, end, total)` from its `Content-Range`, or the
/// whole object when it has none (a plain 200).
pub(super) fn response_span(out: &GetObjectOutput) -> Option<(u64, u64, u64)> {
    match out.content_range() {
        Some(range) => parse_content_range(range),
        None => {
            let len = u64::try_from(out.content_length()?).ok()?;
            Some((0, len, len))
        }
    }
}

/// `bytes FIRST-LAST/TOTAL` as `(FIRST, LAST + 1, TOTAL)`.
fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let (span, total) = value.trim().strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    let (first, last, total): (u64, u64, u64) = (
        first.trim().parse().ok()?,
        last.trim().parse().ok()?,
        total.trim().parse().ok()?,
    );
    (first <= last && last < total).then_some((first, last + 1, total))
}

/// The error for an object that is no longer the one the read started with.
pub(super) fn changed(uri: &str, what: impl std::fmt::Display) -> StorageError {
    StorageError::new(
        FailureKind::PreconditionFailed,
        "read",
        uri,
        format!("the object changed while it was being read ({what}); run again"),
    )
}

/// Checks that `out` answers a request for bytes `start..end` of the `pinned` object.
pub(super) fn check_response(
    uri: &str,
    pinned: &Pinned,
    start: u64,
    end: u64,
    out: &GetObjectOutput,
) -> StorageResult<()> {
    let etag = out.e_tag();
    if pinned.etag.is_some() && etag != pinned.etag.as_deref() {
        return Err(changed(
            uri,
            format!(
                "ETag {} -> {}",
                pinned.etag.as_deref().unwrap_or("none"),
                etag.unwrap_or("none")
            ),
        ));
    }
    let Some((first, last, total)) = response_span(out) else {
        return Err(StorageError::other(
            "read",
            uri,
            format!(
                "the server answered a request for bytes {start}-{} without saying which \
                 bytes it sent",
                end - 1
            ),
        ));
    };
    if total != pinned.size {
        return Err(changed(
            uri,
            format!("size {} -> {total} bytes", pinned.size),
        ));
    }
    if (first, last) != (start, end) {
        return Err(StorageError::other(
            "read",
            uri,
            format!(
                "asked for bytes {start}-{}, the server sent bytes {first}-{}",
                end - 1,
                last - 1
            ),
        ));
    }
    Ok(())
}

/// Whether a failed (re)request is worth another try; if not, the error that ends the
/// read. A missing object (404), a failed `If-Match` (412) or a range past the object's
/// end (416) mean the object changed: retrying cannot help.
fn final_failure(
    uri: &str,
    pinned: &Pinned,
    delivered: u64,
    err: &SdkError<GetObjectError, aws_sdk_s3::config::http::HttpResponse>,
) -> Option<StorageError> {
    let status = err.raw_response().map(|r| r.status().as_u16());
    let etag = pinned.etag.as_deref().unwrap_or("none");
    let gone =
        status == Some(404) || matches!(err, SdkError::ServiceError(s) if s.err().is_no_such_key());
    if gone {
        return Some(StorageError::new(
            FailureKind::PreconditionFailed,
            "read",
            uri,
            format!("the object was deleted while it was being read (ETag {etag}); run again"),
        ));
    }
    if status == Some(412) || err.code() == Some("PreconditionFailed") {
        return Some(changed(uri, format!("If-Match {etag} failed")));
    }
    if status == Some(416) || err.code() == Some("InvalidRange") {
        return Some(changed(
            uri,
            format!("ETag {etag}; it is now shorter than the {delivered} bytes already read"),
        ));
    }
    match sdk_error("read", uri, err) {
        StorageError::Unavailable { .. } => None,
        other => Some(other),
    }
}

/// One byte range `pos..end` of a pinned object, streamed and resumed after a broken
/// connection within the client's retry budget (`--s3-max-attempts`, back-off from
/// `--s3-initial-backoff`).
pub(super) struct RangeBody {
    store: S3Store,
    key: String,
    uri: String,
    pinned: Pinned,
    /// The next byte to deliver.
    pos: u64,
    end: u64,
    resumes_left: u32,
    backoff: Duration,
    body: ByteStream,
}

impl RangeBody {
    /// Wraps the body of a response already checked to carry bytes `start..end` of the
    /// `pinned` object.
    pub(super) fn new(
        store: S3Store,
        key: &str,
        pinned: Pinned,
        start: u64,
        end: u64,
        body: ByteStream,
    ) -> Self {
        let retry = store.client.config().retry_config().cloned();
        RangeBody {
            uri: store.uri(key),
            key: key.to_string(),
            pinned,
            pos: start,
            end,
            resumes_left: retry
                .as_ref()
                .map_or(0, |r| r.max_attempts().saturating_sub(1)),
            backoff: retry
                .as_ref()
                .map_or(Duration::from_secs(1), |r| r.initial_backoff()),
            body,
            store,
        }
    }

    /// Opens bytes `start..end` of the `pinned` object (a range of a read in progress).
    pub(super) async fn open(
        store: S3Store,
        key: String,
        pinned: Pinned,
        start: u64,
        end: u64,
    ) -> StorageResult<Self> {
        let empty = ByteStream::from_static(b"");
        let mut part = RangeBody::new(store, &key, pinned, start, end, empty);
        part.reopen(None).await?;
        Ok(part)
    }

    /// Bytes from the current position to the end of the range.
    pub(super) fn len(&self) -> u64 {
        self.end - self.pos
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

    /// (Re)opens the body at the first byte not yet delivered; `why` is the interruption
    /// that makes this a resume (`None` for a range's first request).
    async fn reopen(&mut self, why: Option<String>) -> StorageResult<()> {
        let mut why = why;
        loop {
            if let Some(why) = &why {
                if self.resumes_left == 0 {
                    return Err(StorageError::new(
                        FailureKind::Unavailable,
                        "read",
                        &self.uri,
                        why,
                    ));
                }
                self.resumes_left -= 1;
                tracing::warn!(
                    "{why}; resuming {} at byte {} after {:?}",
                    self.uri,
                    self.pos,
                    self.backoff
                );
                tokio::time::sleep(self.backoff).await;
                self.backoff = self.backoff.saturating_mul(2);
            }
            let range = Some((self.pos, self.end));
            match send_get(&self.store, &self.key, range, self.pinned.etag.as_deref()).await {
                Ok(out) => {
                    check_response(&self.uri, &self.pinned, self.pos, self.end, &out)?;
                    self.body = out.body;
                    return Ok(());
                }
                Err(e) => {
                    if let Some(fatal) = final_failure(&self.uri, &self.pinned, self.pos, &e) {
                        return Err(fatal);
                    }
                    let failed =
                        format!("reading bytes from {} failed: {}", self.pos, describe(&e));
                    why = Some(why.map_or(failed.clone(), |w| format!("{w}; {failed}")));
                }
            }
        }
    }

    /// The next piece of the range, or `None` once all of it was delivered.
    pub(super) async fn next(&mut self) -> StorageResult<Option<Bytes>> {
        loop {
            match self.body.try_next().await {
                Ok(Some(chunk)) if chunk.is_empty() => {}
                Ok(Some(chunk)) => {
                    let len = chunk.len() as u64;
                    if self.pos + len > self.end {
                        return Err(StorageError::other(
                            "read",
                            &self.uri,
                            format!("the server sent more than the {} bytes asked for", self.end),
                        ));
                    }
                    self.pos += len;
                    return Ok(Some(chunk));
                }
                Ok(None) if self.pos >= self.end => return Ok(None),
                Ok(None) => {
                    let why = format!("download ended at byte {} of {}", self.pos, self.end);
                    self.reopen(Some(why)).await?;
                }
                Err(e) => {
                    let cause = root_cause(&e);
                    // The SDK checks a whole-object checksum at the end of the body, after
                    // every byte was handed on: those bytes cannot be trusted or taken back,
                    // and there is nothing left to resume.
                    if cause.contains("checksum mismatch") {
                        return Err(StorageError::other(
                            "read",
                            &self.uri,
                            format!(
                                "the download failed its checksum ({cause}); the bytes read \
                                 cannot be trusted: run again"
                            ),
                        ));
                    }
                    self.reopen(Some(Self::interruption(&cause))).await?;
                }
            }
        }
    }
}

#[async_trait]
impl ChunkSource for RangeBody {
    async fn next_chunk(&mut self) -> StorageResult<Option<Bytes>> {
        self.next().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse_to_half_open_spans() {
        assert_eq!(parse_content_range("bytes 0-9/10"), Some((0, 10, 10)));
        assert_eq!(
            parse_content_range("bytes 8388608-16777215/100000000"),
            Some((8388608, 16777216, 100000000))
        );
        for bad in [
            "bytes 5-4/10",
            "bytes 0-10/10",
            "bytes */10",
            "0-9/10",
            "bytes 0-9/*",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
    }

    fn answer(etag: &str, range: Option<&str>, len: i64) -> GetObjectOutput {
        let mut out = GetObjectOutput::builder().e_tag(etag).content_length(len);
        if let Some(range) = range {
            out = out.content_range(range);
        }
        out.build()
    }

    #[test]
    fn a_response_must_be_the_asked_bytes_of_the_same_object() {
        let pinned = Pinned {
            etag: Some("\"a\"".into()),
            size: 100,
        };
        let check = |out: &GetObjectOutput, start, end| {
            check_response("s3://b/k", &pinned, start, end, out).map_err(|e| e.to_string())
        };
        assert!(check(&answer("\"a\"", Some("bytes 10-19/100"), 10), 10, 20).is_ok());
        assert!(check(&answer("\"a\"", None, 100), 0, 100).is_ok());
        let other = check(&answer("\"b\"", Some("bytes 10-19/100"), 10), 10, 20).unwrap_err();
        assert!(
            other.contains("changed while it was being read (ETag \"a\" -> \"b\")"),
            "{other}"
        );
        let resized = check(&answer("\"a\"", Some("bytes 10-19/120"), 10), 10, 20).unwrap_err();
        assert!(resized.contains("size 100 -> 120 bytes"), "{resized}");
        let shifted = check(&answer("\"a\"", Some("bytes 0-19/100"), 20), 10, 20).unwrap_err();
        assert!(shifted.contains("asked for bytes 10-19"), "{shifted}");
        // A server that ignores Range answers 200 with the whole object: not the range.
        let whole = check(&answer("\"a\"", None, 100), 10, 20).unwrap_err();
        assert!(whole.contains("the server sent bytes 0-99"), "{whole}");
    }
}
