//! The authenticated REST API (`/api/v1/…`, bearer tokens from the dashboard's account page,
//! or a signed-in browser) and its OpenAPI document (`/api/openapi.json`, made by utoipa from
//! these handlers and types).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::auth::{AuthError, Staff};
use crate::actions::{self, ActionError, Via};
use crate::auth::Permission;
use crate::web::WebState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Trellis API",
        description = "Controls, results, findings, runs and exceptions of a Trellis deployment. \
                       Authenticate with `Authorization: Bearer <token>` (create tokens on the \
                       dashboard's Account page). The public trust status is `/api/v1/trust`, \
                       without authentication.",
        version = env!("CARGO_PKG_VERSION")
    ),
    paths(controls, control, results, findings, runs, run, exceptions, create_exception, approve_exception, end_exception, run_now, cancel_run, super::export::api_export, super::visitors::api_visitors),
    components(schemas(ApiControl, ApiControlDetail, ApiCheck, ApiResult, ApiFinding, ApiRun, ApiException, NewException, ApiError, RunNowAnswer, super::visitors::ApiVisitors, super::visitors::ApiVisitDay, super::visitors::ApiVisitDocument)),
    modifiers(&BearerAuth, &CommonAnswers),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// What any operation of `/api/v1` may answer besides its own: no or a bad token (401), a
/// role below the operation's (403), the store unreadable (503); each with an [`ApiError`].
struct CommonAnswers;

impl utoipa::Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let answer = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ApiError")))
                        .build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/v1/") {
                continue;
            }
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                for (status, text) in [
                    (
                        "401",
                        "No API token, or one that is unknown, revoked or of a disabled user",
                    ),
                    ("403", "The token's user's role does not allow this"),
                    ("503", "The database could not be read"),
                ] {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| answer(text).into());
                }
            }
        }
    }
}

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("cache-control", "no-cache"))
        .json(openapi())
}

/// An error answer.
#[derive(Serialize, ToSchema)]
pub struct ApiError {
    pub error: String,
}

pub(super) fn error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("cache-control", "no-store"))
        .json(ApiError {
            error: message.into(),
        })
}

fn store_failed(e: &dyn std::fmt::Display) -> HttpResponse {
    tracing::error!(error = %e, "api: store failed");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the database could not be read",
    )
}

fn ok<T: Serialize>(value: &T) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(value)
}

