//! `http.pages` and the publication controls against an HTTPS server the test starts on
//! loopback (certificate under the test CA given as `ca_file`): a published page, one that
//! 404s, one that redirects within the configured host (followed) and one that redirects to a
//! host the configuration does not name (not followed, never requested); a body that changes
//! between stored runs (changed_at moves) or not (changed_at kept); a refused connection and
//! a server that never answers (error, never pass); and `optional: true` without a page.

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde_json::{Value, json};
use trellis::catalog::{self, Control};
use trellis::config::Loaded;
use trellis::model::{Finding, Status, Trigger};
use trellis::probes::ProbeContext;
use trellis::runner::RunReport;

use crate::common::aws::{outcome, repo, run};
use crate::common::http::{Pki, Response, free_port, handler, https_server, silent_server};

const CONTROLS: &[&str] = &[
    "privacy-policy",
    "terms-of-service",
    "description-of-services",
    "confidential-reporting-channel",
];

fn config(dir: &Path, ca_file: &Path, pages: &[(&str, String)]) -> Loaded {
    let mut text = format!(
        "controls_dir: {}\nsources:\n  http:\n    ca_file: {}\n    timeout: 2s\n    pages:\n",
        repo().join("controls").display(),
        ca_file.display(),
    );
    for (k, u) in pages {
        text.push_str(&format!("      {k}: {u}\n"));
    }
    let path = dir.join("trellis.yaml");
    std::fs::write(&path, &text).unwrap();
    trellis::config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The `http.pages` finding of control `id` (the check with that probe).
fn page_finding<'a>(report: &'a RunReport, id: &str) -> &'a Finding {
    let o = outcome(report, id);
    let index = o
        .checks
        .iter()
        .position(|c| c.probe == "http.pages")
        .unwrap_or_else(|| panic!("{id} has no http.pages check"));
    let found: Vec<&Finding> = o.findings.iter().filter(|f| f.check == index).collect();
    assert_eq!(found.len(), 1, "{id}: {found:#?}");
    found[0]
}

/// One stored run of `privacy-policy`; returns the `http.pages` evidence it stored.
async fn stored_run(
    store: &trellis::store::Store,
    loaded: &Loaded,
    now: DateTime<Utc>,
) -> trellis::model::Evidence {
    let catalog = catalog::from_config(loaded, now.date_naive()).unwrap_or_else(|d| panic!("{d}"));
    let controls: Vec<&Control> = ["privacy-policy"]
        .iter()
        .map(|id| catalog.get(id).unwrap())
        .collect();
    let ctx = ProbeContext::for_run(loaded, now);
    let signer = trellis::integrity::Signer::from_seed([7; 32]);
    trellis::runner::run_and_store(
        store,
        &ctx,
        &controls,
        4,
        Trigger::Manual,
        &signer,
        &|_, _| {},
    )
    .await
    .unwrap();
    let mut stored = store.latest_evidence(&["http.pages"]).await.unwrap();
    assert_eq!(stored.len(), 1, "{stored:#?}");
    stored.remove(0)
}

fn page_attr(evidence: &trellis::model::Evidence, key: &str) -> Value {
    evidence
        .content
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["page"] == key)
        .unwrap()
        .clone()
}

