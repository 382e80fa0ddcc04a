//! Questions and answers (`trust_page.faq`) tied to live status.
//!
//! The text is rendered once at start ([`FaqGroupText`], Markdown sanitised like the narrative
//! sections); each render of the site marks every answer with the live status of the controls
//! it cites ([`faq_view`]): an answer is `confirmed` only while every cited control is passing,
//! and says which ones are not otherwise. An answer citing nothing is a `statement`, and says so.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::view::{Badge, BasisKind, ControlView};
use crate::catalog::Catalog;
use crate::config::{FailingDisplay, TrustPageConfig};

/// One group of the FAQ, rendered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaqGroupText {
    pub name: String,
    pub anchor: String,
    pub questions: Vec<FaqText>,
}

/// One question, rendered; `controls` are the ids it cites.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaqText {
    pub anchor: String,
    pub question: String,
    /// Sanitised HTML.
    pub answer: String,
    pub controls: Vec<String>,
}

/// Renders the configured FAQ: Markdown answers, unique anchors (`faq-…`).
pub fn build(trust: &TrustPageConfig) -> Vec<FaqGroupText> {
    let mut used: HashSet<String> = trust
        .faq
        .iter()
        .flat_map(|g| g.questions.iter().filter_map(|q| q.anchor.clone()))
        .collect();
    let mut unique = |base: String| super::narrative::unique(base, &mut used);
    trust
        .faq
        .iter()
        .map(|g| FaqGroupText {
            name: g.group.clone(),
            anchor: unique(format!("faq-{}", crate::catalog::kebab(&g.group))),
            questions: g
                .questions
                .iter()
                .map(|q| FaqText {
                    anchor: q.anchor.clone().unwrap_or_else(|| {
                        unique(format!("faq-{}", crate::catalog::kebab(&q.question)))
                    }),
                    question: q.question.clone(),
                    answer: super::narrative::markdown_under(&q.answer, 4),
                    controls: q.controls.clone(),
                })
                .collect(),
        })
        .collect()
}

/// Citations of controls the catalog does not have or does not publish, as (path, message):
/// an answer must never point at a status visitors cannot see.
pub fn check_citations(trust: &TrustPageConfig, catalog: &Catalog) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (g, group) in trust.faq.iter().enumerate() {
        for (q, entry) in group.questions.iter().enumerate() {
            for (c, id) in entry.controls.iter().enumerate() {
                let message = match catalog.get(id) {
                    None => format!("no control has the id `{id}`"),
                    Some(control) if !control.public => format!(
                        "control `{id}` is not public: an answer may cite only controls shown \
                         on the page"
                    ),
                    Some(_) => continue,
                };
                out.push((
                    format!("trust_page.faq[{g}].questions[{q}].controls[{c}]"),
                    message,
                ));
            }
        }
    }
    out
}

/// What an answer's cited controls say about it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerStatus {
    /// Every cited control is passing.
    Confirmed,
    /// Some cited control is not passing (failing, stale or not verified).
    NotConfirmed,
    /// The answer cites no control: the company's statement, not checked.
    Statement,
}

/// One group of the FAQ, as published (`/api/v1/trust`'s `faq`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaqGroupView {
    pub group: String,
    pub anchor: String,
    pub questions: Vec<FaqView>,
}

/// One answer with its live marking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaqView {
    pub anchor: String,
    pub question: String,
    /// Sanitised HTML.
    pub answer: String,
    pub status: AnswerStatus,
    /// The badge the marking is coloured as: `passing` when confirmed, else the worst badge
    /// of the cited controls (absent for a statement).
    pub badge: Option<Badge>,
    /// "Confirmed: the 2 controls behind this answer are passing." / "Not confirmed right
    /// now: Encryption at Rest needs attention." / "A statement by Acme; no monitored control
    /// is cited."
    pub marking: String,
    pub controls: Vec<CitationView>,
}

/// A cited control with its live status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CitationView {
    pub id: String,
    pub title: String,
    pub status: Badge,
    /// What backs the status: `monitored`, `recorded` or `documented`.
    pub basis: BasisKind,
}

/// How bad a badge is, for the answer's marking: failing first.
fn severity(b: Badge) -> u8 {
    match b {
        Badge::NeedsAttention | Badge::InRemediation => 3,
        Badge::Stale => 2,
        Badge::NotVerified => 1,
        Badge::Passing => 0,
    }
}

/// The FAQ marked with the controls' live badges (`controls`: the page's public controls,
/// whose badges are already presented per `display`).
pub fn faq_view<'a>(
    groups: &[FaqGroupText],
    controls: impl IntoIterator<Item = &'a ControlView>,
    company: &str,
    display: FailingDisplay,
) -> Vec<FaqGroupView> {
    let by_id: HashMap<&str, &ControlView> =
        controls.into_iter().map(|c| (c.id.as_str(), c)).collect();
    groups
        .iter()
        .map(|g| FaqGroupView {
            group: g.name.clone(),
            anchor: g.anchor.clone(),
            questions: g
                .questions
                .iter()
                .map(|q| answer(q, &by_id, company, display))
                .collect(),
        })
        .collect()
}

/// "needs attention", "is stale"…
fn predicate(b: Badge) -> &'static str {
    match b {
        Badge::Passing => "is passing",
        Badge::NeedsAttention => "needs attention",
        Badge::InRemediation => "is in remediation",
        Badge::Stale => "is stale",
        Badge::NotVerified => "is not verified",
    }
}

