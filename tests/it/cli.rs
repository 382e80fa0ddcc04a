//! End-to-end tests of the `trellis` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn trellis(args: &[&str], config: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trellis"));
    cmd.args(args)
        .current_dir(repo())
        .env_remove("TRELLIS_CONFIG");
    for (k, _) in std::env::vars() {
        if k.starts_with("TRELLIS__") {
            cmd.env_remove(k);
        }
    }
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.output().expect("run trellis")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes a config into `dir` that uses the repo's controls and examples, with `extra` YAML
/// replacing the sources section.
fn config_with_sources(dir: &Path, sources: &str) -> PathBuf {
    let r = repo();
    let text = format!(
        "database_url: \"sqlite://{db}?mode=rwc\"\ncontrols_dir: {controls}\nsources:\n{sources}\n",
        db = dir.join("t.db").display(),
        controls = r.join("controls").display(),
    );
    let path = dir.join("trellis.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A config in `dir` with the example roster and policies as its only sources.
fn example_hr_and_policies(dir: &Path) -> PathBuf {
    let r = repo();
    config_with_sources(
        dir,
        &format!(
            "  hr:\n    path: {}\n  policies:\n    path: {}\n",
            r.join("examples/roster.csv").display(),
            r.join("examples/policies").display()
        ),
    )
}

#[test]
fn validate_accepts_the_shipped_catalog() {
    let out = trellis(&["validate"], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("controls valid"), "{}", stdout(&out));
}

#[test]
fn validate_reports_one_located_error_per_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = repo().join("tests/fixtures/broken-controls");
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, format!("controls_dir: {}\n", fixtures.display())).unwrap();
    let out = trellis(&["validate"], Some(&cfg));
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out).replace(&format!("{}/", fixtures.display()), "");
    let lines: Vec<&str> = text.lines().collect();
    // (file:line:col, message fragment) — one per problem, in path order.
    let expected: &[(&str, &str)] = &[
        (
            "a/bad-cron.yaml:7:11",
            "schedule: invalid schedule `0 25 * * *`",
        ),
        (
            "a/bad-date.yaml:9:11",
            "checks[0].with: invalid parameters for probe `hr.people`: started_on_or_after: input is out of range",
        ),
        (
            "a/bad-expect.yaml:10:13",
            "checks[0].expect: unknown variant `most`",
        ),
        (
            "a/bad-freshness.yaml:7:12",
            "freshness: invalid duration `soon`",
        ),
        (
            "a/bad-param.yaml:9:11",
            "checks[0].with: invalid parameters for probe `hr.people`",
        ),
        (
            "a/bad-severity.yaml:6:11",
            "severity: unknown variant `urgent`",
        ),
        (
            "a/bad-yaml.yaml:3:1",
            "invalid indentation in multiline quoted scalar",
        ),
        (
            "a/cel-syntax.yaml:9:13",
            "checks[0].assert: cel syntax error at column",
        ),
        (
            "a/id-mismatch.yaml:1:5",
            "id: `id-mismatched` does not match the file name `id-mismatch`",
        ),
        (
            "a/no-checks.yaml:1:5",
            "checks: a control needs at least one check",
        ),
        (
            "a/system-claim-policy-only.yaml:5:8",
            "claim: a `system` claim needs at least one check on a `system` probe, which reads the system itself",
        ),
        (
            "a/unknown-attribute.yaml:9:13",
            "checks[0].assert: unknown attribute `background_check_dat`",
        ),
        ("a/unknown-field.yaml:6:1", "unknown field `owners`"),
        (
            "a/unknown-probe.yaml:8:12",
            "checks[0].probe: unknown probe `hr.peeple`",
        ),
        (
            "b/dup.yaml:1:5",
            "id: duplicate control id `dup` (first defined at",
        ),
    ];
    assert_eq!(lines.len(), expected.len(), "one line per problem:\n{text}");
    for (line, (place, fragment)) in lines.iter().zip(expected) {
        assert!(line.starts_with(place), "expected {place}…, got: {line}");
        assert!(line.contains(fragment), "expected `{fragment}` in: {line}");
    }
    assert!(
        stderr(&out).contains("15 problem(s) found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_json_on_the_example_config_has_the_documented_shape() {
    let out = trellis(
        &[
            "check",
            "--no-store",
            "--format",
            "json",
            "--as-of",
            EXAMPLE_NOW,
        ],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "planted violations fail: {}",
        stderr(&out)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    for key in ["started_at", "finished_at", "controls"] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    let controls = v["controls"].as_array().unwrap();
    assert!(controls.len() >= 20, "{}", controls.len());
    for c in controls {
        for key in ["id", "title", "category", "status", "summary", "findings"] {
            assert!(c.get(key).is_some(), "control missing {key}: {c}");
        }
        for f in c["findings"].as_array().unwrap() {
            for key in ["resource", "status", "message", "actual"] {
                assert!(f.get(key).is_some(), "finding missing {key}: {f}");
            }
        }
        // The example config has the HR roster, policies and registers, not AWS or GitHub:
        // their controls are `error` saying so (shown as "not verified"), as are system
        // claims that no probe of this version reads; nothing else errors.
        let summary = c["summary"].as_str().unwrap();
        if summary.contains("is not configured")
            || summary.contains("is not available in this version")
        {
            assert_eq!(c["status"], "error", "{c}");
        } else {
            assert_ne!(c["status"], "error", "{c}");
        }
    }
    let control = |id: &str| {
        controls
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no control {id}"))
    };
    let failing = |id: &str| -> Vec<String> {
        control(id)["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["status"] == "fail")
            .map(|f| f["message"].as_str().unwrap().to_string())
            .collect()
    };
    // The planted violations of examples/README.md, each naming the person.
    for (id, person) in PLANTED {
        assert_eq!(control(id)["status"], "fail", "{id}");
        let msgs = failing(id);
        assert!(
            msgs.iter().any(|m| m.contains(person)),
            "{id}: {person} not in {msgs:?}"
        );
    }
    assert_eq!(
        control("performance-review-policy")["status"],
        "fail",
        "missing document"
    );
    assert_eq!(
        control("physical-security-policy")["status"],
        "fail",
        "overdue review"
    );
    assert_eq!(control("information-security-policy")["status"], "pass");
}

/// The day the example data describes (examples/README.md): evaluating as of then keeps these
/// tests independent of the calendar.
const EXAMPLE_NOW: &str = "2026-11-22T12:00:00Z";

#[test]
fn as_of_moves_the_clock_and_never_stores() {
    let run = |as_of: &str| {
        let out = trellis(
            &[
                "check",
                "--no-store",
                "--format",
                "json",
                "--control",
                "security-awareness-training",
                "--as-of",
                as_of,
            ],
            None,
        );
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
        assert_eq!(v["started_at"], format!("{}T00:00:00Z", &as_of[..10]));
        v["controls"][0]["summary"].as_str().unwrap().to_string()
    };
    // One planted overdue training on the example day; a year later, everyone is overdue.
    assert!(
        run("2026-11-22").contains(", 1 fail"),
        "{}",
        run("2026-11-22")
    );
    assert!(!run("2027-11-22").contains(", 1 fail"));
    let out = trellis(&["check", "--as-of", "2026-11-22"], None);
    assert_eq!(out.status.code(), Some(2), "--as-of without --no-store");
    let out = trellis(&["check", "--no-store", "--as-of", "yesterday"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not an RFC 3339 time"),
        "{}",
        stderr(&out)
    );
}

/// Control id and the person planted to fail it (examples/README.md).
const PLANTED: &[(&str, &str)] = &[
    ("background-checks", "Jamal Carter"),
    ("background-checks", "Chloé Dubois"),
    ("new-hire-screening", "Jamal Carter"),
    ("new-hire-screening", "Diego Ramírez"),
    ("security-awareness-training", "Isabella Rossi"),
    ("personnel-acknowledge-security-policies", "Tyler Nguyen"),
    ("performance-reviews", "Olivia Brooks"),
];

#[test]
fn an_unreadable_roster_makes_hr_controls_error_not_pass() {
    let dir = tempfile::tempdir().unwrap();
    let policies = repo().join("examples/policies");
    for roster in ["does-not-exist.csv", "."] {
        let cfg = config_with_sources(
            dir.path(),
            &format!(
                "  hr:\n    path: {}\n  policies:\n    path: {}\n",
                dir.path().join(roster).display(),
                policies.display()
            ),
        );
        let out = trellis(
            &[
                "check",
                "--no-store",
                "--format",
                "json",
                "--control",
                "background-checks",
                "--control",
                "security-awareness-training",
            ],
            Some(&cfg),
        );
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for c in v["controls"].as_array().unwrap() {
            assert_eq!(c["status"], "error", "{c}");
            assert!(
                c["summary"]
                    .as_str()
                    .unwrap()
                    .contains("cannot read HR roster"),
                "{c}"
            );
        }
    }
}

#[test]
fn a_malformed_roster_row_is_an_error_naming_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("roster.csv");
    std::fs::write(
        &roster,
        "employee_id,name,email,start_date,background_check_date\nE1,Ann,ann@x.io,2024-01-01,2024-01-01\nE2,Bo,bo@x.io,2024-31-01,\n",
    )
    .unwrap();
    let cfg = config_with_sources(
        dir.path(),
        &format!("  hr:\n    path: {}\n", roster.display()),
    );
    let out = trellis(
        &[
            "check",
            "--no-store",
            "--format",
            "json",
            "--control",
            "background-checks",
        ],
        Some(&cfg),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &v["controls"][0];
    assert_eq!(c["status"], "error");
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .contains("roster.csv:3: start_date: invalid date `2024-31-01`"),
        "{c}"
    );
}

#[test]
fn unconfigured_sources_are_errors_naming_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with_sources(dir.path(), "  {}");
    let out = trellis(&["check", "--no-store", "--format", "json"], Some(&cfg));
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for c in v["controls"].as_array().unwrap() {
        assert_eq!(c["status"], "error", "{c}");
        assert!(
            c["summary"].as_str().unwrap().contains("is not configured"),
            "{c}"
        );
    }
}

#[test]
fn check_stores_results_unless_no_store() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = example_hr_and_policies(dir.path());
    let out = trellis(
        &["check", "--no-store", "--control", "background-checks"],
        Some(&cfg),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        !dir.path().join("t.db").exists(),
        "--no-store wrote a database"
    );
    let out = trellis(&["check", "--control", "background-checks"], Some(&cfg));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(dir.path().join("t.db").exists());
    let table = stdout(&out);
    assert!(
        table.contains("background-checks") && table.contains("fail"),
        "{table}"
    );
}

#[test]
fn usage_and_config_errors_exit_2() {
    let out = trellis(&["check", "--format", "yaml"], None);
    assert_eq!(out.status.code(), Some(2));
    let out = trellis(
        &["check", "--control", "no-such-control", "--no-store"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown control `no-such-control`"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.yaml");
    std::fs::write(&cfg, "server:\n  bind: x\n  port: 1\n").unwrap();
    let out = trellis(&["validate"], Some(&cfg));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bad.yaml:3:3: server: unknown field `port`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn committed_schema_is_current() {
    let committed = std::fs::read_to_string(repo().join("controls/schema.json")).unwrap();
    let current = serde_json::to_string_pretty(&trellis::catalog::json_schema()).unwrap() + "\n";
    assert!(
        committed == current,
        "controls/schema.json is out of date: run `cargo run -- schema --out controls/schema.json`"
    );
    let out = trellis(&["schema"], None);
    assert_eq!(stdout(&out), current);
}

#[test]
fn committed_register_and_exception_schemas_are_current() {
    let mut formats: Vec<(String, PathBuf)> =
        vec![("exceptions".into(), repo().join("schemas/exceptions.json"))];
    for (name, _) in trellis::registers::schemas() {
        formats.push((
            name.into(),
            repo().join(format!("schemas/registers/{name}.json")),
        ));
    }
    for (of, path) in formats {
        let committed =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let current =
            serde_json::to_string_pretty(&trellis::cli::schema_of(&of).unwrap()).unwrap() + "\n";
        assert!(
            committed == current,
            "{} is out of date: run `cargo run -- schema --of {of} --out {}`",
            path.display(),
            path.display()
        );
    }
}

#[test]
fn validate_reports_broken_exceptions_and_registers_with_locations() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("exceptions")).unwrap();
    std::fs::create_dir_all(d.join("registers")).unwrap();
    std::fs::write(
        d.join("exceptions/a.yaml"),
        "exceptions:\n  - id: EXC-9\n    control: no-such-control\n    resources: [x]\n    reason: r\n    owner: o\n    ticket: T\n    expires_on: 2026-12-01\n",
    )
    .unwrap();
    std::fs::write(
        d.join("exceptions/b.yaml"),
        "exceptions:\n  - id: EXC-10\n    control: background-checks\n    resources: [x]\n    reason: r\n    owner: o\n    ticket: T\n",
    )
    .unwrap();
    std::fs::write(
        d.join("registers/risks.yaml"),
        "risks:\n  - id: R-1\n    title: t\n    owner: o\n    likelihood: low\n    impact: low\n    treatment: mitigate\n    controls: [no-such-control]\n    reviewed_on: 2026-01-01\n",
    )
    .unwrap();
    std::fs::write(
        d.join("registers/insurance.yaml"),
        "insurance:\n  - carrier: C\n    coverage: cyber\n    limit: x\n    starts: 2026-01-01\n    expires: soon\n",
    )
    .unwrap();
    let cfg = d.join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "controls_dir: {}\nexceptions_dir: exceptions\nsources:\n  registers:\n    path: registers\n",
            repo().join("controls").display()
        ),
    )
    .unwrap();
    let out = trellis(&["validate"], Some(&cfg));
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out).replace(&format!("{}/", d.display()), "");
    for want in [
        "exceptions/a.yaml:3:14: exceptions[0].control: unknown control `no-such-control`",
        "exceptions/b.yaml:7:5: exceptions[0]: missing field `expires_on`",
        "registers/insurance.yaml:6:14: insurance[0].expires:",
    ] {
        assert!(text.contains(want), "expected `{want}` in:\n{text}");
    }
    // A register whose control references cannot be checked until the catalog loads cleanly;
    // the unknown control id is reported once the exceptions are fixed.
    std::fs::remove_file(d.join("exceptions/a.yaml")).unwrap();
    std::fs::remove_file(d.join("exceptions/b.yaml")).unwrap();
    std::fs::write(d.join("registers/insurance.yaml"), "insurance: []\n").unwrap();
    let out = trellis(&["validate"], Some(&cfg));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains(
            "risks.yaml:8:16: risks[0].controls[0]: unknown control `no-such-control` (risk R-1)"
        ),
        "{}",
        stdout(&out)
    );
}

