//! Many raw files read as one input: `--raw` / `[source] path` as a glob or a folder
//! ending in `/`. The parts are listed (paginated on S3), read in key order, each with its
//! header checked and skipped and its own compression; the version is the one a single
//! file with the same rows gives. `min_files` and `require_marker` say when a drop is whole.

use std::io::Write;

use crate::support::{fixture, read_json, run, Bucket, S3Server, Sandbox, Target};

const V: &str = "v_20251119T000000";

/// `featurepipe run` writing under `out/features/daily_user_events` unless `--features`
/// says otherwise (a run has no default prefix).
fn run_cmd(sb: &Sandbox) -> assert_cmd::Command {
    let mut cmd = sb.cmd();
    cmd.env("DP_FEATURE_PATH", "out/features/daily_user_events");
    cmd
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// `raw` (header + rows) cut into `n` CSV files, each with the header, their rows in
/// order. Part `i` is named `part-0000i.csv`, gzipped (`.csv.gz`) when `i` is odd and
/// zstd-compressed (`.csv.zst`) when `i` is a multiple of 5 above 0.
fn split(raw: &[u8], n: usize) -> Vec<(String, Vec<u8>)> {
    let text = std::str::from_utf8(raw).unwrap();
    let (header, body) = text.split_once('\n').unwrap();
    let rows: Vec<&str> = body.split_inclusive('\n').collect();
    (0..n)
        .map(|i| {
            let chunk = &rows[i * rows.len() / n..(i + 1) * rows.len() / n];
            let plain = format!("{header}\n{}", chunk.concat()).into_bytes();
            if i % 5 == 0 && i > 0 {
                (
                    format!("part-{i:05}.csv.zst"),
                    zstd::stream::encode_all(&plain[..], 3).unwrap(),
                )
            } else if i % 2 == 1 {
                (format!("part-{i:05}.csv.gz"), gzip(&plain))
            } else {
                (format!("part-{i:05}.csv"), plain)
            }
        })
        .collect()
}

#[test]
fn parts_give_the_version_one_file_with_the_same_rows_gives() {
    let raw = std::fs::read(fixture("user_events_20251119.csv")).unwrap();
    let parts = split(&raw, 12);
    for target in Target::both() {
        let name = target.name();
        let one = target.raw("one/events.csv", &raw);
        for (part, body) in &parts {
            target.raw(&format!("2025-11-19/{part}"), body);
        }
        // What upstream writers leave beside their parts is never read as a part.
        target.raw("2025-11-19/_SUCCESS", b"");
        target.raw("2025-11-19/.part-00000.csv.crc", b"not csv");
        target.raw(
            "2025-11-19/_temporary/0/part-00099.csv",
            b"not,the,header\n",
        );
        let glob = target.raw_uri("{ds}/part-*");
        let folder = target.raw_uri("{ds}/");
        let config = fixture("pipelines/strict_daily_user_events.toml");
        for (raw_arg, prefix) in [(one.as_str(), "one"), (&glob, "glob"), (&folder, "folder")] {
            let mut cmd = target.cmd();
            cmd.arg("--config")
                .arg(&config)
                .args(["--raw", raw_arg, "--execution-date", "2025-11-19"])
                .args(["--features", &format!("{}/{prefix}", target.features())])
                .args(["--output-formats", "csv,parquet"]);
            if prefix != "one" {
                cmd.args(["--require-marker", "_SUCCESS"]);
            }
            run(cmd).assert_code(0);
        }
        for file in ["feature.csv", "feature.parquet"] {
            let want = target.read(&format!("one/{V}/{file}")).unwrap();
            for prefix in ["glob", "folder"] {
                assert!(
                    target.read(&format!("{prefix}/{V}/{file}")).unwrap() == want,
                    "{name}: {prefix}/{file} differs from the single file's"
                );
            }
        }
        let single = target.json(&format!("one/{V}/metadata.json"));
        let meta = target.json(&format!("glob/{V}/metadata.json"));
        // Every rule's result, failing lines included, is the single file's.
        assert_eq!(meta["validation"], single["validation"], "{name}");
        for key in [
            "rows_raw",
            "rows_feature",
            "raw_null_count",
            "raw_total_cells",
            "profile",
        ] {
            assert_eq!(meta[key], single[key], "{name}: {key}");
        }
        assert!(meta["source_raw_path"]
            .as_str()
            .unwrap()
            .ends_with("2025-11-19/part-*"));
        let files = meta["source"]["files"].as_array().unwrap();
        assert_eq!(
            files.len(),
            parts.len(),
            "{name}: hidden files are not parts"
        );
        for (file, (part, body)) in files.iter().zip(&parts) {
            assert!(file["path"]
                .as_str()
                .unwrap()
                .ends_with(&format!("2025-11-19/{part}")));
            assert_eq!(file["size_bytes"], body.len(), "{name} {part}");
            match target {
                Target::S3(..) => assert_eq!(
                    file["etag"].as_str().map(str::len),
                    Some(32),
                    "{name} {part}: the ETag"
                ),
                Target::Local(_) => assert!(file["etag"].is_null()),
            }
        }
        let total: usize = parts.iter().map(|(_, b)| b.len()).sum();
        assert_eq!(meta["source"]["size_bytes"], total, "{name}");
        assert_eq!(meta["source"]["compression"], "mixed", "{name}");
        assert!(single["source"].get("files").is_none(), "one file: no list");
    }
}

#[test]
fn a_part_with_another_header_fails_naming_both_parts() {
    let sb = Sandbox::new();
    sb.write("raw/part-0.csv", b"user_id,amount\n1,2\n");
    sb.write("raw/part-1.csv", b"user_id,amount\n3,4\n");
    sb.write("raw/part-2.csv.gz", &gzip(b"user_id,amt\n5,6\n"));
    let mut cmd = run_cmd(&sb);
    cmd.args(["--raw", "raw/part-*", "--execution-date", "2025-11-19"]);
    let out = run(cmd);
    out.assert_code(3);
    out.assert_error_mentions(
        "part-2.csv.gz does not have the header of part-0.csv (the first part): column 2 is \"amt\", not \"amount\"",
    );
    assert!(
        out.stderr.contains("error_kind=header_mismatch"),
        "{}",
        out.stderr
    );
    assert!(
        !sb.path(&format!("out/features/daily_user_events/{V}"))
            .exists(),
        "nothing published"
    );
}

#[test]
fn errors_name_the_part_and_its_own_line() {
    let sb = Sandbox::new();
    sb.write("raw/part-0.csv", b"a,b\n1,2\n3,4\n");
    sb.write("raw/part-1.csv", b"a,b\n5,6\n");
    sb.write("raw/part-2.csv.gz", &gzip(b"a,b\n7,8\n9,\"10\n11,12\n"));
    let mut cmd = run_cmd(&sb);
    cmd.args(["--raw", "raw/", "--execution-date", "2025-11-19"]);
    let out = run(cmd);
    out.assert_code(3);
    out.assert_error_mentions(
        "malformed CSV at part-2.csv.gz line 3: quoted field opened here is never closed",
    );

    // A truncated archive names its part too.
    let whole = gzip(b"a,b\n7,8\n");
    sb.write("raw/part-2.csv.gz", &whole[..whole.len() / 2]);
    let mut cmd = run_cmd(&sb);
    cmd.args(["--raw", "raw/", "--execution-date", "2025-11-19"]);
    let out = run(cmd);
    out.assert_code(3);
    out.assert_error_mentions("part-2.csv.gz is not valid gzip data");
}

#[test]
fn rule_failures_count_lines_as_in_the_parts_concatenated() {
    // Blank lines and a part with only its header move the numbering as they would in
    // one file: line 1 is the header, each part's rows follow the previous part's.
    let parts: [(&str, &[u8]); 4] = [
        ("p-0.csv", b"id,v\n1,\n2,x\n"),
        ("p-1.csv", b"id,v\n"),
        ("p-2.csv", b"id,v\n3,y\n\n4,\n"),
        ("p-3.csv", b"\nid,v\n5,\n"),
    ];
    let sb = Sandbox::new();
    let concatenated = b"id,v\n1,\n2,x\n3,y\n\n4,\n5,\n";
    for (name, body) in parts {
        sb.write(&format!("raw/{name}"), body);
    }
    sb.write("one.csv", concatenated);
    let rules = b"[[rules]]\nrule = \"not_null\"\ncolumn = \"v\"\nseverity = \"warn\"\n";
    let config = sb.write("p.toml", rules);
    for (raw, out) in [("raw/p-*.csv", "many"), ("one.csv", "one")] {
        let mut cmd = run_cmd(&sb);
        cmd.arg("--config").arg(&config).args([
            "--raw",
            raw,
            "--features",
            out,
            "--execution-date",
            "2025-11-19",
        ]);
        run(cmd).assert_code(0);
    }
    let failing = |out: &str| {
        read_json(&sb.path(&format!("{out}/{V}/metadata.json")))["validation"][0]["failing_lines"]
            .clone()
    };
    assert_eq!(failing("one"), serde_json::json!([2, 6, 7]));
    assert_eq!(failing("many"), failing("one"));
}

#[test]
fn a_drop_is_there_only_with_its_marker_and_enough_files() {
    let sb = Sandbox::new();
    sb.write("raw/2025-11-19/part-0.csv", b"a\n1\n");
    sb.write("raw/2025-11-19/part-1.csv", b"a\n2\n");
    let base = ["--raw", "raw/{ds}/", "--execution-date", "2025-11-19"];
    let attempt = |extra: &[&str], env: &[(&str, &str)]| {
        let mut cmd = run_cmd(&sb);
        cmd.args(base).args(extra);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(cmd)
    };
    let out = attempt(&["--require-marker", "_SUCCESS"], &[]);
    out.assert_code(4);
    out.assert_error_mentions("raw/2025-11-19/_SUCCESS is not there yet");
    attempt(&["--require-marker", "_SUCCESS", "--skip-if-missing"], &[]).assert_code(99);
    let out = attempt(&[], &[("DP_MIN_FILES", "3")]);
    out.assert_code(4);
    out.assert_error_mentions("matches 2 files, fewer than the 3 that DP_MIN_FILES asks for");
    attempt(&["--skip-if-missing"], &[("DP_MIN_FILES", "3")]).assert_code(99);
    assert!(
        !sb.path(&format!("out/features/daily_user_events/{V}"))
            .exists(),
        "nothing published while the drop is incomplete"
    );
    attempt(&[], &[]).assert_code(0);

    // The pipeline file says the same; its line is named.
    let config = sb.write(
        "p.toml",
        b"[source]\npath = \"raw/{ds}/part-*.csv\"\nmin_files = 3\nrequire_marker = \"_SUCCESS\"\n",
    );
    sb.write("raw/2025-11-19/_SUCCESS", b"");
    let mut cmd = run_cmd(&sb);
    cmd.arg("--config")
        .arg(&config)
        .args(["--execution-date", "2025-11-19", "--force"]);
    let out = run(cmd);
    out.assert_code(4);
    out.assert_error_mentions("p.toml line 3: [source] min_files");
    sb.write("raw/2025-11-19/part-2.csv", b"a\n3\n");
    let mut cmd = run_cmd(&sb);
    cmd.arg("--config")
        .arg(&config)
        .args(["--execution-date", "2025-11-19", "--force"]);
    run(cmd).assert_code(0);
    let meta = read_json(&sb.path(&format!("out/features/daily_user_events/{V}/metadata.json")));
    assert_eq!(meta["rows_raw"], 3);

    // min_files only means something for many files.
    let mut cmd = run_cmd(&sb);
    cmd.args(["--raw", "raw/2025-11-19/part-0.csv", "--min-files", "2"]);
    run(cmd)
        .assert_code(2)
        .assert_error_mentions("--min-files: min_files needs a raw path that names many files");
}

#[test]
fn more_than_a_thousand_parts_on_s3_are_all_read() {
    // s3s-fs answers ListObjectsV2 1000 keys at a time: 1 005 parts take two pages.
    let server = S3Server::start();
    let _bucket = Bucket::new(&server, "lake");
    let n = 1005;
    for i in 0..n {
        let path = server.object_path("lake", &format!("raw/2025-11-19/part-{i:05}.csv"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("user_id,amount\n{i},1.5\n")).unwrap();
    }
    let sb = Sandbox::new();
    let mut cmd = sb.s3_cmd(&server);
    cmd.args([
        "--raw",
        "s3://lake/raw/{ds}/part-*.csv",
        "--features",
        "s3://lake/features",
        "--execution-date",
        "2025-11-19",
    ]);
    let out = run(cmd);
    out.assert_code(0);
    assert!(out.stderr.contains("raw_files=1005"), "{}", out.stderr);
    let meta: serde_json::Value = serde_json::from_slice(
        &Bucket::new(&server, "lake")
            .get(&format!("features/{V}/metadata.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(meta["rows_raw"], n);
    let files = meta["source"]["files"].as_array().unwrap();
    assert_eq!(files.len(), n);
    assert!(files[n - 1]["path"]
        .as_str()
        .unwrap()
        .ends_with("part-01004.csv"));
}
