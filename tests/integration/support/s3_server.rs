//! An in-process S3 server for tests and the benchmark.
//!
//! `s3s_fs::FileSystem` (buckets are folders, objects are files) served over HTTP/1.1 on
//! loopback by hyper, with SigV4 authentication (`s3s::auth::SimpleAuth`), so the real
//! aws-sdk-s3 client talks to it exactly as it would to MinIO or AWS.
//!
//! The server runs on its own tokio runtime on a background thread, so it can be started from
//! plain `#[test]` functions (and from inside another runtime). Dropping the `S3Server` stops
//! it; a server created by [`S3Server::start`] also deletes its temporary root.
//!
//! GetObject bodies are streamed in 1 MiB reads (see [`FastGetFs`]); everything else is
//! s3s-fs as published.
//!
//! This file is also compiled into `examples/s3_server.rs` via `#[path]`, so it only uses
//! dev-dependencies and declares no modules of its own.
#![allow(dead_code)]

use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::dto::*;
use s3s::service::S3ServiceBuilder;
use s3s::{S3Request, S3Response, S3Result, S3};

/// Access key the test server accepts (not a real AWS key).
pub const ACCESS_KEY: &str = "AKIATESTFEATUREPIPE";
/// Secret key the test server accepts. Tests assert it never shows up in logs.
pub const SECRET_KEY: &str = "test-secret-key-do-not-log-7f3a9c";

/// Where the server keeps its data: a temporary folder it owns, or a caller's folder.
enum Root {
    Temp(tempfile::TempDir),
    Fixed(PathBuf),
}

impl Root {
    fn path(&self) -> &Path {
        match self {
            Root::Temp(dir) => dir.path(),
            Root::Fixed(path) => path,
        }
    }
}

/// A running S3 server on `127.0.0.1`. Stops when dropped.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`, for `--endpoint-url` / `AWS_ENDPOINT_URL`.
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub addr: SocketAddr,
    // Field order matters for drop: `Drop::drop` stops and joins the server thread first, then
    // the fields drop and the temporary root (if any) is removed.
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    root: Root,
}

impl S3Server {
    /// Starts a server on a random free port with an empty temporary root.
    pub fn start() -> S3Server {
        Self::start_temp(true)
    }

    /// Like [`S3Server::start`], but the server ignores `If-None-Match: *` on writes, as
    /// older MinIO releases and some S3 emulators do: a create-if-absent overwrites.
    pub fn start_ignoring_if_none_match() -> S3Server {
        Self::start_temp(false)
    }

    fn start_temp(if_none_match: bool) -> S3Server {
        let dir = tempfile::Builder::new()
            .prefix("featurepipe-s3-")
            .tempdir()
            .expect("s3 test server: cannot create a temporary directory");
        Self::spawn(Root::Temp(dir), 0, if_none_match).expect("s3 test server: cannot start")
    }

    /// Starts a server storing its data in `root` (created if missing, kept after drop) on
    /// `127.0.0.1:port` (`0` picks a free port). Panics if it cannot start.
    pub fn start_in(root: PathBuf, port: u16) -> S3Server {
        Self::try_start_in(root, port)
            .unwrap_or_else(|e| panic!("s3 test server: cannot start: {e}"))
    }

    /// Like [`S3Server::start_in`], but returns the error instead of panicking.
    pub fn try_start_in(root: PathBuf, port: u16) -> io::Result<S3Server> {
        std::fs::create_dir_all(&root)?;
        Self::spawn(Root::Fixed(root), port, true)
    }

    /// The folder the server stores buckets (sub-folders) and objects (files) in.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Creates a bucket (s3s-fs maps a bucket to a folder under the root). Idempotent.
    pub fn create_bucket(&self, name: &str) {
        std::fs::create_dir_all(self.root().join(name))
            .unwrap_or_else(|e| panic!("s3 test server: cannot create bucket {name:?}: {e}"));
    }

