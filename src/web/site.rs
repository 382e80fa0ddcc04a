//! The public site as files: the page, its stylesheet, the JSON, the feed and security.txt.
//!
//! One function, [`render`], makes them from the store's evaluations; the live server serves
//! exactly these bytes from memory ([`super::cache`]) and `trellis render --out DIR` writes
//! them for static hosting. Everything is a function of the data and `now` (which only decides
//! what is stale and which day is today), so two renders of the same data are byte-identical.

use std::borrow::Cow;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use handlebars::Handlebars;

use super::narrative::Narrative;
use super::page::{self, Links};
use super::view::{TrustInputs, TrustView, history_start, trust_view};
use super::{CSS_FILE, TRUST_CSS, TRUST_TEMPLATE, feed, security_txt};
use crate::catalog::Catalog;
use crate::config::TrustPageConfig;
use crate::model::ControlHistory;
use crate::store::{ResultBasis, ResultHistory, Store, StoreError};

/// The page.
pub const INDEX: &str = "index.html";
/// The public JSON.
pub const JSON: &str = "api/v1/trust.json";
/// The Atom feed.
pub const FEED: &str = "feed.atom";
/// RFC 9116.
pub const SECURITY_TXT: &str = ".well-known/security.txt";
/// What crawlers may fetch.
pub const ROBOTS_TXT: &str = "robots.txt";

/// One file of the site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteFile {
    /// Relative path in the export (`index.html`, `api/v1/trust.json`,
    /// `assets/brand/logo-<hash>.svg`…).
    pub path: Cow<'static, str>,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// The rendered site.
#[derive(Debug, Clone)]
pub struct Site {
    pub files: Vec<SiteFile>,
    /// The public view the files were made from.
    pub view: TrustView,
    /// When the content changes without new data: a result going stale, or the next UTC day
    /// (the history strips move on).
    pub valid_until: DateTime<Utc>,
}

/// What the site is made of, besides the evaluations.
#[derive(Clone, Copy)]
pub struct SiteSources<'a> {
    pub catalog: &'a Catalog,
    pub trust: &'a TrustPageConfig,
    pub narrative: &'a Narrative,
    pub default_freshness: Duration,
    pub default_schedule: &'a crate::schedule::CronSchedule,
    pub templates: &'a Handlebars<'static>,
    /// Logos, favicon and the accent stylesheet.
    pub brand: &'a super::chrome::BrandAssets,
}

/// Why the site could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot render the trust page: {0}")]
    Template(#[from] handlebars::RenderError),
    #[error("cannot serialize the trust page: {0}")]
    Json(#[from] serde_json::Error),
}

impl SiteSources<'_> {
    /// The oldest evaluation time the site needs at `now`: the history window, and before it
    /// as far as any control's freshness reaches (so the window starts in a known state).
    pub fn history_since(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let longest = self
            .catalog
            .controls()
            .iter()
            .filter_map(|c| c.freshness)
            .fold(self.default_freshness, Duration::max);
        history_start(now) - longest
    }

    /// Reads the evaluations from the store and renders.
    pub async fn load_and_render(
        &self,
        store: &Store,
        now: DateTime<Utc>,
    ) -> Result<Site, RenderError> {
        let history = store.result_history(self.history_since(now)).await?;
        let basis = store.latest_basis().await?;
        self.render(&history, &basis, now)
    }

    /// Renders every file from the evaluations `history`.
    pub fn render(
        &self,
        history: &ResultHistory,
        basis: &ResultBasis,
        now: DateTime<Utc>,
    ) -> Result<Site, RenderError> {
        let history: &[ControlHistory] = history;
        let view = trust_view(&TrustInputs {
            catalog: self.catalog,
            trust: self.trust,
            narrative: self.narrative,
            history,
            basis,
            default_freshness: self.default_freshness,
            default_schedule: self.default_schedule,
            now,
        });
        let links = Links {
            feed: FEED.to_string(),
            json: JSON.to_string(),
            canonical: view.url.clone(),
        };
        let today = now.date_naive();
        let chrome = super::chrome::Chrome::new(self.brand, self.trust, "");
        let mut model = page::trust_page(&view, links, chrome, today);
        // Link previews need an absolute image address, and a raster: SVG is not shown.
        model.og_image = self.trust.base_url.as_ref().and_then(|base| {
            self.brand
                .logo
                .as_ref()
                .filter(|a| a.content_type == "image/png")
                .map(|a| base.join(&format!("/{}", a.path)))
        });
        let html = self.templates.render(TRUST_TEMPLATE, &model)?;
        let mut json = serde_json::to_vec_pretty(&view)?;
        json.push(b'\n');
        let entries = feed::entries(
            self.catalog,
            self.trust,
            history,
            self.default_freshness,
            now,
        );
        let start_of_today = today.and_time(NaiveTime::MIN).and_utc();
        let atom = feed::render(
            self.trust,
            &entries,
            view.summary.last_checked.unwrap_or(start_of_today),
        );
        let mut files = vec![
            SiteFile {
                path: Cow::Borrowed(INDEX),
                content_type: "text/html; charset=utf-8",
                body: html.into_bytes(),
            },
            SiteFile {
                path: Cow::Borrowed(CSS_FILE),
                content_type: "text/css; charset=utf-8",
                body: TRUST_CSS.as_bytes().to_vec(),
            },
            SiteFile {
                path: Cow::Borrowed(JSON),
                content_type: "application/json",
                body: json,
            },
            SiteFile {
                path: Cow::Borrowed(FEED),
                content_type: "application/atom+xml; charset=utf-8",
                body: atom.into_bytes(),
            },
        ];
        if let Some(txt) = security_txt::render(self.trust, view.summary.last_checked, now) {
            files.push(SiteFile {
                path: Cow::Borrowed(SECURITY_TXT),
                content_type: "text/plain; charset=utf-8",
                body: txt.into_bytes(),
            });
        }
        files.push(SiteFile {
            path: Cow::Borrowed(ROBOTS_TXT),
            content_type: "text/plain; charset=utf-8",
            body: super::chrome::robots_txt(self.trust).into_bytes(),
        });
        for asset in self.brand.files() {
            files.push(SiteFile {
                path: Cow::Owned(asset.path.clone()),
                content_type: asset.content_type,
                body: asset.body.clone(),
            });
        }
        let tomorrow = start_of_today + Duration::days(1);
        let valid_until = view
            .summary
            .valid_until
            .map_or(tomorrow, |t| t.min(tomorrow));
        Ok(Site {
            files,
            view,
            valid_until,
        })
    }
}

/// Writes the site under `dir` (created if needed); returns the paths written.
pub fn write(site: &Site, dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut written = Vec::new();
    for file in &site.files {
        let path = dir.join(file.path.as_ref());
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &file.body)?;
        written.push(path);
    }
    Ok(written)
}
