//! The internal dashboards (`/dashboard`) and the authenticated REST API (`/api/v1/…`), for
//! the security team and auditors.
//!
//! Every route is in [`ROUTES`], an explicit registry with the least role it needs;
//! `configure` registers exactly these, and a test walks the table to check that each refuses
//! anonymous requests (pages redirect to sign-in, the API answers 401) and roles below its
//! own. Handlers take [`auth::Staff`] (or, for sign-in steps, [`auth::PartialStaff`]), check
//! CSRF on every state change, and write the audit log in the same transaction as the change.
//! They read the store and ask the scheduler (over its channel) to run controls; they never
//! run probes.

mod account;
mod api;
pub mod auth;
mod charts;
mod control;
mod export;
mod login;
mod oidc;
mod pages;
mod review;
mod visitors;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use handlebars::Handlebars;
use serde::Serialize;

use crate::auth::{Permission, Role};
use crate::web::{WebState, css_href};
pub use api::openapi;

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (the sign-in pages, the OpenAPI document).
    Public,
    /// A signed-in user, before the second factor (the second-factor step, sign-out).
    Partial,
    /// A signed-in user whose role allows this.
    Role(Permission),
}

/// Pages or API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Page,
    Api,
}

/// One route of the dashboards or the API.
pub struct Route {
    pub method: &'static str,
    /// The actix path pattern.
    pub path: &'static str,
    /// The path with its parameters filled in, for tests (`{id}` → an example).
    pub example: &'static str,
    pub kind: Kind,
    pub access: Access,
    register: fn(&mut web::ServiceConfig),
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

macro_rules! route {
    ($method:ident $path:literal, $example:literal, $kind:ident, $access:expr, $handler:path) => {
        Route {
            method: stringify!($method),
            path: $path,
            example: $example,
            kind: Kind::$kind,
            access: $access,
            register: |cfg| {
                cfg.route($path, web::$method().to($handler));
            },
        }
    };
}

use Access::{Partial, Public};
const READ: Access = Access::Role(Permission::Read);
const EVIDENCE: Access = Access::Role(Permission::ReadEvidence);
const EXPORT: Access = Access::Role(Permission::Export);
const REVIEW: Access = Access::Role(Permission::Review);
const ADMIN: Access = Access::Role(Permission::Administer);

/// Every dashboard and API route.
pub static ROUTES: &[Route] = &[
    route!(get "/dashboard/login", "/dashboard/login", Page, Public, login::login_form),
    route!(post "/dashboard/login", "/dashboard/login", Page, Public, login::login),
    route!(get "/dashboard/login/mfa", "/dashboard/login/mfa", Page, Partial, login::mfa_form),
    route!(post "/dashboard/login/mfa", "/dashboard/login/mfa", Page, Partial, login::mfa),
    route!(get "/dashboard/login/oidc", "/dashboard/login/oidc", Page, Public, oidc::start),
    route!(get "/dashboard/login/oidc/callback", "/dashboard/login/oidc/callback", Page, Public, oidc::callback),
    route!(post "/dashboard/logout", "/dashboard/logout", Page, Partial, login::logout),
    route!(get "/dashboard/account/mfa", "/dashboard/account/mfa", Page, Partial, account::mfa_form),
    route!(post "/dashboard/account/mfa", "/dashboard/account/mfa", Page, Partial, account::mfa_enrol),
    route!(get "/dashboard", "/dashboard", Page, READ, pages::overview),
    route!(get "/dashboard/controls/{id}", "/dashboard/controls/code-of-conduct", Page, READ, control::control),
    route!(post "/dashboard/controls/{id}/run", "/dashboard/controls/code-of-conduct/run", Page, REVIEW, review::run_now),
    route!(get "/dashboard/resources", "/dashboard/resources?id=hr:E1001", Page, READ, pages::resource),
    route!(get "/dashboard/runs", "/dashboard/runs", Page, READ, pages::runs),
    route!(get "/dashboard/runs/{id}", "/dashboard/runs/00000000-0000-0000-0000-000000000000", Page, READ, pages::run),
    route!(post "/dashboard/runs/{id}/cancel", "/dashboard/runs/00000000-0000-0000-0000-000000000000/cancel", Page, REVIEW, review::cancel_run),
    route!(get "/dashboard/evidence/{id}", "/dashboard/evidence/1", Page, EVIDENCE, pages::evidence),
    route!(get "/dashboard/exceptions", "/dashboard/exceptions", Page, READ, review::exceptions),
    route!(post "/dashboard/exceptions", "/dashboard/exceptions", Page, REVIEW, review::create_exception),
    route!(post "/dashboard/exceptions/{id}/approve", "/dashboard/exceptions/MX-1/approve", Page, REVIEW, review::approve_exception),
    route!(post "/dashboard/exceptions/{id}/end", "/dashboard/exceptions/MX-1/end", Page, REVIEW, review::end_exception),
    route!(get "/dashboard/access", "/dashboard/access", Page, REVIEW, review::access_requests),
    route!(post "/dashboard/access/{id}/{decision}", "/dashboard/access/x/approve", Page, REVIEW, review::decide_access),
    route!(get "/dashboard/audit", "/dashboard/audit", Page, EVIDENCE, pages::audit),
    route!(get "/dashboard/visitors", "/dashboard/visitors", Page, READ, visitors::page),
    route!(get "/dashboard/export", "/dashboard/export?from=2026-11-01&to=2026-11-30", Page, EXPORT, export::dashboard),
    route!(get "/dashboard/account", "/dashboard/account", Page, READ, account::account),
    route!(post "/dashboard/account/tokens", "/dashboard/account/tokens", Page, READ, account::create_token),
    route!(post "/dashboard/account/tokens/{id}/revoke", "/dashboard/account/tokens/999999/revoke", Page, READ, account::revoke_token),
    route!(get "/dashboard/users", "/dashboard/users", Page, ADMIN, account::users),
    route!(post "/dashboard/users/{name}/{change}", "/dashboard/users/x/disable", Page, ADMIN, account::change_user),
    route!(post "/dashboard/settings/mfa", "/dashboard/settings/mfa", Page, ADMIN, account::set_mfa_policy),
    route!(get "/api/openapi.json", "/api/openapi.json", Api, Public, api::openapi_json),
    route!(get "/api/v1/controls", "/api/v1/controls", Api, READ, api::controls),
    route!(get "/api/v1/controls/{id}", "/api/v1/controls/code-of-conduct", Api, READ, api::control),
    route!(get "/api/v1/results", "/api/v1/results", Api, READ, api::results),
    route!(get "/api/v1/findings", "/api/v1/findings?control=code-of-conduct", Api, READ, api::findings),
    route!(get "/api/v1/runs", "/api/v1/runs", Api, READ, api::runs),
    route!(get "/api/v1/runs/{id}", "/api/v1/runs/00000000-0000-0000-0000-000000000000", Api, READ, api::run),
    route!(get "/api/v1/exceptions", "/api/v1/exceptions", Api, READ, api::exceptions),
    route!(post "/api/v1/exceptions", "/api/v1/exceptions", Api, REVIEW, api::create_exception),
    route!(post "/api/v1/exceptions/{id}/approve", "/api/v1/exceptions/MX-1/approve", Api, REVIEW, api::approve_exception),
    route!(post "/api/v1/exceptions/{id}/end", "/api/v1/exceptions/MX-1/end", Api, REVIEW, api::end_exception),
    route!(post "/api/v1/controls/{id}/run", "/api/v1/controls/code-of-conduct/run", Api, REVIEW, api::run_now),
    route!(post "/api/v1/runs/{id}/cancel", "/api/v1/runs/00000000-0000-0000-0000-000000000000/cancel", Api, REVIEW, api::cancel_run),
    route!(get "/api/v1/export", "/api/v1/export?from=2026-11-01&to=2026-11-30", Api, EXPORT, export::api_export),
    route!(get "/api/v1/visitors", "/api/v1/visitors", Api, READ, visitors::api_visitors),
];

/// Registers [`ROUTES`].
pub fn configure(cfg: &mut web::ServiceConfig) {
    for r in ROUTES {
        (r.register)(cfg);
    }
    // Any other method on an API path: 405 with the methods it has (registered after every
    // route, so it answers only what they leave). Pages keep the site's 404.
    let mut seen = std::collections::HashSet::new();
    for r in ROUTES.iter().filter(|r| r.kind == Kind::Api) {
        if !seen.insert(r.path) {
            continue;
        }
        let allow: Vec<String> = ROUTES
            .iter()
            .filter(|o| o.path == r.path)
            .map(|o| o.method.to_ascii_uppercase())
            .collect();
        let allow = allow.join(", ");
        cfg.route(
            r.path,
            web::route().to(move || {
                let allow = allow.clone();
                async move {
                    HttpResponse::MethodNotAllowed()
                        .insert_header((header::ALLOW, allow))
                        .insert_header((header::CACHE_CONTROL, "no-store"))
                        .json(serde_json::json!({"error": "method not allowed"}))
                }
            }),
        );
    }
}

const TEMPLATES: &[(&str, &str)] = &[
    (
        "dashboard/frame",
        include_str!("../../../templates/dashboard/frame.hbs"),
    ),
    (
        "dashboard/login",
        include_str!("../../../templates/dashboard/login.hbs"),
    ),
    (
        "dashboard/mfa",
        include_str!("../../../templates/dashboard/mfa.hbs"),
    ),
    (
        "dashboard/enrol",
        include_str!("../../../templates/dashboard/enrol.hbs"),
    ),
    (
        "dashboard/overview",
        include_str!("../../../templates/dashboard/overview.hbs"),
    ),
    (
        "dashboard/visitors",
        include_str!("../../../templates/dashboard/visitors.hbs"),
    ),
    (
        "dashboard/control",
        include_str!("../../../templates/dashboard/control.hbs"),
    ),
    (
        "dashboard/resource",
        include_str!("../../../templates/dashboard/resource.hbs"),
    ),
    (
        "dashboard/runs",
        include_str!("../../../templates/dashboard/runs.hbs"),
    ),
    (
        "dashboard/run",
        include_str!("../../../templates/dashboard/run.hbs"),
    ),
    (
        "dashboard/evidence",
        include_str!("../../../templates/dashboard/evidence.hbs"),
    ),
    (
        "dashboard/exceptions",
        include_str!("../../../templates/dashboard/exceptions.hbs"),
    ),
    (
        "dashboard/access",
        include_str!("../../../templates/dashboard/access.hbs"),
    ),
    (
        "dashboard/audit",
        include_str!("../../../templates/dashboard/audit.hbs"),
    ),
    (
        "dashboard/account",
        include_str!("../../../templates/dashboard/account.hbs"),
    ),
    (
        "dashboard/users",
        include_str!("../../../templates/dashboard/users.hbs"),
    ),
    (
        "dashboard/message",
        include_str!("../../../templates/dashboard/message.hbs"),
    ),
    (
        "dashboard/sso",
        include_str!("../../../templates/dashboard/sso.hbs"),
    ),
];

pub fn register_templates(hb: &mut Handlebars<'static>) -> Result<(), handlebars::TemplateError> {
    for (name, text) in TEMPLATES {
        if name.ends_with("/frame") {
            hb.register_partial(name, *text)?;
        } else {
            hb.register_template_string(name, *text)?;
        }
    }
    Ok(())
}

/// A url-encoded form (repeated keys are lists) that never fails to extract: an unreadable
/// body is the empty form. So a request is always refused for who sends it (authentication,
/// role, CSRF) before anything about its body, whatever order extractors finish in.
pub struct Form<T>(pub T);

impl<T: serde::de::DeserializeOwned + Default + 'static> actix_web::FromRequest for Form<T> {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(
        req: &actix_web::HttpRequest,
        payload: &mut actix_web::dev::Payload,
    ) -> Self::Future {
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = body.await.unwrap_or_default();
            Ok(Form(
                serde_html_form::from_bytes(&bytes).unwrap_or_default(),
            ))
        })
    }
}

