//! The newcomer's first minutes with the binary: `--version`, shell completions, the man
//! pages, every `--help` ending in examples, and `--output table|json` on the commands
//! that print a result (`run`, `check-config`).

use std::io::Write;
use std::path::Path;
use std::process::{Command as StdCommand, Stdio};

use clap::CommandFactory;
use serde_json::Value;

use crate::support::{fixture, run, run_config, Output, Sandbox};

/// Whether `program` can be started here (a shell or man tool that may be missing).
fn installed(program: &str) -> bool {
    StdCommand::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `program args` with `input` on stdin; returns (exit code, stdout, stderr).
fn pipe(program: &str, args: &[&str], input: &[u8], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut child = StdCommand::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn featurepipe(sb: &Sandbox, args: &[&str]) -> Output {
    let mut cmd = sb.cmd_for(args[0]);
    cmd.args(&args[1..]);
    run(cmd)
}

/// Every subcommand path: `run`, `versions`, `versions list`, ... (not `help`).
fn command_paths() -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, path: &[String], out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands() {
            let mut p = path.to_vec();
            p.push(sub.get_name().to_string());
            out.push(p.clone());
            walk(sub, &p, out);
        }
    }
    let mut out = Vec::new();
    walk(&featurepipe::cli::Cli::command(), &[], &mut out);
    out
}

#[test]
fn version_names_the_commit_and_the_build_day() {
    use featurepipe::build_info::{BUILD_DATE, GIT_COMMIT, VERSION};
    let sb = Sandbox::new();
    for flag in ["--version", "-V"] {
        let mut cmd = sb.cmd_for(flag);
        cmd.env("DP_LOG_FORMAT", "json");
        let out = run(cmd);
        out.assert_code(0);
        let line = out.stdout.trim_end();
        let expected = if GIT_COMMIT == "unknown" {
            format!("featurepipe {VERSION} ({BUILD_DATE})")
        } else {
            format!("featurepipe {VERSION} ({GIT_COMMIT} {BUILD_DATE})")
        };
        assert_eq!(line, expected);
        assert!(
            chrono::NaiveDate::parse_from_str(BUILD_DATE, "%Y-%m-%d").is_ok(),
            "{line}"
        );
    }
}

#[test]
fn the_bash_completion_script_parses_and_completes_commands_flags_and_values() {
    let sb = Sandbox::new();
    let out = featurepipe(&sb, &["completions", "bash"]);
    out.assert_code(0);
    let script = sb.write("featurepipe.bash", out.stdout.as_bytes());
    let syntax = StdCommand::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    for path in command_paths() {
        let name = path.last().unwrap();
        assert!(
            out.stdout.contains(name.as_str()),
            "no {name} in the script"
        );
    }
    // What a user's TAB gets: (words typed, what is offered).
    let cases: [(&[&str], &str); 5] = [
        (&["featurepipe", "ba"], "backfill"),
        (&["featurepipe", "ch"], "check-config"),
        (&["featurepipe", "versions", "s"], "show"),
        (
            &["featurepipe", "run", "--outp"],
            "--output --output-formats",
        ),
        (&["featurepipe", "run", "--output", ""], "table json"),
    ];
    for (words, offered) in cases {
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let n = words.len();
        let probe = format!(
            "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; _featurepipe featurepipe {} {}; \
             echo \"${{COMPREPLY[*]}}\"",
            script.display(),
            quoted.join(" "),
            n - 1,
            quoted[n - 1],
            quoted[n - 2],
        );
        let done = StdCommand::new("bash")
            .args(["-c", &probe])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&done.stdout).trim(),
            offered,
            "{words:?}: {}",
            String::from_utf8_lossy(&done.stderr)
        );
    }
}

#[test]
fn zsh_and_fish_scripts_name_every_command() {
    let sb = Sandbox::new();
    for (shell, head, check) in [
        ("zsh", "#compdef featurepipe", ["zsh", "-n"]),
        ("fish", "complete -c featurepipe", ["fish", "--no-execute"]),
    ] {
        let out = featurepipe(&sb, &["completions", shell]);
        out.assert_code(0);
        assert!(out.stdout.contains(head), "{shell}: {}", out.stdout);
        for path in command_paths() {
            let name = path.last().unwrap();
            assert!(out.stdout.contains(name.as_str()), "{shell}: no {name}");
        }
        assert!(out.stdout.contains("execution-date"), "{shell}");
        // Parsed by the shell itself where it is installed.
        if installed(check[0]) {
            let (code, _, err) = pipe(check[0], &check[1..], out.stdout.as_bytes(), &[]);
            assert_eq!(code, 0, "{shell}: {err}");
        }
    }
    // The shell may come from DP_COMPLETIONS_SHELL; an unknown one is a usage error.
    let mut cmd = sb.cmd_for("completions");
    cmd.env("DP_COMPLETIONS_SHELL", "fish");
    let out = run(cmd);
    out.assert_code(0);
    assert!(out.stdout.contains("complete -c featurepipe"));
    let out = featurepipe(&sb, &["completions", "tcsh"]);
    out.assert_code(2);
    out.assert_error_mentions("tcsh");
}

