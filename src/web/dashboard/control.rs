//! One control for the team: its verdict and checks, the findings (filtered and sorted),
//! 90 days of history, and the exceptions that touch it.
//!
//! The handler reads top to bottom: [`load`] does every store read (a store error is a page
//! saying so, never an empty table), then pure functions build each part of the page.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::auth::{AuthError, Staff};
use super::pages::{State, StateView, Time, freshness, state_view, time};
use super::{Page, charts, message, render, store_error};
use crate::auth::Permission;
use crate::catalog::Control;
use crate::model::{DaySummary, Status};
use crate::store::{FindingsAt, ManagedException, ResultDetail, StoreError, StoredFinding};
use crate::web::WebState;
use crate::web::history;
use crate::web::view::{Badge, HISTORY_DAYS, history_start};

#[derive(Debug, Deserialize)]
pub struct FindingsQuery {
    status: Option<String>,
    q: Option<String>,
    sort: Option<String>,
}

#[derive(Debug, Serialize)]
struct FindingRow {
    resource: String,
    status: String,
    message: String,
    actual: String,
    /// The check's assertion: what the actual values must satisfy.
    expected: String,
    check: usize,
    since: Option<Time>,
}

#[derive(Debug, Serialize)]
struct CheckRow {
    index: usize,
    probe: String,
    /// `system`, `record` or `document`.
    kind: &'static str,
    status: String,
    summary: String,
    error: Option<String>,
    evidence: Option<i64>,
}

#[derive(Debug, Serialize)]
struct ExceptionRow {
    id: String,
    source: String,
    resources: String,
    owner: String,
    ticket: String,
    expires_on: String,
    state: String,
}

#[derive(Debug, Serialize)]
struct ControlPage {
    id: String,
    title: String,
    category: String,
    description: String,
    owner: String,
    severity: String,
    remediation: Option<String>,
    frameworks: Vec<String>,
    definition: String,
    definition_path: String,
    state: StateView,
    /// What the control claims and what backs its status (as the trust page says it).
    claim: &'static str,
    basis: crate::web::BasisView,
    summary: String,
    checked: Option<Time>,
    run_id: Option<String>,
    checks: Vec<CheckRow>,
    findings: Vec<FindingRow>,
    findings_total: usize,
    filter_status: String,
    filter_q: String,
    sort: String,
    status_options: Vec<&'static str>,
    exceptions_used: Vec<crate::model::ExceptionUse>,
    exceptions: Vec<ExceptionRow>,
    strip: Vec<StripCell>,
    uptime: String,
    failures_chart: charts::LineChart,
    can_run: bool,
    can_read_evidence: bool,
}

#[derive(Debug, Serialize)]
struct StripCell {
    x: i64,
    width: i64,
    key: &'static str,
    title: String,
}

/// Everything the page reads from the store.
struct Loaded {
    latest: Option<ResultDetail>,
    findings: Vec<StoredFinding>,
    /// Newest first.
    past: Vec<FindingsAt>,
    /// This control's evaluations over the history window, summed up per day.
    days: Vec<DaySummary>,
    managed: Vec<ManagedException>,
}

async fn load(state: &WebState, c: &Control, now: DateTime<Utc>) -> Result<Loaded, StoreError> {
    let store = &state.store;
    let history = store
        .history_days(history_start(now).date_naive(), now, Some(&c.id))
        .await?;
    Ok(Loaded {
        latest: store.latest_result(&c.id).await?,
        findings: store.latest_findings(&c.id).await?,
        past: store.findings_history(&c.id, 200, None).await?,
        days: history
            .into_iter()
            .find(|(id, _)| id == &c.id)
            .map(|(_, d)| d)
            .unwrap_or_default(),
        managed: store.managed_exceptions().await?,
    })
}

