//! The date rule, one for every probe that reads dates people record.
//!
//! A date that records something *done* — a background check, a signed NDA, a training, an
//! acknowledgement, a review, an approval, an incident opened or resolved — and lies after the
//! run's `now` is no evidence that it was done. What it says, and everything derived from it
//! (`overdue`, `next_review_due`, `days_since_resolved`, `open`…), is unknown
//! ([`Resource::unknown`]), so a check reading it is `error` naming the field and the date,
//! never a pass on a training "completed" next month. A date that *schedules* something — a
//! first or last day of employment, an insurance period, a planned exercise or meeting — may
//! lie ahead and is not subject to the rule.
//!
//! Probes call [`apply`]; `trellis validate` reports the same dates as warnings through
//! [`warning`], located in their file.

use chrono::NaiveDate;

use super::Resource;

/// Why a recorded date is no evidence yet: `None` when it is on or before `today`.
pub fn ahead(field: &str, date: Option<NaiveDate>, today: NaiveDate) -> Option<String> {
    date.filter(|d| *d > today)
        .map(|d| format!("{field} {d} is after the run ({today})"))
}

/// The rule applied to one recorded date of `resource`: if `date` lies after `today`, every
/// attribute in `derived` (the field itself and what is computed from it) becomes unknown,
/// naming the field and the date.
pub fn apply(
    resource: &mut Resource,
    today: NaiveDate,
    field: &str,
    date: Option<NaiveDate>,
    derived: &[&str],
) {
    if let Some(why) = ahead(field, date, today) {
        for attribute in derived {
            resource
                .unknown
                .entry((*attribute).to_string())
                .or_insert_with(|| why.clone());
        }
    }
}

/// The rule as `validate` words it (the diagnostic names the file and position): `None`
/// when `date` is on or before `today`.
pub fn warning(field: &str, date: Option<NaiveDate>, today: NaiveDate) -> Option<String> {
    date.filter(|d| *d > today).map(|d| {
        format!(
            "{field}: {d} is after today ({today}): until then it is unknown, and the checks \
             reading it are errors"
        )
    })
}

#[cfg(test)]
mod tests {
    //! One table for the rule across every probe with recorded dates: each row writes a
    //! fixture whose date is the day after the run, collects it through the probe registry
    //! and evaluates a check reading the date (or what is derived from it): `error` naming
    //! the field and the date. The same fixture dated on the run's day is evaluated as usual.

    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use chrono::{DateTime, Utc};
    use serde_json::json;

    use crate::evaluate::{CheckInput, evaluate_control};
    use crate::model::Status;
    use crate::probes::ProbeContext;

    const HEADER: &str = "employee_id,name,email,start_date,end_date,background_check_date,nda_signed_date,security_training_date,policy_ack_date,last_review_date";

    /// A roster of one person with `field` set to `date` (the others recorded long ago).
    fn roster(field: &str, date: &str) -> Vec<(&'static str, String)> {
        let cells: Vec<String> = HEADER
            .split(',')
            .map(|column| match column {
                "employee_id" => "E1".into(),
                "name" => "Ann Lee".into(),
                "email" => "ann@x.io".into(),
                "start_date" => "2020-01-06".into(),
                "end_date" => String::new(),
                c if c == field => date.into(),
                _ => "2026-01-05".into(),
            })
            .collect();
        vec![("roster.csv", format!("{HEADER}\n{}\n", cells.join(",")))]
    }

    fn policy(date: &str) -> Vec<(&'static str, String)> {
        vec![(
            "policies/isp.md",
            format!(
                "---\ntitle: Information Security Policy\napproved_by: CEO\napproved_on: {date}\nreview_interval: 1y\n---\n# Information Security Policy\n\nWe protect data.\n"
            ),
        )]
    }

