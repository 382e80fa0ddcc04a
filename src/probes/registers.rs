//! Register probes: the security team's registers (`sources.registers`, see
//! [`crate::registers`]) as populations.
//!
//! - `registers.vendors` — one resource per vendor;
//! - `registers.risks` — one per risk;
//! - `registers.incidents` — one per incident;
//! - `registers.exercises` — one per kind of exercise (BC/DR test, IR tabletop, backup
//!   restore), with the latest one;
//! - `registers.meetings` — one per kind of meeting, with the latest one;
//! - `registers.insurance` — one per policy;
//! - `registers.access_reviews` — one per system that needs reviews, with the latest review;
//! - `registers.devices` — one per endpoint.
//!
//! The folder is read once per run. A register file that does not parse makes every check
//! reading the registers `error`, naming `file:line:col` and the field; a register file that
//! is missing makes every check reading *that* register `error`, naming the file (an empty
//! register is written `vendors: []`). A recorded date after the run is unknown (the date rule,
//! [`super::dates`]); exercises, meetings and access reviews dated ahead are planned and do not
//! count until held.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Attribute, Collected, Probe, ProbeContext, ProbeError, Resource, dates, object};
use crate::registers::{self, ExerciseKind, MeetingKind, Registers};

/// Register probes take no parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// The registers of the run, with register `name`'s file known to exist.
pub(crate) async fn register(ctx: &ProbeContext, name: &str) -> Result<Arc<Registers>, ProbeError> {
    let r = load(ctx).await?;
    r.require(name).map_err(ProbeError::Io)?;
    Ok(r)
}

/// The registers of the run, read once.
async fn load(ctx: &ProbeContext) -> Result<Arc<Registers>, ProbeError> {
    let source = ctx
        .sources
        .registers
        .as_ref()
        .ok_or(ProbeError::NotConfigured("registers"))?;
    let dir = ctx.resolve_path(&source.path);
    ctx.cache
        .get_or_fetch(&format!("registers:{}", dir.display()), async {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || registers::load(&dir))
                .await
                .map_err(|e| ProbeError::Io(format!("internal: {e}")))?
                .map_err(|diags| {
                    ProbeError::BadBody(
                        diags
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; "),
                    )
                })
        })
        .await
}

fn date(d: Option<NaiveDate>) -> Value {
    d.map_or(Value::Null, |d| Value::String(d.to_string()))
}

fn resource(id: String, name: String, attributes: Value) -> Resource {
    Resource {
        id,
        name,
        attributes: object(attributes),
        error: None,
        unknown: Default::default(),
        scope: false,
    }
}

/// The date rule ([`super::dates`]) for the recorded dates of one entry: each date with the
/// attributes that come from it, the first being its own field.
fn recorded(
    mut r: Resource,
    today: NaiveDate,
    recorded: &[(Option<NaiveDate>, &[&str])],
) -> Resource {
    for (date, attributes) in recorded {
        if let Some(field) = attributes.first() {
            dates::apply(&mut r, today, field, *date, attributes);
        }
    }
    r
}

fn collected(register: &str, resources: Vec<Resource>, raw: Value) -> Collected {
    Collected {
        resources,
        raw: json!({"source": "registers", "register": register, "entries": raw}).into(),
    }
}

fn kebab(s: &str) -> String {
    crate::catalog::kebab(s)
}

// ----------------------------------------------------------------------------------------

/// `registers.vendors`.
pub struct Vendors;

impl Probe for Vendors {
    const NAME: &'static str = "registers.vendors";
    const SOURCE: &'static str = "registers";
    const KIND: super::EvidenceKind = super::EvidenceKind::Record;
    const SUMMARY: &'static str = "The vendor register (vendors.yaml), one resource per vendor: subprocessor or not, risk tier, SOC 2 review and risk assessment dates.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("name", String, "vendor name"),
        attr!("purpose", String, "what the vendor does for the company"),
        attr!("location", String, "where it processes the data"),
        attr!(
            "subprocessor",
            Bool,
            "processes customer data on the company's behalf"
        ),
        attr!("risk_tier", String, "`low`, `medium` or `high`"),
        attr!("data_shared", List, "kinds of data shared"),
        attr!(
            "soc2_report_reviewed_on",
            Date,
            "when its SOC 2 report (or equivalent) was last reviewed, null if never"
        ),
        attr!(
            "assessed_on",
            Date,
            "when it was last risk-assessed, null if never"
        ),
        attr!("owner", String, "internal owner, null if none"),
    ];
    const EXAMPLE: &'static str = r#"probe: registers.vendors
