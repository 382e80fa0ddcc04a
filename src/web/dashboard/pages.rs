//! The read-only dashboard pages: overview, control, resource, runs, a run, evidence and the
//! audit log.

use std::collections::{BTreeMap, HashMap};

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::auth::{AuthError, Staff};
use super::{Page, charts, message, render, store_error};
use crate::auth::Permission;
use crate::catalog::Control;
use crate::model::{DaySummary, Status};
use crate::web::history;
use crate::web::view::{Badge, HISTORY_DAYS, badge_for, history_start};
use crate::web::{WebState, iso};

/// A time as shown in the dashboards.
#[derive(Debug, Clone, Serialize)]
pub struct Time {
    pub iso: String,
    pub display: String,
}

pub fn time(t: DateTime<Utc>) -> Time {
    Time {
        iso: iso(t),
        display: t.format("%Y-%m-%d %H:%M UTC").to_string(),
    }
}

/// A control's state as the team sees it: the stored verdict, with staleness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Fail,
    Error,
    Stale,
    Waived,
    Pass,
    NotApplicable,
    NeverRun,
}

impl State {
    pub(super) fn of(
        latest: Option<(Status, DateTime<Utc>)>,
        freshness: Duration,
        now: DateTime<Utc>,
    ) -> State {
        let Some((status, at)) = latest else {
            return State::NeverRun;
        };
        if status == Status::Error {
            return State::Error;
        }
        if badge_for(Some((status, at)), freshness, now) == Badge::Stale {
            return State::Stale;
        }
        match status {
            Status::Fail => State::Fail,
            Status::Waived => State::Waived,
            Status::Pass => State::Pass,
            Status::NotApplicable => State::NotApplicable,
            Status::Error => State::Error,
        }
    }

    /// Problems first.
    fn rank(self) -> u8 {
        match self {
            State::Fail => 0,
            State::Error => 1,
            State::Stale => 2,
            State::NeverRun => 3,
            State::Waived => 4,
            State::NotApplicable => 5,
            State::Pass => 6,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            State::Fail => "Failing",
            State::Error => "Error",
            State::Stale => "Stale",
            State::Waived => "Waived",
            State::Pass => "Passing",
            State::NotApplicable => "Not applicable",
            State::NeverRun => "Never run",
        }
    }

    fn is_problem(self) -> bool {
        self.rank() <= 3
    }
}

#[derive(Debug, Serialize)]
pub struct StateView {
    key: State,
    label: &'static str,
}

pub(super) fn state_view(s: State) -> StateView {
    StateView {
        key: s,
        label: s.label(),
    }
}

#[derive(Debug, Serialize)]
struct ControlRow {
    id: String,
    title: String,
    category: String,
    severity: String,
    state: StateView,
    /// `monitored`, `recorded` or `documented`: what backs the status.
    basis: &'static str,
    summary: String,
    checked: Option<Time>,
}

#[derive(Debug, Serialize, Default)]
struct Tally {
    name: String,
    passing: usize,
    failing: usize,
    error: usize,
    stale: usize,
    other: usize,
    total: usize,
}

impl Tally {
    fn add(&mut self, s: State) {
        self.total += 1;
        match s {
            State::Pass => self.passing += 1,
            State::Fail => self.failing += 1,
            State::Error => self.error += 1,
            State::Stale => self.stale += 1,
            _ => self.other += 1,
        }
    }
}

#[derive(Debug, Serialize)]
struct Overview {
    problems: Vec<ControlRow>,
    healthy: Vec<ControlRow>,
    categories: Vec<Tally>,
    frameworks: Vec<Tally>,
    trend: charts::LineChart,
    totals: Tally,
    notifications: NotifyView,
}

/// The outbox as the overview shows it: failed deliveries first (a message the team never
/// got is a problem of its own).
#[derive(Debug, Serialize)]
struct NotifyView {
    pending: i64,
    sent: i64,
    failed: i64,
    failed_recent: Vec<FailedRow>,
}

#[derive(Debug, Serialize)]
struct FailedRow {
    channel: String,
    kind: String,
    control_id: Option<String>,
    attempts: i32,
    error: String,
    queued: Option<Time>,
}

