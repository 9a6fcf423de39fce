//! S3 backend (AWS, MinIO, any S3-compatible server) on aws-sdk-s3.
//!
//! - `client`: building the client (timeouts, retries, region, checksums) and error wording;
//! - this file: [`S3Store`], the [`ObjectStore`] over a bucket and key prefix;
//! - `download`: the streaming GET that resumes after a broken connection, pinned to one
//!   object;
//! - `ranged`: reading a large object by concurrent byte-range GETs, in order;
//! - `upload`: the staged, concurrent multipart upload.

mod client;
mod download;
mod ranged;
mod upload;

use async_trait::async_trait;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use bytes::Bytes;

pub use client::{build_client, ChecksumMode, ClientError, S3Options};
use client::{is_precondition_failed, sdk_error};
use upload::S3Upload;

use super::{
    created_already, BatchDelete, ChunkSource, FailureKind, ObjectMeta, ObjectStore, PutMode,
    StorageError, StorageResult, Upload,
};

/// DeleteObjects takes at most this many keys per request.
const DELETE_BATCH: usize = 1000;

/// Multipart part size: above S3's 5 MiB minimum, small enough to keep memory flat.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploaded at once; bounds memory at about `(MAX_PARTS_IN_FLIGHT + 1) * PART_SIZE`.
const MAX_PARTS_IN_FLIGHT: usize = 3;

/// A bucket plus key prefix used as an object store.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    /// How objects are read: bytes per ranged GET, and GETs in flight.
    read_part_size: u64,
    read_concurrency: usize,
}

