//! Subscriptions by email on the live server (`notifications.visitors`): the form
//! (`/subscribe`), the confirmation (`/subscribe/confirm`, double opt-in by a signed link) and
//! unsubscribing (`/unsubscribe`: a button on GET, the deletion on POST, which is also the
//! RFC 8058 one-click target of `List-Unsubscribe-Post`, needing no cookie or session).
//!
//! The form is guarded like the document requests: a form token, the `Origin` check, a
//! honeypot, a limit per client address per hour. Its answer is the same whatever happened
//! (new, already subscribed, asked too recently), so the page tells nobody who subscribes.
//! Nothing here is cached or indexed.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Duration;
use handlebars::Handlebars;
use serde::{Deserialize, Serialize};

use super::documents::{page_response, same_origin, see_other};
use super::{WebState, client_ip};
use crate::access::FieldError;
use crate::notify::config::Topic;
use crate::notify::visitors::Visitors;

const FORM_TEMPLATE: &str = "subscribe";
const PAGE_TEMPLATE: &str = "subscription";

pub fn register_templates(hb: &mut Handlebars<'static>) -> Result<(), handlebars::TemplateError> {
    hb.register_template_string(FORM_TEMPLATE, include_str!("../../templates/subscribe.hbs"))?;
    hb.register_template_string(
        PAGE_TEMPLATE,
        include_str!("../../templates/subscription.hbs"),
    )?;
    Ok(())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/subscribe")
            .route(web::get().to(form))
            .route(web::head().to(form))
            .route(web::post().to(submit)),
    )
    .service(web::resource("/subscribe/sent").route(web::get().to(sent)))
    .service(
        web::resource("/subscribe/confirm")
            .route(web::get().to(confirm_page))
            .route(web::post().to(confirm)),
    )
    .service(
        web::resource("/unsubscribe")
            .route(web::get().to(unsubscribe_page))
            .route(web::post().to(unsubscribe)),
    );
}

fn visitors(state: &WebState) -> Option<&Visitors> {
    state.visitors.as_deref()
}

#[derive(Serialize)]
struct FormPage<'a> {
    company: &'a str,
    chrome: super::chrome::Chrome,
    title: &'static str,
    topics: Vec<TopicChoice>,
    email: &'a str,
    token: String,
    errors: Vec<FieldError>,
    error_for: ErrorFor,
}

#[derive(Serialize)]
struct TopicChoice {
    id: &'static str,
    label: &'static str,
    checked: bool,
}

#[derive(Serialize, Default)]
struct ErrorFor {
    email: Option<String>,
    topic: Option<String>,
}

#[derive(Deserialize, Default)]
struct Form {
    #[serde(default)]
    email: String,
    #[serde(default, rename = "topic")]
    topics: Vec<String>,
    #[serde(default)]
    token: String,
    #[serde(default)]
    website: String,
}

fn render_form(
    state: &WebState,
    v: &Visitors,
    form: &Form,
    errors: Vec<FieldError>,
    status: StatusCode,
) -> HttpResponse {
    let first = |field: &str| {
        errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.clone())
    };
    let fresh = form.email.is_empty() && form.topics.is_empty();
    let page = FormPage {
        company: &v.company,
        chrome: state.site.inputs().chrome(),
        title: "Subscribe to security updates",
        topics: v
            .config
            .topics
            .iter()
            .map(|t| TopicChoice {
                id: t.as_str(),
                label: t.label(),
                checked: fresh || form.topics.iter().any(|x| x == t.as_str()),
            })
            .collect(),
        email: &form.email,
        token: v.signer.form_token(state.clock.now()),
        error_for: ErrorFor {
            email: first("email"),
            topic: first("topic"),
        },
        errors,
    };
    page_response(state, FORM_TEMPLATE, &page, status)
}

#[derive(Serialize)]
struct Page<'a> {
    company: &'a str,
    chrome: super::chrome::Chrome,
    title: &'a str,
    message: &'a str,
    action: Option<String>,
    fields: Vec<Field>,
    button: &'a str,
}

#[derive(Serialize)]
struct Field {
    name: &'static str,
    value: String,
}

fn page(state: &WebState, status: StatusCode, title: &str, message: &str) -> HttpResponse {
    let company = state.site.inputs().trust.company.clone();
    let p = Page {
        company: &company,
        chrome: state.site.inputs().chrome(),
        title,
        message,
        action: None,
        fields: Vec::new(),
        button: "",
    };
    page_response(state, PAGE_TEMPLATE, &p, status)
}

async fn form(state: web::Data<WebState>) -> HttpResponse {
    let Some(v) = visitors(&state) else {
        return super::not_found().await;
    };
    render_form(&state, v, &Form::default(), Vec::new(), StatusCode::OK)
}

