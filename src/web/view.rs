//! The public view model: what the trust page, `/api/v1/trust` and the feed say about each
//! control.
//!
//! Built by one pure function, [`trust_view`], from the catalog, the trust-page configuration
//! and the stored evaluations of each control. The types here are the public JSON contract
//! (stable field names). They have no field for findings, resources, messages or evidence, so
//! nothing internal can reach the public side by accident. Nothing here depends on when the
//! view is built beyond `now` deciding what is stale: the same data and `now` give the same
//! view, byte for byte once serialized.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

use crate::catalog::{Catalog, Claim, Control};
use crate::config::{FailingDisplay, TrustPageConfig};
use crate::model::{CheckBasis, ControlHistory, EvidenceKind, Status};
use crate::schedule::CronSchedule;
use crate::store::ResultBasis;

use super::history::{self, DayRun};
use super::narrative::{Narrative, SectionView, SubprocessorView};

/// Days of history shown per control.
pub const HISTORY_DAYS: u32 = 90;

/// A result dated further in the future than this is not believed (clock trouble).
const CLOCK_SKEW_TOLERANCE: Duration = Duration::minutes(5);

/// The public verdict about one control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Badge {
    /// The newest result is a pass, evaluated within the control's freshness window.
    Passing,
    /// The newest result is a fresh failure (or a waived failure).
    NeedsAttention,
    /// A fresh failure, shown without detail (`failing_display: neutral`). Never green.
    InRemediation,
    /// Never evaluated, or the newest evaluation could not complete or did not apply.
    NotVerified,
    /// The newest result is older than the control's freshness window.
    Stale,
}

impl Badge {
    /// Every badge, in legend order.
    pub const ALL: [Badge; 5] = [
        Badge::Passing,
        Badge::NeedsAttention,
        Badge::InRemediation,
        Badge::Stale,
        Badge::NotVerified,
    ];

    /// The badges a page with this failing display can show, in legend order.
    pub fn shown(display: FailingDisplay) -> impl Iterator<Item = Badge> {
        Badge::ALL
            .into_iter()
            .filter(move |&b| b.present(display) == b)
    }

    /// How this badge is shown publicly: failures become "in remediation" when the page is
    /// `neutral` about them.
    pub fn present(self, display: FailingDisplay) -> Badge {
        match (self, display) {
            (Badge::NeedsAttention, FailingDisplay::Neutral) => Badge::InRemediation,
            (Badge::InRemediation, FailingDisplay::Detail) => Badge::NeedsAttention,
            (b, _) => b,
        }
    }

    /// The JSON value (`passing`, `needs_attention`, `in_remediation`, `not_verified`,
    /// `stale`).
    pub fn as_str(self) -> &'static str {
        match self {
            Badge::Passing => "passing",
            Badge::NeedsAttention => "needs_attention",
            Badge::InRemediation => "in_remediation",
            Badge::NotVerified => "not_verified",
            Badge::Stale => "stale",
        }
    }

    /// The badge named `text` (see [`Badge::as_str`]).
    pub fn parse(text: &str) -> Option<Badge> {
        Badge::ALL.into_iter().find(|b| b.as_str() == text)
    }

    /// The text shown on the badge.
    pub fn label(self) -> &'static str {
        match self {
            Badge::Passing => "Passing",
            Badge::NeedsAttention => "Needs attention",
            Badge::InRemediation => "In remediation",
            Badge::NotVerified => "Not verified",
            Badge::Stale => "Stale",
        }
    }

    /// What the badge means, for the page's legend.
    pub fn meaning(self) -> &'static str {
        match self {
            Badge::Passing => {
                "The most recent automated check passed, and it ran recently enough to reflect the current state."
            }
            Badge::NeedsAttention => {
                "The most recent automated check found exceptions to this control."
            }
            Badge::InRemediation => {
                "The most recent automated check found something to fix, and the fix is under way."
            }
            Badge::Stale => {
                "The most recent check is older than its freshness window, so its result may no longer be current."
            }
            Badge::NotVerified => {
                "Not verified automatically: the check has not run yet, its last run could not complete, or it found nothing to check."
            }
        }
    }
}

