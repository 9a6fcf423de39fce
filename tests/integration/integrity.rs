//! Publish integrity under faults: a version with `_SUCCESS` always holds exactly the
//! files its manifest lists, whatever a stalled writer, a full disk or a hostile input
//! does. Each test reproduces a way this promise was broken.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use sha2::Digest as _;

use crate::support::freezing_proxy::FreezingProxy;
use crate::support::{fixture, run, Bucket, Output, S3Server, Sandbox};

const VERSION: &str = "v_20251119T000000";

/// `user_id,amount` and `rows` rows `i,i.25`.
fn rows_csv(rows: u32) -> Vec<u8> {
    let mut raw = b"user_id,amount\n".to_vec();
    for i in 0..rows {
        raw.extend_from_slice(format!("{i},{i}.25\n").as_bytes());
    }
    raw
}

/// Asserts the version's `_SUCCESS` manifest lists exactly the bytes of every file.
fn assert_manifest_matches(read: impl Fn(&str) -> Option<Vec<u8>>, version: &str) {
    let manifest = read(&format!("{version}/_SUCCESS")).expect("no _SUCCESS");
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let files = manifest["files"].as_object().unwrap();
    assert!(files.len() >= 3, "{manifest}");
    for (name, listed) in files {
        let bytes = read(&format!("{version}/{name}"))
            .unwrap_or_else(|| panic!("{name} is listed in _SUCCESS but missing"));
        assert_eq!(listed["size_bytes"], bytes.len(), "size of {name}");
        assert_eq!(
            listed["sha256"].as_str().unwrap(),
            featurepipe::values::digest::hex(&sha2::Sha256::digest(&bytes)),
            "{name} is not the file _SUCCESS describes"
        );
    }
}

/// `featurepipe run` of 2025-11-19 in `sb`, reading `raw`, publishing under `prefix`.
fn local_run(sb: &Sandbox, raw: &str, prefix: &str) -> assert_cmd::Command {
    let mut cmd = sb.cmd();
    cmd.args([
        "--raw",
        raw,
        "--features",
        prefix,
        "--execution-date",
        "2025-11-19",
    ]);
    cmd
}

fn local_reader(root: &Path) -> impl Fn(&str) -> Option<Vec<u8>> + '_ {
    move |key| std::fs::read(root.join(key)).ok()
}

/// The output of a child process started with piped stdout and stderr.
fn finish(child: std::process::Child) -> Output {
    let out = child.wait_with_output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn a_stalled_writer_cannot_change_a_version_another_run_published_on_s3() {
    let server = S3Server::start();
    let bucket = Bucket::new(&server, "lake");
    bucket.put("raw/a.csv", &rows_csv(50_000));
    // Run A freezes as it creates its documents, after every check it makes: its lease
    // (1 s, renewals frozen too) expires while it hangs.
    let freeze = FreezingProxy::start(server.addr, "PUT ", "schema.json");
    let args = [
        "--raw",
        "s3://lake/raw/a.csv",
        "--features",
        "s3://lake/f",
        "--execution-date",
        "2025-11-19",
        "--lease-ttl",
        "1",
    ];
    let sb_a = Sandbox::new();
    let a = sb_a
        .std_cmd()
        .env("AWS_ACCESS_KEY_ID", &server.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &server.secret_key)
        .args(["--endpoint-url", &freeze.endpoint])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(freeze.wait_frozen(Duration::from_secs(60)), "A never froze");
    std::thread::sleep(Duration::from_secs(2));
    // Run B takes the expired lease over and publishes (with a lease that a busy machine
    // cannot make it lose).
    let sb_b = Sandbox::new();
    let mut b = sb_b.s3_cmd(&server);
    b.args(&args[..6]).args(["--lease-ttl", "30"]);
    let b = run(b);
    b.assert_code(0);
    assert_eq!(b.summary()["status"], "success", "{}", b.stderr);
    // A wakes up: its writes must not change B's version.
    freeze.release();
    let a = finish(a);
    a.assert_code(75);
    assert!(a.error_line().contains("another writer"), "{}", a.stderr);
    assert_manifest_matches(|k| bucket.get(&format!("f/{k}")), VERSION);
    let manifest: serde_json::Value =
        serde_json::from_slice(&bucket.get(&format!("f/{VERSION}/_SUCCESS")).unwrap()).unwrap();
    assert_eq!(manifest["run_id"], b.summary()["run_id"]);
}

#[test]
fn a_stopped_writer_cannot_change_a_version_another_run_published_on_local_disk() {
    let sb = Sandbox::new();
    sb.write("raw.csv", &rows_csv(400_000));
    let args = [
        "--raw",
        "raw.csv",
        "--features",
        "out",
        "--execution-date",
        "2025-11-19",
        "--lease-ttl",
        "1",
    ];
    let mut a = sb
        .std_cmd()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stop A as it starts publishing (SIGSTOP, as a GC pause or a debugger would).
    let stderr = a.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(stderr).lines();
        for line in lines.by_ref().map_while(Result::ok) {
            if line.contains("step=store_features status=started") {
                return (true, lines);
            }
        }
        (false, lines)
    });
    let (started, rest) = reader.join().unwrap();
    assert!(started, "A never reached store_features");
    let pid = a.id().to_string();
    let signal = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
    };
    signal("-STOP");
    std::thread::sleep(Duration::from_secs(2));
    let mut b = sb.cmd();
    b.args(&args[..6]).args(["--lease-ttl", "30"]);
    let b = run(b);
    signal("-CONT");
    let a_tail: Vec<String> = rest.map_while(Result::ok).collect();
    let status = a.wait().unwrap();
    // A either finished first (B then found the version complete) or stopped: never
    // does the version end up with files other than its manifest's.
    assert!(
        [Some(0), Some(75)].contains(&status.code()),
        "A: {status:?} {a_tail:?}"
    );
    assert!([0].contains(&b.code), "{}", b.stderr);
    assert_manifest_matches(local_reader(&sb.path("out")), VERSION);
}

