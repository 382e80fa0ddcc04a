//! The metrics listener (`metrics.bind`), `/healthz` and `/readyz`, and JSON logs.
//!
//! `/metrics` is read after the startup run of the bundled example configuration and parsed
//! with a Prometheus text-format parser; its store-derived values are checked against the
//! store. The in-process metrics (durations, probe errors, API requests) are the process's
//! and other tests of this binary add to them, so they are checked for what this run adds at
//! least. `/readyz` is checked with the database closed, dropped (PostgreSQL) and with a
//! migration not applied.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_parse::{Sample, Scrape, Value};
use trellis::scheduler::FixedClock;
use trellis::startup::{Application, BuildOptions};
use trellis::store::testing;

use crate::common::app::{client, example_config, example_now, repo};

struct Running {
    public: String,
    metrics: Option<String>,
    store: trellis::store::Store,
    catalog: Arc<trellis::catalog::Catalog>,
    _dir: tempfile::TempDir,
}

/// The example configuration with `env` on top, built as `serve` builds it; with the
/// scheduler, it waits for the startup run to be closed and signed.
async fn start(env: &[(&str, &str)], scheduler: bool) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let loaded = example_config(dir.path(), env);
    let options = BuildOptions {
        scheduler,
        clock: Arc::new(FixedClock(example_now())),
    };
    let app = Application::build(loaded, options)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let public = format!("http://127.0.0.1:{}", app.port());
    let metrics = app.metrics_port().map(|p| format!("http://127.0.0.1:{p}"));
    let store = app.store.clone();
    let catalog = app.catalog.clone();
    tokio::spawn(app.run_until_stopped());
    if scheduler {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let runs = store.runs(1).await.unwrap();
            if let Some(run) = runs.first()
                && run.finished_at.is_some()
                && store.run_seal(&run.id).await.unwrap().is_some()
            {
                break;
            }
            assert!(Instant::now() < deadline, "startup run did not finish");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Running {
        public,
        metrics,
        store,
        catalog,
        _dir: dir,
    }
}

const METRICS_ON: (&str, &str) = ("TRELLIS__METRICS__BIND", "127.0.0.1:0");

async fn get(url: String) -> (u16, String, String) {
    let resp = client().get(&url).send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, content_type, resp.text().await.unwrap())
}

fn parse(body: &str) -> Scrape {
    Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The value of a counter, gauge or untyped sample (OpenMetrics counters' `_total` samples
/// are untyped to this parser).
fn number(s: &Sample) -> f64 {
    match &s.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{} is not a number: {other:?}", s.metric),
    }
}

fn samples<'a>(scrape: &'a Scrape, metric: &str) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .collect()
}

/// The sample of `metric` whose labels include `labels`.
fn find<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples(scrape, metric)
        .into_iter()
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
}

