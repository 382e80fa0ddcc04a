//! What visitors do on the public site: `/dashboard/visitors` (a chart of 90 days and a table
//! per document) and `GET /api/v1/visitors`, both from one report.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{AuthError, Staff};
use super::{Page, charts, render, store_error};
use crate::auth::Permission;
use crate::store::VisitCount;
use crate::web::WebState;
use crate::web::analytics::{Metric, VISITORS};

/// Days shown by default.
const DEFAULT_DAYS: u32 = 90;

/// One day's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ApiVisitDay {
    /// `YYYY-MM-DD` (UTC).
    #[schema(value_type = String, format = Date)]
    pub day: NaiveDate,
    /// Page views by people (bots apart).
    pub page_views: u64,
    /// Unique visitors, estimated per day (a daily-salted hash; for today, so far).
    pub visitors: u64,
    pub json_fetches: u64,
    pub feed_fetches: u64,
    /// Subscriptions confirmed.
    pub subscriptions: u64,
    /// Requests of the page, the JSON and the feed by bots (by user agent).
    pub bot_requests: u64,
}

/// One document's requests, approvals and downloads in the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ApiVisitDocument {
    pub id: String,
    /// Its title, when it is still configured.
    pub title: Option<String>,
    pub requests: u64,
    pub approvals: u64,
    pub downloads: u64,
}

/// Visitor counts over a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ApiVisitors {
    /// Whether counting is on (`trust_page.analytics.enabled`).
    pub enabled: bool,
    #[schema(value_type = String, format = Date)]
    pub from: NaiveDate,
    #[schema(value_type = String, format = Date)]
    pub to: NaiveDate,
    /// Every day of the period, oldest first (zeros where nothing was counted).
    pub days: Vec<ApiVisitDay>,
    /// The period's sums.
    pub totals: ApiVisitDay,
    pub documents: Vec<ApiVisitDocument>,
}

/// The row of document `id`, made (without a title: no longer configured) if new.
fn document<'a>(
    docs: &'a mut BTreeMap<String, ApiVisitDocument>,
    id: &str,
) -> &'a mut ApiVisitDocument {
    docs.entry(id.to_string())
        .or_insert_with(|| ApiVisitDocument {
            id: id.to_string(),
            title: None,
            requests: 0,
            approvals: 0,
            downloads: 0,
        })
}

/// The report of `days` days ending `today`, with the period's `approvals` per document.
pub fn report(
    rows: &[VisitCount],
    approvals: &BTreeMap<String, u64>,
    today: NaiveDate,
    days: u32,
    documents: &[(String, String)],
    enabled: bool,
) -> ApiVisitors {
    let from = today - Duration::days(i64::from(days.max(1)) - 1);
    let mut by_day: Vec<ApiVisitDay> = (0..i64::from(days.max(1)))
        .map(|i| ApiVisitDay {
            day: from + Duration::days(i),
            ..ApiVisitDay::default()
        })
        .collect();
    let mut docs: BTreeMap<String, ApiVisitDocument> = BTreeMap::new();
    for (id, title) in documents {
        document(&mut docs, id).title = Some(title.clone());
    }
    for row in rows.iter().filter(|r| r.day >= from && r.day <= today) {
        let Ok(i) = usize::try_from((row.day - from).num_days()) else {
            continue;
        };
        let Some(day) = by_day.get_mut(i) else {
            continue;
        };
        let metric = Metric::ALL.into_iter().find(|m| m.as_str() == row.metric);
        let n = row.count;
        match metric {
            None if row.metric == VISITORS => day.visitors += n,
            None => {}
            // Bots are counted apart whatever they fetched (a link previewer opening an
            // emailed download link is not a download).
            Some(_) if row.bot => day.bot_requests += n,
            Some(Metric::PageView) => day.page_views += n,
            Some(Metric::JsonFetch) => day.json_fetches += n,
            Some(Metric::FeedFetch) => day.feed_fetches += n,
            Some(Metric::Subscription) => day.subscriptions += n,
            Some(Metric::DocumentRequest) => document(&mut docs, &row.subject).requests += n,
            Some(Metric::DocumentDownload) => document(&mut docs, &row.subject).downloads += n,
        }
    }
    for (id, n) in approvals {
        document(&mut docs, id).approvals += n;
    }
    let totals = by_day.iter().fold(
        ApiVisitDay {
            day: today,
            ..ApiVisitDay::default()
        },
        |mut t, d| {
            t.page_views += d.page_views;
            t.visitors += d.visitors;
            t.json_fetches += d.json_fetches;
            t.feed_fetches += d.feed_fetches;
            t.subscriptions += d.subscriptions;
            t.bot_requests += d.bot_requests;
            t
        },
    );
    ApiVisitors {
        enabled,
        from,
        to: today,
        days: by_day,
        totals,
        documents: docs.into_values().collect(),
    }
}

async fn load(state: &WebState, days: u32) -> Result<ApiVisitors, crate::store::StoreError> {
    let today = state.clock.now().date_naive();
    let from = today - Duration::days(i64::from(days) - 1);
    let rows = state.store.visits(from).await?;
    let approvals = state
        .store
        .approvals_by_document(from.and_time(chrono::NaiveTime::MIN).and_utc())
        .await?;
    let documents: Vec<(String, String)> = state
        .documents
        .as_ref()
        .map(|d| {
            d.config
                .items
                .iter()
                .map(|i| (i.id.clone(), i.title.clone()))
                .collect()
        })
        .unwrap_or_default();
    Ok(report(
        &rows,
        &approvals,
        today,
        days,
        &documents,
        state.analytics.is_some(),
    ))
}