#[test]
fn a_full_disk_fails_the_run_instead_of_publishing_empty_documents() {
    let sb = Sandbox::new();
    let raw = rows_csv(20_000);
    sb.write("raw.csv", &raw);
    // How big the feature file is, from a run on the ordinary disk.
    let probe = local_run(&sb, "raw.csv", "probe");
    run(probe).assert_code(0);
    let feature_size = std::fs::metadata(sb.path(&format!("probe/{VERSION}/feature.csv")))
        .unwrap()
        .len();
    let Some(disk) = Tmpfs::mount(&sb.path("disk"), "size=4m") else {
        return;
    };
    // Leave room for the feature file and the lease, not for the documents.
    let page = 4096;
    let room = feature_size.div_ceil(page) * page + 2 * page;
    disk.fill_leaving(room);
    // (A short lease: on a full disk its release cannot be written either, so it has to
    // expire before the next run.)
    let args = [
        "--raw",
        "raw.csv",
        "--features",
        "disk/out",
        "--execution-date",
        "2025-11-19",
        "--lease-ttl",
        "1",
    ];
    let mut cmd = sb.cmd();
    cmd.args(args);
    let out = run(cmd);
    out.assert_code(5);
    assert!(
        out.error_line().starts_with("featurepipe: error:"),
        "the last line is the error sentence: {}",
        out.stderr
    );
    assert!(out.error_line().contains("No space left"), "{}", out.stderr);
    let version = sb.path(&format!("disk/out/{VERSION}"));
    assert!(
        !version.join("_SUCCESS").exists(),
        "a version marked complete"
    );
    for entry in walk(&sb.path("disk/out")) {
        let len = std::fs::metadata(&entry).unwrap().len();
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            len > 0 || name.starts_with('.'),
            "0-byte {}",
            entry.display()
        );
        assert!(
            !name.contains(".tmp-"),
            "temporary file left: {}",
            entry.display()
        );
    }
    // With room again, the next run publishes the version whole.
    disk.free();
    std::thread::sleep(Duration::from_millis(1500));
    let mut again = sb.cmd();
    again.args(args);
    run(again).assert_code(0);
    assert_manifest_matches(local_reader(&sb.path("disk/out")), VERSION);
}

#[test]
fn running_out_of_inodes_fails_cleanly() {
    let sb = Sandbox::new();
    sb.write("raw.csv", &rows_csv(1_000));
    let Some(_disk) = Tmpfs::mount(&sb.path("disk"), "size=4m,nr_inodes=8") else {
        return;
    };
    let cmd = local_run(&sb, "raw.csv", "disk/out");
    let out = run(cmd);
    assert!([2, 5].contains(&out.code), "{}", out.stderr);
    assert!(
        out.error_line().starts_with("featurepipe: error:"),
        "nothing follows the error sentence: {}",
        out.stderr
    );
    assert!(!sb.path(&format!("disk/out/{VERSION}/_SUCCESS")).exists());
    for entry in walk(&sb.path("disk")) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.contains(".tmp-"),
            "temporary file left: {}",
            entry.display()
        );
    }
}