where: risk_tier != "low"
assert: soc2_report_reviewed_on != null && days_since(soc2_report_reviewed_on) <= 365
"#;

    type Params = NoParams;

    async fn collect(ctx: &ProbeContext, _: &NoParams) -> Result<Collected, ProbeError> {
        let r = register(ctx, "vendors").await?;
        let today = ctx.now.date_naive();
        let resources = r
            .vendors
            .iter()
            .map(|v| {
                let r = resource(
                    format!("vendor:{}", kebab(&v.name)),
                    format!("vendor {}", v.name),
                    json!({
                        "name": v.name,
                        "purpose": v.purpose,
                        "location": v.location,
                        "subprocessor": v.subprocessor,
                        "risk_tier": v.risk_tier,
                        "data_shared": v.data_shared,
                        "soc2_report_reviewed_on": date(v.soc2_report_reviewed_on),
                        "assessed_on": date(v.assessed_on),
                        "owner": v.owner,
                    }),
                );
                recorded(
                    r,
                    today,
                    &[
                        (v.soc2_report_reviewed_on, &["soc2_report_reviewed_on"]),
                        (v.assessed_on, &["assessed_on"]),
                    ],
                )
            })
            .collect();
        Ok(collected("vendors", resources, json!(r.vendors)))
    }
}

/// `registers.risks`.
pub struct Risks;

impl Probe for Risks {
    const NAME: &'static str = "registers.risks";
    const SOURCE: &'static str = "registers";
    const KIND: super::EvidenceKind = super::EvidenceKind::Record;
    const SUMMARY: &'static str = "The risk register (risks.yaml), one resource per risk: owner, likelihood, impact, treatment and when it was last assessed.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("id", String, "risk id"),
        attr!("title", String, "risk title"),
        attr!("owner", String, "risk owner"),
        attr!("likelihood", String, "`low`, `medium` or `high`"),
        attr!("impact", String, "`low`, `medium` or `high`"),
        attr!(
            "score",
            Int,
            "likelihood × impact, 1 (low/low) to 9 (high/high)"
        ),
        attr!(
            "treatment",
            String,
            "`mitigate`, `accept`, `transfer` or `avoid`"
        ),
        attr!(
            "treatment_plan",
            String,
            "how the treatment is carried out, null if none"
        ),
        attr!("controls", List, "ids of the controls that mitigate it"),
        attr!("reviewed_on", Date, "when it was last assessed"),
        attr!("closed", Bool, "the risk no longer applies"),
    ];
    const EXAMPLE: &'static str = r#"probe: registers.risks
where: "!closed"
assert: days_since(reviewed_on) <= 365 && (treatment != "mitigate" || size(controls) > 0)
"#;

    type Params = NoParams;

    async fn collect(ctx: &ProbeContext, _: &NoParams) -> Result<Collected, ProbeError> {
        let r = register(ctx, "risks").await?;
        let level = |l: registers::Level| match l {
            registers::Level::Low => 1,
            registers::Level::Medium => 2,
            registers::Level::High => 3,
        };
        let today = ctx.now.date_naive();
        let resources = r
            .risks
            .iter()
            .map(|k| {
                let r = resource(
                    format!("risk:{}", k.id),
                    format!("risk {} ({})", k.id, k.title),
                    json!({
                        "id": k.id,
                        "title": k.title,
                        "owner": k.owner,
                        "likelihood": k.likelihood,
                        "impact": k.impact,
                        "score": level(k.likelihood) * level(k.impact),
                        "treatment": k.treatment,
                        "treatment_plan": k.treatment_plan,
                        "controls": k.controls,
                        "reviewed_on": k.reviewed_on.to_string(),
                        "closed": k.closed,
                    }),
                );
                recorded(r, today, &[(Some(k.reviewed_on), &["reviewed_on"])])
            })
            .collect();
        Ok(collected("risks", resources, json!(r.risks)))
    }
}

/// `registers.incidents`.
pub struct Incidents;

