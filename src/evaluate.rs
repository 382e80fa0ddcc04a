//! The evaluator: evidence in, verdicts out. Pure — no I/O, no clock (the run's `now` is an
//! argument), so it is deterministic and testable with plain data.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};

use crate::catalog::{Check, Claim, Control, Expect, Expr, expr::ENV};
use crate::exceptions::Exception;
use crate::model::{
    CheckBasis, CheckOutcome, ControlOutcome, EvidenceKind, ExceptionUse, Finding, RawJson, Status,
};
use crate::probes::{AttrKind, AttrValue, Collected, ProbeError, Resource};

/// What the runner collected for one check.
#[derive(Debug, Clone)]
pub struct CheckInput {
    pub collected: Result<Arc<Collected>, ProbeError>,
    /// Index of the evidence record in the run's evidence list.
    pub evidence: Option<usize>,
}

/// Exceptions a control's findings used, by (exception id, how: applied / expired / unused).
type Uses = BTreeMap<(String, &'static str), ExceptionUse>;

/// One check's verdict: its outcome and findings, and the exceptions its findings used. What
/// [`combine`] needs of the check, so the check's collection can be let go of at once.
#[derive(Debug, Clone)]
pub struct CheckVerdict {
    outcome: CheckOutcome,
    findings: Vec<Finding>,
    uses: Uses,
}

/// Evaluates every check of `control` against its collected evidence.
pub fn evaluate_control(
    control: &Control,
    inputs: &[CheckInput],
    now: DateTime<Utc>,
) -> ControlOutcome {
    let verdicts = (0..control.checks.len()).map(|index| match inputs.get(index) {
        Some(input) => evaluate_check(control, index, input, now),
        None => CheckVerdict {
            outcome: CheckOutcome {
                probe: control.checks[index].probe.name().to_string(),
                status: Status::Error,
                summary: "no evidence was collected for this check".into(),
                error: Some("internal: missing check input".into()),
                evidence: None,
                basis: Some(CheckBasis::of(control.checks[index].probe.kind())),
            },
            findings: Vec::new(),
            uses: Uses::new(),
        },
    });
    combine(control, verdicts, now)
}

/// Evaluates check `index` of `control` against its collected evidence (exceptions applied).
/// The check's verdict does not depend on the control's other checks: a run evaluates each
/// check as soon as its collection is in and keeps only the verdict.
pub fn evaluate_check(
    control: &Control,
    index: usize,
    input: &CheckInput,
    now: DateTime<Utc>,
) -> CheckVerdict {
    let mut findings = Vec::new();
    let mut uses = Uses::new();
    let outcome = match control.checks.get(index) {
        Some(check) => {
            let mut waive =
                |f: &mut Finding| apply_exceptions(&control.exceptions, f, now, &mut uses);
            check_findings(index, check, input, now, &mut findings, &mut waive)
        }
        None => CheckOutcome {
            probe: String::new(),
            status: Status::Error,
            summary: format!("internal: {} has no check {index}", control.id),
            error: Some(format!("internal: {} has no check {index}", control.id)),
            evidence: input.evidence,
            basis: None,
        },
    };
    CheckVerdict {
        outcome,
        findings,
        uses,
    }
}

/// The control's outcome from its checks' verdicts (in check order).
pub fn combine(
    control: &Control,
    verdicts: impl IntoIterator<Item = CheckVerdict>,
    now: DateTime<Utc>,
) -> ControlOutcome {
    let verdicts: Vec<CheckVerdict> = verdicts.into_iter().collect();
    let mut checks = Vec::with_capacity(verdicts.len());
    let mut findings = Vec::with_capacity(verdicts.iter().map(|v| v.findings.len()).sum());
    let mut uses = Uses::new();
    for verdict in verdicts {
        checks.push(verdict.outcome);
        findings.extend(verdict.findings);
        for (key, used) in verdict.uses {
            match uses.entry(key) {
                std::collections::btree_map::Entry::Occupied(mut seen) => {
                    seen.get_mut().resources.extend(used.resources)
                }
                std::collections::btree_map::Entry::Vacant(new) => {
                    new.insert(used);
                }
            }
        }
    }
    // Every exception of the control is accounted for: one that expired is reported even if
    // nothing fails any more, one in force that waived nothing is `unused` (worth removing).
    let today = now.date_naive();
    for e in &control.exceptions {
        let status = if e.in_force(today) {
            "unused"
        } else {
            "expired"
        };
        if !uses.keys().any(|(id, _)| id == &e.id) {
            uses.insert((e.id.clone(), status), ExceptionUse::of(e, status));
        }
    }
    let mut status = Status::combine(checks.iter().map(|c| c.status));
    let mut summary = control_summary(status, &checks);
    // A system claim is green only if the systems were checked: when every system check found
    // nothing applicable, a passing record or document does not make it pass.
    if control.claim == Claim::System && status == Status::Pass {
        let system: Vec<&CheckOutcome> = control
            .checks
            .iter()
            .zip(&checks)
            .filter(|(c, _)| c.probe.kind() == EvidenceKind::System)
            .map(|(_, o)| o)
            .collect();
        if system.iter().all(|o| o.status == Status::NotApplicable) {
            status = Status::NotApplicable;
            summary = format!(
                "no system check found anything to check ({}): the other checks alone do not \
                 show the system property this control claims",
                system
                    .iter()
                    .map(|o| o.probe.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    ControlOutcome {
        control_id: control.id.clone(),
        status,
        summary,
        evaluated_at: now,
        definition_sha256: control.sha256.clone(),
        checks,
        findings,
        exceptions: uses.into_values().collect(),
    }
}

/// Waives `finding` if it fails and an exception in force covers its resource; notes an
/// expired exception that would have. Records either in `uses`.
fn apply_exceptions(
    exceptions: &[Exception],
    finding: &mut Finding,
    now: DateTime<Utc>,
    uses: &mut Uses,
) {
    if finding.status != Status::Fail {
        return;
    }
    let today = now.date_naive();
    let matching: Vec<&Exception> = exceptions
        .iter()
        .filter(|e| e.covers(&finding.resource))
        .collect();
    let mut record = |e: &Exception, status: &'static str| {
        uses.entry((e.id.clone(), status))
            .or_insert_with(|| ExceptionUse::of(e, status))
            .resources
            .push(finding.resource.clone());
    };
    if let Some(e) = matching.iter().find(|e| e.in_force(today)) {
        record(e, "applied");
        finding.status = Status::Waived;
        finding.message = format!(
            "{} — waived by exception {} ({}, owner {}, until {}): {}",
            finding.message, e.id, e.ticket, e.owner, e.expires_on, e.reason
        );
    } else if let Some(e) = matching.first() {
        record(e, "expired");
        finding.message = format!(
            "{} (exception {} expired on {}: it no longer applies)",
            finding.message, e.id, e.expires_on
        );
    }
}

fn control_summary(status: Status, checks: &[CheckOutcome]) -> String {
    let relevant: Vec<&str> = checks
        .iter()
        .filter(|c| c.status == status)
        .map(|c| c.summary.as_str())
        .collect();
    if checks.len() == 1 || relevant.is_empty() {
        return checks
            .first()
            .map(|c| c.summary.clone())
            .unwrap_or_default();
    }
    relevant.join("; ")
}

fn check_findings(
    index: usize,
    check: &Check,
    input: &CheckInput,
    now: DateTime<Utc>,
    findings: &mut Vec<Finding>,
    waive: &mut dyn FnMut(&mut Finding),
) -> CheckOutcome {
    let probe = check.probe.name().to_string();
    let collected = match &input.collected {
        Ok(c) => c,
        Err(e) => {
            return CheckOutcome {
                probe,
                status: Status::Error,
                summary: format!("could not collect evidence: {e}"),
                error: Some(e.to_string()),
                evidence: input.evidence,
                basis: Some(CheckBasis::of(check.probe.kind())),
            };
        }
    };
    let kinds = check.probe.attributes();
    let mut basis = CheckBasis::of(check.probe.kind());
    let (mut pass, mut fail, mut error, mut waived) = (0u64, 0u64, 0u64, 0u64);
    // Accounts, regions, organisations… that could not be read and are in the check's scope.
    let mut unread_scopes: Vec<&str> = Vec::new();
    // One finding a resource: room for exactly that many (a check of 10,000 resources keeps
    // its findings until its control is done; doubling would leave up to half unused).
    findings.reserve_exact(collected.resources.len());
    for resource in &collected.resources {
        let mut finding = evaluate_resource(index, check, kinds, resource, now);
        if !matches!(finding.status, Status::NotApplicable | Status::Error) {
            note_basis(&mut basis, check, kinds, resource, now);
        }
        waive(&mut finding);
        match finding.status {
            Status::Pass => pass += 1,
            Status::Fail => fail += 1,
            Status::Error => {
                error += 1;
                if resource.scope {
                    unread_scopes.push(&resource.name);
                }
            }
            Status::Waived => waived += 1,
            Status::NotApplicable => {}
        }
        findings.push(finding);
    }
    let applicable = pass + fail + error + waived;
    let (status, summary) = if applicable == 0 {
        if check.require_resources {
            (
                Status::Fail,
                format!("no applicable resources found by {probe}, but at least one is required"),
            )
        } else {
            (Status::NotApplicable, "no applicable resources".to_string())
        }
    } else {
        let satisfied = |passing: u64| -> bool {
            match check.expect {
                Expect::All => passing == applicable,
                Expect::AtLeastOne => passing >= 1,
                Expect::AtLeast(k) => passing >= k,
                Expect::AtMostFailing(m) => applicable - passing <= m,
                Expect::Percent(p) => (passing as f64) * 100.0 >= p * (applicable as f64),
            }
        };
        // A scope that could not be read stands for any number of resources, each of any
        // status. The rule holds whatever it holds only if it counts passes (more resources,
        // all failing, take no pass away); it fails whatever it holds only if failures already
        // seen are enough (more resources, all passing, can make up any count or share).
        let scopes = !unread_scopes.is_empty();
        let holds_whatever_scopes_hold = |passing: u64| -> bool {
            satisfied(passing)
                && (!scopes
                    || match check.expect {
                        Expect::AtLeastOne | Expect::AtLeast(_) => true,
                        Expect::All | Expect::AtMostFailing(_) => false,
                        Expect::Percent(p) => p <= 0.0,
                    })
        };
        let may_hold = |passing: u64| -> bool {
            satisfied(passing)
                || (scopes
                    && match check.expect {
                        Expect::AtLeastOne | Expect::AtLeast(_) | Expect::Percent(_) => true,
                        Expect::All | Expect::AtMostFailing(_) => false,
                    })
        };
        // Pass only if the rule holds even if every unevaluable resource failed (and every
        // unread scope held failures); waived if it holds only thanks to exceptions; fail only
        // if it fails even if every unevaluable resource passed (and every unread scope held
        // passes); otherwise we cannot know.
        let status = if holds_whatever_scopes_hold(pass) {
            Status::Pass
        } else if holds_whatever_scopes_hold(pass + waived) {
            Status::Waived
        } else if !may_hold(pass + waived + error) {
            Status::Fail
        } else {
            Status::Error
        };
        let mut summary = format!("{pass} of {applicable} pass");
        if fail > 0 {
            summary.push_str(&format!(", {fail} fail"));
        }
        if waived > 0 {
            summary.push_str(&format!(", {waived} waived"));
        }
        if error > 0 {
            summary.push_str(&format!(", {error} could not be evaluated"));
        }
        if check.expect != Expect::All {
            summary.push_str(&format!(" (expected: {})", describe_expect(check.expect)));
            if scopes {
                summary.push_str(&format!(
                    "; {} could not be read and may hold any number of resources",
                    unread_scopes.join(", ")
                ));
            }
        }
        (status, summary)
    };
    CheckOutcome {
        probe,
        status,
        summary,
        error: None,
        evidence: input.evidence,
        basis: Some(basis),
    }
}

/// Notes what an applicable resource of a record or document check says about how current
/// the evidence is: the dates the assertion read (newest and oldest; never one after `now`,
/// which is no evidence of anything done) and a document's review interval. System evidence
/// is current by construction: it was read in this run.
fn note_basis(
    basis: &mut CheckBasis,
    check: &Check,
    kinds: &[crate::probes::Attribute],
    resource: &Resource,
    now: DateTime<Utc>,
) {
    if basis.kind == EvidenceKind::System {
        return;
    }
    let today = now.date_naive();
    for name in &check.assert.attributes {
        let dated = kinds.iter().any(|a| {
            a.name == name.as_str() && matches!(a.kind, AttrKind::Date | AttrKind::Timestamp)
        });
        if !dated || resource.unknown.contains_key(name) {
            continue;
        }
        let Some(day) = resource
            .attributes
            .get(name)
            .and_then(AttrValue::as_str)
            .and_then(|s| s.get(..10))
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .filter(|d| *d <= today)
        else {
            continue;
        };
        basis.newest = basis.newest.max(Some(day));
        basis.oldest = Some(basis.oldest.map_or(day, |o| o.min(day)));
    }
    if basis.kind == EvidenceKind::Document
        && let Some(days) = resource
            .attributes
            .get("review_interval_days")
            .and_then(AttrValue::as_i64)
            .filter(|_| !resource.unknown.contains_key("review_interval_days"))
    {
        basis.review_days = Some(basis.review_days.map_or(days, |d| d.min(days)));
    }
}

fn describe_expect(e: Expect) -> String {
    match e {
        Expect::All => "all".into(),
        Expect::AtLeastOne => "at least one".into(),
        Expect::AtLeast(k) => format!("at least {k}"),
        Expect::AtMostFailing(m) => format!("at most {m} failing"),
        Expect::Percent(p) => format!("at least {p}%"),
    }
}

fn evaluate_resource(
    index: usize,
    check: &Check,
    kinds: &[crate::probes::Attribute],
    resource: &Resource,
    now: DateTime<Utc>,
) -> Finding {
    let actual = actual_values(&check.assert, check.filter.as_ref(), resource);
    let finding = |status: Status, message: String| Finding {
        check: index,
        resource: resource.id.clone(),
        status,
        message,
        actual: actual.clone(),
    };
    if let Some(cause) = &resource.error {
        // Something that could not be read is an error, unless what *was* read of it (say,
        // which system it belongs to) already puts it out of the check's scope.
        let out_of_scope = check.filter.as_ref().is_some_and(|f| {
            f.attributes
                .iter()
                .all(|a| resource.attributes.contains_key(a) && !resource.unknown.contains_key(a))
                && context(kinds, resource, now, &[f])
                    .is_ok_and(|ctx| matches!(run_bool(f, &ctx), Ok(false)))
        });
        if out_of_scope {
            return finding(
                Status::NotApplicable,
                format!(
                    "{} is out of scope (`{}` is false)",
                    resource.name,
                    check
                        .filter
                        .as_ref()
                        .map(|f| f.source.as_str())
                        .unwrap_or("")
                ),
            );
        }
        return finding(
            Status::Error,
            format!("{} could not be read: {cause}", resource.name),
        );
    }
    let read: &[&Expr] = match &check.filter {
        Some(filter) => &[filter, &check.assert],
        None => &[&check.assert],
    };
    let ctx = match context(kinds, resource, now, read) {
        Ok(c) => c,
        Err(e) => return finding(Status::Error, format!("{}: {e}", resource.name)),
    };
    // An expression that reads an attribute the probe could not read is `error` naming why,
    // whatever it would evaluate to (`x == null` must not pass because `x` is unknown).
    let unknown = |expr: &Expr| -> Option<String> {
        let reasons: Vec<String> = expr
            .attributes
            .iter()
            .filter_map(|a| {
                resource
                    .unknown
                    .get(a)
                    .map(|why| format!("{a} is unknown: {why}"))
            })
            .collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    };
    if let Some(filter) = &check.filter {
        if let Some(why) = unknown(filter) {
            return finding(
                Status::Error,
                format!(
                    "{}: cannot evaluate `where` `{}`: {why}",
                    resource.name, filter.source
                ),
            );
        }
        match run_bool(filter, &ctx) {
            Ok(true) => {}
            Ok(false) => {
                return finding(
                    Status::NotApplicable,
                    [
                        resource.name.as_str(),
                        " is out of scope (`",
                        &filter.source,
                        "` is false)",
                    ]
                    .concat(),
                );
            }
            Err(e) => {
                return finding(
                    Status::Error,
                    format!(
                        "{}: cannot evaluate `where` `{}`: {e}",
                        resource.name, filter.source
                    ),
                );
            }
        }
    }
    if let Some(why) = unknown(&check.assert) {
        return finding(
            Status::Error,
            format!(
                "{}: cannot evaluate `{}`: {why}",
                resource.name, check.assert.source
            ),
        );
    }
    match run_bool(&check.assert, &ctx) {
        Ok(true) => finding(
            Status::Pass,
            // Built at its length (`format!` grows by doubling: a third more than the text,
            // for each of tens of thousands of findings a large control holds at once).
            [
                resource.name.as_str(),
                " passes `",
                &check.assert.source,
                "`",
            ]
            .concat(),
        ),
        Ok(false) => finding(
            Status::Fail,
            [
                resource.name.as_str(),
                " fails `",
                &check.assert.source,
                "`",
            ]
            .concat(),
        ),
        Err(e) => finding(
            Status::Error,
            format!(
                "{}: cannot evaluate `{}`: {e}",
                resource.name, check.assert.source
            ),
        ),
    }
}

/// The attribute values the expressions read, as the probe reported them.
fn actual_values(assert: &Expr, filter: Option<&Expr>, resource: &Resource) -> RawJson {
    // The names in order, once each (as a JSON object written from a map would have them),
    // each with the resource's value (null if it has none), written from borrowed values.
    struct Actual<'a>(std::collections::BTreeSet<&'a str>, &'a Resource);
    impl serde::Serialize for Actual<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = serializer.serialize_map(Some(self.0.len()))?;
            for name in &self.0 {
                map.serialize_entry(name, &self.1.attributes[*name])?;
            }
            map.end()
        }
    }
    let names = assert
        .attributes
        .iter()
        .chain(filter.into_iter().flat_map(|f| f.attributes.iter()))
        .map(String::as_str)
        .collect();
    // Never fails: the keys are strings and the values JSON values.
    RawJson::of(&Actual(names, resource)).unwrap_or_else(|_| RawJson::null())
}

fn run_bool(expr: &Expr, ctx: &cel::Context<'_, '_>) -> Result<bool, String> {
    match expr.program.execute(ctx) {
        Ok(cel::Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!("expected a boolean, got {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// The CEL context for one resource: the attributes `exprs` read (dates as timestamps;
/// missing ones as null), `now`, and `days_since(t)`. Only what is read is converted: a
/// resource has up to ~20 attributes (lists, maps) and a check usually reads one or two, for
/// each of tens of thousands of resources.
fn context<'a, 'b>(
    kinds: &[crate::probes::Attribute],
    resource: &Resource,
    now: DateTime<Utc>,
    exprs: &[&Expr],
) -> Result<cel::Context<'a, 'b>, String> {
    let mut ctx = cel::Context::with_env(ENV.clone());
    let now_fixed: DateTime<FixedOffset> = now.fixed_offset();
    ctx.add_variable_from_value("now", cel::Value::Timestamp(now_fixed));
    ctx.add_function("days_since", move |t: DateTime<FixedOffset>| -> i64 {
        (now_fixed - t).num_days()
    })
    .map_err(|e| format!("internal: {e:?}"))?;
    let read = |attr: &&crate::probes::Attribute| {
        exprs
            .iter()
            .any(|e| e.attributes.iter().any(|a| a == attr.name))
    };
    for attr in kinds.iter().filter(read) {
        let raw = &resource.attributes[attr.name];
        ctx.add_variable_from_value(attr.name, to_cel(attr.name, attr.kind, raw)?);
    }
    Ok(ctx)
}

fn to_cel(name: &str, kind: AttrKind, v: &AttrValue) -> Result<cel::Value, String> {
    if v.is_null() {
        return Ok(cel::Value::Null);
    }
    match (kind, v) {
        (AttrKind::Date, AttrValue::String(s)) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|dt| cel::Value::Timestamp(dt.and_utc().fixed_offset()))
            .ok_or_else(|| format!("attribute `{name}`: invalid date `{s}`")),
        (AttrKind::Timestamp, AttrValue::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(cel::Value::Timestamp)
            .map_err(|e| format!("attribute `{name}`: invalid timestamp `{s}`: {e}")),
        _ => cel::to_value(v).map_err(|e| format!("attribute `{name}`: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::compile_file;
    use serde_json::{Value, json};
    use std::path::Path;

    fn control(checks: &str) -> Control {
        claimed("procedure", checks)
    }

    fn claimed(claim: &str, checks: &str) -> Control {
        let text = format!(
            "id: t\ntitle: T\ncategory: C\ndescription: d\nclaim: {claim}\nowner: o\nseverity: low\nchecks:\n{checks}"
        );
        compile_file(Path::new("t.yaml"), &text)
            .map_err(|d| format!("{d:?}"))
            .unwrap()
            .0
    }

    fn person(id: &str, attrs: Value) -> Resource {
        Resource {
            id: format!("hr:{id}"),
            name: format!("Person {id}"),
            attributes: attrs.as_object().cloned().unwrap_or_default().into(),
            error: None,
            unknown: Default::default(),
            scope: false,
        }
    }

    fn input(resources: Vec<Resource>) -> CheckInput {
        CheckInput {
            collected: Ok(Arc::new(Collected {
                resources,
                raw: crate::model::RawJson::null(),
            })),
            evidence: Some(0),
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
            .unwrap()
            .to_utc()
    }

    /// `check(system, document, expect)`: a system claim with one system check and one
    /// document check ending `system` and `document` is `expect` — never a pass whose system
    /// check found nothing to check.
    #[test]
    fn a_system_claim_passes_only_if_the_system_was_checked() {
        use Status::*;
        let c = claimed(
            "system",
            "  - probe: aws.iam.password_policy\n    where: account == \"prod\"\n    assert: present\n  - probe: documents.policies\n    assert: approved_on != null\n",
        );
        let account =
            |name: &str, present: bool| person(name, json!({"account": name, "present": present}));
        let policy = |approved: bool| {
            person(
                "p",
                json!({"approved_on": if approved { json!("2026-01-01") } else { Value::Null }}),
            )
        };
        let check = |accounts: Vec<Resource>, approved: bool, expect: Status| {
            let out = evaluate_control(
                &c,
                &[input(accounts.clone()), input(vec![policy(approved)])],
                now(),
            );
            assert_eq!(
                out.status, expect,
                "{accounts:?} approved={approved}: {}",
                out.summary
            );
            out
        };
        check(vec![account("prod", true)], true, Pass);
        check(vec![account("prod", false)], true, Fail);
        check(vec![account("prod", true)], false, Fail);
        // Nothing applicable on the system side: the policy alone is no pass.
        let out = check(vec![account("staging", true)], true, NotApplicable);
        assert!(
            out.summary
                .starts_with("no system check found anything to check (aws.iam.password_policy)"),
            "{}",
            out.summary
        );
        check(vec![], true, NotApplicable);
        check(vec![], false, Fail);
        // A procedure may pass on records and documents alone.
        let p = claimed(
            "procedure",
            "  - probe: aws.iam.password_policy\n    where: account == \"prod\"\n    assert: present\n  - probe: documents.policies\n    assert: approved_on != null\n",
        );
        let out = evaluate_control(
            &p,
            &[
                input(vec![account("staging", true)]),
                input(vec![policy(true)]),
            ],
            now(),
        );
        assert_eq!(out.status, Pass);
    }

    const TRAINED: &str = "  - probe: hr.people\n    where: days_employed >= 30\n    assert: security_training_date != null && days_since(security_training_date) <= 365\n";

    #[test]
    fn per_resource_verdicts_with_actual_values() {
        let c = control(TRAINED);
        let people = vec![
            person(
                "1",
                json!({"security_training_date": "2026-06-01", "days_employed": 400}),
            ),
            person(
                "2",
                json!({"security_training_date": "2024-06-01", "days_employed": 900}),
            ),
            person(
                "3",
                json!({"security_training_date": null, "days_employed": 10}),
            ),
            person(
                "4",
                json!({"security_training_date": null, "days_employed": 100}),
            ),
        ];
        let out = evaluate_control(&c, &[input(people)], now());
        let statuses: Vec<(&str, Status)> = out
            .findings
            .iter()
            .map(|f| (f.resource.as_str(), f.status))
            .collect();
        assert_eq!(
            statuses,
            [
                ("hr:1", Status::Pass),
                ("hr:2", Status::Fail),
                ("hr:3", Status::NotApplicable),
                ("hr:4", Status::Fail)
            ]
        );
        assert_eq!(out.status, Status::Fail);
        assert_eq!(out.summary, "1 of 3 pass, 2 fail");
        let f = &out.findings[1];
        assert!(
            f.message
                .starts_with("Person 2 fails `security_training_date"),
            "{}",
            f.message
        );
        assert_eq!(
            f.actual.as_str(),
            r#"{"days_employed":900,"security_training_date":"2024-06-01"}"#
        );
    }

    #[test]
    fn collection_errors_are_errors_never_pass_or_fail() {
        let c = control(TRAINED);
        for e in [
            ProbeError::Io("cannot read HR roster r.csv: permission denied".into()),
            ProbeError::Timeout(std::time::Duration::from_secs(60)),
            ProbeError::NotConfigured("hr"),
        ] {
            let out = evaluate_control(
                &c,
                &[CheckInput {
                    collected: Err(e.clone()),
                    evidence: None,
                }],
                now(),
            );
            assert_eq!(out.status, Status::Error);
            assert!(out.summary.contains(&e.to_string()), "{}", out.summary);
            assert!(out.findings.is_empty());
        }
    }

    #[test]
    fn empty_population_is_not_applicable_unless_required() {
        let out = evaluate_control(&control(TRAINED), &[input(vec![])], now());
        assert_eq!(out.status, Status::NotApplicable);
        let required = control(
            "  - probe: documents.policies\n    require_resources: true\n    assert: '!overdue'\n",
        );
        let out = evaluate_control(&required, &[input(vec![])], now());
        assert_eq!(out.status, Status::Fail);
    }

    #[test]
    fn aggregate_rules_are_certain_or_error() {
        // (expect, passes, fails, errors) -> status
        let check = |expect: &str, p: usize, f: usize, e: usize, want: Status| {
            let c = control(&format!(
                "  - probe: hr.people\n    assert: name == 'ok'\n    expect: {expect}\n"
            ));
            let mut rs = Vec::new();
            for i in 0..p {
                rs.push(person(&format!("p{i}"), json!({"name": "ok"})));
            }
            for i in 0..f {
                rs.push(person(&format!("f{i}"), json!({"name": "no"})));
            }
            for i in 0..e {
                let mut r = person(&format!("e{i}"), json!({}));
                r.error = Some("unreadable".into());
                rs.push(r);
            }
            let out = evaluate_control(&c, &[input(rs)], now());
            assert_eq!(out.status, want, "{expect} p={p} f={f} e={e}");
        };
        check("all", 3, 0, 0, Status::Pass);
        check("all", 3, 1, 0, Status::Fail);
        check("all", 3, 1, 1, Status::Fail);
        check("all", 3, 0, 1, Status::Error);
        check("at_least_one", 0, 3, 0, Status::Fail);
        check("at_least_one", 1, 3, 0, Status::Pass);
        check("at_least_one", 0, 3, 1, Status::Error);
        check("{percent: 75}", 3, 1, 0, Status::Pass);
        check("{percent: 75}", 2, 2, 0, Status::Fail);
        check("{percent: 75}", 2, 1, 1, Status::Error);
        check("{at_least: 2}", 2, 5, 0, Status::Pass);
        check("{at_most_failing: 1}", 5, 1, 0, Status::Pass);
        check("{at_most_failing: 1}", 5, 2, 0, Status::Fail);
    }

    /// An account, region or organisation that could not be read may hold any number of
    /// resources: a rule counting resources is never satisfied by its absence, and fails for
    /// certain only on what was seen.
    #[test]
    fn unread_scopes_count_as_any_number_of_resources() {
        // (expect, passes, fails, unreadable resources, unread scopes) -> status
        let check = |expect: &str, p: usize, f: usize, e: usize, s: usize, want: Status| {
            let c = control(&format!(
                "  - probe: hr.people\n    assert: name == 'ok'\n    expect: {expect}\n"
            ));
            let mut rs = Vec::new();
            for i in 0..p {
                rs.push(person(&format!("p{i}"), json!({"name": "ok"})));
            }
            for i in 0..f {
                rs.push(person(&format!("f{i}"), json!({"name": "no"})));
            }
            for i in 0..e {
                let mut r = person(&format!("e{i}"), json!({}));
                r.error = Some("unreadable".into());
                rs.push(r);
            }
            for i in 0..s {
                let mut r = person(&format!("s{i}"), json!({}));
                r.name = format!("AWS acme/region-{i}");
                r.error = Some("access denied to DescribeVpcs".into());
                r.scope = true;
                rs.push(r);
            }
            let out = evaluate_control(&c, &[input(rs)], now());
            assert_eq!(
                out.status, want,
                "{expect} p={p} f={f} e={e} s={s}: {}",
                out.summary
            );
            out.summary
        };
        // Without the unread region, 2 of 3 would be 66%: it might hold 100 failures.
        let summary = check("{percent: 50}", 2, 0, 0, 1, Status::Error);
        assert!(
            summary.ends_with(
                "(expected: at least 50%); AWS acme/region-0 could not be read and may hold any number of resources"
            ),
            "{summary}"
        );
        check("{percent: 50}", 2, 0, 0, 0, Status::Pass);
        check("{percent: 50}", 2, 0, 1, 0, Status::Pass);
        // ... or 100 passes: not a certain failure either.
        check("{percent: 50}", 1, 5, 0, 1, Status::Error);
        check("{percent: 50}", 1, 5, 0, 0, Status::Fail);
        check("{percent: 0}", 0, 3, 0, 1, Status::Pass);
        // At most one failing: the region may hold two; failures seen stay.
        check("{at_most_failing: 1}", 5, 0, 0, 1, Status::Error);
        check("{at_most_failing: 1}", 5, 1, 0, 1, Status::Error);
        check("{at_most_failing: 1}", 5, 2, 0, 1, Status::Fail);
        check("{at_most_failing: 1}", 5, 0, 1, 0, Status::Pass);
        // At least: passes seen stay passes, and the region may hold the missing ones.
        check("at_least_one", 1, 0, 0, 1, Status::Pass);
        check("at_least_one", 0, 3, 0, 1, Status::Error);
        check("{at_least: 3}", 3, 4, 0, 2, Status::Pass);
        check("{at_least: 3}", 1, 0, 0, 1, Status::Error);
        check("{at_least: 3}", 1, 0, 1, 0, Status::Fail);
        // All: unchanged (the scope is an error finding like any other).
        check("all", 3, 0, 0, 1, Status::Error);
        check("all", 3, 1, 0, 1, Status::Fail);
    }

    #[test]
    fn an_unread_scope_out_of_the_checks_scope_does_not_count() {
        let c = control(
            "  - probe: hr.people\n    where: department == 'eng'\n    assert: name == 'ok'\n    expect: {percent: 50}\n",
        );
        let mut other = person("s", json!({"department": "sales"}));
        other.error = Some("access denied".into());
        other.scope = true;
        let rs = vec![
            person("1", json!({"name": "ok", "department": "eng"})),
            other.clone(),
        ];
        let out = evaluate_control(&c, &[input(rs)], now());
        assert_eq!(out.status, Status::Pass, "{}", out.summary);
        // In scope, or not known to be out of it: it counts.
        other.attributes = json!({}).as_object().cloned().unwrap_or_default().into();
        let rs = vec![
            person("1", json!({"name": "ok", "department": "eng"})),
            other,
        ];
        let out = evaluate_control(&c, &[input(rs)], now());
        assert_eq!(out.status, Status::Error, "{}", out.summary);
    }

    #[test]
    fn unknown_attributes_make_the_checks_that_read_them_error_naming_why() {
        let mut r = person("1", json!({"end_date": null, "name": "ok"}));
        r.unknown
            .insert("end_date".into(), "not visible to these credentials".into());
        let check = |checks: &str, want: Status| {
            let out = evaluate_control(&control(checks), &[input(vec![r.clone()])], now());
            assert_eq!(
                out.findings[0].status, want,
                "{checks}: {}",
                out.findings[0].message
            );
            out.findings[0].message.clone()
        };
        // `end_date == null` would be true: unknown is not "none".
        let msg = check(
            "  - probe: hr.people\n    assert: end_date == null\n",
            Status::Error,
        );
        assert!(
            msg.ends_with("end_date is unknown: not visible to these credentials"),
            "{msg}"
        );
        check(
            "  - probe: hr.people\n    where: end_date != null\n    assert: name == 'ok'\n",
            Status::Error,
        );
        // A check that does not read it is evaluated as usual.
        check(
            "  - probe: hr.people\n    assert: name == 'ok'\n",
            Status::Pass,
        );
    }

    #[test]
    fn unreadable_resources_are_errors_unless_what_was_read_puts_them_out_of_scope() {
        let check = |attrs: Value, want: Status| {
            let mut r = person("1", attrs.clone());
            r.error = Some("listing denied".into());
            let out = evaluate_control(&control(TRAINED), &[input(vec![r])], now());
            assert_eq!(out.findings[0].status, want, "{attrs}");
            out.findings[0].message.clone()
        };
        // Nothing read: the `where` cannot be decided, so the failure to read shows.
        let msg = check(json!({}), Status::Error);
        assert_eq!(msg, "Person 1 could not be read: listing denied");
        // In scope or undecidable: still the read error, never pass or fail.
        check(json!({"days_employed": 400}), Status::Error);
        check(json!({"days_employed": "many"}), Status::Error);
        // Read enough to know the check does not apply.
        check(json!({"days_employed": 3}), Status::NotApplicable);
    }

    #[test]
    fn exceptions_waive_failures_until_they_expire() {
        let text = "exceptions:\n  - id: EXC-1\n    control: t\n    resources: [\"hr:f*\"]\n    reason: laptop replaced\n    owner: sec\n    ticket: SEC-9\n    expires_on: 2026-11-30\n";
        let ids = ["t".to_string()].into();
        let day = |s: &str| s.parse::<chrono::NaiveDate>().unwrap();
        let mut c = control("  - probe: hr.people\n    assert: name == 'ok'\n");
        c.exceptions =
            crate::exceptions::parse(Path::new("e.yaml"), text, &ids, day("2026-11-22")).unwrap();
        let people = || {
            vec![
                person("p1", json!({"name": "ok"})),
                person("f1", json!({"name": "no"})),
                person("f2", json!({"name": "no"})),
                person("x1", json!({"name": "no"})),
            ]
        };
        let out = evaluate_control(&c, &[input(people())], now());
        let statuses: Vec<Status> = out.findings.iter().map(|f| f.status).collect();
        assert_eq!(
            statuses,
            [Status::Pass, Status::Waived, Status::Waived, Status::Fail]
        );
        assert!(
            out.findings[1].message.contains(
                "waived by exception EXC-1 (SEC-9, owner sec, until 2026-11-30): laptop replaced"
            ),
            "{}",
            out.findings[1].message
        );
        assert_eq!(out.status, Status::Fail, "x1 is not covered");
        assert_eq!(out.summary, "1 of 4 pass, 1 fail, 2 waived");
        assert_eq!(out.exceptions.len(), 1);
        assert_eq!(out.exceptions[0].status, "applied");
        assert_eq!(out.exceptions[0].resources, ["hr:f1", "hr:f2"]);

        // Only covered failures: waived, not passing.
        let only = |rs: Vec<Resource>| evaluate_control(&c, &[input(rs)], now());
        let out = only(people().into_iter().take(3).collect());
        assert_eq!(out.status, Status::Waived);

        // After expiry: failing again, saying which exception expired.
        let later = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let out = evaluate_control(&c, &[input(people())], later);
        assert_eq!(out.findings[1].status, Status::Fail);
        assert!(
            out.findings[1]
                .message
                .ends_with("(exception EXC-1 expired on 2026-11-30: it no longer applies)"),
            "{}",
            out.findings[1].message
        );
        assert_eq!(out.exceptions[0].status, "expired");

        // Errors are never waived.
        let mut broken = person("f9", json!({}));
        broken.error = Some("unreadable".into());
        let out = only(vec![broken]);
        assert_eq!(out.findings[0].status, Status::Error);
        assert_eq!(out.exceptions[0].status, "unused");
        assert!(out.exceptions[0].resources.is_empty());

        // Nothing fails any more: in force, it is unused; expired, it is still reported.
        let fixed = vec![person("f1", json!({"name": "ok"}))];
        let out = evaluate_control(&c, &[input(fixed.clone())], now());
        assert_eq!(out.status, Status::Pass);
        assert_eq!(out.exceptions[0].status, "unused");
        let out = evaluate_control(&c, &[input(fixed)], later);
        assert_eq!(out.status, Status::Pass);
        assert_eq!(out.exceptions[0].status, "expired");
        assert!(out.exceptions[0].resources.is_empty());
    }

    #[test]
    fn a_check_reads_only_the_attributes_its_expressions_name() {
        // `end_date` is not a date: a check that reads it is `error` naming it, one that does
        // not is evaluated on what it reads (each check's context holds only its attributes).
        let bad = || person("1", json!({"end_date": "soon", "department": "eng"}));
        let reads_it = control("  - probe: hr.people\n    assert: end_date == null\n");
        let out = evaluate_control(&reads_it, &[input(vec![bad()])], now());
        assert_eq!(out.findings[0].status, Status::Error);
        assert!(
            out.findings[0]
                .message
                .contains("attribute `end_date`: invalid date `soon`"),
            "{}",
            out.findings[0].message
        );
        let other = control(
            "  - probe: hr.people\n    where: department == 'eng'\n    assert: start_date == null\n",
        );
        let out = evaluate_control(&other, &[input(vec![bad()])], now());
        assert_eq!(
            out.findings[0].status,
            Status::Pass,
            "{}",
            out.findings[0].message
        );
        let out = evaluate_control(
            &other,
            &[input(vec![person(
                "2",
                json!({"department": "eng", "start_date": "2020-01-01"}),
            )])],
            now(),
        );
        assert_eq!(
            out.findings[0].status,
            Status::Fail,
            "{}",
            out.findings[0].message
        );
    }

    #[test]
    fn expression_runtime_errors_are_error_findings() {
        let c = control("  - probe: hr.people\n    assert: days_since(end_date) > 3\n");
        let out = evaluate_control(
            &c,
            &[input(vec![person("1", json!({"end_date": null}))])],
            now(),
        );
        assert_eq!(out.findings[0].status, Status::Error);
        assert_eq!(out.status, Status::Error);
    }
}