/// A control with its newest result.
#[derive(Serialize, ToSchema)]
pub struct ApiControl {
    pub id: String,
    pub title: String,
    pub category: String,
    pub severity: String,
    pub public: bool,
    /// What the control claims: `system`, `procedure` or `document`.
    pub claim: String,
    /// What backs its status: `monitored` (a check reads the systems), `recorded` (the
    /// team's records) or `documented` (documents only).
    pub basis: String,
    /// The evidence kind of each check, in order: `system`, `record` or `document`.
    pub check_kinds: Vec<String>,
    /// `pass`, `fail`, `error`, `not_applicable`, `waived`, or null if never evaluated.
    pub status: Option<String>,
    /// Whether the newest successful evaluation is older than the control's freshness.
    pub stale: bool,
    pub summary: Option<String>,
    pub evaluated_at: Option<DateTime<Utc>>,
    /// `framework version id`, e.g. `soc2 2017 CC6.2`.
    pub frameworks: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ApiCheck {
    pub probe: String,
    pub status: String,
    pub summary: String,
    pub error: Option<String>,
    pub evidence_id: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ApiControlDetail {
    #[serde(flatten)]
    pub control: ApiControl,
    pub description: String,
    pub owner: String,
    pub remediation: Option<String>,
    pub run_id: Option<String>,
    pub checks: Vec<ApiCheck>,
    pub finding_counts: std::collections::BTreeMap<String, usize>,
}

#[derive(Serialize, ToSchema)]
pub struct ApiResult {
    pub control_id: String,
    pub status: String,
    pub summary: String,
    pub evaluated_at: DateTime<Utc>,
    pub last_success_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct ApiFinding {
    pub control_id: String,
    pub run_id: String,
    pub check: usize,
    pub resource: String,
    pub status: String,
    pub message: String,
    #[schema(value_type = Object)]
    pub actual: crate::model::RawJson,
}

#[derive(Serialize, ToSchema)]
pub struct ApiRun {
    pub id: String,
    pub trigger: String,
    pub state: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub controls_total: usize,
    pub controls_done: usize,
    /// Collections (probe + parameters) the run planned, once it has planned them.
    pub collections_total: Option<usize>,
    /// Collections whose evidence is stored so far.
    pub collections_done: usize,
    pub error: Option<String>,
    /// Who asked for this running run to be cancelled (it stops between collections).
    pub cancel_requested_by: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ApiException {
    pub id: String,
    pub control: String,
    pub resources: Vec<String>,
    pub reason: String,
    pub owner: String,
    pub ticket: String,
    pub expires_on: NaiveDate,
    /// `pending`, `active`, `expired` or `ended`.
    pub state: String,
    /// `dashboard` (managed here) or the exception file's path.
    pub source: String,
    pub created_by: Option<String>,
    pub approved_by: Option<String>,
}

/// A new exception (pending until someone else approves it).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewException {
    #[schema(min_length = 1)]
    pub control: String,
    /// Glob patterns on resource ids.
    #[schema(min_items = 1)]
    pub resources: Vec<String>,
    #[schema(min_length = 1)]
    pub reason: String,
    #[schema(min_length = 1)]
    pub owner: String,
    #[schema(min_length = 1)]
    pub ticket: String,
    /// Last day it applies; at most a year out.
    pub expires_on: NaiveDate,
}

#[derive(Serialize, ToSchema)]
pub struct RunNowAnswer {
    pub queued: Vec<String>,
    pub already_running: Vec<String>,
    /// The started run (see `/api/v1/runs/{id}`); null if nothing was queued or the run
    /// failed before it was recorded.
    pub run_id: Option<String>,
}

fn api_control(
    state: &WebState,
    c: &crate::catalog::Control,
    latest: Option<&crate::model::LatestResult>,
) -> ApiControl {
    let now = state.clock.now();
    let freshness = c.freshness.unwrap_or(state.site.inputs().default_freshness);
    ApiControl {
        id: c.id.clone(),
        title: c.title.clone(),
        category: c.category.clone(),
        severity: format!("{:?}", c.severity).to_lowercase(),
        public: c.public,
        claim: c.claim.as_str().to_string(),
        basis: crate::web::BasisKind::of(c.evidence_kinds())
            .as_str()
            .to_string(),
        check_kinds: c.evidence_kinds().map(|k| k.as_str().to_string()).collect(),
        status: latest.map(|l| l.status.as_str().to_string()),
        stale: latest
            .and_then(|l| l.last_success_at)
            .is_none_or(|t| now - t > freshness),
        summary: latest.map(|l| l.summary.clone()),
        evaluated_at: latest.map(|l| l.evaluated_at),
        frameworks: c
            .frameworks
            .iter()
            .map(|f| format!("{} {} {}", f.framework, f.version, f.id))
            .collect(),
    }
}

/// Every control with its newest result.
#[utoipa::path(get, path = "/api/v1/controls", responses(
    (status = 200, body = [ApiControl]), (status = 401, body = ApiError)))]
pub async fn controls(state: web::Data<WebState>, staff: Staff) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Read)?;
    let latest = match state.store.latest_results().await {
        Ok(l) => l,
        Err(e) => return Ok(store_failed(&e)),
    };
    let list: Vec<ApiControl> = state
        .site
        .inputs()
        .catalog
        .controls()
        .iter()
        .map(|c| api_control(&state, c, latest.iter().find(|l| l.control_id == c.id)))
        .collect();
    Ok(ok(&list))
}

/// One control: definition, newest result and its checks.
#[utoipa::path(get, path = "/api/v1/controls/{id}", params(("id" = String, Path)), responses(
    (status = 200, body = ApiControlDetail), (status = 404, body = ApiError)))]
