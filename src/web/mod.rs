//! The public web side: the trust page (`/`), its JSON (`/api/v1/trust`), `/healthz` and the
//! stylesheet.
//!
//! Handlers read the newest results from the [`Store`] and render a view model built by
//! [`trust_view`]; they never run probes and never see findings. Templates are embedded at
//! compile time from `templates/` and rendered by Handlebars in strict mode with HTML escaping.
//!
//! Wiring (the contract with `startup.rs`):
//!
//! ```ignore
//! App::new()
//!     .app_data(web::Data::new(state))        // WebState
//!     .app_data(web::Data::new(handlebars))   // Handlebars<'static> from web::templates()
//!     .configure(web::configure)
//! ```
//!
//! Every route (and the 404 fallback `configure` installs) carries the security headers of
//! [`security_headers`]; wrapping the whole `App` in it as well is harmless.

mod narrative;
mod page;
mod view;

pub use narrative::{Narrative, SectionView, SubprocessorView, markdown};

use std::sync::{Arc, LazyLock};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpResponse, web};
use handlebars::Handlebars;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use view::{
    Badge, CategoryView, ControlView, Counts, Summary, TrustView, badge_for, trust_view,
};

use crate::catalog::Catalog;
use crate::config::TrustPageConfig;
use crate::store::Store;

/// Everything the handlers need, shared by all workers.
#[derive(Debug, Clone)]
pub struct WebState {
    pub catalog: Arc<Catalog>,
    pub store: Store,
    pub trust: TrustPageConfig,
    /// Freshness of controls without their own (`Config.default_freshness`, parsed).
    pub default_freshness: chrono::Duration,
    /// Narrative sections and subprocessors, prepared at start.
    pub narrative: Arc<Narrative>,
    /// What "now" is for staleness and "last checked" (the system clock, but in tests).
    pub clock: Arc<dyn crate::scheduler::Clock>,
}

const TRUST_TEMPLATE: &str = "trust";
const UNAVAILABLE_TEMPLATE: &str = "unavailable";
const LAYOUT_PARTIAL: &str = "layout";

const TRUST_HBS: &str = include_str!("../../templates/trust.hbs");
const UNAVAILABLE_HBS: &str = include_str!("../../templates/unavailable.hbs");
const LAYOUT_HBS: &str = include_str!("../../templates/layout.hbs");

/// The stylesheet, served at [`CSS_PATH`].
pub const TRUST_CSS: &str = include_str!("../../templates/trust.css");
pub const CSS_PATH: &str = "/assets/trust.css";

/// `/assets/trust.css?v=<hash>`: the stylesheet is cached for a year, so its link changes
/// whenever its content does.
static CSS_HREF: LazyLock<String> = LazyLock::new(|| {
    let digest = hex::encode(Sha256::digest(TRUST_CSS.as_bytes()));
    format!("{CSS_PATH}?v={}", &digest[..12])
});

/// The stylesheet link used by the pages (with its cache-busting version).
pub fn css_href() -> &'static str {
    &CSS_HREF
}

/// The Content-Security-Policy of every response: nothing but our own stylesheet and images.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const SECURITY_HEADERS: [(&str, &str); 3] = [
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("content-security-policy", CONTENT_SECURITY_POLICY),
];

/// Middleware adding the security headers (nosniff, no referrer, strict CSP) to responses
/// that do not set them.
pub fn security_headers() -> DefaultHeaders {
    SECURITY_HEADERS
        .into_iter()
        .fold(DefaultHeaders::new(), |mw, pair| mw.add(pair))
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
    hb.register_template_string(TRUST_TEMPLATE, TRUST_HBS)?;
    hb.register_template_string(UNAVAILABLE_TEMPLATE, UNAVAILABLE_HBS)?;
    Ok(hb)
}

/// Registers the routes: `GET /`, `GET /api/v1/trust`, `GET /healthz`, `GET /assets/trust.css`
/// (each also answering `HEAD`), and a 404 fallback. Needs `web::Data<WebState>` and `web::Data<Handlebars<'static>>`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/")
            .wrap(security_headers())
            .route(web::get().to(trust_page))
            .route(web::head().to(trust_page)),
    )
    .service(
        web::resource("/api/v1/trust")
            .wrap(security_headers())
            .route(web::get().to(trust_json))
            .route(web::head().to(trust_json)),
    )
    .service(
        web::resource("/healthz")
            .wrap(security_headers())
            .route(web::get().to(healthz))
            .route(web::head().to(healthz)),
    )
    .service(
        web::resource(CSS_PATH)
            .wrap(security_headers())
            .route(web::get().to(stylesheet))
            .route(web::head().to(stylesheet)),
    )
    .default_service(web::to(not_found));
}

/// Reads the newest results and builds the public view; `None` (logged) if the store failed.
async fn current_view(state: &WebState) -> Option<TrustView> {
    match state.store.latest_results().await {
        Ok(latest) => Some(trust_view(
            &state.catalog,
            &state.trust,
            &state.narrative,
            &latest,
            state.default_freshness,
            state.clock.now(),
        )),
        Err(error) => {
            tracing::error!(%error, "trust page: cannot read the latest results");
            None
        }
    }
}