#[test]
fn a_version_whose_files_do_not_match_its_manifest_is_rewritten() {
    let sb = Sandbox::new();
    sb.write("raw.csv", &rows_csv(1_000));
    run(local_run(&sb, "raw.csv", "out")).assert_code(0);
    // Damage it: a truncated feature file, as a bad copy would leave it.
    let feature = sb.path(&format!("out/{VERSION}/feature.csv"));
    let bytes = std::fs::read(&feature).unwrap();
    std::fs::write(&feature, &bytes[..bytes.len() / 2]).unwrap();
    let out = run(local_run(&sb, "raw.csv", "out"));
    out.assert_code(0);
    assert_eq!(out.summary()["status"], "success", "rewritten, not skipped");
    assert!(out.stderr.contains("is not complete"), "{}", out.stderr);
    assert_manifest_matches(local_reader(&sb.path("out")), VERSION);
    // An empty `_latest` is healed by the next run.
    std::fs::write(sb.path("out/_latest"), b"").unwrap();
    run(local_run(&sb, "raw.csv", "out")).assert_code(0);
    let latest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sb.path("out/_latest")).unwrap()).unwrap();
    assert_eq!(latest["feature_version"], VERSION);
}

#[test]
fn a_killed_runs_temporary_files_do_not_stay_in_a_complete_version() {
    let sb = Sandbox::new();
    sb.write("raw.csv", &rows_csv(1_000));
    // What `kill -9` mid-write leaves: a hidden temporary file in the version folder.
    let leftover = sb.write(
        &format!("out/{VERSION}/.feature.csv.tmp-0badc0de"),
        b"half a file",
    );
    let cmd = local_run(&sb, "raw.csv", "out");
    run(cmd).assert_code(0);
    assert!(
        !leftover.exists(),
        "a temporary file stayed in a complete version"
    );
    assert_manifest_matches(local_reader(&sb.path("out")), VERSION);
}

#[test]
fn a_latest_pointer_that_cannot_move_does_not_fail_a_published_run() {
    let sb = Sandbox::new();
    sb.write("raw.csv", &rows_csv(100));
    // A folder where the pointer should be: writing it fails.
    std::fs::create_dir_all(sb.path("out/_latest/blocked")).unwrap();
    let cmd = local_run(&sb, "raw.csv", "out");
    let out = run(cmd);
    out.assert_code(0);
    assert_eq!(out.result()["latest_moved"], false);
    assert!(out.stderr.contains("could not be moved"), "{}", out.stderr);
    assert_manifest_matches(local_reader(&sb.path("out")), VERSION);
}

#[test]
fn invalid_utf8_split_by_a_delimiter_is_malformed_input() {
    for (raw, line) in [
        (&b"b\n\xc3,\xa9\n"[..], "line 2"),
        // A byte order mark cut in two by a delimiter is not one.
        (&b"\xef\xbb,\xbf\n1,2\n"[..], "line 1"),
        (&b"a,b\n1,\"x\xc3\",\xa9\n"[..], "line 2"),
    ] {
        let sb = Sandbox::new();
        sb.write("raw.csv", raw);
        let cmd = local_run(&sb, "raw.csv", "out");
        let out = run(cmd);
        out.assert_code(3);
        out.assert_error_mentions(line);
        out.assert_error_mentions("UTF-8");
        assert!(!sb.path(&format!("out/{VERSION}/_SUCCESS")).exists());
    }
}

#[test]
fn records_with_too_many_fields_or_a_huge_header_stop_with_bounded_memory() {
    let sb = Sandbox::new();
    // 1,951 bytes of zstd that unpack to a 60 MB header of commas.
    let mut header = vec![b','; 60_000_000];
    header.push(b'\n');
    let packed = zstd::encode_all(&header[..], 19).unwrap();
    assert!(packed.len() < 10_000);
    sb.write("comma_header.csv.zst", &packed);
    // A data row of a million fields.
    let mut wide = b"a,b\n".to_vec();
    wide.extend(std::iter::repeat_n(b"a,".as_slice(), 1_000_000).flatten());
    wide.push(b'\n');
    sb.write("wide_row.csv", &wide);
    for (raw, line) in [
        ("comma_header.csv.zst", "line 1"),
        ("wide_row.csv", "line 2"),
    ] {
        let out = run(local_run(&sb, raw, "out"));
        out.assert_code(3);
        out.assert_error_mentions(line);
        out.assert_error_mentions("max_columns");
    }
    // A header of 2 MB in ten fields: over the header's own bound.
    let mut long = "x".repeat(200_000);
    long.push(',');
    let mut header = long.repeat(10).into_bytes();
    header.extend_from_slice(b"\n1\n");
    sb.write("long_header.csv", &header);
    let cmd = local_run(&sb, "long_header.csv", "out");
    let out = run(cmd);
    out.assert_code(3);
    out.assert_error_mentions("max_header_bytes");
    // The bounds are the pipeline file's to raise.
    let config = sb.write(
        "wide.toml",
        b"[source]\npath = \"wide_row.csv\"\nmax_columns = 2000000\n[output]\nprefix = \"out\"\n",
    );
    let mut cmd = sb.cmd();
    cmd.arg("--config")
        .arg(config)
        .args(["--execution-date", "2025-11-19"]);
    run(cmd).assert_code(0);
}

