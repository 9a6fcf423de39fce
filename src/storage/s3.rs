//! S3 backend (AWS, MinIO, any S3-compatible server) on aws-sdk-s3.
//!
//! The client is built from the AWS SDK's own default chain (profiles, env keys, IRSA,
//! instance roles) plus the settings the SDK lacks defaults for: explicit timeouts (it has
//! none, and a silent server hangs a call forever), bounded standard retries, path-style
//! addressing for custom endpoints, and the checksum mode older servers need.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::environment::region::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::{Bytes, BytesMut};
use tokio::task::JoinSet;

use super::{ChunkSource, ObjectMeta, ObjectStore, PutMode, StorageError, StorageResult, Upload};

/// Multipart part size: above S3's 5 MiB minimum, small enough to keep memory flat.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploaded at once; bounds memory at about `(MAX_PARTS_IN_FLIGHT + 1) * PART_SIZE`.
const MAX_PARTS_IN_FLIGHT: usize = 3;

/// When the SDK computes request checksums (DESIGN: selectable for older servers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChecksumMode {
    /// The SDK default: checksum every request that supports it.
    WhenSupported,
    /// Only where S3 requires one; needed by older MinIO and moto (aws-chunked bodies).
    WhenRequired,
}

/// Connection settings for S3, from flags or their `DP_S3_*` environment variables.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// Custom endpoint (MinIO, a test server); implies path-style addressing.
    pub endpoint_url: Option<String>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub attempt_timeout: Duration,
    pub operation_timeout: Duration,
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub checksum: ChecksumMode,
}

/// Builds a client from the AWS default chain plus [`S3Options`].
///
/// Region: the SDK's chain; with a custom endpoint and no region, `us-east-1`
/// (what MinIO expects). With neither, a usage error naming `AWS_REGION`.
pub async fn build_client(opts: &S3Options) -> Result<Client, String> {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(opts.connect_timeout)
        .read_timeout(opts.read_timeout)
        .operation_attempt_timeout(opts.attempt_timeout)
        .operation_timeout(opts.operation_timeout)
        .build();
    let retries = RetryConfig::standard()
        .with_max_attempts(opts.max_attempts.max(1))
        .with_initial_backoff(opts.initial_backoff);
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .retry_config(retries);
    if let Some(url) = &opts.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let endpoint_given = opts.endpoint_url.is_some()
        || env_set("AWS_ENDPOINT_URL_S3")
        || env_set("AWS_ENDPOINT_URL");
    if endpoint_given {
        // MinIO and friends: region from env or profile, else us-east-1. The default chain
        // would also ask EC2 instance metadata, which is pointless here, slow off EC2, and
        // prints SDK warnings.
        loader = loader.region(
            RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
                .or_else(ProfileFileRegionProvider::new())
                .or_else(Region::new("us-east-1")),
        );
    }
    let sdk = loader.load().await;
    let custom_endpoint = endpoint_given || sdk.endpoint_url().is_some();
    let mut conf = aws_sdk_s3::config::Builder::from(&sdk);
    if custom_endpoint {
        conf = conf.force_path_style(true);
    }
    if sdk.region().is_none() {
        if !custom_endpoint {
            return Err(
                "no AWS region is configured: set AWS_REGION (or a profile with a region)".into(),
            );
        }
        conf = conf.region(Region::new("us-east-1"));
    }
    if opts.checksum == ChecksumMode::WhenRequired {
        conf = conf
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    }
    Ok(Client::from_conf(conf.build()))
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// One line describing an SDK failure, without request dumps or credentials.
fn describe<E>(err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::TimeoutError(_) => {
            "timed out (check the endpoint, or raise --s3-attempt-timeout / --s3-operation-timeout)"
                .to_string()
        }
        SdkError::DispatchFailure(d) => {
            let what = if d.is_timeout() {
                "timed out connecting"
            } else if d.is_io() {
                "connection failed"
            } else {
                "request failed"
            };
            format!(
                "{what}: {} (check --endpoint-url / AWS_ENDPOINT_URL and the network)",
                root_cause(err)
            )
        }
        SdkError::ServiceError(s) => {
            // HEAD responses carry no body, so the status code must drive the hint.
            let status = s.raw().status().as_u16();
            let mut text = format!("HTTP {status}");
            if let Some(code) = s.err().code() {
                text = format!("{text} {code}");
            }
            if let Some(msg) = s.err().message().filter(|m| !m.is_empty()) {
                text = format!("{text}: {msg}");
            }
            let hint = match (status, s.err().code()) {
                (401 | 403, _)
                | (_, Some("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken")) => {
                    " (access denied: check the AWS credentials and their permissions)"
                }
                (_, Some("NoSuchBucket")) => " (check the bucket name)",
                _ => "",
            };
            format!("{text}{hint}")
        }
        SdkError::ResponseError(_) => format!("unreadable response: {}", root_cause(err)),
        _ => root_cause(err),
    }
}

