//! `featurepipe gc` on both backends: a dry run deletes nothing; `--keep 2` keeps
//! `_latest` and one more and leaves a leased version alone; stale incomplete versions
//! and orphaned records go; and a backfill, a rewrite and gc racing on one prefix never
//! leave a complete version with files missing.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{big_csv, Output, Target};
use crate::version_commands::{publish, publish_six, toolkit, toolkit_json, version, BASE, SIX};

/// A live lease on `v` held by another run for the next hour.
fn hold_lease(t: &Target, v: &str) {
    let until = chrono::Utc::now() + chrono::Duration::hours(1);
    let record = json!({
        "run_id": "backfill-elsewhere", "host": "other-host", "pid": 4242,
        "acquired_at": chrono::Utc::now().to_rfc3339(),
        "expires_at": until.to_rfc3339(), "expires_at_ms": until.timestamp_millis(),
        "released": false
    });
    t.write(
        &format!("_leases/{v}/000000000009.json"),
        serde_json::to_vec(&record).unwrap().as_slice(),
    );
}

fn all_keys(t: &Target) -> BTreeSet<String> {
    t.list("").into_iter().collect()
}

/// The report's line for `v`.
fn line<'a>(report: &'a Value, v: &str) -> &'a Value {
    report["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["version"] == v)
        .unwrap_or_else(|| panic!("no line for {v}: {report}"))
}

