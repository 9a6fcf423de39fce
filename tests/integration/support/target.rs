//! One place to publish to, for tests that must hold on both backends: a local folder
//! or a bucket on a live S3 server.

use assert_cmd::Command;

use super::{run, Bucket, Output, S3Server, Sandbox};

/// One place to publish to: a local folder or a bucket on a live S3 server.
pub enum Target {
    Local(Sandbox),
    S3(Sandbox, Box<S3Server>, Bucket),
}

impl Target {
    pub fn local() -> Self {
        Target::Local(Sandbox::new())
    }

    pub fn s3() -> Self {
        Self::s3_on(S3Server::start())
    }

    /// A bucket on `server`, for tests that need a server started another way.
    pub fn s3_on(server: S3Server) -> Self {
        let bucket = Bucket::new(&server, "lake");
        Target::S3(Sandbox::new(), Box::new(server), bucket)
    }

    pub fn both() -> [Target; 2] {
        [Target::local(), Target::s3()]
    }

    /// Stores a raw file under `name` and returns its URI.
    pub fn raw(&self, name: &str, body: &[u8]) -> String {
        match self {
            Target::Local(sb) => sb.write(&format!("raw/{name}"), body).display().to_string(),
            Target::S3(_, _, b) => {
                b.put(&format!("raw/{name}"), body);
                format!("s3://lake/raw/{name}")
            }
        }
    }

    pub fn features(&self) -> String {
        match self {
            Target::Local(sb) => sb.path("features").display().to_string(),
            Target::S3(..) => "s3://lake/features".into(),
        }
    }

    pub fn cmd(&self) -> Command {
        self.cmd_for("run")
    }

    /// `featurepipe <sub>` against this target.
    pub fn cmd_for(&self, sub: &str) -> Command {
        match self {
            Target::Local(sb) => sb.cmd_for(sub),
            Target::S3(sb, server, _) => sb.s3_cmd_for(server, sub),
        }
    }

    /// `featurepipe backfill` from raw files `raw/<template>` into this target's features.
    pub fn backfill(&self, raw_template: &str, extra: &[&str]) -> Output {
        let mut cmd = self.cmd_for("backfill");
        cmd.args([
            "--raw",
            &self.raw_uri(raw_template),
            "--features",
            &self.features(),
        ])
        .args(extra);
        run(cmd)
    }

    /// The URI `raw()` gives a file named `name`, without writing it.
    pub fn raw_uri(&self, name: &str) -> String {
        match self {
            Target::Local(sb) => sb.path(&format!("raw/{name}")).display().to_string(),
            Target::S3(..) => format!("s3://lake/raw/{name}"),
        }
    }

    /// Every key below `features/<dir>`, relative to `features/`, sorted.
    pub fn list(&self, dir: &str) -> Vec<String> {
        match self {
            Target::Local(sb) => {
                let root = sb.path("features");
                let mut out = Vec::new();
                let mut pending = vec![root.join(dir)];
                while let Some(d) = pending.pop() {
                    for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                        let p = e.path();
                        if p.is_dir() {
                            pending.push(p);
                        } else {
                            out.push(p.strip_prefix(&root).unwrap().display().to_string());
                        }
                    }
                }
                out.sort();
                out
            }
            Target::S3(_, _, b) => b
                .list(&format!("features/{dir}"))
                .into_iter()
                .map(|k| k.trim_start_matches("features/").to_string())
                .collect(),
        }
    }

    /// Reads `features/<rel>`.
    pub fn read(&self, rel: &str) -> Option<Vec<u8>> {
        match self {
            Target::Local(sb) => std::fs::read(sb.path(&format!("features/{rel}"))).ok(),
            Target::S3(_, _, b) => b.get(&format!("features/{rel}")),
        }
    }

    pub fn write(&self, rel: &str, body: &[u8]) {
        match self {
            Target::Local(sb) => {
                sb.write(&format!("features/{rel}"), body);
            }
            Target::S3(_, _, b) => b.put(&format!("features/{rel}"), body),
        }
    }

    pub fn json(&self, rel: &str) -> serde_json::Value {
        serde_json::from_slice(&self.read(rel).unwrap_or_else(|| panic!("{rel} missing"))).unwrap()
    }

    pub fn run(&self, raw: &str, date: &str, extra: &[&str]) -> Output {
        let mut cmd = self.cmd();
        cmd.args([
            "--raw",
            raw,
            "--features",
            &self.features(),
            "--execution-date",
            date,
        ])
        .args(extra);
        run(cmd)
    }

    /// The local working folder of the run (pipeline files go here on both backends).
    pub fn sandbox(&self) -> &Sandbox {
        match self {
            Target::Local(sb) | Target::S3(sb, ..) => sb,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Target::Local(_) => "local",
            Target::S3(..) => "s3",
        }
    }
}
