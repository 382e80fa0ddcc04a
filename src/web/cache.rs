//! The live public site, served from memory.
//!
//! The site ([`super::site`]) is rendered once and kept with what each response needs
//! precomputed (gzip body, ETags, Last-Modified), then rebuilt only when it would change:
//! this process stored a result (the store's change counter), another process did (a poller
//! reads the store's data version every `server.refresh_interval`), or time alone changes it
//! (a result goes stale, a new UTC day starts). A request costs a few atomic loads.
//!
//! If a rebuild fails (the database is down), the last site is served while it is still
//! true — never past its `valid_until`, so nothing stays green once it would be stale.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::SystemTime;

use actix_web::web::Bytes;
use arc_swap::ArcSwapOption;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use super::site::{Site, SiteSources};
use super::view::TrustView;
use crate::catalog::Catalog;
use crate::config::TrustPageConfig;
use crate::scheduler::Clock;
use crate::store::Store;

/// After a failed rebuild, requests do not retry before this long.
const RETRY_AFTER_FAILURE: Duration = Duration::seconds(5);

/// One file, ready to serve.
#[derive(Debug)]
pub struct LiveFile {
    pub content_type: &'static str,
    pub body: Bytes,
    /// The body gzipped, when that is smaller.
    pub gzip: Option<Bytes>,
    /// Strong ETags of the identity and the gzip bodies (quoted).
    pub etag: String,
    pub etag_gzip: String,
    /// When this file's content last changed (whole seconds).
    pub last_modified: SystemTime,
}

/// The rendered site with its files by path.
#[derive(Debug)]
pub struct LiveSite {
    pub files: HashMap<std::borrow::Cow<'static, str>, LiveFile>,
    pub view: TrustView,
    pub valid_until: DateTime<Utc>,
    /// The store's change counter and data version it was built from.
    built_local: u64,
    built_external: i64,
}

/// Everything a rebuild reads; owned, so the cache can live in the web state.
#[derive(Clone)]
pub struct SiteInputs {
    pub catalog: Arc<Catalog>,
    pub trust: TrustPageConfig,
    pub narrative: Arc<super::Narrative>,
    pub default_freshness: Duration,
    pub default_schedule: crate::schedule::CronSchedule,
    pub templates: Arc<handlebars::Handlebars<'static>>,
    /// Logos, favicon and the accent stylesheet, read at start.
    pub brand: Arc<super::chrome::BrandAssets>,
}

impl SiteInputs {
    pub fn sources(&self) -> SiteSources<'_> {
        SiteSources {
            catalog: &self.catalog,
            trust: &self.trust,
            narrative: &self.narrative,
            default_freshness: self.default_freshness,
            default_schedule: &self.default_schedule,
            templates: &self.templates,
            brand: &self.brand,
        }
    }

    /// The frame of public pages served outside the site's files (forms, messages).
    pub fn chrome(&self) -> super::chrome::Chrome {
        super::chrome::Chrome::new(&self.brand, &self.trust, "/")
    }
}

/// The live site cache. Cheap to share (`Arc`).
pub struct SiteCache {
    inputs: SiteInputs,
    store: Store,
    clock: Arc<dyn Clock>,
    local_changes: tokio::sync::watch::Receiver<u64>,
    /// The store's data version as last seen by the poller.
    external_version: AtomicI64,
    current: ArcSwapOption<LiveSite>,
    rebuild: tokio::sync::Mutex<Option<DateTime<Utc>>>,
}

impl std::fmt::Debug for SiteCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteCache").finish_non_exhaustive()
    }
}

/// The site could not be built and no current one is left to serve.
#[derive(Debug, Clone, Copy)]
pub struct Unavailable;

impl SiteCache {
    pub fn new(inputs: SiteInputs, store: Store, clock: Arc<dyn Clock>) -> SiteCache {
        SiteCache {
            inputs,
            local_changes: store.changes(),
            store,
            clock,
            external_version: AtomicI64::new(0),
            current: ArcSwapOption::empty(),
            rebuild: tokio::sync::Mutex::new(None),
        }
    }