impl<T> std::ops::Deref for Form<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A JSON body that never fails to extract; the handler answers 400 for a bad one, after
/// checking who is asking.
pub struct Json<T>(pub Result<T, String>);

impl<T: serde::de::DeserializeOwned + 'static> actix_web::FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(
        req: &actix_web::HttpRequest,
        payload: &mut actix_web::dev::Payload,
    ) -> Self::Future {
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let parsed = match body.await {
                Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            Ok(Json(parsed))
        })
    }
}

/// A navigation entry.
#[derive(Debug, Serialize)]
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// The signed-in user as the layout shows them.
#[derive(Debug, Serialize)]
pub struct Who {
    pub username: String,
    pub display_name: String,
    pub role: Role,
}

/// What every dashboard page carries around its body.
#[derive(Debug, Serialize)]
pub struct Page<T: Serialize> {
    pub title: String,
    pub who: Option<Who>,
    pub csrf: String,
    /// Which navigation entry is current (`overview`, `runs`…).
    pub section: &'static str,
    /// A one-time message ("Exception created").
    pub flash: Option<String>,
    pub body: T,
}

impl<T: Serialize> Page<T> {
    /// A page for someone not (fully) signed in.
    pub fn anonymous(title: &str, body: T) -> Page<T> {
        Page {
            title: title.to_string(),
            who: None,
            csrf: String::new(),
            section: "",
            flash: None,
            body,
        }
    }

