//! Evidence bundles for auditors (`/dashboard/export`, `GET /api/v1/export`): one function
//! checks the request, writes the audit line and starts the bundle; nothing is sent unless
//! the audit line was written. The bundle is streamed as it is made (`export::stream`):
//! the response starts at once, and a bundle that fails midway is an aborted download, never
//! a complete-looking file.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDate;
use futures::StreamExt as _;
use serde::Deserialize;

use super::auth::{AuthError, Staff};
use super::{api, message};
use crate::auth::Permission;
use crate::export::ExportRequest;
use crate::web::WebState;

/// The query of both routes. Read leniently, so a bad value is answered after the caller's
/// identity and role are checked (400 with what is wrong, never a parser's text).
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// First day of the period (UTC, `YYYY-MM-DD`), included.
    #[param(value_type = String, format = Date, required = true)]
    from: Option<String>,
    /// Last day of the period (UTC, `YYYY-MM-DD`), included.
    #[param(value_type = String, format = Date, required = true)]
    to: Option<String>,
    /// Only these controls (repeat for several; none: all, or all of `framework`).
    #[serde(default)]
    #[param(explode = true)]
    control: Vec<String>,
    /// Only controls mapped to this framework (`soc2`, `cis-aws`…).
    framework: Option<String>,
}

/// Why an export did not start.
enum Refused {
    /// The request is wrong (period, controls): 400, with what to fix.
    Request { title: &'static str, text: String },
    /// This server cannot export now (no signing key, the store or the audit log failed): 503.
    Unavailable { text: &'static str },
}

fn date(value: Option<&str>, name: &str) -> Result<NaiveDate, Refused> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Err(Refused::Request {
            title: "Choose a period",
            text: "Give the first and last day of the period (from, to).".into(),
        });
    };
    NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| Refused::Request {
        title: "Choose a period",
        text: format!("`{name}` must be a date as YYYY-MM-DD."),
    })
}

/// Checks and audits the export `query` asks for, then starts it: the response to send.
async fn start(
    req: &HttpRequest,
    state: &WebState,
    staff: &Staff,
    via: &'static str,
) -> Result<HttpResponse, Refused> {
    let query: ExportQuery =
        serde_html_form::from_str(req.query_string()).map_err(|e| Refused::Request {
            title: "Cannot export",
            text: format!("the query cannot be read: {e}"),
        })?;
    let (from, to) = (
        date(query.from.as_deref(), "from")?,
        date(query.to.as_deref(), "to")?,
    );
    let Some(signer) = &state.signer else {
        return Err(Refused::Unavailable {
            text: "This server has no signing key.",
        });
    };
    let inputs = state.site.inputs();
    let request = ExportRequest {
        from,
        to,
        controls: query
            .control
            .into_iter()
            .filter(|c| !c.is_empty())
            .collect(),
        framework: query.framework.filter(|f| !f.is_empty()),
        default_freshness: inputs.default_freshness,
    };
    crate::export::check(&inputs.catalog, &request).map_err(|e| Refused::Request {
        title: "Cannot export",
        text: e.to_string(),
    })?;
    // Before any byte: no audit line, no export.
    if let Err(error) = state
        .store
        .audit(
            &staff.actor(),
            "export",
            &format!("bundle:{from}..{to}"),
            serde_json::json!({"controls": request.controls, "framework": request.framework, "via": via}),
            state.clock.now(),
        )
        .await
    {
        tracing::error!(%error, via, "export refused: the audit line cannot be written");
        return Err(Refused::Unavailable {
            text: "The export cannot be recorded in the audit log just now, so it was not made. Try again in a moment.",
        });
    }
    let streaming = crate::export::stream::start(
        state.store.clone(),
        inputs.catalog.clone(),
        signer.clone(),
        request,
    );
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"trellis-evidence-{from}-{to}.zip\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(streaming.into_stream().map(|c| c.map(web::Bytes::from))))
}

/// The dashboard's download (auditors).
pub async fn dashboard(
    req: HttpRequest,
    state: web::Data<WebState>,
    staff: Staff,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Export)?;
    Ok(match start(&req, &state, &staff, "dashboard").await {
        Ok(r) => r,
        Err(Refused::Request { title, text }) => {
            message(&state, Some(&staff), StatusCode::BAD_REQUEST, title, &text)
        }
        Err(Refused::Unavailable { text }) => message(
            &state,
            Some(&staff),
            StatusCode::SERVICE_UNAVAILABLE,
            "Exports unavailable",
            text,
        ),
    })
}

/// The signed evidence bundle of a period (zip; `trellis verify-bundle` checks it offline),
/// as `trellis export` makes it, streamed as it is made. Audited before it starts.
#[utoipa::path(get, path = "/api/v1/export", params(ExportQuery), responses(
    (status = 200, description = "The bundle", content_type = "application/zip", body = Vec<u8>),
    (status = 400, body = api::ApiError)))]
pub async fn api_export(
    req: HttpRequest,
    state: web::Data<WebState>,
    staff: Staff,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Export)?;
    Ok(match start(&req, &state, &staff, "api").await {
        Ok(r) => r,
        Err(Refused::Request { text, .. }) => api::error(StatusCode::BAD_REQUEST, text),
        Err(Refused::Unavailable { text }) => api::error(StatusCode::SERVICE_UNAVAILABLE, text),
    })
}