impl Probe for Incidents {
    const NAME: &'static str = "registers.incidents";
    const SOURCE: &'static str = "registers";
    const KIND: super::EvidenceKind = super::EvidenceKind::Record;
    const SUMMARY: &'static str = "The incident register (incidents.yaml), one resource per security incident: tracking, resolution and lessons learned.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("id", String, "incident id"),
        attr!("title", String, "incident title"),
        attr!("severity", String, "`low`, `medium`, `high` or `critical`"),
        attr!("owner", String, "who handles it"),
        attr!("ticket", String, "where it is tracked, null if nowhere"),
        attr!("opened", Date, "when it was opened"),
        attr!("resolved", Date, "when it was resolved, null while open"),
        attr!("open", Bool, "not resolved yet"),
        attr!(
            "lessons_learned_link",
            String,
            "the lessons-learned document, null if none"
        ),
        attr!(
            "lessons_learned_on",
            Date,
            "when lessons learned were shared, null if not yet"
        ),
        attr!(
            "days_since_resolved",
            Int,
            "days since it was resolved, null while open"
        ),
    ];
    const EXAMPLE: &'static str = r#"probe: registers.incidents
where: "!open && days_since_resolved > 30"
assert: lessons_learned_on != null && lessons_learned_link != null
"#;

    type Params = NoParams;

    async fn collect(ctx: &ProbeContext, _: &NoParams) -> Result<Collected, ProbeError> {
        let r = register(ctx, "incidents").await?;
        let today = ctx.now.date_naive();
        let resources = r
            .incidents
            .iter()
            .map(|i| {
                let r = resource(
                    format!("incident:{}", i.id),
                    format!("incident {} ({})", i.id, i.title),
                    json!({
                        "id": i.id,
                        "title": i.title,
                        "severity": i.severity,
                        "owner": i.owner,
                        "ticket": i.ticket,
                        "opened": i.opened.to_string(),
                        "resolved": date(i.resolved),
                        "open": i.resolved.is_none(),
                        "lessons_learned_link": i.lessons_learned_link,
                        "lessons_learned_on": date(i.lessons_learned_on),
                        "days_since_resolved": i.resolved.map(|d| (today - d).num_days()),
                    }),
                );
                recorded(
                    r,
                    today,
                    &[
                        (Some(i.opened), &["opened"]),
                        (i.resolved, &["resolved", "open", "days_since_resolved"]),
                        (i.lessons_learned_on, &["lessons_learned_on"]),
                    ],
                )
            })
            .collect();
        Ok(collected("incidents", resources, json!(r.incidents)))
    }
}

/// `registers.exercises`.
pub struct Exercises;

impl Probe for Exercises {
    const NAME: &'static str = "registers.exercises";
    const SOURCE: &'static str = "registers";
    const KIND: super::EvidenceKind = super::EvidenceKind::Record;
    const SUMMARY: &'static str = "The exercise register (exercises.yaml), one resource per kind of exercise — bcdr_test, ir_tabletop, backup_restore — with the latest one held (null when never held; planned ones do not count).";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!(
            "kind",
            String,
            "`bcdr_test`, `ir_tabletop` or `backup_restore`"
        ),
        attr!(
            "last_date",
            Date,
            "date of the latest exercise of this kind, null if never"
        ),
        attr!(
            "last_outcome",
            String,
            "`passed`, `passed_with_findings` or `failed`, null if never"
        ),
        attr!(
            "last_follow_up",
            String,
            "changes made after the latest one, null if none"
        ),
        attr!(
            "count",
            Int,
            "exercises of this kind held so far (planned ones, dated after today, do not count)"
        ),
    ];
    const EXAMPLE: &'static str = r#"probe: registers.exercises
where: kind == "ir_tabletop"
assert: last_date != null && days_since(last_date) <= 365 && last_outcome != "failed"
"#;

    type Params = NoParams;

    async fn collect(ctx: &ProbeContext, _: &NoParams) -> Result<Collected, ProbeError> {
        let r = register(ctx, "exercises").await?;
        let today = ctx.now.date_naive();
        let kinds = [
            (
                ExerciseKind::BcdrTest,
                "bcdr_test",
                "business continuity and disaster recovery test",
            ),
            (
                ExerciseKind::IrTabletop,
                "ir_tabletop",
                "incident response tabletop exercise",
            ),
            (
                ExerciseKind::BackupRestore,
                "backup_restore",
                "backup restoration test",
            ),
        ];
        let resources = kinds
            .iter()
            .map(|(kind, key, label)| {
                let of_kind: Vec<&registers::Exercise> = r
                    .exercises
                    .iter()
                    .filter(|e| e.kind == *kind && e.date <= today)
                    .collect();
                let last = of_kind.iter().max_by_key(|e| e.date);
                resource(
                    format!("exercises:{key}"),
                    format!("latest {label}"),
                    json!({
                        "kind": key,
                        "last_date": date(last.map(|e| e.date)),
                        "last_outcome": last.map(|e| e.outcome),
                        "last_follow_up": last.and_then(|e| e.follow_up.clone()),
                        "count": of_kind.len(),
                    }),
                )
            })
            .collect();
        Ok(collected("exercises", resources, json!(r.exercises)))
    }
}