/// The honest badge for a control whose newest result is `latest` (if any).
///
/// Green only for a pass evaluated within `freshness` of `now`; anything else that is not
/// freshly passing is something other than green.
pub fn badge_for(
    latest: Option<(Status, DateTime<Utc>)>,
    freshness: Duration,
    now: DateTime<Utc>,
) -> Badge {
    let Some((status, evaluated_at)) = latest else {
        return Badge::NotVerified;
    };
    if status == Status::Error || evaluated_at > now + CLOCK_SKEW_TOLERANCE {
        return Badge::NotVerified;
    }
    if now - evaluated_at > freshness {
        return Badge::Stale;
    }
    match status {
        Status::Pass => Badge::Passing,
        Status::Fail | Status::Waived => Badge::NeedsAttention,
        Status::NotApplicable | Status::Error => Badge::NotVerified,
    }
}

/// The whole public trust view (`GET /api/v1/trust`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrustView {
    pub company: String,
    pub contact_email: Option<String>,
    pub intro: Option<String>,
    /// The page's public address, when configured.
    pub url: Option<String>,
    pub summary: Summary,
    /// Frameworks the public controls map to, with how many controls map to each.
    pub frameworks: Vec<FrameworkView>,
    /// `detail` or `neutral`: how failing controls are shown.
    pub failing_display: FailingDisplay,
    /// Days of history per control (UTC days, ending today).
    pub history_days: u32,
    pub categories: Vec<CategoryView>,
    /// Narrative sections (sanitised HTML).
    pub sections: Vec<SectionView>,
    /// Questions and answers, each marked with the live status of the controls it cites.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub faq: Vec<super::faq::FaqGroupView>,
    /// The vulnerability disclosure policy (sanitised HTML), if configured.
    pub vulnerability_disclosure: Option<String>,
    /// Subprocessors, from the vendors register.
    pub subprocessors: Vec<SubprocessorView>,
    /// Documents shared on request.
    pub documents: Vec<DocumentView>,
    /// The key that signs run manifests and export bundles (verify them with it).
    pub signing_key: Option<super::narrative::SigningKeyView>,
    /// Where visitors subscribe to changes by email, when offered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribe_url: Option<String>,
}

/// Page-wide totals over the public controls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Public controls passing.
    pub passing: usize,
    /// Public controls monitored (all of them, whatever their badge).
    pub total: usize,
    pub counts: Counts,
    /// Newest evaluation time of any public control.
    #[serde(serialize_with = "ser_opt_time")]
    pub last_checked: Option<DateTime<Utc>>,
    /// When some control's status will change (go stale) unless it is checked again.
    #[serde(serialize_with = "ser_opt_time")]
    pub valid_until: Option<DateTime<Utc>>,
    /// The public controls by what backs their status: monitored controls are counted apart
    /// from documented and recorded ones.
    pub basis: BasisCounts,
}

/// How many public controls each basis backs, and how many of those pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BasisCounts {
    pub monitored: BasisCount,
    pub recorded: BasisCount,
    pub documented: BasisCount,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BasisCount {
    pub controls: usize,
    pub passing: usize,
}

impl BasisCounts {
    pub fn get(&self, kind: BasisKind) -> BasisCount {
        match kind {
            BasisKind::Monitored => self.monitored,
            BasisKind::Recorded => self.recorded,
            BasisKind::Documented => self.documented,
        }
    }

    fn add(&mut self, kind: BasisKind, badge: Badge) {
        let count = match kind {
            BasisKind::Monitored => &mut self.monitored,
            BasisKind::Recorded => &mut self.recorded,
            BasisKind::Documented => &mut self.documented,
        };
        count.controls += 1;
        if badge == Badge::Passing {
            count.passing += 1;
        }
    }
}

/// What backs a control's status, strongest first (so the strongest is the least).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BasisKind {
    /// At least one check reads the systems themselves (AWS, GitHub, public endpoints).
    Monitored,
    /// No system check; at least one check reads what the team recorded (roster, registers).
    Recorded,
    /// Only documents (policies) back it.
    Documented,
}