pub async fn control(
    state: web::Data<WebState>,
    staff: Staff,
    path: web::Path<String>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Read)?;
    let Some(c) = state.site.inputs().catalog.get(&path) else {
        return Ok(error(StatusCode::NOT_FOUND, format!("no control `{path}`")));
    };
    let latest = match state.store.latest_results().await {
        Ok(l) => l,
        Err(e) => return Ok(store_failed(&e)),
    };
    let detail = match state.store.latest_result(&c.id).await {
        Ok(d) => d,
        Err(e) => return Ok(store_failed(&e)),
    };
    Ok(ok(&ApiControlDetail {
        control: api_control(&state, c, latest.iter().find(|l| l.control_id == c.id)),
        description: c.description.clone(),
        owner: c.owner.clone(),
        remediation: c.remediation.clone(),
        run_id: detail.as_ref().map(|d| d.run_id.clone()),
        checks: detail
            .as_ref()
            .map(|d| {
                d.checks
                    .iter()
                    .map(|ch| ApiCheck {
                        probe: ch.probe.clone(),
                        status: ch.status.as_str().to_string(),
                        summary: ch.summary.clone(),
                        error: ch.error.clone(),
                        evidence_id: ch.evidence.and_then(|i| d.evidence_ids.get(i).copied()),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        finding_counts: detail.map(|d| d.finding_counts).unwrap_or_default(),
    }))
}

/// The newest result of every control.
#[utoipa::path(get, path = "/api/v1/results", responses((status = 200, body = [ApiResult])))]
pub async fn results(state: web::Data<WebState>, staff: Staff) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Read)?;
    match state.store.latest_results().await {
        Ok(l) => Ok(ok(&l
            .into_iter()
            .map(|r| ApiResult {
                control_id: r.control_id,
                status: r.status.as_str().to_string(),
                summary: r.summary,
                evaluated_at: r.evaluated_at,
                last_success_at: r.last_success_at,
            })
            .collect::<Vec<_>>())),
        Err(e) => Ok(store_failed(&e)),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct FindingsQuery {
    /// The control (required unless `resource` is given).
    control: Option<String>,
    /// Only findings about this resource (across controls when `control` is absent).
    resource: Option<String>,
    /// Only this status (`fail`, `pass`, `error`, `waived`, `not_applicable`).
    status: Option<String>,
}

/// Findings of the newest result: of one control, or about one resource across controls.
#[utoipa::path(get, path = "/api/v1/findings", params(FindingsQuery), responses(
    (status = 200, body = [ApiFinding]), (status = 400, body = ApiError)))]
pub async fn findings(
    state: web::Data<WebState>,
    staff: Staff,
    query: web::Query<FindingsQuery>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Read)?;
    let found = match (&query.control, &query.resource) {
        (Some(c), _) => state.store.latest_findings(c).await,
        (None, Some(r)) => state
            .store
            .resource_findings(r)
            .await
            .map(|v| v.into_iter().map(|d| d.finding).collect()),
        (None, None) => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                "give `control` or `resource`",
            ));
        }
    };
    match found {
        Ok(list) => Ok(ok(&list
            .into_iter()
            .filter(|f| query.resource.as_ref().is_none_or(|r| &f.resource == r))
            .filter(|f| query.status.as_ref().is_none_or(|s| f.status.as_str() == s))
            .map(|f| ApiFinding {
                control_id: f.control_id,
                run_id: f.run_id,
                check: f.check,
                resource: f.resource,
                status: f.status.as_str().to_string(),
                message: f.message,
                actual: f.actual,
            })
            .collect::<Vec<_>>())),
        Err(e) => Ok(store_failed(&e)),
    }
}

fn api_run(r: crate::store::RunSummary) -> ApiRun {
    ApiRun {
        id: r.id,
        trigger: r.trigger.as_str().to_string(),
        state: r.state.as_str().to_string(),
        started_at: r.started_at,
        finished_at: r.finished_at,
        controls_total: r.controls_total,
        controls_done: r.controls_done,
        collections_total: r.collections_total,
        collections_done: r.collections_done,
        error: r.error,
        cancel_requested_by: r.cancel_requested_by,
    }
}