impl NotifyView {
    fn of(o: crate::store::NotifyOverview) -> NotifyView {
        NotifyView {
            pending: o.pending + o.sending,
            sent: o.sent,
            failed: o.failed,
            failed_recent: o
                .failed_recent
                .into_iter()
                .map(|f| FailedRow {
                    channel: f.channel,
                    kind: f.kind.replace('_', " "),
                    control_id: f.control_id,
                    attempts: f.attempts,
                    error: f.last_error.unwrap_or_default(),
                    queued: DateTime::from_timestamp_millis(f.created_ms).map(time),
                })
                .collect(),
        }
    }
}

pub(super) fn freshness(state: &WebState, c: &Control) -> Duration {
    c.freshness.unwrap_or(state.site.inputs().default_freshness)
}

pub async fn overview(state: web::Data<WebState>, staff: Staff) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Read)?;
    let now = state.clock.now();
    let inputs = state.site.inputs();
    let history = match state
        .store
        .history_days(history_start(now).date_naive(), now, None)
        .await
    {
        Ok(h) => h,
        Err(e) => return Ok(store_error(&state, &staff, &e)),
    };
    let latest = match state.store.latest_results().await {
        Ok(l) => l,
        Err(e) => return Ok(store_error(&state, &staff, &e)),
    };
    let latest: HashMap<&str, &crate::model::LatestResult> =
        latest.iter().map(|r| (r.control_id.as_str(), r)).collect();
    let summaries: HashMap<&str, &[DaySummary]> = history
        .iter()
        .map(|(id, d)| (id.as_str(), d.as_slice()))
        .collect();
    let mut rows = Vec::new();
    let mut categories: BTreeMap<String, Tally> = BTreeMap::new();
    let mut frameworks: BTreeMap<String, Tally> = BTreeMap::new();
    let mut totals = Tally::default();
    let mut passing_by_day = vec![0usize; HISTORY_DAYS as usize];
    for (category, controls) in inputs.catalog.categories(&inputs.trust.category_order) {
        for c in controls {
            let l = latest.get(c.id.as_str());
            let s = State::of(
                l.map(|r| (r.status, r.evaluated_at)),
                freshness(&state, c),
                now,
            );
            categories
                .entry(category.to_string())
                .or_insert_with(|| Tally {
                    name: category.to_string(),
                    ..Tally::default()
                })
                .add(s);
            let mut names: Vec<String> = c
                .frameworks
                .iter()
                .map(|f| crate::web::framework_name(&f.framework, &f.version))
                .collect();
            names.sort();
            names.dedup();
            for n in names {
                frameworks
                    .entry(n.clone())
                    .or_insert_with(|| Tally {
                        name: n,
                        ..Tally::default()
                    })
                    .add(s);
            }
            totals.add(s);
            let days = history::daily_from(
                summaries.get(c.id.as_str()).copied().unwrap_or_default(),
                freshness(&state, c),
                now,
                HISTORY_DAYS,
            );
            for (i, (_, d)) in days.iter().enumerate() {
                if *d == Some(Badge::Passing) {
                    passing_by_day[i] += 1;
                }
            }
            rows.push(ControlRow {
                id: c.id.clone(),
                title: c.title.clone(),
                category: category.to_string(),
                severity: format!("{:?}", c.severity).to_lowercase(),
                state: state_view(s),
                basis: crate::web::BasisKind::of(c.evidence_kinds()).as_str(),
                summary: l.map(|r| r.summary.clone()).unwrap_or_default(),
                checked: l.map(|r| time(r.evaluated_at)),
            });
        }
    }
    rows.sort_by_key(|r| r.state.key.rank());
    let (problems, healthy): (Vec<ControlRow>, Vec<ControlRow>) =
        rows.into_iter().partition(|r| r.state.key.is_problem());
    let first_day = now.date_naive() - Duration::days(i64::from(HISTORY_DAYS) - 1);
    let notifications = match state.store.notify_overview().await {
        Ok(o) => NotifyView::of(o),
        Err(e) => return Ok(store_error(&state, &staff, &e)),
    };
    let body = Overview {
        notifications,
        problems,
        healthy,
        categories: categories.into_values().collect(),
        frameworks: frameworks.into_values().collect(),
        trend: charts::trend(
            first_day,
            &passing_by_day,
            totals.total,
            "Controls passing all day",
        ),
        totals,
    };
    Ok(render(
        &state,
        "dashboard/overview",
        &Page::staff(&staff, "overview", "Overview", body),
        StatusCode::OK,
    ))
}

#[derive(Debug, Deserialize)]
pub struct ResourceQuery {
    id: Option<String>,
}