impl BasisKind {
    pub const ALL: [BasisKind; 3] = [
        BasisKind::Monitored,
        BasisKind::Recorded,
        BasisKind::Documented,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BasisKind::Monitored => "monitored",
            BasisKind::Recorded => "recorded",
            BasisKind::Documented => "documented",
        }
    }

    /// The short label shown beside a status.
    pub fn label(self) -> &'static str {
        match self {
            BasisKind::Monitored => "Monitored",
            BasisKind::Recorded => "Recorded",
            BasisKind::Documented => "Documented",
        }
    }

    /// What it means, for the page's legend.
    pub fn meaning(self) -> &'static str {
        match self {
            BasisKind::Monitored => {
                "Checked automatically by reading the systems themselves (cloud accounts, code hosting, public endpoints)."
            }
            BasisKind::Recorded => {
                "Checked automatically against the records the team keeps (HR roster, registers of reviews, tests and vendors); the records say it was done."
            }
            BasisKind::Documented => {
                "Checked automatically against the company's policy documents: the document exists, is approved and current. It does not show how systems behave."
            }
        }
    }

    /// The strongest basis the evidence kinds of a control's checks give.
    pub fn of(kinds: impl IntoIterator<Item = EvidenceKind>) -> BasisKind {
        kinds
            .into_iter()
            .map(|k| match k {
                EvidenceKind::System => BasisKind::Monitored,
                EvidenceKind::Record => BasisKind::Recorded,
                EvidenceKind::Document => BasisKind::Documented,
            })
            .min()
            .unwrap_or(BasisKind::Documented)
    }
}

/// What backs one control's status, in words a visitor understands. Public: it names kinds of
/// systems and dates, never a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BasisView {
    /// The strongest evidence behind the status. `monitored` only when a check reads the
    /// systems themselves.
    pub kind: BasisKind,
    /// What the control claims: `system`, `procedure` or `document`.
    pub claim: Claim,
    /// The systems read (`AWS`, `GitHub`, `public endpoints`); empty unless monitored.
    pub systems: Vec<String>,
    /// How often the control is checked: `hourly`, `daily`…
    pub checked: String,
    /// Documents: the oldest approval among the documents read by its newest evaluation.
    pub approved_on: Option<chrono::NaiveDate>,
    /// Documents: how often they must be reviewed (`yearly`).
    pub reviewed: Option<String>,
    /// Records: the newest entry read by its newest evaluation.
    pub last_entry: Option<chrono::NaiveDate>,
    /// One sentence per kind of evidence, strongest first: "Monitored automatically (AWS,
    /// GitHub), checked daily", "Recorded by the team: last entry 12 Nov 2026",
    /// "Documented: policy approved 2 Feb 2026, reviewed yearly".
    pub statements: Vec<String>,
}

/// The systems a system probe reads, as a visitor knows them. Every system probe of the
/// registry has an entry (tested).
pub fn probe_systems(probe: &str) -> &'static [&'static str] {
    match probe.split('.').next() {
        Some("aws") => &["AWS"],
        Some("github") => &["GitHub"],
        Some("http") => &["public endpoints"],
        Some("identity") => &["AWS", "GitHub"],
        _ => &[],
    }
}

/// The records a record probe reads, as a visitor knows them. Every record probe of the
/// registry has an entry (tested).
pub fn probe_records(probe: &str) -> Option<&'static str> {
    Some(match probe {
        "hr.people" => "HR roster",
        "registers.vendors" => "vendor register",
        "registers.risks" => "risk register",
        "registers.incidents" => "incident register",
        "registers.exercises" => "exercise log",
        "registers.meetings" => "meeting records",
        "registers.insurance" => "insurance register",
        "registers.access_reviews" => "access review log",
        "registers.devices" => "device inventory",
        _ => return None,
    })
}

/// `2 Feb 2026`.
pub fn day_text(d: chrono::NaiveDate) -> String {
    d.format("%-d %b %Y").to_string()
}

