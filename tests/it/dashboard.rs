//! The dashboards and the authenticated API, end to end over HTTP: every route in the route
//! table refuses anonymous requests and roles below its own; sign-in with throttling, session
//! timeouts, CSRF and origin checks, two-step verification (a password alone is not enough),
//! API tokens, exceptions approved by a second person and applied by the next run, and the
//! audit log of all of it.

use crate::common::app;

use std::sync::Arc;

use app::{ManualClock, TestApp, client, example_now, spawn_app_with_clock};
use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use trellis::auth::{Permission, Role, totp};
use trellis::scheduler::Clock as _;
use trellis::web::dashboard::{Access, Kind, ROUTES};

pub(crate) use crate::common::staff::{PASSWORD, add_user};

/// A signed-in browser: its session cookie and CSRF token.
#[derive(Clone)]
pub(crate) struct Browser {
    pub(crate) address: String,
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

impl Browser {
    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        client()
            .get(format!("{}{path}", self.address))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut fields: Vec<(&str, &str)> = vec![("csrf", self.csrf.as_str())];
        fields.extend_from_slice(form);
        client()
            .post(format!("{}{path}", self.address))
            .header("cookie", &self.cookie)
            .header("origin", &self.address)
            .form(&fields)
            .send()
            .await
            .unwrap()
    }
}

pub(crate) async fn try_login(app: &TestApp, name: &str, password: &str) -> reqwest::Response {
    client()
        .post(format!("{}/dashboard/login", app.address))
        .header("origin", &app.address)
        .form(&[
            ("username", name),
            ("password", password),
            ("next", "/dashboard"),
        ])
        .send()
        .await
        .unwrap()
}

pub(crate) fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("trellis_session=") && !c.contains("Max-Age=0"))
        .map(|c| c.split(';').next().unwrap().to_string())
}

pub(crate) fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .to_string()
}

/// Signs in (password only: for users without a second factor).
pub(crate) async fn login(app: &TestApp, name: &str) -> Browser {
    let resp = try_login(app, name, PASSWORD).await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "{name} could not sign in"
    );
    let cookie = session_cookie(&resp).expect("a session cookie");
    let mut b = Browser {
        address: app.address.clone(),
        cookie,
        csrf: String::new(),
    };
    let page = b.get("/dashboard/account").await.text().await.unwrap();
    b.csrf = csrf_of(&page);
    assert!(!b.csrf.is_empty(), "no csrf token on the account page");
    b
}

