//! Parsing of the storage URIs users pass: `s3://bucket/key`, `file:///abs/path`, or a path.

use std::path::PathBuf;

/// Why a text is not a storage URI; the caller names where the text came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a storage location: {why} (use s3://bucket/key, file:///absolute/path or a plain path)")]
pub struct UriError {
    pub input: String,
    pub why: String,
}

/// A parsed storage location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUri {
    S3 { bucket: String, key: String },
    Local(PathBuf),
}

impl StorageUri {
    /// Parses `s3://bucket/key`, `file:///abs/path` or a plain path.
    pub fn parse(input: &str) -> Result<Self, UriError> {
        let bad = |why: &str| UriError {
            input: crate::values::shorten(input),
            why: why.to_string(),
        };
        if input.trim().is_empty() {
            return Err(bad("it is empty"));
        }
        if let Some(rest) = input.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("the bucket name is missing"));
            }
            if !is_valid_bucket(bucket) {
                return Err(bad("the bucket name is not a valid S3 bucket name"));
            }
            return Ok(StorageUri::S3 {
                bucket: bucket.to_string(),
                key: key.trim_start_matches('/').to_string(),
            });
        }
        if let Some(rest) = input.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(bad(
                    "a file:// URI needs an absolute path (file:///data/x.csv)",
                ));
            }
            return Ok(StorageUri::Local(PathBuf::from(rest)));
        }
        if let Some((scheme, _)) = input.split_once("://") {
            return Err(bad(&format!("the scheme {scheme:?} is not supported")));
        }
        Ok(StorageUri::Local(PathBuf::from(input)))
    }

    /// Splits into (parent location, last name), e.g. for opening a store on a file's folder.
    pub fn split_last(&self) -> (StorageUri, String) {
        match self {
            StorageUri::S3 { bucket, key } => {
                let (parent, name) = key.rsplit_once('/').unwrap_or(("", key));
                (
                    StorageUri::S3 {
                        bucket: bucket.clone(),
                        key: parent.to_string(),
                    },
                    name.to_string(),
                )
            }
            StorageUri::Local(path) => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let parent = path.parent().map(PathBuf::from).unwrap_or_default();
                (StorageUri::Local(parent), name)
            }
        }
    }
}

impl std::fmt::Display for StorageUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageUri::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            StorageUri::Local(p) => write!(f, "{}", p.display()),
        }
    }
}

/// S3's bucket naming rules, enough to catch typos before a network round trip.
fn is_valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && b.as_bytes()[0].is_ascii_alphanumeric()
        && b.as_bytes()[b.len() - 1].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            StorageUri::parse("s3://my-bucket/a/b.csv").unwrap(),
            StorageUri::S3 {
                bucket: "my-bucket".into(),
                key: "a/b.csv".into()
            }
        );
        assert_eq!(
            StorageUri::parse("file:///data/x.csv").unwrap(),
            StorageUri::Local("/data/x.csv".into())
        );
        assert_eq!(
            StorageUri::parse("data/x.csv").unwrap(),
            StorageUri::Local("data/x.csv".into())
        );
    }

    #[test]
    fn rejects_bad_uris_saying_why() {
        for bad in [
            "s3://",
            "s3:///key",
            "s3://Bad_Bucket/k",
            "gs://b/k",
            "file://rel/x",
            "",
        ] {
            match StorageUri::parse(bad) {
                Err(e) => assert!(!e.why.is_empty() && e.input == bad, "{e}"),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }
}