/// A review interval in words: `yearly`, `every six months`, `quarterly`, `monthly`, or
/// `every N days`.
fn review_words(days: i64) -> String {
    match days {
        365 | 366 => "yearly".into(),
        180..=184 => "every six months".into(),
        90..=92 => "quarterly".into(),
        28..=31 => "monthly".into(),
        7 => "weekly".into(),
        d => format!("every {d} days"),
    }
}

/// The basis of `control`, from its checks and what its newest evaluation recorded.
pub fn basis_view(
    control: &Control,
    recorded: &[CheckBasis],
    schedule: &CronSchedule,
) -> BasisView {
    let kinds: Vec<EvidenceKind> = control.evidence_kinds().collect();
    let kind = BasisKind::of(kinds.iter().copied());
    let mut systems: Vec<String> = Vec::new();
    let mut records: Vec<&str> = Vec::new();
    for check in &control.checks {
        let name = check.probe.name();
        match check.probe.kind() {
            EvidenceKind::System => {
                for s in probe_systems(name) {
                    if !systems.iter().any(|x| x == s) {
                        systems.push((*s).to_string());
                    }
                }
            }
            EvidenceKind::Record => {
                if let Some(r) = probe_records(name)
                    && !records.contains(&r)
                {
                    records.push(r);
                }
            }
            EvidenceKind::Document => {}
        }
    }
    let of_kind = |k: EvidenceKind| recorded.iter().filter(move |b| b.kind == k);
    let last_entry = of_kind(EvidenceKind::Record).filter_map(|b| b.newest).max();
    let approved_on = of_kind(EvidenceKind::Document)
        .filter_map(|b| b.oldest)
        .min();
    let reviewed = of_kind(EvidenceKind::Document)
        .filter_map(|b| b.review_days)
        .min()
        .map(review_words);
    let checked = schedule.cadence().to_string();
    let mut statements = Vec::new();
    if kinds.contains(&EvidenceKind::System) {
        statements.push(format!(
            "Monitored automatically ({}), checked {checked}",
            systems.join(", ")
        ));
    }
    if kinds.contains(&EvidenceKind::Record) {
        let mut s = format!("Recorded by the team ({})", records.join(", "));
        if let Some(d) = last_entry {
            s.push_str(&format!(": last entry {}", day_text(d)));
        }
        statements.push(s);
    }
    if kinds.contains(&EvidenceKind::Document) {
        let mut s = String::from("Documented");
        match (approved_on, &reviewed) {
            (Some(d), Some(r)) => {
                s.push_str(&format!(": policy approved {}, reviewed {r}", day_text(d)))
            }
            (Some(d), None) => s.push_str(&format!(": policy approved {}", day_text(d))),
            (None, Some(r)) => s.push_str(&format!(" in policy, reviewed {r}")),
            (None, None) => s.push_str(" in policy"),
        }
        statements.push(s);
    }
    if kind != BasisKind::Monitored {
        statements.push(format!("Checked {checked}"));
    }
    BasisView {
        kind,
        claim: control.claim,
        systems,
        checked,
        approved_on,
        reviewed,
        last_entry,
        statements,
    }
}

/// How many controls carry each badge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub passing: usize,
    pub needs_attention: usize,
    pub in_remediation: usize,
    pub not_verified: usize,
    pub stale: usize,
    pub total: usize,
}

impl Counts {
    fn add(&mut self, badge: Badge) {
        self.total += 1;
        match badge {
            Badge::Passing => self.passing += 1,
            Badge::NeedsAttention => self.needs_attention += 1,
            Badge::InRemediation => self.in_remediation += 1,
            Badge::NotVerified => self.not_verified += 1,
            Badge::Stale => self.stale += 1,
        }
    }

    pub fn get(&self, badge: Badge) -> usize {
        match badge {
            Badge::Passing => self.passing,
            Badge::NeedsAttention => self.needs_attention,
            Badge::InRemediation => self.in_remediation,
            Badge::NotVerified => self.not_verified,
            Badge::Stale => self.stale,
        }
    }
}

/// A framework the controls map to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FrameworkView {
    /// `soc2`, `cis-aws`…
    pub id: String,
    pub version: String,
    /// `SOC 2 (2017 Trust Services Criteria)`.
    pub name: String,
    /// Public controls mapped to it.
    pub controls: usize,
}

