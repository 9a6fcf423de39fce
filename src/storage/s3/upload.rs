//! The staged upload behind [`super::S3Store::start_upload`].

use async_trait::async_trait;
use aws_sdk_s3::config::RequestChecksumCalculation;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use md5::{Digest, Md5};
use tokio::task::{JoinHandle, JoinSet};

use super::client::{answered_ok_unreadably, describe, is_precondition_failed, sdk_error};
use super::{content_type, S3Store, MAX_PARTS_IN_FLIGHT, PART_SIZE};
use crate::storage::{ObjectMeta, ObjectStore, PutMode, StorageError, StorageResult, Upload};
use crate::values::digest::hex;

/// A streamed upload: one PUT if it stays under [`PART_SIZE`], else a multipart upload
/// whose parts go out concurrently. Nothing is visible until `commit`.
pub(super) struct S3Upload {
    store: S3Store,
    key: String,
    buf: BytesMut,
    upload_id: Option<String>,
    /// CreateMultipartUpload sent ahead, once half a part is buffered, so the first part
    /// need not wait for it (the pass would stall meanwhile).
    starting: Option<JoinHandle<StorageResult<String>>>,
    next_part: i32,
    in_flight: JoinSet<StorageResult<CompletedPart>>,
    done: Vec<CompletedPart>,
    /// [`Upload::finish_writes`] was called: the last (possibly short) part is sent.
    writes_finished: bool,
    /// Bytes sent in parts, to check an upload whose completion reply was unreadable.
    sent: u64,
}

impl S3Upload {
    pub(super) fn new(store: S3Store, key: &str) -> Self {
        S3Upload {
            store,
            key: key.to_string(),
            buf: BytesMut::new(),
            upload_id: None,
            starting: None,
            next_part: 1,
            in_flight: JoinSet::new(),
            done: Vec::new(),
            writes_finished: false,
            sent: 0,
        }
    }

    fn uri(&self) -> String {
        self.store.uri(&self.key)
    }

    fn with_checksums(&self) -> bool {
        self.store.client.config().request_checksum_calculation()
            != Some(&RequestChecksumCalculation::WhenRequired)
    }

    /// Sends CreateMultipartUpload in the background (once).
    fn start_early(&mut self) {
        if self.upload_id.is_none() && self.starting.is_none() {
            let create = create(self.store.clone(), self.key.clone(), self.with_checksums());
            self.starting = Some(tokio::spawn(create));
        }
    }

    async fn upload_id(&mut self) -> StorageResult<String> {
        if let Some(id) = &self.upload_id {
            return Ok(id.clone());
        }
        let id = match self.starting.take() {
            Some(started) => started
                .await
                .map_err(|e| StorageError::other("start upload of", self.uri(), e))??,
            None => create(self.store.clone(), self.key.clone(), self.with_checksums()).await?,
        };
        self.upload_id = Some(id.clone());
        Ok(id)
    }

    /// Aborts a multipart upload (best effort: a bucket lifecycle rule,
    /// AbortIncompleteMultipartUpload, is the backstop for uploads a killed process could
    /// not abort).
    async fn abort_id(&self, id: String) {
        let _ = self
            .store
            .client
            .abort_multipart_upload()
            .bucket(&self.store.bucket)
            .key(self.store.key(&self.key))
            .upload_id(id)
            .send()
            .await;
    }

    /// Aborts the multipart upload sent ahead, if any: the object stayed small.
    async fn abort_started(&mut self) {
        if let Some(started) = self.starting.take() {
            if let Ok(Ok(id)) = started.await {
                self.abort_id(id).await;
            }
        }
    }

    async fn send_part(&mut self, body: Bytes) -> StorageResult<()> {
        let upload_id = self.upload_id().await?;
        while self.in_flight.len() >= MAX_PARTS_IN_FLIGHT {
            self.collect_one().await?;
        }
        let part_number = self.next_part;
        self.next_part += 1;
        self.sent += body.len() as u64;
        let client = self.store.client.clone();
        let bucket = self.store.bucket.clone();
        let key = self.store.key(&self.key);
        let uri = self.uri();
        let checksums = self.with_checksums();
        self.in_flight.spawn(async move {
            let mut req = client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(part_number)
                .body(ByteStream::from(body));
            if checksums {
                req = req.checksum_algorithm(ChecksumAlgorithm::Crc32);
            }
            let out = req
                .send()
                .await
                .map_err(|e| sdk_error("upload part of", uri, &e))?;
            Ok(CompletedPart::builder()
                .part_number(part_number)
                .set_e_tag(out.e_tag().map(str::to_string))
                .set_checksum_crc32(out.checksum_crc32().map(str::to_string))
                .build())
        });
        Ok(())
    }

