//! Gated documents on the live server: the request form (`/request-access`), the page an
//! approval's link opens (`/access/{id}`) and the downloads (`/access/{id}/{document}`).
//!
//! The rules live in [`crate::access`]; requests are stored, decided by the security team
//! (`trellis access`), and every download is recorded. Nothing here is cached or indexed:
//! responses are `no-store` and `noindex`, and the `same-origin` referrer policy keeps a link
//! from leaking through the pages it leads to.

use std::path::PathBuf;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Duration;
use handlebars::Handlebars;
use serde::{Deserialize, Serialize};

use super::{WebState, client_ip};
use crate::access::{
    self, FieldError, LinkError, LinkSigner, RequestForm, check_link, nda_sha256, parse_request,
};
use crate::config::{BaseUrl, DocumentsConfig};
use crate::store::ClientInfo;

const REQUEST_TEMPLATE: &str = "request";
const MESSAGE_TEMPLATE: &str = "message";
const GRANT_TEMPLATE: &str = "grant";

/// Registers the document pages' templates.
pub fn register_templates(hb: &mut Handlebars<'static>) -> Result<(), handlebars::TemplateError> {
    hb.register_template_string(
        REQUEST_TEMPLATE,
        include_str!("../../templates/request.hbs"),
    )?;
    hb.register_template_string(
        MESSAGE_TEMPLATE,
        include_str!("../../templates/message.hbs"),
    )?;
    hb.register_template_string(GRANT_TEMPLATE, include_str!("../../templates/grant.hbs"))?;
    Ok(())
}

/// The configured documents, the key signing their links and where their files are.
#[derive(Debug)]
pub struct Documents {
    pub config: DocumentsConfig,
    pub signer: LinkSigner,
    /// Folder the documents' relative paths resolve against (the config file's).
    pub base_dir: PathBuf,
    pub company: String,
    pub base_url: Option<BaseUrl>,
    /// The NDA as sanitised HTML, and the SHA-256 of its source.
    pub nda_html: String,
    pub nda_sha256: String,
}

impl Documents {
    pub fn new(
        config: DocumentsConfig,
        signer: LinkSigner,
        base_dir: PathBuf,
        company: String,
        base_url: Option<BaseUrl>,
    ) -> Documents {
        let nda = config.nda.clone().unwrap_or_default();
        Documents {
            nda_html: super::markdown(&nda),
            nda_sha256: nda_sha256(&nda),
            config,
            signer,
            base_dir,
            company,
            base_url,
        }
    }

    /// The full download-page link of an approved request.
    pub fn link(&self, request_id: &str, expires: chrono::DateTime<chrono::Utc>) -> String {
        let path = self.signer.link_path(request_id, expires);
        match &self.base_url {
            Some(b) => b.join(&path),
            None => path,
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/request-access")
            .route(web::get().to(request_form))
            .route(web::head().to(request_form))
            .route(web::post().to(submit_request)),
    )
    .service(web::resource("/request-access/received").route(web::get().to(received)))
    .service(web::resource("/access/{id}").route(web::get().to(grant_page)))
    .service(web::resource("/access/{id}/{document}").route(web::get().to(download)));
}

#[derive(Serialize)]
struct RequestPage<'a> {
    company: &'a str,
    chrome: super::chrome::Chrome,
    title: &'static str,
    documents: Vec<DocumentChoice<'a>>,
    nda_html: &'a str,
    nda_sha256: &'a str,
    token: String,
    values: Values<'a>,
    errors: Vec<FieldError>,
    error_for: ErrorsByField,
}

#[derive(Serialize)]
struct DocumentChoice<'a> {
    id: &'a str,
    title: &'a str,
    description: Option<&'a str>,
    checked: bool,
}

#[derive(Serialize, Default)]
struct Values<'a> {
    name: &'a str,
    email: &'a str,
    company: &'a str,
    nda: bool,
}

/// The first error of each field (the template shows it next to the field).
#[derive(Serialize, Default)]
struct ErrorsByField {
    name: Option<String>,
    email: Option<String>,
    company: Option<String>,
    document: Option<String>,
    nda: Option<String>,
}

