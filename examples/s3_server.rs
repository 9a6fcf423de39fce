//! Standalone S3 server (s3s-fs over loopback) for the benchmark and for trying featurepipe
//! by hand:
//!
//! ```text
//! cargo run --release --example s3_server -- --root bench/data/s3 --port 0
//! endpoint=http://127.0.0.1:41237
//! ```
//!
//! Credentials: `AWS_ACCESS_KEY_ID=AKIATESTFEATUREPIPE`,
//! `AWS_SECRET_ACCESS_KEY=test-secret-key-do-not-log-7f3a9c`, any region. Buckets are the
//! sub-folders of `--root`. Serves until killed.

#[path = "../tests/integration/support/s3_server.rs"]
mod s3_server;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: s3_server --root DIR [--port P] [--bucket NAME]...";

fn main() -> ExitCode {
    let mut root: Option<PathBuf> = None;
    let mut port: u16 = 0;
    let mut buckets: Vec<String> = Vec::new();

    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        let Some(value) = inline.or_else(|| args.next()) else {
            eprintln!("s3_server: {flag} needs a value\n{USAGE}");
            return ExitCode::from(2);
        };
        match flag.as_str() {
            "--root" => root = Some(PathBuf::from(value)),
            "--port" => match value.parse() {
                Ok(p) => port = p,
                Err(_) => {
                    eprintln!("s3_server: --port must be a number from 0 to 65535, got {value:?}");
                    return ExitCode::from(2);
                }
            },
            "--bucket" => buckets.push(value),
            _ => {
                eprintln!("s3_server: unknown argument {flag:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(root) = root else {
        eprintln!("s3_server: --root is required\n{USAGE}");
        return ExitCode::from(2);
    };

    let server = match s3_server::S3Server::try_start_in(root.clone(), port) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "s3_server: cannot serve {} on port {port}: {e}",
                root.display()
            );
            return ExitCode::from(1);
        }
    };
    for bucket in &buckets {
        server.create_bucket(bucket);
    }
    eprintln!(
        "s3_server: serving {} (Ctrl-C or SIGTERM to stop)",
        server.root().display()
    );
    let mut out = std::io::stdout().lock();
    // The benchmark waits for this line: print it only once the port accepts connections.
    let _ = writeln!(out, "endpoint={}", server.endpoint);
    let _ = out.flush();
    drop(out);
    server.wait();
    ExitCode::SUCCESS
}
