//! Test harness: runs the real `featurepipe` binary in a fresh temp dir, optionally
//! against an in-process S3 server on 127.0.0.1, and parses what it prints.
#![allow(dead_code)]

pub mod freezing_proxy;
pub mod s3_server;
pub mod services;
pub mod target;
pub mod throttle;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use assert_cmd::Command;
use featurepipe::storage::s3::{build_client, ChecksumMode, S3Options, S3Store};
use featurepipe::storage::ObjectStore;
pub use s3_server::S3Server;
pub use target::Target;

/// The bundled fixtures folder.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

/// The oracle's expected values for a valid fixture (`fixtures/expected/<rel>.json`).
pub fn expected(rel: &str) -> serde_json::Value {
    let path = fixture(&format!("expected/{rel}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A fresh working folder per test.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Sandbox {
            dir: tempfile::Builder::new()
                .prefix("featurepipe-test-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file (creating folders) and returns its path.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// `featurepipe run` in this folder, with a clean environment.
    pub fn cmd(&self) -> Command {
        self.cmd_for("run")
    }

    /// `featurepipe <sub>` in this folder, with a clean environment.
    pub fn cmd_for(&self, sub: &str) -> Command {
        let mut cmd = Command::from_std(self.std_cmd_for(sub));
        cmd.timeout(Duration::from_secs(120));
        cmd
    }

    /// The same as a plain `std::process::Command`, for tests that signal a live run.
    pub fn std_cmd(&self) -> std::process::Command {
        self.std_cmd_for("run")
    }

    /// `featurepipe <sub>` as a plain `std::process::Command` (`sub` may name a nested
    /// subcommand: "versions list").
    pub fn std_cmd_for(&self, sub: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("featurepipe"));
        for (k, _) in std::env::vars() {
            if k.starts_with("DP_") || k.starts_with("AWS_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        cmd.current_dir(self.dir.path())
            .env("AWS_CONFIG_FILE", "/nonexistent/featurepipe-test")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/featurepipe-test",
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .args(sub.split_whitespace());
        cmd
    }

    /// `featurepipe run` talking to `server` (credentials, endpoint, fast retries).
    pub fn s3_cmd(&self, server: &S3Server) -> Command {
        self.s3_cmd_for(server, "run")
    }

    /// `featurepipe <sub>` talking to `server`.
    pub fn s3_cmd_for(&self, server: &S3Server, sub: &str) -> Command {
        let mut cmd = self.cmd_for(sub);
        cmd.env("AWS_ACCESS_KEY_ID", &server.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &server.secret_key)
            .env("DP_S3_INITIAL_BACKOFF", "0.05")
            .arg("--endpoint-url")
            .arg(&server.endpoint);
        cmd
    }
}

/// What one run printed.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(mut cmd: Command) -> Output {
    let out = cmd.output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

impl Output {
    /// Every `[DP]` line's fields, parsed as logfmt, in order.
    pub fn dp_lines(&self) -> Vec<Vec<(String, String)>> {
        self.stderr
            .lines()
            .filter_map(|l| l.split_once("[DP] ").map(|(_, rest)| rest))
            .map(|rest| parse_logfmt(rest).unwrap_or_else(|e| panic!("not logfmt ({e}): {rest}")))
            .collect()
    }

    /// The one `summarize_run` line as a map (panics unless there is exactly one).
    pub fn summary(&self) -> BTreeMap<String, String> {
        let lines: Vec<_> = self
            .dp_lines()
            .into_iter()
            .filter(|l| l.iter().any(|(k, v)| k == "step" && v == "summarize_run"))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "want exactly one summarize_run line:\n{}",
            self.stderr
        );
        lines[0].iter().cloned().collect()
    }

    /// The result JSON printed on stdout.
    pub fn result(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", self.stdout))
    }

    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts the one-sentence error names `needle` (a flag, a line, a value).
    pub fn assert_error_mentions(&self, needle: &str) -> &Self {
        assert!(
            self.error_line().contains(needle),
            "error line should mention {needle:?}: {}",
            self.error_line()
        );
        self
    }

    /// The last stderr line: the one sentence a user reads on failure.
    pub fn error_line(&self) -> &str {
        self.stderr.lines().last().unwrap_or("")
    }
}

/// A strict logfmt parser (independent of the product's writer).
pub fn parse_logfmt(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b' ' {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' || i == start {
            return Err(format!("key without '=' at byte {start}"));
        }
        let key = s[start..i].to_string();
        i += 1;
        let mut val = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            loop {
                match b.get(i) {
                    None => return Err("unterminated quoted value".into()),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        match b.get(i + 1) {
                            Some(b'n') => val.push('\n'),
                            Some(&c) => val.push(c as char),
                            None => return Err("dangling escape".into()),
                        }
                        i += 2;
                    }
                    Some(_) => {
                        let c = s[i..].chars().next().unwrap();
                        val.push(c);
                        i += c.len_utf8();
                    }
                }
            }
        } else {
            let vs = i;
            while i < b.len() && b[i] != b' ' {
                if b[i] == b'"' || b[i] == b'=' {
                    return Err(format!("unquoted value with '\"' or '=' for {key}"));
                }
                i += 1;
            }
            val = s[vs..i].to_string();
        }
        if i < b.len() {
            if b[i] != b' ' {
                return Err(format!("junk after value of {key}"));
            }
            i += 1;
        }
        out.push((key, val));
    }
    Ok(out)
}

