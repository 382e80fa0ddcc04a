//! What the security team does: run controls now, manage exceptions (created by one person,
//! approved by another, ended early), and decide document access requests.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::auth::{AuthError, Staff};
use super::pages::{Time, time};
use super::{Page, message, render, see_other, store_error};
use crate::access::AccessStatus;
use crate::actions::{self, AccessVerdict, ActionError, Via};
use crate::auth::Permission;
use crate::exceptions::Proposal;
use crate::web::WebState;

#[derive(Deserialize, Default)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// A refused action as a page: 404, 409, 422 or 503, saying why.
pub(super) fn action_error(state: &WebState, staff: &Staff, e: ActionError) -> HttpResponse {
    let (status, title) = match &e {
        ActionError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
        ActionError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "Not accepted"),
        ActionError::Conflict(_) => (StatusCode::CONFLICT, "Not possible"),
        ActionError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Not available"),
        ActionError::Store(e) => return store_error(state, staff, e),
    };
    message(
        state,
        Some(staff),
        status,
        title,
        &capitalised(&e.to_string()),
    )
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect::<String>() + ".")
        .unwrap_or_default()
}

pub async fn run_now(
    req: HttpRequest,
    state: web::Data<WebState>,
    staff: Staff,
    path: web::Path<String>,
    form: super::Form<CsrfForm>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Review)?;
    staff.check_post(&req, &form.csrf)?;
    let accepted = actions::run_now(
        &state.store,
        &state.site.inputs().catalog,
        state.scheduler.as_ref(),
        &staff.actor(),
        &path,
        Via::Dashboard,
        state.clock.now(),
    )
    .await;
    Ok(match accepted {
        // Straight to the run, so it can be watched; otherwise the runs say why not.
        Ok(accepted) => see_other(&match (&accepted.run_id, accepted.queued.is_empty()) {
            (Some(run), _) => format!("/dashboard/runs/{run}"),
            (None, true) => "/dashboard/runs?done=already-running".to_string(),
            (None, false) => "/dashboard/runs?done=not-recorded".to_string(),
        }),
        Err(e) => action_error(&state, &staff, e),
    })
}

/// Cancels a running run (the run page's button); back to the run.
pub async fn cancel_run(
    req: HttpRequest,
    state: web::Data<WebState>,
    staff: Staff,
    path: web::Path<String>,
    form: super::Form<CsrfForm>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Review)?;
    staff.check_post(&req, &form.csrf)?;
    let cancelled = actions::cancel_run(
        &state.store,
        &staff.actor(),
        &path,
        Via::Dashboard,
        state.clock.now(),
    )
    .await;
    Ok(match cancelled {
        Ok(()) => see_other(&format!("/dashboard/runs/{}", path.as_str())),
        Err(e) => action_error(&state, &staff, e),
    })
}

#[derive(Debug, Serialize)]
struct ExceptionRow {
    id: String,
    control_id: String,
    control_title: String,
    resources: String,
    reason: String,
    owner: String,
    ticket: String,
    expires_on: String,
    state: String,
    source: String,
    created_by: String,
    approved_by: String,
    can_approve: bool,
    can_end: bool,
}

#[derive(Debug, Serialize, Default)]
struct ExceptionForm {
    control: String,
    resources: String,
    reason: String,
    owner: String,
    ticket: String,
    expires_on: String,
}

#[derive(Debug, Serialize)]
struct ExceptionsPage {
    rows: Vec<ExceptionRow>,
    controls: Vec<(String, String)>,
    can_review: bool,
    form: ExceptionForm,
    errors: Vec<String>,
    latest_expiry: String,
    today: String,
}

