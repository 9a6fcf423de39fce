//! Network failures end in exit 5 with a clear sentence, quickly, and leak no secrets.

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{run, Bucket, S3Server, Sandbox};

pub(crate) const FAST: &[&str] = &[
    "--s3-connect-timeout",
    "0.5",
    "--s3-read-timeout",
    "0.5",
    "--s3-attempt-timeout",
    "0.5",
    "--s3-operation-timeout",
    "3",
    "--s3-max-attempts",
    "2",
    "--s3-initial-backoff",
    "0.05",
];

fn s3_run(endpoint: &str, extra: &[&str]) -> crate::support::Output {
    let sb = Sandbox::new();
    let mut cmd = sb.cmd();
    cmd.env("AWS_ACCESS_KEY_ID", "AKIAFAULTTEST")
        .env("AWS_SECRET_ACCESS_KEY", "fault-secret-must-not-leak-91b2")
        .env(
            "AWS_SESSION_TOKEN",
            "fault-session-token-must-not-leak-55ce",
        )
        .args(["--endpoint-url", endpoint, "--raw", "s3://lake/raw/a.csv"])
        .args([
            "--features",
            "s3://lake/features",
            "--execution-date",
            "2025-11-19",
        ])
        .args(FAST)
        .args(extra);
    run(cmd)
}

fn assert_no_secrets(out: &crate::support::Output, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !out.stdout.contains(s) && !out.stderr.contains(s),
            "secret {s} leaked:\n{}",
            out.stderr
        );
    }
}

#[test]
fn exit_5_when_the_endpoint_refuses_connections() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = Instant::now();
    let out = s3_run(&format!("http://127.0.0.1:{port}"), &[]);
    out.assert_code(5);
    assert!(t.elapsed() < Duration::from_secs(30));
    out.assert_error_mentions("connection");
    assert_eq!(out.summary()["status"], "failed");
    assert_no_secrets(
        &out,
        &[
            "fault-secret-must-not-leak-91b2",
            "fault-session-token-must-not-leak-55ce",
        ],
    );
}

#[test]
fn exit_5_when_the_endpoint_never_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept connections and read, but never answer; bounded by the test's lifetime.
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        listener.set_nonblocking(true).unwrap();
        let mut held = Vec::new();
        while Instant::now() < deadline {
            if let Ok((mut s, _)) = listener.accept() {
                let _ = s.set_read_timeout(Some(Duration::from_millis(10)));
                let _ = s.read(&mut [0u8; 4096]);
                held.push(s);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let t = Instant::now();
    let out = s3_run(&format!("http://{addr}"), &[]);
    out.assert_code(5);
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t.elapsed()
    );
    out.assert_error_mentions("timed out");
}

#[test]
fn exit_5_on_bad_credentials_without_leaking_them() {
    let server = S3Server::start();
    let bucket = Bucket::new(&server, "lake");
    bucket.put("raw/a.csv", b"user_id\n1\n");
    let out = s3_run(&server.endpoint, &[]);
    out.assert_code(5);
    out.assert_error_mentions("credentials");
    assert_no_secrets(
        &out,
        &[
            "fault-secret-must-not-leak-91b2",
            "fault-session-token-must-not-leak-55ce",
        ],
    );
}

#[test]
fn exit_2_for_a_password_in_the_endpoint_url_without_leaking_it() {
    // It would be signed into the Host header (so it can never work) and could reach
    // debug logs: refused before anything connects, at every log level.
    let server = S3Server::start();
    let url = server
        .endpoint
        .replace("http://", "http://admin:url-password-xyz@");
    for level in ["info", "trace"] {
        let sb = Sandbox::new();
        let mut cmd = sb.s3_cmd(&server);
        cmd.args(["--endpoint-url", &url, "--raw", "s3://lake/raw/a.csv"])
            .args([
                "--features",
                "s3://lake/f",
                "--execution-date",
                "2025-11-19",
            ])
            .env("RUST_LOG", level);
        let out = run(cmd);
        out.assert_code(2);
        out.assert_error_mentions("--endpoint-url");
        assert_no_secrets(&out, &["url-password-xyz"]);
    }
}