/// The innermost error message in a source chain (the useful part of SDK errors).
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn is_precondition_failed<E>(err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> bool
where
    E: ProvideErrorMetadata,
{
    err.raw_response()
        .is_some_and(|r| r.status().as_u16() == 412)
        || err.code() == Some("PreconditionFailed")
}

/// A bucket plus key prefix used as an object store.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3Store {
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        S3Store {
            client,
            bucket: bucket.into(),
            prefix: prefix.into().trim_matches('/').to_string(),
        }
    }

    fn key(&self, key: &str) -> String {
        super::join_key(&self.prefix, key)
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
            Ok(out) => Ok(Some(ObjectMeta {
                size_bytes: out.content_length().unwrap_or(0).max(0) as u64,
                etag: out.e_tag().map(|e| e.trim_matches('"').to_string()),
                last_modified: out
                    .last_modified()
                    .and_then(|t| t.fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime).ok()),
            })),
            Err(SdkError::ServiceError(e)) if e.err().is_not_found() => Ok(None),
            Err(e) => Err(StorageError::failed("read", self.uri(key), describe(&e))),
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
        let res = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await;
        match res {
            Ok(out) => {
                let retry = self.client.config().retry_config();
                Ok(Box::new(S3Chunks {
                    store: self.clone(),
                    key: key.to_string(),
                    etag: out.e_tag().map(str::to_string),
                    size: out.content_length().and_then(|n| u64::try_from(n).ok()),
                    delivered: 0,
                    resumes_left: retry.map_or(0, |r| r.max_attempts().saturating_sub(1)),
                    backoff: retry.map_or(Duration::from_secs(1), |r| r.initial_backoff()),
                    body: out.body,
                }))
            }
            Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => {
                Err(StorageError::NotFound { uri: self.uri(key) })
            }
            Err(e) => Err(StorageError::failed("read", self.uri(key), describe(&e))),
        }
    }

    async fn put(&self, key: &str, body: Bytes, mode: PutMode) -> StorageResult<()> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .content_type(content_type(key))
            .body(ByteStream::from(body));
        if mode == PutMode::Create {
            req = req.if_none_match("*");
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if mode == PutMode::Create && is_precondition_failed(&e) => {
                Err(StorageError::AlreadyExists { uri: self.uri(key) })
            }
            Err(e) => Err(StorageError::failed("write", self.uri(key), describe(&e))),
        }
    }

    async fn start_upload(&self, key: &str) -> StorageResult<Box<dyn Upload>> {
        Ok(Box::new(S3Upload {
            store: self.clone(),
            key: key.to_string(),
            buf: BytesMut::new(),
            upload_id: None,
            next_part: 1,
            in_flight: JoinSet::new(),
            done: Vec::new(),
        }))
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| StorageError::failed("delete", self.uri(key), describe(&e)))
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