    /// A page for a signed-in user.
    pub fn staff(
        staff: &auth::Staff,
        section: &'static str,
        title: impl Into<String>,
        body: T,
    ) -> Page<T> {
        Page {
            title: title.into(),
            who: Some(Who {
                username: staff.user.username.clone(),
                display_name: staff.user.display_name.clone(),
                role: staff.user.role,
            }),
            csrf: staff.csrf().to_string(),
            section,
            flash: None,
            body,
        }
    }

    pub fn flash(mut self, message: Option<String>) -> Page<T> {
        self.flash = message;
        self
    }
}

#[derive(Serialize)]
struct Chrome<'a, T: Serialize> {
    title: &'a str,
    company: &'a str,
    css_href: String,
    nav: Vec<NavItem>,
    /// "Sign in with …" when single sign-on is configured.
    sso_name: Option<&'a str>,
    #[serde(flatten)]
    page: &'a Page<T>,
}

fn nav(page_section: &str, role: Option<Role>) -> Vec<NavItem> {
    let Some(role) = role else {
        return Vec::new();
    };
    [
        ("overview", "/dashboard", "Overview", Permission::Read),
        ("runs", "/dashboard/runs", "Runs", Permission::Read),
        (
            "exceptions",
            "/dashboard/exceptions",
            "Exceptions",
            Permission::Read,
        ),
        (
            "access",
            "/dashboard/access",
            "Access requests",
            Permission::Review,
        ),
        (
            "audit",
            "/dashboard/audit",
            "Audit log",
            Permission::ReadEvidence,
        ),
        (
            "visitors",
            "/dashboard/visitors",
            "Visitors",
            Permission::Read,
        ),
        ("users", "/dashboard/users", "Users", Permission::Administer),
        ("account", "/dashboard/account", "Account", Permission::Read),
    ]
    .into_iter()
    .filter(|(_, _, _, p)| role.can(*p))
    .map(|(section, href, label, _)| NavItem {
        href,
        label,
        current: section == page_section,
    })
    .collect()
}