#[test]
fn secrets_stay_out_of_a_successful_run() {
    let server = S3Server::start();
    let bucket = Bucket::new(&server, "lake");
    bucket.put(
        "raw/a.csv",
        &std::fs::read(crate::support::fixture("user_events_20251119.csv")).unwrap(),
    );
    let sb = Sandbox::new();
    let mut cmd = sb.s3_cmd(&server);
    cmd.args([
        "--raw",
        "s3://lake/raw/a.csv",
        "--features",
        "s3://lake/f",
        "--execution-date",
        "2025-11-19",
    ])
    .env("RUST_LOG", "debug");
    let out = run(cmd);
    out.assert_code(0);
    assert_no_secrets(&out, &[&server.secret_key]);
    assert!(bucket.exists("f/v_20251119T000000/_SUCCESS"));
}

/// What the proxy does once a connection has carried `budget` response bytes.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Fault {
    /// Every connection goes silent (and stays open).
    StallEvery,
    /// The first connection to reach the budget is closed mid-response; the others (and
    /// every later one) pass everything. (Which connection carries the big GET depends
    /// on the client's pool, so the cut goes to whichever gets there first.)
    CutFirst,
}

/// A loopback TCP proxy to `upstream`: requests pass whole, and each connection's
/// response stream goes through `respond(from_server, to_client, deadline, marked)`, where
/// `marked` is set once a request on that connection made `mark` say true (before that
/// request reaches the server). Bounded: it stops accepting after 60 s (the `deadline`).
pub(crate) fn proxy<M, F>(upstream: std::net::SocketAddr, mark: M, respond: F) -> String
where
    M: Fn(&[u8]) -> bool + Send + Sync + 'static,
    F: Fn(std::net::TcpStream, std::net::TcpStream, Instant, &AtomicBool) + Send + Sync + 'static,
{
    use std::io::Write;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let (mark, respond) = (Arc::new(mark), Arc::new(respond));
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let Ok((client, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            client.set_nonblocking(false).unwrap();
            let server = std::net::TcpStream::connect(upstream).unwrap();
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let marked = Arc::new(AtomicBool::new(false));
            let (mark, marked_req) = (mark.clone(), marked.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n) = c_read.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if mark(&buf[..n]) {
                        marked_req.store(true, Ordering::SeqCst);
                    }
                    if s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = s_write.shutdown(std::net::Shutdown::Write);
            });
            let respond = respond.clone();
            std::thread::spawn(move || respond(server, client, deadline, &marked));
        }
    });
    format!("http://{addr}")
}

/// A proxy that forwards responses up to `budget` bytes per connection, then applies
/// `fault`.
pub(crate) fn faulty_proxy(upstream: std::net::SocketAddr, budget: usize, fault: Fault) -> String {
    use std::io::Write;
    let cut_done = AtomicBool::new(false);
    proxy(
        upstream,
        |_| false,
        move |mut s_read, mut c_write, deadline, _| {
            let mut sent = 0;
            let mut buf = [0u8; 16 * 1024];
            let mut budget = budget;
            let mut chosen = false;
            while let Ok(n) = s_read.read(&mut buf) {
                // CutFirst: only one connection ever gets cut.
                if fault == Fault::CutFirst && !chosen && sent + n >= budget {
                    if cut_done.swap(true, Ordering::SeqCst) {
                        budget = usize::MAX;
                    } else {
                        chosen = true;
                    }
                }
                if n == 0 || sent >= budget {
                    break;
                }
                let n = n.min(budget - sent);
                if c_write.write_all(&buf[..n]).is_err() {
                    break;
                }
                sent += n;
            }
            if sent >= budget && fault == Fault::StallEvery {
                // Keep the client's socket open and silent until the proxy's deadline.
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            }
            let _ = c_write.shutdown(std::net::Shutdown::Both);
            let _ = s_read.shutdown(std::net::Shutdown::Both);
        },
    )
}

