use chrono::TimeZone;

use super::*;
use crate::model::{CheckOutcome, Finding, RawJson};

fn outcome(checks: &[Status], findings: &[(usize, &str, Status)]) -> ControlOutcome {
    ControlOutcome {
        control_id: "mfa".into(),
        status: Status::Fail,
        summary: "summary".into(),
        evaluated_at: Utc
            .with_ymd_and_hms(2026, 12, 5, 9, 0, 0)
            .single()
            .unwrap_or_default(),
        definition_sha256: String::new(),
        checks: checks
            .iter()
            .map(|s| CheckOutcome {
                probe: "hr.roster".into(),
                status: *s,
                summary: String::new(),
                error: None,
                evidence: None,
                basis: None,
            })
            .collect(),
        findings: findings
            .iter()
            .map(|(check, resource, status)| Finding {
                check: *check,
                resource: (*resource).into(),
                status: *status,
                message: String::new(),
                actual: RawJson::null(),
            })
            .collect(),
        exceptions: Vec::new(),
    }
}

fn fp(check: usize, resource: &str) -> String {
    crate::model::fingerprint("mfa", check, resource)
}

fn known(items: &[(usize, &str, FindingState)]) -> Vec<Known> {
    items
        .iter()
        .map(|(check, resource, state)| Known {
            fingerprint: fp(*check, resource),
            check: *check,
            state: *state,
        })
        .collect()
}

/// The events as `kind count/open_total`, and the states written, in a stable order.
fn check(
    checks: &[Status],
    findings: &[(usize, &str, Status)],
    before: &[(usize, &str, FindingState)],
    expect: &str,
) {
    let t = transitions("run-1", &outcome(checks, findings), &known(before));
    let mut lines: Vec<String> = t
        .events
        .iter()
        .map(|e| {
            format!(
                "{} {}/{}",
                e.kind.as_str(),
                e.count,
                e.open_total.unwrap_or_default()
            )
        })
        .collect();
    let names: Vec<(String, String)> =
        [(0, ""), (0, "u1"), (0, "u2"), (0, "u3"), (1, ""), (1, "u1")]
            .iter()
            .map(|(c, r)| (fp(*c, r), format!("{c}:{r}")))
            .collect();
    let name = |f: &str| {
        names
            .iter()
            .find(|(x, _)| x == f)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| f.to_string())
    };
    let mut set: Vec<String> = t
        .set
        .iter()
        .map(|(f, _, s)| format!("set {} {}", name(f), s.as_str()))
        .collect();
    set.sort();
    lines.extend(set);
    let mut forget: Vec<String> = t
        .forget
        .iter()
        .map(|f| format!("forget {}", name(f)))
        .collect();
    forget.sort();
    lines.extend(forget);
    assert_eq!(
        lines.join("\n"),
        expect.trim(),
        "\nchecks {checks:?}\nfindings {findings:?}\nbefore {before:?}"
    );
}

use FindingState::{Error as E, Fail as F, Fixed as X};
use Status::{Error as SE, Fail as SF, NotApplicable as NA, Pass as SP, Waived as SW};

#[test]
fn a_first_failure_is_failing_and_a_second_run_says_nothing() {
    check(
        &[SF],
        &[(0, "u1", SF), (0, "u2", SF), (0, "u3", SP)],
        &[],
        "failing 2/2\nset 0:u1 fail\nset 0:u2 fail",
    );
    check(
        &[SF],
        &[(0, "u1", SF), (0, "u2", SF), (0, "u3", SP)],
        &[(0, "u1", F), (0, "u2", F)],
        "",
    );
}

#[test]
fn a_passing_resource_is_fixed_and_a_new_one_failing() {
    check(
        &[SF],
        &[(0, "u1", SP), (0, "u2", SF), (0, "u3", SF)],
        &[(0, "u1", F), (0, "u2", F)],
        "failing 1/2\nfixed 1/2\nset 0:u1 fixed\nset 0:u3 fail",
    );
}

#[test]
fn a_resource_that_is_gone_is_fixed() {
    check(&[SP], &[], &[(0, "u1", F)], "fixed 1/0\nset 0:u1 fixed");
}

#[test]
fn a_fixed_resource_failing_again_is_reopened() {
    check(
        &[SF],
        &[(0, "u1", SF)],
        &[(0, "u1", X)],
        "reopened 1/1\nset 0:u1 fail",
    );
}

#[test]
fn an_outage_is_erroring_never_fixed_and_the_failures_stay_open() {
    // The check could not collect: its failing resources are unknown, not fixed.
    check(
        &[SE],
        &[],
        &[(0, "u1", F), (0, "u2", F)],
        "erroring 1/3\nset 0: error",
    );
    // It recovers: the error is fixed, the resources still failing say nothing new.
    check(
        &[SF],
        &[(0, "u1", SF), (0, "u2", SP)],
        &[(0, "", E), (0, "u1", F), (0, "u2", F)],
        "fixed 2/1\nset 0: fixed\nset 0:u2 fixed",
    );
}

#[test]
fn a_failing_resource_that_now_errs_is_erroring() {
    check(
        &[SE],
        &[(0, "u1", SE)],
        &[(0, "u1", F)],
        "erroring 1/1\nset 0:u1 error",
    );
}

