//! What this binary is: its name, version and the git commit it was built from (recorded
//! by `build.rs`). The one place `metadata.json`, run records and `--version` read it from.

pub const NAME: &str = env!("CARGO_PKG_NAME");
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// `git rev-parse --short HEAD` at build time, or "unknown" when built without git.
pub const GIT_COMMIT: &str = env!("FEATUREPIPE_GIT_COMMIT");

#[cfg(test)]
mod tests {
    #[test]
    fn the_commit_is_recorded() {
        // One short word: a hash, "unknown", or what FEATUREPIPE_GIT_COMMIT gave.
        let commit = super::GIT_COMMIT;
        assert!(
            !commit.is_empty() && !commit.contains(char::is_whitespace),
            "{commit:?}"
        );
    }
}
