#![allow(dead_code)] // each test binary uses part of it
//! `spawn_app()`: Trellis built exactly as `trellis serve` builds it, from the bundled example
//! configuration (its relative paths resolve against the repository), on port 0 with a fresh
//! SQLite database and link key in a temporary directory, its clock fixed to the example data's
//! day. Waits until the startup run has stored a result for every control.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use trellis::config::Loaded;
use trellis::model::{ControlOutcome, Status, Trigger};
use trellis::scheduler::FixedClock;
use trellis::startup::{Application, BuildOptions};

/// The day the example data describes.
pub const EXAMPLE_NOW: &str = "2026-11-22T12:00:00Z";

pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    pub dir: tempfile::TempDir,
    pub loaded: Loaded,
    pub catalog: Arc<trellis::catalog::Catalog>,
    pub store: trellis::store::Store,
    pub now: DateTime<Utc>,
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn example_now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(EXAMPLE_NOW).unwrap().to_utc()
}

/// The example configuration with a fresh database and link key under `dir`, and `env`
/// overrides (`TRELLIS__…` pairs) on top.
pub fn example_config(dir: &std::path::Path, env: &[(&str, &str)]) -> Loaded {
    let mut vars: Vec<(String, String)> = vec![
        (
            "TRELLIS__DATABASE_URL".into(),
            format!("sqlite://{}?mode=rwc", dir.join("t.db").display()),
        ),
        ("TRELLIS__SERVER__BIND".into(), "127.0.0.1:0".into()),
        (
            "TRELLIS__TRUST_PAGE__DOCUMENTS__LINK_KEY_FILE".into(),
            dir.join("link.key").display().to_string(),
        ),
        (
            "TRELLIS__SIGNING__KEY_FILE".into(),
            dir.join("signing.key").display().to_string(),
        ),
    ];
    // The overrides replace these defaults (a database of the test's own).
    vars.retain(|(k, _)| !env.iter().any(|(e, _)| e == k));
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let source = repo().join("config.example.yaml");
    let config = trellis::config::parse(&source, trellis::config::BUNDLED_EXAMPLE, &vars)
        .unwrap_or_else(|e| panic!("{e}"));
    Loaded {
        config,
        source,
        base_dir: repo(),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[], example_now()).await
}

/// [`spawn_app`] with configuration overrides and another fixed time.
pub async fn spawn_app_with(env: &[(&str, &str)], now: DateTime<Utc>) -> TestApp {
    spawn_app_with_clock(env, Arc::new(FixedClock(now))).await
}

/// A clock tests move by hand.
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(t: DateTime<Utc>) -> Arc<ManualClock> {
        Arc::new(ManualClock(std::sync::Mutex::new(t)))
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut t = self.0.lock().unwrap();
        *t += by;
    }
}

impl trellis::scheduler::Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// [`spawn_app`] with configuration overrides and a clock of the test's.
pub async fn spawn_app_with_clock(
    env: &[(&str, &str)],
    clock: Arc<dyn trellis::scheduler::Clock>,
) -> TestApp {
    let now = clock.now();
    let dir = tempfile::tempdir().unwrap();
    let loaded = example_config(dir.path(), env);
    let options = BuildOptions {
        clock,
        ..BuildOptions::default()
    };
    let app = Application::build(loaded.clone(), options)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let address = format!("http://127.0.0.1:{}", app.port());
    let store = app.store.clone();
    let catalog = app.catalog.clone();
    tokio::spawn(app.run_until_stopped());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // The startup run is over once its results are stored, it is closed and its
        // manifest is signed (the last thing the runner does).
        let results = store.latest_results().await.unwrap();
        if results.len() == catalog.len() {
            let runs = store.runs(1).await.unwrap();
            if let Some(run) = runs.first()
                && run.finished_at.is_some()
                && store.run_seal(&run.id).await.unwrap().is_some()
            {
                break;
            }
        }
        assert!(Instant::now() < deadline, "startup run did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    TestApp {
        address,
        dir,
        loaded,
        catalog,
        store,
        now,
    }
}

/// An HTTP client that does not follow redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `GET path` on the app.
pub async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .unwrap()
}

/// Stores one result of `control` evaluated at `at`, through the app's own store (so the live
/// page sees it at once).
pub async fn plant(app: &TestApp, control: &str, status: Status, at: DateTime<Utc>) {
    let run = app.store.begin_run(Trigger::Schedule, 1, at).await.unwrap();
    let outcome = ControlOutcome {
        control_id: control.into(),
        status,
        summary: "planted".into(),
        evaluated_at: at,
        definition_sha256: "0".repeat(64),
        checks: vec![],
        findings: vec![],
        exceptions: vec![],
    };
    app.store.record_result(&run, &outcome, &[]).await.unwrap();
    let (signer, _) = trellis::startup::signing(&app.loaded).unwrap();
    app.store.finish_run(&run, at, None, &signer).await.unwrap();
}

/// Every value of the example roster's identifying columns (names, emails, ids, logins).
pub fn roster_identifiers() -> Vec<String> {
    let mut reader = csv::Reader::from_path(repo().join("examples/roster.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.unwrap();
        for (h, v) in headers.iter().zip(record.iter()) {
            let identifying = [
                "employee_id",
                "name",
                "email",
                "github_login",
                "aws_username",
                "manager_email",
            ]
            .contains(&h);
            if identifying && !v.is_empty() {
                out.push(v.to_string());
            }
        }
    }
    assert!(out.len() > 50);
    out
}

/// The configuration override that puts a test app on a fresh PostgreSQL database, when
/// `TRELLIS_TEST_POSTGRES_URL` is set (`None` otherwise; panics if it is set but unusable).
/// The database is left for the server's next cleanup: its name says which test made it.
pub async fn postgres_env(test: &str) -> Option<(&'static str, String)> {
    let server = std::env::var("TRELLIS_TEST_POSTGRES_URL").ok()?;
    let test: String = test.chars().take(32).collect();
    let name = format!(
        "trellis_app_{test}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let url = trellis::store::testing::create_postgres_database(&server, &name)
        .await
        .unwrap_or_else(|e| panic!("TRELLIS_TEST_POSTGRES_URL is set but unusable: {e}"));
    Some(("TRELLIS__DATABASE_URL", url))
}

/// Runs a browser script of the tests (`tests/<dir>/<script>.mjs`, whose packages `scripts/test`
/// installs in `tests/<dir>/node_modules`) with `args`; panics unless it exits 0. Returns the
/// JSON report it prints.
pub async fn browser_script(script: &str, args: Vec<String>) -> serde_json::Value {
    let path = repo().join(script);
    let packages = path.parent().unwrap().join("node_modules/playwright-core");
    assert!(
        packages.exists(),
        "the browser tests' packages are missing: run scripts/test (or `npm ci --prefix {}`)",
        path.parent().unwrap().display()
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(path)
            .args(args)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON from the browser script ({e}):\n{stderr}"));
    assert_eq!(out.status.code(), Some(0), "{stderr}\n{report:#}");
    report
}
