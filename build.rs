//! Records the git commit the binary is built from, so `metadata.json` and run records can
//! say which build produced a version. `FEATUREPIPE_GIT_COMMIT` set in the environment
//! wins (a build from a source tarball or a container without `.git`); without git the
//! commit is "unknown", never a build failure.

use std::path::PathBuf;
use std::process::Command;

const VAR: &str = "FEATUREPIPE_GIT_COMMIT";

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed={VAR}");
    let commit = match std::env::var(VAR) {
        Ok(given) if !given.trim().is_empty() => given.trim().to_string(),
        _ => {
            // Rebuild when HEAD moves: HEAD itself (a checkout), the branch it names (a
            // commit) and packed refs (a gc), wherever this worktree keeps them.
            if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
                println!(
                    "cargo:rerun-if-changed={}",
                    PathBuf::from(&dir).join("HEAD").display()
                );
            }
            if let (Some(common), Some(branch)) = (
                git(&["rev-parse", "--git-common-dir"]),
                git(&["symbolic-ref", "-q", "HEAD"]),
            ) {
                let common = PathBuf::from(common);
                println!("cargo:rerun-if-changed={}", common.join(branch).display());
                println!(
                    "cargo:rerun-if-changed={}",
                    common.join("packed-refs").display()
                );
            }
            git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into())
        }
    };
    println!("cargo:rustc-env={VAR}={commit}");
}