/// Renders a dashboard template with the page chrome; never cached, never indexed.
pub fn render<T: Serialize>(
    state: &WebState,
    template: &str,
    page: &Page<T>,
    status: StatusCode,
) -> HttpResponse {
    let company = &state.site.inputs().trust.company;
    let chrome = Chrome {
        title: &page.title,
        company,
        css_href: css_href(),
        nav: nav(page.section, page.who.as_ref().map(|w| w.role)),
        sso_name: state.oidc.as_ref().map(|o| o.display_name()),
        page,
    };
    match state.templates.render(template, &chrome) {
        Ok(body) => HttpResponse::build(status)
            .content_type(header::ContentType::html())
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header(("x-robots-tag", "noindex, nofollow"))
            .body(body),
        Err(error) => {
            tracing::error!(%error, template, "dashboard: cannot render");
            HttpResponse::InternalServerError()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .body("Internal error.")
        }
    }
}

/// A plain message page (not found, store trouble…).
pub fn message(
    state: &WebState,
    staff: Option<&auth::Staff>,
    status: StatusCode,
    title: &str,
    text: &str,
) -> HttpResponse {
    #[derive(Serialize)]
    struct Body<'a> {
        text: &'a str,
    }
    let body = Body { text };
    let page = match staff {
        Some(s) => Page::staff(s, "", title, body),
        None => Page::anonymous(title, body),
    };
    render(state, "dashboard/message", &page, status)
}

/// The store failed: logged, and said plainly.
pub fn store_error(
    state: &WebState,
    staff: &auth::Staff,
    error: &dyn std::fmt::Display,
) -> HttpResponse {
    tracing::error!(%error, "dashboard: store failed");
    message(
        state,
        Some(staff),
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "The database could not be read just now. Try again in a moment.",
    )
}

pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_string()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// A post's `Origin`/`Referer`, when sent, names this server (sign-in has no session yet to
/// carry a CSRF token; SameSite=Strict and this check stand in).
pub fn same_origin_or_none(req: &actix_web::HttpRequest) -> bool {
    let sent =
        req.headers().contains_key(header::ORIGIN) || req.headers().contains_key(header::REFERER);
    !sent || auth::same_origin(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ripgrep-style: the registry is the single list, and it is sane.
    #[test]
    fn routes_are_unique_and_their_examples_match() {
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(seen.insert((r.method, r.path)), "duplicate {r:?}");
            assert!(
                r.path.starts_with("/dashboard") || r.path.starts_with("/api/"),
                "{r:?}"
            );
            assert_eq!(r.kind == Kind::Api, r.path.starts_with("/api/"), "{r:?}");
            let pattern = actix_web::dev::ResourceDef::new(r.path);
            let example = r.example.split('?').next().unwrap_or_default();
            assert!(pattern.is_match(example), "{r:?}: example {}", r.example);
            if r.method == "post" && r.path != "/dashboard/login" {
                assert_ne!(r.access, Public, "state changes need a session: {r:?}");
            }
        }
    }
}