/// Largest form accepted.
const MAX_FORM_BYTES: usize = 4 * 1024;

fn parse(form: &Form, v: &Visitors) -> Result<(String, Vec<Topic>), Vec<FieldError>> {
    let mut errors = Vec::new();
    let email = form.email.trim();
    if email.is_empty() {
        errors.push(FieldError {
            field: "email",
            message: "Enter your email address.".into(),
        });
    } else if email.len() > 200 || crate::access::parse_email(email).is_err() {
        errors.push(FieldError {
            field: "email",
            message: "Enter an email address like name@example.com.".into(),
        });
    }
    let mut topics: Vec<Topic> = Vec::new();
    for t in &form.topics {
        match Topic::parse(t).filter(|t| v.config.topics.contains(t)) {
            Some(t) if !topics.contains(&t) => topics.push(t),
            Some(_) => {}
            None => errors.push(FieldError {
                field: "topic",
                message: "Choose among the updates offered.".into(),
            }),
        }
    }
    if form.topics.is_empty() {
        errors.push(FieldError {
            field: "topic",
            message: "Choose at least one kind of update.".into(),
        });
    }
    if errors.is_empty() {
        topics.sort();
        Ok((email.to_string(), topics))
    } else {
        Err(errors)
    }
}

async fn submit(req: HttpRequest, state: web::Data<WebState>, body: web::Bytes) -> HttpResponse {
    let Some(v) = visitors(&state) else {
        return super::not_found().await;
    };
    let form: Form = match serde_html_form::from_bytes(&body) {
        Ok(f) if body.len() <= MAX_FORM_BYTES => f,
        _ => {
            return page(
                &state,
                StatusCode::BAD_REQUEST,
                "The form could not be read",
                "Open the subscribe form again and resubmit.",
            );
        }
    };
    let now = state.clock.now();
    if !same_origin(&req, Some(&v.base_url)) || !v.signer.check_form_token(&form.token, now) {
        return page(
            &state,
            StatusCode::FORBIDDEN,
            "The form has expired",
            "This form is no longer valid (it was opened more than a day ago, or on another \
             site). Open the subscribe form again and resubmit.",
        );
    }
    let (email, topics) = match parse(&form, v) {
        Ok(parsed) => parsed,
        Err(errors) => {
            return render_form(&state, v, &form, errors, StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    // A filled-in hidden field: a bot, told what a person is told.
    if !form.website.trim().is_empty() {
        tracing::info!("subscription: honeypot filled, dropped");
        return see_other("/subscribe/sent");
    }
    let ip = client_ip(&req, &state.trusted_proxies).map(|a| a.to_string());
    if let Some(ip) = &ip {
        let recent = match state
            .store
            .recent_subscriptions(ip, now - Duration::hours(1))
            .await
        {
            Ok(n) => n,
            Err(error) => return store_failed(&state, &error),
        };
        if recent >= u64::from(v.config.subscriptions_per_hour) {
            let mut resp = page(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                "We have received several subscriptions from your network in the last hour. \
                 Please try again later.",
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("3600"));
            return resp;
        }
    }
    match state
        .store
        .subscribe(&email, &topics, ip.as_deref(), now, |id| {
            v.confirm_event(id, now)
        })
        .await
    {
        Ok(outcome) => {
            tracing::info!(outcome = ?outcome, "subscription requested");
            see_other("/subscribe/sent")
        }
        Err(error) => store_failed(&state, &error),
    }
}

fn store_failed(state: &WebState, error: &crate::store::StoreError) -> HttpResponse {
    tracing::error!(%error, "subscription: store failed");
    page(
        state,
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "We could not record this just now. Please try again in a few minutes.",
    )
}

async fn sent(state: web::Data<WebState>) -> HttpResponse {
    if visitors(&state).is_none() {
        return super::not_found().await;
    }
    page(
        &state,
        StatusCode::OK,
        "Check your inbox",
        "If this address is not subscribed yet, we have sent it an email with a link to \
         confirm. Nothing is sent to it until the link is followed.",
    )
}

#[derive(Deserialize)]
struct ConfirmQuery {
    s: String,
    expires: i64,
    signature: String,
}

fn confirm_fields(q: &ConfirmQuery) -> Vec<Field> {
    vec![
        Field {
            name: "s",
            value: q.s.clone(),
        },
        Field {
            name: "expires",
            value: q.expires.to_string(),
        },
        Field {
            name: "signature",
            value: q.signature.clone(),
        },
    ]
}

/// Why a confirmation link does not work, as a page.
fn check_confirm(state: &WebState, v: &Visitors, q: &ConfirmQuery) -> Option<HttpResponse> {
    if !v.check_confirm(&q.s, q.expires, &q.signature) {
        return Some(page(
            state,
            StatusCode::FORBIDDEN,
            "This link does not work",
            "The confirmation link is incomplete or was changed. Open it from the email \
             again, or subscribe again.",
        ));
    }
    if state.clock.now().timestamp() > q.expires {
        return Some(page(
            state,
            StatusCode::GONE,
            "This link has expired",
            "The confirmation link has expired. Subscribe again to receive a new one.",
        ));
    }
    None
}

/// The link from the email opens a page with a button (mail scanners that open links must not
/// confirm anything).
async fn confirm_page(state: web::Data<WebState>, query: web::Query<ConfirmQuery>) -> HttpResponse {
    let Some(v) = visitors(&state) else {
        return super::not_found().await;
    };
    if let Some(problem) = check_confirm(&state, v, &query) {
        return problem;
    }
    let p = Page {
        company: &v.company,
        chrome: state.site.inputs().chrome(),
        title: "Confirm your subscription",
        message: "Confirm that you want to receive the security updates you chose at this \
                  address.",
        action: Some("/subscribe/confirm".into()),
        fields: confirm_fields(&query),
        button: "Confirm subscription",
    };
    page_response(&state, PAGE_TEMPLATE, &p, StatusCode::OK)
}

async fn confirm(
    req: HttpRequest,
    state: web::Data<WebState>,
    form: web::Form<ConfirmQuery>,
) -> HttpResponse {
    let Some(v) = visitors(&state) else {
        return super::not_found().await;
    };
    if let Some(problem) = check_confirm(&state, v, &form) {
        return problem;
    }
    match state
        .store
        .confirm_subscriber(&form.s, state.clock.now())
        .await
    {
        Ok(true) => {
            state.count(&req, super::analytics::Metric::Subscription, "");
            page(
                &state,
                StatusCode::OK,
                "You are subscribed",
                "Thank you. Every email we send has a link to unsubscribe at once.",
            )
        }
        Ok(false) => page(
            &state,
            StatusCode::GONE,
            "This subscription no longer exists",
            "It was cancelled. Subscribe again if you want the updates.",
        ),
        Err(error) => store_failed(&state, &error),
    }
}

#[derive(Deserialize)]
struct UnsubscribeQuery {
    s: String,
    signature: String,
}

fn unsubscribe_url(q: &UnsubscribeQuery) -> String {
    format!("/unsubscribe?s={}&signature={}", q.s, q.signature)
}

/// The visitor mail whose signature the link carries, or the page saying why it does not work.
async fn checked_unsubscribe<'a>(
    state: &'a WebState,
    query: &UnsubscribeQuery,
) -> Result<&'a Visitors, HttpResponse> {
    let Some(v) = visitors(state) else {
        return Err(super::not_found().await);
    };
    if !v.check_unsubscribe(&query.s, &query.signature) {
        return Err(page(
            state,
            StatusCode::FORBIDDEN,
            "This link does not work",
            "The unsubscribe link is incomplete or was changed. Open it from one of our emails \
             again.",
        ));
    }
    Ok(v)
}

async fn unsubscribe_page(
    state: web::Data<WebState>,
    query: web::Query<UnsubscribeQuery>,
) -> HttpResponse {
    let v = match checked_unsubscribe(&state, &query).await {
        Ok(v) => v,
        Err(page) => return page,
    };
    let p = Page {
        company: &v.company,
        chrome: state.site.inputs().chrome(),
        title: "Unsubscribe",
        message: "Stop all security update emails to this address. Your address is deleted \
                  at once.",
        action: Some(unsubscribe_url(&query)),
        fields: Vec::new(),
        button: "Unsubscribe",
    };
    page_response(&state, PAGE_TEMPLATE, &p, StatusCode::OK)
}

/// RFC 8058 one-click: the link is the authority (no cookie, no form token, no `Origin`: mail
/// providers post from their own servers). Done at once; saying so again is harmless.
async fn unsubscribe(
    state: web::Data<WebState>,
    query: web::Query<UnsubscribeQuery>,
) -> HttpResponse {
    if let Err(page) = checked_unsubscribe(&state, &query).await {
        return page;
    }
    match state.store.unsubscribe(&query.s).await {
        Ok(_) => {
            tracing::info!("unsubscribed");
            page(
                &state,
                StatusCode::OK,
                "You are unsubscribed",
                "Your address was deleted. We will not email it again.",
            )
        }
        Err(error) => store_failed(&state, &error),
    }
}