/// `registers.meetings`.
pub struct Meetings;

impl Probe for Meetings {
    const NAME: &'static str = "registers.meetings";
    const SOURCE: &'static str = "registers";
    const KIND: super::EvidenceKind = super::EvidenceKind::Record;
    const SUMMARY: &'static str = "The meeting register (meetings.yaml), one resource per kind of meeting — board_security_review, security_team — with the latest one.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("kind", String, "`board_security_review` or `security_team`"),
        attr!(
            "last_date",
            Date,
            "date of the latest meeting of this kind, null if never"
        ),
        attr!(
            "last_independent_attendees",
            Int,
            "independent attendees at the latest meeting of this kind, null if never"
        ),
        attr!(
            "last_topics",
            List,
            "topics of the latest meeting, empty if never"
        ),
        attr!(
            "count",
            Int,
            "meetings of this kind held so far (planned ones do not count)"
        ),
    ];
    const EXAMPLE: &'static str = r#"probe: registers.meetings
where: kind == "board_security_review"
assert: last_date != null && days_since(last_date) <= 365
"#;

    type Params = NoParams;

    async fn collect(ctx: &ProbeContext, _: &NoParams) -> Result<Collected, ProbeError> {
        let r = register(ctx, "meetings").await?;
        let today = ctx.now.date_naive();
        let kinds = [
            (
                MeetingKind::BoardSecurityReview,
                "board_security_review",
                "board / advisor security review",
            ),
            (
                MeetingKind::SecurityTeam,
                "security_team",
                "security team meeting",
            ),
        ];
        let resources = kinds
            .iter()
            .map(|(kind, key, label)| {
                let of_kind: Vec<&registers::Meeting> = r
                    .meetings
                    .iter()
                    .filter(|m| m.kind == *kind && m.date <= today)
                    .collect();
                let last = of_kind.iter().max_by_key(|m| m.date);
                resource(
                    format!("meetings:{key}"),
                    format!("latest {label}"),
                    json!({
                        "kind": key,
                        "last_date": date(last.map(|m| m.date)),
                        "last_independent_attendees": last.map(|m| m.independent_attendees),
                        "last_topics": last.map(|m| m.topics.clone()).unwrap_or_default(),
                        "count": of_kind.len(),
                    }),
                )
            })
            .collect();
        Ok(collected("meetings", resources, json!(r.meetings)))
    }
}

/// `registers.insurance`.
pub struct InsurancePolicies;

impl Probe for InsurancePolicies {
    const NAME: &'static str = "registers.insurance";
    const SOURCE: &'static str = "registers";
    const KIND: super::EvidenceKind = super::EvidenceKind::Record;
    const SUMMARY: &'static str = "The insurance register (insurance.yaml), one resource per policy, with whether it is in force today.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("carrier", String, "insurer"),
        attr!("coverage", String, "what it covers"),
        attr!("limit", String, "limit of liability"),
        attr!("starts", Date, "first day of cover"),
        attr!("expires", Date, "last day of cover"),
        attr!("in_force", Bool, "today is within the policy period"),
    ];
    const EXAMPLE: &'static str = r#"probe: registers.insurance
require_resources: true
expect: at_least_one
assert: in_force
"#;

    type Params = NoParams;

    async fn collect(ctx: &ProbeContext, _: &NoParams) -> Result<Collected, ProbeError> {
        let r = register(ctx, "insurance").await?;
        let today = ctx.now.date_naive();
        let resources = r
            .insurance
            .iter()
            .map(|p| {
                resource(
                    format!(
                        "insurance:{}:{}",
                        kebab(&p.carrier),
                        p.policy_number
                            .clone()
                            .unwrap_or_else(|| p.starts.to_string())
                    ),
                    format!("{} policy {} to {}", p.carrier, p.starts, p.expires),
                    json!({
                        "carrier": p.carrier,
                        "coverage": p.coverage,
                        "limit": p.limit,
                        "starts": p.starts.to_string(),
                        "expires": p.expires.to_string(),
                        "in_force": p.starts <= today && today <= p.expires,
                    }),
                )
            })
            .collect();
        Ok(collected("insurance", resources, json!(r.insurance)))
    }
}

/// `registers.access_reviews`.
pub struct AccessReviews;

