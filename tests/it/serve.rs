//! `trellis serve` end to end, as a visitor sees it: the application is built exactly as
//! `serve` builds it (port 0, a fresh database), the scheduler runs what is stale at start,
//! and the public page and API then list every public control — and nothing about people.

use crate::common::app;

use app::{repo, roster_identifiers, spawn_app};

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
    let path = registers.path().display().to_string();
    let app = app::spawn_app_with(
        &[("TRELLIS__SOURCES__REGISTERS__PATH", &path)],
        app::example_now(),
    )
    .await;
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
