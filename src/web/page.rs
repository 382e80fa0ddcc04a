//! The HTML page model: the [`TrustView`] plus what only the page needs (labels, display
//! times, anchors, the history strips, the legend). Built from the public view alone, so it
//! can show nothing the JSON does not. Times are absolute (UTC): the same page is served live
//! and exported as a static site, where "3 hours ago" would be wrong within the hour.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::history::{DayRun, DayStatus};
use super::view::{
    Badge, BasisKind, BasisView, Counts, DocumentView, FrameworkView, TrustView, iso,
};

/// Links of the page, relative to it (so a static export works under any path).
#[derive(Debug, Clone, Serialize)]
pub struct Links {
    pub feed: String,
    pub json: String,
    /// The page's public address, when configured.
    pub canonical: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TrustPage {
    /// The page title before the company's (none: the company's trust center).
    pub title: Option<String>,
    /// Stylesheets, brand, robots, footer links.
    pub chrome: super::chrome::Chrome,
    pub company: String,
    /// The page's description (meta, Open Graph, Twitter card).
    pub description: String,
    /// The link preview image: the logo's absolute address, when it is a PNG and the page's
    /// address is known.
    pub og_image: Option<String>,
    pub intro: Option<String>,
    pub contact_email: Option<String>,
    pub links: Links,
    /// "N of M controls passing".
    pub headline: String,
    /// Badge key colouring the overall banner: `passing` only when every control passes.
    pub overall: &'static str,
    pub overall_label: &'static str,
    pub counts: Vec<CountView>,
    /// How many controls each basis backs: "30 monitored automatically (25 passing)".
    pub basis: Vec<BasisCountView>,
    pub last_checked: Option<TimeView>,
    /// Until when every status shown holds (the earliest moment one goes stale); a copy of
    /// the page read later must be taken as stale.
    pub valid_until: Option<TimeView>,
    pub frameworks: Vec<FrameworkView>,
    pub history_days: u32,
    pub categories: Vec<CategoryPage>,
    /// Narrative sections: title, anchor and sanitised HTML.
    pub sections: Vec<super::SectionView>,
    pub disclosure: Option<String>,
    pub subprocessors: Vec<super::SubprocessorView>,
    pub documents: Vec<DocumentView>,
    pub signing_key: Option<super::SigningKeyView>,
    pub subscribe_url: Option<String>,
    pub legend: Vec<LegendEntry>,
    /// Questions and answers with their live marking.
    pub faq: Vec<FaqGroupPage>,
    /// What each basis means.
    pub basis_legend: Vec<BasisLegendEntry>,
}

#[derive(Debug, Serialize)]
pub struct BasisCountView {
    /// `monitored`, `recorded` or `documented`.
    pub key: &'static str,
    /// "30 monitored automatically, 25 passing".
    pub text: String,
}

#[derive(Debug, Serialize)]
pub struct BasisLegendEntry {
    pub key: &'static str,
    pub label: &'static str,
    pub meaning: &'static str,
}

/// What backs one control's status, as shown beside it.
#[derive(Debug, Serialize)]
pub struct BasisPage {
    pub key: &'static str,
    pub label: &'static str,
    /// "Monitored automatically (AWS, GitHub), checked daily", …
    pub statements: Vec<String>,
}

fn basis_page(b: &BasisView) -> BasisPage {
    BasisPage {
        key: b.kind.as_str(),
        label: b.kind.label(),
        statements: b.statements.clone(),
    }
}

#[derive(Debug, Serialize)]
pub struct TimeView {
    /// `2025-01-02T03:04:05Z`.
    pub iso: String,
    /// `2025-01-02 03:04 UTC`.
    pub display: String,
}

#[derive(Debug, Serialize)]
pub struct BadgeView {
    /// CSS modifier and JSON value, e.g. `needs_attention`.
    pub key: &'static str,
    pub label: &'static str,
}

#[derive(Debug, Serialize)]
pub struct CountView {
    pub badge: BadgeView,
    pub count: usize,
}

#[derive(Debug, Serialize)]
pub struct CategoryPage {
    pub name: String,
    /// Unique HTML id of the section heading.
    pub anchor: String,
    /// "3 of 4 passing".
    pub tally: String,
    pub all_passing: bool,
    pub controls: Vec<ControlPage>,
}

#[derive(Debug, Serialize)]
pub struct ControlPage {
    /// The control's id (its anchor is `control-{id}`).
    pub id: String,
    pub title: String,
    pub description: String,
    pub badge: BadgeView,
    pub last_checked: Option<TimeView>,
    /// "since 2026-11-20" (or "for more than 90 days") for a failing control, in detail mode.
    pub since: Option<String>,
    pub strip: Strip,
    pub basis: BasisPage,
}

/// The history strip: one SVG rectangle per run of equal days, one unit wide per day.
#[derive(Debug, Serialize)]
pub struct Strip {
    pub cells: Vec<StripCell>,
    /// What the strip shows, for assistive technology.
    pub label: String,
    /// "Passing 88 of the last 90 days".
    pub caption: String,
}

#[derive(Debug, Serialize)]
pub struct StripCell {
    pub x: i64,
    pub width: i64,
    /// CSS modifier: a badge key, or `no_data`.
    pub key: &'static str,
    /// "2026-09-03 – 2026-11-30: Passing".
    pub title: String,
}

#[derive(Debug, Serialize)]
pub struct LegendEntry {
    pub badge: BadgeView,
    pub meaning: &'static str,
}

/// The model of the 503 page.
#[derive(Debug, Serialize)]
pub struct UnavailablePage {
    pub title: Option<String>,
    pub company: String,
    pub chrome: super::chrome::Chrome,
}

fn badge(b: Badge) -> BadgeView {
    BadgeView {
        key: b.as_str(),
        label: b.label(),
    }
}

pub fn time(t: DateTime<Utc>) -> TimeView {
    TimeView {
        iso: iso(t),
        display: t.format("%Y-%m-%d %H:%M UTC").to_string(),
    }
}

fn day_key(s: DayStatus) -> &'static str {
    s.map_or("no_data", Badge::as_str)
}