#[derive(Debug, Serialize)]
struct ResourcePage {
    id: String,
    rows: Vec<ResourceRow>,
    matches: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ResourceRow {
    control_id: String,
    control_title: String,
    status: String,
    message: String,
    checked: Time,
}

pub async fn resource(
    state: web::Data<WebState>,
    staff: Staff,
    query: web::Query<ResourceQuery>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Read)?;
    let id = query.id.clone().unwrap_or_default().trim().to_string();
    let catalog = &state.site.inputs().catalog;
    let (rows, matches) = if id.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let found = match state.store.resource_findings(&id).await {
            Ok(f) => f,
            Err(e) => return Ok(store_error(&state, &staff, &e)),
        };
        let matches = if found.is_empty() {
            state
                .store
                .search_resources(&id, 50)
                .await
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let rows = found
            .into_iter()
            .map(|f| ResourceRow {
                control_title: catalog
                    .get(&f.finding.control_id)
                    .map_or_else(|| f.finding.control_id.clone(), |c| c.title.clone()),
                control_id: f.finding.control_id,
                status: f.finding.status.as_str().to_string(),
                message: f.finding.message,
                checked: time(f.evaluated_at),
            })
            .collect();
        (rows, matches)
    };
    let title = if id.is_empty() {
        "Resources".to_string()
    } else {
        id.clone()
    };
    Ok(render(
        &state,
        "dashboard/resource",
        &Page::staff(
            &staff,
            "overview",
            title,
            ResourcePage { id, rows, matches },
        ),
        StatusCode::OK,
    ))
}

#[derive(Debug, Serialize)]
struct RunRow {
    id: String,
    trigger: String,
    state: String,
    started: Time,
    duration: String,
    done: usize,
    total: usize,
    /// While a run is still collecting: sources collected of those planned.
    collecting: Option<Collecting>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Collecting {
    done: usize,
    total: usize,
}

fn duration_text(start: DateTime<Utc>, end: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let d = end.unwrap_or(now) - start;
    let ms = d.num_milliseconds().max(0);
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 120_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, (ms / 1000) % 60)
    }
}

fn run_row(r: &crate::store::RunSummary, now: DateTime<Utc>) -> RunRow {
    RunRow {
        id: r.id.clone(),
        trigger: r.trigger.as_str().to_string(),
        state: r.state.as_str().to_string(),
        started: time(r.started_at),
        duration: duration_text(r.started_at, r.finished_at, now),
        done: r.controls_done,
        total: r.controls_total,
        collecting: match r.collections_total {
            Some(total)
                if r.state == crate::model::RunState::Running && r.collections_done < total =>
            {
                Some(Collecting {
                    done: r.collections_done,
                    total,
                })
            }
            _ => None,
        },
        error: r.error.clone(),
    }
}

#[derive(Deserialize)]
pub struct RunsQuery {
    /// What a "run now" that did not start a run ran into.
    done: Option<String>,
}

pub async fn runs(
    state: web::Data<WebState>,
    staff: Staff,
    query: web::Query<RunsQuery>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Read)?;
    let flash = match query.done.as_deref() {
        Some("already-running") => Some(
            "That control is being evaluated already (a run is in progress), so no second run was started."
                .to_string(),
        ),
        Some("not-recorded") => Some(
            "The run was not recorded within 10 seconds: it is still starting, or it failed before it was recorded (the server log says why).".to_string(),
        ),
        _ => None,
    };
    let now = state.clock.now();
    let list = match state.store.runs(100).await {
        Ok(l) => l,
        Err(e) => return Ok(store_error(&state, &staff, &e)),
    };
    let running = list
        .iter()
        .any(|r| r.state == crate::model::RunState::Running);
    #[derive(Serialize)]
    struct Body {
        runs: Vec<RunRow>,
        running: bool,
        can_export: bool,
        export_from: String,
        export_to: String,
    }
    let today = now.date_naive();
    let body = Body {
        runs: list.iter().map(|r| run_row(r, now)).collect(),
        running,
        can_export: staff.user.role.can(Permission::Export),
        export_from: (today - Duration::days(90)).to_string(),
        export_to: today.to_string(),
    };
    // No automatic refresh (timing the reader does not control fails WCAG 2.2.1): the page
    // says a run is in progress and offers to refresh.
    let page = Page::staff(&staff, "runs", "Runs", body).flash(flash);
    Ok(render(&state, "dashboard/runs", &page, StatusCode::OK))
}