fn answer(
    q: &FaqText,
    controls: &HashMap<&str, &ControlView>,
    company: &str,
    display: FailingDisplay,
) -> FaqView {
    let citations: Vec<CitationView> = q
        .controls
        .iter()
        .map(|id| match controls.get(id.as_str()) {
            Some(c) => CitationView {
                id: c.id.clone(),
                title: c.title.clone(),
                status: c.status.present(display),
                basis: c.basis.kind,
            },
            // Checked at start; should a citation still miss the page, it confirms nothing.
            None => CitationView {
                id: id.clone(),
                title: id.clone(),
                status: Badge::NotVerified,
                basis: BasisKind::Documented,
            },
        })
        .collect();
    let worst = citations
        .iter()
        .map(|c| c.status)
        .max_by_key(|&b| severity(b));
    let (status, marking) = match worst {
        None => (
            AnswerStatus::Statement,
            format!("A statement by {company}; it cites no control, so nothing checks it."),
        ),
        Some(Badge::Passing) => (
            AnswerStatus::Confirmed,
            if citations.len() == 1 {
                "Confirmed: the control behind this answer is passing.".to_string()
            } else {
                format!(
                    "Confirmed: the {} controls behind this answer are passing.",
                    citations.len()
                )
            },
        ),
        Some(_) => {
            let not: Vec<String> = citations
                .iter()
                .filter(|c| c.status != Badge::Passing)
                .map(|c| format!("{} {}", c.title, predicate(c.status)))
                .collect();
            (
                AnswerStatus::NotConfirmed,
                format!("Not confirmed right now: {}.", not.join(", ")),
            )
        }
    };
    FaqView {
        anchor: q.anchor.clone(),
        question: q.question.clone(),
        answer: q.answer.clone(),
        status,
        badge: worst,
        marking,
        controls: citations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(id: &str, status: Badge) -> ControlView {
        ControlView {
            id: id.into(),
            title: format!("Title {id}"),
            description: String::new(),
            status,
            last_checked: None,
            since: None,
            history: Vec::new(),
            days_monitored: 0,
            days_passing: 0,
            basis: super::super::view::BasisView {
                kind: BasisKind::Monitored,
                claim: crate::catalog::Claim::System,
                systems: vec![],
                checked: "daily".into(),
                approved_on: None,
                reviewed: None,
                last_entry: None,
                statements: vec![],
            },
        }
    }

    fn text(controls: &[&str]) -> Vec<FaqGroupText> {
        vec![FaqGroupText {
            name: "G".into(),
            anchor: "faq-g".into(),
            questions: vec![FaqText {
                anchor: "faq-q".into(),
                question: "Q?".into(),
                answer: "<p>A</p>".into(),
                controls: controls.iter().map(|s| s.to_string()).collect(),
            }],
        }]
    }

    #[test]
    fn an_answer_is_confirmed_only_while_every_cited_control_passes() {
        let check = |statuses: &[(&str, Badge)], display, want: AnswerStatus, marking: &str| {
            let controls: Vec<ControlView> =
                statuses.iter().map(|(id, b)| control(id, *b)).collect();
            let ids: Vec<&str> = statuses.iter().map(|(id, _)| *id).collect();
            let view = faq_view(&text(&ids), &controls, "Acme", display);
            let q = &view[0].questions[0];
            assert_eq!(q.status, want, "{statuses:?}");
            assert_eq!(q.marking, marking);
        };
        use Badge::*;
        let d = FailingDisplay::Detail;
        check(
            &[],
            d,
            AnswerStatus::Statement,
            "A statement by Acme; it cites no control, so nothing checks it.",
        );
        check(
            &[("a", Passing)],
            d,
            AnswerStatus::Confirmed,
            "Confirmed: the control behind this answer is passing.",
        );
        check(
            &[("a", Passing), ("b", Passing)],
            d,
            AnswerStatus::Confirmed,
            "Confirmed: the 2 controls behind this answer are passing.",
        );
        check(
            &[("a", Passing), ("b", NeedsAttention)],
            d,
            AnswerStatus::NotConfirmed,
            "Not confirmed right now: Title b needs attention.",
        );
        check(
            &[("a", Stale), ("b", Passing)],
            d,
            AnswerStatus::NotConfirmed,
            "Not confirmed right now: Title a is stale.",
        );
        check(
            &[("a", NotVerified)],
            d,
            AnswerStatus::NotConfirmed,
            "Not confirmed right now: Title a is not verified.",
        );
        check(
            &[("a", NeedsAttention)],
            FailingDisplay::Neutral,
            AnswerStatus::NotConfirmed,
            "Not confirmed right now: Title a is in remediation.",
        );
        // The worst badge colours the marking: failing over stale over not verified.
        let controls = [
            control("a", NotVerified),
            control("b", NeedsAttention),
            control("c", Stale),
        ];
        let view = faq_view(&text(&["a", "b", "c"]), &controls, "Acme", d);
        assert_eq!(view[0].questions[0].badge, Some(NeedsAttention));
        // A citation missing from the page confirms nothing.
        let view = faq_view(&text(&["gone"]), &[], "Acme", d);
        assert_eq!(view[0].questions[0].status, AnswerStatus::NotConfirmed);
    }
}
