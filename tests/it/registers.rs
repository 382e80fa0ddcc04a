//! Registers and policy documents as evidence: records dated after today are never evidence,
//! planned exercises do not count until held, a register with nothing in it fails what needs
//! it, a source that is missing is an error (never an empty population), and policy mentions
//! are whole words.

use crate::common::aws as common;

use std::path::Path;

use common::{at, findings, outcome, run};
use trellis::config::Loaded;
use trellis::model::Status;
use trellis::probes::ProbeContext;
use trellis::runner::{self, NoSink};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// A configuration reading registers and policies from `dir` (and no other source).
fn loaded(dir: &Path) -> Loaded {
    let config = dir.join("trellis.yaml");
    std::fs::write(
        &config,
        format!(
            "controls_dir: {}\nexceptions_dir: no-exceptions\nsources:\n  registers:\n    path: registers\n  policies:\n    path: policies\n",
            common::repo().join("controls").display()
        ),
    )
    .unwrap();
    trellis::config::load(Some(&config)).unwrap()
}

#[tokio::test]
async fn register_dates_after_today_are_never_evidence() {
    let now = at("2026-11-23T12:00:00Z");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("registers")).unwrap();
    std::fs::create_dir(d.join("policies")).unwrap();
    std::fs::write(
        d.join("registers/vendors.yaml"),
        "vendors:\n  - {name: Early Co, purpose: p, location: US, subprocessor: true, risk_tier: high, soc2_report_reviewed_on: 2027-01-10, assessed_on: 2026-10-01}\n  - {name: Done Co, purpose: p, location: US, subprocessor: true, risk_tier: high, soc2_report_reviewed_on: 2026-10-01, assessed_on: 2026-10-01}\n  - {name: Never Co, purpose: p, location: US, subprocessor: false, risk_tier: medium, soc2_report_reviewed_on: null, assessed_on: null}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("registers/exercises.yaml"),
        "exercises:\n  - {kind: ir_tabletop, date: 2025-10-01, outcome: passed, summary: ransomware}\n  - {kind: ir_tabletop, date: 2027-01-15, outcome: passed, summary: planned}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("registers/incidents.yaml"),
        "incidents:\n  - {id: INC-1, title: t, severity: low, owner: o, opened: 2026-11-01, resolved: 2026-12-01}\n  - {id: INC-2, title: t, severity: low, owner: o, opened: 2026-08-01, resolved: 2026-08-03, lessons_learned_link: https://wiki.example/inc-2, lessons_learned_on: 2026-08-20}\n",
    )
    .unwrap();
    // No meetings held yet: an empty register, written as one.
    std::fs::write(d.join("registers/meetings.yaml"), "meetings: []\n").unwrap();
    let loaded = loaded(d);
    let report = run(
        &loaded,
        &[
            "vendor-due-diligence-review",
            "incident-response-plan-testing",
            "advisor-meetings-on-security",
            "lessons-learned",
        ],
        now,
    )
    .await;

    // A SOC 2 review "done" next January is not a review: error, naming why.
    let vendors = outcome(&report, "vendor-due-diligence-review");
    let verdicts: Vec<(&str, Status)> = vendors
        .findings
        .iter()
        .map(|f| (f.resource.as_str(), f.status))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("vendor:early-co", Status::Error),
            ("vendor:done-co", Status::Pass),
            ("vendor:never-co", Status::Fail),
        ]
    );
    assert!(
        vendors.findings[0].message.ends_with(
            "soc2_report_reviewed_on is unknown: soc2_report_reviewed_on 2027-01-10 is after the run (2026-11-23)"
        ),
        "{}",
        vendors.findings[0].message
    );

    // The planned tabletop does not count: the last one held is over a year old.
    let tabletop = findings(&report, "incident-response-plan-testing", Status::Fail);
    assert_eq!(tabletop.len(), 1);
    assert_eq!(tabletop[0].actual.to_value()["last_date"], "2025-10-01");

    // No meetings on record: never met is a failure, for both kinds.
    let meetings = findings(&report, "advisor-meetings-on-security", Status::Fail);
    let kinds: Vec<&str> = meetings.iter().map(|f| f.resource.as_str()).collect();
    assert_eq!(
        kinds,
        ["meetings:board_security_review", "meetings:security_team"]
    );
    assert!(
        meetings
            .iter()
            .all(|f| f.actual.to_value()["last_date"].is_null())
    );

    // An incident "resolved" next week: whether lessons are due is unknown, not passed.
    let lessons = outcome(&report, "lessons-learned");
    let inc1 = lessons
        .findings
        .iter()
        .find(|f| f.resource == "incident:INC-1")
        .unwrap();
    assert_eq!(inc1.status, Status::Error, "{}", inc1.message);
    assert!(inc1.message.contains("resolved"), "{}", inc1.message);
    let inc2 = lessons
        .findings
        .iter()
        .find(|f| f.resource == "incident:INC-2")
        .unwrap();
    assert_eq!(inc2.status, Status::Pass, "{}", inc2.message);
}