fn day_label(s: DayStatus) -> &'static str {
    s.map_or("No data", Badge::label)
}

/// The strip of one control: `history` covers `days` days ending `today`.
fn strip(history: &[DayRun], days: u32, days_passing: u32, today: NaiveDate) -> Strip {
    let first = today - chrono::Duration::days(i64::from(days) - 1);
    let cells = history
        .iter()
        .map(|run| StripCell {
            x: (run.from - first).num_days(),
            width: run.days(),
            key: day_key(run.status),
            title: if run.from == run.to {
                format!("{}: {}", run.from, day_label(run.status))
            } else {
                format!("{} – {}: {}", run.from, run.to, day_label(run.status))
            },
        })
        .collect();
    // "Last 90 days: passing 80 days, needs attention 2 days, no data 8 days."
    let mut totals: Vec<(DayStatus, i64)> = Vec::new();
    for run in history {
        match totals.iter_mut().find(|(s, _)| *s == run.status) {
            Some((_, n)) => *n += run.days(),
            None => totals.push((run.status, run.days())),
        }
    }
    const ORDER: [DayStatus; 6] = [
        Some(Badge::Passing),
        Some(Badge::NeedsAttention),
        Some(Badge::InRemediation),
        Some(Badge::Stale),
        Some(Badge::NotVerified),
        None,
    ];
    totals.sort_by_key(|&(s, _)| ORDER.iter().position(|&o| o == s));
    let parts: Vec<String> = totals
        .iter()
        .map(|&(s, n)| {
            format!(
                "{} {n} {}",
                day_label(s).to_lowercase(),
                if n == 1 { "day" } else { "days" }
            )
        })
        .collect();
    Strip {
        cells,
        label: format!("Last {days} days, one cell per day: {}", parts.join(", ")),
        caption: format!("Passing {days_passing} of the last {days} days"),
    }
}

pub fn trust_page(
    view: &TrustView,
    links: Links,
    chrome: super::chrome::Chrome,
    today: NaiveDate,
) -> TrustPage {
    let s = &view.summary;
    let failing = s.counts.needs_attention + s.counts.in_remediation;
    let overall = if s.total > 0 && s.passing == s.total {
        Badge::Passing
    } else if failing > 0 {
        Badge::NeedsAttention.present(view.failing_display)
    } else if s.counts.stale > 0 {
        Badge::Stale
    } else {
        Badge::NotVerified
    };
    let overall_label = match overall {
        _ if s.total == 0 => "No controls are published yet",
        Badge::Passing => "All controls are passing",
        Badge::NeedsAttention => "Some controls need attention",
        Badge::InRemediation => "Some controls are in remediation",
        Badge::Stale => "Some results are out of date",
        Badge::NotVerified => "Some controls are not yet verified",
    };
    let mut anchors = HashSet::new();
    let categories = view
        .categories
        .iter()
        .map(|c| CategoryPage {
            name: c.name.clone(),
            anchor: unique_anchor(&c.name, &mut anchors),
            tally: tally(&c.counts),
            all_passing: c.counts.passing == c.counts.total,
            controls: c
                .controls
                .iter()
                .map(|ctl| ControlPage {
                    id: ctl.id.clone(),
                    title: ctl.title.clone(),
                    description: ctl.description.clone(),
                    badge: badge(ctl.status),
                    last_checked: ctl.last_checked.map(time),
                    since: ctl.since.map(|t| {
                        let first_day =
                            today - chrono::Duration::days(i64::from(view.history_days) - 1);
                        if t.date_naive() < first_day {
                            format!("for more than {} days", view.history_days)
                        } else {
                            format!("since {}", t.date_naive())
                        }
                    }),
                    strip: strip(&ctl.history, view.history_days, ctl.days_passing, today),
                    basis: basis_page(&ctl.basis),
                })
                .collect(),
        })
        .collect();
    let shown: Vec<Badge> = Badge::shown(view.failing_display).collect();
    TrustPage {
        title: None,
        chrome,
        company: view.company.clone(),
        description: format!(
            "Live status of the security controls {} monitors continuously, with what backs each one.",
            view.company
        ),
        og_image: None,
        intro: view.intro.clone(),
        contact_email: view.contact_email.clone(),
        links,
        headline: format!(
            "{} of {} {} passing",
            s.passing,
            s.total,
            if s.total == 1 { "control" } else { "controls" }
        ),
        overall: overall.as_str(),
        overall_label,
        counts: shown
            .iter()
            .map(|&b| CountView {
                badge: badge(b),
                count: s.counts.get(b),
            })
            .collect(),
        basis: BasisKind::ALL
            .iter()
            .map(|&k| {
                let c = s.basis.get(k);
                let what = match k {
                    BasisKind::Monitored => "monitored automatically",
                    BasisKind::Recorded => "recorded by the team",
                    BasisKind::Documented => "documented only",
                };
                BasisCountView {
                    key: k.as_str(),
                    text: format!("{} {what}, {} passing", c.controls, c.passing),
                }
            })
            .collect(),
        last_checked: s.last_checked.map(time),
        valid_until: s.valid_until.map(time),
        frameworks: view.frameworks.clone(),
        history_days: view.history_days,
        categories,
        sections: view.sections.clone(),
        disclosure: view.vulnerability_disclosure.clone(),
        subprocessors: view.subprocessors.clone(),
        documents: view.documents.clone(),
        signing_key: view.signing_key.clone(),
        subscribe_url: view.subscribe_url.clone(),
        faq: view.faq.iter().map(faq_group).collect(),
        legend: shown
            .iter()
            .map(|&b| LegendEntry {
                badge: badge(b),
                meaning: b.meaning(),
            })
            .collect(),
        basis_legend: BasisKind::ALL
            .iter()
            .map(|&k| BasisLegendEntry {
                key: k.as_str(),
                label: k.label(),
                meaning: k.meaning(),
            })
            .collect(),
    }
}

