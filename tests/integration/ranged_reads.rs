//! Large S3 objects are read by concurrent byte-range GETs, reassembled in order: behind a
//! proxy that caps each connection's throughput (as S3 does), several ranges really are
//! in flight at once, and the outputs are byte for byte those of one GET stream, plain or
//! compressed, also when a range's connection breaks and that range resumes on its own.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::faults::{faulty_proxy, proxy, raw_bucket, request_line_is, run_through_with, Fault};
use crate::support::throttle::ThrottleProxy;
use crate::support::{big_csv, run, Bucket, Output, S3Server, Sandbox};

/// Runs `raw` (a key of bucket `lake`) through `endpoint` into `f/<out>` with `flags`.
fn run_via(server: &S3Server, endpoint: &str, raw: &str, out: &str, flags: &[&str]) -> Output {
    let sb = Sandbox::new();
    let mut cmd = sb.cmd();
    cmd.env("AWS_ACCESS_KEY_ID", &server.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &server.secret_key)
        .env("DP_S3_INITIAL_BACKOFF", "0.05")
        .args(["--endpoint-url", endpoint])
        .args(["--raw", &format!("s3://lake/{raw}")])
        .args(["--features", &format!("s3://lake/f/{out}")])
        .args(["--execution-date", "2025-11-19"])
        .args(flags);
    run(cmd)
}

fn feature_csv(bucket: &Bucket, out: &str) -> Vec<u8> {
    bucket
        .get(&format!("f/{out}/v_20251119T000000/feature.csv"))
        .unwrap_or_else(|| panic!("{out}: no feature.csv"))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn ranges_run_concurrently_behind_a_per_connection_cap_and_read_the_same_bytes() {
    let server = S3Server::start();
    let bucket = Bucket::new(&server, "lake");
    let raw = big_csv(6);
    bucket.put("raw/a.csv", &raw);
    bucket.put("raw/a.csv.gz", &gzip(&raw));
    // 4 MB/s per connection: one stream needs about 1.6 s for the 6.3 MB.
    let rate = 4_000_000;

    let single = ThrottleProxy::start(server.addr, rate);
    let t = Instant::now();
    let one = ["--s3-read-concurrency", "1"];
    run_via(&server, &single.endpoint, "raw/a.csv", "one", &one).assert_code(0);
    let single_wall = t.elapsed();

    let ranged = ThrottleProxy::start(server.addr, rate);
    let t = Instant::now();
    let parts = [
        "--s3-read-part-size",
        "512KiB",
        "--s3-read-concurrency",
        "6",
    ];
    run_via(&server, &ranged.endpoint, "raw/a.csv", "ranged", &parts).assert_code(0);
    let ranged_wall = t.elapsed();

    let want = feature_csv(&bucket, "one");
    assert!(want.len() > 1_000_000);
    assert!(
        feature_csv(&bucket, "ranged") == want,
        "ranged output differs"
    );
    // The single stream never needed more than a few connections (HEAD, lease, upload);
    // the ranged read had its six GETs open at once.
    assert!(
        single.peak_open() <= 3,
        "single: {} open",
        single.peak_open()
    );
    assert!(
        ranged.peak_open() >= 6,
        "ranged: {} open",
        ranged.peak_open()
    );
    eprintln!("single stream {single_wall:?}, 6 ranges {ranged_wall:?}");

    // Compressed: the decompressor still sees the bytes in order.
    let gz = ThrottleProxy::start(server.addr, rate);
    let small_parts = ["--s3-read-part-size", "16KiB", "--s3-read-concurrency", "6"];
    run_via(&server, &gz.endpoint, "raw/a.csv.gz", "gz", &small_parts).assert_code(0);
    assert!(feature_csv(&bucket, "gz") == want, "gzip output differs");
    assert!(gz.peak_open() >= 6, "gzip: {} open", gz.peak_open());
}

#[test]
fn a_range_cut_mid_body_resumes_on_its_own() {
    let server = S3Server::start();
    let bucket = raw_bucket(&server, 200_000);
    let proxy = faulty_proxy(server.addr, 300 * 1024, Fault::CutFirst);
    let flags = [
        "--s3-initial-backoff",
        "0.05",
        "--s3-read-part-size",
        "512KiB",
    ];
    let out = run_through_with(&proxy, &server, &flags);
    out.assert_code(0);
    assert!(
        out.stderr.contains("resuming s3://lake/raw/a.csv"),
        "{}",
        out.stderr
    );
    let feature = bucket.get("f/v_20251119T000000/feature.csv").unwrap();
    let text = String::from_utf8(feature).unwrap();
    let rows: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 200_001);
    // Row i is i + i.25, in order: nothing lost, doubled or reordered at the cut.
    for (i, row) in rows[1..].iter().enumerate() {
        assert_eq!(*row, format!("{}.25", 2 * i), "row {i}");
    }
}

/// GETs of `raw/a.csv` a run sends through a counting proxy, with `flags`.
fn raw_gets(server: &S3Server, out: &str, flags: &[&str]) -> usize {
    let gets = Arc::new(AtomicUsize::new(0));
    let counter = gets.clone();
    let endpoint = proxy(
        server.addr,
        move |req| {
            if request_line_is(req, "GET ", "/raw/a.csv") {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            false
        },
        |mut s_read, mut c_write, _, _| {
            let _ = std::io::copy(&mut s_read, &mut c_write);
            let _ = c_write.shutdown(std::net::Shutdown::Both);
        },
    );
    let run = run_via(server, &endpoint, "raw/a.csv", out, flags);
    assert_eq!(run.summary()["status"], "success", "{}", run.stderr);
    gets.load(Ordering::SeqCst)
}

#[test]
fn an_object_no_bigger_than_a_part_is_read_by_one_get() {
    let server = S3Server::start();
    let _bucket = raw_bucket(&server, 5_000); // 58 KB
    assert_eq!(raw_gets(&server, "a", &[]), 1);
    assert_eq!(raw_gets(&server, "b", &["--s3-read-part-size", "64KiB"]), 1);
    // One byte-range GET per 16 KiB part otherwise.
    assert_eq!(raw_gets(&server, "c", &["--s3-read-part-size", "16KiB"]), 4);
}

/// S3 answers 416 to any byte range of an empty object: the first ranged GET falls back
/// to a plain one, and the run ends as it does with one GET stream.
#[test]
fn an_empty_object_reads_as_with_one_get_stream() {
    let server = S3Server::start();
    let bucket = Bucket::new(&server, "lake");
    bucket.put("raw/a.csv", b"");
    let one = run_via(
        &server,
        &server.endpoint,
        "raw/a.csv",
        "one",
        &["--s3-read-concurrency", "1"],
    );
    let ranged = run_via(&server, &server.endpoint, "raw/a.csv", "ranged", &[]);
    assert_ne!(one.code, 5, "{}", one.stderr);
    assert_eq!(ranged.code, one.code, "{}", ranged.stderr);
    let (r, o) = (ranged.summary(), one.summary());
    for key in ["status", "rows", "error_kind", "failed_step"] {
        assert_eq!(r.get(key), o.get(key), "{key}: {}", ranged.stderr);
    }
}