/// A streaming GET that survives a broken connection: the SDK retries a request, not a
/// body, so when the body fails part-way the read resumes with `Range: bytes=N-`, pinned
/// to the same object by `If-Match: <etag>`, within the configured attempts and back-off.
struct S3Chunks {
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
                return Err(StorageError::failed("read", uri, why));
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
                    return Err(StorageError::failed(
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

/// A streamed upload: one PUT if it stays under [`PART_SIZE`], else a multipart upload
/// whose parts go out concurrently. Nothing is visible until `commit`.
struct S3Upload {
    store: S3Store,
    key: String,
    buf: BytesMut,
    upload_id: Option<String>,
    next_part: i32,
    in_flight: JoinSet<StorageResult<CompletedPart>>,
    done: Vec<CompletedPart>,
}

impl S3Upload {
    fn uri(&self) -> String {
        self.store.uri(&self.key)
    }

    fn with_checksums(&self) -> bool {
        self.store.client.config().request_checksum_calculation()
            != Some(&RequestChecksumCalculation::WhenRequired)
    }

    async fn upload_id(&mut self) -> StorageResult<String> {
        if let Some(id) = &self.upload_id {
            return Ok(id.clone());
        }
        let mut req = self
            .store
            .client
            .create_multipart_upload()
            .bucket(&self.store.bucket)
            .key(self.store.key(&self.key))
            .content_type(content_type(&self.key));
        if self.with_checksums() {
            req = req.checksum_algorithm(ChecksumAlgorithm::Crc32);
        }
        let out = req
            .send()
            .await
            .map_err(|e| StorageError::failed("start upload of", self.uri(), describe(&e)))?;
        let id = out
            .upload_id()
            .ok_or_else(|| {
                StorageError::failed(
                    "start upload of",
                    self.uri(),
                    "the server returned no upload id",
                )
            })?
            .to_string();
        self.upload_id = Some(id.clone());
        Ok(id)
    }

    async fn send_part(&mut self, body: Bytes) -> StorageResult<()> {
        let upload_id = self.upload_id().await?;
        while self.in_flight.len() >= MAX_PARTS_IN_FLIGHT {
            self.collect_one().await?;
        }
        let part_number = self.next_part;
        self.next_part += 1;
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
                .map_err(|e| StorageError::failed("upload part of", uri, describe(&e)))?;
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
                joined.map_err(|e| StorageError::failed("upload part of", self.uri(), e))??;
            self.done.push(part);
        }
        Ok(())
    }

    async fn finish(&mut self) -> StorageResult<()> {
        if self.upload_id.is_none() {
            let body = std::mem::take(&mut self.buf).freeze();
            return self.store.put(&self.key, body, PutMode::Overwrite).await;
        }
        if !self.buf.is_empty() {
            let last = std::mem::take(&mut self.buf).freeze();
            self.send_part(last).await?;
        }
        while !self.in_flight.is_empty() {
            self.collect_one().await?;
        }
        let mut parts = std::mem::take(&mut self.done);
        parts.sort_by_key(|p| p.part_number());
        let upload_id = self.upload_id().await?;
        self.store
            .client
            .complete_multipart_upload()
            .bucket(&self.store.bucket)
            .key(self.store.key(&self.key))
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| StorageError::failed("complete upload of", self.uri(), describe(&e)))
    }
}

#[async_trait]
impl Upload for S3Upload {
    async fn write(&mut self, data: Bytes) -> StorageResult<()> {
        self.buf.extend_from_slice(&data);
        while self.buf.len() >= PART_SIZE {
            let part = self.buf.split_to(PART_SIZE).freeze();
            self.send_part(part).await?;
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> StorageResult<()> {
        let res = self.finish().await;
        if res.is_err() {
            self.abort().await;
        }
        res
    }

    async fn abort(mut self: Box<Self>) {
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        if let Some(id) = self.upload_id.take() {
            // Best effort: a bucket lifecycle rule (AbortIncompleteMultipartUpload) is the
            // backstop for uploads a killed process could not abort.
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
    }
}