    async fn collect_one(&mut self) -> StorageResult<()> {
        if let Some(joined) = self.in_flight.join_next().await {
            let part =
                joined.map_err(|e| StorageError::other("upload part of", self.uri(), e))??;
            self.done.push(part);
        }
        Ok(())
    }

    /// Multipart: sends what is still buffered as the last part. (A small object stays
    /// buffered: its single PUT would make it visible, so it waits for `commit`.)
    async fn send_last_part(&mut self) -> StorageResult<()> {
        if self.upload_id.is_some() && !self.buf.is_empty() {
            let last = std::mem::take(&mut self.buf).freeze();
            self.send_part(last).await?;
        }
        Ok(())
    }

    /// Every part up, in order (multipart only).
    async fn all_parts(&mut self) -> StorageResult<Vec<CompletedPart>> {
        self.send_last_part().await?;
        while !self.in_flight.is_empty() {
            self.collect_one().await?;
        }
        self.done.sort_by_key(|p| p.part_number());
        Ok(self.done.clone())
    }

    async fn finish(&mut self, mode: PutMode) -> StorageResult<()> {
        if self.upload_id.is_none() {
            // Under one part: a single PUT (and away with a multipart upload sent ahead).
            let body = std::mem::take(&mut self.buf).freeze();
            let store = self.store.clone();
            let key = self.key.clone();
            let (put, ()) = tokio::join!(store.put(&key, body, mode), self.abort_started());
            return put;
        }
        let parts = self.all_parts().await?;
        let expected_etag = multipart_etag(&parts);
        let upload_id = self.upload_id().await?;
        let mut request = self
            .store
            .client
            .complete_multipart_upload()
            .bucket(&self.store.bucket)
            .key(self.store.key(&self.key))
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        if mode == PutMode::Create {
            request = request.if_none_match("*");
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let reply = describe(&e);
                match self.completed_anyway(expected_etag.as_deref(), &e).await {
                    Some(meta) => {
                        tracing::warn!(
                            "{}: completing the upload failed ({reply}), but a HEAD finds \
                             exactly the object that was sent ({} bytes, ETag {}): the server \
                             completed it and its reply was lost or unreadable",
                            self.uri(),
                            meta.size_bytes,
                            meta.etag.as_deref().unwrap_or("none"),
                        );
                        Ok(())
                    }
                    None if mode == PutMode::Create && is_precondition_failed(&e) => {
                        Err(StorageError::AlreadyExists { uri: self.uri() })
                    }
                    // The upload was aborted under us: the holder of the version cleared
                    // what a stalled writer had staged.
                    None if e.code() == Some("NoSuchUpload") => Err(StorageError::new(
                        crate::storage::FailureKind::PreconditionFailed,
                        "complete upload of",
                        self.uri(),
                        "the upload was aborted by another writer",
                    )),
                    None => Err(sdk_error("complete upload of", self.uri(), &e)),
                }
            }
        }
    }

    /// Whether the upload is complete although completing it failed. It happens: the
    /// server completes, the reply is lost, the SDK retries and the retry finds no such
    /// upload any more (s3s-fs says 403, MinIO 404 NoSuchUpload); or the server says 200
    /// in a body the SDK cannot parse (moto 5.2.1's `CompleteMultipartUploadResponse`).
    /// A HEAD decides: the object must be exactly ours, our size and, when the parts' ETags
    /// are MD5s, the multipart ETag they add up to. Without that ETag only the two cases
    /// above are trusted on size alone. The upload id is then aborted, best effort: if an
    /// identical object was already there, the parts must not linger.
    async fn completed_anyway<E: ProvideErrorMetadata>(
        &mut self,
        expected_etag: Option<&str>,
        err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> Option<ObjectMeta> {
        let plausible = expected_etag.is_some()
            || answered_ok_unreadably(err)
            || err.code() == Some("NoSuchUpload");
        if !plausible {
            return None;
        }
        let meta = match self.store.head(&self.key).await {
            Ok(Some(meta)) if is_our_object(&meta, self.sent, expected_etag) => meta,
            _ => return None,
        };
        if let Some(id) = self.upload_id.take() {
            self.abort_id(id).await;
        }
        Some(meta)
    }
}

/// True when `meta` is the object a multipart upload of `sent` bytes created.
fn is_our_object(meta: &ObjectMeta, sent: u64, expected_etag: Option<&str>) -> bool {
    meta.size_bytes == sent && expected_etag.is_none_or(|e| meta.etag.as_deref() == Some(e))
}

