//! A store that records every call it passes on (tests only): what a reader read, and in
//! which order a writer deleted.

use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    BatchDelete, ChunkSource, ObjectMeta, ObjectStore, PutMode, StorageError, StorageResult, Upload,
};

/// `inner`, with a log of `"<op> <key>"` lines.
#[derive(Debug)]
pub struct Spy<S> {
    pub inner: S,
    log: Mutex<Vec<String>>,
}

impl<S> Spy<S> {
    pub fn new(inner: S) -> Self {
        Spy {
            inner,
            log: Mutex::new(Vec::new()),
        }
    }

    fn note(&self, op: &str, key: &str) {
        if let Ok(mut log) = self.log.lock() {
            log.push(format!("{op} {key}"));
        }
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for Spy<S> {
    fn uri(&self, key: &str) -> String {
        self.inner.uri(key)
    }
    async fn head(&self, key: &str) -> StorageResult<Option<ObjectMeta>> {
        self.note("head", key);
        self.inner.head(key).await
    }
    async fn get(&self, key: &str) -> StorageResult<Box<dyn ChunkSource>> {
        self.note("get", key);
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, body: Bytes, mode: PutMode) -> StorageResult<()> {
        self.note("put", key);
        self.inner.put(key, body, mode).await
    }
    async fn start_upload(&self, key: &str) -> StorageResult<Box<dyn Upload>> {
        self.note("upload", key);
        self.inner.start_upload(key).await
    }
    async fn delete(&self, key: &str) -> StorageResult<()> {
        self.note("delete", key);
        self.inner.delete(key).await
    }
    async fn clear_staging(&self, dir: &str) -> StorageResult<usize> {
        self.inner.clear_staging(dir).await
    }
    async fn replace_if(&self, key: &str, body: Bytes, revision: &str) -> StorageResult<()> {
        self.note("replace_if", key);
        self.inner.replace_if(key, body, revision).await
    }
    async fn delete_if(&self, key: &str, revision: &str) -> StorageResult<()> {
        self.note("delete_if", key);
        self.inner.delete_if(key, revision).await
    }
    async fn delete_batch(
        &self,
        objects: &[BatchDelete],
    ) -> StorageResult<Vec<(String, StorageError)>> {
        for o in objects {
            self.note("batch_delete", &o.key);
        }
        self.inner.delete_batch(objects).await
    }
    async fn list(&self, dir: &str) -> StorageResult<Vec<String>> {
        self.inner.list(dir).await
    }
    async fn list_folders(&self, dir: &str) -> StorageResult<Vec<String>> {
        self.inner.list_folders(dir).await
    }
}