impl Probe for AccessReviews {
    const NAME: &'static str = "registers.access_reviews";
    const SOURCE: &'static str = "registers";
    const KIND: super::EvidenceKind = super::EvidenceKind::Record;
    const SUMMARY: &'static str = "User access reviews (access_reviews.yaml), one resource per system that needs them: every configured AWS account (aws:<name>) and GitHub organisation (github:<org>), sources.registers.systems, and any system reviewed.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!(
            "system",
            String,
            "`aws:<account>`, `github:<org>` or a declared system"
        ),
        attr!(
            "last_reviewed_on",
            Date,
            "the latest review, null if never reviewed"
        ),
        attr!(
            "last_reviewer",
            String,
            "who did the latest review, null if never"
        ),
        attr!(
            "reviews",
            Int,
            "reviews done so far (one dated after today does not count)"
        ),
    ];
    const EXAMPLE: &'static str = r#"probe: registers.access_reviews
require_resources: true
assert: last_reviewed_on != null && days_since(last_reviewed_on) <= 90
"#;

    type Params = NoParams;

    async fn collect(ctx: &ProbeContext, _: &NoParams) -> Result<Collected, ProbeError> {
        let r = register(ctx, "access_reviews").await?;
        let today = ctx.now.date_naive();
        let mut systems: BTreeSet<String> = BTreeSet::new();
        if let Some(aws) = &ctx.sources.aws {
            systems.extend(aws.accounts.iter().map(|a| format!("aws:{}", a.name)));
        }
        if let Some(gh) = &ctx.sources.github {
            systems.extend(gh.orgs.iter().map(|o| format!("github:{o}")));
        }
        if let Some(reg) = &ctx.sources.registers {
            systems.extend(reg.systems.iter().cloned());
        }
        systems.extend(r.access_reviews.iter().map(|a| a.system.clone()));
        let resources = systems
            .iter()
            .map(|system| {
                let reviews: Vec<&registers::AccessReview> = r
                    .access_reviews
                    .iter()
                    .filter(|a| &a.system == system && a.reviewed_on <= today)
                    .collect();
                let last = reviews.iter().max_by_key(|a| a.reviewed_on);
                resource(
                    format!("access-review:{system}"),
                    format!("user access reviews of {system}"),
                    json!({
                        "system": system,
                        "last_reviewed_on": date(last.map(|a| a.reviewed_on)),
                        "last_reviewer": last.map(|a| a.reviewer.clone()),
                        "reviews": reviews.len(),
                    }),
                )
            })
            .collect();
        Ok(collected(
            "access_reviews",
            resources,
            json!(r.access_reviews),
        ))
    }
}

/// `registers.devices`.
pub struct Devices;

impl Probe for Devices {
    const NAME: &'static str = "registers.devices";
    const SOURCE: &'static str = "registers";
    const KIND: super::EvidenceKind = super::EvidenceKind::Record;
    const SUMMARY: &'static str = "Company endpoints (devices.yaml, an MDM export), one resource per device: disk encryption, anti-virus, screen lock, last check-in.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("id", String, "serial number or MDM id"),
        attr!("owner", String, "assigned person's work email"),
        attr!("os", String, "operating system and version"),
        attr!("disk_encrypted", Bool, "full-disk encryption is on"),
        attr!("antivirus", Bool, "anti-virus / EDR is running"),
        attr!(
            "screen_lock",
            Bool,
            "a password with screen lock is enforced"
        ),
        attr!("last_check_in", Date, "when it last reported to the MDM"),
    ];
    const EXAMPLE: &'static str = r#"probe: registers.devices
where: days_since(last_check_in) <= 30
assert: disk_encrypted && antivirus && screen_lock
"#;

    type Params = NoParams;

    async fn collect(ctx: &ProbeContext, _: &NoParams) -> Result<Collected, ProbeError> {
        let r = register(ctx, "devices").await?;
        let today = ctx.now.date_naive();
        let resources = r
            .devices
            .iter()
            .map(|d| {
                let r = resource(
                    format!("device:{}", d.id),
                    format!("device {} of {}", d.id, d.owner),
                    json!({
                        "id": d.id,
                        "owner": d.owner,
                        "os": d.os,
                        "disk_encrypted": d.disk_encrypted,
                        "antivirus": d.antivirus,
                        "screen_lock": d.screen_lock,
                        "last_check_in": d.last_check_in.to_string(),
                    }),
                );
                recorded(r, today, &[(Some(d.last_check_in), &["last_check_in"])])
            })
            .collect();
        Ok(collected("devices", resources, json!(r.devices)))
    }
}