async fn spawn() -> (TestApp, Arc<ManualClock>) {
    let clock = ManualClock::new(example_now());
    let app = spawn_app_with_clock(&[], clock.clone()).await;
    for (name, role) in [
        ("ada", Role::Admin),
        ("sam", Role::Security),
        ("sec2", Role::Security),
        ("aud", Role::Auditor),
        ("vic", Role::Viewer),
    ] {
        add_user(&app, name, role).await;
    }
    (app, clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_internal_route_refuses_anonymous_access_and_lower_roles() {
    let (app, _) = spawn().await;
    let c = client();
    // Anonymous: pages redirect to sign-in, the API answers 401 — for every protected route.
    for r in ROUTES.iter().filter(|r| r.access != Access::Public) {
        let url = format!("{}{}", app.address, r.example);
        let resp = match r.method {
            "get" => c.get(&url).send().await.unwrap(),
            _ => c
                .post(&url)
                .header("origin", &app.address)
                .send()
                .await
                .unwrap(),
        };
        match r.kind {
            Kind::Api => {
                assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{r:?}");
                assert!(resp.headers().contains_key("www-authenticate"), "{r:?}");
            }
            Kind::Page => {
                assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{r:?}");
                let to = resp.headers()["location"].to_str().unwrap();
                assert!(to.starts_with("/dashboard/login"), "{r:?} → {to}");
            }
        }
        // A made-up token or cookie is no better.
        let forged = match r.method {
            "get" => c.get(&url),
            _ => c.post(&url).header("origin", &app.address),
        };
        let resp = forged
            .header("authorization", "Bearer trellis_not-a-token")
            .header("cookie", "trellis_session=forged")
            .send()
            .await
            .unwrap();
        assert!(
            matches!(
                resp.status(),
                StatusCode::UNAUTHORIZED | StatusCode::SEE_OTHER
            ),
            "{r:?}: {}",
            resp.status()
        );
    }

    // Each role: allowed routes do not answer 403; routes above the role do.
    let browsers = [
        (Role::Admin, login(&app, "ada").await),
        (Role::Security, login(&app, "sam").await),
        (Role::Auditor, login(&app, "aud").await),
        (Role::Viewer, login(&app, "vic").await),
    ];
    for (role, browser) in &browsers {
        // API tokens, created through the dashboard like a user would.
        let token = new_api_token(browser, "route test").await;
        for r in ROUTES {
            let Access::Role(permission) = r.access else {
                continue;
            };
            let allowed = role.can(permission);
            let status = match (r.kind, r.method) {
                (Kind::Page, "get") => browser.get(r.example).await.status(),
                (Kind::Page, _) => browser.post(r.example, &[]).await.status(),
                (Kind::Api, "get") => c
                    .get(format!("{}{}", app.address, r.example))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .status(),
                (Kind::Api, _) => c
                    .post(format!("{}{}", app.address, r.example))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({}))
                    .send()
                    .await
                    .unwrap()
                    .status(),
            };
            if allowed {
                assert_ne!(status, StatusCode::FORBIDDEN, "{role} should reach {r:?}");
                assert!(!status.is_server_error(), "{role} {r:?}: {status}");
                assert_ne!(status, StatusCode::UNAUTHORIZED, "{role} {r:?}");
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{role} must not reach {r:?}");
            }
        }
    }
    // The registry agrees with the roles' permissions: the viewer reads, only admins administer.
    assert!(Role::Viewer.can(Permission::Read) && !Role::Security.can(Permission::Administer));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_for_an_admin() {
    let (app, _) = spawn().await;
    let ada = login(&app, "ada").await;
    let runs = app.store.runs(1).await.unwrap();
    let run = &runs[0].id;
    let detail = app
        .store
        .latest_result("background-checks")
        .await
        .unwrap()
        .unwrap();
    let evidence = detail.evidence_ids[0];
    for (path, expect) in [
        ("/dashboard", "Needs review"),
        ("/dashboard/controls/background-checks", "hr:E1021"),
        (
            "/dashboard/controls/background-checks?status=fail&sort=resource",
            "hr:E1021",
        ),
        ("/dashboard/resources?id=hr:E1021", "Background Checks"),
        ("/dashboard/resources?id=E102", "hr:E1021"),
        ("/dashboard/runs", "startup"),
        (&format!("/dashboard/runs/{run}"), "New failures"),
        (
            &format!("/dashboard/evidence/{evidence}"),
            "matches the content",
        ),
        ("/dashboard/exceptions", "EXC-2026-004"),
        ("/dashboard/access", "No requests."),
        ("/dashboard/audit", "user.add"),
        ("/dashboard/visitors", "Page views, last 90 days"),
        ("/dashboard/account", "API tokens"),
        ("/dashboard/users", "Two-step verification requirement"),
    ] {
        let resp = ada.get(path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(resp.headers()["cache-control"], "no-store", "{path}");
        let html = resp.text().await.unwrap();
        assert!(html.contains(expect), "{path} lacks {expect}");
        assert!(!html.contains("<script"), "{path}");
    }
    // The control page shows the definition as loaded and the raw evidence's hash.
    let html = ada
        .get("/dashboard/controls/background-checks")
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("id: background-checks"));
    assert!(html.contains("Run now"));
    // What backs the verdict, as the trust page says it, and each check's evidence kind.
    assert!(
        html.contains("Claim: <strong>procedure</strong> · Basis: <strong>recorded</strong> — Recorded by the team (HR roster)"),
        "no basis on the control page"
    );
    assert!(html.contains("<td><code>hr.people</code></td><td>record</td>"));
    let html = ada
        .get("/dashboard/controls/encryption-in-transit")
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(
        "Basis: <strong>monitored</strong> — Monitored automatically (public endpoints, AWS)"
    ));
    assert!(html.contains("<td><code>http.tls</code></td><td>system</td>"));
    // No `sources.http` in this config: the endpoints check is an error saying so.
    assert!(html.contains("is not configured"), "{html}");
    let overview = ada.get("/dashboard").await.text().await.unwrap();
    assert!(overview.contains("<th scope=\"col\">Basis</th>"));
    let evidence_page = ada
        .get(&format!("/dashboard/evidence/{evidence}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(evidence_page.contains("SHA-256"));
}

/// How many controls the overview's chart counts as passing all day today.
fn passing_today(overview: &str) -> usize {
    overview
        .split("Controls passing all day over the last 90 days: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no trend summary in {overview}"))
}

/// The overview's "Needs review" table.
fn needs_review(overview: &str) -> &str {
    overview
        .split("Needs review")
        .nth(1)
        .and_then(|s| s.split("Other controls").next())
        .unwrap_or_default()
}

/// A result of `control` failing at `at`, stored in a run of its own.
async fn store_failure(store: &trellis::store::Store, control: &str, at: DateTime<Utc>) {
    use trellis::model::{ControlOutcome, Status, Trigger};
    let run = store
        .begin_run(Trigger::Manual, 1, at)
        .await
        .expect("begin run");
    let outcome = ControlOutcome {
        control_id: control.to_string(),
        status: Status::Fail,
        summary: format!("{control} fails now"),
        evaluated_at: at,
        definition_sha256: "ab".repeat(32),
        checks: vec![],
        findings: vec![],
        exceptions: vec![],
    };
    store
        .record_result(&run, &outcome, &[])
        .await
        .expect("record result");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_shows_a_new_result_at_once_whoever_stored_it() {
    let (app, clock) = spawn().await;
    let vic = login(&app, "vic").await;
    let passing: Vec<String> = app
        .store
        .latest_results()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.status == trellis::model::Status::Pass)
        .map(|r| r.control_id)
        .collect();
    assert!(passing.len() >= 2, "two passing controls to fail");
    let first = vic.get("/dashboard").await.text().await.unwrap();
    let before = passing_today(&first);
    assert!(before >= 2, "{before} passing today");
    // Read twice: the second answer is the history kept from the first, and the same.
    let again = vic.get("/dashboard").await.text().await.unwrap();
    assert_eq!(passing_today(&again), before);

    // A failure stored by this process, a minute later.
    clock.advance(Duration::minutes(1));
    store_failure(&app.store, &passing[0], clock.now()).await;
    let html = vic.get("/dashboard").await.text().await.unwrap();
    assert_eq!(passing_today(&html), before - 1, "this process's result");
    let review = needs_review(&html);
    assert!(review.contains(&format!("/dashboard/controls/{}\"", passing[0])));

    // One stored by another instance on the same database: nothing tells this process but
    // the database itself.
    clock.advance(Duration::minutes(1));
    let other = trellis::store::Store::connect(&app.loaded.config.database_url)
        .await
        .expect("another connection");
    store_failure(&other, &passing[1], clock.now()).await;
    let html = vic.get("/dashboard").await.text().await.unwrap();
    assert_eq!(
        passing_today(&html),
        before - 2,
        "another instance's result"
    );
    let review = needs_review(&html);
    assert!(review.contains(&format!("/dashboard/controls/{}\"", passing[1])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_is_throttled_per_account_and_audited() {
    let (app, _) = spawn().await;
    for _ in 0..5 {
        assert_eq!(
            try_login(&app, "sam", "wrong password here").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Locked: even the right password is refused for now, with Retry-After.
    let locked = try_login(&app, "sam", PASSWORD).await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(locked.headers()["retry-after"], "900");
    assert!(session_cookie(&locked).is_none());
    // Other accounts still work; unknown users get the same answer as wrong passwords.
    let unknown = try_login(&app, "nobody", PASSWORD).await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert!(
        unknown
            .text()
            .await
            .unwrap()
            .contains("The user name or password is not right.")
    );
    let ada = login(&app, "ada").await;
    let audit = ada
        .get("/dashboard/audit?action=login")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        audit.contains("login.failure")
            && audit.contains("login.throttled")
            && audit.contains("login.success")
    );
    assert!(audit.contains("127.0.0.1"), "from where");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_is_throttled_per_address() {
    let clock = ManualClock::new(example_now());
    let app = spawn_app_with_clock(
        &[("TRELLIS__DASHBOARD__MAX_FAILED_LOGINS_PER_IP", "3")],
        clock,
    )
    .await;
    add_user(&app, "sam", Role::Security).await;
    for name in ["x1", "x2", "x3"] {
        assert_eq!(
            try_login(&app, name, "whatever password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        try_login(&app, "sam", PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_when_idle_and_after_the_absolute_timeout() {
    let (app, clock) = spawn().await;
    let sam = login(&app, "sam").await;
    assert_eq!(sam.get("/dashboard").await.status(), StatusCode::OK);
    // Active every 20 minutes: the 30-minute idle timeout does not end it…
    for _ in 0..3 {
        clock.advance(Duration::minutes(20));
        assert_eq!(sam.get("/dashboard/runs").await.status(), StatusCode::OK);
    }
    // …but 31 quiet minutes do.
    clock.advance(Duration::minutes(31));
    let resp = sam.get("/dashboard").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/dashboard/login")
    );
    // A busy session still ends 12 hours after sign-in.
    let sam = login(&app, "sam").await;
    for _ in 0..(12 * 3) {
        clock.advance(Duration::minutes(20));
        let _ = sam.get("/dashboard/runs").await;
    }
    clock.advance(Duration::minutes(1));
    assert_eq!(sam.get("/dashboard").await.status(), StatusCode::SEE_OTHER);
    // Signing out ends it at once.
    let sam = login(&app, "sam").await;
    let out = sam.post("/dashboard/logout", &[]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(sam.get("/dashboard").await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_need_the_csrf_token_and_our_origin() {
    let (app, _) = spawn().await;
    let sam = login(&app, "sam").await;
    let form = [
        ("control", "background-checks"),
        ("resources", "hr:E1021"),
        ("reason", "Check ordered"),
        ("owner", "sam"),
        ("ticket", "SEC-1"),
        ("expires_on", "2026-12-31"),
    ];
    // No token, a wrong token, another site's origin: refused, nothing stored.
    let no_token = client()
        .post(format!("{}/dashboard/exceptions", app.address))
        .header("cookie", &sam.cookie)
        .header("origin", &app.address)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    let mut wrong = sam.clone();
    wrong.csrf = "0".repeat(52);
    assert_eq!(
        wrong.post("/dashboard/exceptions", &form).await.status(),
        StatusCode::FORBIDDEN
    );
    let mut fields = vec![("csrf", sam.csrf.as_str())];
    fields.extend_from_slice(&form);
    let foreign = client()
        .post(format!("{}/dashboard/exceptions", app.address))
        .header("cookie", &sam.cookie)
        .header("origin", "https://evil.example")
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    assert!(app.store.managed_exceptions().await.unwrap().is_empty());
    // With both: accepted.
    assert_eq!(
        sam.post("/dashboard/exceptions", &form).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.store.managed_exceptions().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_a_second_factor_cannot_sign_in_with_the_password_alone() {
    let (app, clock) = spawn().await;
    // Enrol through the pages, as a user would.
    let sam = login(&app, "sam").await;
    let enrol = sam
        .get("/dashboard/account/mfa")
        .await
        .text()
        .await
        .unwrap();
    assert!(enrol.contains("<svg"), "the QR code is shown");
    let secret = enrol
        .split("<code class=\"dash-secret\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .to_string();
    let unix = |t: chrono::DateTime<chrono::Utc>| u64::try_from(t.timestamp()).unwrap();
    let code = totp::code(&secret, unix(app.now)).unwrap();
    let done = sam
        .post("/dashboard/account/mfa", &[("code", "000000")])
        .await;
    assert_eq!(
        done.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "a wrong code does not enrol"
    );
    let done = sam
        .post("/dashboard/account/mfa", &[("code", &code)])
        .await
        .text()
        .await
        .unwrap();
    let recovery: Vec<String> = done
        .split("<li><code>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().to_string())
        .collect();
    assert_eq!(recovery.len(), 10, "recovery codes are shown once");

    // Now the password alone only opens the second-factor step.
    clock.advance(Duration::minutes(1));
    let resp = try_login(&app, "sam", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/dashboard/login/mfa")
    );
    let partial = Browser {
        address: app.address.clone(),
        cookie: session_cookie(&resp).unwrap(),
        csrf: String::new(),
    };
    for path in [
        "/dashboard",
        "/dashboard/controls/background-checks",
        "/dashboard/account",
    ] {
        let r = partial.get(path).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.headers()["location"], "/dashboard/login/mfa", "{path}");
    }
    let api = client()
        .get(format!("{}/api/v1/controls", app.address))
        .header("cookie", &partial.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED, "nor the API");
    let mfa_page = partial
        .get("/dashboard/login/mfa")
        .await
        .text()
        .await
        .unwrap();
    let partial = Browser {
        csrf: csrf_of(&mfa_page),
        ..partial
    };
    assert_eq!(
        partial
            .post(
                "/dashboard/login/mfa",
                &[("code", "123456"), ("next", "/dashboard")]
            )
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // The code already used at enrolment is refused (no replay); a fresh one works.
    assert_eq!(
        partial
            .post(
                "/dashboard/login/mfa",
                &[("code", &code), ("next", "/dashboard")]
            )
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    clock.advance(Duration::seconds(30));
    let fresh = totp::code(
        &secret,
        unix(example_now() + Duration::minutes(1) + Duration::seconds(30)),
    )
    .unwrap();
    let ok = partial
        .post(
            "/dashboard/login/mfa",
            &[("code", &fresh), ("next", "/dashboard/runs")],
        )
        .await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(ok.headers()["location"], "/dashboard/runs");
    assert_eq!(partial.get("/dashboard").await.status(), StatusCode::OK);

    // A recovery code works once.
    let again = try_login(&app, "sam", PASSWORD).await;
    let b = Browser {
        address: app.address.clone(),
        cookie: session_cookie(&again).unwrap(),
        csrf: String::new(),
    };
    let page = b.get("/dashboard/login/mfa").await.text().await.unwrap();
    let b = Browser {
        csrf: csrf_of(&page),
        ..b
    };
    assert_eq!(
        b.post(
            "/dashboard/login/mfa",
            &[("code", &recovery[0]), ("next", "/dashboard")]
        )
        .await
        .status(),
        StatusCode::SEE_OTHER
    );
    let again = try_login(&app, "sam", PASSWORD).await;
    let b = Browser {
        address: app.address.clone(),
        cookie: session_cookie(&again).unwrap(),
        csrf: String::new(),
    };
    let page = b.get("/dashboard/login/mfa").await.text().await.unwrap();
    let b = Browser {
        csrf: csrf_of(&page),
        ..b
    };
    assert_eq!(
        b.post(
            "/dashboard/login/mfa",
            &[("code", &recovery[0]), ("next", "/dashboard")]
        )
        .await
        .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_can_require_a_second_factor_for_a_role() {
    let (app, _) = spawn().await;
    let ada = login(&app, "ada").await;
    let resp = ada
        .post("/dashboard/settings/mfa", &[("role", "security")])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    // Security users without a second factor can only enrol…
    let resp = try_login(&app, "sam", PASSWORD).await;
    let sam = Browser {
        address: app.address.clone(),
        cookie: session_cookie(&resp).unwrap(),
        csrf: String::new(),
    };
    let r = sam.get("/dashboard").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/dashboard/account/mfa");
    let enrol = sam
        .get("/dashboard/account/mfa")
        .await
        .text()
        .await
        .unwrap();
    assert!(enrol.contains("requires two-step verification"));
    // …viewers are not concerned.
    let vic = login(&app, "vic").await;
    assert_eq!(vic.get("/dashboard").await.status(), StatusCode::OK);
    let audit = ada
        .get("/dashboard/audit?action=settings")
        .await
        .text()
        .await
        .unwrap();
    assert!(audit.contains("settings.change"), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceptions_need_a_second_person_and_apply_at_the_next_run() {
    let (app, _) = spawn().await;
    let sam = login(&app, "sam").await;
    let sec2 = login(&app, "sec2").await;
    // Refused: more than a year out.
    let far = sam
        .post(
            "/dashboard/exceptions",
            &[
                ("control", "background-checks"),
                ("resources", "hr:E1021"),
                ("reason", "r"),
                ("owner", "o"),
                ("ticket", "t"),
                ("expires_on", "2028-01-01"),
            ],
        )
        .await;
    assert_eq!(far.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(far.text().await.unwrap().contains("more than a year out"));
    let created = sam
        .post(
            "/dashboard/exceptions",
            &[
                ("control", "background-checks"),
                ("resources", "hr:E1021"),
                ("reason", "Check ordered, results due"),
                ("owner", "sam"),
                ("ticket", "SEC-900"),
                ("expires_on", "2026-12-31"),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let id = app.store.managed_exceptions().await.unwrap()[0].id.clone();
    // Its creator cannot approve it.
    let own = sam
        .post(&format!("/dashboard/exceptions/{id}/approve"), &[])
        .await;
    assert_eq!(own.status(), StatusCode::CONFLICT);
    assert!(
        own.text()
            .await
            .unwrap()
            .contains("someone else must approve it")
    );
    // Pending: the next run does not apply it.
    let run_now = |b: Browser| async move {
        b.post("/dashboard/controls/background-checks/run", &[])
            .await
    };
    let started = run_now(sam.clone()).await;
    assert_eq!(started.status(), StatusCode::SEE_OTHER);
    // Straight to the run, which is recorded by the time the answer comes.
    let to = started.headers()["location"].to_str().unwrap().to_string();
    let run_id = to
        .strip_prefix("/dashboard/runs/")
        .unwrap_or_else(|| panic!("run now went to {to}"));
    let run = app
        .store
        .run(run_id)
        .await
        .unwrap()
        .expect("the run is recorded");
    assert_eq!(run.trigger, trellis::model::Trigger::Manual);
    let page = sam.get(&to).await.text().await.unwrap();
    assert!(page.contains("manual"), "{page}");
    let busy = sam.get("/dashboard/runs?done=already-running").await;
    assert!(
        busy.text()
            .await
            .unwrap()
            .contains("no second run was started")
    );
    wait_for_results(&app, "background-checks", 2).await;
    let result = app
        .store
        .latest_result("background-checks")
        .await
        .unwrap()
        .unwrap();
    assert!(result.exceptions.iter().all(|e| e.id != id));
    // Approved by another: the next run waives the finding, naming the exception.
    assert_eq!(
        sec2.post(&format!("/dashboard/exceptions/{id}/approve"), &[])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(run_now(sec2.clone()).await.status(), StatusCode::SEE_OTHER);
    wait_for_results(&app, "background-checks", 3).await;
    let result = app
        .store
        .latest_result("background-checks")
        .await
        .unwrap()
        .unwrap();
    let used = result
        .exceptions
        .iter()
        .find(|e| e.id == id)
        .expect("the exception is used");
    assert_eq!(used.status, "applied");
    assert_eq!(used.resources, ["hr:E1021"]);
    let findings = app
        .store
        .latest_findings("background-checks")
        .await
        .unwrap();
    let e1021 = findings.iter().find(|f| f.resource == "hr:E1021").unwrap();
    assert_eq!(e1021.status, trellis::model::Status::Waived);
    // Ended: no longer applies.
    assert_eq!(
        sam.post(&format!("/dashboard/exceptions/{id}/end"), &[])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let listed = sam.get("/dashboard/exceptions").await.text().await.unwrap();
    assert!(listed.contains("state--ended"));
    let audit = app.store.audit_log(Some("exception"), 10, 0).await.unwrap();
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|a| (a.action.as_str(), a.actor.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("exception.end", "sam"),
            ("exception.approve", "sec2"),
            ("exception.create", "sam")
        ]
    );
}

/// Waits until `control` has `n` stored results.
async fn wait_for_results(app: &TestApp, control: &str, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let have = app
            .store
            .findings_history(control, 10, None)
            .await
            .unwrap()
            .len();
        if have >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{control}: {have} results, waiting for {n}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Creates an API token on the account page; the page shows it once.
pub(crate) async fn new_api_token(browser: &Browser, name: &str) -> String {
    let page = browser
        .post("/dashboard/account/tokens", &[("name", name)])
        .await
        .text()
        .await
        .unwrap();
    page.split("<code class=\"dash-secret\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("the new token is shown once")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_now_through_the_api_answers_with_the_recorded_run() {
    let (app, _) = spawn().await;
    let sam = login(&app, "sam").await;
    let token = new_api_token(&sam, "ci").await;
    let answer = client()
        .post(format!(
            "{}/api/v1/controls/background-checks/run",
            app.address
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    let answer: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(answer["queued"], serde_json::json!(["background-checks"]));
    let run_id = answer["run_id"].as_str().expect("the run's id");
    let run: serde_json::Value = client()
        .get(format!("{}/api/v1/runs/{run_id}", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(run["trigger"], "manual", "{run}");
    wait_for_results(&app, "background-checks", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_uses_tokens_that_can_be_revoked_and_is_documented() {
    let (app, _) = spawn().await;
    let aud = login(&app, "aud").await;
    let token = new_api_token(&aud, "export job").await;
    assert!(token.starts_with("trellis_"));
    let api = |path: &str| {
        client()
            .get(format!("{}{path}", app.address))
            .bearer_auth(&token)
            .send()
    };
    let controls: serde_json::Value = api("/api/v1/controls").await.unwrap().json().await.unwrap();
    assert_eq!(controls.as_array().unwrap().len(), 73);
    let bc = controls
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "background-checks")
        .unwrap();
    assert_eq!(bc["status"], "fail");
    let findings: serde_json::Value = api("/api/v1/findings?control=background-checks&status=fail")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        findings
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["resource"] == "hr:E1021")
    );
    let runs: serde_json::Value = api("/api/v1/runs").await.unwrap().json().await.unwrap();
    assert!(!runs.as_array().unwrap().is_empty());
    // The token is stored hashed: the database never holds it.
    let tokens = app.store.api_tokens(None).await.unwrap();
    assert_eq!(tokens.len(), 1);
    assert!(token.starts_with(&tokens[0].prefix));
    // Revoked: refused at once.
    let id = tokens[0].id.to_string();
    assert_eq!(
        aud.post(&format!("/dashboard/account/tokens/{id}/revoke"), &[])
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        api("/api/v1/controls").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // The OpenAPI document lists every API route of the route table.
    let doc: serde_json::Value = client()
        .get(format!("{}/api/openapi.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for r in ROUTES
        .iter()
        .filter(|r| r.kind == Kind::Api && r.path.starts_with("/api/v1/"))
    {
        let op = &doc["paths"][r.path][r.method];
        assert!(op.is_object(), "{r:?} is not documented");
        assert!(
            !doc["paths"][r.path][r.method]["responses"]
                .as_object()
                .unwrap()
                .is_empty()
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_user_ends_their_sessions_and_tokens() {
    let (app, _) = spawn().await;
    let ada = login(&app, "ada").await;
    let vic = login(&app, "vic").await;
    assert_eq!(vic.get("/dashboard").await.status(), StatusCode::OK);
    assert_eq!(
        ada.post("/dashboard/users/vic/disable", &[]).await.status(),
        StatusCode::OK
    );
    assert_eq!(vic.get("/dashboard").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        try_login(&app, "vic", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Admins cannot lock themselves out.
    let own = ada
        .post("/dashboard/users/ada/disable", &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(own.contains("You cannot disable yourself"));
    let audit = app
        .store
        .audit_log(Some("user.disable"), 10, 0)
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].actor.as_str(), audit[0].target.as_str()),
        ("ada", "user:vic")
    );
    assert_eq!(audit[0].client_ip.as_deref(), Some("127.0.0.1"));
}

/// `trellis user` against the server's database: add (password from standard input), reset,
/// disable, enable — each audited as the login that ran it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_managed_with_the_cli() {
    let (app, _) = spawn().await;
    let trellis = |args: &[&str], stdin: &str| {
        use std::io::Write as _;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_trellis"))
            .current_dir(app::repo())
            .env("TRELLIS__DATABASE_URL", &app.loaded.config.database_url)
            .env("TRELLIS_USER", "ops")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, out) = trellis(
        &[
            "user",
            "add",
            "grace",
            "--role",
            "auditor",
            "--display-name",
            "Grace Hopper",
        ],
        "short\n",
    );
    assert_eq!(code, Some(2));
    assert!(out.contains("at least 12 characters"), "{out}");
    let (code, out) = trellis(
        &["user", "add", "Grace!", "--role", "auditor"],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(code, Some(2), "{out}");
    let (code, out) = trellis(
        &[
            "user",
            "add",
            "grace",
            "--role",
            "auditor",
            "--display-name",
            "Grace Hopper",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = trellis(
        &["user", "add", "grace", "--role", "viewer"],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(code, Some(2));
    assert!(out.contains("already exists"), "{out}");
    let grace = login(&app, "grace").await;
    assert_eq!(
        grace.get("/dashboard/audit").await.status(),
        StatusCode::OK,
        "an auditor reads the audit log"
    );
    // Reset: the old password stops working and the session ends.
    let (code, _) = trellis(&["user", "reset", "grace"], "a brand new passphrase\n");
    assert_eq!(code, Some(0));
    assert_eq!(
        grace.get("/dashboard").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        try_login(&app, "grace", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        try_login(&app, "grace", "a brand new passphrase")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let (code, _) = trellis(&["user", "disable", "grace"], "");
    assert_eq!(code, Some(0));
    assert_eq!(
        try_login(&app, "grace", "a brand new passphrase")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let (code, out) = trellis(&["user", "list"], "");
    assert_eq!(code, Some(0));
    assert!(out.contains("grace") && out.contains("(disabled)"), "{out}");
    let audit = app.store.audit_log(Some("user."), 20, 0).await.unwrap();
    let by_ops: Vec<&str> = audit
        .iter()
        .filter(|a| a.actor == "ops")
        .map(|a| a.action.as_str())
        .collect();
    assert_eq!(by_ops, ["user.disable", "user.password", "user.add"]);
}

/// Auditors download the evidence bundle from the dashboard; it verifies offline and the
/// download is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditors_download_signed_bundles() {
    let (app, _) = spawn().await;
    let aud = login(&app, "aud").await;
    let page = aud.get("/dashboard/runs").await.text().await.unwrap();
    assert!(page.contains("Export evidence for auditors"));
    let resp = aud
        .get("/dashboard/export?from=2026-11-01&to=2026-11-30&framework=soc2")
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("trellis-evidence-2026-11-01-2026-11-30.zip")
    );
    let bytes = resp.bytes().await.unwrap();
    let (signer, _) = trellis::startup::signing(&app.loaded).unwrap();
    let ok = trellis::export::verify_bundle(
        std::io::Cursor::new(bytes.to_vec()),
        Some(&signer.public_key()),
        &[],
    )
    .unwrap();
    assert!(ok.files > 100);
    let audit = app.store.audit_log(Some("export"), 10, 0).await.unwrap();
    assert_eq!(
        (audit[0].actor.as_str(), audit[0].target.as_str()),
        ("aud", "bundle:2026-11-01..2026-11-30")
    );
    // Viewers cannot export.
    let vic = login(&app, "vic").await;
    assert_eq!(
        vic.get("/dashboard/export?from=2026-11-01&to=2026-11-30")
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert!(
        !vic.get("/dashboard/runs")
            .await
            .text()
            .await
            .unwrap()
            .contains("Export evidence")
    );
}

/// Queues a run of code-of-conduct as another instance would (this one's workers are not woken).
async fn queue_behind_the_workers(app: &TestApp) -> String {
    app.store
        .enqueue_run(
            trellis::model::Trigger::Manual,
            &["code-of-conduct".to_string()],
            &std::collections::HashMap::new(),
            "elsewhere",
            example_now(),
            &|ids: &[String]| vec![ids.to_vec()],
        )
        .await
        .unwrap()
        .run_id
        .unwrap()
}

/// A running run's page offers reviewers "Cancel run"; posting it records the request (audited),
/// the page says who asked, and the queue closes the run `cancelled`. Viewers see no button.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_run_is_cancelled_from_its_page() {
    let clock = ManualClock::new(example_now());
    // Idle workers look for work only hourly here, so a run queued behind their back stays
    // queued until it is cancelled; the reaper runs every second.
    let app = spawn_app_with_clock(
        &[
            ("TRELLIS__LIMITS__QUEUE_POLL", "1h"),
            ("TRELLIS__LIMITS__LEASE", "2s"),
        ],
        clock.clone(),
    )
    .await;
    add_user(&app, "sam", Role::Security).await;
    add_user(&app, "vic", Role::Viewer).await;
    let run = queue_behind_the_workers(&app).await;
    let page = format!("/dashboard/runs/{run}");

    let vic = login(&app, "vic").await;
    let seen = vic.get(&page).await.text().await.unwrap();
    assert!(
        seen.contains("running") && !seen.contains("Cancel run"),
        "{seen}"
    );
    assert_eq!(
        vic.post(&format!("{page}/cancel"), &[]).await.status(),
        StatusCode::FORBIDDEN
    );

    let sam = login(&app, "sam").await;
    let seen = sam.get(&page).await.text().await.unwrap();
    assert!(seen.contains("Cancel run"), "{seen}");
    // Its work: one unit, queued, nobody holding it yet.
    assert!(
        seen.contains("Work (1 unit)") && seen.contains("<td>queued</td>"),
        "{seen}"
    );
    let cancelled = sam.post(&format!("{page}/cancel"), &[]).await;
    assert_eq!(cancelled.status(), StatusCode::SEE_OTHER);
    assert_eq!(cancelled.headers()["location"], page.as_str());
    let audit = app
        .store
        .audit_log(Some("run.cancel"), 10, 0)
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].actor.as_str(), audit[0].detail["via"].as_str()),
        ("sam", Some("dashboard"))
    );

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let state = app.store.run(&run).await.unwrap().unwrap().state;
        if state == trellis::model::RunState::Cancelled {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {state:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let seen = sam.get(&page).await.text().await.unwrap();
    assert!(
        seen.contains("cancelled")
            && seen.contains("cancelled by sam")
            && !seen.contains("Cancel run"),
        "{seen}"
    );
    // Closed: cancelling again is a conflict.
    assert_eq!(
        sam.post(&format!("{page}/cancel"), &[]).await.status(),
        StatusCode::CONFLICT
    );

    // Through the API: another queued run, cancelled with a token; unknown and closed runs.
    let token = new_api_token(&sam, "ci").await;
    let other = queue_behind_the_workers(&app).await;
    let cancel = |id: String| {
        let (address, token) = (app.address.clone(), token.clone());
        async move {
            client()
                .post(format!("{address}/api/v1/runs/{id}/cancel"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
        }
    };
    let answer = cancel(other.clone()).await;
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    let answer: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(answer["cancel_requested_by"], "sam", "{answer}");
    assert_eq!(cancel("nope".into()).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(cancel(run.clone()).await.status(), StatusCode::CONFLICT);
    let audit = app
        .store
        .audit_log(Some("run.cancel"), 10, 0)
        .await
        .unwrap();
    assert_eq!(audit[0].detail["via"], "api");
}
