//! Reading an object by concurrent byte-range GETs, delivered strictly in order.
//!
//! S3 serves one connection at roughly 85-100 MB/s; a single GET stream is capped there
//! however fast the pass is. [`RangedChunks`] keeps up to `read_concurrency` ranges of
//! `read_part_size` bytes in flight, each its own GET on its own connection, each body
//! streamed and resumed on its own ([`RangeBody`]: ETag and `Content-Range` checked on
//! every response, `If-Match` sent). The pass sees one stream: the head range's bytes as
//! they arrive, then the next range's. Memory stays bounded by part size x concurrency:
//! a range only starts when the head one is finished, so at most `read_concurrency`
//! ranges are buffered, each at most once.
//!
//! The first request asks for the first range; its `Content-Range` gives the object's
//! size and its ETag pins every later range, so reading costs no extra HEAD. An object
//! no bigger than one part (or a server that ignores `Range`) is read by that one GET.

use std::collections::VecDeque;

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::client::{is_precondition_failed, sdk_error};
use super::download::{changed, response_span, send_get, Pinned, RangeBody};
use super::S3Store;
use crate::storage::{ChunkSource, ObjectStore, StorageError, StorageResult};

/// Opens `key` for reading: by ranges when it is bigger than one part and the store
/// reads with more than one GET in flight, else by one GET. With `seen` (an ETag from a
/// HEAD, quotes removed), the read is pinned to that object from its first request.
pub(super) async fn open(
    store: &S3Store,
    key: &str,
    seen: Option<&str>,
) -> StorageResult<Box<dyn ChunkSource>> {
    let uri = store.uri(key);
    let first = (store.read_concurrency > 1).then_some((0, store.read_part_size));
    let if_match = seen.map(|etag| format!("\"{etag}\""));
    let replaced = |now: Option<&str>| {
        changed(
            &uri,
            format!(
                "ETag \"{}\" at HEAD -> {} at GET",
                seen.unwrap_or("none"),
                now.unwrap_or("another")
            ),
        )
    };
    let out = match send_get(store, key, first, if_match.as_deref()).await {
        Ok(out) => out,
        Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => {
            return Err(StorageError::NotFound { uri });
        }
        Err(e) if is_precondition_failed(&e) => return Err(replaced(None)),
        // S3 answers 416 to any range of an empty object: read it whole.
        Err(e) if first.is_some() && is_invalid_range(&e) => {
            match send_get(store, key, None, if_match.as_deref()).await {
                Ok(out) => out,
                Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => {
                    return Err(StorageError::NotFound { uri });
                }
                Err(e) if is_precondition_failed(&e) => return Err(replaced(None)),
                Err(e) => return Err(sdk_error("read", uri, &e)),
            }
        }
        Err(e) => return Err(sdk_error("read", uri, &e)),
    };
    let Some((0, end, size)) = response_span(&out) else {
        return Err(StorageError::other(
            "read",
            uri,
            "the server answered a GET without saying which bytes it sent",
        ));
    };
    // A server may ignore If-Match on GET (s3s-fs does): compare as well.
    let etag = out.e_tag().map(str::to_string);
    if seen.is_some() && etag.as_deref().map(|e| e.trim_matches('"')) != seen {
        return Err(replaced(etag.as_deref()));
    }
    let pinned = Pinned { etag, size };
    let head = RangeBody::new(store.clone(), key, pinned.clone(), 0, end, out.body);
    if end >= size {
        return Ok(Box::new(head));
    }
    Ok(Box::new(RangedChunks::start(store, key, pinned, head)))
}

fn is_invalid_range<E: ProvideErrorMetadata>(
    err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    err.raw_response()
        .is_some_and(|r| r.status().as_u16() == 416)
        || err.code() == Some("InvalidRange")
}

/// One range being fetched by its own task: its bytes arrive on `rx` in order.
struct Part {
    rx: mpsc::UnboundedReceiver<StorageResult<Bytes>>,
    task: JoinHandle<()>,
    /// Bytes still expected (to tell a finished range from a task that died).
    left: u64,
}