/// `validate` reads the roster and the policies with the probes' parsers: every bad row and
/// field, located; every recorded date ahead of today, a warning that does not fail it; every
/// register file missing, a problem.
#[test]
fn validate_reports_every_bad_roster_row_and_policy_field_and_warns_about_dates_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let today = chrono::Utc::now().date_naive();
    let ahead = today + chrono::Days::new(30);
    let header =
        "employee_id,name,email,start_date,end_date,security_training_date,policy_ack_date";
    let good = format!(
        "{header}\nE1,Ann,ann@x.io,2024-01-01,,2026-01-05,2026-01-05\nE2,Bo,bo@x.io,2024-01-01,{ahead},{ahead},2026-01-05\n"
    );
    let bad = format!(
        "{good}E3,Cy,cy@x.io,2024-01-01\nE4,,di@x.io,2024-01-01,,,\nE5,Ed,ed@x.io,2024-31-01,,,soon\nE1,Fay,fay@x.io,2024-01-01,,,\n"
    );
    std::fs::write(d.join("roster.csv"), &bad).unwrap();
    std::fs::create_dir(d.join("policies")).unwrap();
    std::fs::write(
        d.join("policies/current.md"),
        format!("---\ntitle: Current\napproved_by: CEO\napproved_on: {ahead}\nreview_interval: 1y\n---\nbody\n"),
    )
    .unwrap();
    std::fs::write(
        d.join("policies/broken.md"),
        "---\ntitle: Broken\napproved_on: 2026-02-30\nreview_interval: 1y\n---\nbody\n",
    )
    .unwrap();
    std::fs::write(
        d.join("policies/unknown.md"),
        "---\ntitle: Unknown\nreview_interval: 1y\napprover: CEO\n---\nbody\n",
    )
    .unwrap();
    std::fs::create_dir(d.join("registers")).unwrap();
    for name in [
        "vendors",
        "risks",
        "incidents",
        "exercises",
        "meetings",
        "insurance",
        "access_reviews",
        "service_accounts",
    ] {
        std::fs::write(
            d.join(format!("registers/{name}.yaml")),
            format!("{name}: []\n"),
        )
        .unwrap();
    }
    let cfg = d.join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "controls_dir: {}\nexceptions_dir: none\nsources:\n  hr:\n    path: roster.csv\n  policies:\n    path: policies\n  registers:\n    path: registers\n",
            repo().join("controls").display()
        ),
    )
    .unwrap();
    let out = trellis(&["validate"], Some(&cfg));
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let prefix = format!("{}/", d.display());
    let text = stdout(&out).replace(&prefix, "");
    let lines: Vec<&str> = text.lines().collect();
    let expected = [
        "registers/devices.yaml: register file not found (the checks reading `devices` are errors until it exists): a register with nothing in it is written `devices: []`",
        "roster.csv:4: expected 7 fields, found 4",
        "roster.csv:5: name: required value is empty",
        "roster.csv:6: start_date: invalid date `2024-31-01` (expected YYYY-MM-DD)",
        "roster.csv:6: policy_ack_date: invalid date `soon` (expected YYYY-MM-DD)",
        "roster.csv:7: employee_id: duplicate id `E1` (first on line 2)",
        "policies/broken.md:3:",
        "policies/unknown.md:4:1: unknown field `approver`",
    ];
    assert_eq!(lines.len(), expected.len(), "one line per problem:\n{text}");
    for (line, want) in lines.iter().zip(expected) {
        assert!(line.starts_with(want), "expected `{want}`…, got: {line}");
    }
    assert!(lines[6].contains("approved_on"), "{}", lines[6]);
    let warnings = stderr(&out).replace(&prefix, "");
    for want in [
        format!(
            "warning: roster.csv:3: security_training_date: {ahead} is after today ({today}): until then it is unknown, and the checks reading it are errors"
        ),
        format!("warning: policies/current.md:4:14: approved_on: {ahead} is after today ({today})"),
    ] {
        assert!(
            warnings.contains(&want),
            "expected `{want}` in:\n{warnings}"
        );
    }
    // A leaving date ahead is a schedule, not a record: no warning.
    assert!(!warnings.contains("end_date"), "{warnings}");
    assert!(warnings.contains("8 problem(s) found"), "{warnings}");

    // Fixed, it passes: the dates ahead are warnings, not problems.
    std::fs::write(d.join("roster.csv"), &good).unwrap();
    std::fs::remove_file(d.join("policies/broken.md")).unwrap();
    std::fs::remove_file(d.join("policies/unknown.md")).unwrap();
    std::fs::write(d.join("registers/devices.yaml"), "devices: []\n").unwrap();
    let out = trellis(&["validate"], Some(&cfg));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out)
            .contains("registers valid, roster valid (2 people), policies valid (1 document)"),
        "{}",
        stdout(&out)
    );
    let warnings = stderr(&out).replace(&prefix, "");
    assert_eq!(warnings.matches("is after today").count(), 2, "{warnings}");
}