/// The ETag S3 gives a completed multipart upload: the MD5 of the parts' binary MD5s,
/// a dash and the part count. `None` when a part's ETag is not an MD5 (SSE-KMS, some
/// S3-compatible servers): then only the size can be checked.
fn multipart_etag(parts: &[CompletedPart]) -> Option<String> {
    let mut md5s = Vec::with_capacity(parts.len() * 16);
    for part in parts {
        let etag = part.e_tag()?.trim_matches('"');
        if etag.len() != 32 {
            return None;
        }
        for pair in etag.as_bytes().chunks(2) {
            let pair = std::str::from_utf8(pair).ok()?;
            md5s.push(u8::from_str_radix(pair, 16).ok()?);
        }
    }
    Some(format!("{}-{}", hex(&Md5::digest(&md5s)), parts.len()))
}

#[async_trait]
impl Upload for S3Upload {
    async fn write(&mut self, data: Bytes) -> StorageResult<()> {
        if self.writes_finished {
            // A part after the short last one would break the upload: refuse it.
            return Err(StorageError::other(
                "write",
                self.uri(),
                "bytes written after the upload's last part",
            ));
        }
        self.buf.extend_from_slice(&data);
        if self.buf.len() >= PART_SIZE / 2 {
            self.start_early();
        }
        while self.buf.len() >= PART_SIZE {
            let part = self.buf.split_to(PART_SIZE).freeze();
            self.send_part(part).await?;
        }
        Ok(())
    }

    async fn finish_writes(&mut self) -> StorageResult<()> {
        self.writes_finished = true;
        self.send_last_part().await
    }

    async fn expected_revision(&mut self) -> StorageResult<Option<String>> {
        if self.upload_id.is_none() {
            // One PUT: S3's ETag of a single-part object is the MD5 of its bytes.
            return Ok(Some(hex(&Md5::digest(&self.buf))));
        }
        let parts = self.all_parts().await?;
        Ok(multipart_etag(&parts))
    }

    async fn commit(mut self: Box<Self>, mode: PutMode) -> StorageResult<()> {
        let res = self.finish(mode).await;
        if res.is_err() {
            self.abort().await;
        }
        res
    }

    async fn abort(mut self: Box<Self>) {
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        self.abort_started().await;
        if let Some(id) = self.upload_id.take() {
            self.abort_id(id).await;
        }
    }
}

/// CreateMultipartUpload for `key` of `store`; returns the upload id.
async fn create(store: S3Store, key: String, checksums: bool) -> StorageResult<String> {
    let uri = store.uri(&key);
    let mut req = store
        .client
        .create_multipart_upload()
        .bucket(&store.bucket)
        .key(store.key(&key))
        .content_type(content_type(&key));
    if checksums {
        req = req.checksum_algorithm(ChecksumAlgorithm::Crc32);
    }
    let out = req
        .send()
        .await
        .map_err(|e| sdk_error("start upload of", uri.as_str(), &e))?;
    out.upload_id().map(str::to_string).ok_or_else(|| {
        StorageError::other("start upload of", uri, "the server returned no upload id")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: i32, etag: &str) -> CompletedPart {
        CompletedPart::builder().part_number(n).e_tag(etag).build()
    }

    #[test]
    fn multipart_etag_is_the_md5_of_the_part_md5s_and_the_count() {
        // md5("part one"), md5("part two"), quoted as S3 returns them; the expected value
        // is Python's hashlib over the same bytes.
        let parts = [
            part(1, "\"3303e12af474ca11d85ed2966a932992\""),
            part(2, "3ea4e15b91a17dc76052c56cfcdf67a2"),
        ];
        assert_eq!(
            multipart_etag(&parts).as_deref(),
            Some("0732917abc3288784e318ac0aab1757a-2")
        );
        // Not MD5s (SSE-KMS, other servers): no expectation, only the size is checked.
        assert_eq!(multipart_etag(&[part(1, "\"abc\"")]), None);
        assert_eq!(
            multipart_etag(&[part(1, "zz03e12af474ca11d85ed2966a932992")]),
            None
        );
        assert_eq!(multipart_etag(&[CompletedPart::builder().build()]), None);
    }

    #[test]
    fn only_the_object_that_was_sent_confirms_a_completion() {
        let meta = |size, etag: &str| ObjectMeta {
            size_bytes: size,
            etag: Some(etag.to_string()),
            last_modified: None,
            revision: Some(etag.to_string()),
        };
        assert!(is_our_object(&meta(10, "e-2"), 10, Some("e-2")));
        assert!(is_our_object(&meta(10, "whatever"), 10, None));
        assert!(!is_our_object(&meta(11, "e-2"), 10, Some("e-2")));
        assert!(!is_our_object(&meta(10, "f-2"), 10, Some("e-2")));
    }
}