/// A blocking handle on a bucket through the product's own S3 store (aws-sdk-s3).
pub struct Bucket {
    rt: tokio::runtime::Runtime,
    store: Arc<dyn ObjectStore>,
}

impl Bucket {
    pub fn new(server: &S3Server, bucket: &str) -> Self {
        server.create_bucket(bucket);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = rt.block_on(async { s3_store(server, bucket).await });
        Bucket { rt, store }
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.rt.block_on(self.store.get_small(key)).unwrap()
    }

    pub fn get_string(&self, key: &str) -> Option<String> {
        self.get(key).map(|b| String::from_utf8(b).unwrap())
    }

    pub fn put(&self, key: &str, body: &[u8]) {
        self.rt
            .block_on(self.store.put(
                key,
                bytes::Bytes::copy_from_slice(body),
                featurepipe::storage::PutMode::Overwrite,
            ))
            .unwrap();
    }

    pub fn exists(&self, key: &str) -> bool {
        self.rt.block_on(self.store.head(key)).unwrap().is_some()
    }

    /// Every key below the folder `dir`, sorted.
    pub fn list(&self, dir: &str) -> Vec<String> {
        self.rt.block_on(self.store.list(dir)).unwrap()
    }

    pub fn delete(&self, key: &str) {
        self.rt.block_on(self.store.delete(key)).unwrap()
    }

    /// Aborts every multipart upload in progress below `dir`; returns how many there were.
    pub fn abort_uploads(&self, dir: &str) -> usize {
        self.rt.block_on(self.store.clear_staging(dir)).unwrap()
    }
}

/// The product's S3 store on `bucket` of `server`, with test-friendly timeouts.
pub async fn s3_store(server: &S3Server, bucket: &str) -> Arc<dyn ObjectStore> {
    s3_store_with(server, bucket, "", ChecksumMode::WhenSupported).await
}

/// Like [`s3_store`], rooted at a key prefix, with a chosen request-checksum mode.
pub async fn s3_store_with(
    server: &S3Server,
    bucket: &str,
    prefix: &str,
    checksum: ChecksumMode,
) -> Arc<dyn ObjectStore> {
    // Credentials are passed explicitly: tests never touch process-global environment.
    let opts = S3Options {
        endpoint_url: Some(server.endpoint.clone()),
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(10),
        attempt_timeout: Duration::from_secs(30),
        operation_timeout: Duration::from_secs(60),
        max_attempts: 2,
        initial_backoff: Duration::from_millis(50),
        checksum,
        ..S3Options::default()
    };
    let client = build_client_with_keys(&opts, server).await;
    Arc::new(S3Store::new(client, bucket, prefix))
}

async fn build_client_with_keys(opts: &S3Options, server: &S3Server) -> aws_sdk_s3::Client {
    let base = build_client(opts).await.unwrap();
    let creds = aws_sdk_s3::config::Credentials::new(
        &server.access_key,
        &server.secret_key,
        None,
        None,
        "featurepipe-tests",
    );
    let conf = base
        .config()
        .to_builder()
        .credentials_provider(creds)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Reads a local JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Splits a feature.csv body into its lines (CRLF-terminated).
pub fn csv_lines(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.ends_with("\r\n"), "feature.csv must end with CRLF");
    text.trim_end_matches("\r\n")
        .split("\r\n")
        .map(str::to_string)
        .collect()
}

/// Runs `cmd`, sends `signal` once the streaming pass has started, and returns the exit
/// code and everything the run printed on stderr.
pub fn signal_mid_pass(mut cmd: std::process::Command, signal: &str) -> (i32, String) {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("the run never started its pass");
        if line.contains("step=validate_data status=started") {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let killed = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run did not stop after {signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code().unwrap_or(-1), reader.join().unwrap())
}

/// A valid raw CSV of about `mb` MiB (user_id, amount, country), quick to generate.
pub fn big_csv(mb: usize) -> Vec<u8> {
    let mut block = Vec::with_capacity(1 << 20);
    let mut i = 0u64;
    while block.len() < (1 << 20) {
        block.extend_from_slice(format!("{i},{i}.5,KR\n").as_bytes());
        i += 1;
    }
    let mut raw = b"user_id,amount,country\n".to_vec();
    for _ in 0..mb {
        raw.extend_from_slice(&block);
    }
    raw
}

/// `featurepipe run --config <config> --execution-date <date> <extra...>` in the sandbox.
pub fn run_config(sb: &Sandbox, config: &Path, date: &str, extra: &[&str]) -> Output {
    let mut cmd = sb.cmd();
    cmd.arg("--config")
        .arg(config)
        .args(["--execution-date", date])
        .args(extra);
    run(cmd)
}

/// Writes `raw` as `raw/20251119.csv` and a pipeline file `pipeline.toml` reading it
/// (`source` adds keys to `[source]`) and publishing under `out/`, followed by `body`
/// (rules, features); runs it for 2025-11-19.
pub fn run_pipeline(sb: &Sandbox, raw: &[u8], source: &str, body: &str) -> Output {
    sb.write("raw/20251119.csv", raw);
    let config = sb.write(
        "pipeline.toml",
        format!(
            "[source]\npath = \"raw/{{ds_nodash}}.csv\"\n{source}\n\n[output]\nprefix = \"out\"\n\n{body}"
        )
        .as_bytes(),
    );
    run_config(sb, &config, "2025-11-19", &[])
}