/// `validate` names a roster or policies folder that the configuration names but that is
/// missing.
#[test]
fn validate_reports_a_missing_roster_and_policies_folder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = d.join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "controls_dir: {}\nexceptions_dir: none\nsources:\n  hr:\n    path: roster.csv\n  policies:\n    path: policies\n",
            repo().join("controls").display()
        ),
    )
    .unwrap();
    let out = trellis(&["validate"], Some(&cfg));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stdout(&out);
    for want in [
        format!(
            "{}: cannot read the HR roster: ",
            d.join("roster.csv").display()
        ),
        format!(
            "{}: cannot read the policies folder: ",
            d.join("policies").display()
        ),
    ] {
        assert!(text.contains(&want), "expected `{want}` in:\n{text}");
    }
}

/// `trellis verify` on a store where a closed run lost its signature: exit 1, naming the run.
/// A run is signed as it closes, so only a run still running may lack a signature; and a
/// verify without the signing key does not make one up (which would verify nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_fails_naming_a_closed_run_without_its_signature() {
    let dir = tempfile::tempdir().unwrap();
    let r = repo();
    let key = dir.path().join("keys/signing.key");
    let cfg = config_with_sources(
        dir.path(),
        &format!(
            "  hr:\n    path: {}\n  policies:\n    path: {}\nsigning:\n  key_file: {}",
            r.join("examples/roster.csv").display(),
            r.join("examples/policies").display(),
            key.display()
        ),
    );
    for _ in 0..2 {
        let out = trellis(&["check", "--control", "background-checks"], Some(&cfg));
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    }
    let out = trellis(&["verify"], Some(&cfg));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("2 closed runs (2 signed, 0 legacy unsigned), 0 running"),
        "{}",
        stdout(&out)
    );

    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let store = trellis::store::Store::connect(&url).await.unwrap();
    let oldest = store.runs(10).await.unwrap()[1].id.clone();
    let stripped = trellis::store::testing::execute_sql(
        &store,
        &format!(
            "UPDATE runs SET manifest = NULL, signature = NULL, key_id = NULL WHERE id = '{oldest}'"
        ),
    )
    .await
    .unwrap();
    assert_eq!(stripped, 1);
    let out = trellis(&["verify"], Some(&cfg));
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains(&format!(
            "TAMPERED: runs {oldest}: it is completed without a signed manifest: only a running run may lack one"
        )),
        "{}",
        stdout(&out)
    );
    let out = trellis(&["verify", "--format", "json"], Some(&cfg));
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(
        report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["table"] == "runs" && p["id"] == oldest.as_str()),
        "{report:#}"
    );

    // Without the key file, nothing verifies, and no key is made.
    std::fs::rename(&key, dir.path().join("moved.key")).unwrap();
    let out = trellis(&["verify"], Some(&cfg));
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(!key.exists(), "verify created a signing key");
    assert!(
        stderr(&out).contains("does not exist: only signing.previous_public_keys are trusted"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("does not verify with any known key"),
        "{}",
        stdout(&out)
    );
}

