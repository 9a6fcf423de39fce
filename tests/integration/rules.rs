//! Every rule kind of a pipeline file, passing and failing, over one small raw file whose
//! failures are known line by line: observed counts, `failing_lines`, `mostly`, severity,
//! null tokens, and rules on columns the header lacks.

use serde_json::{json, Value};

use crate::support::{read_json, run_pipeline, Output, Sandbox};

/// Header on line 1; data rows on lines 2-6. `NULL` is a null token in these tests.
const RAW: &str = "\
id,user,kind,amount,ts,flag
1,u1,view,10,2025-11-19T00:00:00+09:00,true
2,u2,click,-5,2025-11-19 01:00:00,0
3,,buy,abc,not-a-time,maybe
3,u4,view,NULL,2025-11-19,1
5,u5,view,7.5,,false
";

/// Runs `rules` (TOML) over [`RAW`] with `NULL` as a null token.
fn run_rules(sb: &Sandbox, rules: &str) -> Output {
    run_pipeline(sb, RAW.as_bytes(), "null_tokens = [\"NULL\"]", rules)
}

fn validation(sb: &Sandbox) -> Vec<Value> {
    read_json(&sb.path("out/v_20251119T000000/metadata.json"))["validation"]
        .as_array()
        .unwrap()
        .clone()
}

/// `(rule TOML without severity, passed, failing_lines, observed fields to compare)`.
fn cases() -> Vec<(&'static str, bool, Vec<u64>, Value)> {
    vec![
        // --- column rules ---------------------------------------------------------
        ("rule = \"not_null\"\ncolumn = \"user\"", false, vec![4], json!({"checked": 5, "failed": 1})),
        ("rule = \"not_null\"\ncolumn = \"id\"", true, vec![], json!({"checked": 5, "failed": 0})),
        // NULL is a null token: amount has one null (line 5) of 5 rows.
        ("rule = \"max_null_rate\"\ncolumn = \"amount\"\nvalue = 0.2", true, vec![5], json!({"nulls": 1, "rows": 5})),
        ("rule = \"max_null_rate\"\ncolumn = \"ts\"\nvalue = 0.1", false, vec![6], json!({"nulls": 1, "rows": 5})),
        ("rule = \"unique\"\ncolumn = \"id\"", false, vec![5], json!({"checked": 5, "failed": 1})),
        ("rule = \"unique\"\ncolumns = [\"id\", \"user\"]", true, vec![], json!({"checked": 5, "failed": 0})),
        (
            "rule = \"allowed_values\"\ncolumn = \"kind\"\nvalues = [\"view\", \"click\"]",
            false,
            vec![4],
            json!({"checked": 5, "failed": 1}),
        ),
        (
            "rule = \"allowed_values\"\ncolumn = \"kind\"\nvalues = [\"view\", \"click\", \"buy\"]",
            true,
            vec![],
            json!({"checked": 5, "failed": 0}),
        ),
        // Value rules skip nulls: amount is checked on 4 rows (line 5 is NULL).
        ("rule = \"min\"\ncolumn = \"amount\"\nvalue = 0", false, vec![3, 4], json!({"checked": 4, "failed": 2})),
        ("rule = \"max\"\ncolumn = \"amount\"\nvalue = 9", false, vec![2, 4], json!({"checked": 4, "failed": 2})),
        ("rule = \"max\"\ncolumn = \"id\"\nvalue = 5", true, vec![], json!({"checked": 5, "failed": 0})),
        ("rule = \"regex\"\ncolumn = \"user\"\npattern = '^u[0-9]$'", true, vec![], json!({"checked": 4, "failed": 0})),
        ("rule = \"regex\"\ncolumn = \"user\"\npattern = '^u[12]$'", false, vec![5, 6], json!({"checked": 4, "failed": 2})),
        ("rule = \"timestamp\"\ncolumn = \"ts\"", false, vec![4], json!({"checked": 4, "failed": 1})),
        (
            "rule = \"timestamp\"\ncolumn = \"ts\"\nformat = \"%Y-%m-%d\"",
            false,
            vec![2, 3, 4],
            json!({"checked": 4, "failed": 3}),
        ),
        ("rule = \"numeric\"\ncolumn = \"amount\"", false, vec![4], json!({"checked": 4, "failed": 1})),
        ("rule = \"numeric\"\ncolumn = \"id\"", true, vec![], json!({"checked": 5, "failed": 0})),
        // --- table rules ----------------------------------------------------------
        (
            "rule = \"required_columns\"\ncolumns = [\"id\", \"flag\"]\ntypes = { id = \"integer\", flag = \"boolean\" }",
            false,
            vec![4],
            json!({"checked": 5, "failed": 1, "missing": []}),
        ),
        (
            "rule = \"required_columns\"\ncolumns = [\"id\", \"ts\"]\ntypes = { id = \"integer\" }",
            true,
            vec![],
            json!({"checked": 5, "failed": 0, "missing": []}),
        ),
        ("rule = \"required_columns\"\ncolumns = [\"id\", \"country\"]", false, vec![], json!({"missing": ["country"]})),
        ("rule = \"min_rows\"\nvalue = 6", false, vec![], json!(5)),
        ("rule = \"max_rows\"\nvalue = 10", true, vec![], json!(5)),
        // 3 null cells (user, amount NULL, ts) of 30.
        ("rule = \"max_null_rate\"\nvalue = 0.05", false, vec![], json!(0.1)),
        // --- a column the header lacks --------------------------------------------
        ("rule = \"not_null\"\ncolumn = \"country\"", false, vec![], json!({"missing_columns": ["country"]})),
    ]
}

