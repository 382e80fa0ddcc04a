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

/// SQLite serves one instance: a second `trellis serve` on the same database refuses to start,
/// naming the database, instead of scheduling every run a second time; once the first has
/// stopped (here killed: the lock goes with the process), another starts.
#[test]
fn a_second_serve_on_the_same_sqlite_database_refuses_to_start() {
    use std::process::{Command, Stdio};
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let cfg = dir.path().join("trellis.yaml");
    std::fs::write(
        &cfg,
        format!(
            "database_url: \"sqlite://{}?mode=rwc\"\ncontrols_dir: {}\nserver:\n  bind: 127.0.0.1:0\nsources:\n  policies:\n    path: {}\n",
            db.display(),
            repo().join("controls").display(),
            repo().join("examples/policies").display(),
        ),
    )
    .unwrap();
    let serve = || {
        Command::new(env!("CARGO_BIN_EXE_trellis"))
            .args(["serve", "--config"])
            .arg(&cfg)
            .env_remove("TRELLIS_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Waits for "trellis is serving" in its log (read to the end on a thread of its own, so a
    // full pipe never blocks it); panics with the log if it exits first.
    let serving = |child: &mut std::process::Child| {
        use std::io::BufRead;
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let up = line.contains("trellis is serving");
                tx.send((up, line)).ok();
            }
        });
        let mut log = String::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok((true, _)) => return,
                Ok((false, line)) => log.push_str(&line),
                Err(e) => panic!("serve did not start ({e}): {log}"),
            }
        }
    };
    let mut first = serve();
    serving(&mut first);

    let mut second = serve();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while second.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            second.kill().unwrap();
            first.kill().unwrap();
            panic!("a second serve is running on the same SQLite database");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = second.wait_with_output().unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("another `trellis serve` is already scheduling runs on the SQLite database")
            && err.contains(&db.display().to_string())
            && err.contains("PostgreSQL"),
        "{err}"
    );
    // The first goes on serving.
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first serve exited"
    );

    first.kill().unwrap();
    first.wait().unwrap();
    let mut third = serve();
    serving(&mut third);
    third.kill().unwrap();
    third.wait().unwrap();
}