#[tokio::test]
async fn policy_mentions_are_whole_words() {
    let now = at("2026-11-22T12:00:00Z");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    copy_dir(
        &common::repo().join("examples/registers"),
        &d.join("registers"),
    );
    copy_dir(
        &common::repo().join("examples/policies"),
        &d.join("policies"),
    );
    let loaded = loaded(d);
    let catalog = trellis::catalog::from_config(&loaded, now.date_naive()).unwrap();
    // Every control whose policy check requires mentions.
    let with_mentions: Vec<String> = catalog
        .controls()
        .iter()
        .filter(|c| {
            c.checks.iter().any(|k| {
                k.probe.name() == "documents.policies"
                    && k.assert.source.contains("missing_mentions")
            })
        })
        .map(|c| c.id.clone())
        .collect();
    assert!(with_mentions.len() >= 15, "{with_mentions:?}");
    let ids: Vec<&str> = with_mentions.iter().map(String::as_str).collect();
    let policy_verdicts =
        |report: &trellis::runner::RunReport| -> Vec<(String, Status, serde_json::Value)> {
            report
                .outcomes
                .iter()
                .flat_map(|o| {
                    o.findings
                        .iter()
                        .filter(|f| f.resource.starts_with("policy:"))
                        .map(|f| {
                            (
                                o.control_id.clone(),
                                f.status,
                                f.actual.to_value()["missing_mentions"].clone(),
                            )
                        })
                })
                .collect()
        };
    // The example policies say what each control needs.
    let report = run(&loaded, &ids, now).await;
    for (control, status, missing) in policy_verdicts(&report) {
        assert_eq!(status, Status::Pass, "{control}: missing {missing}");
    }

    // The plan stops saying "lessons-learned" and "incident ticket"; "record" is not a
    // whole-word "ticket", and the title heading does not count.
    let plan = d.join("policies/incident-response-plan.md");
    let text = std::fs::read_to_string(&plan).unwrap();
    let edited = text
        .replace("lessons-learned review", "retrospective")
        .replace("incident ticket", "incident ticketing-record");
    assert_ne!(text, edited);
    std::fs::write(&plan, edited).unwrap();
    let report = run(
        &loaded,
        &["lessons-learned", "tracking-a-security-incident"],
        now,
    )
    .await;
    let failing: Vec<(String, Status, serde_json::Value)> = policy_verdicts(&report)
        .into_iter()
        .filter(|(_, s, _)| *s != Status::Pass)
        .collect();
    assert_eq!(
        failing,
        [
            (
                "lessons-learned".to_string(),
                Status::Fail,
                serde_json::json!(["lessons learned"])
            ),
            (
                "tracking-a-security-incident".to_string(),
                Status::Fail,
                serde_json::json!(["incident ticket"])
            ),
        ]
    );
}

const REGISTERS: &[&str] = &[
    "vendors",
    "risks",
    "incidents",
    "exercises",
    "meetings",
    "insurance",
    "access_reviews",
    "devices",
    "service_accounts",
];