#[test]
fn every_rule_kind_passes_and_fails_with_its_counts_and_failing_lines() {
    let sb = Sandbox::new();
    let cases = cases();
    let toml: String = cases
        .iter()
        .map(|(rule, ..)| format!("[[rules]]\n{rule}\nseverity = \"warn\"\n\n"))
        .collect();
    let out = run_rules(&sb, &toml);
    out.assert_code(0);
    let results = validation(&sb);
    assert_eq!(results.len(), cases.len());
    let failures = cases.iter().filter(|c| !c.1).count();
    assert_eq!(
        out.summary()["warnings"],
        failures.to_string(),
        "{}",
        out.stderr
    );
    for ((rule, passed, lines, observed), result) in cases.iter().zip(&results) {
        assert_eq!(result["passed"], *passed, "{rule}: {result}");
        if result.get("failing_lines").is_some() || !lines.is_empty() {
            assert_eq!(result["failing_lines"], json!(lines), "{rule}: {result}");
        }
        match observed {
            Value::Object(fields) => {
                for (k, v) in fields {
                    assert_eq!(&result["observed"][k], v, "{rule}: {k} in {result}");
                }
            }
            v => assert_eq!(&result["observed"], v, "{rule}: {result}"),
        }
        assert_eq!(result["severity"], "warn");
    }
    // One validate_data line per failed rule, naming rule and column.
    let rule_lines: Vec<_> = out
        .dp_lines()
        .into_iter()
        .filter(|l| l.iter().any(|(k, _)| k == "rule"))
        .collect();
    assert_eq!(rule_lines.len(), failures);
    assert!(rule_lines.iter().any(|l| {
        l.iter().any(|(k, v)| k == "rule" && v == "regex")
            && l.iter().any(|(k, v)| k == "column" && v == "user")
    }));
}

#[test]
fn mostly_sets_the_fraction_of_values_that_must_pass() {
    // user is null on 1 of 5 rows: passed fraction 0.8.
    for (mostly, passes) in [("0.8", true), ("0.81", false), ("1", false)] {
        let sb = Sandbox::new();
        let out = run_rules(
            &sb,
            &format!("[[rules]]\nrule = \"not_null\"\ncolumn = \"user\"\nmostly = {mostly}\n"),
        );
        if passes {
            out.assert_code(0);
            let r = &validation(&sb)[0];
            assert_eq!(r["passed"], true);
            assert_eq!(r["mostly"], mostly.parse::<f64>().unwrap());
            assert_eq!(r["observed"]["passed_fraction"], 0.8);
            assert_eq!(r["failing_lines"], json!([4]));
        } else {
            out.assert_code(3);
            assert!(out.error_line().contains("not_null"), "{}", out.stderr);
            assert!(!sb.path("out/v_20251119T000000/_SUCCESS").exists());
        }
    }
}

#[test]
fn an_error_rule_fails_the_run_and_lists_every_failed_rule() {
    let sb = Sandbox::new();
    let out = run_rules(
        &sb,
        "[[rules]]\nrule = \"unique\"\ncolumn = \"id\"\n\n\
         [[rules]]\nrule = \"numeric\"\ncolumn = \"amount\"\nseverity = \"warn\"\n\n\
         [[rules]]\nrule = \"allowed_values\"\ncolumn = \"kind\"\nvalues = [\"view\"]\n",
    );
    out.assert_code(3);
    // No early exit: both error rules are named; the warn rule is not a reason.
    let error = out.error_line();
    assert!(
        error.contains("unique") && error.contains("allowed_values"),
        "{error}"
    );
    assert!(!error.contains("numeric"), "{error}");
    let summary = out.summary();
    assert_eq!(summary["failed_step"], "validate_data");
    assert!(!sb.path("out/v_20251119T000000").join("_SUCCESS").exists());
    assert!(!sb.path("out/v_20251119T000000/feature.csv").exists());
}

#[test]
fn null_tokens_count_in_the_table_null_rate() {
    let sb = Sandbox::new();
    run_rules(&sb, "[[rules]]\nrule = \"min_rows\"\nvalue = 1\n").assert_code(0);
    let meta = read_json(&sb.path("out/v_20251119T000000/metadata.json"));
    // user (line 4), amount NULL (line 5), ts (line 6): 3 of 30 cells.
    assert_eq!(meta["raw_null_count"], 3);
    assert_eq!(meta["raw_total_cells"], 30);
}

#[test]
fn a_semicolon_delimited_source_reads_like_a_comma_one() {
    let sb = Sandbox::new();
    let body = RAW.replace(',', ";");
    run_pipeline(
        &sb,
        body.as_bytes(),
        "delimiter = \";\"",
        r#"
[[rules]]
rule = "unique"
column = "id"
severity = "warn"

[[features.columns]]
name = "kind"
column = "kind"

[[features.columns]]
name = "amount"
column = "amount"
cast = "float"
"#,
    )
    .assert_code(0);
    let csv = std::fs::read_to_string(sb.path("out/v_20251119T000000/feature.csv")).unwrap();
    // The output is always comma-separated; NULL is not a null token here, so it is text
    // that does not parse as a number.
    assert_eq!(
        csv,
        "kind,amount\r\nview,10.0\r\nclick,-5.0\r\nbuy,\r\nview,\r\nview,7.5\r\n"
    );
    assert_eq!(validation(&sb)[0]["failing_lines"], json!([5]));
}

#[test]
fn a_column_rule_on_an_empty_file_fails_instead_of_passing_unchecked() {
    let sb = Sandbox::new();
    let out = run_pipeline(
        &sb,
        b"",
        "",
        "[[rules]]\nrule = \"not_null\"\ncolumn = \"user\"\n",
    );
    out.assert_code(3);
    assert!(
        out.error_line().contains("not_null on user"),
        "{}",
        out.stderr
    );
    assert!(
        out.error_line().contains("missing_columns"),
        "{}",
        out.stderr
    );
}