/// A proxy that passes responses whole but with every `from` replaced by `to` (same
/// length, so HTTP framing still holds): a server whose replies the SDK cannot parse.
fn rewriting_proxy(
    upstream: std::net::SocketAddr,
    from: &'static [u8],
    to: &'static [u8],
) -> String {
    use std::io::Write;
    assert_eq!(from.len(), to.len());
    proxy(
        upstream,
        |_| false,
        move |mut s_read, mut c_write, _, _| {
            let mut pending = Vec::new();
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n) = s_read.read(&mut buf) {
                if n == 0 {
                    break;
                }
                pending.extend_from_slice(&buf[..n]);
                let mut i = 0;
                while i + from.len() <= pending.len() {
                    if &pending[i..i + from.len()] == from {
                        pending[i..i + from.len()].copy_from_slice(to);
                        i += from.len();
                    } else {
                        i += 1;
                    }
                }
                // Hold back a tail that may be the start of a match split across reads (a
                // reply never ends inside its root element's name, so it always completes).
                let keep = (1..from.len())
                    .rev()
                    .find(|&k| k <= pending.len() && pending.ends_with(&from[..k]))
                    .unwrap_or(0);
                let send = pending.len() - keep;
                if c_write.write_all(&pending[..send]).is_err() {
                    break;
                }
                pending.drain(..send);
            }
            let _ = c_write.shutdown(std::net::Shutdown::Both);
            let _ = s_read.shutdown(std::net::Shutdown::Both);
        },
    )
}

/// A proxy that loses the replies to requests `target` picks, at most `max_lost` of them:
/// the server does the work, and the client sees its connection closed without an answer
/// (then the SDK retries). Returns the endpoint and the count of replies lost.
fn losing_reply_proxy<T>(
    upstream: std::net::SocketAddr,
    target: T,
    max_lost: usize,
) -> (String, Arc<AtomicUsize>)
where
    T: Fn(&[u8]) -> bool + Send + Sync + 'static,
{
    use std::io::Write;
    let lost = Arc::new(AtomicUsize::new(0));
    let counter = lost.clone();
    let endpoint = proxy(
        upstream,
        target,
        move |mut s_read, mut c_write, _, marked| {
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n) = s_read.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let lose = marked.load(Ordering::SeqCst)
                    && counter
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| {
                            (l < max_lost).then_some(l + 1)
                        })
                        .is_ok();
                if lose || c_write.write_all(&buf[..n]).is_err() {
                    break; // a lost reply: drop it and the connection
                }
            }
            let _ = c_write.shutdown(std::net::Shutdown::Both);
            let _ = s_read.shutdown(std::net::Shutdown::Both);
        },
    );
    (endpoint, lost)
}

/// Picks requests by their first bytes.
type RequestFilter = fn(&[u8]) -> bool;

/// The request line of `req` starts with `method` and holds `part`.
pub(crate) fn request_line_is(req: &[u8], method: &str, part: &str) -> bool {
    let line = req.split(|&b| b == b'\r').next().unwrap_or_default();
    let has = |pat: &[u8]| line.windows(pat.len()).any(|w| w == pat);
    line.starts_with(method.as_bytes()) && has(part.as_bytes())
}

/// A proxy to `server` whose every connection stalls after `budget` response bytes.
pub fn stalling_proxy_for(server: &S3Server, budget: usize) -> String {
    faulty_proxy(server.addr, budget, Fault::StallEvery)
}

/// A bucket with a raw CSV of 200k rows (about 2.5 MB) behind `proxy` settings.
fn big_raw(server: &S3Server) -> Bucket {
    raw_bucket(server, 200_000)
}