/// Checks a page: its title line, the sections, and (where groff and man are installed)
/// that groff reads it without a warning and man renders the examples one per line.
fn assert_renders(page: &str, title: &str, example: &str) {
    assert!(
        page.lines()
            .any(|l| l.starts_with(&format!(".TH {title} 1 "))),
        "no .TH {title} line:\n{page}"
    );
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH OPTIONS",
        ".SH \"NOTES AND EXAMPLES\"",
    ] {
        assert!(page.contains(section), "{title}: no {section}");
    }
    if installed("groff") {
        let (code, _, warnings) = pipe(
            "groff",
            &["-man", "-Tutf8", "-ww", "-z"],
            page.as_bytes(),
            &[],
        );
        assert_eq!((code, warnings.as_str()), (0, ""), "{title}");
    }
    if installed("man") {
        let (code, text, err) = pipe("man", &["-l", "-"], page.as_bytes(), &[("MANWIDTH", "200")]);
        assert_eq!(code, 0, "{title}: {err}");
        assert!(
            text.lines().any(|l| l.trim() == example),
            "{title}: the example {example:?} is not one line of:\n{text}"
        );
    }
}

#[test]
fn the_man_page_renders_and_out_dir_writes_one_page_per_command() {
    let sb = Sandbox::new();
    let out = featurepipe(&sb, &["man"]);
    out.assert_code(0);
    assert_renders(
        &out.stdout,
        "FEATUREPIPE",
        "featurepipe status --config fixtures/pipelines/daily_user_events.toml",
    );
    for path in command_paths() {
        if path.len() == 1 {
            let reference = format!("featurepipe\\-{}(1)", path[0].replace('-', "\\-"));
            assert!(out.stdout.contains(&reference), "no {reference}");
        }
    }

    std::fs::create_dir(sb.path("man1")).unwrap();
    let out = featurepipe(&sb, &["man", "--out-dir", "man1"]);
    out.assert_code(0);
    let written: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(written.len(), command_paths().len() + 1, "{}", out.stdout);
    for path in std::iter::once(vec![]).chain(command_paths()) {
        let name = std::iter::once("featurepipe".to_string())
            .chain(path)
            .collect::<Vec<_>>()
            .join("-");
        let file = format!("man1/{name}.1");
        assert!(written.contains(&file.as_str()), "{file} not listed");
        assert!(Path::new(&sb.path(&file)).is_file(), "{file} not written");
    }
    let run_page = std::fs::read_to_string(sb.path("man1/featurepipe-run.1")).unwrap();
    assert_renders(
        &run_page,
        "FEATUREPIPE-RUN",
        "featurepipe run --config fixtures/pipelines/daily_user_events.toml --execution-date 2025-11-19",
    );
    // Every flag with its variable.
    assert!(run_page.contains("DP_EXECUTION_DATE") && run_page.contains("DP_RUN_OUTPUT"));

    let mut cmd = sb.cmd_for("man");
    cmd.env("DP_MAN_OUT_DIR", "missing");
    let out = run(cmd);
    out.assert_code(2);
    out.assert_error_mentions("missing/featurepipe.1");
    out.assert_error_mentions("DP_MAN_OUT_DIR");
}

#[test]
fn every_help_ends_with_two_or_three_examples() {
    let sb = Sandbox::new();
    for path in std::iter::once(vec![]).chain(command_paths()) {
        if path.first().is_some_and(|p| p == "help") {
            continue;
        }
        let mut cmd = sb.cmd_for(&path.join(" "));
        cmd.arg("--help");
        let out = run(cmd);
        out.assert_code(0);
        let lines: Vec<&str> = out.stdout.lines().collect();
        let start = lines
            .iter()
            .rposition(|l| *l == "Examples:")
            .unwrap_or_else(|| panic!("featurepipe {path:?} --help has no examples"));
        // After it only examples: comments, commands, and their continuation lines.
        let mut examples = 0;
        let mut continued = false;
        for line in &lines[start + 1..] {
            let text = line.trim();
            if continued {
                continued = text.ends_with('\\');
                continue;
            }
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            assert!(
                line.starts_with("  ") && text.contains("featurepipe "),
                "featurepipe {path:?} --help: {line:?} after its examples"
            );
            examples += 1;
            continued = text.ends_with('\\');
        }
        assert!(
            (2..=3).contains(&examples),
            "featurepipe {path:?} --help ends with {examples} examples"
        );
    }
}

/// A sandbox with the bundled fixture and pipeline file, as in a checkout.
fn checkout() -> Sandbox {
    let sb = Sandbox::new();
    for rel in [
        "user_events_20251119.csv",
        "pipelines/daily_user_events.toml",
        "pipelines/daily_user_features.toml",
    ] {
        sb.write(
            &format!("fixtures/{rel}"),
            &std::fs::read(fixture(rel)).unwrap(),
        );
    }
    sb
}