/// The newest 100 runs.
#[utoipa::path(get, path = "/api/v1/runs", responses((status = 200, body = [ApiRun])))]
pub async fn runs(state: web::Data<WebState>, staff: Staff) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Read)?;
    match state.store.runs(100).await {
        Ok(l) => Ok(ok(&l.into_iter().map(api_run).collect::<Vec<_>>())),
        Err(e) => Ok(store_failed(&e)),
    }
}

/// One run.
#[utoipa::path(get, path = "/api/v1/runs/{id}", params(("id" = String, Path)), responses(
    (status = 200, body = ApiRun), (status = 404, body = ApiError)))]
pub async fn run(
    state: web::Data<WebState>,
    staff: Staff,
    path: web::Path<String>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Read)?;
    match state.store.run(&path).await {
        Ok(Some(r)) => Ok(ok(&api_run(r))),
        Ok(None) => Ok(error(StatusCode::NOT_FOUND, format!("no run `{path}`"))),
        Err(e) => Ok(store_failed(&e)),
    }
}

/// Every exception: from files and managed in the dashboard or here.
#[utoipa::path(get, path = "/api/v1/exceptions", responses((status = 200, body = [ApiException])))]
pub async fn exceptions(
    state: web::Data<WebState>,
    staff: Staff,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Read)?;
    let today = state.clock.now().date_naive();
    let managed = match state.store.managed_exceptions().await {
        Ok(m) => m,
        Err(e) => return Ok(store_failed(&e)),
    };
    let mut list: Vec<ApiException> = managed
        .into_iter()
        .map(|m| managed_json(m, today))
        .collect();
    for c in state.site.inputs().catalog.controls() {
        for e in &c.exceptions {
            list.push(ApiException {
                id: e.id.clone(),
                control: c.id.clone(),
                resources: e.resources.clone(),
                reason: e.reason.clone(),
                owner: e.owner.clone(),
                ticket: e.ticket.clone(),
                expires_on: e.expires_on,
                state: e.state_on(today).into(),
                source: e.path.display().to_string(),
                created_by: None,
                approved_by: e.approved_by.clone(),
            });
        }
    }
    Ok(ok(&list))
}

fn managed_json(m: crate::store::ManagedException, today: NaiveDate) -> ApiException {
    ApiException {
        state: format!("{:?}", m.state(today)).to_lowercase(),
        id: m.id,
        control: m.proposal.control,
        resources: m.proposal.resources,
        reason: m.proposal.reason,
        owner: m.proposal.owner,
        ticket: m.proposal.ticket,
        expires_on: m.proposal.expires_on,
        source: "dashboard".into(),
        created_by: Some(m.created_by),
        approved_by: m.approved_by,
    }
}

/// Proposes an exception; someone else approves it.
#[utoipa::path(post, path = "/api/v1/exceptions", request_body = NewException, responses(
    (status = 201, body = ApiException), (status = 400, body = ApiError), (status = 422, body = ApiError), (status = 403, body = ApiError)))]
pub async fn create_exception(
    req: HttpRequest,
    state: web::Data<WebState>,
    staff: Staff,
    body: super::Json<NewException>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Review)?;
    // A browser session calling the API must prove the page is ours.
    let csrf = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    staff.check_post(&req, csrf)?;
    let b = match body.0 {
        Ok(b) => b,
        Err(e) => return Ok(error(StatusCode::BAD_REQUEST, format!("invalid body: {e}"))),
    };
    let proposal = crate::exceptions::Proposal {
        control: b.control,
        resources: b.resources,
        reason: b.reason,
        owner: b.owner,
        ticket: b.ticket,
        expires_on: b.expires_on,
    };
    let now = state.clock.now();
    let catalog = &state.site.inputs().catalog;
    Ok(
        match actions::propose_exception(&state.store, catalog, &staff.actor(), &proposal, now)
            .await
        {
            Ok(m) => HttpResponse::Created().json(managed_json(m, now.date_naive())),
            Err(e) => action_failed(e),
        },
    )
}