/// The display name of a framework version.
pub fn framework_name(framework: &str, version: &str) -> String {
    match framework {
        "soc2" => format!("SOC 2 ({version} Trust Services Criteria)"),
        "cis-aws" => format!("CIS AWS Foundations Benchmark v{version}"),
        "cis" => format!("CIS Critical Security Controls v{version}"),
        "iso27001" => format!("ISO/IEC 27001:{version}"),
        "nist-800-53" => format!("NIST SP 800-53 Rev. {version}"),
        "hipaa" => "HIPAA Security Rule".to_string(),
        "pci-dss" => format!("PCI DSS v{version}"),
        other => format!("{other} {version}"),
    }
}

/// One section of the page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryView {
    pub name: String,
    pub counts: Counts,
    pub controls: Vec<ControlView>,
}

/// One public control. Deliberately nothing but public wording, badges and times.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ControlView {
    pub id: String,
    pub title: String,
    pub description: String,
    pub status: Badge,
    /// When the control was last evaluated (whatever the outcome); `null` if never.
    #[serde(serialize_with = "ser_opt_time")]
    pub last_checked: Option<DateTime<Utc>>,
    /// With `failing_display: detail`, since when a failing control has been failing.
    #[serde(serialize_with = "ser_opt_time")]
    pub since: Option<DateTime<Utc>>,
    /// The history: runs of consecutive days with the same status (`null`: no data).
    pub history: Vec<DayRun>,
    /// Days of the history with any status, and of those, days passing all day.
    pub days_monitored: u32,
    pub days_passing: u32,
    /// What backs the status.
    pub basis: BasisView,
}

/// A document shared on request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocumentView {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    /// Where to ask for it (the live server's request form).
    pub request_url: String,
}

/// Everything [`trust_view`] reads.
pub struct TrustInputs<'a> {
    pub catalog: &'a Catalog,
    pub trust: &'a TrustPageConfig,
    pub narrative: &'a Narrative,
    /// Every control's evaluations from [`history_start`] on, with the one before it.
    pub history: &'a [ControlHistory],
    /// What backed each control's newest evaluation.
    pub basis: &'a ResultBasis,
    pub default_freshness: Duration,
    pub default_schedule: &'a CronSchedule,
    pub now: DateTime<Utc>,
}

/// The first instant whose evaluations the view needs: the start of the history window.
pub fn history_start(now: DateTime<Utc>) -> DateTime<Utc> {
    let first_day = now.date_naive() - Duration::days(i64::from(HISTORY_DAYS) - 1);
    first_day.and_time(chrono::NaiveTime::MIN).and_utc()
}