/// The facts of a two-column table, by name.
fn facts(stdout: &str) -> std::collections::BTreeMap<String, String> {
    stdout
        .lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.split_once("  ")?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

#[test]
fn run_prints_json_by_default_and_a_table_on_request() {
    let sb = checkout();
    let config = sb.path("fixtures/pipelines/daily_user_events.toml");

    // A dry run's plan, as a table: what would be written, and the rules.
    let out = run_config(
        &sb,
        &config,
        "2025-11-19",
        &["--dry-run", "--output", "table"],
    );
    out.assert_code(0);
    let plan = facts(&out.stdout);
    assert_eq!(plan["action"], "publish", "{}", out.stdout);
    assert_eq!(plan["rows"], "300");
    assert_eq!(plan["valid"], "yes");
    assert!(out.stdout.contains("\nwould write\n"), "{}", out.stdout);
    assert!(out.stdout.contains("v_20251119T000000/feature.csv"));
    assert!(out.stdout.contains("\nvalidation\n"));
    assert!(!sb.path("out").exists(), "a dry run writes nothing");

    // The default stays one JSON line (Airflow's XCom and the cron wrapper read it).
    let out = run_config(&sb, &config, "2025-11-19", &[]);
    out.assert_code(0);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    assert_eq!(out.result()["rows"], 300);

    // DP_RUN_OUTPUT=table: the skip of a complete version, for a person.
    let mut cmd = sb.cmd();
    cmd.arg("--config")
        .arg(&config)
        .args(["--execution-date", "2025-11-19"])
        .env("DP_RUN_OUTPUT", "table");
    let out = run(cmd);
    out.assert_code(0);
    let result = facts(&out.stdout);
    assert_eq!(result["status"], "skipped", "{}", out.stdout);
    assert_eq!(result["skipped"], "version_complete");
    assert_eq!(result["exit code"], "0");

    // A forced rewrite, as a table: every fact and every rule.
    let out = run_config(
        &sb,
        &config,
        "2025-11-19",
        &["--force", "--output", "table"],
    );
    out.assert_code(0);
    let result = facts(&out.stdout);
    assert_eq!(result["status"], "success", "{}", out.stdout);
    assert_eq!(result["rows"], "300");
    assert_eq!(result["stored rows"], "300");
    assert_eq!(result["valid"], "yes");
    assert!(result["version"].ends_with("v_20251119T000000/"));
    let rules: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| *l != "validation")
        .skip(2)
        .collect();
    assert_eq!(rules.len(), 2, "{}", out.stdout);
    assert!(rules.iter().all(|r| r.contains(" yes ")), "{rules:?}");

    // A failed run's table names the error; stdout still carries one document.
    let out = run_config(
        &sb,
        &config,
        "2025-11-18",
        &["--output", "table", "--raw", "missing.csv"],
    );
    out.assert_code(4);
    let result = facts(&out.stdout);
    assert_eq!(result["status"], "failed", "{}", out.stdout);
    assert_eq!(result["failed step"], "extract_raw_data");
    assert!(result["error"].contains("missing.csv"), "{}", out.stdout);
}

#[test]
fn check_config_prints_json_by_default_and_a_table_on_request() {
    let sb = checkout();
    let file = "fixtures/pipelines/daily_user_features.toml";
    let out = featurepipe(&sb, &["check-config", file]);
    out.assert_code(0);
    let described: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(described["name"], "daily_user_features");

    let mut cmd = sb.cmd_for("check-config");
    cmd.arg(file).env("DP_CHECK_CONFIG_OUTPUT", "table");
    let out = run(cmd);
    out.assert_code(0);
    let head = facts(&out.stdout);
    assert_eq!(head["pipeline"], "daily_user_features", "{}", out.stdout);
    assert_eq!(head["grain"], "entity");
    assert_eq!(head["feature prefix"], "out/features/daily_user_features");
    assert!(out.stdout.contains("\n2 rules\n"), "{}", out.stdout);
    assert!(
        out.stdout.contains("\n10 output columns\n"),
        "{}",
        out.stdout
    );
    let row = |name: &str| {
        out.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} row:\n{}", out.stdout))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("not_null"),
        ["not_null", "user_id", "error", "0", "0.95"]
    );
    assert_eq!(row("user_id"), ["user_id", "string", "key=true"]);
    assert_eq!(
        row("amount_sum"),
        ["amount_sum", "float", "agg=sum", "column=amount"]
    );

    // One rule reads "1 rule"; a file without paths says where to give them.
    sb.write(
        "one.toml",
        b"name = \"one\"\n\n[[rules]]\nrule = \"min_rows\"\nvalue = 1\n",
    );
    let out = featurepipe(&sb, &["check-config", "one.toml", "--output", "table"]);
    out.assert_code(0);
    assert!(out.stdout.contains("\n1 rule\n"), "{}", out.stdout);
    assert!(facts(&out.stdout)["raw path"].starts_with("not set"));
}