#[tokio::test]
async fn pages_are_published_redirects_stay_within_configured_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let ca_file = dir.path().join("ca.pem");
    pki.write_ca(&ca_file);
    // Somewhere the configuration does not name: it must never be asked.
    let elsewhere = wiremock::MockServer::start().await;
    let away = format!("http://localhost:{}/x", elsewhere.address().port());
    let body = Arc::new(Mutex::new(
        "<html><title>Privacy Policy</title>v1</html>".to_string(),
    ));
    let served = body.clone();
    let addr = https_server(
        "127.0.0.41",
        &pki.leaf("127.0.0.41", None, -1, 365, false),
        handler(move |r| match r.path.as_str() {
            "/privacy" => Response::ok(&served.lock().unwrap()),
            "/moved" => Response::redirect(302, "/privacy"),
            "/away" => Response::redirect(302, &away),
            _ => Response::status(404),
        }),
    )
    .await;
    let base = format!("https://{addr}");
    let loaded = config(
        dir.path(),
        &ca_file,
        &[
            ("privacy-policy", format!("{base}/privacy")),
            ("terms-of-service", format!("{base}/terms")),
            ("description-of-services", format!("{base}/moved")),
            ("confidential-reporting-channel", format!("{base}/away")),
        ],
    );
    let report = run(&loaded, CONTROLS, Utc::now()).await;

    let f = page_finding(&report, "privacy-policy");
    assert_eq!(f.status, Status::Pass, "{f:#?}");
    assert_eq!(f.actual.to_value()["status"], json!(200));
    assert_eq!(f.actual.to_value()["https"], json!(true));

    let f = page_finding(&report, "terms-of-service");
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert_eq!(f.actual.to_value()["status"], json!(404));

    let f = page_finding(&report, "description-of-services");
    assert_eq!(f.status, Status::Pass, "{f:#?}");

    let f = page_finding(&report, "confidential-reporting-channel");
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert_eq!(f.actual.to_value()["status"], json!(302));
    assert!(elsewhere.received_requests().await.unwrap().is_empty());

    // What the probe records for each page.
    let ctx = ProbeContext::for_run(&loaded, Utc::now());
    let planned = trellis::probes::find("http.pages")
        .unwrap()
        .plan(&Value::Null)
        .unwrap();
    let collected = planned.collect(&ctx).await.unwrap();
    let get = |key: &str| {
        collected
            .resources
            .iter()
            .find(|r| r.attributes["page"] == key)
            .unwrap()
            .attributes
            .clone()
    };
    let a = get("privacy-policy");
    assert_eq!(a["title"], json!("Privacy Policy"));
    assert_eq!(a["content_type"], json!("text/html; charset=utf-8"));
    assert_eq!(a["final_url"], json!(format!("{base}/privacy")));
    assert_eq!(a["redirects"], json!(0));
    assert_eq!(a["sha256"].as_str().unwrap().len(), 64);
    assert!(a["changed_at"].as_str().is_some());
    let a = get("description-of-services");
    assert_eq!(a["final_url"], json!(format!("{base}/privacy")));
    assert_eq!(a["redirects"], json!(1));
    assert_eq!(a["title"], json!("Privacy Policy"));
    let a = get("confidential-reporting-channel");
    assert_eq!(a["final_url"], json!(format!("{base}/away")));
    assert_eq!(
        a["redirect_not_followed"],
        json!(format!("http://localhost:{}/x", elsewhere.address().port()))
    );
    assert!(elsewhere.received_requests().await.unwrap().is_empty());

    // An unknown page key, without `optional`, is an error listing the configured keys.
    let planned = trellis::probes::find("http.pages")
        .unwrap()
        .plan(&json!({"page": "nope"}))
        .unwrap();
    let err = planned.collect(&ctx).await.unwrap_err().to_string();
    assert!(
        err.contains("nope") && err.contains("privacy-policy, terms-of-service"),
        "{err}"
    );
}

