//! What this binary is: its name, version, the git commit it was built from and the day it
//! was built (recorded by `build.rs`). The one place `metadata.json`, run records and
//! `--version` read it from.

#[cfg(test)]
mod civil_date;

pub const NAME: &str = env!("CARGO_PKG_NAME");
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// `git rev-parse --short HEAD` at build time, or "unknown" when built without git.
pub const GIT_COMMIT: &str = env!("FEATUREPIPE_GIT_COMMIT");
/// The UTC day of the build, `YYYY-MM-DD` (`SOURCE_DATE_EPOCH`'s day when it was set).
pub const BUILD_DATE: &str = env!("FEATUREPIPE_BUILD_DATE");
/// What `--version` prints after the name: `0.1.0 (abc1234 2026-12-07)`, or
/// `0.1.0 (2026-12-07)` when the commit is unknown.
pub const VERSION_LINE: &str = env!("FEATUREPIPE_VERSION_LINE");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_is_recorded() {
        // One short word: a hash, "unknown", or what FEATUREPIPE_GIT_COMMIT gave.
        assert!(
            !GIT_COMMIT.is_empty() && !GIT_COMMIT.contains(char::is_whitespace),
            "{GIT_COMMIT:?}"
        );
    }

    #[test]
    fn the_version_line_names_the_version_commit_and_day() {
        assert!(
            chrono::NaiveDate::parse_from_str(BUILD_DATE, "%Y-%m-%d").is_ok(),
            "{BUILD_DATE:?}"
        );
        let expected = if GIT_COMMIT == "unknown" {
            format!("{VERSION} ({BUILD_DATE})")
        } else {
            format!("{VERSION} ({GIT_COMMIT} {BUILD_DATE})")
        };
        assert_eq!(VERSION_LINE, expected);
    }
}
