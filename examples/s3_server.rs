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

use clap::Parser;

/// A folder served as S3 on 127.0.0.1 (s3s-fs), with the test credentials.
#[derive(Parser)]
struct Args {
    /// Folder holding the buckets (one sub-folder each)
    #[arg(long)]
    root: PathBuf,
    /// Port to listen on; 0 picks a free one
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Bucket to create at start (repeatable)
    #[arg(long = "bucket")]
    buckets: Vec<String>,
}

fn main() -> ExitCode {
    let Args {
        root,
        port,
        buckets,
    } = Args::parse();

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