/// A roster, a policies folder and every register, all present and empty (but the roster's
/// header), read by a configuration in `d`.
fn empty_sources(d: &Path) -> Loaded {
    std::fs::write(d.join("roster.csv"), "employee_id,name,email,start_date\n").unwrap();
    std::fs::create_dir_all(d.join("policies")).unwrap();
    std::fs::create_dir_all(d.join("registers")).unwrap();
    for name in REGISTERS {
        std::fs::write(
            d.join(format!("registers/{name}.yaml")),
            format!("{name}: []\n"),
        )
        .unwrap();
    }
    let config = d.join("trellis.yaml");
    std::fs::write(
        &config,
        "sources:\n  hr:\n    path: roster.csv\n  policies:\n    path: policies\n  registers:\n    path: registers\n",
    )
    .unwrap();
    trellis::config::load(Some(&config)).unwrap()
}

/// The one check of a control reading `probe`, evaluated on the sources of `loaded`.
async fn check_of(loaded: &Loaded, probe: &str) -> trellis::model::ControlOutcome {
    let text = format!(
        "id: t\ntitle: T\ncategory: C\ndescription: d\nclaim: procedure\nowner: o\nseverity: low\nchecks:\n  - probe: {probe}\n    assert: \"true\"\n"
    );
    let (control, _) = trellis::catalog::compile_file(Path::new("t.yaml"), &text)
        .unwrap_or_else(|d| panic!("{d:?}"));
    let ctx = ProbeContext::for_run(loaded, at("2026-12-03T12:00:00Z"));
    let report = runner::execute(&ctx, &[&control], 2, &NoSink, &|_, _| {})
        .await
        .unwrap();
    report.outcomes.into_iter().next().unwrap()
}

/// A source the configuration names but that is missing is an `error` naming its path for
/// every check reading it; the same source present and empty is an empty population.
#[tokio::test]
async fn a_missing_source_is_an_error_naming_it_never_an_empty_population() {
    // (what is removed, the probe reading it, the error naming it, the verdict when present
    // and empty, and what that verdict's summary says)
    let mut rows: Vec<(String, String, &str, Status, &str)> = vec![
        (
            "roster.csv".into(),
            "hr.people".into(),
            "cannot read HR roster {path}: ",
            Status::NotApplicable,
            "no applicable resources",
        ),
        (
            "policies".into(),
            "documents.policies".into(),
            "cannot read policies folder {path}: ",
            Status::NotApplicable,
            "no applicable resources",
        ),
    ];
    for name in REGISTERS {
        let (probe, empty, summary) = match *name {
            // One resource per kind of exercise or meeting, held or not.
            "exercises" => (
                "registers.exercises".to_string(),
                Status::Pass,
                "3 of 3 pass",
            ),
            "meetings" => (
                "registers.meetings".to_string(),
                Status::Pass,
                "2 of 2 pass",
            ),
            // Declared service accounts are joined to AWS and GitHub, not configured here.
            "service_accounts" => (
                "identity.accounts".to_string(),
                Status::Error,
                "source `aws or github` is not configured",
            ),
            other => (
                format!("registers.{other}"),
                Status::NotApplicable,
                "no applicable resources",
            ),
        };
        rows.push((
            format!("registers/{name}.yaml"),
            probe,
            "register {path} not found: a register with nothing in it is written",
            empty,
            summary,
        ));
    }
    for (removed, probe, error, empty, summary) in rows {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let loaded = empty_sources(d);
        let present = check_of(&loaded, &probe).await;
        assert_eq!(present.status, empty, "{probe}: {}", present.summary);
        assert!(
            present.summary.contains(summary),
            "{probe}: {}",
            present.summary
        );
        let path = d.join(&removed);
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
        let missing = check_of(&loaded, &probe).await;
        assert_eq!(
            missing.status,
            Status::Error,
            "{probe}: {}",
            missing.summary
        );
        let want = error.replace("{path}", &path.display().to_string());
        assert!(
            missing.summary.contains(&want),
            "{probe} without {removed}: expected `{want}` in `{}`",
            missing.summary
        );
    }
}

/// A register file missing affects only the checks reading that register.
#[tokio::test]
async fn a_missing_register_leaves_the_other_registers_evaluated() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = empty_sources(dir.path());
    std::fs::remove_file(dir.path().join("registers/incidents.yaml")).unwrap();
    assert_eq!(
        check_of(&loaded, "registers.incidents").await.status,
        Status::Error
    );
    assert_eq!(
        check_of(&loaded, "registers.vendors").await.status,
        Status::NotApplicable
    );
}