#[test]
fn keep_two_keeps_latest_and_one_more_and_leaves_a_leased_version_alone() {
    for t in Target::both() {
        publish_six(&t);
        let leased = version(SIX[1]);
        hold_lease(&t, &leased);
        // A date whose runs all failed before writing anything: records only.
        t.write(
            "_runs/v_20251001T000000/20251001T000000Z-00000000.json",
            b"{\"status\": \"failed\"}",
        );

        let before = all_keys(&t);
        let dry = toolkit_json(&t, &["gc", "--keep", "2", "--dry-run", "--output", "json"]);
        assert_eq!(
            all_keys(&t),
            before,
            "{}: a dry run deleted something",
            t.name()
        );
        assert_eq!(dry["dry_run"], true);
        for v in [SIX[0], SIX[2], SIX[3]] {
            assert_eq!(
                line(&dry, &version(v))["action"],
                "would_delete",
                "{}",
                t.name()
            );
        }
        assert_eq!(line(&dry, &leased)["action"], "skipped");
        assert_eq!(line(&dry, "v_20251001T000000")["action"], "would_delete");
        assert_eq!(line(&dry, "v_20251001T000000")["state"], "orphan");
        assert_eq!(line(&dry, &version(SIX[4]))["action"], "keep");
        assert_eq!(line(&dry, &version(SIX[5]))["reason"], "named by _latest");
        assert_eq!(dry["versions_deleted"], 4);

        let out = toolkit(&t, &["gc", "--keep", "2", "--output", "json"]);
        out.assert_code(0);
        let report: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(report["dry_run"], false);
        assert_eq!(report["versions_deleted"], 4, "{report}");
        let leased_line = line(&report, &leased);
        assert_eq!(leased_line["action"], "skipped");
        assert!(leased_line["reason"]
            .as_str()
            .unwrap()
            .contains("backfill-elsewhere"));

        // Gone: the versions, their records and leases, the orphan's records.
        let after = all_keys(&t);
        for v in [SIX[0], SIX[2], SIX[3]].map(version) {
            assert!(
                !after.iter().any(|k| k.contains(&v)),
                "{}: {v} left {after:?}",
                t.name()
            );
        }
        assert!(!after.iter().any(|k| k.contains("v_20251001T000000")));
        // Kept whole: latest, the one before it, and the leased one.
        let listed = toolkit_json(&t, &["versions", "list", "--output", "json"]);
        let kept: Vec<&str> = listed["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_str().unwrap())
            .collect();
        assert_eq!(kept, [leased.as_str(), &version(SIX[4]), &version(SIX[5])]);
        assert!(listed["versions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["complete"] == true));
        assert_eq!(listed["latest"], version(SIX[5]));

        // What went adds up, and the report was filed.
        let deleted: usize = before.difference(&after).count();
        let filed = format!("_gc/{}.json", report["gc_id"].as_str().unwrap());
        assert!(after.contains(&filed), "{after:?}");
        assert_eq!(
            report["objects_deleted"].as_u64(),
            Some(deleted as u64),
            "{report}"
        );
        assert!(report["bytes_freed"].as_u64().unwrap() > 0);
        assert_eq!(t.json(&filed)["gc_id"], report["gc_id"]);

        // Again: nothing left to do but the leased one.
        let again = toolkit_json(&t, &["gc", "--keep", "2", "--output", "json"]);
        assert_eq!(again["versions_deleted"], 0);
    }
}

#[test]
fn incomplete_versions_go_after_the_grace_and_a_table_is_printed() {
    for t in Target::both() {
        publish(&t, "2025-11-18", 50, BASE);
        publish(&t, "2025-11-19", 60, BASE);
        // A killed run's leftovers.
        t.write("v_20251110T000000/feature.csv", b"user_id\r\n1\r\n");
        let fresh = toolkit_json(
            &t,
            &["gc", "--keep", "5", "--grace", "1h", "--output", "json"],
        );
        let l = line(&fresh, "v_20251110T000000");
        assert_eq!(
            (l["state"].as_str(), l["action"].as_str()),
            (Some("incomplete"), Some("keep"))
        );
        assert!(
            l["reason"].as_str().unwrap().contains("within --grace 1h"),
            "{l}"
        );

        std::thread::sleep(Duration::from_millis(2100));
        let table = toolkit(&t, &["gc", "--keep", "5", "--grace", "1s"]);
        table.assert_code(0);
        assert!(
            table
                .stdout
                .contains("v_20251110T000000  incomplete  deleted"),
            "{}",
            table.stdout
        );
        assert!(
            table.stdout.contains("deleted 1 version, 1 object, "),
            "{}",
            table.stdout
        );
        assert!(t.list("v_20251110T000000").is_empty());
        assert!(t.read("v_20251119T000000/_SUCCESS").is_some());

        // Without a policy it refuses to guess.
        toolkit(&t, &["gc"])
            .assert_code(2)
            .assert_error_mentions("--keep");
        toolkit(&t, &["gc", "--older-than", "30"]).assert_code(2);
    }
}

#[test]
fn a_prefix_that_holds_nothing_gets_no_report() {
    for t in Target::both() {
        // A mistyped prefix: nothing there, locally not even the folder.
        let out = toolkit(&t, &["gc", "--keep", "3"]);
        out.assert_code(0);
        assert!(
            out.stdout.contains("no report written"),
            "{}: {}",
            t.name(),
            out.stdout
        );
        assert!(
            out.stderr.contains("is this the right prefix?"),
            "{}: {}",
            t.name(),
            out.stderr
        );
        assert_eq!(t.list(""), Vec::<String>::new(), "{}", t.name());
        if let Target::Local(sb) = &t {
            assert!(!sb.path("features").exists(), "gc created the prefix");
        }
        let report = toolkit_json(&t, &["gc", "--keep", "3", "--output", "json"]);
        assert_eq!(report["filed"], Value::Null, "{}", t.name());

        // Once a run has written there, the report is filed and says where.
        publish(&t, "2025-11-19", 10, BASE);
        let report = toolkit_json(&t, &["gc", "--keep", "3", "--output", "json"]);
        let filed = report["filed"].as_str().unwrap_or_default().to_string();
        assert_eq!(
            filed,
            format!("_gc/{}.json", report["gc_id"].as_str().unwrap())
        );
        assert!(
            t.read(&filed).is_some(),
            "{}: {filed} not written",
            t.name()
        );
    }
}

/// Whenever a listed file of a version is missing, its `_SUCCESS` is already gone (or
/// names another run): no reader can ever take a half-deleted version for complete.
fn assert_never_complete_with_files_missing(t: &Target) {
    for key in t.list("") {
        let Some(v) = key.strip_suffix("/_SUCCESS") else {
            continue;
        };
        let Some(marker) = t.read(&key) else {
            continue; // deleted since listed
        };
        let Ok(manifest) = serde_json::from_slice::<Value>(&marker) else {
            continue;
        };
        let files = manifest["files"].as_object().cloned().unwrap_or_default();
        for (name, listed) in files {
            let body = t.read(&format!("{v}/{name}"));
            let whole = body.as_ref().map(|b| b.len() as u64) == listed["size_bytes"].as_u64();
            if !whole {
                let now: Option<Value> = t.read(&key).and_then(|b| serde_json::from_slice(&b).ok());
                assert!(
                    now.is_none_or(|m| m["run_id"] != manifest["run_id"]),
                    "{}: {v} has its _SUCCESS but {name} is missing or cut",
                    t.name()
                );
            }
        }
    }
}

#[test]
fn a_backfill_a_rewrite_and_gc_racing_never_lose_a_complete_version() {
    for t in Target::both() {
        for (i, date) in SIX[..4].iter().enumerate() {
            publish(&t, date, 80 + i, BASE);
        }
        let big = big_csv(6);
        t.raw("big_20251120.csv", &big);
        t.raw("big_20251121.csv", &big);
        let stop = AtomicBool::new(false);
        let backfill_done = AtomicBool::new(false);

        std::thread::scope(|s| {
            let backfill = s.spawn(|| {
                let range = ["--start", "2025-11-20", "--end", "2025-11-21"];
                let out = t.backfill("big_{ds_nodash}.csv", &range);
                backfill_done.store(true, Ordering::SeqCst);
                out
            });
            // A rewrite of a version gc wants gone.
            let rewrite = s.spawn(|| {
                let raw = t.raw_uri(&format!("events_{}.csv", SIX[1].replace('-', "")));
                t.run(&raw, SIX[1], &["--force"])
            });
            // gc over and over for as long as the backfill runs.
            let gcs = s.spawn(|| {
                let mut outs: Vec<Output> = Vec::new();
                while !backfill_done.load(Ordering::SeqCst) {
                    outs.push(toolkit(&t, &["gc", "--keep", "2", "--output", "json"]));
                    std::thread::sleep(Duration::from_millis(100));
                }
                outs
            });
            let checker = s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    assert_never_complete_with_files_missing(&t);
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
            let backfill = backfill.join().unwrap();
            let rewrite = rewrite.join().unwrap();
            let gcs = gcs.join().unwrap();
            stop.store(true, Ordering::Relaxed);
            checker.join().unwrap();

            backfill.assert_code(0);
            // The rewrite either ran (and gc may delete it later: it is old) or met gc
            // holding its lease (75, retry later).
            assert!(
                matches!(rewrite.code, 0 | 75),
                "{}: rewrite exit {}:\n{}",
                t.name(),
                rewrite.code,
                rewrite.stderr
            );
            assert!(
                gcs.len() >= 2,
                "{}: gc ran {} times during the backfill",
                t.name(),
                gcs.len()
            );
            for g in &gcs {
                g.assert_code(0);
            }
        });

        // Once everyone is done, one more gc: exactly the two newest remain, complete.
        toolkit(&t, &["gc", "--keep", "2"]).assert_code(0);
        assert_never_complete_with_files_missing(&t);
        let listed = toolkit_json(&t, &["versions", "list", "--output", "json"]);
        let left: Vec<(&str, bool)> = listed["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["version"].as_str().unwrap(),
                    v["complete"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            left,
            [("v_20251120T000000", true), ("v_20251121T000000", true)],
            "{}",
            t.name()
        );
        assert_eq!(listed["latest"], "v_20251121T000000");
    }
}