impl ErrorsByField {
    fn from(errors: &[FieldError]) -> ErrorsByField {
        let first = |f: &str| {
            errors
                .iter()
                .find(|e| e.field == f)
                .map(|e| e.message.clone())
        };
        ErrorsByField {
            name: first("name"),
            email: first("email"),
            company: first("company"),
            document: first("document"),
            nda: first("nda"),
        }
    }
}

#[derive(Deserialize)]
struct Preselect {
    document: Option<String>,
}

fn documents(state: &WebState) -> Option<&Documents> {
    state
        .documents
        .as_deref()
        .filter(|d| !d.config.items.is_empty())
}

async fn request_form(state: web::Data<WebState>, query: web::Query<Preselect>) -> HttpResponse {
    let Some(docs) = documents(&state) else {
        return super::not_found().await;
    };
    let chosen: Vec<String> = query.document.iter().cloned().collect();
    render_form(
        &state,
        docs,
        &RequestForm::default(),
        &chosen,
        &[],
        StatusCode::OK,
    )
}

fn render_form(
    state: &WebState,
    docs: &Documents,
    form: &RequestForm,
    chosen: &[String],
    errors: &[FieldError],
    status: StatusCode,
) -> HttpResponse {
    let page = RequestPage {
        company: &docs.company,
        chrome: state.site.inputs().chrome(),
        title: "Request documents",
        documents: docs
            .config
            .items
            .iter()
            .map(|d| DocumentChoice {
                id: &d.id,
                title: &d.title,
                description: d.description.as_deref(),
                checked: chosen.contains(&d.id) || docs.config.items.len() == 1,
            })
            .collect(),
        nda_html: &docs.nda_html,
        nda_sha256: &docs.nda_sha256,
        token: docs.signer.form_token(state.clock.now()),
        values: Values {
            name: &form.name,
            email: &form.email,
            company: &form.company,
            nda: form.nda == "yes",
        },
        errors: errors.to_vec(),
        error_for: ErrorsByField::from(errors),
    };
    page_response(state, REQUEST_TEMPLATE, &page, status)
}

#[derive(Serialize)]
struct MessagePage<'a> {
    company: &'a str,
    chrome: super::chrome::Chrome,
    title: &'a str,
    message: &'a str,
    back: bool,
}

fn message(
    state: &WebState,
    status: StatusCode,
    title: &str,
    text: &str,
    back: bool,
) -> HttpResponse {
    let company = state.site.inputs().trust.company.clone();
    let page = MessagePage {
        company: &company,
        chrome: state.site.inputs().chrome(),
        title,
        message: text,
        back,
    };
    page_response(state, MESSAGE_TEMPLATE, &page, status)
}

pub(super) fn page_response(
    state: &WebState,
    template: &str,
    model: &impl Serialize,
    status: StatusCode,
) -> HttpResponse {
    match state.templates.render(template, model) {
        Ok(body) => {
            let mut resp = HttpResponse::build(status)
                .content_type(header::ContentType::html())
                .body(body);
            private(&mut resp);
            resp
        }
        Err(error) => {
            tracing::error!(%error, template, "cannot render");
            HttpResponse::InternalServerError()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .body("Internal error.")
        }
    }
}

/// Not cached anywhere, not indexed.
fn private(resp: &mut HttpResponse) {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::HeaderName::from_static("x-robots-tag"),
        HeaderValue::from_static("noindex, nofollow"),
    );
}

/// A post from another site (its `Origin` is not ours) is refused.
pub(super) fn same_origin(req: &HttpRequest, base_url: Option<&BaseUrl>) -> bool {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    else {
        // Browsers send Origin with every POST; a client that does not is not a browser
        // form of another site.
        return true;
    };
    if let Some(base) = base_url
        && origin.eq_ignore_ascii_case(&base.origin())
    {
        return true;
    }
    let info = req.connection_info();
    let own = format!("{}://{}", info.scheme(), info.host());
    origin.eq_ignore_ascii_case(&own)
}

/// Largest request form accepted.
const MAX_FORM_BYTES: usize = 16 * 1024;