/// `check --format json` is written control by control as the run goes (nothing is held for
/// the whole run): stored or not, it is one JSON document; `--progress always` reports
/// progress on standard error when it is not a terminal; a run cut short by the store still
/// closes the document, with the error, and exits 1.
#[tokio::test]
async fn streamed_json_is_whole_and_a_run_cut_short_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = example_hr_and_policies(dir.path());
    let args = [
        "check",
        "--format",
        "json",
        "--progress",
        "always",
        "--control",
        "background-checks",
        "--control",
        "security-awareness-training",
    ];
    let out = trellis(&args, Some(&cfg));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    assert!(
        v["finished_at"].is_string() && v.get("error").is_none(),
        "{v}"
    );
    let controls = v["controls"].as_array().unwrap();
    assert_eq!(controls.len(), 2, "{v}");
    assert!(
        controls
            .iter()
            .all(|c| !c["findings"].as_array().unwrap().is_empty()),
        "{v}"
    );
    let err = stderr(&out);
    assert!(err.contains("progress: 1/1 sources collected"), "{err}");
    assert!(err.contains("progress: 2/2 controls evaluated"), "{err}");
    let verified = trellis(&["verify"], Some(&cfg));
    assert_eq!(verified.status.code(), Some(0), "{}", stdout(&verified));

    // The run recorded its collection progress (shown on the runs pages while it collects).
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let store = trellis::store::Store::connect(&url).await.unwrap();
    let runs = store.runs(1).await.unwrap();
    assert_eq!(
        (runs[0].collections_total, runs[0].collections_done),
        (Some(1), 1),
        "{runs:?}"
    );

    // The store refuses one control's result: the run stops there.
    trellis::store::testing::execute_sql(
        &store,
        "CREATE TRIGGER refuse_training BEFORE INSERT ON control_results \
         WHEN NEW.control_id = 'security-awareness-training' \
         BEGIN SELECT RAISE(ABORT, 'the disk refuses training results (test)'); END",
    )
    .await
    .unwrap();
    let out = trellis(&args, Some(&cfg));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("the disk refuses training results")),
        "{v}"
    );
    assert!(v.get("finished_at").is_none(), "{v}");
    let ids: Vec<&str> = v["controls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["background-checks"], "{v}");
    assert!(stderr(&out).contains("the disk refuses training results"));
}

