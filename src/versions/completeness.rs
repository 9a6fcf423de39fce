//! When a version is complete: its `_SUCCESS` parses as the manifest and every file the
//! manifest lists is there with the listed size. Anything else is incomplete, and the
//! next run rewrites it. Every reader (a run deciding whether to skip, history and drift,
//! `_latest`, the versions commands) asks here, so they all agree.

use super::documents::SuccessManifest;
use super::layout;
use crate::storage::{join_key, ObjectStore, StorageResult};

/// What a version's files say about it.
#[derive(Debug, Clone, PartialEq)]
pub enum Completeness {
    Complete(SuccessManifest),
    Incomplete(Incomplete),
}

/// Why a version is not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Incomplete {
    #[error("it has no {} marker", layout::SUCCESS)]
    NoMarker,
    #[error("its _SUCCESS is not a readable manifest: {0}")]
    BadMarker(String),
    #[error("its {} belongs to {found}, not to this version", layout::SUCCESS)]
    OtherVersion { found: String },
    #[error("{name}, listed in {}, is missing", layout::SUCCESS)]
    MissingFile { name: String },
    #[error("{name} is {found} bytes, but {} lists {listed}", layout::SUCCESS)]
    WrongSize {
        name: String,
        listed: u64,
        found: u64,
    },
}

impl Completeness {
    pub fn is_complete(&self) -> bool {
        matches!(self, Completeness::Complete(_))
    }
}

/// Checks `version` of `store`: reads `_SUCCESS`, then looks at (HEAD / stat) every file
/// it lists. Storage errors are errors, not "incomplete": a flaky network must not make a
/// complete version look rewritable.
pub async fn check(store: &dyn ObjectStore, version: &str) -> StorageResult<Completeness> {
    let Some(bytes) = store.get_small(&join_key(version, layout::SUCCESS)).await? else {
        return Ok(Completeness::Incomplete(Incomplete::NoMarker));
    };
    let manifest: SuccessManifest = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => {
            return Ok(Completeness::Incomplete(Incomplete::BadMarker(
                e.to_string(),
            )))
        }
    };
    if manifest.feature_version != version {
        return Ok(Completeness::Incomplete(Incomplete::OtherVersion {
            found: crate::values::shorten(&manifest.feature_version),
        }));
    }
    if manifest.files.is_empty() {
        return Ok(Completeness::Incomplete(Incomplete::BadMarker(
            "it lists no files".into(),
        )));
    }
    for (name, listed) in &manifest.files {
        let found = store.head(&join_key(version, name)).await?;
        let incomplete = match found {
            None => Incomplete::MissingFile { name: name.clone() },
            Some(meta) if meta.size_bytes != listed.size_bytes => Incomplete::WrongSize {
                name: name.clone(),
                listed: listed.size_bytes,
                found: meta.size_bytes,
            },
            Some(_) => continue,
        };
        return Ok(Completeness::Incomplete(incomplete));
    }
    Ok(Completeness::Complete(manifest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::local::LocalStore;
    use crate::storage::PutMode;
    use crate::versions::documents::{digest, to_pretty_json};
    use bytes::Bytes;

    async fn put(store: &LocalStore, key: &str, body: &[u8]) {
        store
            .put(key, Bytes::copy_from_slice(body), PutMode::Overwrite)
            .await
            .unwrap();
    }

    fn manifest(version: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
        to_pretty_json(&SuccessManifest {
            feature_version: version.into(),
            run_id: "r".into(),
            completed_at: "2025-11-19T00:00:00+09:00".into(),
            files: files
                .iter()
                .map(|(n, b)| (n.to_string(), digest(b)))
                .collect(),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn only_a_manifest_whose_files_are_all_there_is_complete() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let v = "v_20251119T000000";
        let check = |store: &LocalStore| {
            let store = store.clone();
            async move { check(&store, v).await.unwrap() }
        };
        assert_eq!(
            check(&store).await,
            Completeness::Incomplete(Incomplete::NoMarker)
        );
        put(&store, &format!("{v}/_SUCCESS"), b"").await;
        assert!(matches!(
            check(&store).await,
            Completeness::Incomplete(Incomplete::BadMarker(_))
        ));
        let files: [(&str, &[u8]); 2] = [("feature.csv", b"a\r\n1\r\n"), ("schema.json", b"{}")];
        put(&store, &format!("{v}/_SUCCESS"), &manifest(v, &files)).await;
        assert_eq!(
            check(&store).await,
            Completeness::Incomplete(Incomplete::MissingFile {
                name: "feature.csv".into()
            })
        );
        put(&store, &format!("{v}/feature.csv"), b"a\r\n1\r\n").await;
        put(&store, &format!("{v}/schema.json"), b"{ }").await;
        assert!(matches!(
            check(&store).await,
            Completeness::Incomplete(Incomplete::WrongSize {
                listed: 2,
                found: 3,
                ..
            })
        ));
        put(&store, &format!("{v}/schema.json"), b"{}").await;
        assert!(check(&store).await.is_complete());
        // A manifest copied from another version does not complete this one.
        put(
            &store,
            &format!("{v}/_SUCCESS"),
            &manifest("v_20251118T000000", &files),
        )
        .await;
        assert!(matches!(
            check(&store).await,
            Completeness::Incomplete(Incomplete::OtherVersion { .. })
        ));
    }
}
