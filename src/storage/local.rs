//! Local-folder backend: every write goes to a temporary name in the target folder and
//! is renamed into place, so a reader never sees half a file.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use tokio::fs;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    created_already, ChunkSource, FailureKind, ObjectMeta, ObjectStore, PutMode, StorageError,
    StorageResult, Upload,
};

/// Read size for local files: large enough that per-read overhead vanishes.
const READ_CHUNK: usize = 1 << 20;

/// A folder used as an object store; keys are relative paths below it.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into() }
    }

    fn path(&self, key: &str) -> PathBuf {
        // Keys are built by featurepipe itself; `..` never appears in them.
        key.split('/')
            .filter(|part| !part.is_empty())
            .fold(self.root.clone(), |p, part| p.join(part))
    }
}

fn io_err(op: &'static str, path: &Path, e: std::io::Error) -> StorageError {
    let kind = match e.kind() {
        ErrorKind::PermissionDenied => FailureKind::PermissionDenied,
        _ => FailureKind::Other,
    };
    StorageError::new(kind, op, path.display().to_string(), e)
}

/// A temporary sibling of `path` that no reader takes for the real thing.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(
        ".{name}{TEMP_MARK}{}",
        crate::values::ids::short_random()
    ))
}

/// Part of every temporary file name (see [`temp_path`]).
const TEMP_MARK: &str = ".tmp-";

/// Whether a file name is one of our temporary files, not an object.
fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(TEMP_MARK)
}

async fn ensure_parent(path: &Path) -> StorageResult<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .await
            .map_err(|e| io_err("create folder", parent, e))?;
    }
    Ok(())
}

/// Makes a completed rename durable (best effort: not every filesystem allows it).
async fn sync_parent(path: &Path) {
    if let Some(parent) = path.parent() {
        if let Ok(dir) = fs::File::open(parent).await {
            let _ = dir.sync_all().await;
        }
    }
}

