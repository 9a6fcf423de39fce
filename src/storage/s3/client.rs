//! Building the S3 client, and turning SDK errors into one-line sentences.
//!
//! The client comes from the AWS SDK's own default chain (profiles, env keys, IRSA,
//! instance roles) plus the settings the SDK lacks defaults for: explicit timeouts (it has
//! none, and a silent server hangs a call forever), bounded standard retries, path-style
//! addressing for custom endpoints, and the checksum mode older servers need.

use std::time::Duration;

use aws_config::environment::region::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::Client;

use crate::storage::{FailureKind, StorageError};

/// When the SDK computes request checksums (selectable for older servers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Bytes per byte-range GET when reading an object; an object no bigger is read by
    /// one GET.
    pub read_part_size: u64,
    /// Byte-range GETs in flight at once (1: one GET stream). S3 serves each connection
    /// at roughly 85-100 MB/s: more comes only over more connections. Memory for a read
    /// is bounded by `read_part_size * read_concurrency`: 16 MiB by default (2 MiB x 8),
    /// so that a row-grain run, with its upload's parts, stays under 96 MiB resident
    /// (measured at 1 GB: 84-92 MiB; 4 MiB x 8 reached 102 MiB, 8 MiB x 8 151 MiB).
    pub read_concurrency: usize,
}

impl Default for S3Options {
    /// The defaults of `run`'s `--s3-*` flags (a test keeps the two in step).
    fn default() -> Self {
        S3Options {
            endpoint_url: None,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(120),
            operation_timeout: Duration::from_secs(600),
            max_attempts: 4,
            initial_backoff: Duration::from_secs(1),
            checksum: ChecksumMode::WhenSupported,
            read_part_size: 2 << 20,
            read_concurrency: 8,
        }
    }
}

/// Why an S3 client cannot be built: a configuration the user must fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("no AWS region is configured: set AWS_REGION (or a profile with a region)")]
    NoRegion,
}

/// Builds a client from the AWS default chain plus [`S3Options`].
///
/// Region: the SDK's chain; with a custom endpoint and no region, `us-east-1`
/// (what MinIO expects). With neither, a usage error naming `AWS_REGION`.
pub async fn build_client(opts: &S3Options) -> Result<Client, ClientError> {
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
            return Err(ClientError::NoRegion);
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

/// The [`StorageError`] for an SDK failure of `op` on `uri`: typed by what the caller can
/// do about it, worded by [`describe`].
pub(super) fn sdk_error<E>(
    op: &'static str,
    uri: impl Into<String>,
    err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    StorageError::new(failure_kind(err), op, uri, describe(err))
}

/// What kind of failure an SDK error is.
fn failure_kind<E: ProvideErrorMetadata>(
    err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> FailureKind {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            FailureKind::Unavailable
        }
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            match (status, err.code()) {
                (412, _) | (_, Some("PreconditionFailed")) => FailureKind::PreconditionFailed,
                (401 | 403, _)
                | (_, Some("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken")) => {
                    FailureKind::PermissionDenied
                }
                (429 | 500..=599, _) | (_, Some("SlowDown" | "ServiceUnavailable")) => {
                    FailureKind::Unavailable
                }
                _ => FailureKind::Other,
            }
        }
        _ => FailureKind::Other,
    }
}

/// One line describing an SDK failure, without request dumps or credentials.
pub(super) fn describe<E>(err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> String
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
            if answered_ok_unreadably(err) {
                // (The SDK's XML errors dump the element they choked on: keep the start.)
                let cause = root_cause(err);
                let cause = match cause.char_indices().nth(160) {
                    Some((cut, _)) => format!("{}...", &cause[..cut]),
                    None => cause,
                };
                return format!("HTTP {status}, but the reply could not be read: {cause}");
            }
            let mut text = format!("HTTP {status}");
            if let Some(code) = s.err().code() {
                text = format!("{text} {code}");
            }
            if let Some(msg) = s.err().message().filter(|m| !m.is_empty()) {
                text = format!("{text}: {msg}");
            }
            let hint = match (status, s.err().code()) {
                (_, Some("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken"))
                | (401, _) => " (the credentials were refused: check the AWS credentials)",
                // A plain 403 is about permissions, not the keys; on some servers also an
                // upload the server no longer knows (after a restart).
                (403, _) => {
                    " (access denied: check what these credentials may do on this bucket and \
                     key; for an upload, whether the server still knows it)"
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
/// A 2xx answer without an S3 error code that the SDK still failed on: the server said
/// yes in a body the SDK could not parse. (A 200 carrying an S3 `<Error>` has a code and
/// stays a failure.)
pub(super) fn answered_ok_unreadably<E: ProvideErrorMetadata>(
    err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    matches!(err, SdkError::ServiceError(s)
        if s.raw().status().is_success() && s.err().code().is_none())
}

pub(super) fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

pub(super) fn is_precondition_failed<E>(
    err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool
where
    E: ProvideErrorMetadata,
{
    err.raw_response()
        .is_some_and(|r| r.status().as_u16() == 412)
        || err.code() == Some("PreconditionFailed")
}