/// A bucket with a raw CSV of 1M rows whose feature.csv (about 11 MB) takes more than one
/// 8 MiB part: a multipart upload.
fn multipart_raw(server: &S3Server) -> Bucket {
    raw_bucket(server, 1_000_000)
}

/// Bucket `lake` holding `raw/a.csv`: `user_id,amount` and `rows` rows `i,i.25`.
pub(crate) fn raw_bucket(server: &S3Server, rows: u32) -> Bucket {
    let bucket = Bucket::new(server, "lake");
    let mut raw = b"user_id,amount\n".to_vec();
    for i in 0..rows {
        raw.extend_from_slice(format!("{i},{i}.25\n").as_bytes());
    }
    bucket.put("raw/a.csv", &raw);
    bucket
}

fn run_through(proxy: &str, server: &S3Server) -> crate::support::Output {
    run_through_with(proxy, server, FAST)
}

pub(crate) fn run_through_with(
    proxy: &str,
    server: &S3Server,
    flags: &[&str],
) -> crate::support::Output {
    let sb = Sandbox::new();
    let mut cmd = sb.cmd();
    cmd.env("AWS_ACCESS_KEY_ID", &server.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &server.secret_key)
        .args(["--endpoint-url", proxy, "--raw", "s3://lake/raw/a.csv"])
        .args([
            "--features",
            "s3://lake/f",
            "--execution-date",
            "2025-11-19",
        ])
        .args(flags);
    run(cmd)
}

#[test]
fn a_download_cut_mid_body_resumes_where_it_stopped() {
    let server = S3Server::start();
    let bucket = big_raw(&server);
    let proxy = faulty_proxy(server.addr, 300 * 1024, Fault::CutFirst);
    // A cut is seen at once, whatever the timeouts; FAST's 0.5 s attempt timeout only made
    // the feature.csv upload time out on a loaded machine (exit 5 after a good resume).
    let out = run_through_with(&proxy, &server, &["--s3-initial-backoff", "0.05"]);
    out.assert_code(0);
    assert!(
        out.stderr.contains("resuming s3://lake/raw/a.csv"),
        "{}",
        out.stderr
    );
    assert_eq!(out.summary()["rows"], "200000");
    let feature = bucket.get("f/v_20251119T000000/feature.csv").unwrap();
    let text = String::from_utf8(feature).unwrap();
    assert_eq!(
        text.split("\r\n").filter(|l| !l.is_empty()).count(),
        200_001
    );
    assert!(
        text.ends_with("\r\n399998.25\r\n"),
        "last row is 199999 + 199999.25"
    );
}

#[test]
fn exit_5_when_a_download_stalls_mid_body() {
    let server = S3Server::start();
    let bucket = big_raw(&server);
    let proxy = faulty_proxy(server.addr, 300 * 1024, Fault::StallEvery);
    let t = Instant::now();
    let out = run_through(&proxy, &server);
    out.assert_code(5);
    // Two attempts, each ended by the SDK's 5 s stalled-stream grace period.
    assert!(
        t.elapsed() < Duration::from_secs(40),
        "took {:?}",
        t.elapsed()
    );
    assert!(!bucket.exists("f/v_20251119T000000/_SUCCESS"));
    assert!(!bucket.exists("f/v_20251119T000000/feature.csv"));
    out.assert_error_mentions("stalled");
}