#[derive(Debug, Serialize)]
pub struct FaqGroupPage {
    pub name: String,
    pub anchor: String,
    pub questions: Vec<FaqPage>,
}

#[derive(Debug, Serialize)]
pub struct FaqPage {
    pub anchor: String,
    pub question: String,
    /// Sanitised HTML.
    pub answer: String,
    /// `confirmed`, `not_confirmed` or `statement`.
    pub status: &'static str,
    /// The pill beside the marking: its CSS key and text.
    pub pill_key: &'static str,
    pub pill: &'static str,
    pub marking: String,
    pub controls: Vec<CitationPage>,
}

#[derive(Debug, Serialize)]
pub struct CitationPage {
    pub id: String,
    pub title: String,
    pub badge: BadgeView,
    pub basis_key: &'static str,
    pub basis_label: &'static str,
}

fn faq_group(g: &super::faq::FaqGroupView) -> FaqGroupPage {
    use super::faq::AnswerStatus;
    FaqGroupPage {
        name: g.group.clone(),
        anchor: g.anchor.clone(),
        questions: g
            .questions
            .iter()
            .map(|q| {
                let (status, pill_key, pill) = match (q.status, q.badge) {
                    (AnswerStatus::Confirmed, _) => ("confirmed", "passing", "Confirmed"),
                    (AnswerStatus::NotConfirmed, b) => (
                        "not_confirmed",
                        b.unwrap_or(Badge::NotVerified).as_str(),
                        "Not confirmed",
                    ),
                    (AnswerStatus::Statement, _) => ("statement", "statement", "Statement"),
                };
                FaqPage {
                    anchor: q.anchor.clone(),
                    question: q.question.clone(),
                    answer: q.answer.clone(),
                    status,
                    pill_key,
                    pill,
                    marking: q.marking.clone(),
                    controls: q
                        .controls
                        .iter()
                        .map(|c| CitationPage {
                            id: c.id.clone(),
                            title: c.title.clone(),
                            badge: badge(c.status),
                            basis_key: c.basis.as_str(),
                            basis_label: c.basis.label(),
                        })
                        .collect(),
                }
            })
            .collect(),
    }
}

fn tally(c: &Counts) -> String {
    format!("{} of {} passing", c.passing, c.total)
}

/// `Access Security` → `access-security`, made unique among the page's anchors.
fn unique_anchor(name: &str, taken: &mut HashSet<String>) -> String {
    let mut slug = String::new();
    for ch in name.chars() {
        if ch.is_ascii_alphanumeric() {
            slug.push(ch.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let base = format!("category-{}", slug.trim_end_matches('-'));
    super::narrative::unique(base.trim_end_matches('-').to_string(), taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_are_slugs_and_unique() {
        let mut taken = HashSet::new();
        assert_eq!(
            unique_anchor("Access Security", &mut taken),
            "category-access-security"
        );
        assert_eq!(
            unique_anchor("access  security!", &mut taken),
            "category-access-security-2"
        );
        assert_eq!(unique_anchor("Ünïcode", &mut taken), "category-n-code");
        assert_eq!(unique_anchor("???", &mut taken), "category");
    }
}