/// Moves a finished temporary file into place under `mode`'s rules.
async fn publish(tmp: &Path, path: &Path, mode: PutMode) -> StorageResult<()> {
    match mode {
        PutMode::Overwrite => fs::rename(tmp, path)
            .await
            .map_err(|e| io_err("rename into", path, e)),
        PutMode::Create => {
            // link(2) fails if the target exists: an atomic create-if-absent.
            let linked = fs::hard_link(tmp, path).await;
            let _ = fs::remove_file(tmp).await;
            match linked {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    Err(StorageError::AlreadyExists {
                        uri: path.display().to_string(),
                    })
                }
                Err(e) => Err(io_err("create", path, e)),
            }
        }
    }?;
    sync_parent(path).await;
    Ok(())
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn uri(&self, key: &str) -> String {
        self.path(key).display().to_string()
    }

    async fn head(&self, key: &str) -> StorageResult<Option<ObjectMeta>> {
        let path = self.path(key);
        match fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some(ObjectMeta {
                size_bytes: m.len(),
                etag: None,
                last_modified: m.modified().ok().map(|t| {
                    chrono::DateTime::<chrono::Utc>::from(t)
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                }),
            })),
            // A folder is a prefix, not an object: like S3, HEAD finds nothing there.
            Ok(_) => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("stat", &path, e)),
        }
    }

    async fn get(&self, key: &str) -> StorageResult<Box<dyn ChunkSource>> {
        let path = self.path(key);
        match fs::File::open(&path).await {
            Ok(file) => Ok(Box::new(LocalChunks { file, path })),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(StorageError::NotFound {
                uri: path.display().to_string(),
            }),
            Err(e) => Err(io_err("open", &path, e)),
        }
    }

    async fn put(&self, key: &str, body: Bytes, mode: PutMode) -> StorageResult<()> {
        let path = self.path(key);
        ensure_parent(&path).await?;
        let tmp = temp_path(&path);
        let written = async {
            let mut f = fs::File::create(&tmp).await?;
            f.write_all(&body).await?;
            f.sync_all().await
        }
        .await;
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp).await;
            return Err(io_err("write", &path, e));
        }
        match publish(&tmp, &path, mode).await {
            Err(StorageError::AlreadyExists { .. }) if created_already(self, key, &body).await => {
                Ok(())
            }
            published => published,
        }
    }

    async fn start_upload(&self, key: &str) -> StorageResult<Box<dyn Upload>> {
        let path = self.path(key);
        ensure_parent(&path).await?;
        let tmp = temp_path(&path);
        let file = fs::File::create(&tmp)
            .await
            .map_err(|e| io_err("create", &tmp, e))?;
        Ok(Box::new(LocalUpload { file, tmp, path }))
    }

    async fn list(&self, dir: &str) -> StorageResult<Vec<String>> {
        let mut keys = Vec::new();
        let mut pending = vec![(self.path(dir), dir.trim_matches('/').to_string())];
        while let Some((folder, prefix)) = pending.pop() {
            let mut entries = match fs::read_dir(&folder).await {
                Ok(entries) => entries,
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                    continue
                }
                Err(e) => return Err(io_err("list", &folder, e)),
            };
            while let Some(entry) = entries
                .next_entry()
                .await
                .map_err(|e| io_err("list", &folder, e))?
            {
                let name = entry.file_name().to_string_lossy().into_owned();
                if is_temp_name(&name) {
                    continue;
                }
                let key = super::join_key(&prefix, &name);
                let kind = entry
                    .file_type()
                    .await
                    .map_err(|e| io_err("list", &entry.path(), e))?;
                if kind.is_dir() {
                    pending.push((entry.path(), key));
                } else {
                    keys.push(key);
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    async fn list_folders(&self, dir: &str) -> StorageResult<Vec<String>> {
        let folder = self.path(dir);
        let mut entries = match fs::read_dir(&folder).await {
            Ok(entries) => entries,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(io_err("list", &folder, e)),
        };
        let mut names = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| io_err("list", &folder, e))?
        {
            let is_dir = entry.file_type().await.is_ok_and(|t| t.is_dir());
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_dir && !is_temp_name(&name) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        let path = self.path(key);
        match fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("delete", &path, e)),
        }
    }
}

struct LocalChunks {
    file: fs::File,
    path: PathBuf,
}

#[async_trait]
impl ChunkSource for LocalChunks {
    async fn next_chunk(&mut self) -> StorageResult<Option<Bytes>> {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        while buf.len() < READ_CHUNK {
            let n = self
                .file
                .read_buf(&mut buf)
                .await
                .map_err(|e| io_err("read", &self.path, e))?;
            if n == 0 {
                break;
            }
        }
        Ok((!buf.is_empty()).then(|| buf.freeze()))
    }
}

struct LocalUpload {
    file: fs::File,
    tmp: PathBuf,
    path: PathBuf,
}

#[async_trait]
impl Upload for LocalUpload {
    async fn write(&mut self, data: Bytes) -> StorageResult<()> {
        self.file
            .write_all(&data)
            .await
            .map_err(|e| io_err("write", &self.tmp, e))
    }

    async fn commit(mut self: Box<Self>) -> StorageResult<()> {
        let flushed = async {
            self.file.flush().await?;
            self.file.sync_all().await
        }
        .await;
        if let Err(e) = flushed {
            let _ = fs::remove_file(&self.tmp).await;
            return Err(io_err("write", &self.path, e));
        }
        publish(&self.tmp, &self.path, PutMode::Overwrite).await
    }

    async fn abort(self: Box<Self>) {
        drop(self.file);
        let _ = fs::remove_file(&self.tmp).await;
        // Leave no empty version folder behind (remove_dir only removes empty ones).
        if let Some(parent) = self.path.parent() {
            let _ = fs::remove_dir(parent).await;
        }
    }
}