/// `check --baseline previous.json` fails only on failures the baseline does not have, by
/// fingerprint (control, check, resource); the JSON carries the fingerprints, stable across
/// runs; a baseline without them, or not JSON, is a usage error naming the file.
#[test]
fn check_with_a_baseline_fails_only_on_new_failures() {
    let dir = tempfile::tempdir().unwrap();
    let json = |extra: &[&str]| {
        let mut args = vec![
            "check",
            "--no-store",
            "--format",
            "json",
            "--as-of",
            EXAMPLE_NOW,
        ];
        args.extend_from_slice(extra);
        trellis(&args, None)
    };
    let first = json(&[]);
    assert_eq!(first.status.code(), Some(1), "{}", stderr(&first));
    let doc: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    // Every finding and every check that fails without findings has a fingerprint.
    let mut failing = Vec::new();
    for c in doc["controls"].as_array().unwrap() {
        for f in c["findings"].as_array().unwrap() {
            let fp = f["fingerprint"].as_str().expect("a fingerprint");
            assert_eq!(fp.len(), 32, "{f}");
            if f["status"] == "fail" || f["status"] == "error" {
                failing.push((c["id"].as_str().unwrap().to_string(), fp.to_string()));
            }
        }
        for k in c["failing_checks"].as_array().into_iter().flatten() {
            failing.push((
                c["id"].as_str().unwrap().to_string(),
                k["fingerprint"].as_str().unwrap().to_string(),
            ));
        }
    }
    // Unconfigured sources make whole checks error: they are failures too.
    assert!(
        doc["controls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["failing_checks"]
                .as_array()
                .is_some_and(|k| !k.is_empty())),
        "no failing check without findings"
    );
    assert!(failing.len() > 10, "{}", failing.len());
    let baseline = dir.path().join("baseline.json");
    std::fs::write(&baseline, &first.stdout).unwrap();
    let path = baseline.to_str().unwrap();

    // Nothing new: exit 0, and the fingerprints are the same as before.
    let again = json(&["--baseline", path]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(stderr(&again).contains("no failure that the baseline does not have"));
    let doc2: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        doc["controls"]
            .to_string()
            .matches("\"fingerprint\"")
            .count(),
        doc2["controls"]
            .to_string()
            .matches("\"fingerprint\"")
            .count()
    );
    for (_, fp) in &failing {
        assert!(String::from_utf8_lossy(&again.stdout).contains(fp.as_str()));
    }

    // One known failure taken out of the baseline: it is new, named, and fails the command.
    let (control, gone) = failing
        .iter()
        .find(|(c, _)| c == "background-checks")
        .cloned()
        .expect("a background-checks failure");
    let text = String::from_utf8(first.stdout.clone()).unwrap();
    let trimmed = dir.path().join("trimmed.json");
    std::fs::write(&trimmed, text.replace(&gone, "0".repeat(32).as_str())).unwrap();
    let out = json(&["--baseline", trimmed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("1 failure(s) not in the baseline")
            && err.contains(&gone)
            && err.contains(&control),
        "{err}"
    );

    // The table format compares the same way.
    let table = trellis(
        &[
            "check",
            "--no-store",
            "--as-of",
            EXAMPLE_NOW,
            "--baseline",
            path,
        ],
        None,
    );
    assert_eq!(table.status.code(), Some(0), "{}", stderr(&table));

    // A baseline without fingerprints (an older trellis) or not JSON: usage errors.
    let old = dir.path().join("old.json");
    std::fs::write(
        &old,
        r#"{"controls": [{"id": "x", "findings": [{"resource": "r", "status": "fail"}]}]}"#,
    )
    .unwrap();
    let out = json(&["--baseline", old.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("without fingerprints"),
        "{}",
        stderr(&out)
    );
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\n  \"controls\": [oops]\n}\n").unwrap();
    let out = json(&["--baseline", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("{}:2:", bad.display())),
        "{}",
        stderr(&out)
    );
}