    /// The local file holding object `key` of `bucket` (s3s-fs stores objects as plain files).
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root().join(bucket).join(key)
    }

    fn spawn(root: Root, port: u16, if_none_match: bool) -> io::Result<S3Server> {
        // Bind synchronously: once this returns, the kernel queues connections for us.
        let listener = StdTcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;

        let fs = s3s_fs::FileSystem::new(root.path()).map_err(|e| {
            io::Error::other(format!(
                "s3s-fs cannot use {}: {e:?}",
                root.path().display()
            ))
        })?;
        let fs = FastGetFs {
            inner: fs,
            root: root.path().canonicalize()?,
            writes: tokio::sync::RwLock::new(()),
            if_none_match,
            uploads: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        };
        let service = {
            let mut builder = S3ServiceBuilder::new(fs);
            builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            builder.build()
        };

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3-test-server")
            .enable_all()
            .build()?;

        let (shutdown_tx, mut shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();

        let thread = std::thread::Builder::new()
            .name(format!("s3-test-server-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let http = ConnBuilder::new(TokioExecutor::new());
                    loop {
                        let socket = tokio::select! {
                            res = listener.accept() => match res {
                                Ok((socket, _)) => socket,
                                // e.g. EMFILE: back off a little instead of spinning.
                                Err(_) => {
                                    tokio::time::sleep(Duration::from_millis(10)).await;
                                    continue;
                                }
                            },
                            _ = &mut shutdown_rx => break,
                        };
                        let _ = socket.set_nodelay(true);
                        let conn = http
                            .serve_connection(TokioIo::new(socket), service.clone())
                            .into_owned();
                        tokio::spawn(async move {
                            let _ = conn.await;
                        });
                    }
                });
                // Open connections and in-flight requests are cancelled here.
                runtime.shutdown_timeout(Duration::from_secs(2));
            })?;

        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(io::Error::other(
                    "s3 server thread exited before it was ready",
                ));
            }
        }

        // Make sure the port really accepts connections before handing it out.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                Ok(_) => break,
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }

        Ok(S3Server {
            endpoint: format!("http://{addr}"),
            access_key: ACCESS_KEY.to_string(),
            secret_key: SECRET_KEY.to_string(),
            addr,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
            root,
        })
    }

    /// Blocks until the server stops (it only stops when dropped, so: forever). For the
    /// standalone example binary.
    pub fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `s3s_fs::FileSystem` with a faster GetObject body.
///
/// s3s-fs 0.14.1 streams objects in 4 KiB reads, each a `spawn_blocking` round trip, and hyper
/// writes each 4 KiB as its own frame: GET then costs the server about 6 ms of CPU per MB and
/// caps loopback downloads near 100 MB/s on 2 cores, far below what the benchmark wants to
/// compare against. This wrapper lets s3s-fs answer every request as usual (status, headers,
/// ranges, checksums, errors) and only swaps the GetObject body for a stream of 1 MiB reads of
/// the same file (the same inode s3s-fs opened, checked before and after; if anything changed,
/// the original body is kept).
///
/// It also makes writes atomic as S3's are, which s3s-fs's are not: s3s-fs checks
/// `If-None-Match: *` and then writes (two racing creates can both succeed), and stores an
/// object's checksum after renaming its data into place (a read in between fails its
/// checksum). Writes that replace whole objects therefore hold `writes` exclusively, and
/// reads hold it shared while s3s-fs opens the file and loads its metadata.
///
/// Three things AWS S3 does that s3s-fs 0.14.1 does not are added the same way:
/// `If-Match: <etag>` on DeleteObject and a per-object `ETag` in DeleteObjects
/// (conditional deletes), and ListMultipartUploads (the uploads started and neither
/// completed nor aborted, tracked here).
struct FastGetFs {
    inner: s3s_fs::FileSystem,
    root: PathBuf,
    writes: tokio::sync::RwLock<()>,
    /// Honour `If-None-Match: *` on PutObject and CompleteMultipartUpload (false: drop it,
    /// as servers without conditional writes do).
    if_none_match: bool,
    /// Upload id -> (bucket, key) of every upload in progress.
    uploads: std::sync::Mutex<std::collections::BTreeMap<String, (String, String)>>,
}

