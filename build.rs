//! Records what the binary is built from, so `--version`, `metadata.json` and run records
//! can say which build produced a version:
//!
//! - the git commit: `FEATUREPIPE_GIT_COMMIT` set in the environment wins (a build from a
//!   source tarball or a container without `.git`); without git it is "unknown", never a
//!   build failure;
//! - the build date, a UTC day: `SOURCE_DATE_EPOCH` (reproducible builds) when set, else
//!   the day this script last ran. It runs again when HEAD moves or one of the variables
//!   changes, not on every compile (that would recompile the crate every time), so a
//!   binary's date is that of the build of its commit.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

#[path = "src/build_info/civil_date.rs"]
mod civil_date;

const COMMIT_VAR: &str = "FEATUREPIPE_GIT_COMMIT";
const DATE_VAR: &str = "FEATUREPIPE_BUILD_DATE";
const VERSION_VAR: &str = "FEATUREPIPE_VERSION_LINE";
const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// Rebuild when `path` changes. Only for a file that exists: cargo treats a missing one
/// as changed on every build (a repository without `packed-refs`, a branch whose ref is
/// packed), which would rerun this script and recompile the crate each time.
fn watch(path: &Path) {
    if path.is_file() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn commit() -> String {
    match std::env::var(COMMIT_VAR) {
        Ok(given) if !given.trim().is_empty() => given.trim().to_string(),
        _ => {
            // Rebuild when HEAD moves: HEAD itself (a checkout), the branch it names (a
            // commit) and packed refs (a gc), wherever this worktree keeps them.
            if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
                watch(&PathBuf::from(dir).join("HEAD"));
            }
            if let Some(common) = git(&["rev-parse", "--git-common-dir"]) {
                let common = PathBuf::from(common);
                if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
                    let loose = common.join(branch);
                    if loose.is_file() {
                        watch(&loose);
                    } else if let Some(folder) = loose.parent() {
                        // The branch is only in packed-refs: its next commit writes the
                        // loose ref into this folder.
                        if folder.is_dir() {
                            println!("cargo:rerun-if-changed={}", folder.display());
                        }
                    }
                }
                watch(&common.join("packed-refs"));
            }
            git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into())
        }
    }
}

/// The build's UTC day: from `SOURCE_DATE_EPOCH` if set (a malformed value fails the
/// build, as the specification asks: a reproducible build must not silently get today's
/// date), else today.
fn build_date() -> String {
    let secs = match std::env::var(SOURCE_DATE_EPOCH) {
        Ok(given) if !given.trim().is_empty() => match given.trim().parse::<i64>() {
            Ok(secs) => secs,
            Err(_) => {
                eprintln!("{SOURCE_DATE_EPOCH}={given:?} is not a number of seconds since 1970");
                std::process::exit(1);
            }
        },
        _ => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    };
    civil_date::utc_day(secs)
}

fn main() {
    println!("cargo:rerun-if-env-changed={COMMIT_VAR}");
    println!("cargo:rerun-if-env-changed={SOURCE_DATE_EPOCH}");
    let commit = commit();
    let date = build_date();
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    // `featurepipe 0.1.0 (abc1234 2026-12-07)`; an unknown commit is left out.
    let line = if commit == "unknown" {
        format!("{version} ({date})")
    } else {
        format!("{version} ({commit} {date})")
    };
    println!("cargo:rustc-env={COMMIT_VAR}={commit}");
    println!("cargo:rustc-env={DATE_VAR}={date}");
    println!("cargo:rustc-env={VERSION_VAR}={line}");
}
