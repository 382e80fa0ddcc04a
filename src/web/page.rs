//! The HTML page model: the [`TrustView`] plus what only the page needs (labels, human times,
//! anchors, the legend). Built from the public view alone, so it can show nothing the JSON
//! does not.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::view::{Badge, Counts, TrustView, iso};

#[derive(Debug, Serialize)]
pub struct TrustPage {
    pub company: String,
    pub intro: Option<String>,
    pub contact_email: Option<String>,
    pub css_href: String,
    pub generated: TimeView,
    /// "N of M monitored controls passing".
    pub headline: String,
    /// Badge key colouring the overall banner: `passing` only when every control passes.
    pub overall: &'static str,
    pub overall_label: &'static str,
    pub counts: Vec<CountView>,
    pub last_checked: Option<TimeView>,
    pub categories: Vec<CategoryPage>,
    /// Narrative sections: title, anchor and sanitised HTML.
    pub sections: Vec<super::SectionView>,
    pub subprocessors: Vec<super::SubprocessorView>,
    pub legend: Vec<LegendEntry>,
}

#[derive(Debug, Serialize)]
pub struct TimeView {
    /// `2025-01-02T03:04:05Z`.
    pub iso: String,
    /// `2025-01-02 03:04 UTC`.
    pub display: String,
    /// `3 hours ago`.
    pub human: String,
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
    pub title: String,
    pub description: String,
    pub badge: BadgeView,
    pub last_checked: Option<TimeView>,
}

#[derive(Debug, Serialize)]
pub struct LegendEntry {
    pub badge: BadgeView,
    pub meaning: &'static str,
}

/// The model of the 503 page.
#[derive(Debug, Serialize)]
pub struct UnavailablePage {
    pub company: String,
    pub css_href: String,
}

fn badge(b: Badge) -> BadgeView {
    BadgeView {
        key: b.as_str(),
        label: b.label(),
    }
}

pub fn trust_page(view: &TrustView, css_href: &str) -> TrustPage {
    let now = view.generated_at;
    let time = |t: DateTime<Utc>| TimeView {
        iso: iso(t),
        display: t.format("%Y-%m-%d %H:%M UTC").to_string(),
        human: human_age(now - t),
    };
    let s = &view.summary;
    let overall = if s.total > 0 && s.passing == s.total {
        Badge::Passing
    } else if s.counts.needs_attention > 0 {
        Badge::NeedsAttention
    } else if s.counts.stale > 0 {
        Badge::Stale
    } else {
        Badge::NotVerified
    };
    let overall_label = match overall {
        _ if s.total == 0 => "No controls are published yet",
        Badge::Passing => "All monitored controls are passing",
        Badge::NeedsAttention => "Some controls need attention",
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
                    title: ctl.title.clone(),
                    description: ctl.description.clone(),
                    badge: badge(ctl.status),
                    last_checked: ctl.last_checked.map(time),
                })
                .collect(),
        })
        .collect();
    TrustPage {
        company: view.company.clone(),
        intro: view.intro.clone(),
        contact_email: view.contact_email.clone(),
        css_href: css_href.to_string(),
        generated: time(now),
        headline: format!(
            "{} of {} monitored {} passing",
            s.passing,
            s.total,
            if s.total == 1 { "control" } else { "controls" }
        ),
        overall: overall.as_str(),
        overall_label,
        counts: Badge::ALL
            .into_iter()
            .map(|b| CountView {
                badge: badge(b),
                count: s.counts.get(b),
            })
            .collect(),
        last_checked: s.last_checked.map(time),
        categories,
        sections: view.sections.clone(),
        subprocessors: view.subprocessors.clone(),
        legend: Badge::ALL
            .into_iter()
            .map(|b| LegendEntry {
                badge: badge(b),
                meaning: b.meaning(),
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
    let base = base.trim_end_matches('-').to_string();
    let mut anchor = base.clone();
    let mut n = 2;
    while !taken.insert(anchor.clone()) {
        anchor = format!("{base}-{n}");
        n += 1;
    }
    anchor
}

/// `just now`, `5 minutes ago`, `3 hours ago`, `2 days ago`.
fn human_age(age: Duration) -> String {
    let secs = age.num_seconds();
    if secs < 0 {
        return "just now".into();
    }
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit} ago")
        } else {
            format!("{n} {unit}s ago")
        }
    };
    match secs {
        0..60 => "just now".into(),
        60..3_600 => plural(secs / 60, "minute"),
        3_600..172_800 => plural(secs / 3_600, "hour"),
        _ => plural(secs / 86_400, "day"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_ages() {
        let check = |secs: i64, expect: &str| {
            assert_eq!(human_age(Duration::seconds(secs)), expect, "{secs}");
        };
        check(-5, "just now");
        check(0, "just now");
        check(59, "just now");
        check(60, "1 minute ago");
        check(150, "2 minutes ago");
        check(3_600, "1 hour ago");
        check(47 * 3_600, "47 hours ago");
        check(2 * 86_400, "2 days ago");
        check(400 * 86_400, "400 days ago");
    }

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