/// Device and inode of a file, to tell whether two opens saw the same file.
#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_id(_meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// First byte of a `Content-Range: bytes FIRST-LAST/TOTAL` value.
fn content_range_start(range: &str) -> Option<u64> {
    range
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

impl FastGetFs {
    /// Records an upload in progress, or (`None`) forgets it.
    fn track_upload(&self, id: &str, upload: Option<(String, String)>) {
        if let Ok(mut uploads) = self.uploads.lock() {
            match upload {
                Some(u) => {
                    uploads.insert(id.to_string(), u);
                }
                None => {
                    uploads.remove(id);
                }
            }
        }
    }

    /// The file s3s-fs keeps `bucket/key` in, if the key is a plain relative path (anything
    /// unusual is left to s3s-fs alone).
    fn plain_object_path(&self, bucket: &str, key: &str) -> Option<PathBuf> {
        let simple = |s: &str| {
            !s.is_empty()
                && !s.starts_with('/')
                && !s.contains('\\')
                && s.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
        };
        (simple(bucket) && !bucket.contains('/') && simple(key))
            .then(|| self.root.join(bucket).join(key))
    }

    async fn fast_get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        use aws_sdk_s3::primitives::{ByteStream, Length};

        let path = self.plain_object_path(&req.input.bucket, &req.input.key);
        let mut opened = None;
        if let Some(path) = &path {
            if let Ok(file) = tokio::fs::File::open(path).await {
                if let Ok(meta) = file.metadata().await {
                    if meta.is_file() {
                        opened = file_id(&meta).map(|id| (file, id));
                    }
                }
            }
        }

        let mut resp = self.inner.get_object(req).await?;

        let (Some(path), Some((file, id))) = (path, opened) else {
            return Ok(resp);
        };
        // Same file as the one s3s-fs answered from (s3s-fs replaces objects by rename)?
        let same = match tokio::fs::metadata(&path).await {
            Ok(meta) => file_id(&meta) == Some(id),
            Err(_) => false,
        };
        let out = &mut resp.output;
        let (Some(len), true, true) = (out.content_length, same, out.body.is_some()) else {
            return Ok(resp);
        };
        let Ok(len) = u64::try_from(len) else {
            return Ok(resp);
        };
        let offset = match &out.content_range {
            None => 0,
            Some(range) => match content_range_start(range) {
                Some(start) => start,
                None => return Ok(resp),
            },
        };
        let stream = ByteStream::read_from()
            .file(file)
            .offset(offset)
            .length(Length::Exact(len))
            .buffer_size(1 << 20)
            .build()
            .await;
        if let Ok(stream) = stream {
            out.body = Some(StreamingBlob::from(s3s::Body::http_body(
                stream.into_inner(),
            )));
        }
        Ok(resp)
    }
}

/// A HeadObject request for `bucket`/`key` carrying `req`'s credentials (to read the
/// current ETag before a conditional delete).
fn head_request<T>(
    req: &S3Request<T>,
    bucket: &str,
    key: &str,
) -> S3Result<S3Request<HeadObjectInput>> {
    let input = HeadObjectInput::builder()
        .bucket(bucket.to_string())
        .key(key.to_string())
        .build()
        .map_err(|e| s3s::s3_error!(InternalError, "{e}"))?;
    Ok(S3Request {
        input,
        method: req.method.clone(),
        uri: req.uri.clone(),
        headers: req.headers.clone(),
        extensions: Default::default(),
        credentials: req.credentials.clone(),
        region: req.region.clone(),
        service: req.service.clone(),
        trailing_headers: None,
    })
}

