//! The `schema_change` rule: the raw header and the output columns against the previous
//! complete version's, with `allow = "none"` and `allow = "additive"`, passing and
//! failing, on both backends; its verdict in `validation` and the changes in `drift`.

use serde_json::Value;

use crate::support::{fixture, Output, Target};

const BASE: &str = "\
[[features.columns]]
name = \"user_id\"
column = \"user_id\"

[[features.columns]]
name = \"amount\"
column = \"amount\"
cast = \"float\"
";

/// [`BASE`] plus a column.
const ADDED: &str = "\
[[features.columns]]
name = \"user_id\"
column = \"user_id\"

[[features.columns]]
name = \"value\"
column = \"event_value\"
cast = \"float\"

[[features.columns]]
name = \"amount\"
column = \"amount\"
cast = \"float\"
";

/// [`BASE`] with `user_id` as an integer instead of a string.
const RETYPED: &str = "\
[[features.columns]]
name = \"user_id\"
column = \"user_id\"
cast = \"integer\"

[[features.columns]]
name = \"amount\"
column = \"amount\"
cast = \"float\"
";

/// Runs `date` with the fixture as raw input (`raw` overrides it), a `schema_change`
/// rule allowing `allow`, and `features`.
fn run(t: &Target, date: &str, allow: &str, features: &str, raw: Option<&[u8]>) -> Output {
    let config = t.sandbox().write(
        &format!("pipeline-{date}.toml"),
        format!(
            "timezone = \"UTC\"\n\n[[rules]]\nrule = \"min_rows\"\nvalue = 1\n\n\
             [[rules]]\nrule = \"schema_change\"\nallow = \"{allow}\"\n\n{features}"
        )
        .as_bytes(),
    );
    let body = match raw {
        Some(raw) => raw.to_vec(),
        None => std::fs::read(fixture("user_events_20251119.csv")).unwrap(),
    };
    let raw = t.raw(&format!("events_{date}.csv"), &body);
    t.run(&raw, date, &["--config", &config.display().to_string()])
}

fn version(date: &str) -> String {
    format!("v_{}T000000", date.replace('-', ""))
}

/// The `schema_change` entry of a version's `validation`.
fn verdict(t: &Target, date: &str) -> Value {
    let meta = t.json(&format!("{}/metadata.json", version(date)));
    meta["validation"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "schema_change")
        .cloned()
        .unwrap_or_else(|| panic!("no schema_change result: {meta}"))
}

/// A failed run: exit 3, the rule named, nothing of the version published.
fn assert_refused(t: &Target, out: &Output, date: &str) {
    out.assert_code(3);
    assert!(
        out.error_line().contains("schema_change"),
        "{}",
        out.error_line()
    );
    assert!(
        t.read(&format!("{}/_SUCCESS", version(date))).is_none(),
        "{}",
        t.name()
    );
    assert!(t
        .read(&format!("{}/metadata.json", version(date)))
        .is_none());
}

#[test]
fn allow_none_passes_an_unchanged_schema_and_refuses_any_change() {
    for t in Target::both() {
        // The first version has nothing to compare with: it passes.
        run(&t, "2025-11-17", "none", BASE, None).assert_code(0);
        let first = verdict(&t, "2025-11-17");
        assert_eq!(first["passed"], true);
        assert_eq!(first["observed"]["previous_version"], Value::Null);
        assert_eq!(first["threshold"]["allow"], "none");

        run(&t, "2025-11-18", "none", BASE, None).assert_code(0);
        let same = verdict(&t, "2025-11-18");
        assert_eq!(same["passed"], true, "{}: {same}", t.name());
        assert_eq!(same["observed"]["previous_version"], "v_20251117T000000");
        assert_eq!(same["observed"]["columns"]["added"], serde_json::json!([]));
        let drift = &t.json("v_20251118T000000/metadata.json")["drift"]["schema"];
        assert_eq!(drift["previous_version"], "v_20251117T000000");
        assert_eq!(drift["columns"]["reordered"], false);

        // An added output column, a retyped one, an added raw column: each refused.
        let added = run(&t, "2025-11-19", "none", ADDED, None);
        assert_refused(&t, &added, "2025-11-19");
        assert!(
            added.stderr.contains("rule=schema_change"),
            "{}",
            added.stderr
        );
        assert_refused(
            &t,
            &run(&t, "2025-11-19", "none", RETYPED, None),
            "2025-11-19",
        );
        let mut wider = std::fs::read(fixture("user_events_20251119.csv")).unwrap();
        wider = String::from_utf8(wider)
            .unwrap()
            .lines()
            .enumerate()
            .map(|(i, l)| format!("{l},{}\n", if i == 0 { "extra" } else { "x" }))
            .collect::<String>()
            .into_bytes();
        let header = run(&t, "2025-11-19", "none", BASE, Some(&wider));
        assert_refused(&t, &header, "2025-11-19");
        assert!(header.stderr.contains("extra"), "{}", header.stderr);
    }
}

#[test]
fn allow_additive_passes_new_columns_and_refuses_a_retype() {
    for t in Target::both() {
        run(&t, "2025-11-17", "additive", BASE, None).assert_code(0);
        run(&t, "2025-11-18", "additive", ADDED, None).assert_code(0);
        let grown = verdict(&t, "2025-11-18");
        assert_eq!(grown["passed"], true, "{}: {grown}", t.name());
        assert_eq!(
            grown["observed"]["columns"]["added"],
            serde_json::json!(["value"])
        );
        let drift = &t.json("v_20251118T000000/metadata.json")["drift"]["schema"];
        assert_eq!(drift["columns"]["added"], serde_json::json!(["value"]));

        // Against 11-18 (with `value`): dropping it again is a removal, refused.
        assert_refused(
            &t,
            &run(&t, "2025-11-19", "additive", BASE, None),
            "2025-11-19",
        );
        let retyped = run(&t, "2025-11-19", "additive", RETYPED, None);
        assert_refused(&t, &retyped, "2025-11-19");
        // A warn rule reports the same change and publishes.
        let config = t.sandbox().write(
            "warn.toml",
            format!(
                "timezone = \"UTC\"\n\n[[rules]]\nrule = \"schema_change\"\nallow = \"additive\"\n\
                 severity = \"warn\"\n\n{RETYPED}"
            )
            .as_bytes(),
        );
        let raw = t.raw(
            "events_warn.csv",
            &std::fs::read(fixture("user_events_20251119.csv")).unwrap(),
        );
        let warned = t.run(
            &raw,
            "2025-11-19",
            &["--config", &config.display().to_string()],
        );
        warned.assert_code(0);
        assert_eq!(warned.summary()["warnings"], "1");
        let seen = verdict(&t, "2025-11-19");
        assert_eq!(seen["passed"], false);
        assert_eq!(
            seen["observed"]["columns"]["retyped"][0]["column"],
            "user_id"
        );
        assert_eq!(seen["observed"]["columns"]["retyped"][0]["to"], "integer");
    }
}
