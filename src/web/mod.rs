//! The public web side: the trust site (page, JSON, Atom feed, security.txt, stylesheet),
//! document requests, `/healthz` and `/readyz`; and the metrics listener ([`metrics`]).
//!
//! - [`site`] renders the whole public site from the store's evaluations through the pure
//!   [`trust_view`]; [`SiteCache`] keeps it in memory for the live server and `trellis render`
//!   writes the same bytes to disk. Handlers never run probes and never see findings.
//! - `documents` takes visitors' requests for gated documents and serves approved ones through
//!   signed links (the rules are in [`crate::access`]); `subscribe` takes subscriptions; the
//!   [`analytics`] counter adds visit counts (no address, no user agent). Those are the public
//!   side's only writes.
//! - Templates are embedded at compile time from `templates/` and rendered by Handlebars in
//!   strict mode with HTML escaping; they see view models only.
//!
//! Wiring (the contract with `startup.rs`):
//!
//! ```ignore
//! App::new()
//!     .wrap(web::security_headers(&config.server))  // CSP, nosniff, no referrer, HSTS…
//!     .app_data(web::Data::new(state))              // WebState::new(…)
//!     .configure(web::configure)
//! ```

pub mod analytics;
mod cache;
pub mod chrome;
pub mod dashboard;
mod documents;
mod faq;
mod feed;
mod health;
mod history;
pub mod metrics;
mod narrative;
mod page;
mod security_txt;
pub mod site;
mod subscribe;
mod view;

pub use cache::{SiteCache, SiteInputs};
pub use documents::Documents;
pub use faq::check_citations as faq_citation_problems;
pub use feed::FeedEntry;
pub use history::DayRun;
pub use narrative::{Narrative, SectionView, SigningKeyView, SubprocessorView, markdown};

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};
use std::time::SystemTime;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpRequest, HttpResponse, web};
use handlebars::Handlebars;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use view::{
    Badge, BasisCount, BasisCounts, BasisKind, BasisView, CategoryView, ControlView, Counts,
    DocumentView, FrameworkView, HISTORY_DAYS, Summary, TrustInputs, TrustView, badge_for,
    basis_view, framework_name, history_start, iso, probe_records, probe_systems, trust_view,
};

use crate::config::ServerConfig;
use crate::store::Store;

/// Everything the handlers need, shared by all workers.
#[derive(Debug, Clone)]
pub struct WebState {
    pub store: Store,
    /// The public site, rendered and cached.
    pub site: Arc<SiteCache>,
    /// Gated documents and their access requests (when any are configured).
    pub documents: Option<Arc<Documents>>,
    pub templates: Arc<Handlebars<'static>>,
    /// What "now" is (the system clock, but in tests).
    pub clock: Arc<dyn crate::scheduler::Clock>,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<[IpAddr]>,
    /// Dashboard sessions and sign-in throttling.
    pub dashboard: crate::config::DashboardConfig,
    /// Session cookies are `Secure`.
    pub secure_cookies: bool,
    /// Where "run now" goes (absent when the scheduler is not running).
    pub scheduler: Option<crate::scheduler::SchedulerHandle>,
    /// The key signing export bundles.
    pub signer: Option<crate::integrity::Signer>,
    /// Single sign-on's identity provider (when `dashboard.oidc` is configured).
    pub oidc: Option<Arc<crate::oidc::Oidc>>,
    /// Mail to visitors: the subscribe pages (when `notifications.visitors` is set).
    pub visitors: Option<Arc<crate::notify::visitors::Visitors>>,
    /// Visitor counts (when `trust_page.analytics.enabled`).
    pub analytics: Option<Arc<analytics::Analytics>>,
}

impl WebState {
    /// Sets what the dashboards need beyond the public side.
    pub fn with_dashboard(
        mut self,
        dashboard: crate::config::DashboardConfig,
        secure_cookies: bool,
        scheduler: Option<crate::scheduler::SchedulerHandle>,
    ) -> WebState {
        self.dashboard = dashboard;
        self.secure_cookies = secure_cookies;
        self.scheduler = scheduler;
        self
    }