/// A refused action as JSON: 404, 409, 422 or 503.
fn action_failed(e: ActionError) -> HttpResponse {
    let status = match &e {
        ActionError::NotFound(_) => StatusCode::NOT_FOUND,
        ActionError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ActionError::Conflict(_) => StatusCode::CONFLICT,
        ActionError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ActionError::Store(e) => return store_failed(e),
    };
    error(status, e.to_string())
}

fn managed_answer(
    result: Result<crate::store::ManagedException, ActionError>,
    today: NaiveDate,
) -> HttpResponse {
    match result {
        Ok(m) => ok(&managed_json(m, today)),
        Err(e) => action_failed(e),
    }
}

fn csrf_header(req: &HttpRequest) -> &str {
    req.headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Approves a pending exception (not one you created).
#[utoipa::path(post, path = "/api/v1/exceptions/{id}/approve", params(("id" = String, Path)), responses(
    (status = 200, body = ApiException), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub async fn approve_exception(
    req: HttpRequest,
    state: web::Data<WebState>,
    staff: Staff,
    path: web::Path<String>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Review)?;
    staff.check_post(&req, csrf_header(&req))?;
    let now = state.clock.now();
    Ok(managed_answer(
        actions::approve_exception(&state.store, &staff.actor(), &path, now).await,
        now.date_naive(),
    ))
}

/// Ends an exception now.
#[utoipa::path(post, path = "/api/v1/exceptions/{id}/end", params(("id" = String, Path)), responses(
    (status = 200, body = ApiException), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub async fn end_exception(
    req: HttpRequest,
    state: web::Data<WebState>,
    staff: Staff,
    path: web::Path<String>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Review)?;
    staff.check_post(&req, csrf_header(&req))?;
    let now = state.clock.now();
    Ok(managed_answer(
        actions::end_exception(&state.store, &staff.actor(), &path, now).await,
        now.date_naive(),
    ))
}

/// Asks for a running run to stop between collections (whichever instance works on it); it
/// closes `cancelled`. Audited. Answers with the run as it stands.
#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", params(("id" = String, Path)), responses(
    (status = 202, body = ApiRun), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub async fn cancel_run(
    req: HttpRequest,
    state: web::Data<WebState>,
    staff: Staff,
    path: web::Path<String>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Review)?;
    staff.check_post(&req, csrf_header(&req))?;
    let now = state.clock.now();
    if let Err(e) = actions::cancel_run(&state.store, &staff.actor(), &path, Via::Api, now).await {
        return Ok(action_failed(e));
    }
    Ok(match state.store.run(&path).await {
        Ok(Some(r)) => HttpResponse::Accepted().json(api_run(r)),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no run `{path}`")),
        Err(e) => store_failed(&e),
    })
}

/// Asks the scheduler to run a control now (answers once the run has started).
#[utoipa::path(post, path = "/api/v1/controls/{id}/run", params(("id" = String, Path)), responses(
    (status = 202, body = RunNowAnswer), (status = 404, body = ApiError), (status = 503, body = ApiError)))]
pub async fn run_now(
    req: HttpRequest,
    state: web::Data<WebState>,
    staff: Staff,
    path: web::Path<String>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Review)?;
    staff.check_post(&req, csrf_header(&req))?;
    let accepted = actions::run_now(
        &state.store,
        &state.site.inputs().catalog,
        state.scheduler.as_ref(),
        &staff.actor(),
        &path,
        Via::Api,
        state.clock.now(),
    )
    .await;
    Ok(match accepted {
        Ok(a) => HttpResponse::Accepted().json(RunNowAnswer {
            queued: a.queued,
            already_running: a.already_running,
            run_id: a.run_id,
        }),
        Err(e) => action_failed(e),
    })
}
