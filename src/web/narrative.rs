//! The narrative part of the trust page: free-text sections from the configuration (Markdown,
//! rendered and sanitised once at start) and the subprocessors, from the vendors register.
//! Company-level, public by design: nothing here comes from evidence or findings.

use serde::Serialize;

use crate::config::TrustPageConfig;
use crate::registers::Registers;

/// One narrative section, ready to show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SectionView {
    pub title: String,
    /// Unique HTML id of its heading.
    pub anchor: String,
    /// The body, rendered from Markdown and sanitised (no script, no styles, no event
    /// handlers; links get `rel="noopener noreferrer"`).
    pub html: String,
}

/// A subprocessor, as listed publicly.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubprocessorView {
    pub name: String,
    pub purpose: String,
    pub location: String,
}

/// Everything narrative the public page shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Narrative {
    pub sections: Vec<SectionView>,
    pub subprocessors: Vec<SubprocessorView>,
    /// The vulnerability disclosure policy, rendered and sanitised.
    pub disclosure: Option<String>,
    /// The NDA terms of document requests, rendered and sanitised.
    pub nda: Option<String>,
    /// The public key that signs run manifests and export bundles.
    pub signing_key: Option<SigningKeyView>,
    /// The subscribe form's address (absolute: the static export links to the live server),
    /// when `notifications.visitors` is set.
    pub subscribe_url: Option<String>,
    /// Questions and answers, rendered (their marking is live: see [`super::faq`]).
    pub faq: Vec<super::faq::FaqGroupText>,
}

/// The evidence signing key, as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SigningKeyView {
    pub algorithm: &'static str,
    /// `ed25519:<base64>`.
    pub public_key: String,
    /// `SHA256:<hex>`: the key id in manifests and bundles.
    pub fingerprint: String,
}

impl Narrative {
    /// Renders the configured sections and lists the vendors marked `subprocessor: true`.
    pub fn build(trust: &TrustPageConfig, registers: Option<&Registers>) -> Narrative {
        let mut used = std::collections::HashSet::new();
        let sections = trust
            .sections
            .iter()
            .map(|s| {
                let anchor = unique(
                    format!("about-{}", crate::catalog::kebab(&s.title)),
                    &mut used,
                );
                SectionView {
                    title: s.title.clone(),
                    anchor,
                    html: markdown(&s.body),
                }
            })
            .collect();
        let subprocessors = registers
            .map(|r| {
                r.vendors
                    .iter()
                    .filter(|v| v.subprocessor)
                    .map(|v| SubprocessorView {
                        name: v.name.clone(),
                        purpose: v.purpose.clone(),
                        location: v.location.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Narrative {
            sections,
            subprocessors,
            disclosure: trust.vulnerability_disclosure.as_deref().map(markdown),
            nda: trust.documents.nda.as_deref().map(markdown),
            signing_key: None,
            subscribe_url: None,
            faq: super::faq::build(trust),
        }
    }
}

/// `base`, or `base-2`, `base-3`… whichever is not `taken` yet (and is now).
pub(super) fn unique(base: String, taken: &mut std::collections::HashSet<String>) -> String {
    let mut anchor = base.clone();
    let mut n = 2;
    while !taken.insert(anchor.clone()) {
        anchor = format!("{base}-{n}");
        n += 1;
    }
    anchor
}

/// Markdown to sanitised HTML. Headings are demoted below the section's own `<h2>`.
pub fn markdown(source: &str) -> String {
    markdown_under(source, 2)
}

/// Markdown to sanitised HTML, its headings demoted below a heading of level `parent` (an
/// answer's `<h4>`: its `#` and `##` become `<h5>`).
pub fn markdown_under(source: &str, parent: u8) -> String {
    use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
    let demote = |l: HeadingLevel| {
        let level = (l as u8).max(2) + parent.saturating_sub(1);
        HeadingLevel::try_from(usize::from(level.min(6))).unwrap_or(HeadingLevel::H6)
    };
    let events = Parser::new_ext(
        source,
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH,
    )
    .map(|e| match e {
        Event::Start(Tag::Heading {
            level,
            id,
            classes,
            attrs,
        }) => Event::Start(Tag::Heading {
            level: demote(level),
            id,
            classes,
            attrs,
        }),
        Event::End(TagEnd::Heading(level)) => Event::End(TagEnd::Heading(demote(level))),
        other => other,
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer"))
        .url_schemes(["https", "http", "mailto"].into())
        .clean(&html)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_rendered_and_sanitised() {
        let check = |md: &str, want: &str| {
            let html = markdown(md);
            assert!(html.contains(want), "{md:?} → {html}");
        };
        check(
            "We use **TLS 1.2+**.",
            "<p>We use <strong>TLS 1.2+</strong>.</p>",
        );
        check("# Heading", "<h3>Heading</h3>");
        check(
            "[docs](https://example.com)",
            "<a href=\"https://example.com\" rel=\"noopener noreferrer\">docs</a>",
        );
        let html = markdown(
            "<script>alert(1)</script><img src=x onerror=alert(1)> <b style=\"color:red\">b</b>\n\n[x](javascript:alert(1)) <a href=\"javascript:alert(2)\">y</a>",
        );
        for bad in ["<script", "onerror", "href=\"javascript", "style="] {
            assert!(!html.contains(bad), "{bad} survived: {html}");
        }
    }
}
