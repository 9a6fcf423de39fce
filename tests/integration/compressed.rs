//! `.csv.gz` and `.csv.zst` raw inputs: streamed through a decompressor, same features
//! as the plain file, recorded in metadata; corrupt archives are invalid data (exit 3).

use std::io::Write;

use crate::support::{fixture, read_json, run, Bucket, Output, S3Server, Sandbox};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(bytes, 3).unwrap()
}

fn run_local(sb: &Sandbox, raw: &std::path::Path, out: &str) -> Output {
    let mut cmd = sb.cmd();
    cmd.arg("--raw")
        .arg(raw)
        .args(["--features", out, "--execution-date", "2025-11-19"]);
    run(cmd)
}

#[test]
fn gzip_and_zstd_inputs_give_the_same_features_as_plain() {
    let plain = std::fs::read(fixture("messy/quoted.csv")).unwrap();
    let sb = Sandbox::new();
    let p = sb.write("raw/plain.csv", &plain);
    run_local(&sb, &p, "plain").assert_code(0);
    let want = std::fs::read(sb.path("plain/v_20251119T000000/feature.csv")).unwrap();

    // Two gzip members back to back, as `cat a.gz b.gz` makes: both are read.
    let (head, tail) = plain.split_at(plain.len() / 2);
    let two_members = [gzip(head), gzip(tail)].concat();
    for (name, body, codec) in [
        ("raw/a.csv.gz", gzip(&plain), "gzip"),
        ("raw/b.csv.gz", two_members, "gzip"),
        ("raw/c.CSV.ZST", zstd(&plain), "zstd"),
    ] {
        let p = sb.write(name, &body);
        let out_dir = format!("out-{}", name.replace('/', "-"));
        run_local(&sb, &p, &out_dir).assert_code(0);
        let v = sb.path(&format!("{out_dir}/v_20251119T000000"));
        assert_eq!(
            std::fs::read(v.join("feature.csv")).unwrap(),
            want,
            "{name}"
        );
        let meta = read_json(&v.join("metadata.json"));
        assert_eq!(meta["source"]["compression"], codec, "{name}");
        assert_eq!(meta["source"]["csv_bytes"], plain.len(), "{name}");
        assert_eq!(meta["source"]["size_bytes"], body_len(&p), "{name}");
    }
}

fn body_len(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

#[test]
fn compressed_input_from_s3() {
    let server = S3Server::start();
    let bucket = Bucket::new(&server, "lake");
    let plain = std::fs::read(fixture("user_events_20251119.csv")).unwrap();
    bucket.put("raw/events.csv.zst", &zstd(&plain));
    let sb = Sandbox::new();
    let mut cmd = sb.s3_cmd(&server);
    cmd.args([
        "--raw",
        "s3://lake/raw/events.csv.zst",
        "--features",
        "s3://lake/f",
    ])
    .args(["--execution-date", "2025-11-19"]);
    let out = run(cmd);
    out.assert_code(0);
    assert_eq!(out.summary()["rows"], "300");
    let meta: serde_json::Value =
        serde_json::from_slice(&bucket.get("f/v_20251119T000000/metadata.json").unwrap()).unwrap();
    assert_eq!(meta["source"]["compression"], "zstd");
}

#[test]
fn corrupt_or_truncated_archives_are_invalid_data() {
    let plain = std::fs::read(fixture("user_events_20251119.csv")).unwrap();
    let gz = gzip(&plain);
    let zst = zstd(&plain);
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("not-really.csv.gz", plain.clone(), "gzip"),
        ("cut.csv.gz", gz[..gz.len() / 2].to_vec(), "gzip"),
        ("cut.csv.zst", zst[..zst.len() / 2].to_vec(), "zstd"),
    ];
    for (name, body, codec) in cases {
        let sb = Sandbox::new();
        let p = sb.write(name, &body);
        let out = run_local(&sb, &p, "out");
        out.assert_code(3);
        out.assert_error_mentions(codec);
        assert_eq!(out.summary()["error_kind"], "undecodable_input", "{name}");
        assert!(!sb.path("out/v_20251119T000000/_SUCCESS").exists());
        assert!(!sb.path("out/v_20251119T000000/feature.csv").exists());
    }
}
