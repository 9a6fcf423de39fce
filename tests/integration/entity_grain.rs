//! Entity grain's memory budget (`--memory-budget`, `DP_MEMORY_BUDGET`,
//! `[features] memory_budget`): a run whose keys fit completes; one whose keys do not
//! stops with exit 3 naming the budget, where it was set, how to raise it and the keys
//! seen; bad values are usage errors naming their origin.

use crate::support::{csv_lines, run, run_config, run_pipeline, Sandbox};

/// `keys` distinct users, each on two rows, the second row's day a different one.
fn many_keys(keys: usize) -> Vec<u8> {
    let mut raw = b"user_id,event_time,amount,kind\n".to_vec();
    for round in 0..2 {
        for k in 0..keys {
            raw.extend_from_slice(
                format!("user_{k:07},2025-11-19T0{round}:00:00+09:00,{k}.5,view\n").as_bytes(),
            );
        }
    }
    raw
}

const FEATURES: &str = "[features]
group_by = [\"user_id\"]
time_bucket = { column = \"event_time\", every = \"day\" }
{budget}

[[features.columns]]
name = \"events\"
agg = \"count\"

[[features.columns]]
name = \"amount\"
agg = \"sum\"
column = \"amount\"

[[features.columns]]
name = \"kinds\"
agg = \"count_distinct\"
column = \"kind\"

[[features.columns]]
name = \"last_kind\"
agg = \"last\"
column = \"kind\"
by = \"event_time\"
";

fn features(budget_line: &str) -> String {
    FEATURES.replace("{budget}", budget_line)
}

/// 100 000 keys: about 10 MiB of groups, far past 1 MiB, well within 64 MiB.
const KEYS: usize = 100_000;

#[test]
fn a_run_within_the_budget_completes_and_one_past_it_stops_with_exit_3() {
    let raw = many_keys(KEYS);

    // Within the budget (set in the pipeline file): every key is an output row.
    let sb = Sandbox::new();
    run_pipeline(&sb, &raw, "", &features("memory_budget = \"64MiB\"")).assert_code(0);
    let csv = std::fs::read(sb.path("out/v_20251119T000000/feature.csv")).unwrap();
    let lines = csv_lines(&csv);
    assert_eq!(lines.len(), KEYS + 1);
    assert_eq!(
        lines[1],
        "user_0000000,2025-11-19T00:00:00+09:00,2,1.0,1,view"
    );

    // Past it, set by the file: exit 3, nothing published, the message names the
    // budget, its line, the ways to raise it and the keys seen.
    let sb = Sandbox::new();
    let out = run_pipeline(&sb, &raw, "", &features("memory_budget = \"1MiB\""));
    out.assert_code(3)
        .assert_error_mentions("budget of 1.0 MiB (1048576 bytes, ")
        .assert_error_mentions("pipeline.toml line 11: [features] memory_budget")
        .assert_error_mentions("--memory-budget, DP_MEMORY_BUDGET or [features] memory_budget")
        .assert_error_mentions("keys (user_id, event_time_day)");
    assert!(
        out.stderr.contains("error_kind=memory_budget"),
        "its own kind, not a rule failure: {}",
        out.stderr
    );
    assert!(!sb.path("out/v_20251119T000000/feature.csv").exists());
    let keys: usize = out
        .error_line()
        .split("): ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no key count in: {}", out.error_line()));
    assert!(
        (1000..KEYS).contains(&keys),
        "keys seen before the stop: {keys}"
    );

    // The flag beats the file, and the variable beats it too.
    let config = sb.path("pipeline.toml");
    run_config(&sb, &config, "2025-11-19", &["--memory-budget", "64MiB"]).assert_code(0);
    let mut cmd = sb.cmd();
    cmd.arg("--config")
        .arg(&config)
        .args(["--execution-date", "2025-11-19", "--force"])
        .env("DP_MEMORY_BUDGET", "64MiB");
    run(cmd).assert_code(0);
    let mut cmd = sb.cmd();
    cmd.arg("--config")
        .arg(&config)
        .args(["--execution-date", "2025-11-19", "--force"])
        .env("DP_MEMORY_BUDGET", "2MiB");
    run(cmd)
        .assert_code(3)
        .assert_error_mentions("budget of 2.0 MiB (2097152 bytes, DP_MEMORY_BUDGET)");
}

#[test]
fn a_bad_budget_is_a_usage_error_naming_where_it_was_set() {
    let raw = many_keys(10);
    let sb = Sandbox::new();
    run_pipeline(&sb, &raw, "", &features("memory_budget = \"lots\""))
        .assert_code(2)
        .assert_error_mentions("pipeline.toml line 11: [features] memory_budget: \"lots\"");
    let config = sb.path("pipeline.toml");
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("\"lots\"", "\"1GiB\""),
    )
    .unwrap();
    run_config(&sb, &config, "2025-11-19", &["--memory-budget", "512"])
        .assert_code(2)
        .assert_error_mentions("--memory-budget: \"512\" is less than the smallest budget, 1MiB");

    // Row grain has no groups to bound: a budget in its [features] is a mistake.
    let sb = Sandbox::new();
    run_pipeline(
        &sb,
        &raw,
        "",
        "[features]\nmemory_budget = \"1GiB\"\n\n[[features.columns]]\nname = \"user_id\"\ncolumn = \"user_id\"\n",
    )
    .assert_code(2)
    .assert_error_mentions("memory_budget needs group_by");
}