impl S3Store {
    /// Every object below `dir` (all pages), keyed relative to the store's root, with
    /// what the listing says of it (no ETag from some S3-compatible servers).
    async fn list_listed(&self, dir: &str) -> StorageResult<Vec<(String, ObjectMeta)>> {
        let folder = self.folder(dir);
        let root_len = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&folder)
            .into_paginator()
            .send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("list", self.uri(dir), &e))?;
            for object in page.contents() {
                let Some(key) = object.key().and_then(|k| k.get(root_len..)) else {
                    continue;
                };
                let etag = object.e_tag().map(|e| e.trim_matches('"').to_string());
                let meta = ObjectMeta {
                    size_bytes: object.size().unwrap_or(0).max(0) as u64,
                    revision: etag.clone(),
                    etag,
                    last_modified: object
                        .last_modified()
                        .and_then(|t| t.fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime).ok()),
                };
                objects.push((key.to_string(), meta));
            }
        }
        Ok(objects)
    }

    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        S3Store {
            client,
            bucket: bucket.into(),
            prefix: prefix.into().trim_matches('/').to_string(),
            read_part_size: S3Options::default().read_part_size,
            read_concurrency: S3Options::default().read_concurrency,
        }
    }

    /// Reads objects as `opts` says (`read_part_size`, `read_concurrency`).
    pub fn with_reads(mut self, opts: &S3Options) -> Self {
        self.read_part_size = opts.read_part_size.max(1);
        self.read_concurrency = opts.read_concurrency.max(1);
        self
    }

    fn key(&self, key: &str) -> String {
        super::join_key(&self.prefix, key)
    }

    /// The ListObjectsV2 prefix for the folder `dir`: `prefix/dir/`, or "" for the root.
    fn folder(&self, dir: &str) -> String {
        match self.key(dir).trim_end_matches('/') {
            "" => String::new(),
            f => format!("{f}/"),
        }
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    fn uri(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(key))
    }

    async fn head(&self, key: &str) -> StorageResult<Option<ObjectMeta>> {
        let res = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await;
        match res {
            Ok(out) => {
                let etag = out.e_tag().map(|e| e.trim_matches('"').to_string());
                Ok(Some(ObjectMeta {
                    size_bytes: out.content_length().unwrap_or(0).max(0) as u64,
                    revision: etag.clone(),
                    etag,
                    last_modified: out
                        .last_modified()
                        .and_then(|t| t.fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime).ok()),
                }))
            }
            Err(SdkError::ServiceError(e)) if e.err().is_not_found() => Ok(None),
            Err(e) => Err(sdk_error("read", self.uri(key), &e)),
        }
    }

    async fn container_exists(&self) -> Option<bool> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Some(true),
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 404 => Some(false),
            // 403 (no s3:ListBucket on narrowly scoped credentials) or a network error:
            // unknown here; the real requests will tell.
            Err(_) => None,
        }
    }

    async fn get(&self, key: &str) -> StorageResult<Box<dyn ChunkSource>> {
        ranged::open(self, key, None).await
    }

    async fn get_unchanged(
        &self,
        key: &str,
        seen: &ObjectMeta,
    ) -> StorageResult<Box<dyn ChunkSource>> {
        ranged::open(self, key, seen.etag.as_deref()).await
    }

    async fn put(&self, key: &str, body: Bytes, mode: PutMode) -> StorageResult<()> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .content_type(content_type(key))
            .body(ByteStream::from(body.clone()));
        if mode == PutMode::Create {
            req = req.if_none_match("*");
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if mode == PutMode::Create && is_precondition_failed(&e) => {
                // The SDK retries a create whose reply was lost; the retry then meets the
                // object the first attempt wrote.
                if created_already(self, key, &body).await {
                    return Ok(());
                }
                Err(StorageError::AlreadyExists { uri: self.uri(key) })
            }
            Err(e) => Err(sdk_error("write", self.uri(key), &e)),
        }
    }

    async fn start_upload(&self, key: &str) -> StorageResult<Box<dyn Upload>> {
        Ok(Box::new(S3Upload::new(self.clone(), key)))
    }

    async fn list(&self, dir: &str) -> StorageResult<Vec<String>> {
        let mut keys: Vec<String> = self
            .list_listed(dir)
            .await?
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        keys.sort();
        Ok(keys)
    }

    async fn list_objects(&self, dir: &str) -> StorageResult<Vec<(String, ObjectMeta)>> {
        let mut objects = self.list_listed(dir).await?;
        // Some S3-compatible servers list without ETags: ask for those one by one.
        for (key, meta) in objects.iter_mut().filter(|(_, m)| m.etag.is_none()) {
            if let Some(head) = self.head(key).await? {
                *meta = head;
            }
        }
        objects.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(objects)
    }

    async fn list_folders(&self, dir: &str) -> StorageResult<Vec<String>> {
        let folder = self.folder(dir);
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&folder)
            .delimiter("/")
            .into_paginator()
            .send();
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("list", self.uri(dir), &e))?;
            for common in page.common_prefixes() {
                let name = common
                    .prefix()
                    .and_then(|p| p.strip_prefix(folder.as_str()))
                    .map(|p| p.trim_end_matches('/'));
                if let Some(name) = name.filter(|n| !n.is_empty()) {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    async fn replace_if(&self, key: &str, body: Bytes, revision: &str) -> StorageResult<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .content_type(content_type(key))
            .if_match(format!("\"{}\"", revision.trim_matches('"')))
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| match e {
                // A pointer that is gone is "changed" too.
                SdkError::ServiceError(s) if s.raw().status().as_u16() == 404 => StorageError::new(
                    crate::storage::FailureKind::PreconditionFailed,
                    "replace",
                    self.uri(key),
                    "it was removed since it was looked at",
                ),
                e => sdk_error("replace", self.uri(key), &e),
            })
    }

    async fn delete_if(&self, key: &str, revision: &str) -> StorageResult<()> {
        let res = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .if_match(format!("\"{}\"", revision.trim_matches('"')))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 404 => Ok(()),
            Err(e) => Err(sdk_error("delete", self.uri(key), &e)),
        }
    }

    async fn delete_batch(
        &self,
        objects: &[BatchDelete],
    ) -> StorageResult<Vec<(String, StorageError)>> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        let mut failed = Vec::new();
        for chunk in objects.chunks(DELETE_BATCH) {
            let ids = chunk
                .iter()
                .map(|o| {
                    ObjectIdentifier::builder()
                        .key(self.key(&o.key))
                        // A conditional delete per object, as DeleteObject's If-Match.
                        .set_e_tag(
                            o.revision
                                .as_ref()
                                .map(|r| format!("\"{}\"", r.trim_matches('"'))),
                        )
                        .build()
                        .map_err(|e| StorageError::other("delete", self.uri(&o.key), e))
                })
                .collect::<StorageResult<Vec<_>>>()?;
            let first = chunk.first().map(|o| o.key.as_str()).unwrap_or_default();
            let delete = Delete::builder()
                .set_objects(Some(ids))
                .quiet(true)
                .build()
                .map_err(|e| StorageError::other("delete", self.uri(first), e))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| sdk_error("delete", self.uri(first), &e))?;
            for error in out.errors() {
                let code = error.code().unwrap_or_default();
                if code == "NoSuchKey" {
                    continue;
                }
                // Back to the store-relative key this error is about.
                let key = error.key().unwrap_or_default();
                let key = chunk
                    .iter()
                    .find(|o| self.key(&o.key) == key)
                    .map_or_else(|| key.to_string(), |o| o.key.clone());
                let kind = match code {
                    "PreconditionFailed" => FailureKind::PreconditionFailed,
                    "AccessDenied" => FailureKind::PermissionDenied,
                    "SlowDown" | "InternalError" | "ServiceUnavailable" => FailureKind::Unavailable,
                    _ => FailureKind::Other,
                };
                let detail = format!("{code}: {}", error.message().unwrap_or_default());
                failed.push((
                    key.clone(),
                    StorageError::new(kind, "delete", self.uri(&key), detail),
                ));
            }
        }
        Ok(failed)
    }

    async fn clear_staging(&self, dir: &str) -> StorageResult<usize> {
        let folder = self.folder(dir);
        let mut removed = 0;
        let mut key_marker: Option<String> = None;
        let mut id_marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(&folder)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| sdk_error("list uploads in", self.uri(dir), &e))?;
            for upload in page.uploads() {
                let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) else {
                    continue;
                };
                let aborted = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(id)
                    .send()
                    .await;
                if aborted.is_ok() {
                    removed += 1;
                }
            }
            if !page.is_truncated().unwrap_or(false) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            id_marker = page.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() && id_marker.is_none() {
                break;
            }
        }
        Ok(removed)
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error("delete", self.uri(key), &e))
    }
}

fn content_type(key: &str) -> &'static str {
    if key.ends_with(".csv") {
        "text/csv"
    } else if key.ends_with(".json") || key.ends_with("_latest") || key.ends_with("_SUCCESS") {
        "application/json"
    } else {
        "application/octet-stream"
    }
}
