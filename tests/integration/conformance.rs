//! One conformance suite for the storage trait, run on every backend: a local folder and
//! a live S3 server. A backend that breaks a visibility rule breaks the publish protocol.

use std::sync::Arc;

use bytes::Bytes;
use featurepipe::storage::local::LocalStore;
use featurepipe::storage::s3::{ChecksumMode, PART_SIZE};
use featurepipe::storage::{BatchDelete, ObjectStore, PutMode, StorageError, Upload};

use crate::support::{s3_store, s3_store_with, S3Server};

async fn read_all(store: &Arc<dyn ObjectStore>, key: &str) -> Vec<u8> {
    store
        .get_small(key)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{key} missing"))
}

/// An upload of `body` to `key`, written in odd-sized chunks that straddle part borders,
/// not yet finished or committed.
async fn upload_in_chunks(store: &Arc<dyn ObjectStore>, key: &str, body: &[u8]) -> Box<dyn Upload> {
    let mut up = store.start_upload(key).await.unwrap();
    for chunk in body.chunks(1_000_003) {
        up.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    up
}

async fn suite(store: Arc<dyn ObjectStore>) {
    // Missing keys.
    assert!(store.head("nope/x").await.unwrap().is_none());
    assert!(matches!(
        store.get("nope/x").await.err(),
        Some(StorageError::NotFound { .. })
    ));
    assert!(store.get_small("nope/x").await.unwrap().is_none());
    store.delete("nope/x").await.unwrap();

    // Put / head / get / overwrite.
    store
        .put(
            "a/b/one.json",
            Bytes::from_static(b"{\"v\":1}"),
            PutMode::Overwrite,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .head("a/b/one.json")
            .await
            .unwrap()
            .unwrap()
            .size_bytes,
        7
    );
    assert_eq!(read_all(&store, "a/b/one.json").await, b"{\"v\":1}");
    store
        .put(
            "a/b/one.json",
            Bytes::from_static(b"{\"v\":22}"),
            PutMode::Overwrite,
        )
        .await
        .unwrap();
    assert_eq!(read_all(&store, "a/b/one.json").await, b"{\"v\":22}");

    // Create is create-if-absent, and a refused create changes nothing.
    store
        .put("a/_SUCCESS", Bytes::from_static(b"first"), PutMode::Create)
        .await
        .unwrap();
    let again = store
        .put("a/_SUCCESS", Bytes::from_static(b"second"), PutMode::Create)
        .await;
    assert!(
        matches!(again, Err(StorageError::AlreadyExists { .. })),
        "{again:?}"
    );
    assert_eq!(read_all(&store, "a/_SUCCESS").await, b"first");
    // Exactly the bytes already there: a retried create whose first reply was lost.
    store
        .put("a/_SUCCESS", Bytes::from_static(b"first"), PutMode::Create)
        .await
        .unwrap();
    assert_eq!(read_all(&store, "a/_SUCCESS").await, b"first");

    // Delete.
    store.delete("a/_SUCCESS").await.unwrap();
    assert!(store.head("a/_SUCCESS").await.unwrap().is_none());

    // A small upload is invisible until committed.
    let mut up = store.start_upload("v/small.csv").await.unwrap();
    up.write(Bytes::from_static(b"row_sum\r\n")).await.unwrap();
    up.write(Bytes::from_static(b"1.0\r\n")).await.unwrap();
    assert!(
        store.head("v/small.csv").await.unwrap().is_none(),
        "visible before commit"
    );
    up.commit(PutMode::Overwrite).await.unwrap();
    assert_eq!(read_all(&store, "v/small.csv").await, b"row_sum\r\n1.0\r\n");

    // A multipart-sized upload (3 parts and a tail) arrives whole and in order.
    let body: Vec<u8> = (0..(PART_SIZE * 3 + 12345))
        .map(|i| (i % 251) as u8)
        .collect();
    let mut up = upload_in_chunks(&store, "v/big.bin", &body).await;
    assert!(
        store.head("v/big.bin").await.unwrap().is_none(),
        "visible before commit"
    );
    // As the pass does: the last part may go out before commit, still invisible.
    up.finish_writes().await.unwrap();
    assert!(
        store.head("v/big.bin").await.unwrap().is_none(),
        "visible before commit"
    );
    up.commit(PutMode::Overwrite).await.unwrap();
    assert_eq!(
        store.head("v/big.bin").await.unwrap().unwrap().size_bytes,
        body.len() as u64
    );
    assert!(
        read_all(&store, "v/big.bin").await == body,
        "multipart body differs"
    );

    // Between half a part and a part (S3 starts a multipart upload ahead, then a single
    // PUT is enough): whole, and only once committed.
    let mid: Vec<u8> = (0..(PART_SIZE * 3 / 4)).map(|i| (i % 241) as u8).collect();
    let mut up = upload_in_chunks(&store, "v/mid.bin", &mid).await;
    up.finish_writes().await.unwrap();
    assert!(
        store.head("v/mid.bin").await.unwrap().is_none(),
        "visible before commit"
    );
    up.commit(PutMode::Overwrite).await.unwrap();
    assert!(
        read_all(&store, "v/mid.bin").await == mid,
        "mid-sized body differs"
    );
    store.delete("v/mid.bin").await.unwrap();

    // An aborted upload leaves nothing, and does not disturb an existing object.
    let mut up = store.start_upload("v/small.csv").await.unwrap();
    up.write(Bytes::from(vec![7u8; PART_SIZE + 10]))
        .await
        .unwrap();
    up.abort().await;
    assert_eq!(read_all(&store, "v/small.csv").await, b"row_sum\r\n1.0\r\n");
    let mut up = store.start_upload("w/never.csv").await.unwrap();
    up.write(Bytes::from_static(b"x")).await.unwrap();
    up.abort().await;
    assert!(store.head("w/never.csv").await.unwrap().is_none());
    let mut up = store.start_upload("w/never.csv").await.unwrap();
    up.write(Bytes::from(vec![7u8; PART_SIZE * 3 / 4]))
        .await
        .unwrap();
    up.abort().await;
    assert!(store.head("w/never.csv").await.unwrap().is_none());

    // Listing: every committed key below a folder, recursively, sorted, store-relative;
    // nothing for a missing folder; a staged upload is not an object yet.
    store
        .put(
            "v/deep/er/x.json",
            Bytes::from_static(b"{}"),
            PutMode::Overwrite,
        )
        .await
        .unwrap();
    let mut staged = store.start_upload("v/staged.csv").await.unwrap();
    staged.write(Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(
        store.list("v").await.unwrap(),
        ["v/big.bin", "v/deep/er/x.json", "v/small.csv"]
    );
    assert_eq!(store.list("v/deep/").await.unwrap(), ["v/deep/er/x.json"]);
    assert!(store.list("nope").await.unwrap().is_empty());
    // A folder name that is only a prefix of another folder's name is not that folder.
    assert!(store.list("v/dee").await.unwrap().is_empty());
    // Folders one level down, by name.
    assert_eq!(store.list_folders("v").await.unwrap(), ["deep"]);
    assert_eq!(store.list_folders("").await.unwrap(), ["a", "v"]);
    assert!(store.list_folders("nope").await.unwrap().is_empty());
    staged.abort().await;

    // Streaming get returns the bytes in order across chunks.
    let mut src = store.get("v/big.bin").await.unwrap();
    let mut n = 0usize;
    while let Some(chunk) = src.next_chunk().await.unwrap() {
        assert!(chunk
            .iter()
            .enumerate()
            .all(|(i, &b)| b == ((n + i) % 251) as u8));
        n += chunk.len();
    }
    assert_eq!(n, body.len());

    conditional_and_batch_deletes(&store).await;
}

/// `delete_if` and `delete_batch` remove an object only while it is the revision the
/// caller saw; a folder whose last object is deleted is no longer listed.
async fn conditional_and_batch_deletes(store: &Arc<dyn ObjectStore>) {
    let put = |key: &'static str, body: &'static [u8]| async move {
        store
            .put(key, Bytes::from_static(body), PutMode::Overwrite)
            .await
            .unwrap();
    };
    let revision = |key: &'static str| async move {
        store.head(key).await.unwrap().unwrap().revision.unwrap()
    };

    put("d/one", b"1").await;
    let seen = revision("d/one").await;
    // Replaced since it was looked at (another size, so also another local revision).
    put("d/one", b"11").await;
    let refused = store.delete_if("d/one", &seen).await;
    assert!(
        matches!(refused, Err(StorageError::PreconditionFailed { .. })),
        "{refused:?}"
    );
    assert_eq!(read_all(store, "d/one").await, b"11");
    store
        .delete_if("d/one", &revision("d/one").await)
        .await
        .unwrap();
    assert!(store.head("d/one").await.unwrap().is_none());
    // A missing key is not an error.
    store.delete_if("d/one", &seen).await.unwrap();

    put("d/a", b"a").await;
    put("d/b", b"b").await;
    put("d/c", b"c").await;
    put("e/x/y", b"y").await;
    let (a, b) = (revision("d/a").await, revision("d/b").await);
    put("d/b", b"bb").await;
    let batch = [
        BatchDelete {
            key: "d/a".into(),
            revision: Some(a),
        },
        BatchDelete {
            key: "d/b".into(),
            revision: Some(b),
        },
        BatchDelete {
            key: "d/c".into(),
            revision: None,
        },
        BatchDelete {
            key: "d/missing".into(),
            revision: None,
        },
        BatchDelete {
            key: "e/x/y".into(),
            revision: None,
        },
    ];
    let failed = store.delete_batch(&batch).await.unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "d/b");
    assert!(
        matches!(failed[0].1, StorageError::PreconditionFailed { .. }),
        "{:?}",
        failed[0].1
    );
    assert_eq!(store.list("d").await.unwrap(), ["d/b"]);
    // `e` held only `e/x/y`: deleted, it is no folder any more (locally: no empty
    // folder left behind).
    assert!(!store
        .list_folders("")
        .await
        .unwrap()
        .contains(&"e".to_string()));
    store.delete("d/b").await.unwrap();
    assert!(!store
        .list_folders("")
        .await
        .unwrap()
        .contains(&"d".to_string()));
    assert!(store.list("d").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_folder_backend_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path().join("root")));
    suite(store.clone()).await;
    // A folder is a prefix, not an object, as on AWS S3 (HEAD 404). Not in the shared
    // suite: the test server (s3s-fs) answers HEAD on a "folder" key with HTTP 500.
    assert!(
        store.head("a/b").await.unwrap().is_none(),
        "a prefix is not an object"
    );
    // No temporary files are left behind.
    let leftovers: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|p| p.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend_conforms() {
    let server = S3Server::start();
    server.create_bucket("conformance");
    suite(s3_store(&server, "conformance").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend_under_a_prefix_conforms_with_checksums_only_when_required() {
    let server = S3Server::start();
    server.create_bucket("conformance");
    let store = s3_store_with(
        &server,
        "conformance",
        "features/daily",
        ChecksumMode::WhenRequired,
    )
    .await;
    suite(store).await;
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}