#[test]
fn waived_is_forgotten_not_fixed() {
    check(&[SP], &[(0, "u1", SW)], &[(0, "u1", F)], "forget 0:u1");
}

#[test]
fn not_applicable_counts_as_no_longer_failing() {
    check(
        &[SP],
        &[(0, "u1", NA)],
        &[(0, "u1", F)],
        "fixed 1/0\nset 0:u1 fixed",
    );
}

#[test]
fn a_check_removed_from_the_control_is_forgotten() {
    check(&[SP], &[], &[(1, "u1", F)], "forget 1:u1");
}

#[test]
fn a_check_failing_as_a_whole_has_its_own_fingerprint() {
    check(&[SP, SF], &[], &[], "failing 1/1\nset 1: fail");
}

#[test]
fn events_name_the_run_and_keep_at_most_fifty_fingerprints() {
    let resources: Vec<String> = (0..60).map(|i| format!("u{i}")).collect();
    let findings: Vec<(usize, &str, Status)> =
        resources.iter().map(|r| (0, r.as_str(), SF)).collect();
    let t = transitions("run-9", &outcome(&[SF], &findings), &[]);
    assert_eq!(t.events.len(), 1);
    assert_eq!(t.events[0].count, 60);
    assert_eq!(t.events[0].fingerprints.len(), MAX_FINGERPRINTS);
    assert_eq!(t.events[0].run_id.as_deref(), Some("run-9"));
    assert_eq!(t.set.len(), 60);
}

#[test]
fn every_event_kind_round_trips_through_its_name() {
    for kind in EventKind::ALL {
        assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        let json = serde_json::to_string(&kind).unwrap_or_default();
        assert_eq!(json, format!("\"{}\"", kind.as_str()));
    }
}

#[test]
fn register_entries_failing_are_register_overdue_not_failing() {
    let mut o = outcome(&[SF, SF], &[(0, "vendor:Acme", SF), (1, "u1", SF)]);
    o.checks[0].probe = "registers.vendors".into();
    let t = transitions("run-1", &o, &[]);
    let kinds: Vec<(&str, usize)> = t
        .events
        .iter()
        .map(|e| (e.kind.as_str(), e.count))
        .collect();
    assert_eq!(kinds, [("failing", 1), ("register_overdue", 1)]);
    // Fixed, then failing again: reopened, whatever the probe.
    let t = transitions(
        "run-2",
        &o,
        &[Known {
            fingerprint: crate::model::fingerprint("mfa", 0, "vendor:Acme"),
            check: 0,
            state: X,
        }],
    );
    assert!(
        t.events
            .iter()
            .any(|e| e.kind == EventKind::Reopened && e.count == 1)
    );
}

#[test]
fn policy_reviews_are_announced_when_due_soon_and_when_overdue() {
    let now = Utc
        .with_ymd_and_hms(2026, 12, 5, 9, 0, 0)
        .single()
        .unwrap_or_default();
    let doc = |id: &str, due: &str| serde_json::json!({"id": id, "attributes": {"title": id.to_uppercase(), "next_review_due": due}});
    let evidence = crate::model::Evidence {
        probe: "documents.policies".into(),
        params: "{}".into(),
        collected_at: now,
        content: serde_json::json!({"documents": [
            doc("policy:a.md", "2026-12-10"),
            doc("policy:b.md", "2026-11-30"),
            doc("policy:c.md", "2027-06-01"),
            doc("policy:a.md", "2026-12-10"),
        ]}),
        sha256: String::new(),
        error: None,
    };
    let found = super::sender::policy_reviews(&[evidence], now, chrono::Duration::days(14));
    let keys: Vec<&str> = found.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "policy_review_due:policy:a.md:2026-12-10:due",
            "policy_review_due:policy:b.md:2026-11-30:overdue"
        ]
    );
    assert_eq!(
        found[0].event.detail,
        "POLICY:A.MD: its review is due on 2026-12-10 (in 5 days)."
    );
}

#[test]
fn a_partial_outage_is_never_a_fix() {
    // One account could not be read (an erring resource): the failures it held are unknown.
    check(
        &[SF],
        &[(0, "u3", SE), (0, "u2", SF)],
        &[(0, "u1", F), (0, "u2", F)],
        "erroring 1/3\nset 0:u3 error",
    );
    // But a failure seen passing is fixed, whatever else erred.
    check(
        &[SF],
        &[(0, "u3", SE), (0, "u1", SP), (0, "u2", SF)],
        &[(0, "u1", F), (0, "u2", F)],
        "erroring 1/2\nfixed 1/2\nset 0:u1 fixed\nset 0:u3 error",
    );
}

#[test]
fn addresses_are_redacted_from_smtp_replies() {
    assert_eq!(
        super::visitors::redact_addresses(
            "SMTP 127.0.0.1:25: permanent error (550): <ada@customer.example>: mailbox unavailable"
        ),
        "SMTP 127.0.0.1:25: permanent error (550): <<address>>: mailbox unavailable"
    );
    assert_eq!(
        super::visitors::redact_addresses("550 5.1.1 ada@customer.example, user unknown"),
        "550 5.1.1 <address>, user unknown"
    );
    assert_eq!(super::visitors::redact_addresses("HTTP 404"), "HTTP 404");
}