    pub fn inputs(&self) -> &SiteInputs {
        &self.inputs
    }

    /// The site as of now: the cached one if nothing changed, else rebuilt.
    pub async fn get(&self) -> Result<Arc<LiveSite>, Unavailable> {
        let now = self.clock.now();
        if let Some(site) = self.current.load_full()
            && self.is_current(&site, now)
        {
            return Ok(site);
        }
        self.rebuild(now).await
    }

    fn is_current(&self, site: &LiveSite, now: DateTime<Utc>) -> bool {
        now < site.valid_until
            && site.built_local == *self.local_changes.borrow()
            && site.built_external == self.external_version.load(Ordering::Acquire)
    }

    async fn rebuild(&self, now: DateTime<Utc>) -> Result<Arc<LiveSite>, Unavailable> {
        let mut last_failure = self.rebuild.lock().await;
        // Another request may have rebuilt it while this one waited.
        let previous = self.current.load_full();
        if let Some(site) = &previous
            && self.is_current(site, now)
        {
            return Ok(site.clone());
        }
        let usable_previous = previous.clone().filter(|site| now < site.valid_until);
        if let Some(failed_at) = *last_failure
            && now - failed_at < RETRY_AFTER_FAILURE
        {
            return usable_previous.ok_or(Unavailable);
        }
        let local = *self.local_changes.borrow();
        let external = self.external_version.load(Ordering::Acquire);
        match self
            .inputs
            .sources()
            .load_and_render(&self.store, now)
            .await
        {
            Ok(site) => {
                *last_failure = None;
                let live = Arc::new(live_site(site, previous.as_deref(), local, external, now));
                self.current.store(Some(live.clone()));
                Ok(live)
            }
            Err(error) => {
                *last_failure = Some(now);
                tracing::error!(%error, "trust page: cannot rebuild");
                usable_previous.ok_or(Unavailable)
            }
        }
    }

    /// Polls the store's data version until `shutdown`, so results written by other processes
    /// show within `interval`.
    pub async fn poll_store(
        self: Arc<Self>,
        interval: std::time::Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            match self.store.data_version().await {
                Ok(v) => self.external_version.store(v, Ordering::Release),
                Err(error) => tracing::warn!(%error, "trust page: cannot poll the store"),
            }
        }
    }
}

fn live_site(
    site: Site,
    previous: Option<&LiveSite>,
    built_local: u64,
    built_external: i64,
    now: DateTime<Utc>,
) -> LiveSite {
    // Whole seconds, and a second back: never later than the response's own `Date`.
    let now_secs = SystemTime::UNIX_EPOCH
        + std::time::Duration::from_secs(u64::try_from(now.timestamp() - 1).unwrap_or(0));
    let files = site
        .files
        .into_iter()
        .map(|f| {
            let digest = hex::encode(Sha256::digest(&f.body));
            let etag = format!("\"{}\"", &digest[..32]);
            // Unchanged content keeps its Last-Modified, so conditional requests still match.
            let last_modified = previous
                .and_then(|p| p.files.get(f.path.as_ref()))
                .filter(|old| old.etag == etag)
                .map_or(now_secs, |old| old.last_modified);
            let gzip = gzip(&f.body).filter(|g| g.len() < f.body.len());
            (
                f.path,
                LiveFile {
                    content_type: f.content_type,
                    etag_gzip: format!("\"{}-gz\"", &digest[..32]),
                    etag,
                    gzip: gzip.map(Bytes::from),
                    body: Bytes::from(f.body),
                    last_modified,
                },
            )
        })
        .collect();
    LiveSite {
        files,
        view: site.view,
        valid_until: site.valid_until,
        built_local,
        built_external,
    }
}

fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::best(),
    );
    encoder.write_all(body).ok()?;
    encoder.finish().ok()
}