    /// Single sign-on through this identity provider.
    pub fn with_oidc(mut self, oidc: Option<crate::oidc::Oidc>) -> WebState {
        self.oidc = oidc.map(Arc::new);
        self
    }

    /// Mail to visitors (the subscribe pages, document links by email).
    pub fn with_visitors(
        mut self,
        visitors: Option<Arc<crate::notify::visitors::Visitors>>,
    ) -> WebState {
        self.visitors = visitors;
        self
    }

    /// Counts what visitors do.
    pub fn with_analytics(mut self, analytics: Option<Arc<analytics::Analytics>>) -> WebState {
        self.analytics = analytics;
        self
    }

    /// Counts a visitor's request or action, when counting is on.
    pub fn count(&self, req: &HttpRequest, metric: analytics::Metric, subject: &str) {
        if let Some(a) = &self.analytics {
            a.event(req, metric, subject);
        }
    }

    /// The key export bundles are signed with.
    pub fn with_signer(mut self, signer: crate::integrity::Signer) -> WebState {
        self.signer = Some(signer);
        self
    }

    /// The state of a server: the site cache over `inputs`, and the documents (if any).
    pub fn new(
        store: Store,
        inputs: SiteInputs,
        documents: Option<Documents>,
        clock: Arc<dyn crate::scheduler::Clock>,
        trusted_proxies: &[IpAddr],
    ) -> WebState {
        let templates = inputs.templates.clone();
        WebState {
            site: Arc::new(SiteCache::new(inputs, store.clone(), clock.clone())),
            store,
            documents: documents.map(Arc::new),
            templates,
            clock,
            trusted_proxies: trusted_proxies.into(),
            dashboard: crate::config::DashboardConfig::default(),
            secure_cookies: false,
            scheduler: None,
            signer: None,
            oidc: None,
            visitors: None,
            analytics: None,
        }
    }
}

const TRUST_TEMPLATE: &str = "trust";
const UNAVAILABLE_TEMPLATE: &str = "unavailable";
const LAYOUT_PARTIAL: &str = "layout";

const TRUST_HBS: &str = include_str!("../../templates/trust.hbs");
const UNAVAILABLE_HBS: &str = include_str!("../../templates/unavailable.hbs");
const LAYOUT_HBS: &str = include_str!("../../templates/layout.hbs");
const FOOTER_LINKS_HBS: &str = include_str!("../../templates/footer_links.hbs");

/// The stylesheet, served at `/` + [`CSS_FILE`].
pub const TRUST_CSS: &str = include_str!("../../templates/trust.css");
pub const CSS_FILE: &str = "assets/trust.css";

/// The first 12 hex digits of the stylesheet's SHA-256: its links carry it (`?v=`), so it
/// can be cached for a year.
static CSS_VERSION: LazyLock<String> = LazyLock::new(|| {
    let digest = hex::encode(Sha256::digest(TRUST_CSS.as_bytes()));
    digest[..12].to_string()
});

pub fn css_version() -> &'static str {
    &CSS_VERSION
}

/// The stylesheet link of pages served at the top level.
pub fn css_href() -> String {
    format!("/{CSS_FILE}?v={}", css_version())
}

/// The Content-Security-Policy of every response: nothing but our own stylesheet and images,
/// no script at all, forms only to ourselves, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("x-content-type-options", "nosniff"),
    // `same-origin`, not `no-referrer`: with `no-referrer` browsers send `Origin: null` on form
    // posts, and the forms' origin checks could not tell our pages from anyone's.
    ("referrer-policy", "same-origin"),
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
];

/// Middleware adding the security headers (nosniff, no referrer, strict CSP, no framing) and,
/// when configured, HSTS to responses that do not set them.
pub fn security_headers(server: &ServerConfig) -> DefaultHeaders {
    let mw = SECURITY_HEADERS
        .into_iter()
        .fold(DefaultHeaders::new(), |mw, pair| mw.add(pair));
    match hsts_value(server) {
        Some(v) => mw.add((header::STRICT_TRANSPORT_SECURITY, v)),
        None => mw,
    }
}