async fn submit_request(
    req: HttpRequest,
    state: web::Data<WebState>,
    body: web::Bytes,
) -> HttpResponse {
    let Some(docs) = documents(&state) else {
        return super::not_found().await;
    };
    // Repeated keys (`document=a&document=b`) are a list: serde_html_form, not serde_urlencoded.
    let form: RequestForm = match serde_html_form::from_bytes(&body) {
        Ok(f) if body.len() <= MAX_FORM_BYTES => f,
        _ => {
            return message(
                &state,
                StatusCode::BAD_REQUEST,
                "The form could not be read",
                "Open the request form again and resubmit.",
                true,
            );
        }
    };
    let now = state.clock.now();
    if !same_origin(&req, docs.base_url.as_ref()) || !docs.signer.check_form_token(&form.token, now)
    {
        return message(
            &state,
            StatusCode::FORBIDDEN,
            "The form has expired",
            "This form is no longer valid (it was opened more than a day ago, or on another \
             site). Open the request form again and resubmit.",
            true,
        );
    }
    let new = match parse_request(&form, &docs.config) {
        Ok(new) => new,
        Err(errors) => {
            return render_form(
                &state,
                docs,
                &form,
                &form.documents,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            );
        }
    };
    // A filled-in hidden field: a bot. It is told what a person would be told.
    if !form.website.trim().is_empty() {
        tracing::info!("access request: honeypot filled, dropped");
        return see_other("/request-access/received");
    }
    let ip = client_ip(&req, &state.trusted_proxies).map(|a| a.to_string());
    let limit = u64::from(docs.config.requests_per_hour);
    let (by_ip, _) = match state
        .store
        .recent_access_requests(ip.as_deref(), None, now - Duration::hours(1))
        .await
    {
        Ok(counts) => counts,
        Err(error) => return store_failed(&state, &error),
    };
    if by_ip >= limit {
        let mut resp = message(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            "We have received several requests from your network in the last hour. Please \
             try again later, or write to our security contact.",
            false,
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("3600"));
        return resp;
    }
    let (_, by_email) = match state
        .store
        .recent_access_requests(None, Some(&new.email), now - Duration::days(1))
        .await
    {
        Ok(counts) => counts,
        Err(error) => return store_failed(&state, &error),
    };
    if by_email >= limit {
        // Said the same as a success, so the page tells nobody who has asked before.
        tracing::info!("access request: daily limit for one address reached, dropped");
        return see_other("/request-access/received");
    }
    let client = ClientInfo {
        ip,
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(300).collect()),
    };
    match state.store.create_access_request(&new, &client, now).await {
        Ok(id) => {
            tracing::info!(request = %id, documents = ?new.documents, "access request received");
            for document in &new.documents {
                state.count(&req, super::analytics::Metric::DocumentRequest, document);
            }
            see_other("/request-access/received")
        }
        Err(error) => store_failed(&state, &error),
    }
}

fn store_failed(state: &WebState, error: &crate::store::StoreError) -> HttpResponse {
    tracing::error!(%error, "access request: store failed");
    message(
        state,
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "We could not record your request just now. Please try again in a few minutes.",
        true,
    )
}

pub(super) fn see_other(location: &'static str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

async fn received(state: web::Data<WebState>) -> HttpResponse {
    if documents(&state).is_none() {
        return super::not_found().await;
    }
    message(
        &state,
        StatusCode::OK,
        "Request received",
        "Thank you. Our security team reviews every request; once it is approved you will \
         receive a personal download link, valid for a limited time.",
        false,
    )
}

#[derive(Deserialize)]
struct LinkQuery {
    expires: i64,
    signature: String,
}

#[derive(Serialize)]
struct GrantPage<'a> {
    company: &'a str,
    chrome: super::chrome::Chrome,
    title: &'static str,
    name: &'a str,
    expires: String,
    documents: Vec<GrantDocument<'a>>,
}

#[derive(Serialize)]
struct GrantDocument<'a> {
    title: &'a str,
    description: Option<&'a str>,
    href: String,
}