#[derive(Debug, Serialize)]
struct ChangeRow {
    control_id: String,
    control_title: String,
    resource: String,
}

#[derive(Debug, Serialize)]
struct RunPage {
    run: RunRow,
    /// The viewer may cancel it: it is running, no cancel was asked for, and the viewer
    /// reviews.
    can_cancel: bool,
    /// Who asked for it to be cancelled (while it stops).
    cancel_requested_by: Option<String>,
    /// Its units of work, when it went through the run queue (`serve`).
    units: Vec<UnitRow>,
    results: Vec<RunResultRow>,
    probe_errors: Vec<ProbeErrorRow>,
    new_failures: Vec<ChangeRow>,
    reopened: Vec<ChangeRow>,
    fixed: Vec<ChangeRow>,
}

#[derive(Debug, Serialize)]
struct RunResultRow {
    control_id: String,
    control_title: String,
    status: String,
    summary: String,
}

#[derive(Debug, Serialize)]
struct ProbeErrorRow {
    probe: String,
    params: String,
    error: String,
}

/// One unit of a queued run: which instance holds or held it, and how it ended.
#[derive(Debug, Serialize)]
struct UnitRow {
    unit: i32,
    controls: usize,
    state: String,
    owner: String,
    attempts: i32,
    error: String,
}

pub async fn run(
    state: web::Data<WebState>,
    staff: Staff,
    path: web::Path<String>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Read)?;
    let now = state.clock.now();
    let summary = match state.store.run(&path).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return Ok(message(
                &state,
                Some(&staff),
                StatusCode::NOT_FOUND,
                "No such run",
                "There is no run with that id.",
            ));
        }
        Err(e) => return Ok(store_error(&state, &staff, &e)),
    };
    let results = match state.store.run_results(&summary.id).await {
        Ok(r) => r,
        Err(e) => return Ok(store_error(&state, &staff, &e)),
    };
    let evidence = match state.store.run_evidence(&summary.id).await {
        Ok(e) => e,
        Err(e) => return Ok(store_error(&state, &staff, &e)),
    };
    let units = match state.store.run_units(&summary.id).await {
        Ok(units) => units
            .into_iter()
            .map(|u| UnitRow {
                unit: u.unit,
                controls: serde_json::from_str::<Vec<String>>(&u.controls).map_or(0, |c| c.len()),
                state: u.state,
                owner: u.owner.unwrap_or_default(),
                attempts: u.attempts,
                error: u.error.unwrap_or_default(),
            })
            .collect(),
        Err(e) => return Ok(store_error(&state, &staff, &e)),
    };
    let catalog = &state.site.inputs().catalog;
    let title_of = |id: &str| {
        catalog
            .get(id)
            .map_or_else(|| id.to_string(), |c| c.title.clone())
    };
    let (mut new_failures, mut reopened, mut fixed) = (Vec::new(), Vec::new(), Vec::new());
    for r in &results {
        let history = match state
            .store
            .findings_history(&r.control_id, 30, Some(r.evaluated_at))
            .await
        {
            Ok(h) => h,
            Err(e) => return Ok(store_error(&state, &staff, &e)),
        };
        // The history up to this result, this result first.
        let from = history
            .iter()
            .position(|h| h.result_id == r.id)
            .unwrap_or(0);
        let changes = crate::store::finding_changes(&history[from..]);
        let row = |resource: String| ChangeRow {
            control_id: r.control_id.clone(),
            control_title: title_of(&r.control_id),
            resource,
        };
        new_failures.extend(changes.new_failures.into_iter().map(row));
        reopened.extend(changes.reopened.into_iter().map(row));
        fixed.extend(changes.fixed.into_iter().map(row));
    }
    let body = RunPage {
        run: run_row(&summary, now),
        can_cancel: summary.state == crate::model::RunState::Running
            && summary.cancel_requested_by.is_none()
            && staff.user.role.can(Permission::Review),
        cancel_requested_by: summary.cancel_requested_by.clone(),
        units,
        results: results
            .iter()
            .map(|r| RunResultRow {
                control_id: r.control_id.clone(),
                control_title: title_of(&r.control_id),
                status: r.status.as_str().to_string(),
                summary: r.summary.clone(),
            })
            .collect(),
        probe_errors: evidence
            .into_iter()
            .filter_map(|e| {
                e.error.map(|error| ProbeErrorRow {
                    probe: e.probe,
                    params: e.params,
                    error,
                })
            })
            .collect(),
        new_failures,
        reopened,
        fixed,
    };
    let short = summary.id.get(..8).unwrap_or(&summary.id);
    let page = Page::staff(&staff, "runs", format!("Run {short}"), body);
    Ok(render(&state, "dashboard/run", &page, StatusCode::OK))
}