fn hsts_value(server: &ServerConfig) -> Option<String> {
    server
        .hsts_max_age
        .as_ref()
        .map(|d| format!("max-age={}; includeSubDomains", d.get().num_seconds()))
}

fn insert_security_headers(headers: &mut HeaderMap) {
    for (name, value) in SECURITY_HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
}

/// The page templates, embedded at compile time, in strict mode with HTML escaping.
pub fn templates() -> Result<Handlebars<'static>, handlebars::TemplateError> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::html_escape);
    hb.register_partial(LAYOUT_PARTIAL, LAYOUT_HBS)?;
    hb.register_partial("footer_links", FOOTER_LINKS_HBS)?;
    hb.register_template_string(TRUST_TEMPLATE, TRUST_HBS)?;
    hb.register_template_string(UNAVAILABLE_TEMPLATE, UNAVAILABLE_HBS)?;
    documents::register_templates(&mut hb)?;
    subscribe::register_templates(&mut hb)?;
    dashboard::register_templates(&mut hb)?;
    Ok(hb)
}

/// Registers the routes (each `GET` also answers `HEAD`):
/// - the public site from the cache: `/` (and `/index.html`), `/assets/trust.css`,
///   `/api/v1/trust` (and `.json`), `/feed.atom`, `/.well-known/security.txt`,
///   `/robots.txt` and the brand's files (`/assets/brand/…`);
/// - `/healthz` (process up) and `/readyz` (database reachable, migrations applied);
/// - document requests: `/request-access` (form and post), `/access/{id}` (an approval's
///   page) and `/access/{id}/{document}` (the download);
/// - subscriptions: `/subscribe` (form and post), `/subscribe/confirm`, `/unsubscribe`;
/// - a 404 fallback.
///
/// Needs `web::Data<WebState>`. Wrap the app in [`security_headers`].
pub fn configure(cfg: &mut web::ServiceConfig) {
    let routes: [(&str, &'static str); 8] = [
        ("/", site::INDEX),
        ("/index.html", site::INDEX),
        ("/assets/trust.css", CSS_FILE),
        ("/api/v1/trust", site::JSON),
        ("/api/v1/trust.json", site::JSON),
        ("/feed.atom", site::FEED),
        ("/.well-known/security.txt", site::SECURITY_TXT),
        ("/robots.txt", site::ROBOTS_TXT),
    ];
    for (route, file) in routes {
        let handler = move |req: HttpRequest, state: web::Data<WebState>| {
            serve_site_file(req, state, Cow::Borrowed(file))
        };
        cfg.service(
            web::resource(route)
                .route(web::get().to(handler))
                .route(web::head().to(handler)),
        );
    }
    // Brand files: from what was read at start, so they are there even while the site
    // cannot be rendered (the 503 page and the forms keep their brand).
    cfg.service(
        web::resource("/assets/brand/{name}")
            .route(web::get().to(serve_brand_file))
            .route(web::head().to(serve_brand_file)),
    );
    cfg.service(
        web::resource("/healthz")
            .route(web::get().to(health::healthz))
            .route(web::head().to(health::healthz)),
    );
    cfg.service(
        web::resource("/readyz")
            .route(web::get().to(readyz))
            .route(web::head().to(readyz)),
    );
    documents::configure(cfg);
    subscribe::configure(cfg);
    dashboard::configure(cfg);
    cfg.default_service(web::to(not_found));
}

/// Serves one file of the cached site, with ETag / Last-Modified revalidation and gzip.
async fn serve_site_file(
    req: HttpRequest,
    state: web::Data<WebState>,
    path: Cow<'static, str>,
) -> HttpResponse {
    let path = path.as_ref();
    let Ok(site) = state.site.get().await else {
        return if path == site::INDEX {
            unavailable_page(&state)
        } else {
            HttpResponse::ServiceUnavailable()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .insert_header((header::RETRY_AFTER, "60"))
                .json(ApiError {
                    error: "unavailable",
                })
        };
    };
    let Some(file) = site.files.get(path) else {
        return not_found().await;
    };
    if req.method() == actix_web::http::Method::GET {
        let metric = match path {
            site::INDEX => Some(analytics::Metric::PageView),
            site::JSON => Some(analytics::Metric::JsonFetch),
            site::FEED => Some(analytics::Metric::FeedFetch),
            _ => None,
        };
        if let Some(metric) = metric {
            state.count(&req, metric, "");
        }
    }
    let gzip = file.gzip.as_ref().filter(|_| accepts_gzip(req.headers()));
    let etag = if gzip.is_some() {
        &file.etag_gzip
    } else {
        &file.etag
    };
    let cache_control = if path == CSS_FILE {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let unchanged = not_modified(&req, etag, file.last_modified);
    let mut builder = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    builder
        .insert_header((header::CONTENT_TYPE, file.content_type))
        .insert_header((header::ETAG, etag.as_str()))
        .insert_header((
            header::LAST_MODIFIED,
            header::HttpDate::from(file.last_modified),
        ))
        .insert_header((header::CACHE_CONTROL, cache_control))
        .insert_header((header::VARY, "Accept-Encoding"));
    if path == site::JSON || path == site::FEED {
        builder.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"));
    }
    if !state.site.inputs().trust.indexing {
        builder.insert_header(("x-robots-tag", "noindex, nofollow"));
    }
    if unchanged {
        return builder.finish();
    }
    match gzip {
        Some(body) => builder
            .insert_header((header::CONTENT_ENCODING, "gzip"))
            .body(body.clone()),
        None => builder.body(file.body.clone()),
    }
}

/// The Content-Security-Policy of a brand SVG: the site's, and a sandbox, for whoever opens
/// one directly (`brand::check_svg` refused script; this is the second lock).
pub const SVG_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'; sandbox";

/// A brand file (`/assets/brand/<name>`): its name holds its content's hash, so it is cached
/// for a year and revalidated by that hash.
async fn serve_brand_file(
    req: HttpRequest,
    state: web::Data<WebState>,
    name: web::Path<String>,
) -> HttpResponse {
    let path = format!("{}{}", chrome::BRAND_DIR, name.as_str());
    let brand = &state.site.inputs().brand;
    let Some(asset) = brand.files().find(|a| a.path == path) else {
        return not_found().await;
    };
    let etag = format!("\"{}\"", asset.hash);
    let unchanged = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == etag)
        });
    let mut builder = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    builder
        .insert_header((header::CONTENT_TYPE, asset.content_type))
        .insert_header((header::ETAG, etag.as_str()))
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"));
    if asset.content_type == "image/svg+xml" {
        builder.insert_header((header::CONTENT_SECURITY_POLICY, SVG_CONTENT_SECURITY_POLICY));
    }
    if !state.site.inputs().trust.indexing {
        builder.insert_header(("x-robots-tag", "noindex, nofollow"));
    }
    if unchanged {
        builder.finish()
    } else {
        builder.body(asset.body.clone())
    }
}