#[test]
fn an_unreadable_reply_to_completing_an_upload_is_checked_with_a_head() {
    let server = S3Server::start();
    let bucket = multipart_raw(&server);
    // moto 5.2.1 answers CompleteMultipartUpload with HTTP 200 and a root element the SDK
    // rejects (`CompleteMultipartUploadResponse`); renaming it does the same here.
    let proxy = rewriting_proxy(
        server.addr,
        b"CompleteMultipartUploadResult",
        b"CompleteMultipartUploadAnswer",
    );
    let out = run_through_with(&proxy, &server, &["--s3-max-attempts", "2"]);
    out.assert_code(0);
    assert!(
        out.stderr
            .contains("HTTP 200, but the reply could not be read")
            && out
                .stderr
                .contains("a HEAD finds exactly the object that was sent"),
        "{}",
        out.stderr
    );
    let feature = bucket.get("f/v_20251119T000000/feature.csv").unwrap();
    let text = String::from_utf8(feature).unwrap();
    assert_eq!(
        text.split("\r\n").filter(|l| !l.is_empty()).count(),
        1_000_001
    );
    assert!(text.ends_with("\r\n1999998.25\r\n"), "999999 + 999999.25");
    assert!(bucket.exists("f/v_20251119T000000/_SUCCESS"));
}

#[test]
fn a_lost_reply_to_completing_an_upload_is_checked_with_a_head_after_the_retry() {
    let server = S3Server::start();
    let bucket = multipart_raw(&server);
    // The server completes the upload but the reply is lost; the SDK retries, and the
    // retry finds no such upload any more (S3-compatible servers forget a completed one).
    // Completion is the only POST to `?uploadId=` (creation posts to `?uploads`).
    let (proxy, _) = losing_reply_proxy(
        server.addr,
        |req| request_line_is(req, "POST ", "?uploadId="),
        1,
    );
    let out = run_through_with(&proxy, &server, &["--s3-initial-backoff", "0.05"]);
    out.assert_code(0);
    assert!(
        out.stderr
            .contains("a HEAD finds exactly the object that was sent"),
        "{}",
        out.stderr
    );
    let feature = bucket.get("f/v_20251119T000000/feature.csv").unwrap();
    assert!(String::from_utf8(feature)
        .unwrap()
        .ends_with("\r\n1999998.25\r\n"));
    assert!(bucket.exists("f/v_20251119T000000/_SUCCESS"));
}

/// Each create-if-absent of a run (the version's lease, `_SUCCESS`) with its first reply
/// lost: the SDK's retry meets the object the first attempt wrote. The run must take it
/// as its own, not as another run's (busy, exit 75) or as published by someone else.
#[test]
fn a_lost_reply_to_a_create_is_not_mistaken_for_another_run() {
    let targets: [(&str, RequestFilter); 2] = [
        ("lease", |req| request_line_is(req, "PUT ", "/_leases/v_")),
        ("_SUCCESS", |req| request_line_is(req, "PUT ", "/_SUCCESS")),
    ];
    for (what, target) in targets {
        let server = S3Server::start();
        let bucket = big_raw(&server);
        let (proxy, _) = losing_reply_proxy(server.addr, target, 1);
        let out = run_through_with(&proxy, &server, &["--s3-initial-backoff", "0.05"]);
        out.assert_code(0);
        assert_eq!(out.summary()["status"], "success", "{what}: {}", out.stderr);
        assert!(
            out.stderr.contains("a retry after a lost reply"),
            "{what}: {}",
            out.stderr
        );
        assert!(bucket.exists("f/v_20251119T000000/_SUCCESS"), "{what}");
        assert!(bucket.exists("f/_latest"), "{what}: _latest moved");
    }
}