/// Longest evidence shown inline.
const MAX_EVIDENCE_SHOWN: usize = 2 * 1024 * 1024;

pub async fn evidence(
    state: web::Data<WebState>,
    staff: Staff,
    path: web::Path<i64>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::ReadEvidence)?;
    let id = path.into_inner();
    let (meta, content) = match (
        state.store.evidence_meta(id).await,
        state.store.evidence(id).await,
    ) {
        (Ok(Some(m)), Ok(Some(c))) => (m, c),
        (Ok(None), _) | (_, Ok(None)) => {
            return Ok(message(
                &state,
                Some(&staff),
                StatusCode::NOT_FOUND,
                "No such evidence",
                "There is no evidence with that id.",
            ));
        }
        (Err(e), _) | (_, Err(e)) => return Ok(store_error(&state, &staff, &e)),
    };
    let bytes = serde_json::to_vec(&content.content).unwrap_or_default();
    let recomputed = hex::encode(Sha256::digest(&bytes));
    let mut pretty = serde_json::to_string_pretty(&content.content).unwrap_or_default();
    let truncated = pretty.len() > MAX_EVIDENCE_SHOWN;
    if truncated {
        let mut cut = MAX_EVIDENCE_SHOWN;
        while !pretty.is_char_boundary(cut) {
            cut -= 1;
        }
        pretty.truncate(cut);
    }
    #[derive(Serialize)]
    struct Body {
        id: i64,
        run_id: String,
        probe: String,
        params: String,
        collected: Time,
        sha256: String,
        verified: bool,
        error: Option<String>,
        json: String,
        truncated: bool,
        size: usize,
    }
    let body = Body {
        id,
        run_id: meta.run_id,
        probe: meta.probe,
        params: meta.params,
        collected: time(meta.collected_at),
        verified: recomputed == meta.sha256,
        sha256: meta.sha256,
        error: meta.error,
        json: pretty,
        truncated,
        size: bytes.len(),
    };
    Ok(render(
        &state,
        "dashboard/evidence",
        &Page::staff(&staff, "runs", format!("Evidence {id}"), body),
        StatusCode::OK,
    ))
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    action: Option<String>,
    page: Option<u64>,
}

const AUDIT_PAGE: u64 = 100;

pub async fn audit(
    state: web::Data<WebState>,
    staff: Staff,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::ReadEvidence)?;
    let page_no = query.page.unwrap_or(1).max(1);
    let action = query.action.clone().unwrap_or_default();
    let entries = match state
        .store
        .audit_log(Some(&action), AUDIT_PAGE + 1, (page_no - 1) * AUDIT_PAGE)
        .await
    {
        Ok(e) => e,
        Err(e) => return Ok(store_error(&state, &staff, &e)),
    };
    #[derive(Serialize)]
    struct Row {
        at: Time,
        actor: String,
        action: String,
        target: String,
        detail: String,
        client_ip: String,
    }
    #[derive(Serialize)]
    struct Body {
        rows: Vec<Row>,
        action: String,
        page: u64,
        previous: Option<u64>,
        next: Option<u64>,
    }
    let more = entries.len() as u64 > AUDIT_PAGE;
    let body = Body {
        rows: entries
            .into_iter()
            .take(AUDIT_PAGE as usize)
            .map(|e| Row {
                at: time(e.at),
                actor: e.actor,
                action: e.action,
                target: e.target,
                detail: if e.detail == serde_json::json!({}) {
                    String::new()
                } else {
                    e.detail.to_string()
                },
                client_ip: e.client_ip.unwrap_or_default(),
            })
            .collect(),
        action,
        page: page_no,
        previous: (page_no > 1).then(|| page_no - 1),
        next: more.then_some(page_no + 1),
    };
    Ok(render(
        &state,
        "dashboard/audit",
        &Page::staff(&staff, "audit", "Audit log", body),
        StatusCode::OK,
    ))
}