/// RFC 9110 13.1.2 and 13.1.3: `If-None-Match` (weak comparison, `*`) wins over
/// `If-Modified-Since`.
fn not_modified(req: &HttpRequest, etag: &str, last_modified: SystemTime) -> bool {
    if let Some(inm) = req.headers().get(header::IF_NONE_MATCH) {
        let Ok(inm) = inm.to_str() else {
            return false;
        };
        let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
        return inm.split(',').any(|t| t.trim() == "*" || bare(t) == etag);
    }
    req.headers()
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<header::HttpDate>().ok())
        .is_some_and(|since| last_modified <= SystemTime::from(since))
}

/// Whether `Accept-Encoding` accepts gzip (`gzip` or `*` with a non-zero quality, unless
/// gzip itself is refused).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q=").map(str::trim))
                .map_or(1.0, |q| q.parse::<f32>().unwrap_or(0.0));
            match coding.as_str() {
                "gzip" | "x-gzip" => gzip = Some(q > 0.0),
                "*" => any = Some(q > 0.0),
                _ => {}
            }
        }
    }
    gzip.or(any).unwrap_or(false)
}

#[derive(Serialize)]
struct ApiError {
    error: &'static str,
}

async fn readyz(state: web::Data<WebState>) -> HttpResponse {
    health::readyz(&state.store).await
}

