//! The public view model: what the trust page and `/api/v1/trust` say about each control.
//!
//! Built by one pure function, [`trust_view`], from the catalog, the trust-page configuration
//! and the newest stored result of each control. The types here are the public JSON contract
//! (stable field names). They have no field for findings, resources, messages or evidence, so
//! nothing internal can reach the public side by accident.

use std::collections::HashMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

use crate::catalog::Catalog;
use crate::config::TrustPageConfig;
use crate::model::{LatestResult, Status};

use super::narrative::{Narrative, SectionView, SubprocessorView};

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
    /// Never evaluated, or the newest evaluation could not complete or did not apply.
    NotVerified,
    /// The newest result is older than the control's freshness window.
    Stale,
}

impl Badge {
    /// Every badge, in legend order.
    pub const ALL: [Badge; 4] = [
        Badge::Passing,
        Badge::NeedsAttention,
        Badge::Stale,
        Badge::NotVerified,
    ];

    /// The JSON value (`passing`, `needs_attention`, `not_verified`, `stale`).
    pub fn as_str(self) -> &'static str {
        match self {
            Badge::Passing => "passing",
            Badge::NeedsAttention => "needs_attention",
            Badge::NotVerified => "not_verified",
            Badge::Stale => "stale",
        }
    }

    /// The text shown on the badge.
    pub fn label(self) -> &'static str {
        match self {
            Badge::Passing => "Passing",
            Badge::NeedsAttention => "Needs attention",
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
    #[serde(serialize_with = "ser_time")]
    pub generated_at: DateTime<Utc>,
    pub summary: Summary,
    pub categories: Vec<CategoryView>,
    /// Narrative sections (sanitised HTML).
    pub sections: Vec<SectionView>,
    /// Subprocessors, from the vendors register.
    pub subprocessors: Vec<SubprocessorView>,
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
}

/// How many controls carry each badge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub passing: usize,
    pub needs_attention: usize,
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
            Badge::NotVerified => self.not_verified += 1,
            Badge::Stale => self.stale += 1,
        }
    }

    pub fn get(&self, badge: Badge) -> usize {
        match badge {
            Badge::Passing => self.passing,
            Badge::NeedsAttention => self.needs_attention,
            Badge::NotVerified => self.not_verified,
            Badge::Stale => self.stale,
        }
    }
}

/// One section of the page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryView {
    pub name: String,
    pub counts: Counts,
    pub controls: Vec<ControlView>,
}

/// One public control. Deliberately nothing but public wording, the badge and a time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ControlView {
    pub id: String,
    pub title: String,
    pub description: String,
    pub status: Badge,
    /// When the control was last evaluated (whatever the outcome); `null` if never.
    #[serde(serialize_with = "ser_opt_time")]
    pub last_checked: Option<DateTime<Utc>>,
}

/// Builds the public view: public controls only, categories in the configured order then the
/// rest alphabetically, each control with its honest [`Badge`].
pub fn trust_view(
    catalog: &Catalog,
    trust: &TrustPageConfig,
    narrative: &Narrative,
    latest: &[LatestResult],
    default_freshness: Duration,
    now: DateTime<Utc>,
) -> TrustView {
    // The newest result per control, should the store return more than one.
    let mut newest: HashMap<&str, &LatestResult> = HashMap::new();
    for r in latest {
        newest
            .entry(r.control_id.as_str())
            .and_modify(|cur| {
                if r.evaluated_at > cur.evaluated_at {
                    *cur = r;
                }
            })
            .or_insert(r);
    }

    let mut summary_counts = Counts::default();
    let mut last_checked: Option<DateTime<Utc>> = None;
    let mut categories = Vec::new();
    for (name, controls) in catalog.categories(&trust.category_order) {
        let mut counts = Counts::default();
        let mut views = Vec::new();
        for control in controls.into_iter().filter(|c| c.public) {
            let result = newest.get(control.id.as_str()).copied();
            let freshness = control.freshness.unwrap_or(default_freshness);
            let status = badge_for(result.map(|r| (r.status, r.evaluated_at)), freshness, now);
            let checked = result.map(|r| r.evaluated_at);
            if let Some(t) = checked {
                last_checked = last_checked.max(Some(t));
            }
            counts.add(status);
            summary_counts.add(status);
            views.push(ControlView {
                id: control.id.clone(),
                title: control.title.clone(),
                description: control.description.clone(),
                status,
                last_checked: checked,
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

    TrustView {
        company: trust.company.clone(),
        contact_email: trust.contact_email.clone(),
        intro: trust.intro.clone(),
        generated_at: now,
        summary: Summary {
            passing: summary_counts.passing,
            total: summary_counts.total,
            counts: summary_counts,
            last_checked,
        },
        categories,
        sections: narrative.sections.clone(),
        subprocessors: narrative.subprocessors.clone(),
    }
}

/// `2025-01-02T03:04:05Z`: UTC, whole seconds.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn ser_time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&iso(*t))
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