/// Implements `S3` for [`FastGetFs`]: every operation s3s-fs 0.14.1 implements goes to it,
/// GetObject through [`FastGetFs::fast_get_object`].
macro_rules! delegate_to_s3s_fs {
    ($($op:ident: $input:ident => $output:ident,)*) => {
        #[async_trait::async_trait]
        impl S3 for FastGetFs {
            $(
                async fn $op(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    self.inner.$op(req).await
                }
            )*

            async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
                let _read = self.writes.read().await;
                self.fast_get_object(req).await
            }

            async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
                let _read = self.writes.read().await;
                self.inner.head_object(req).await
            }

            async fn put_object(&self, mut req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
                if !self.if_none_match {
                    req.input.if_none_match = None;
                }
                let _write = self.writes.write().await;
                self.inner.put_object(req).await
            }

            async fn complete_multipart_upload(
                &self,
                mut req: S3Request<CompleteMultipartUploadInput>,
            ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
                if !self.if_none_match {
                    req.input.if_none_match = None;
                }
                let id = req.input.upload_id.clone();
                let _write = self.writes.write().await;
                let resp = self.inner.complete_multipart_upload(req).await?;
                self.track_upload(&id, None);
                Ok(resp)
            }

            async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
                let _write = self.writes.write().await;
                if let Some(expected) = req.input.if_match.as_ref().and_then(|c| c.as_etag()) {
                    let head = head_request(&req, &req.input.bucket, &req.input.key)?;
                    let head = self.inner.head_object(head).await?;
                    let current = head.output.e_tag.as_ref();
                    if !current.is_some_and(|c| c.strong_cmp(expected)) {
                        return Err(s3s::s3_error!(PreconditionFailed, "ETag does not match"));
                    }
                }
                self.inner.delete_object(req).await
            }

            async fn delete_objects(&self, mut req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
                let _write = self.writes.write().await;
                // An object named with an ETag is deleted only while it has that ETag;
                // the others go to s3s-fs as they are.
                let mut kept = Vec::new();
                let mut refused = Vec::new();
                for object in std::mem::take(&mut req.input.delete.objects) {
                    let Some(expected) = object.e_tag.clone() else {
                        kept.push(object);
                        continue;
                    };
                    let head = head_request(&req, &req.input.bucket, &object.key)?;
                    let current = match self.inner.head_object(head).await {
                        Ok(head) => head.output.e_tag,
                        // Already gone: nothing to compare, nothing to delete.
                        Err(_) => continue,
                    };
                    if current.as_ref().is_some_and(|c| c.strong_cmp(&expected)) {
                        kept.push(object);
                    } else {
                        refused.push(Error {
                            code: Some("PreconditionFailed".into()),
                            key: Some(object.key),
                            message: Some("ETag does not match".into()),
                            version_id: None,
                        });
                    }
                }
                req.input.delete.objects = kept;
                let mut resp = self.inner.delete_objects(req).await?;
                if !refused.is_empty() {
                    resp.output.errors.get_or_insert_with(Vec::new).extend(refused);
                }
                Ok(resp)
            }

            async fn create_multipart_upload(
                &self,
                req: S3Request<CreateMultipartUploadInput>,
            ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
                let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
                let resp = self.inner.create_multipart_upload(req).await?;
                if let Some(id) = &resp.output.upload_id {
                    self.track_upload(id, Some((bucket, key)));
                }
                Ok(resp)
            }

            async fn abort_multipart_upload(
                &self,
                req: S3Request<AbortMultipartUploadInput>,
            ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
                let id = req.input.upload_id.clone();
                let resp = self.inner.abort_multipart_upload(req).await?;
                self.track_upload(&id, None);
                Ok(resp)
            }

            async fn list_multipart_uploads(
                &self,
                req: S3Request<ListMultipartUploadsInput>,
            ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
                let prefix = req.input.prefix.clone().unwrap_or_default();
                let uploads: Vec<MultipartUpload> = self
                    .uploads
                    .lock()
                    .map_err(|_| s3s::s3_error!(InternalError))?
                    .iter()
                    .filter(|(_, (bucket, key))| {
                        *bucket == req.input.bucket && key.starts_with(&prefix)
                    })
                    .map(|(id, (_, key))| MultipartUpload {
                        key: Some(key.clone()),
                        upload_id: Some(id.clone()),
                        ..Default::default()
                    })
                    .collect();
                Ok(S3Response::new(ListMultipartUploadsOutput {
                    bucket: Some(req.input.bucket),
                    prefix: req.input.prefix,
                    is_truncated: Some(false),
                    uploads: Some(uploads),
                    ..Default::default()
                }))
            }
        }
    };
}

delegate_to_s3s_fs! {
    copy_object: CopyObjectInput => CopyObjectOutput,
    create_bucket: CreateBucketInput => CreateBucketOutput,
    delete_bucket: DeleteBucketInput => DeleteBucketOutput,
    get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput,
    head_bucket: HeadBucketInput => HeadBucketOutput,
    list_buckets: ListBucketsInput => ListBucketsOutput,
    list_objects: ListObjectsInput => ListObjectsOutput,
    list_objects_v2: ListObjectsV2Input => ListObjectsV2Output,
    list_parts: ListPartsInput => ListPartsOutput,
    upload_part: UploadPartInput => UploadPartOutput,
    upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput,
}
