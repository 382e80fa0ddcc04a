//! `trellis serve` end to end, as a visitor sees it: the application is built exactly as
//! `serve` builds it (port 0, a fresh database), the scheduler runs what is stale at start,
//! and the public page and API then list every public control — and nothing about people.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use std::sync::Arc;

use trellis::scheduler::FixedClock;
use trellis::startup::{Application, BuildOptions};

struct TestApp {
    address: String,
    _dir: tempfile::TempDir,
    catalog: std::sync::Arc<trellis::catalog::Catalog>,
    store: trellis::store::Store,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the app from the bundled example config with a fresh SQLite database, on port 0,
/// and waits until the startup run has stored a result for every control.
async fn spawn_app() -> TestApp {
    spawn_app_with(None).await
}

/// [`spawn_app`], the registers read from `registers` if given.
async fn spawn_app_with(registers: Option<PathBuf>) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(repo().join("config.example.yaml")).unwrap();
    let r = repo();
    let text = example
        .replace(
            "sqlite://trellis.db?mode=rwc",
            &format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display()),
        )
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace(
            "controls_dir: controls",
            &format!("controls_dir: {}", r.join("controls").display()),
        )
        .replace(
            "exceptions_dir: examples/",
            &format!("exceptions_dir: {}/examples/", r.display()),
        )
        .replace(
            "path: examples/registers",
            &registers.map_or("path: examples/registers".to_string(), |p| {
                format!("path: {}", p.display())
            }),
        )
        .replace(
            "path: examples/",
            &format!("path: {}/examples/", r.display()),
        );
    let cfg = dir.path().join("trellis.yaml");
    std::fs::write(&cfg, text).unwrap();
    let loaded = trellis::config::load(Some(&cfg)).unwrap();
    // The example data describes 2026-11-22: the application's clock is fixed to that day, so
    // the page is the same whenever the test runs.
    let options = BuildOptions {
        clock: Arc::new(FixedClock(
            chrono::DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
                .unwrap()
                .to_utc(),
        )),
        ..BuildOptions::default()
    };
    let app = Application::build(loaded, options).await.unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let store = app.store.clone();
    let catalog = app.catalog.clone();
    tokio::spawn(app.run_until_stopped());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let results = store.latest_results().await.unwrap();
        if results.len() == catalog.len() {
            break;
        }
        assert!(Instant::now() < deadline, "startup run did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    TestApp {
        address,
        _dir: dir,
        catalog,
        store,
    }
}

/// Every value of the roster's identifying columns (names, emails, ids, logins).
fn roster_identifiers() -> Vec<String> {
    let mut reader = csv::Reader::from_path(repo().join("examples/roster.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.unwrap();
        for (h, v) in headers.iter().zip(record.iter()) {
            if [
                "employee_id",
                "name",
                "email",
                "github_login",
                "aws_username",
                "manager_email",
            ]
            .contains(&h)
                && !v.is_empty()
            {
                out.push(v.to_string());
            }
        }
    }
    assert!(out.len() > 50);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_lists_every_public_control_and_no_person() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let page = client.get(&app.address).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let api: serde_json::Value = client
        .get(format!("{}/api/v1/trust", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api_text = api.to_string();

    // Seed 004: every control's title, in the seed page's order.
    let public: Vec<_> = app.catalog.controls().iter().filter(|c| c.public).collect();
    assert_eq!(public.len(), 73);
    let seed =
        std::fs::read_to_string(repo().join("tests/fixtures/seeds/004-trust-page.txt")).unwrap();
    let mut at = 0;
    for line in seed.lines().skip(3) {
        if let Some(c) = public.iter().find(|c| c.title == line) {
            let escaped = c.title.replace('&', "&amp;");
            let found = html[at..].find(&format!(">{escaped}<")).unwrap_or_else(|| {
                panic!(
                    "page misses {} (or shows it out of the seed's order)",
                    c.title
                )
            });
            at += found;
            assert!(api_text.contains(&c.title), "api misses {}", c.title);
        }
    }
    // Seed 000: its sections, and its four subprocessors from the vendors register.
    for section in [
        "Designed for Security",
        "Physical Security",
        "Access &amp; Authorization",
        "Member Data",
        "Onward Transfer",
    ] {
        assert!(
            html.contains(&format!(">{section}</h2>")),
            "page misses section {section}"
        );
    }
    assert!(html.contains("We automate everything."));
    let subprocessors: Vec<&str> = api["subprocessors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        subprocessors,
        ["Amazon Web Services", "Mailgun", "Akismet", "Sendgrid"]
    );
    for id in roster_identifiers() {
        assert!(!html.contains(&id), "page leaks `{id}`");
        assert!(!api_text.contains(&id), "api leaks `{id}`");
    }
    // Planted violations are visible as "needs attention", never as passing.
    let status_of = |id: &str| -> String {
        api["categories"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["controls"].as_array().unwrap().iter())
            .find(|c| c["id"] == id)
            .map(|c| c["status"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{id} not in api"))
    };
    assert_eq!(status_of("background-checks"), "needs_attention");
    assert_eq!(status_of("performance-review-policy"), "needs_attention");
    assert_eq!(status_of("information-security-policy"), "passing");
    // The example's exception in force waives the unencrypted laptop: waived is not green.
    assert_eq!(status_of("endpoint-security"), "needs_attention");
    let stored = app.store.latest_results().await.unwrap();
    let endpoint = stored
        .iter()
        .find(|r| r.control_id == "endpoint-security")
        .unwrap();
    assert_eq!(endpoint.status, trellis::model::Status::Waived);

    let health = client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

/// A register that does not parse must not take the trust page down: the page is served
/// without subprocessors, and the controls evidenced by that register are errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_register_does_not_take_the_page_down() {
    let registers = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo().join("examples/registers")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), registers.path().join(entry.file_name())).unwrap();
    }
    let vendors = registers.path().join("vendors.yaml");
    let text = std::fs::read_to_string(&vendors).unwrap();
    std::fs::write(
        &vendors,
        text.replacen("risk_tier: ", "risk_tier: severe-", 1),
    )
    .unwrap();
    let app = spawn_app_with(Some(registers.path().to_path_buf())).await;
    let client = reqwest::Client::new();
    let page = client.get(&app.address).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(">Designed for Security</h2>"));
    assert!(
        !html.contains("Mailgun"),
        "no subprocessor list from a broken register"
    );
    let stored = app.store.latest_results().await.unwrap();
    let vendor_review = stored
        .iter()
        .find(|r| r.control_id == "vendor-due-diligence-review")
        .unwrap();
    assert_eq!(vendor_review.status, trellis::model::Status::Error);
    assert!(
        vendor_review.summary.contains("vendors.yaml:"),
        "{}",
        vendor_review.summary
    );
}
