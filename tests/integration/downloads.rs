//! Reading the raw object from S3 stays faithful to one object: a download that breaks
//! and resumes never splices two objects, an object deleted or changed mid-read fails the
//! run (exit 5) naming the change, and a body that fails its checksum is not "resumed".

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::faults::{proxy, raw_bucket, request_line_is, run_through_with, FAST};
use crate::support::{Bucket, Output, S3Server};

/// Read flags under test: one GET stream, and concurrent byte-range GETs of 512 KiB (the
/// 3 MB object in six ranges).
const READS: [&[&str]; 2] = [
    &["--s3-read-concurrency", "1"],
    &["--s3-read-part-size", "512KiB"],
];

/// A proxy that passes everything, except that the first GET of `raw/a.csv` whose
/// response reaches `budget` bytes is held there: the proxy reports it on the returned
/// channel and cuts that connection once the test answers (after changing the object),
/// so the client only learns of the cut when the object has already changed.
fn cut_then_wait(server: &S3Server, budget: usize) -> (String, mpsc::Receiver<mpsc::Sender<()>>) {
    let (cut_tx, cut_rx) = mpsc::channel::<mpsc::Sender<()>>();
    let cut_tx = Mutex::new(Some(cut_tx));
    let endpoint = proxy(
        server.addr,
        |req| request_line_is(req, "GET ", "/raw/a.csv"),
        move |mut s_read, mut c_write, _, marked: &AtomicBool| {
            let mut sent_marked = 0;
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n) = s_read.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if marked.load(Ordering::SeqCst) {
                    sent_marked += n;
                    if sent_marked >= budget {
                        if let Some(tx) = cut_tx.lock().unwrap().take() {
                            let (ack_tx, ack_rx) = mpsc::channel();
                            tx.send(ack_tx).unwrap();
                            let _ = ack_rx.recv_timeout(Duration::from_secs(30));
                            break;
                        }
                    }
                }
                if c_write.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = c_write.shutdown(std::net::Shutdown::Both);
            let _ = s_read.shutdown(std::net::Shutdown::Both);
        },
    );
    (endpoint, cut_rx)
}

/// Runs through `proxy` while `change` is applied to the bucket at the cut.
fn run_changing(
    server: &S3Server,
    bucket: &Bucket,
    proxy: &str,
    cut: mpsc::Receiver<mpsc::Sender<()>>,
    flags: &[&str],
    change: impl FnOnce(&Bucket),
) -> Output {
    std::thread::scope(|s| {
        let run = s.spawn(|| run_through_with(proxy, server, flags));
        let deadline = Instant::now() + Duration::from_secs(60);
        let ack = loop {
            if let Ok(ack) = cut.recv_timeout(Duration::from_millis(100)) {
                break ack;
            }
            if run.is_finished() || Instant::now() > deadline {
                let out = run.join().unwrap();
                panic!("the download was never cut:\n{}", out.stderr);
            }
        };
        change(bucket);
        ack.send(()).unwrap();
        run.join().unwrap()
    })
}

fn assert_nothing_published(bucket: &Bucket) {
    assert!(!bucket.exists("f/v_20251119T000000/_SUCCESS"));
    assert!(!bucket.exists("f/v_20251119T000000/feature.csv"));
    assert!(!bucket.exists("f/_latest"));
}

/// The object replaced while a broken download waits to resume: by a longer one (a server
/// that ignores If-Match, as s3s-fs does, would answer the resumed range from it: two files
/// spliced into one) and by a shorter one (the resumed range starts past its end: 416).
#[test]
fn an_object_replaced_during_a_resume_fails_the_run_instead_of_splicing() {
    for reads in READS {
        for (what, rows) in [("longer", 200_012), ("shorter", 10)] {
            let server = S3Server::start();
            let bucket = raw_bucket(&server, 200_000);
            let (proxy, cut) = cut_then_wait(&server, 300 * 1024);
            let flags = [FAST, reads].concat();
            let t = Instant::now();
            let out = run_changing(&server, &bucket, &proxy, cut, &flags, |b| {
                let mut raw = b"user_id,amount\n".to_vec();
                for i in 0..rows {
                    raw.extend_from_slice(format!("{i},{i}.75\n").as_bytes());
                }
                b.put("raw/a.csv", &raw);
            });
            let case = format!("{what}, {reads:?}");
            out.assert_code(5);
            assert!(
                out.error_line().contains(
                    "cannot read s3://lake/raw/a.csv: the object changed \
                     while it was being read"
                ),
                "{case}: {}",
                out.stderr
            );
            assert!(out.error_line().contains("ETag"), "{case}: {}", out.stderr);
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "{case}: {:?}",
                t.elapsed()
            );
            assert_eq!(out.summary()["status"], "failed", "{case}");
            assert_nothing_published(&bucket);
        }
    }
}

