//! The staff side under pressure, over HTTP, on SQLite and (with `TRELLIS_TEST_POSTGRES_URL`)
//! PostgreSQL: parallel password guesses get only the limit's worth of checks; a change whose
//! audit line cannot be written does not happen; tokens obey their account; a malformed
//! policy and a failing store fail closed.

use crate::common::app;
use crate::dashboard::{PASSWORD, add_user, login, new_api_token, session_cookie, try_login};

use app::{TestApp, client, example_now, postgres_env, spawn_app_with};
use reqwest::StatusCode;
use trellis::auth::Role;
use trellis::store::testing::execute_sql;

/// One test per backend: `<scenario>::sqlite` and `<scenario>::postgres` (skipped without
/// `TRELLIS_TEST_POSTGRES_URL`).
macro_rules! on_both_backends {
    ($($scenario:ident;)*) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$scenario(super::app::spawn_app_with(&[], super::example_now()).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let Some((key, url)) = super::postgres_env(stringify!($scenario)).await else {
                    eprintln!("skipped: TRELLIS_TEST_POSTGRES_URL is not set");
                    return;
                };
                let app = super::spawn_app_with(&[(key, url.as_str())], super::example_now()).await;
                super::$scenario(app).await;
            }
        }
    )*};
}

on_both_backends! {
    fifty_parallel_wrong_passwords_get_five_checks;
    a_token_cannot_act_until_its_user_has_enrolled;
    a_malformed_mfa_policy_requires_a_second_factor_of_everyone;
    sign_out_that_cannot_be_audited_is_an_error;
    run_now_that_cannot_be_audited_does_not_run;
    store_errors_are_shown_not_empty_tables;
}

async fn sql(app: &TestApp, sql: &str) {
    execute_sql(&app.store, sql).await.expect(sql);
}

async fn audited(app: &TestApp, action: &str) -> usize {
    let log = app.store.audit_log(Some(action), 1000, 0).await.unwrap();
    log.iter().filter(|a| a.action == action).count()
}

