//! The on-storage format of a feature prefix: version documents (`schema.json`,
//! `metadata.json`, the `_SUCCESS` manifest), the `_latest` pointer, leases, run records
//! and the earlier versions drift and history rules compare with. Layout:
//!
//! ```text
//! <prefix>/v_20251119T000000/feature.csv
//! <prefix>/v_20251119T000000/feature.parquet  when [output] formats has "parquet"
//! <prefix>/v_20251119T000000/schema.json
//! <prefix>/v_20251119T000000/metadata.json
//! <prefix>/v_20251119T000000/_SUCCESS     written last: the version is complete
//! <prefix>/_latest                          points at the newest complete version
//! <prefix>/_runs/<version>/<run_id>.json    one record per run
//! <prefix>/_runs/<version>/_skips/<n>.json  skips of the version, counted
//! <prefix>/_leases/<version>/...            one writer per version
//! <prefix>/_gc/<gc_id>.json                 what each gc did
//! ```

pub mod catalog;
pub mod compare;
pub mod completeness;
pub mod documents;
pub mod freshness;
pub mod gc;
pub mod history;
pub mod latest;
pub mod lease;
pub mod publish;
pub mod run_history;
pub mod run_record;
pub mod schema_diff;

/// File names inside a version directory and beside it.
pub mod layout {
    pub const FEATURE_CSV: &str = "feature.csv";
    /// The same rows as `feature.csv`, typed, for feature stores (`[output] formats`).
    pub const FEATURE_PARQUET: &str = "feature.parquet";
    pub const SCHEMA_JSON: &str = "schema.json";
    pub const METADATA_JSON: &str = "metadata.json";
    /// Written last: its presence makes a version complete.
    pub const SUCCESS: &str = "_SUCCESS";
    /// Beside the versions: points at the newest complete one.
    pub const LATEST: &str = "_latest";
    /// Beside the versions: one record per run, one folder per version.
    pub const RUNS_DIR: &str = "_runs";
    /// Beside the versions: every lease.
    pub const LEASES_DIR: &str = "_leases";
    /// Beside the versions: one report per `featurepipe gc`.
    pub const GC_DIR: &str = "_gc";
}

/// Whether a folder name is a version id, `v_YYYYMMDDTHHMMSS`.
pub fn is_version_id(name: &str) -> bool {
    name.strip_prefix("v_").is_some_and(|rest| {
        rest.len() == 15
            && rest.bytes().enumerate().all(|(i, b)| {
                if i == 8 {
                    b == b'T'
                } else {
                    b.is_ascii_digit()
                }
            })
    })
}

/// Store-relative key of a file inside a version directory.
pub fn version_key(version: &str, name: &str) -> String {
    crate::storage::join_key(version, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_are_recognised() {
        assert!(is_version_id("v_20251119T000000"));
        assert!(!is_version_id("v_20251119"));
        assert!(!is_version_id("_runs"));
        assert!(!is_version_id("v_2025111XT000000"));
    }
}