#[tokio::test]
async fn changed_at_moves_only_when_the_body_changes() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let ca_file = dir.path().join("ca.pem");
    pki.write_ca(&ca_file);
    let body = Arc::new(Mutex::new("<title>Privacy</title>first".to_string()));
    let served = body.clone();
    let addr = https_server(
        "127.0.0.42",
        &pki.leaf("127.0.0.42", None, -1, 365, false),
        handler(move |_| Response::ok(&served.lock().unwrap())),
    )
    .await;
    let loaded = config(
        dir.path(),
        &ca_file,
        &[("privacy-policy", format!("https://{addr}/privacy"))],
    );
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("trellis.db").display()
    );
    let store = trellis::store::Store::connect(&url).await.unwrap();

    let t1 = Utc::now().trunc_subsecs(0);
    let first = stored_run(&store, &loaded, t1).await;
    let p = page_attr(&first, "privacy-policy");
    assert_eq!(
        p["changed_at"],
        json!(t1.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    );

    // Same body: when it last changed is kept.
    let t2 = t1 + Duration::hours(1);
    let second = stored_run(&store, &loaded, t2).await;
    let q = page_attr(&second, "privacy-policy");
    assert_eq!(q["sha256"], p["sha256"]);
    assert_eq!(q["changed_at"], p["changed_at"]);

    // Another body: it changed now.
    *body.lock().unwrap() = "<title>Privacy</title>second".to_string();
    let t3 = t2 + Duration::hours(1);
    let third = stored_run(&store, &loaded, t3).await;
    let r = page_attr(&third, "privacy-policy");
    assert_ne!(r["sha256"], p["sha256"]);
    assert_eq!(
        r["changed_at"],
        json!(t3.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    );

    // And stays then while the body does not change.
    let t4 = t3 + Duration::hours(1);
    let fourth = stored_run(&store, &loaded, t4).await;
    assert_eq!(
        page_attr(&fourth, "privacy-policy")["changed_at"],
        r["changed_at"]
    );
}

#[tokio::test]
async fn unreachable_pages_are_errors_never_pass() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let ca_file = dir.path().join("ca.pem");
    pki.write_ca(&ca_file);
    let refused = format!(
        "https://127.0.0.43:{}/privacy",
        free_port("127.0.0.43").await
    );
    let silent = format!("https://{}/terms", silent_server("127.0.0.44").await);
    // A certificate no configured root vouches for.
    let stranger = https_server(
        "127.0.0.45",
        &pki.leaf("127.0.0.45", None, -1, 365, true),
        handler(|_| Response::ok("<title>x</title>")),
    )
    .await;
    let loaded = config(
        dir.path(),
        &ca_file,
        &[
            ("privacy-policy", refused),
            ("terms-of-service", silent),
            ("description-of-services", format!("https://{stranger}/")),
        ],
    );
    let report = run(&loaded, CONTROLS, Utc::now()).await;
    for (id, cause) in [
        ("privacy-policy", "refused"),
        ("terms-of-service", "timed out"),
        ("description-of-services", "certificate"),
    ] {
        let f = page_finding(&report, id);
        assert_eq!(f.status, Status::Error, "{f:#?}");
        assert!(f.message.to_lowercase().contains(cause), "{id}: {f:#?}");
    }
}

#[tokio::test]
async fn optional_pages_without_a_url_give_no_resources() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let ca_file = dir.path().join("ca.pem");
    pki.write_ca(&ca_file);
    // Configured, but with neither description-of-services nor the reporting channel.
    let loaded = config(
        dir.path(),
        &ca_file,
        &[("privacy-policy", "https://127.0.0.46:9/privacy".to_string())],
    );
    let report = run(
        &loaded,
        &["description-of-services", "confidential-reporting-channel"],
        Utc::now(),
    )
    .await;
    for id in ["description-of-services", "confidential-reporting-channel"] {
        let o = outcome(&report, id);
        let check = o.checks.iter().find(|c| c.probe == "http.pages").unwrap();
        assert_eq!(check.status, Status::NotApplicable, "{id}: {check:#?}");
        assert!(
            o.findings
                .iter()
                .all(|f| o.checks[f.check].probe != "http.pages")
        );
    }
    // Not configured at all: no resources either; without `optional`, not configured.
    let path = dir.path().join("bare.yaml");
    std::fs::write(
        &path,
        format!("controls_dir: {}\n", repo().join("controls").display()),
    )
    .unwrap();
    let bare = trellis::config::load(Some(&path)).unwrap();
    let ctx = ProbeContext::for_run(&bare, Utc::now());
    let probe = trellis::probes::find("http.pages").unwrap();
    let optional = probe
        .plan(&json!({"page": "description-of-services", "optional": true}))
        .unwrap();
    assert!(optional.collect(&ctx).await.unwrap().resources.is_empty());
    let required = probe.plan(&json!({"page": "privacy-policy"})).unwrap();
    assert_eq!(
        required.collect(&ctx).await.unwrap_err(),
        trellis::probes::ProbeError::NotConfigured("http")
    );
}