/// The object deleted while a broken download waits to resume: the 404 is final, not a
/// network hiccup to retry with back-off.
#[test]
fn an_object_deleted_during_a_resume_fails_the_run_at_once() {
    for reads in READS {
        let server = S3Server::start();
        let bucket = raw_bucket(&server, 200_000);
        let (proxy, cut) = cut_then_wait(&server, 300 * 1024);
        // A generous retry budget: retrying the 404 would take seconds.
        let generous = FAST.iter().take(8).copied();
        let flags: Vec<&str> = generous
            .chain(["--s3-max-attempts", "5", "--s3-initial-backoff", "1"])
            .chain(reads.iter().copied())
            .collect();
        let out = run_changing(&server, &bucket, &proxy, cut, &flags, |b| {
            b.delete("raw/a.csv")
        });
        out.assert_code(5);
        assert!(
            out.error_line().contains(
                "cannot read s3://lake/raw/a.csv: the object was deleted \
                 while it was being read"
            ),
            "{reads:?}: {}",
            out.stderr
        );
        // One back-off (1 s) before the resume, none after the 404.
        let resumes = out.stderr.matches("resuming s3://lake/raw/a.csv").count();
        assert_eq!(resumes, 1, "{reads:?}: {}", out.stderr);
        assert_nothing_published(&bucket);
    }
}

/// A proxy that changes one digit of the body of the first whole-object GET of
/// `raw/a.csv` (the CSV stays valid; the SDK's checksum check fails at the body's end).
fn corrupting_proxy(server: &S3Server) -> String {
    let done = Arc::new(AtomicBool::new(false));
    proxy(
        server.addr,
        |req| request_line_is(req, "GET ", "/raw/a.csv"),
        move |mut s_read, mut c_write, _, marked: &AtomicBool| {
            // The marked response's head until its end is seen, then its body offset.
            let mut head = Vec::new();
            let mut body_pos: Option<usize> = None;
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n) = s_read.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let chunk = &mut buf[..n];
                if marked.load(Ordering::SeqCst) && !done.load(Ordering::SeqCst) {
                    // Where this chunk's body bytes start, and their body offset.
                    let (from, pos) = match body_pos {
                        Some(pos) => (0, pos),
                        None => {
                            head.extend_from_slice(chunk);
                            match head.windows(4).position(|w| w == b"\r\n\r\n") {
                                Some(end) => (n - (head.len() - (end + 4)), 0),
                                None => (n, 0),
                            }
                        }
                    };
                    if from < n || body_pos.is_some() {
                        body_pos = Some(pos + n - from);
                    }
                    // Change the first digit at or after body offset 100_000.
                    for (offset, b) in (pos..).zip(chunk[from..].iter_mut()) {
                        if offset >= 100_000 && b.is_ascii_digit() {
                            *b = if *b == b'9' { b'8' } else { *b + 1 };
                            done.store(true, Ordering::SeqCst);
                            break;
                        }
                    }
                }
                if c_write.write_all(chunk).is_err() {
                    break;
                }
            }
            let _ = c_write.shutdown(std::net::Shutdown::Both);
            let _ = s_read.shutdown(std::net::Shutdown::Both);
        },
    )
}

/// A body that fails its checksum was already handed to the pass byte for byte: there is
/// nothing left to resume (asking for `bytes=<size>-` only earns a 416), and the bytes read
/// cannot be trusted: the run fails naming the checksum, and publishes nothing.
#[test]
fn a_body_that_fails_its_checksum_fails_the_run_without_resuming() {
    let server = S3Server::start();
    let bucket = raw_bucket(&server, 200_000);
    let proxy = corrupting_proxy(&server);
    // One GET stream: a whole-object response carries the object's checksum (ranged
    // responses carry none).
    let flags = [FAST, &["--s3-read-concurrency", "1"]].concat();
    let out = run_through_with(&proxy, &server, &flags);
    out.assert_code(5);
    assert!(
        out.error_line().contains("failed its checksum"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("resuming"), "{}", out.stderr);
    assert_nothing_published(&bucket);
}

/// The object replaced between the run's HEAD (whose size and ETag it records) and its
/// first GET: the read is pinned to what the HEAD saw, so the run fails naming the change
/// instead of publishing another object's rows under the first one's ETag.
#[test]
fn an_object_replaced_between_head_and_get_fails_the_run() {
    for reads in READS {
        let server = S3Server::start();
        let bucket = raw_bucket(&server, 200_000);
        // Holds the first GET of the raw object until the test has replaced it.
        let (held_tx, held_rx) = mpsc::channel::<mpsc::Sender<()>>();
        let held_tx = Mutex::new(Some(held_tx));
        let endpoint = proxy(
            server.addr,
            move |req| {
                if request_line_is(req, "GET ", "/raw/a.csv") {
                    if let Some(tx) = held_tx.lock().unwrap().take() {
                        let (ack_tx, ack_rx) = mpsc::channel();
                        tx.send(ack_tx).unwrap();
                        let _ = ack_rx.recv_timeout(Duration::from_secs(30));
                    }
                }
                false
            },
            |mut s_read, mut c_write, _, _| {
                let _ = std::io::copy(&mut s_read, &mut c_write);
                let _ = c_write.shutdown(std::net::Shutdown::Both);
            },
        );
        let flags = [FAST, reads].concat();
        let out = run_changing(&server, &bucket, &endpoint, held_rx, &flags, |b| {
            b.put("raw/a.csv", b"user_id,amount\n1,1.5\n2,2.5\n")
        });
        out.assert_code(5);
        assert!(
            out.error_line()
                .contains("the object changed while it was being read (ETag")
                && out.error_line().contains("at HEAD"),
            "{reads:?}: {}",
            out.stderr
        );
        assert_nothing_published(&bucket);
    }
}