/// `?days=` of the API (documented; read by hand, so a malformed query is a JSON 400 like
/// every other API error).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct VisitorsQuery {
    /// Days ending today (UTC), 1 to 3660; default 90.
    #[param(minimum = 1, maximum = 3660)]
    days: Option<u32>,
}

/// The `days` of a query string: default 90; one value, 1 to 3660.
fn days_of(query: &str) -> Result<u32, &'static str> {
    let values: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "days")
        .map(|(_, v)| v.into_owned())
        .collect();
    match values.as_slice() {
        [] => Ok(DEFAULT_DAYS),
        [one] => one
            .parse::<u32>()
            .ok()
            .filter(|d| (1..=3660).contains(d))
            .ok_or("days: a whole number from 1 to 3660"),
        _ => Err("days: give it once"),
    }
}

/// Visitor counts of the public site per day and per document.
#[utoipa::path(get, path = "/api/v1/visitors", params(VisitorsQuery), responses(
    (status = 200, body = ApiVisitors), (status = 400, body = super::api::ApiError)))]
pub async fn api_visitors(
    req: actix_web::HttpRequest,
    state: web::Data<WebState>,
    staff: Staff,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Read)?;
    let days = match days_of(req.query_string()) {
        Ok(d) => d,
        Err(why) => return Ok(super::api::error(StatusCode::BAD_REQUEST, why)),
    };
    match load(&state, days).await {
        Ok(r) => Ok(HttpResponse::Ok()
            .insert_header(("cache-control", "no-store"))
            .json(r)),
        Err(e) => {
            tracing::error!(error = %e, "api: store failed");
            Ok(super::api::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database could not be read",
            ))
        }
    }
}

#[derive(Serialize)]
struct Body {
    report: ApiVisitors,
    chart: charts::LineChart,
    /// The days, newest first, for the table under the chart.
    recent: Vec<ApiVisitDay>,
    retention: String,
}

/// `/dashboard/visitors`.
pub async fn page(state: web::Data<WebState>, staff: Staff) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Read)?;
    let report = match load(&state, DEFAULT_DAYS).await {
        Ok(r) => r,
        Err(e) => return Ok(store_error(&state, &staff, &e)),
    };
    let views: Vec<usize> = report
        .days
        .iter()
        .map(|d| usize::try_from(d.page_views).unwrap_or(usize::MAX))
        .collect();
    let chart = charts::counts(report.from, &views, "Page views");
    let body = Body {
        recent: report.days.iter().rev().cloned().collect(),
        chart,
        retention: state.site.inputs().trust.analytics.retention.to_string(),
        report,
    };
    let page = Page::staff(&staff, "visitors", "Visitors", body);
    Ok(render(&state, "dashboard/visitors", &page, StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(day: NaiveDate, metric: &str, subject: &str, bot: bool, count: u64) -> VisitCount {
        VisitCount {
            day,
            metric: metric.into(),
            subject: subject.into(),
            bot,
            count,
        }
    }

    #[test]
    fn days_are_one_whole_number_in_range() {
        assert_eq!(days_of(""), Ok(90));
        assert_eq!(days_of("days=7"), Ok(7));
        assert_eq!(days_of("x=1&days=3660"), Ok(3660));
        for bad in [
            "days=0",
            "days=3661",
            "days=null",
            "days=-1",
            "days=1.5",
            "days=7&days=7",
            "days=",
        ] {
            assert!(days_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_report_sums_people_and_bots_apart() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
        let yesterday = today.pred_opt().unwrap();
        let long_ago = today - Duration::days(200);
        let rows = [
            row(long_ago, "page_view", "", false, 1000),
            row(yesterday, "page_view", "", false, 12),
            row(yesterday, "page_view", "", true, 30),
            row(yesterday, "visitors", "", false, 5),
            row(today, "json_fetch", "", false, 3),
            row(today, "feed_fetch", "", true, 4),
            row(today, "document_request", "soc2", false, 2),
            row(today, "document_download", "soc2", true, 5),
            row(today, "document_download", "gone", false, 7),
            row(today, "subscription", "", false, 1),
        ];
        let docs = [
            ("soc2".to_string(), "SOC 2".to_string()),
            ("pentest".into(), "Pen test".into()),
        ];
        let approvals = BTreeMap::from([("soc2".to_string(), 1)]);
        let r = report(&rows, &approvals, today, 90, &docs, true);
        assert_eq!(r.days.len(), 90);
        assert_eq!(r.from, today - Duration::days(89));
        let y = &r.days[88];
        assert_eq!(
            (y.day, y.page_views, y.bot_requests, y.visitors),
            (yesterday, 12, 30, 5)
        );
        assert_eq!(
            r.totals.page_views, 12,
            "the row from 200 days ago is outside"
        );
        assert_eq!(r.totals.bot_requests, 39, "a bot's download is no download");
        assert_eq!(
            (
                r.totals.json_fetches,
                r.totals.feed_fetches,
                r.totals.subscriptions
            ),
            (3, 0, 1)
        );
        let ids: Vec<(&str, u64, u64, u64)> = r
            .documents
            .iter()
            .map(|d| (d.id.as_str(), d.requests, d.approvals, d.downloads))
            .collect();
        assert_eq!(
            ids,
            [("gone", 0, 0, 7), ("pentest", 0, 0, 0), ("soc2", 2, 1, 0)]
        );
        assert_eq!(r.documents[0].title, None);
    }
}