/// Builds the public view: public controls only, categories in the configured order then the
/// rest alphabetically, each control with its honest [`Badge`] and history.
pub fn trust_view(input: &TrustInputs<'_>) -> TrustView {
    let TrustInputs {
        catalog,
        trust,
        narrative,
        history,
        basis,
        default_freshness,
        default_schedule,
        now,
    } = *input;
    let display = trust.failing_display;
    let points: HashMap<&str, &[(DateTime<Utc>, Status)]> = history
        .iter()
        .map(|(id, p)| (id.as_str(), p.as_slice()))
        .collect();

    let mut summary_counts = Counts::default();
    let mut basis_counts = BasisCounts::default();
    let mut last_checked: Option<DateTime<Utc>> = None;
    let mut valid_until: Option<DateTime<Utc>> = None;
    let mut frameworks: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut categories = Vec::new();
    for (name, controls) in catalog.categories(&trust.category_order) {
        let mut counts = Counts::default();
        let mut views = Vec::new();
        for control in controls.into_iter().filter(|c| c.public) {
            let mut mapped: Vec<(&str, &str)> = control
                .frameworks
                .iter()
                .map(|f| (f.framework.as_str(), f.version.as_str()))
                .collect();
            mapped.sort_unstable();
            mapped.dedup();
            for key in mapped {
                *frameworks.entry(key).or_default() += 1;
            }
            let points = points.get(control.id.as_str()).copied().unwrap_or_default();
            let freshness = control.freshness.unwrap_or(default_freshness);
            let latest = points.iter().rev().find(|(t, _)| *t <= now).copied();
            let honest = badge_for(latest.map(|(t, s)| (s, t)), freshness, now);
            let status = honest.present(display);
            if let Some((t, _)) = latest {
                last_checked = last_checked.max(Some(t));
                let goes_stale = t + freshness + Duration::seconds(1);
                if honest != Badge::Stale && goes_stale > now {
                    valid_until = Some(valid_until.map_or(goes_stale, |v| v.min(goes_stale)));
                }
            }
            let since = match (display, honest) {
                (FailingDisplay::Detail, Badge::NeedsAttention) => {
                    history::failing_since(points).map(|(t, _)| t)
                }
                _ => None,
            };
            let days = history::daily(points, freshness, now, HISTORY_DAYS);
            let days_monitored = days.iter().filter(|(_, s)| s.is_some()).count();
            let days_passing = days
                .iter()
                .filter(|(_, s)| *s == Some(Badge::Passing))
                .count();
            let runs = history::runs(&days)
                .into_iter()
                .map(|r| DayRun {
                    status: r.status.map(|b| b.present(display)),
                    ..r
                })
                .collect();
            counts.add(status);
            summary_counts.add(status);
            let basis = basis_view(
                control,
                basis.get(&control.id).map_or(&[], Vec::as_slice),
                control.schedule.as_ref().unwrap_or(default_schedule),
            );
            basis_counts.add(basis.kind, status);
            views.push(ControlView {
                id: control.id.clone(),
                title: control.title.clone(),
                description: control.description.clone(),
                status,
                last_checked: latest.map(|(t, _)| t),
                since,
                history: runs,
                days_monitored: u32::try_from(days_monitored).unwrap_or(u32::MAX),
                days_passing: u32::try_from(days_passing).unwrap_or(u32::MAX),
                basis,
            });
        }
        if !views.is_empty() {
            categories.push(CategoryView {
                name: name.to_string(),
                counts,
                controls: views,
            });
        }
    }

    let base = trust.base_url.as_ref();
    let documents = trust
        .documents
        .items
        .iter()
        .map(|d| {
            let path = format!("/request-access?document={}", d.id);
            DocumentView {
                id: d.id.clone(),
                title: d.title.clone(),
                description: d.description.clone(),
                request_url: base.map_or_else(|| path[1..].to_string(), |b| b.join(&path)),
            }
        })
        .collect();

    let faq = super::faq::faq_view(
        &narrative.faq,
        categories.iter().flat_map(|c| &c.controls),
        &trust.company,
        display,
    );
    TrustView {
        company: trust.company.clone(),
        contact_email: trust.contact_email.clone(),
        intro: trust.intro.clone(),
        url: base.map(|b| format!("{}/", b.as_str())),
        summary: Summary {
            passing: summary_counts.passing,
            total: summary_counts.total,
            counts: summary_counts,
            last_checked,
            valid_until,
            basis: basis_counts,
        },
        frameworks: {
            let mut list: Vec<FrameworkView> = frameworks
                .into_iter()
                .map(|((id, version), controls)| FrameworkView {
                    id: id.to_string(),
                    version: version.to_string(),
                    name: framework_name(id, version),
                    controls,
                })
                .collect();
            // The most widely mapped first.
            list.sort_by(|a, b| b.controls.cmp(&a.controls).then(a.name.cmp(&b.name)));
            list
        },
        failing_display: display,
        history_days: HISTORY_DAYS,
        categories,
        faq,
        sections: narrative.sections.clone(),
        vulnerability_disclosure: narrative.disclosure.clone(),
        subprocessors: narrative.subprocessors.clone(),
        documents,
        signing_key: narrative.signing_key.clone(),
        subscribe_url: narrative.subscribe_url.clone(),
    }
}