#[test]
fn a_device_a_pipe_or_a_folder_is_not_a_missing_raw_input() {
    let sb = Sandbox::new();
    let fifo = sb.path("fifo.csv");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    sb.write("folder.csv/part-0.csv", b"a\n1\n");
    let mut inputs = vec![
        "/dev/null".to_string(),
        sb.path("folder.csv").display().to_string(),
    ];
    if made.is_ok_and(|s| s.success()) {
        inputs.push(fifo.display().to_string());
    }
    for raw in inputs {
        for extra in [&[][..], &["--skip-if-missing"][..]] {
            let mut cmd = local_run(&sb, &raw, "out");
            cmd.args(extra);
            let out = run(cmd);
            out.assert_code(2);
            out.assert_error_mentions("--raw");
            out.assert_error_mentions("not a file");
        }
    }
}

#[test]
fn a_toml_syntax_error_is_one_line_naming_the_file_and_line() {
    let sb = Sandbox::new();
    sb.write("p.toml", b"name = \"x\"\n[source\npath = 1\n");
    let mut cmd = sb.cmd();
    cmd.args(["--config", "p.toml"]);
    let out = run(cmd);
    out.assert_code(2);
    let last = out.error_line();
    assert!(last.starts_with("featurepipe: error: "), "{}", out.stderr);
    assert!(last.contains("p.toml line 2"), "{last}");
    let sentences = out.stderr.lines().filter(|l| !l.contains("[DP]")).count();
    assert_eq!(sentences, 1, "one sentence, not two lines: {}", out.stderr);
}

#[test]
fn a_fixture_run_still_publishes_a_manifest_that_matches() {
    let sb = Sandbox::new();
    let mut cmd = sb.cmd();
    cmd.arg("--raw")
        .arg(fixture("user_events_20251119.csv"))
        .args(["--features", "out", "--execution-date", "2025-11-19"]);
    run(cmd).assert_code(0);
    assert_manifest_matches(local_reader(&sb.path("out")), VERSION);
}

/// Every file below `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.map_while(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// A small tmpfs mounted for one test (real `ENOSPC` / inode exhaustion), unmounted when
/// dropped. Needs root: without it the test says so and passes without checking.
struct Tmpfs {
    dir: std::path::PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, options: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(Tmpfs {
                dir: dir.to_path_buf(),
            }),
            other => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs to fill (needs root): {:?}",
                    other.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                );
                None
            }
        }
    }

    /// Fills the file system so that about `room` bytes stay free.
    fn fill_leaving(&self, room: u64) {
        let stat = std::process::Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.dir)
            .output()
            .unwrap();
        let avail: u64 = String::from_utf8_lossy(&stat.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let filler = avail.saturating_sub(room);
        std::fs::write(self.dir.join(".filler"), vec![0u8; filler as usize]).unwrap();
    }

    fn free(&self) {
        let _ = std::fs::remove_file(self.dir.join(".filler"));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

#[test]
fn on_a_server_whose_creates_are_not_atomic_at_most_one_run_keeps_a_lease() {
    use featurepipe::versions::lease::{Acquired, Lease};
    let server = S3Server::start_ignoring_if_none_match();
    let _bucket = Bucket::new(&server, "lake");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let holders = rt.block_on(async {
        let store = crate::support::s3_store(&server, "lake").await;
        let contenders = (0..8).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let ttl = Duration::from_secs(30);
                let acquired = Lease::acquire(store, "_leases/v", &format!("run-{i}"), ttl).await;
                match acquired.unwrap() {
                    Acquired::Held(lease) => Some(lease),
                    Acquired::Busy(_) => None,
                }
            })
        });
        let mut leases = Vec::new();
        for c in contenders.collect::<Vec<_>>() {
            leases.extend(c.await.unwrap());
        }
        // Every contender has tried; now who may still write?
        let mut still = 0;
        for lease in &leases {
            if lease.ensure_held().await.is_ok() {
                still += 1;
            }
        }
        still
    });
    assert!(holders <= 1, "{holders} runs may write the same version");
}
