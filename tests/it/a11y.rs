//! Accessibility: axe-core in headless Chromium reports no WCAG 2.1 A/AA violation on the
//! public pages — the trust page (with a varied 90-day history), the document request form, the
//! confirmation (the template of every message page) and an approval's page — at desktop and
//! mobile widths and in the dark colour scheme.
//!
//! The runner (`tests/a11y/axe.mjs`) and its npm packages and Chromium are installed by
//! `scripts/test`, which exports `TRELLIS_A11Y_RUNNER`. Run alone, the test looks for the
//! runner in the repository and fails with what to install if it is missing.
//! `TRELLIS_A11Y_SCREENSHOTS=DIR` also saves a screenshot of every page checked.

use crate::common::app;

use app::{example_now, plant, repo, spawn_app_with};
use chrono::Duration;
use trellis::access::{Decision, NewAccessRequest};
use trellis::model::Status;

/// The runner's JSON for `urls`; panics with the runner's summary when it cannot run.
fn run_axe(urls: &[String]) -> serde_json::Value {
    let runner = std::env::var("TRELLIS_A11Y_RUNNER")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| repo().join("tests/a11y/axe.mjs"));
    assert!(
        repo().join("tests/a11y/node_modules/axe-core").exists(),
        "the accessibility runner's packages are missing: run scripts/test (or \
         `npm ci --prefix tests/a11y`), and install Debian's chromium"
    );
    let mut command = std::process::Command::new("node");
    command.arg(&runner);
    // `TRELLIS_A11Y_SCREENSHOTS=DIR` keeps a full-page PNG of each page and viewport.
    if let Some(dir) = std::env::var_os("TRELLIS_A11Y_SCREENSHOTS") {
        command.arg("--screenshot-dir").arg(dir);
    }
    let out = command.args(urls).output().expect("node runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("runner printed no JSON ({e}):\n{stderr}"));
    match out.status.code() {
        Some(0) | Some(1) => report,
        code => panic!("the runner failed ({code:?}):\n{stderr}\n{report:#}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_pages_have_no_wcag_violations() {
    let now = example_now() + Duration::days(40);
    // With subscriptions offered (the page links to them; their pages are checked too).
    let visitors =
        "{from: \"Sprout Security <security@sprout.example>\", smtp: {host: 127.0.0.1, tls: none}}";
    let app = spawn_app_with(&[("TRELLIS__NOTIFICATIONS__VISITORS", visitors)], now).await;
    // A history with every kind of day: failures, errors, gaps, staleness.
    for back in (1..40).rev() {
        let at = now - Duration::days(back);
        let status = match back % 9 {
            0 => Status::Fail,
            4 => Status::Error,
            _ => Status::Pass,
        };
        if back % 13 != 5 {
            plant(&app, "code-of-conduct", status, at).await;
        }
        plant(&app, "privacy-policy", Status::Pass, at - Duration::days(3)).await;
    }
    // A request, approved, for the approval's page.
    let request = NewAccessRequest {
        name: "Ada Lovelace".into(),
        email: "ada@analytical.example".into(),
        company: "Analytical Engines".into(),
        documents: vec![
            "soc2-type-ii-report".into(),
            "penetration-test-letter".into(),
        ],
        nda_sha256: "0".repeat(64),
    };
    let id = app
        .store
        .create_access_request(&request, &Default::default(), now)
        .await
        .unwrap();
    let expires = now + Duration::days(7);
    app.store
        .decide_access_request(
            &id,
            Decision::Approve {
                expires_at: expires,
            },
            &trellis::store::Actor::new("sam", None),
            None,
            now,
            None,
        )
        .await
        .unwrap();
    let documents = trellis::startup::documents(&app.loaded).unwrap().unwrap();
    let link = documents.link(&id, expires);
    let link = link.strip_prefix("https://trust.sprout.example").unwrap();

    let mail = trellis::startup::visitors(&app.loaded).unwrap().unwrap();
    let local = |url: String| {
        url.strip_prefix("https://trust.sprout.example")
            .unwrap()
            .to_string()
    };
    let paths = [
        "/".to_string(),
        "/request-access?document=soc2-type-ii-report".to_string(),
        "/request-access/received".to_string(),
        link.to_string(),
        "/subscribe".to_string(),
        "/subscribe/sent".to_string(),
        local(mail.confirm_link(
            "0193a1e2-0000-7000-8000-000000000000",
            (now + Duration::days(1)).timestamp(),
        )),
        local(mail.unsubscribe_link("0193a1e2-0000-7000-8000-000000000000")),
    ];
    let urls: Vec<String> = paths
        .iter()
        .map(|p| format!("{}{p}", app.address))
        .collect();
    // The trust page checked says what backs each status (monitored, recorded, documented)
    // and until when it holds.
    let page = reqwest::get(&urls[0]).await.unwrap().text().await.unwrap();
    for kind in ["monitored", "recorded", "documented"] {
        assert!(
            page.contains(&format!("class=\"basis basis--{kind}\"")),
            "no {kind} control on the page"
        );
    }
    assert!(page.contains("This page is valid until"));
    let report = run_axe(&urls);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), urls.len() * 3, "three viewports per page");
    let mut problems = Vec::new();
    for r in results {
        assert!(
            r["rulesRun"].as_u64().unwrap() > 5,
            "axe ran too few rules on {}: {r}",
            r["url"]
        );
        for v in r["violations"].as_array().unwrap() {
            let nodes: Vec<String> = v["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| format!("    {} — {}", n["html"], n["failureSummary"]))
                .collect();
            problems.push(format!(
                "{} [{}] {} ({}): {}\n{}",
                r["url"],
                r["viewport"],
                v["id"],
                v["impact"],
                v["help"],
                nodes.join("\n")
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