    fn register(name: &'static str, entry: String) -> Vec<(&'static str, String)> {
        let file: &'static str = match name {
            "vendors" => "registers/vendors.yaml",
            "risks" => "registers/risks.yaml",
            "incidents" => "registers/incidents.yaml",
            _ => "registers/devices.yaml",
        };
        vec![(file, format!("{name}:\n  - {entry}\n"))]
    }

    fn vendor(field: &str, date: &str) -> Vec<(&'static str, String)> {
        let (soc2, assessed) = if field == "assessed_on" {
            ("2026-01-05", date)
        } else {
            (date, "2026-01-05")
        };
        register(
            "vendors",
            format!(
                "{{name: Mailgun, purpose: email, location: US, subprocessor: true, risk_tier: high, soc2_report_reviewed_on: {soc2}, assessed_on: {assessed}}}"
            ),
        )
    }

    fn incident(field: &str, date: &str) -> Vec<(&'static str, String)> {
        let (opened, resolved, lessons) = match field {
            "opened" => (date, "null", "null"),
            "resolved" => ("2026-11-01", date, "null"),
            _ => ("2026-10-01", "2026-10-02", date),
        };
        register(
            "incidents",
            format!(
                "{{id: INC-1, title: t, severity: low, owner: o, opened: {opened}, resolved: {resolved}, lessons_learned_link: https://wiki.example/inc-1, lessons_learned_on: {lessons}}}"
            ),
        )
    }

    struct Row {
        probe: &'static str,
        field: &'static str,
        fixture: fn(&str, &str) -> Vec<(&'static str, String)>,
        /// A check reading the date or what is derived from it; it passes when the date is
        /// the run's day.
        assert: &'static str,
        /// Every attribute that must be unknown when the date lies ahead.
        unknown: &'static [&'static str],
    }

    const ROWS: &[Row] = &[
        Row {
            probe: "hr.people",
            field: "background_check_date",
            fixture: roster,
            assert: "background_check_date != null",
            unknown: &["background_check_date"],
        },
        Row {
            probe: "hr.people",
            field: "nda_signed_date",
            fixture: roster,
            assert: "nda_signed_date != null",
            unknown: &["nda_signed_date"],
        },
        Row {
            probe: "hr.people",
            field: "security_training_date",
            fixture: roster,
            assert: "security_training_date != null && days_since(security_training_date) <= 365",
            unknown: &["security_training_date"],
        },
        Row {
            probe: "hr.people",
            field: "policy_ack_date",
            fixture: roster,
            assert: "policy_ack_date != null",
            unknown: &["policy_ack_date"],
        },
        Row {
            probe: "hr.people",
            field: "last_review_date",
            fixture: roster,
            assert: "last_review_date != null",
            unknown: &["last_review_date"],
        },
        Row {
            probe: "documents.policies",
            field: "approved_on",
            fixture: |_, d| policy(d),
            assert: "!overdue",
            unknown: &["approved_on", "next_review_due", "overdue"],
        },
        Row {
            probe: "registers.vendors",
            field: "soc2_report_reviewed_on",
            fixture: vendor,
            assert: "soc2_report_reviewed_on != null",
            unknown: &["soc2_report_reviewed_on"],
        },
        Row {
            probe: "registers.vendors",
            field: "assessed_on",
            fixture: vendor,
            assert: "assessed_on != null",
            unknown: &["assessed_on"],
        },
        Row {
            probe: "registers.risks",
            field: "reviewed_on",
            fixture: |_, d| {
                register(
                    "risks",
                    format!(
                        "{{id: R-1, title: t, owner: o, likelihood: low, impact: low, treatment: accept, reviewed_on: {d}}}"
                    ),
                )
            },
            assert: "days_since(reviewed_on) <= 365",
            unknown: &["reviewed_on"],
        },
        Row {
            probe: "registers.incidents",
            field: "opened",
            fixture: incident,
            assert: "opened != null",
            unknown: &["opened"],
        },
        Row {
            probe: "registers.incidents",
            field: "resolved",
            fixture: incident,
            assert: "!open",
            unknown: &["resolved", "open", "days_since_resolved"],
        },
        Row {
            probe: "registers.incidents",
            field: "lessons_learned_on",
            fixture: incident,
            assert: "lessons_learned_on != null",
            unknown: &["lessons_learned_on"],
        },
        Row {
            probe: "registers.devices",
            field: "last_check_in",
            fixture: |_, d| {
                register(
                    "devices",
                    format!(
                        "{{id: C02X, owner: ann@x.io, os: macOS 26.1, disk_encrypted: true, antivirus: true, screen_lock: true, last_check_in: {d}}}"
                    ),
                )
            },
            assert: "days_since(last_check_in) <= 30",
            unknown: &["last_check_in"],
        },
    ];

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

    /// A configuration reading the roster, policies and registers of `dir`; every register
    /// empty but those the fixture writes.
    fn setup(dir: &Path, files: &[(&'static str, String)]) -> crate::config::Loaded {
        std::fs::create_dir_all(dir.join("policies")).unwrap();
        std::fs::create_dir_all(dir.join("registers")).unwrap();
        std::fs::write(dir.join("roster.csv"), format!("{HEADER}\n")).unwrap();
        for name in REGISTERS {
            std::fs::write(
                dir.join(format!("registers/{name}.yaml")),
                format!("{name}: []\n"),
            )
            .unwrap();
        }
        for (path, text) in files {
            std::fs::write(dir.join(path), text).unwrap();
        }
        let config = dir.join("trellis.yaml");
        std::fs::write(
            &config,
            "sources:\n  hr:\n    path: roster.csv\n  policies:\n    path: policies\n  registers:\n    path: registers\n",
        )
        .unwrap();
        crate::config::load(Some(&config)).unwrap()
    }

    async fn evaluate(
        row: &Row,
        date: &str,
        now: DateTime<Utc>,
    ) -> (crate::probes::Collected, crate::model::ControlOutcome) {
        let dir = tempfile::tempdir().unwrap();
        let loaded = setup(dir.path(), &(row.fixture)(row.field, date));
        let ctx = ProbeContext::for_run(&loaded, now);
        let probe = crate::probes::find(row.probe).unwrap();
        let collected = probe
            .plan(&json!({}))
            .unwrap()
            .collect(&ctx)
            .await
            .unwrap_or_else(|e| panic!("{} {}: {e}", row.probe, row.field));
        let text = format!(
            "id: t\ntitle: T\ncategory: C\ndescription: d\nclaim: procedure\nowner: o\nseverity: low\nchecks:\n  - probe: {}\n    assert: '{}'\n",
            row.probe, row.assert
        );
        let (control, _) = crate::catalog::compile_file(Path::new("t.yaml"), &text).unwrap();
        let input = CheckInput {
            collected: Ok(Arc::new(collected.clone())),
            evidence: None,
        };
        let outcome = evaluate_control(&control, &[input], now);
        (collected, outcome)
    }

    #[tokio::test]
    async fn a_recorded_date_after_the_run_is_unknown_in_every_probe() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T09:00:00Z")
            .unwrap()
            .to_utc();
        for row in ROWS {
            let what = format!("{} {}", row.probe, row.field);
            // Ahead: every derived attribute unknown, the check an error naming field and date.
            let (collected, outcome) = evaluate(row, "2027-01-05", now).await;
            assert_eq!(collected.resources.len(), 1, "{what}");
            let resource = &collected.resources[0];
            let why = format!("{} 2027-01-05 is after the run (2026-12-03)", row.field);
            let unknown: Vec<&str> = resource.unknown.keys().map(String::as_str).collect();
            let mut want = row.unknown.to_vec();
            want.sort();
            assert_eq!(unknown, want, "{what}");
            for reason in resource.unknown.values() {
                assert_eq!(reason, &why, "{what}");
            }
            assert_eq!(outcome.status, Status::Error, "{what}: {}", outcome.summary);
            let finding = &outcome.findings[0];
            assert_eq!(finding.status, Status::Error, "{what}");
            assert!(
                finding.message.contains(&why),
                "{what}: {}",
                finding.message
            );

            // On the run's day: evaluated as usual, and it passes.
            let (collected, outcome) = evaluate(row, "2026-12-03", now).await;
            assert!(collected.resources[0].unknown.is_empty(), "{what}");
            assert_eq!(
                outcome.status,
                Status::Pass,
                "{what}: {:?}",
                outcome.findings
            );
        }
    }

    #[test]
    fn the_rule_names_the_field_and_the_date() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        let day = |s: &str| s.parse::<NaiveDate>().ok();
        for (date, want) in [
            (
                day("2026-12-04"),
                Some("training_completed_on 2026-12-04 is after the run (2026-12-03)"),
            ),
            (day("2026-12-03"), None),
            (day("2020-01-01"), None),
            (None, None),
        ] {
            assert_eq!(
                ahead("training_completed_on", date, today).as_deref(),
                want,
                "{date:?}"
            );
            assert_eq!(
                warning("training_completed_on", date, today).is_some(),
                want.is_some()
            );
        }
    }
}