/// The object as one stream, fetched as concurrent ranges (see the module doc).
pub(super) struct RangedChunks {
    store: S3Store,
    key: String,
    pinned: Pinned,
    /// Start of the next range to fetch.
    next_start: u64,
    /// The ranges in flight, in object order; the front one is being delivered.
    parts: VecDeque<Part>,
}

impl RangedChunks {
    /// Starts reading: `head` carries the first range; the next ones start now.
    fn start(store: &S3Store, key: &str, pinned: Pinned, head: RangeBody) -> Self {
        let first_len = head.len();
        let mut chunks = RangedChunks {
            store: store.clone(),
            key: key.to_string(),
            pinned,
            next_start: first_len,
            parts: VecDeque::new(),
        };
        chunks
            .parts
            .push_back(spawn_part(Box::pin(async move { Ok(head) }), first_len));
        chunks.fill();
        chunks
    }

    /// Starts ranges until `read_concurrency` are in flight or none is left.
    fn fill(&mut self) {
        while self.parts.len() < self.store.read_concurrency && self.next_start < self.pinned.size {
            let start = self.next_start;
            let end = start
                .saturating_add(self.store.read_part_size)
                .min(self.pinned.size);
            self.next_start = end;
            let opened = RangeBody::open(
                self.store.clone(),
                self.key.clone(),
                self.pinned.clone(),
                start,
                end,
            );
            self.parts
                .push_back(spawn_part(Box::pin(opened), end - start));
        }
    }
}

type Opening =
    std::pin::Pin<Box<dyn std::future::Future<Output = StorageResult<RangeBody>> + Send>>;

/// Bytes handed on at a time (at least; the last piece of a range may be shorter).
const BLOCK: usize = 1 << 20;

/// Fetches one range on its own task: opens it, then forwards its body in order.
///
/// The body arrives in pieces of a few KiB, each pinning a network buffer of its own;
/// they are copied (once) into one buffer of exactly the range's size, handed on in
/// [`BLOCK`]s that share it: a buffered range costs one allocation of its own size, and
/// the pass gets chunks as big as a local read's instead of thousands of small ones.
fn spawn_part(opening: Opening, len: u64) -> Part {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut body = match opening.await {
            Ok(body) => body,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let mut buf = BytesMut::with_capacity(usize::try_from(body.len()).unwrap_or(BLOCK));
        loop {
            match body.next().await {
                // `RangeBody` never yields more than the range, so this never grows `buf`.
                Ok(Some(chunk)) => {
                    buf.extend_from_slice(&chunk);
                    if buf.len() >= BLOCK && tx.send(Ok(buf.split().freeze())).is_err() {
                        return;
                    }
                }
                Ok(None) => {
                    if !buf.is_empty() {
                        let _ = tx.send(Ok(buf.split().freeze()));
                    }
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    Part {
        rx,
        task,
        left: len,
    }
}

impl Drop for RangedChunks {
    /// A read that stops early (an error, a malformed CSV, a signal) stops its GETs.
    fn drop(&mut self) {
        for part in &self.parts {
            part.task.abort();
        }
    }
}

#[async_trait]
impl ChunkSource for RangedChunks {
    async fn next_chunk(&mut self) -> StorageResult<Option<Bytes>> {
        loop {
            let Some(head) = self.parts.front_mut() else {
                return Ok(None);
            };
            match head.rx.recv().await {
                Some(Ok(chunk)) => {
                    head.left = head.left.saturating_sub(chunk.len() as u64);
                    return Ok(Some(chunk));
                }
                Some(Err(e)) => return Err(e),
                None if head.left > 0 => {
                    return Err(StorageError::other(
                        "read",
                        self.store.uri(&self.key),
                        format!("a range reader stopped with {} bytes unread", head.left),
                    ));
                }
                None => {
                    self.parts.pop_front();
                    self.fill();
                }
            }
        }
    }
}