/// A histogram's observation count: its `+Inf` bucket.
fn histogram_count(s: &Sample) -> f64 {
    match &s.value {
        Value::Histogram(buckets) => buckets
            .iter()
            .find(|b| b.less_than.is_infinite())
            .map(|b| b.count)
            .unwrap_or_else(|| panic!("{} has no +Inf bucket", s.metric)),
        other => panic!("{} is not a histogram: {other:?}", s.metric),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_run_of_the_example_config() {
    let app = start(&[METRICS_ON], true).await;
    let metrics = app.metrics.clone().expect("metrics.bind is set");
    let (status, content_type, body) = get(format!("{metrics}/metrics")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    let scrape = parse(&body);

    // Read from the store at scrape time.
    let up = find(&scrape, "trellis_database_up", &[]).expect("database_up");
    assert_eq!(number(up), 1.0);
    let controls = samples(&scrape, "trellis_controls");
    let total: f64 = controls.iter().map(|s| number(s)).sum();
    assert_eq!(total as usize, app.catalog.len(), "{body}");
    let latest = app.store.latest_results().await.unwrap();
    let mut by_status: HashMap<&str, f64> = HashMap::new();
    for r in &latest {
        *by_status.entry(r.status.as_str()).or_default() += 1.0;
    }
    for (status, n) in &by_status {
        let s = find(&scrape, "trellis_controls", &[("status", status)])
            .unwrap_or_else(|| panic!("no controls {status}: {body}"));
        assert_eq!(number(s), *n, "controls {status}");
    }
    assert!(by_status.contains_key("pass") && by_status.contains_key("error"));

    let runs = app.store.runs(100).await.unwrap();
    let completed = runs
        .iter()
        .filter(|r| r.state == trellis::model::RunState::Completed)
        .count();
    assert!(completed >= 1);
    let counted = find(&scrape, "trellis_runs", &[("state", "completed")]).expect("runs");
    assert_eq!(number(counted) as usize, completed);

    // Seconds since each control's last successful evaluation: the run was at the fixed
    // clock's time, so every control evaluated without error is 0 seconds old.
    let ages = samples(&scrape, "trellis_control_last_success_age_seconds");
    let succeeded: Vec<_> = latest
        .iter()
        .filter(|r| r.last_success_at.is_some())
        .collect();
    assert_eq!(ages.len(), succeeded.len(), "{body}");
    for r in &succeeded {
        let age = find(
            &scrape,
            "trellis_control_last_success_age_seconds",
            &[("control", &r.control_id)],
        )
        .unwrap_or_else(|| panic!("no age for {}", r.control_id));
        let expect = (example_now() - r.last_success_at.unwrap()).num_seconds() as f64;
        assert_eq!(number(age), expect, "{}", r.control_id);
    }

    // Recorded in the process while the run went.
    let run = find(
        &scrape,
        "trellis_run_duration_seconds",
        &[("outcome", "completed")],
    )
    .expect("run duration histogram");
    assert!(histogram_count(run) >= 1.0);
    let hr = find(
        &scrape,
        "trellis_collection_duration_seconds",
        &[("source", "hr"), ("probe", "hr.people"), ("outcome", "ok")],
    )
    .expect("collection duration histogram for hr.people");
    assert!(histogram_count(hr) >= 1.0);
    // The example configures no GitHub: its collections fail as not configured.
    let not_configured = find(
        &scrape,
        "trellis_probe_errors_total",
        &[("source", "github"), ("cause", "not_configured")],
    )
    .unwrap_or_else(|| panic!("no github not_configured errors: {body}"));
    assert!(number(not_configured) >= 1.0);
    for s in samples(&scrape, "trellis_probe_errors_total") {
        assert!(s.labels.get("source").is_some() && s.labels.get("cause").is_some());
    }

    // The run queue, once the run is closed: nothing waiting, no lease held.
    let depth = find(&scrape, "trellis_queue_depth", &[]).expect("queue depth");
    assert_eq!(number(depth), 0.0);
    let held = find(&scrape, "trellis_leases_held", &[]).expect("leases held");
    assert_eq!(number(held), 0.0);
    // The notification outbox, by state (the example routes nothing: all zero).
    for state in ["pending", "sending", "sent", "failed"] {
        let n = find(&scrape, "trellis_notifications", &[("state", state)])
            .unwrap_or_else(|| panic!("no trellis_notifications{{state={state}}}: {body}"));
        assert_eq!(number(n), 0.0);
    }

    // The metrics listener also answers health checks; the public one never serves metrics.
    assert_eq!(get(format!("{metrics}/healthz")).await.0, 200);
    assert_eq!(get(format!("{metrics}/readyz")).await.0, 200);
    assert_eq!(get(format!("{metrics}/")).await.0, 404);
    let (status, _, public_body) = get(format!("{}/metrics", app.public)).await;
    assert_eq!(status, 404);
    assert!(!public_body.contains("trellis_"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_unless_bound() {
    let app = start(&[], false).await;
    assert!(app.metrics.is_none());
    assert_eq!(get(format!("{}/metrics", app.public)).await.0, 404);
    assert_eq!(get(format!("{}/healthz", app.public)).await.0, 200);
    assert_eq!(get(format!("{}/readyz", app.public)).await.0, 200);
}

/// `/readyz` is 503 with a reason naming no database, on both listeners, once the database
/// does not answer; `/healthz` stays 200 (the process is up), and `/metrics` says the
/// database is down.
async fn check_down(app: &Running, secrets: &[&str]) {
    let metrics = app.metrics.clone().unwrap();
    for base in [&app.public, &metrics] {
        let (status, content_type, body) = get(format!("{base}/readyz")).await;
        assert_eq!(status, 503, "{base}: {body}");
        assert_eq!(content_type, "application/json");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["status"], "unavailable");
        assert_eq!(json["reason"], "database unreachable");
        for secret in secrets {
            assert!(!body.contains(secret), "{body} names {secret}");
        }
        assert_eq!(get(format!("{base}/healthz")).await.0, 200);
    }
    let (status, _, body) = get(format!("{metrics}/metrics")).await;
    assert_eq!(status, 200);
    let up = find(&parse(&body), "trellis_database_up", &[]).map(number);
    assert_eq!(up, Some(0.0), "{body}");
    for secret in secrets {
        assert!(!body.contains(secret), "metrics name {secret}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_when_the_sqlite_database_is_closed() {
    let app = start(&[METRICS_ON], false).await;
    assert_eq!(get(format!("{}/readyz", app.public)).await.0, 200);
    app.store.close().await;
    let path = app._dir.path().join("t.db").display().to_string();
    check_down(&app, &[&path, "sqlite"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_while_a_migration_is_not_applied() {
    let app = start(&[], false).await;
    testing::execute_sql(
        &app.store,
        "DELETE FROM seaql_migrations WHERE version = (SELECT MAX(version) FROM seaql_migrations)",
    )
    .await
    .unwrap();
    let (status, _, body) = get(format!("{}/readyz", app.public)).await;
    assert_eq!(status, 503, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["reason"], "1 migration(s) not applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_when_the_postgres_database_is_dropped() {
    let Ok(server) = std::env::var("TRELLIS_TEST_POSTGRES_URL") else {
        eprintln!("TRELLIS_TEST_POSTGRES_URL is not set: the PostgreSQL variant did not run");
        return;
    };
    let name = format!("trellis_t_{}", uuid::Uuid::new_v4().simple());
    let url = testing::create_postgres_database(&server, &name)
        .await
        .unwrap();
    let run = {
        let (server, name) = (server.clone(), name.clone());
        tokio::spawn(async move {
            let app = start(&[METRICS_ON, ("TRELLIS__DATABASE_URL", &url)], false).await;
            assert_eq!(get(format!("{}/readyz", app.public)).await.0, 200);
            // The database goes away under the running server (its connections are ended).
            testing::drop_postgres_database(&server, &name)
                .await
                .unwrap();
            check_down(&app, &[&name, &url, "postgres"]).await;
        })
    };
    let result = run.await;
    if let Err(e) = testing::drop_postgres_database(&server, &name).await {
        eprintln!("warning: could not drop test database {name}: {e}");
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// `log.format: json` makes `trellis serve` write one JSON object per line on standard error,
/// `TRELLIS_LOG` still choosing which (here `debug` lines, off by default, are written).
#[test]
fn json_logs_from_a_real_serve() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("trellis.yaml");
    std::fs::write(
        &cfg,
        format!(
            "database_url: \"sqlite://{}?mode=rwc\"\ncontrols_dir: {}\nserver:\n  bind: 127.0.0.1:0\nsources:\n  policies:\n    path: {}\nsigning:\n  key_file: {}\nlog:\n  format: json\n",
            dir.path().join("t.db").display(),
            repo().join("controls").display(),
            repo().join("examples/policies").display(),
            dir.path().join("signing.key").display(),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env_remove("TRELLIS_CONFIG")
        .env(
            "TRELLIS_LOG",
            "debug,sqlx=warn,hyper=warn,reqwest=warn,rustls=warn",
        )
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read to the end on a thread of its own, so a full pipe never blocks the server.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let outcome = loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                let serving = line.contains("trellis is serving");
                lines.push(line);
                if serving {
                    break Ok(());
                }
            }
            Err(e) => break Err(e),
        }
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let log = lines.join("\n");
    outcome.unwrap_or_else(|e| panic!("serve did not start ({e}): {log}"));
    let mut levels = std::collections::BTreeSet::new();
    for line in &lines {
        let json: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n{log}"));
        assert!(json["timestamp"].is_string(), "{line}");
        assert!(json["fields"].is_object(), "{line}");
        levels.insert(json["level"].as_str().unwrap().to_string());
    }
    let serving: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(serving["fields"]["message"], "trellis is serving");
    assert!(serving["fields"]["port"].as_u64().is_some_and(|p| p > 0));
    assert!(
        levels.contains("DEBUG"),
        "TRELLIS_LOG=debug is obeyed: {levels:?}"
    );
}