async fn exceptions_page(
    state: &WebState,
    staff: &Staff,
    form: ExceptionForm,
    errors: Vec<String>,
    flash: Option<String>,
    status: StatusCode,
) -> HttpResponse {
    let today = state.clock.now().date_naive();
    let catalog = &state.site.inputs().catalog;
    let managed = match state.store.managed_exceptions().await {
        Ok(m) => m,
        Err(e) => return store_error(state, staff, &e),
    };
    let can_review = staff.user.role.can(Permission::Review);
    let title_of = |id: &str| {
        catalog
            .get(id)
            .map_or_else(|| id.to_string(), |c| c.title.clone())
    };
    let mut rows: Vec<ExceptionRow> = managed
        .iter()
        .map(|m| {
            let s = m.state(today);
            ExceptionRow {
                id: m.id.clone(),
                control_id: m.proposal.control.clone(),
                control_title: title_of(&m.proposal.control),
                resources: m.proposal.resources.join(", "),
                reason: m.proposal.reason.clone(),
                owner: m.proposal.owner.clone(),
                ticket: m.proposal.ticket.clone(),
                expires_on: m.proposal.expires_on.to_string(),
                state: format!("{s:?}").to_lowercase(),
                source: "dashboard".into(),
                created_by: m.created_by.clone(),
                approved_by: m.approved_by.clone().unwrap_or_default(),
                can_approve: can_review
                    && s == crate::store::ManagedState::Pending
                    && m.created_by != staff.user.username,
                can_end: can_review
                    && matches!(
                        s,
                        crate::store::ManagedState::Pending | crate::store::ManagedState::Active
                    ),
            }
        })
        .collect();
    for c in catalog.controls() {
        for e in &c.exceptions {
            rows.push(ExceptionRow {
                id: e.id.clone(),
                control_id: c.id.clone(),
                control_title: c.title.clone(),
                resources: e.resources.join(", "),
                reason: e.reason.clone(),
                owner: e.owner.clone(),
                ticket: e.ticket.clone(),
                expires_on: e.expires_on.to_string(),
                state: e.state_on(today).into(),
                source: e.path.display().to_string(),
                created_by: String::new(),
                approved_by: e.approved_by.clone().unwrap_or_default(),
                can_approve: false,
                can_end: false,
            });
        }
    }
    let latest = today
        .checked_add_months(chrono::Months::new(crate::exceptions::MAX_MONTHS))
        .unwrap_or(today);
    let body = ExceptionsPage {
        rows,
        controls: catalog
            .controls()
            .iter()
            .map(|c| (c.id.clone(), c.title.clone()))
            .collect(),
        can_review,
        form,
        errors,
        latest_expiry: latest.to_string(),
        today: today.to_string(),
    };
    render(
        state,
        "dashboard/exceptions",
        &Page::staff(staff, "exceptions", "Exceptions", body).flash(flash),
        status,
    )
}

#[derive(Deserialize)]
pub struct FlashQuery {
    done: Option<String>,
}

pub async fn exceptions(
    state: web::Data<WebState>,
    staff: Staff,
    query: web::Query<FlashQuery>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Read)?;
    let flash = query.done.as_deref().map(|d| match d {
        "created" => {
            "Exception proposed: someone else must approve it before it applies.".to_string()
        }
        "approved" => "Exception approved: it applies from the control's next run.".to_string(),
        "ended" => "Exception ended: it no longer applies from the control's next run.".to_string(),
        _ => String::new(),
    });
    Ok(exceptions_page(
        &state,
        &staff,
        ExceptionForm::default(),
        Vec::new(),
        flash.filter(|f| !f.is_empty()),
        StatusCode::OK,
    )
    .await)
}

#[derive(Deserialize, Default)]
pub struct NewExceptionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    control: String,
    /// One pattern per line (or comma-separated).
    #[serde(default)]
    resources: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    ticket: String,
    #[serde(default)]
    expires_on: String,
}

/// A proposal from the form's fields (checked by [`actions::propose_exception`]).
fn proposal(form: &NewExceptionForm) -> Result<Proposal, ActionError> {
    let Ok(expires_on) = NaiveDate::parse_from_str(form.expires_on.trim(), "%Y-%m-%d") else {
        return Err(ActionError::Invalid(vec![
            "expires_on: enter a date as YYYY-MM-DD".to_string(),
        ]));
    };
    Ok(Proposal {
        control: form.control.trim().to_string(),
        resources: form
            .resources
            .split(['\n', ','])
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .collect(),
        reason: form.reason.trim().to_string(),
        owner: form.owner.trim().to_string(),
        ticket: form.ticket.trim().to_string(),
        expires_on,
    })
}

pub async fn create_exception(
    req: HttpRequest,
    state: web::Data<WebState>,
    staff: Staff,
    form: super::Form<NewExceptionForm>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Review)?;
    staff.check_post(&req, &form.csrf)?;
    let catalog = &state.site.inputs().catalog;
    let proposed = match proposal(&form) {
        Ok(p) => {
            actions::propose_exception(&state.store, catalog, &staff.actor(), &p, state.clock.now())
                .await
        }
        Err(e) => Err(e),
    };
    match proposed {
        Ok(_) => Ok(see_other("/dashboard/exceptions?done=created")),
        Err(ActionError::Invalid(errors)) => {
            let back = ExceptionForm {
                control: form.control.clone(),
                resources: form.resources.clone(),
                reason: form.reason.clone(),
                owner: form.owner.clone(),
                ticket: form.ticket.clone(),
                expires_on: form.expires_on.clone(),
            };
            Ok(exceptions_page(
                &state,
                &staff,
                back,
                errors,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await)
        }
        Err(e) => Ok(action_error(&state, &staff, e)),
    }
}