async fn trust_page(
    state: web::Data<WebState>,
    hb: web::Data<Handlebars<'static>>,
) -> HttpResponse {
    let Some(view) = current_view(&state).await else {
        return unavailable_page(&state, &hb);
    };
    let model = page::trust_page(&view, css_href());
    match hb.render(TRUST_TEMPLATE, &model) {
        Ok(body) => html(StatusCode::OK, body),
        Err(error) => {
            tracing::error!(%error, "trust page: cannot render the template");
            HttpResponse::InternalServerError()
                .content_type(header::ContentType::plaintext())
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .body("Internal error.")
        }
    }
}

async fn trust_json(state: web::Data<WebState>) -> HttpResponse {
    match current_view(&state).await {
        Some(view) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .json(view),
        None => HttpResponse::ServiceUnavailable()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::RETRY_AFTER, "60"))
            .json(ApiError {
                error: "unavailable",
            }),
    }
}

#[derive(Serialize)]
struct ApiError {
    error: &'static str,
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

async fn healthz(state: web::Data<WebState>) -> HttpResponse {
    match state.store.runs(1).await {
        Ok(_) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(Health { status: "ok" }),
        Err(error) => {
            tracing::error!(%error, "healthz: store query failed");
            HttpResponse::ServiceUnavailable()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(Health {
                    status: "unavailable",
                })
        }
    }
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .body(TRUST_CSS)
}

async fn not_found() -> HttpResponse {
    let mut resp = HttpResponse::NotFound()
        .content_type(header::ContentType::plaintext())
        .body("Not found.");
    insert_security_headers(resp.headers_mut());
    resp
}

/// The 503 page: says the status is unavailable, nothing about why.
fn unavailable_page(state: &WebState, hb: &Handlebars<'static>) -> HttpResponse {
    let model = page::UnavailablePage {
        company: state.trust.company.clone(),
        css_href: css_href().to_string(),
    };
    let body = hb
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_compile() {
        templates().unwrap();
    }

    fn empty_view() -> TrustView {
        TrustView {
            company: "Acme <Widgets>".into(),
            contact_email: None,
            intro: None,
            generated_at: chrono::DateTime::UNIX_EPOCH,
            summary: Summary {
                passing: 0,
                total: 0,
                counts: Counts::default(),
                last_checked: None,
            },
            categories: Vec::new(),
            sections: Vec::new(),
            subprocessors: Vec::new(),
        }
    }

    #[test]
    fn templates_render_in_strict_mode_without_optional_parts() {
        let hb = templates().unwrap();
        let html = hb
            .render(TRUST_TEMPLATE, &page::trust_page(&empty_view(), css_href()))
            .unwrap();
        assert!(html.contains("<h1>Acme &lt;Widgets&gt;</h1>"), "{html}");
        assert!(html.contains("No controls published yet"));
        assert!(html.contains("No controls are published yet"));
        assert!(html.contains("0 of 0 monitored controls passing"));
        assert!(!html.contains("mailto:"));
        assert!(!html.contains("<nav"));
        let html = hb
            .render(
                UNAVAILABLE_TEMPLATE,
                &page::UnavailablePage {
                    company: "Acme".into(),
                    css_href: css_href().into(),
                },
            )
            .unwrap();
        assert!(html.contains("Status temporarily unavailable"));
    }

    #[test]
    fn overall_banner_is_green_only_when_everything_passes() {
        let mut view = empty_view();
        let control = |status| ControlView {
            id: "c".into(),
            title: "C".into(),
            description: "D".into(),
            status,
            last_checked: None,
        };
        view.summary.total = 1;
        view.summary.passing = 1;
        view.summary.counts.passing = 1;
        view.categories.push(CategoryView {
            name: "Cat".into(),
            counts: view.summary.counts,
            controls: vec![control(Badge::Passing)],
        });
        let page = page::trust_page(&view, css_href());
        assert_eq!(page.overall, "passing");
        assert_eq!(page.headline, "1 of 1 monitored control passing");
        for (badge, expect) in [
            (Badge::NeedsAttention, "needs_attention"),
            (Badge::Stale, "stale"),
            (Badge::NotVerified, "not_verified"),
        ] {
            let mut v = view.clone();
            v.summary.total = 2;
            match badge {
                Badge::NeedsAttention => v.summary.counts.needs_attention = 1,
                Badge::Stale => v.summary.counts.stale = 1,
                _ => v.summary.counts.not_verified = 1,
            }
            assert_eq!(page::trust_page(&v, css_href()).overall, expect);
        }
    }

    #[test]
    fn stylesheet_link_is_versioned() {
        assert!(css_href().starts_with("/assets/trust.css?v="));
        assert_eq!(css_href().len(), CSS_PATH.len() + 3 + 12);
    }
}