pub async fn control(
    state: web::Data<WebState>,
    staff: Staff,
    path: web::Path<String>,
    query: web::Query<FindingsQuery>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Read)?;
    let inputs = state.site.inputs();
    let Some(c) = inputs.catalog.get(&path) else {
        return Ok(message(
            &state,
            Some(&staff),
            StatusCode::NOT_FOUND,
            "No such control",
            "There is no control with that id in the catalog.",
        ));
    };
    let now = state.clock.now();
    let fresh = freshness(&state, c);
    let data = match load(&state, c, now).await {
        Ok(d) => d,
        Err(e) => return Ok(store_error(&state, &staff, &e)),
    };
    let latest = data.latest.as_ref();
    let since = status_since(&data.findings, &data.past);
    let filter = Filter::of(&query);
    let findings = finding_rows(c, &data.findings, &since, &filter);
    let trend = Trend::of(&data.days, &data.past, fresh, now);
    let s = State::of(latest.map(|l| (l.status, l.evaluated_at)), fresh, now);
    let body = ControlPage {
        id: c.id.clone(),
        title: c.title.clone(),
        category: c.category.clone(),
        description: c.description.clone(),
        owner: c.owner.clone(),
        severity: format!("{:?}", c.severity).to_lowercase(),
        remediation: c.remediation.clone(),
        frameworks: frameworks(c),
        // The definition as loaded (what the results were evaluated against), not the file now.
        definition: c.source.to_string(),
        definition_path: c.path.display().to_string(),
        state: state_view(s),
        claim: c.claim.as_str(),
        basis: crate::web::basis_view(
            c,
            &latest
                .map(|l| {
                    l.checks
                        .iter()
                        .filter_map(|ch| ch.basis.clone())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
            c.schedule.as_ref().unwrap_or(&inputs.default_schedule),
        ),
        summary: latest.map(|l| l.summary.clone()).unwrap_or_default(),
        checked: latest.map(|l| time(l.evaluated_at)),
        run_id: latest.map(|l| l.run_id.clone()),
        checks: latest.map(|l| check_rows(c, l)).unwrap_or_default(),
        findings,
        findings_total: data.findings.len(),
        filter_status: filter.status,
        filter_q: filter.q,
        sort: filter.sort,
        status_options: vec!["fail", "error", "waived", "pass", "not_applicable"],
        exceptions_used: latest.map(|l| l.exceptions.clone()).unwrap_or_default(),
        exceptions: exception_rows(c, &data.managed, now.date_naive()),
        strip: trend.strip,
        uptime: trend.uptime,
        failures_chart: trend.failures_chart,
        can_run: staff.user.role.can(Permission::Review) && state.scheduler.is_some(),
        can_read_evidence: staff.user.role.can(Permission::ReadEvidence),
    };
    let title = c.title.clone();
    Ok(render(
        &state,
        "dashboard/control",
        &Page::staff(&staff, "overview", title, body),
        StatusCode::OK,
    ))
}

fn frameworks(c: &Control) -> Vec<String> {
    c.frameworks
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                crate::web::framework_name(&f.framework, &f.version),
                f.id
            )
        })
        .collect()
}

/// Since when each resource has had its current status (the newest run of findings back to
/// the first with another status).
fn status_since<'a>(
    findings: &'a [StoredFinding],
    past: &[FindingsAt],
) -> HashMap<&'a str, DateTime<Utc>> {
    let mut since = HashMap::new();
    for f in findings {
        let mut first = None;
        for r in past {
            match r.findings.iter().find(|(res, _)| *res == f.resource) {
                Some((_, s)) if *s == f.status => first = Some(r.evaluated_at),
                _ => break,
            }
        }
        if let Some(t) = first {
            since.insert(f.resource.as_str(), t);
        }
    }
    since
}

/// The findings table's filter and order, as asked.
struct Filter {
    status: String,
    q: String,
    sort: String,
}

impl Filter {
    fn of(query: &FindingsQuery) -> Filter {
        Filter {
            status: query.status.clone().unwrap_or_default(),
            q: query.q.clone().unwrap_or_default(),
            sort: query.sort.clone().unwrap_or_else(|| "status".into()),
        }
    }

    fn keeps(&self, f: &StoredFinding) -> bool {
        let q = self.q.to_lowercase();
        (self.status.is_empty() || f.status.as_str() == self.status)
            && (q.is_empty()
                || f.resource.to_lowercase().contains(&q)
                || f.message.to_lowercase().contains(&q))
    }
}

fn finding_rows(
    c: &Control,
    findings: &[StoredFinding],
    since: &HashMap<&str, DateTime<Utc>>,
    filter: &Filter,
) -> Vec<FindingRow> {
    let mut rows: Vec<FindingRow> = findings
        .iter()
        .filter(|f| filter.keeps(f))
        .map(|f| FindingRow {
            resource: f.resource.clone(),
            status: f.status.as_str().to_string(),
            message: f.message.clone(),
            actual: f.actual.as_str().to_owned(),
            expected: c
                .checks
                .get(f.check)
                .map(|ch| ch.assert.source.clone())
                .unwrap_or_default(),
            check: f.check,
            since: since.get(f.resource.as_str()).map(|t| time(*t)),
        })
        .collect();
    let rank = |s: &str| match s {
        "fail" => 0,
        "error" => 1,
        "waived" => 2,
        "pass" => 3,
        _ => 4,
    };
    match filter.sort.as_str() {
        "resource" => rows.sort_by(|a, b| a.resource.cmp(&b.resource)),
        "since" => rows.sort_by(|a, b| {
            a.since
                .as_ref()
                .map(|t| &t.iso)
                .cmp(&b.since.as_ref().map(|t| &t.iso))
        }),
        _ => rows.sort_by(|a, b| {
            rank(&a.status)
                .cmp(&rank(&b.status))
                .then(a.resource.cmp(&b.resource))
        }),
    }
    rows
}