pub async fn approve_exception(
    req: HttpRequest,
    state: web::Data<WebState>,
    staff: Staff,
    path: web::Path<String>,
    form: super::Form<CsrfForm>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Review)?;
    staff.check_post(&req, &form.csrf)?;
    match actions::approve_exception(&state.store, &staff.actor(), &path, state.clock.now()).await {
        Ok(_) => Ok(see_other("/dashboard/exceptions?done=approved")),
        Err(e) => Ok(action_error(&state, &staff, e)),
    }
}

pub async fn end_exception(
    req: HttpRequest,
    state: web::Data<WebState>,
    staff: Staff,
    path: web::Path<String>,
    form: super::Form<CsrfForm>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Review)?;
    staff.check_post(&req, &form.csrf)?;
    match actions::end_exception(&state.store, &staff.actor(), &path, state.clock.now()).await {
        Ok(_) => Ok(see_other("/dashboard/exceptions?done=ended")),
        Err(e) => Ok(action_error(&state, &staff, e)),
    }
}

#[derive(Debug, Serialize)]
struct AccessRow {
    id: String,
    short_id: String,
    requested: Time,
    name: String,
    email: String,
    company: String,
    documents: String,
    status: String,
    expires: Option<Time>,
    downloads: usize,
    decided_by: String,
    pending: bool,
    approved: bool,
}

pub async fn access_requests(
    state: web::Data<WebState>,
    staff: Staff,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Review)?;
    Ok(access_page(&state, &staff, None, StatusCode::OK).await)
}

async fn access_page(
    state: &WebState,
    staff: &Staff,
    flash: Option<String>,
    status: StatusCode,
) -> HttpResponse {
    let list = match state.store.access_requests(None, 500).await {
        Ok(l) => l,
        Err(e) => return store_error(state, staff, &e),
    };
    #[derive(Serialize)]
    struct Body {
        rows: Vec<AccessRow>,
        documents_configured: bool,
        link: Option<String>,
    }
    let body = Body {
        rows: list
            .into_iter()
            .map(|r| AccessRow {
                short_id: r.id.get(..8).unwrap_or(&r.id).to_string(),
                requested: time(r.requested_at),
                documents: r.documents.join(", "),
                status: r.status.to_string(),
                expires: r.expires_at.map(time),
                decided_by: r.decided_by.clone().unwrap_or_default(),
                pending: r.status == AccessStatus::Pending,
                approved: r.status == AccessStatus::Approved,
                id: r.id,
                name: r.name,
                email: r.email,
                company: r.company,
                downloads: r.downloads,
            })
            .collect(),
        documents_configured: state.documents.is_some(),
        link: None,
    };
    render(
        state,
        "dashboard/access",
        &Page::staff(staff, "access", "Access requests", body).flash(flash),
        status,
    )
}

pub async fn decide_access(
    req: HttpRequest,
    state: web::Data<WebState>,
    staff: Staff,
    path: web::Path<(String, String)>,
    form: super::Form<CsrfForm>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Review)?;
    staff.check_post(&req, &form.csrf)?;
    let (id, decision) = path.into_inner();
    let Some(docs) = &state.documents else {
        return Ok(message(
            &state,
            Some(&staff),
            StatusCode::NOT_FOUND,
            "No documents",
            "No documents are configured.",
        ));
    };
    let Some(verdict) = AccessVerdict::parse(&decision, docs.config.link_valid_for.get()) else {
        return Ok(message(
            &state,
            Some(&staff),
            StatusCode::NOT_FOUND,
            "Unknown decision",
            "Approve, deny or revoke.",
        ));
    };
    let decided = actions::decide_access(
        &state.store,
        &staff.actor(),
        &id,
        verdict,
        None,
        state.clock.now(),
        state.visitors.as_deref(),
    )
    .await;
    match decided {
        Ok(r) => {
            let done = match verdict {
                AccessVerdict::Approve { .. } if state.visitors.is_some() => format!(
                    "Approved. The download link is being emailed to {}.",
                    r.email
                ),
                AccessVerdict::Approve { .. } => format!(
                    "Approved. Send this link to {}: {}",
                    r.email,
                    docs.link(&r.id, r.expires_at.unwrap_or(state.clock.now()))
                ),
                AccessVerdict::Deny => "Denied.".to_string(),
                AccessVerdict::Revoke => "Revoked: the link no longer works.".to_string(),
            };
            // The link is shown once, in this response (not in a URL), and never logged.
            Ok(access_page(&state, &staff, Some(done), StatusCode::OK).await)
        }
        Err(e) => Ok(action_error(&state, &staff, e)),
    }
}