/// The attempt is on record before argon2 runs: of 50 wrong passwords sent at once, exactly
/// the limit (5) are checked; the rest are refused unchecked, and the right password is
/// refused too until the lockout passes.
async fn fifty_parallel_wrong_passwords_get_five_checks(app: TestApp) {
    add_user(&app, "sam", Role::Security).await;
    let guesses: Vec<_> = (0..50)
        .map(|i| {
            let address = app.address.clone();
            tokio::spawn(async move {
                client()
                    .post(format!("{address}/dashboard/login"))
                    .header("origin", &address)
                    .form(&[
                        ("username", "sam"),
                        ("password", &format!("guess number {i}")),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for g in guesses {
        statuses.push(g.await.unwrap());
    }
    let count = |s: StatusCode| statuses.iter().filter(|x| **x == s).count();
    assert_eq!(
        (
            count(StatusCode::UNAUTHORIZED),
            count(StatusCode::TOO_MANY_REQUESTS)
        ),
        (5, 45),
        "{statuses:?}"
    );
    assert_eq!(audited(&app, "login.failure").await, 5, "passwords checked");
    assert_eq!(audited(&app, "login.throttled").await, 45);
    assert_eq!(
        try_login(&app, "sam", PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// An admin requires two-step verification of the security role: a security user's token
/// stops working until they enrol (403, saying why), as their browser session would.
async fn a_token_cannot_act_until_its_user_has_enrolled(app: TestApp) {
    add_user(&app, "sam", Role::Security).await;
    let sam = login(&app, "sam").await;
    let token = new_api_token(&sam, "ci").await;
    let api = |token: String| {
        let address = app.address.clone();
        async move {
            client()
                .get(format!("{address}/api/v1/controls"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(api(token.clone()).await.status(), StatusCode::OK);
    app.store
        .set_setting(
            "mfa.required",
            &serde_json::json!({"roles": ["security"]}),
            &trellis::store::Actor::new("ada", None),
            app.now,
        )
        .await
        .unwrap();
    let refused = api(token.clone()).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("two-step verification"),
        "{body}"
    );
    // The browser session is sent to enrolment, as before.
    let page = sam.get("/dashboard").await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()["location"], "/dashboard/account/mfa");
}

/// A policy setting that is not a policy requires a second factor of everyone.
async fn a_malformed_mfa_policy_requires_a_second_factor_of_everyone(app: TestApp) {
    add_user(&app, "vic", Role::Viewer).await;
    let vic = login(&app, "vic").await;
    assert_eq!(vic.get("/dashboard").await.status(), StatusCode::OK);
    app.store
        .set_setting(
            "mfa.required",
            &serde_json::json!("yes, for admins"),
            &trellis::store::Actor::new("ada", None),
            app.now,
        )
        .await
        .unwrap();
    let page = vic.get("/dashboard").await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()["location"], "/dashboard/account/mfa");
}

/// Sign-out ends the session with its audit line, or says it did not.
async fn sign_out_that_cannot_be_audited_is_an_error(app: TestApp) {
    add_user(&app, "sam", Role::Security).await;
    let sam = login(&app, "sam").await;
    sql(&app, "ALTER TABLE audit_log RENAME TO audit_log_away").await;
    let out = sam.post("/dashboard/logout", &[]).await;
    sql(&app, "ALTER TABLE audit_log_away RENAME TO audit_log").await;
    assert_eq!(out.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(session_cookie(&out).is_none());
    assert!(out.text().await.unwrap().contains("still signed in"));
    assert_eq!(sam.get("/dashboard").await.status(), StatusCode::OK);
    // Once the log can be written, sign-out works and is audited.
    let out = sam.post("/dashboard/logout", &[]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(audited(&app, "logout").await, 1);
    assert_eq!(sam.get("/dashboard").await.status(), StatusCode::SEE_OTHER);
}

/// Run-now is audited before the scheduler is asked, from the page and from the API: without
/// the audit line there is no run.
async fn run_now_that_cannot_be_audited_does_not_run(app: TestApp) {
    add_user(&app, "sam", Role::Security).await;
    let sam = login(&app, "sam").await;
    let token = new_api_token(&sam, "ci").await;
    let runs_before = app.store.runs(100).await.unwrap().len();
    sql(&app, "ALTER TABLE audit_log RENAME TO audit_log_away").await;
    let page = sam
        .post("/dashboard/controls/code-of-conduct/run", &[])
        .await;
    let api = client()
        .post(format!(
            "{}/api/v1/controls/code-of-conduct/run",
            app.address
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    sql(&app, "ALTER TABLE audit_log_away RENAME TO audit_log").await;
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(api.status(), StatusCode::SERVICE_UNAVAILABLE);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.store.runs(100).await.unwrap().len(), runs_before);
    // With the log back, the same request runs the control and says who asked.
    let api = client()
        .post(format!(
            "{}/api/v1/controls/code-of-conduct/run",
            app.address
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::ACCEPTED);
    let line = app
        .store
        .audit_log(Some("control.run"), 1, 0)
        .await
        .unwrap();
    assert_eq!(
        (line[0].actor.as_str(), &line[0].detail["via"]),
        ("sam", &serde_json::json!("api"))
    );
}

/// A page whose store read fails says so (503) instead of showing an empty table.
async fn store_errors_are_shown_not_empty_tables(app: TestApp) {
    add_user(&app, "ada", Role::Admin).await;
    let ada = login(&app, "ada").await;
    let run = app.store.runs(1).await.unwrap()[0].id.clone();
    for (table, page) in [
        (
            "managed_exceptions",
            "/dashboard/controls/code-of-conduct".to_string(),
        ),
        ("evidence", format!("/dashboard/runs/{run}")),
        ("api_tokens", "/dashboard/users".to_string()),
    ] {
        assert_eq!(ada.get(&page).await.status(), StatusCode::OK, "{page}");
        sql(&app, &format!("ALTER TABLE {table} RENAME TO {table}_away")).await;
        let resp = ada.get(&page).await;
        sql(&app, &format!("ALTER TABLE {table}_away RENAME TO {table}")).await;
        assert_eq!(
            resp.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{page} without {table}"
        );
    }
}
