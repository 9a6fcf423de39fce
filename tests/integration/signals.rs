//! SIGTERM / SIGINT (Airflow killing a task, Ctrl-C) stop a run cleanly: exit 143 / 130,
//! one failed summary with error_kind=interrupted, nothing published, nothing staged left.

use std::time::{Duration, Instant};

use crate::support::{big_csv, signal_mid_pass, Bucket, S3Server, Sandbox};

fn summary(stderr: &str) -> std::collections::BTreeMap<String, String> {
    let lines: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("[DP]") && l.contains("step=summarize_run"))
        .collect();
    assert_eq!(lines.len(), 1, "one summarize_run line:\n{stderr}");
    let rest = lines[0].split_once("[DP] ").unwrap().1;
    crate::support::parse_logfmt(rest)
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
fn sigterm_mid_pass_stops_cleanly_with_143_on_local_disk() {
    let sb = Sandbox::new();
    // ~120 MB: still streaming well after the signal, even in a debug build.
    let path = sb.write("raw.csv", &big_csv(120));
    let mut cmd = sb.std_cmd();
    cmd.arg("--raw")
        .arg(&path)
        .args(["--features", "out", "--execution-date", "2025-11-19"]);
    let (code, stderr) = signal_mid_pass(cmd, "TERM");
    assert_eq!(code, 143, "{stderr}");
    let s = summary(&stderr);
    assert_eq!(s["status"], "failed");
    assert_eq!(s["error_kind"], "interrupted");
    assert!(s["error"].contains("SIGTERM"), "{}", s["error"]);
    assert!(stderr
        .lines()
        .last()
        .unwrap_or("")
        .contains("interrupted by SIGTERM"));
    // Nothing published, and the staged temp file is gone with its folder.
    assert!(
        !sb.path("out/v_20251119T000000").exists(),
        "version folder left behind"
    );
    assert!(!sb.path("out/_latest").exists());

    // The next run is not blocked (the lease was released) and completes the version.
    let mut again = sb.cmd();
    again
        .arg("--raw")
        .arg(&path)
        .args(["--features", "out", "--execution-date", "2025-11-19"]);
    crate::support::run(again).assert_code(0);
    assert!(sb.path("out/v_20251119T000000/_SUCCESS").exists());
}

#[test]
fn sigint_during_a_stalled_download_stops_cleanly_with_130_on_s3() {
    let server = S3Server::start();
    let bucket = Bucket::new(&server, "lake");
    let mut raw = b"user_id,amount\n".to_vec();
    for i in 0..200_000u32 {
        raw.extend_from_slice(format!("{i},{i}.25\n").as_bytes());
    }
    bucket.put("raw/a.csv", &raw);
    // The download stalls after 300 KB: the run is blocked mid-read when SIGINT comes.
    let proxy = crate::faults::stalling_proxy_for(&server, 300 * 1024);
    let sb = Sandbox::new();
    let mut cmd = sb.std_cmd();
    cmd.env("AWS_ACCESS_KEY_ID", &server.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &server.secret_key)
        .args(["--endpoint-url", &proxy, "--raw", "s3://lake/raw/a.csv"])
        .args([
            "--features",
            "s3://lake/f",
            "--execution-date",
            "2025-11-19",
        ]);
    let t = Instant::now();
    let (code, stderr) = signal_mid_pass(cmd, "INT");
    assert_eq!(code, 130, "{stderr}");
    // Stopped at once, not after the SDK's 5 s stall detection and its retries.
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(summary(&stderr)["error_kind"], "interrupted");
    assert!(!bucket.exists("f/v_20251119T000000/_SUCCESS"));
    assert!(!bucket.exists("f/v_20251119T000000/feature.csv"));
    // No multipart upload left open on the server (s3s-fs keeps them as `.upload*` files).
    let open: Vec<_> = std::fs::read_dir(server.root())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".upload"))
        .collect();
    assert!(open.is_empty(), "open multipart uploads: {open:?}");
}