/// `2025-01-02T03:04:05Z`: UTC, whole seconds.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn ser_opt_time<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&iso(*t)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap()
    }

    /// `check(status, age, expect)`: a result of `status` evaluated `age` ago, with a
    /// freshness window of one day, shows as `expect`.
    fn check(status: Option<Status>, age: Duration, expect: Badge) {
        let got = badge_for(status.map(|s| (s, now() - age)), Duration::days(1), now());
        assert_eq!(got, expect, "status {status:?}, age {age}");
    }

    #[test]
    fn badge_mapping_is_honest() {
        use Badge::*;
        use Status::{Error, Fail, NotApplicable, Pass, Waived};
        let fresh = Duration::hours(2);
        let edge = Duration::days(1);
        let old = Duration::days(1) + Duration::seconds(1);
        let ancient = Duration::days(400);
        let none = Duration::zero();
        let table: &[(Option<Status>, Duration, Badge)] = &[
            // Green only for a fresh pass.
            (Some(Pass), fresh, Passing),
            (Some(Pass), none, Passing),
            (Some(Pass), edge, Passing),
            (Some(Pass), old, Stale),
            (Some(Pass), ancient, Stale),
            // Failures need attention while current, and are stale once old.
            (Some(Fail), fresh, NeedsAttention),
            (Some(Fail), old, Stale),
            (Some(Waived), fresh, NeedsAttention),
            (Some(Waived), old, Stale),
            // Could not evaluate, or nothing to evaluate: never verified, whatever the age.
            (Some(Error), fresh, NotVerified),
            (Some(Error), ancient, NotVerified),
            (Some(NotApplicable), fresh, NotVerified),
            (Some(NotApplicable), old, Stale),
            (None, none, NotVerified),
            // A result from the future is not believed; a little clock skew is tolerated.
            (Some(Pass), -Duration::minutes(1), Passing),
            (Some(Pass), -Duration::hours(1), NotVerified),
        ];
        for &(status, age, expect) in table {
            check(status, age, expect);
        }
    }

    #[test]
    fn only_a_fresh_pass_is_green() {
        let ages = [
            -10_000i64, -60, 0, 60, 3600, 86_399, 86_400, 86_401, 10_000_000,
        ];
        for status in Status::ALL {
            for &secs in &ages {
                let badge = badge_for(
                    Some((status, now() - Duration::seconds(secs))),
                    Duration::days(1),
                    now(),
                );
                if badge == Badge::Passing {
                    assert_eq!(status, Status::Pass);
                    assert!((-300..=86_400).contains(&secs), "{secs}");
                }
            }
        }
    }

    #[test]
    fn the_basis_is_the_strongest_evidence_kind() {
        use EvidenceKind::*;
        let check = |kinds: &[EvidenceKind], expect: BasisKind| {
            assert_eq!(BasisKind::of(kinds.iter().copied()), expect, "{kinds:?}");
        };
        check(&[Document], BasisKind::Documented);
        check(&[Document, Document], BasisKind::Documented);
        check(&[Record, Document], BasisKind::Recorded);
        check(&[Document, System], BasisKind::Monitored);
        check(&[Record, System, Document], BasisKind::Monitored);
        // Never monitored without a system check.
        for kinds in [&[Document][..], &[Record], &[Record, Document]] {
            assert_ne!(BasisKind::of(kinds.iter().copied()), BasisKind::Monitored);
        }
    }

    #[test]
    fn review_intervals_in_words() {
        for (days, words) in [
            (365, "yearly"),
            (366, "yearly"),
            (182, "every six months"),
            (91, "quarterly"),
            (30, "monthly"),
            (45, "every 45 days"),
        ] {
            assert_eq!(review_words(days), words);
        }
        assert_eq!(
            day_text(chrono::NaiveDate::from_ymd_opt(2026, 2, 2).unwrap()),
            "2 Feb 2026"
        );
    }

    #[test]
    fn badge_strings_match_json() {
        for b in Badge::ALL {
            assert_eq!(serde_json::to_value(b).unwrap(), b.as_str());
            assert!(!b.label().is_empty() && !b.meaning().is_empty());
        }
    }

    #[test]
    fn times_serialize_as_utc_seconds() {
        let t = now() + Duration::milliseconds(123);
        assert_eq!(iso(t), "2025-06-01T12:00:00Z");
    }
}
