//! The Atom feed of public status changes (`/feed.atom`): one entry each time a public
//! control's badge changed — at an evaluation, or when its result went stale — newest first.
//!
//! Built from the same evaluations and public wording as the page, so it says nothing the
//! page does not: a control's title and its badge before and after, never why.

use atom_syndication::{Entry, Feed, Generator, Link, Person, Text};
use chrono::{DateTime, Duration, SubsecRound, Utc};

use super::history;
use super::view::{Badge, history_start, iso};
use crate::catalog::Catalog;
use crate::config::TrustPageConfig;
use crate::model::ControlHistory;

/// Entries kept in the feed.
pub const MAX_ENTRIES: usize = 100;

/// Namespace of the feed's entry ids (UUID v5), so ids are stable across renders.
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x5d1c_63b2_8f0e_4c55_9a5e_7f21_0c6b_44a1);

/// One change, ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    pub control_id: String,
    pub title: String,
    pub at: DateTime<Utc>,
    pub from: Option<Badge>,
    pub to: Badge,
}

/// Every public control's changes within the page's history window, newest first (ties by
/// control order), at most [`MAX_ENTRIES`].
pub fn entries(
    catalog: &Catalog,
    trust: &TrustPageConfig,
    history: &[ControlHistory],
    default_freshness: Duration,
    now: DateTime<Utc>,
) -> Vec<FeedEntry> {
    let display = trust.failing_display;
    let since = history_start(now);
    let mut out = Vec::new();
    for (position, control) in catalog
        .categories(&trust.category_order)
        .into_iter()
        .flat_map(|(_, controls)| controls)
        .filter(|c| c.public)
        .enumerate()
    {
        let Some((_, points)) = history.iter().find(|(id, _)| id == &control.id) else {
            continue;
        };
        let freshness = control.freshness.unwrap_or(default_freshness);
        for change in history::changes(points, freshness, since, now) {
            let from = change.from.map(|b| b.present(display));
            let to = change.to.present(display);
            if from == Some(to) {
                continue;
            }
            out.push((
                position,
                FeedEntry {
                    control_id: control.id.clone(),
                    title: control.title.clone(),
                    at: change.at,
                    from,
                    to,
                },
            ));
        }
    }
    out.sort_by(|(pa, a), (pb, b)| b.at.cmp(&a.at).then(pa.cmp(pb)));
    out.into_iter().take(MAX_ENTRIES).map(|(_, e)| e).collect()
}

/// The feed document. `updated` is the newest entry's time, else `fallback_updated`.
pub fn render(
    trust: &TrustPageConfig,
    entries: &[FeedEntry],
    fallback_updated: DateTime<Utc>,
) -> String {
    let base = trust.base_url.as_ref();
    let page = base.map_or_else(|| "./".to_string(), |b| format!("{}/", b.as_str()));
    let feed_id = uuid::Uuid::new_v5(
        &ID_NAMESPACE,
        base.map_or(trust.company.as_str(), |b| b.as_str())
            .as_bytes(),
    );
    let updated = entries.first().map_or(fallback_updated, |e| e.at);
    let mut feed = Feed {
        title: Text::plain(format!("{} trust page: status changes", trust.company)),
        id: format!("urn:uuid:{feed_id}"),
        updated: updated.trunc_subsecs(0).fixed_offset(),
        ..Feed::default()
    };
    let mut author = Person::default();
    author.set_name(trust.company.clone());
    feed.set_authors(vec![author]);
    let mut generator = Generator::default();
    generator.set_value("Trellis");
    feed.set_generator(Some(generator));
    let mut links = vec![link(&page, "alternate", "text/html")];
    if let Some(b) = base {
        links.push(link(&b.join("/feed.atom"), "self", "application/atom+xml"));
    }
    feed.set_links(links);
    feed.set_subtitle(Some(Text::plain(
        "Changes of the public status of the controls we monitor continuously.",
    )));
    feed.set_entries(
        entries
            .iter()
            .map(|e| {
                let id = uuid::Uuid::new_v5(
                    &feed_id,
                    format!("{}\n{}\n{}", e.control_id, iso(e.at), e.to.as_str()).as_bytes(),
                );
                let summary = match e.from {
                    None => format!("First checked: {}.", e.to.label()),
                    Some(from) => format!("Changed from {} to {}.", from.label(), e.to.label()),
                };
                let mut entry = Entry {
                    title: Text::plain(format!("{}: {}", e.title, e.to.label())),
                    id: format!("urn:uuid:{id}"),
                    updated: e.at.trunc_subsecs(0).fixed_offset(),
                    ..Entry::default()
                };
                entry.set_summary(Some(Text::plain(format!("{summary} {}", e.to.meaning()))));
                entry.set_links(vec![link(
                    &format!("{page}#control-{}", e.control_id),
                    "alternate",
                    "text/html",
                )]);
                entry
            })
            .collect::<Vec<_>>(),
    );
    feed.to_string()
}

fn link(href: &str, rel: &str, mime: &str) -> Link {
    let mut l = Link::default();
    l.set_href(href);
    l.set_rel(rel);
    l.set_mime_type(Some(mime.to_string()));
    l
}
