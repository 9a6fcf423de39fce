//! Two runs of one version at once publish exactly once; a killed holder's lease is taken
//! over after its expiry; `_latest` catches up after a run died before moving it.

use assert_cmd::Command;
use std::time::Duration;

use crate::support::{big_csv, fixture, run, signal_mid_pass, Output, S3Server, Sandbox, Target};

/// Starts `n` copies of the same run at once and waits for all of them.
fn race(t: &Target, raw: &str, n: usize) -> Vec<Output> {
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let mut cmd = t.cmd();
            cmd.args([
                "--raw",
                raw,
                "--features",
                &t.features(),
                "--execution-date",
                "2025-11-19",
            ]);
            std::thread::spawn(move || run(cmd))
        })
        .collect();
    threads.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn concurrent_runs_of_one_version_publish_exactly_once() {
    for t in Target::both() {
        // Big enough that the runs overlap for a while.
        let raw = t.raw("big.csv", &big_csv(24));
        let outs = race(&t, &raw, 3);
        let winners: Vec<_> = outs
            .iter()
            .filter(|o| o.summary()["status"] == "success")
            .collect();
        assert_eq!(
            winners.len(),
            1,
            "{}: exactly one run publishes; codes {:?}",
            t.name(),
            outs.iter().map(|o| o.code).collect::<Vec<_>>()
        );
        for loser in outs.iter().filter(|o| o.summary()["status"] != "success") {
            let s = loser.summary();
            // Either it saw the winner finish (0, skipped) or found it still writing (75).
            match loser.code {
                0 => assert_eq!(s["status"], "skipped"),
                75 => {
                    assert_eq!(s["error_kind"], "busy");
                    assert!(loser.error_line().contains("try again later"));
                }
                other => panic!("{}: loser exit {other}:\n{}", t.name(), loser.stderr),
            }
        }
        // What is published is the winner's, whole: the manifest matches the files.
        let manifest = t.json("v_20251119T000000/_SUCCESS");
        assert_eq!(manifest["run_id"], winners[0].summary()["run_id"].as_str());
        let feature = t.read("v_20251119T000000/feature.csv").unwrap();
        assert_eq!(
            manifest["files"]["feature.csv"]["size_bytes"],
            feature.len() as u64
        );
        assert_eq!(
            t.json("v_20251119T000000/metadata.json")["run_id"],
            manifest["run_id"]
        );
    }
}

#[test]
fn a_killed_holders_lease_blocks_until_it_expires_then_is_taken_over() {
    let sb = Sandbox::new();
    let raw = sb.write("raw.csv", &big_csv(120));
    let args = |cmd: &mut std::process::Command| {
        cmd.arg("--raw").arg(&raw).args([
            "--features",
            "out",
            "--execution-date",
            "2025-11-19",
            "--lease-ttl",
            "3",
        ]);
    };
    let mut holder = sb.std_cmd();
    args(&mut holder);
    let (code, _) = signal_mid_pass(holder, "KILL");
    assert_eq!(code, -1, "SIGKILL cannot be handled");
    assert!(!sb.path("out/v_20251119T000000/_SUCCESS").exists());

    // Right after: the dead holder's lease is still live, so the next run backs off.
    let mut next = sb.std_cmd();
    args(&mut next);
    let out = run(Command::from_std(next));
    out.assert_code(75);
    assert!(out.error_line().contains("is being written by run"));
    assert!(out.error_line().contains("--lease-ttl"));

    // After the expiry the next run takes over and completes the version.
    std::thread::sleep(Duration::from_secs(4));
    let mut after = sb.std_cmd();
    args(&mut after);
    run(Command::from_std(after)).assert_code(0);
    assert!(sb.path("out/v_20251119T000000/_SUCCESS").exists());
}

#[test]
fn a_version_completed_without_moving_latest_is_caught_up_by_the_next_run() {
    for t in Target::both() {
        let raw = t.raw(
            "a.csv",
            &std::fs::read(fixture("user_events_20251119.csv")).unwrap(),
        );
        t.run(&raw, "2025-11-19", &[]).assert_code(0);
        // As if the run was killed between `_SUCCESS` and `_latest`.
        t.write("_latest", b"{\"feature_version\": \"v_20251118T000000\", \"path\": \"x\", \"execution_date\": \"x\", \"run_id\": \"x\", \"updated_at\": \"x\"}");
        let again = t.run(&raw, "2025-11-19", &[]);
        again.assert_code(0);
        assert_eq!(again.summary()["reason"], "version_complete");
        assert_eq!(
            t.json("_latest")["feature_version"],
            "v_20251119T000000",
            "{}",
            t.name()
        );
    }
}

#[test]
fn a_server_that_ignores_if_none_match_is_named_in_a_warning() {
    // Such a server cannot keep two runs apart: the run still publishes, and says so.
    for (server, ignores) in [
        (S3Server::start(), false),
        (S3Server::start_ignoring_if_none_match(), true),
    ] {
        let t = Target::s3_on(server);
        let raw = t.raw(
            "a.csv",
            &std::fs::read(fixture("user_events_20251119.csv")).unwrap(),
        );
        let out = t.run(&raw, "2025-11-19", &[]);
        out.assert_code(0);
        let warned = out
            .stderr
            .lines()
            .any(|l| l.contains(" WARN ") && l.contains("If-None-Match: * ignored"));
        assert_eq!(warned, ignores, "{}", out.stderr);
        // The check's rewrite (where accepted) came before the release, not after it.
        let lease = t.json("_leases/v_20251119T000000/000000000001.json");
        assert_eq!(lease["released"], true, "{lease}");
        assert_eq!(lease["run_id"], out.summary()["run_id"].as_str());
    }
}
