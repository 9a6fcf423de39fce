//! Local-folder backend: every write goes to a temporary name in the target folder, is
//! synced, and is renamed (or, to create, hard-linked) into place, so a reader never sees
//! half a file and a write error (a full disk) always reaches the caller. Small writes use
//! blocking `std::fs` calls on the blocking pool: a tokio `File` buffers, and an error of
//! its last write could surface nowhere.

use std::io::{ErrorKind, Write as _};
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

/// Removes the folders a deleted file leaves empty, up to (not including) `root`: a local
/// folder, like an S3 prefix, exists only while something is below it, so deleted versions
/// do not linger as empty version folders. A folder that is not empty stays (`remove_dir`
/// refuses), which ends the walk.
fn prune_empty_folders(root: &Path, deleted: &Path) {
    let mut folder = deleted.parent();
    while let Some(dir) = folder {
        if dir == root || !dir.starts_with(root) || std::fs::remove_dir(dir).is_err() {
            return;
        }
        folder = dir.parent();
    }
}

async fn ensure_parent(path: &Path) -> StorageResult<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .await
            .map_err(|e| io_err("create folder", parent, e))?;
    }
    Ok(())
}

/// The revision of a file: it changes whenever the file is replaced (a new inode) or
/// rewritten in place (size, modification time).
#[cfg(unix)]
fn revision_of(m: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    Some(format!(
        "{:x}-{:x}-{}-{}.{:09}",
        m.dev(),
        m.ino(),
        m.len(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

#[cfg(not(unix))]
fn revision_of(_m: &std::fs::Metadata) -> Option<String> {
    None
}

/// What a path that is neither a file nor a folder is, for [`StorageError::NotAFile`].
fn kind_of(m: &std::fs::Metadata) -> &'static str {
    if m.is_symlink() {
        "a broken link"
    } else {
        "a device, pipe or socket"
    }
}

/// Runs `change` with the current revision of `path` (`None`: it does not exist) under an
/// exclusive lock on its folder, so two conditional changes never interleave; a process
/// stopped while holding the lock blocks the others (they fail their lease) rather than
/// racing them.
fn under_folder_lock(
    path: &Path,
    change: impl FnOnce(Option<String>) -> StorageResult<()>,
) -> StorageResult<()> {
    let Some(folder) = path.parent() else {
        return change(None);
    };
    let lock = match std::fs::File::open(folder) {
        Ok(lock) => lock,
        Err(e) if e.kind() == ErrorKind::NotFound => return change(None),
        Err(e) => return Err(io_err("lock", folder, e)),
    };
    lock.lock().map_err(|e| io_err("lock", folder, e))?;
    let current = match std::fs::symlink_metadata(path) {
        // No revision for something that is not a plain file: never "unchanged".
        Ok(m) if m.is_file() => Some(revision_of(&m).unwrap_or_default()),
        Ok(_) => Some(String::new()),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("stat", path, e)),
    };
    change(current)
}

fn changed(op: &'static str, path: &Path) -> StorageError {
    StorageError::new(
        FailureKind::PreconditionFailed,
        op,
        path.display().to_string(),
        "it was replaced or removed since it was looked at",
    )
}

/// Writes `body` to a new file at `tmp` and syncs it; every error is returned.
fn write_synced(tmp: &Path, body: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(tmp)?;
    f.write_all(body)?;
    f.sync_all()
}

/// Runs blocking file work on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> StorageResult<T> + Send + 'static,
) -> StorageResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StorageError::other("run", "a file task", e))?
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
    // A temporary file that vanished was cleared by the holder of the folder's version
    // (`clear_staging`): this writer lost its place, which is not a disk failure.
    let vanished = |e: &std::io::Error| {
        e.kind() == ErrorKind::NotFound && std::fs::symlink_metadata(tmp).is_err()
    };
    let cleared = || changed("publish", path);
    match mode {
        PutMode::Overwrite => match fs::rename(tmp, path).await {
            Ok(()) => Ok(()),
            Err(e) if vanished(&e) => Err(cleared()),
            Err(e) => Err(io_err("rename into", path, e)),
        },
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
                Err(e) if vanished(&e) => Err(cleared()),
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
                revision: revision_of(&m),
            })),
            // A folder is a prefix, not an object: like S3, HEAD finds nothing there.
            Ok(m) if m.is_dir() => Ok(None),
            // A device or pipe is not "missing": a caller that takes it for one would skip
            // or retry for ever instead of saying what is wrong.
            Ok(m) => Err(StorageError::NotAFile {
                uri: path.display().to_string(),
                what: kind_of(&m),
            }),
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

    async fn get_unchanged(
        &self,
        key: &str,
        seen: &ObjectMeta,
    ) -> StorageResult<Box<dyn ChunkSource>> {
        let path = self.path(key);
        let file = match fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(StorageError::NotFound {
                    uri: path.display().to_string(),
                })
            }
            Err(e) => return Err(io_err("open", &path, e)),
        };
        // The file opened is the one the HEAD described (same inode, size and time), so
        // what is read is what the run recorded.
        let opened = file
            .metadata()
            .await
            .map_err(|e| io_err("stat", &path, e))?;
        if seen.revision.is_some() && revision_of(&opened) != seen.revision {
            return Err(changed("read", &path));
        }
        Ok(Box::new(LocalChunks { file, path }))
    }

    async fn put(&self, key: &str, body: Bytes, mode: PutMode) -> StorageResult<()> {
        let path = self.path(key);
        ensure_parent(&path).await?;
        let tmp = temp_path(&path);
        let (tmp_w, path_w, body_w) = (tmp.clone(), path.clone(), body.clone());
        blocking(move || {
            let mut written = write_synced(&tmp_w, &body_w);
            if matches!(&written, Err(e) if e.kind() == ErrorKind::NotFound) {
                // A delete emptied and removed the folder just now: make it again, once.
                if let Some(parent) = path_w.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                written = write_synced(&tmp_w, &body_w);
            }
            written.map_err(|e| {
                let _ = std::fs::remove_file(&tmp_w);
                io_err("write", &path_w, e)
            })
        })
        .await?;
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
        let file = match fs::File::create(&tmp).await {
            // A delete emptied and removed the folder just now: make it again, once.
            Err(e) if e.kind() == ErrorKind::NotFound => {
                ensure_parent(&path).await?;
                fs::File::create(&tmp).await
            }
            other => other,
        }
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
            Ok(()) => {
                let (root, path) = (self.root.clone(), path.clone());
                let _ =
                    tokio::task::spawn_blocking(move || prune_empty_folders(&root, &path)).await;
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("delete", &path, e)),
        }
    }

    async fn clear_staging(&self, dir: &str) -> StorageResult<usize> {
        let folder = self.path(dir);
        let mut entries = match fs::read_dir(&folder).await {
            Ok(entries) => entries,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(0)
            }
            Err(e) => return Err(io_err("list", &folder, e)),
        };
        let mut removed = 0;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| io_err("list", &folder, e))?
        {
            if is_temp_name(&entry.file_name().to_string_lossy()) {
                match fs::remove_file(entry.path()).await {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("delete", &entry.path(), e)),
                }
            }
        }
        Ok(removed)
    }

    async fn replace_if(&self, key: &str, body: Bytes, revision: &str) -> StorageResult<()> {
        let path = self.path(key);
        let tmp = temp_path(&path);
        let revision = revision.to_string();
        blocking(move || {
            write_synced(&tmp, &body).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                io_err("write", &path, e)
            })?;
            let replaced = under_folder_lock(&path, |current| {
                if current.as_deref() != Some(revision.as_str()) {
                    return Err(changed("replace", &path));
                }
                std::fs::rename(&tmp, &path).map_err(|e| io_err("rename into", &path, e))
            });
            if replaced.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            replaced
        })
        .await
    }

    async fn delete_if(&self, key: &str, revision: &str) -> StorageResult<()> {
        let path = self.path(key);
        let root = self.root.clone();
        let revision = revision.to_string();
        blocking(move || {
            under_folder_lock(&path, |current| match current {
                None => Ok(()),
                Some(current) if current != revision => Err(changed("delete", &path)),
                Some(_) => match std::fs::remove_file(&path) {
                    Ok(()) => {
                        prune_empty_folders(&root, &path);
                        Ok(())
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(io_err("delete", &path, e)),
                },
            })
        })
        .await
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

    async fn commit(mut self: Box<Self>, mode: PutMode) -> StorageResult<()> {
        let flushed = async {
            self.file.flush().await?;
            self.file.sync_all().await
        }
        .await;
        if let Err(e) = flushed {
            let _ = fs::remove_file(&self.tmp).await;
            return Err(io_err("write", &self.path, e));
        }
        let published = publish(&self.tmp, &self.path, mode).await;
        if published.is_err() {
            let _ = fs::remove_file(&self.tmp).await;
        }
        published
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