async fn not_found() -> HttpResponse {
    let mut resp = HttpResponse::NotFound()
        .content_type(header::ContentType::plaintext())
        .body("Not found.");
    insert_security_headers(resp.headers_mut());
    resp
}

/// The 503 page: says the status is unavailable, nothing about why.
fn unavailable_page(state: &WebState) -> HttpResponse {
    let model = page::UnavailablePage {
        title: None,
        company: state.site.inputs().trust.company.clone(),
        chrome: state.site.inputs().chrome(),
    };
    let body = state
        .templates
        .render(UNAVAILABLE_TEMPLATE, &model)
        .unwrap_or_else(|error| {
            tracing::error!(%error, "cannot render the unavailable page");
            "<!doctype html><title>Temporarily unavailable</title>\
         <p>The status page is temporarily unavailable. Please try again shortly.</p>"
                .to_string()
        });
    let mut resp = html(StatusCode::SERVICE_UNAVAILABLE, body);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(header::ContentType::html())
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// The client's address: the peer, or — when the peer is a trusted proxy — the last address
/// in `X-Forwarded-For` that is not a trusted proxy.
pub fn client_ip(req: &HttpRequest, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|a| !trusted.contains(a))
        .or(Some(peer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FailingDisplay;

    fn links() -> page::Links {
        page::Links {
            feed: site::FEED.into(),
            json: site::JSON.into(),
            canonical: None,
        }
    }

    fn chrome() -> chrome::Chrome {
        chrome::Chrome::new(
            &chrome::BrandAssets::default(),
            &crate::config::TrustPageConfig::default(),
            "",
        )
    }

    fn today() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
    }

    fn empty_view() -> TrustView {
        TrustView {
            company: "Acme <Widgets>".into(),
            contact_email: None,
            intro: None,
            url: None,
            summary: Summary {
                passing: 0,
                total: 0,
                counts: Counts::default(),
                last_checked: None,
                valid_until: None,
                basis: Default::default(),
            },
            frameworks: Vec::new(),
            failing_display: FailingDisplay::Detail,
            history_days: HISTORY_DAYS,
            categories: Vec::new(),
            sections: Vec::new(),
            faq: Vec::new(),
            vulnerability_disclosure: None,
            subprocessors: Vec::new(),
            documents: Vec::new(),
            signing_key: None,
            subscribe_url: None,
        }
    }

    #[test]
    fn templates_render_in_strict_mode_without_optional_parts() {
        let hb = templates().unwrap();
        let html = hb
            .render(
                TRUST_TEMPLATE,
                &page::trust_page(&empty_view(), links(), chrome(), today()),
            )
            .unwrap();
        assert!(html.contains("<h1>Acme &lt;Widgets&gt;</h1>"), "{html}");
        assert!(html.contains("No controls published yet"));
        assert!(html.contains("No controls are published yet"));
        assert!(html.contains("0 of 0 controls passing"));
        assert!(!html.contains("mailto:"));
        assert!(!html.contains("<nav"));
        assert!(!html.contains("rel=\"canonical\""));
        let html = hb
            .render(
                UNAVAILABLE_TEMPLATE,
                &page::UnavailablePage {
                    title: None,
                    company: "Acme".into(),
                    chrome: chrome(),
                },
            )
            .unwrap();
        assert!(html.contains("Status temporarily unavailable"));
    }

    fn control(status: Badge) -> ControlView {
        ControlView {
            id: "c".into(),
            title: "C".into(),
            description: "D".into(),
            status,
            last_checked: None,
            since: None,
            history: Vec::new(),
            days_monitored: 0,
            days_passing: 0,
            basis: super::view::BasisView {
                kind: super::view::BasisKind::Monitored,
                claim: crate::catalog::Claim::System,
                systems: vec!["AWS".into()],
                checked: "daily".into(),
                approved_on: None,
                reviewed: None,
                last_entry: None,
                statements: vec!["Monitored automatically (AWS), checked daily".into()],
            },
        }
    }

    #[test]
    fn overall_banner_is_green_only_when_everything_passes() {
        let mut view = empty_view();
        view.summary.total = 1;
        view.summary.passing = 1;
        view.summary.counts.passing = 1;
        view.categories.push(CategoryView {
            name: "Cat".into(),
            counts: view.summary.counts,
            controls: vec![control(Badge::Passing)],
        });
        let page = page::trust_page(&view, links(), chrome(), today());
        assert_eq!(page.overall, "passing");
        assert_eq!(page.headline, "1 of 1 control passing");
        for (badge, display, expect) in [
            (
                Badge::NeedsAttention,
                FailingDisplay::Detail,
                "needs_attention",
            ),
            (
                Badge::NeedsAttention,
                FailingDisplay::Neutral,
                "in_remediation",
            ),
            (
                Badge::InRemediation,
                FailingDisplay::Neutral,
                "in_remediation",
            ),
            (Badge::Stale, FailingDisplay::Detail, "stale"),
            (Badge::NotVerified, FailingDisplay::Detail, "not_verified"),
        ] {
            let mut v = view.clone();
            v.failing_display = display;
            v.summary.total = 2;
            match badge {
                Badge::NeedsAttention => v.summary.counts.needs_attention = 1,
                Badge::InRemediation => v.summary.counts.in_remediation = 1,
                Badge::Stale => v.summary.counts.stale = 1,
                _ => v.summary.counts.not_verified = 1,
            }
            assert_eq!(
                page::trust_page(&v, links(), chrome(), today()).overall,
                expect,
                "{badge:?} {display:?}"
            );
        }
    }

    #[test]
    fn neutral_pages_never_say_needs_attention() {
        let mut view = empty_view();
        view.failing_display = FailingDisplay::Neutral;
        let page = page::trust_page(&view, links(), chrome(), today());
        let keys: Vec<&str> = page.legend.iter().map(|l| l.badge.key).collect();
        assert_eq!(keys, ["passing", "in_remediation", "stale", "not_verified"]);
        view.failing_display = FailingDisplay::Detail;
        let page = page::trust_page(&view, links(), chrome(), today());
        let keys: Vec<&str> = page.counts.iter().map(|c| c.badge.key).collect();
        assert_eq!(
            keys,
            ["passing", "needs_attention", "stale", "not_verified"]
        );
        for b in Badge::ALL {
            for d in [FailingDisplay::Detail, FailingDisplay::Neutral] {
                let shown = b.present(d);
                assert_eq!(shown == Badge::Passing, b == Badge::Passing, "{b:?} {d:?}");
            }
        }
    }

    #[test]
    fn a_brand_svg_has_the_sites_policy_and_a_sandbox() {
        assert_eq!(
            SVG_CONTENT_SECURITY_POLICY,
            format!("{CONTENT_SECURITY_POLICY}; sandbox")
        );
    }

    #[test]
    fn stylesheet_link_is_versioned() {
        assert!(css_href().starts_with("/assets/trust.css?v="));
        assert_eq!(css_href().len(), 1 + CSS_FILE.len() + 3 + 12);
    }

    #[test]
    fn gzip_is_negotiated() {
        let check = |accept: Option<&str>, expect: bool| {
            let mut h = HeaderMap::new();
            if let Some(a) = accept {
                h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(a).unwrap());
            }
            assert_eq!(accepts_gzip(&h), expect, "{accept:?}");
        };
        check(None, false);
        check(Some("gzip"), true);
        check(Some("gzip, deflate, br"), true);
        check(Some("br;q=1.0, gzip;q=0.8"), true);
        check(Some("gzip;q=0"), false);
        check(Some("*"), true);
        check(Some("*;q=0.5, gzip;q=0"), false);
        check(Some("identity"), false);
        check(Some("deflate"), false);
    }
}