/// Loads the request and checks the presented link; the error page when it does not work.
async fn checked_request(
    state: &WebState,
    docs: &Documents,
    id: &str,
    query: &LinkQuery,
) -> Result<access::AccessRequest, HttpResponse> {
    let request = match state.store.access_request(id).await {
        Ok(r) => r,
        Err(error) => return Err(store_failed(state, &error)),
    };
    match check_link(
        &docs.signer,
        request.as_ref(),
        query.expires,
        &query.signature,
        state.clock.now(),
    ) {
        Ok(()) => request.ok_or_else(|| HttpResponse::NotFound().finish()),
        Err(e) => {
            let (status, text) = match e {
                LinkError::Invalid => (
                    StatusCode::NOT_FOUND,
                    "This link is not valid. Check that you copied all of it.",
                ),
                LinkError::Expired => (
                    StatusCode::GONE,
                    "This link has expired. Request the documents again and we will send a new one.",
                ),
                LinkError::Revoked => (
                    StatusCode::GONE,
                    "This link has been withdrawn. Contact our security team if you still need \
                     the documents.",
                ),
            };
            Err(message(
                state,
                status,
                &capitalise(&e.to_string()),
                text,
                false,
            ))
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

async fn grant_page(
    state: web::Data<WebState>,
    path: web::Path<String>,
    query: web::Query<LinkQuery>,
) -> HttpResponse {
    let Some(docs) = documents(&state) else {
        return super::not_found().await;
    };
    let request = match checked_request(&state, docs, &path, &query).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let expires = request
        .expires_at
        .map_or(query.expires, |t| t.timestamp().min(query.expires));
    let page = GrantPage {
        company: &docs.company,
        chrome: state.site.inputs().chrome(),
        title: "Your documents",
        name: &request.name,
        expires: chrono::DateTime::from_timestamp(expires, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default(),
        documents: access::granted_documents(&request, &docs.config)
            .into_iter()
            .map(|d| GrantDocument {
                title: &d.title,
                description: d.description.as_deref(),
                href: format!(
                    "/access/{}/{}?expires={}&signature={}",
                    request.id, d.id, query.expires, query.signature
                ),
            })
            .collect(),
    };
    page_response(&state, GRANT_TEMPLATE, &page, StatusCode::OK)
}

async fn download(
    req: HttpRequest,
    state: web::Data<WebState>,
    path: web::Path<(String, String)>,
    query: web::Query<LinkQuery>,
) -> HttpResponse {
    let Some(docs) = documents(&state) else {
        return super::not_found().await;
    };
    let (id, document) = path.into_inner();
    let request = match checked_request(&state, docs, &id, &query).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let Some(doc) = access::granted_documents(&request, &docs.config)
        .into_iter()
        .find(|d| d.id == document)
    else {
        return message(
            &state,
            StatusCode::NOT_FOUND,
            "Not part of this request",
            "This document is not among those approved for you.",
            false,
        );
    };
    let file = if doc.file.is_absolute() {
        doc.file.clone()
    } else {
        docs.base_dir.join(&doc.file)
    };
    let body = match tokio::fs::read(&file).await {
        Ok(b) => b,
        Err(error) => {
            tracing::error!(%error, document = %doc.id, file = %file.display(), "cannot read document");
            return message(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "This document cannot be downloaded just now. Please try again later.",
                false,
            );
        }
    };
    let ip = client_ip(&req, &state.trusted_proxies).map(|a| a.to_string());
    if let Err(error) = state
        .store
        .record_download(&request.id, &doc.id, ip.as_deref(), state.clock.now())
        .await
    {
        // Every download is accounted for: none without its record.
        return store_failed(&state, &error);
    }
    tracing::info!(request = %request.id, document = %doc.id, "document downloaded");
    state.count(&req, super::analytics::Metric::DocumentDownload, &doc.id);
    let extension = file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let content_type = match extension.as_str() {
        "pdf" => "application/pdf",
        "txt" | "md" => "text/plain; charset=utf-8",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    };
    let filename = format!(
        "{}{}{}",
        doc.id,
        if extension.is_empty() { "" } else { "." },
        extension
    );
    let mut resp = HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .body(body);
    private(&mut resp);
    resp
}