/// Every other reply lost, whatever the request (the server did the work each time): the
/// SDK's retries and the run's own checks (creates that meet their own bytes, a completion
/// confirmed by HEAD) must still publish the right version, once.
#[test]
fn a_run_survives_losing_every_other_reply() {
    let server = S3Server::start();
    let bucket = multipart_raw(&server);
    let requests = AtomicUsize::new(0);
    let every_other_request = move |req: &[u8]| {
        let starts_request = ["GET ", "PUT ", "POST ", "HEAD ", "DELETE "]
            .iter()
            .any(|m| req.starts_with(m.as_bytes()));
        starts_request && requests.fetch_add(1, Ordering::SeqCst) % 2 == 1
    };
    let (proxy, lost) = losing_reply_proxy(server.addr, every_other_request, usize::MAX);
    // Strict alternation only guarantees a retry's success when requests go one at a
    // time; with the raw object's ranges and the upload's parts in flight together, one
    // request can draw the losing turn several times running: 8 attempts make that rare.
    let flags = ["--s3-initial-backoff", "0.05", "--s3-max-attempts", "8"];
    let out = run_through_with(&proxy, &server, &flags);
    out.assert_code(0);
    assert!(
        lost.load(Ordering::SeqCst) >= 10,
        "only {lost:?} replies lost"
    );
    assert_eq!(out.summary()["status"], "success", "{}", out.stderr);
    let feature =
        String::from_utf8(bucket.get("f/v_20251119T000000/feature.csv").unwrap()).unwrap();
    assert_eq!(
        feature.split("\r\n").filter(|l| !l.is_empty()).count(),
        1_000_001
    );
    assert!(feature.ends_with("\r\n1999998.25\r\n"));
    assert!(bucket.exists("f/v_20251119T000000/_SUCCESS"));
    let latest = String::from_utf8(bucket.get("f/_latest").unwrap()).unwrap();
    assert!(latest.contains("v_20251119T000000"), "{latest}");
}

#[test]
fn a_run_whose_lease_create_reply_is_lost_knows_the_lease_is_its_own() {
    // The create of the lease succeeds on the server but its reply is lost; the SDK's
    // retry then meets the run's own record (412), and reading it back fails as well.
    // The run must still see that the lease is its own (it used to exit 75 "being
    // written by run <its own id>" and leave a live lease blocking every run).
    let server = S3Server::start();
    let _bucket = big_raw(&server);
    let lease_create = |req: &[u8]| request_line_is(req, "PUT ", "/_leases/v_");
    let lease_read = |req: &[u8]| request_line_is(req, "GET ", "/_leases/v_");
    let lost_creates = AtomicUsize::new(0);
    let lost_reads = AtomicUsize::new(0);
    let target = move |req: &[u8]| {
        (lease_create(req) && lost_creates.fetch_add(1, Ordering::SeqCst) < 1)
            || (lease_read(req) && lost_reads.fetch_add(1, Ordering::SeqCst) < 2)
    };
    let (proxy, lost) = losing_reply_proxy(server.addr, target, 3);
    let out = run_through_with(
        &proxy,
        &server,
        &["--s3-initial-backoff", "0.05", "--s3-max-attempts", "2"],
    );
    assert!(
        lost.load(Ordering::SeqCst) >= 2,
        "only {lost:?} replies lost"
    );
    out.assert_code(0);
    assert_eq!(out.summary()["status"], "success", "{}", out.stderr);
}

#[test]
fn a_lost_reply_to_starting_an_upload_leaves_no_orphan_upload() {
    // The server starts the multipart upload, its reply is lost, the SDK starts a second
    // one: the first used to stay behind, invisible and billed, after an exit-0 run.
    let server = S3Server::start();
    let bucket = multipart_raw(&server);
    let lost_once = AtomicUsize::new(0);
    let start_upload = move |req: &[u8]| {
        request_line_is(req, "POST ", "feature.csv?uploads")
            && lost_once.fetch_add(1, Ordering::SeqCst) == 0
    };
    let (proxy, lost) = losing_reply_proxy(server.addr, start_upload, 1);
    let out = run_through_with(&proxy, &server, &["--s3-initial-backoff", "0.05"]);
    out.assert_code(0);
    assert_eq!(lost.load(Ordering::SeqCst), 1, "the reply was not lost");
    assert!(bucket.exists("f/v_20251119T000000/_SUCCESS"));
    assert_eq!(
        bucket.abort_uploads("f/v_20251119T000000"),
        0,
        "an upload was left behind in the published version"
    );
}
