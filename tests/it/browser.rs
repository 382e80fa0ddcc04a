//! The trust page and the dashboard in a real browser: headless Chromium requests the gated
//! documents as a visitor, then signs in, reads the overview, opens a
//! failing control and filters its findings, proposes an exception, runs the control now and
//! signs out — with axe-core finding no WCAG 2.1 A/AA violation on any page on the way.
//!
//! `tests/a11y/dashboard.mjs` drives the browser (playwright-core and axe-core are installed by
//! `scripts/test`, with Debian's chromium).

use crate::common::app;

use app::spawn_app;
use trellis::auth::{Role, hash_password};
use trellis::store::Actor;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_review_a_control_propose_an_exception_and_run_it() {
    let app = spawn_app().await;
    let password = "a long enough password";
    let hash = hash_password("sam", password).unwrap();
    app.store
        .create_user(
            "sam",
            "Sam Rivera",
            Role::Security,
            &hash,
            &Actor::new("setup", None),
            app.now,
        )
        .await
        .unwrap();
    let runs_before = app.store.runs(100).await.unwrap().len();
    let report = app::browser_script(
        "tests/a11y/dashboard.mjs",
        vec![app.address.clone(), "sam".into(), password.into()],
    )
    .await;
    assert_eq!(report["steps"].as_array().unwrap().len(), 10, "{report:#}");
    // The visitor's request went through the browser's own Origin handling.
    let requests = app.store.access_requests(None, 10).await.unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].email, "grace@navy.example");
    // What the browser did is in the store, attributed to the user.
    let exceptions = app.store.managed_exceptions().await.unwrap();
    assert_eq!(exceptions.len(), 1);
    assert_eq!(exceptions[0].created_by, "sam");
    assert_eq!(exceptions[0].proposal.ticket, "SEC-1234");
    let runs = app.store.runs(100).await.unwrap();
    assert!(runs.len() > runs_before, "the run was started");
    assert_eq!(runs[0].trigger, trellis::model::Trigger::Manual);
    let audit = app.store.audit_log(None, 50, 0).await.unwrap();
    let actions: Vec<&str> = audit
        .iter()
        .filter(|a| a.actor == "sam")
        .map(|a| a.action.as_str())
        .collect();
    for action in ["login.success", "exception.create", "control.run", "logout"] {
        assert!(
            actions.contains(&action),
            "{action} not audited: {actions:?}"
        );
    }
}