/// 90 days: the status strip, the share of monitored days passing and failing resources per
/// day.
struct Trend {
    strip: Vec<StripCell>,
    uptime: String,
    failures_chart: charts::LineChart,
}

impl Trend {
    fn of(
        summaries: &[DaySummary],
        past: &[FindingsAt],
        fresh: Duration,
        now: DateTime<Utc>,
    ) -> Trend {
        let days = history::daily_from(summaries, fresh, now, HISTORY_DAYS);
        let first_day = now.date_naive() - Duration::days(i64::from(HISTORY_DAYS) - 1);
        let strip = history::runs(&days)
            .into_iter()
            .map(|r| StripCell {
                x: (r.from - first_day).num_days(),
                width: r.days(),
                key: r.status.map_or("no_data", Badge::as_str),
                title: format!(
                    "{} – {}: {}",
                    r.from,
                    r.to,
                    r.status.map_or("No data", Badge::label)
                ),
            })
            .collect();
        let monitored = days.iter().filter(|(_, s)| s.is_some()).count();
        let passing = days
            .iter()
            .filter(|(_, s)| *s == Some(Badge::Passing))
            .count();
        let uptime = if monitored == 0 {
            "no data in the last 90 days".to_string()
        } else {
            format!(
                "{:.1}% of monitored days passing ({passing} of {monitored} days)",
                passing as f64 * 100.0 / monitored as f64
            )
        };
        let failing = failing_by_day(past, first_day);
        let max_failing = failing.iter().copied().max().unwrap_or(0).max(1);
        Trend {
            strip,
            uptime,
            failures_chart: charts::trend(first_day, &failing, max_failing, "Failing resources"),
        }
    }
}

/// Failing resources per day of the window (the most seen in one evaluation that day).
fn failing_by_day(past: &[FindingsAt], first_day: NaiveDate) -> Vec<usize> {
    let mut failing = vec![0usize; HISTORY_DAYS as usize];
    for r in past {
        let day = (r.evaluated_at.date_naive() - first_day).num_days();
        if let Ok(i) = usize::try_from(day)
            && i < failing.len()
        {
            let n = r
                .findings
                .iter()
                .filter(|(_, s)| *s == Status::Fail)
                .count();
            failing[i] = failing[i].max(n);
        }
    }
    failing
}

fn check_rows(c: &Control, latest: &ResultDetail) -> Vec<CheckRow> {
    latest
        .checks
        .iter()
        .enumerate()
        .map(|(i, ch)| CheckRow {
            index: i,
            kind: ch
                .basis
                .as_ref()
                .map(|b| b.kind)
                .or_else(|| c.checks.get(i).map(|k| k.probe.kind()))
                .map_or("unknown", |k| k.as_str()),
            probe: ch.probe.clone(),
            status: ch.status.as_str().to_string(),
            summary: ch.summary.clone(),
            error: ch.error.clone(),
            evidence: ch
                .evidence
                .and_then(|e| latest.evidence_ids.get(e).copied()),
        })
        .collect()
}

/// The control's exceptions: from its YAML files, then those managed on the dashboard.
fn exception_rows(
    c: &Control,
    managed: &[ManagedException],
    today: NaiveDate,
) -> Vec<ExceptionRow> {
    let from_files = c.exceptions.iter().map(|e| ExceptionRow {
        id: e.id.clone(),
        source: e.path.display().to_string(),
        resources: e.resources.join(", "),
        owner: e.owner.clone(),
        ticket: e.ticket.clone(),
        expires_on: e.expires_on.to_string(),
        state: e.state_on(today).into(),
    });
    let from_dashboard = managed
        .iter()
        .filter(|m| m.proposal.control == c.id)
        .map(|m| ExceptionRow {
            id: m.id.clone(),
            source: "dashboard".into(),
            resources: m.proposal.resources.join(", "),
            owner: m.proposal.owner.clone(),
            ticket: m.proposal.ticket.clone(),
            expires_on: m.proposal.expires_on.to_string(),
            state: format!("{:?}", m.state(today)).to_lowercase(),
        });
    from_files.chain(from_dashboard).collect()
}
