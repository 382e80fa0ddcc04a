//! A run killed mid-way leaves the database readable and is marked interrupted at the next
//! start of the service.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use trellis::model::RunState;
use trellis::startup::{Application, BuildOptions};
use trellis::store::Store;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_is_marked_interrupted_at_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("roster.csv");
    // A FIFO with no writer: the HR probe blocks reading it, so the run is mid-way when killed.
    let mkfifo = Command::new("mkfifo").arg(&roster).status().unwrap();
    assert!(mkfifo.success());
    let db = dir.path().join("t.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let cfg = dir.path().join("trellis.yaml");
    std::fs::write(
        &cfg,
        format!(
            "database_url: \"{url}\"\ncontrols_dir: {}\nlimits:\n  probe_timeout: 10m\nserver:\n  bind: 127.0.0.1:0\nsources:\n  hr:\n    path: {}\n  policies:\n    path: {}\n",
            repo().join("controls").display(),
            roster.display(),
            repo().join("examples/policies").display(),
        ),
    )
    .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(["check", "--control", "background-checks", "--config"])
        .arg(&cfg)
        .env_remove("TRELLIS_CONFIG")
        .spawn()
        .unwrap();
    let running = wait_for("the run to start", || {
        let url = url.clone();
        async move {
            let store = Store::connect(&url).await.ok()?;
            let runs = store.runs(10).await.ok()?;
            runs.into_iter().find(|r| r.state == RunState::Running)
        }
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();

    // The database is readable after the kill, and the run is still marked running.
    let store = Store::connect(&url).await.unwrap();
    let run = store.run(&running.id).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Running);
    store.latest_results().await.unwrap();

    // Next start of the service marks it interrupted.
    std::fs::remove_file(&roster).unwrap();
    std::fs::copy(repo().join("examples/roster.csv"), &roster).unwrap();
    let loaded = trellis::config::load(Some(&cfg)).unwrap();
    let app = Application::build(loaded, BuildOptions::default())
        .await
        .unwrap();
    let server = tokio::spawn(app.run_until_stopped());
    let run = wait_for("the run to be marked interrupted", || {
        let store = store.clone();
        let id = running.id.clone();
        async move {
            let run = store.run(&id).await.ok()??;
            (run.state == RunState::Interrupted).then_some(run)
        }
    })
    .await;
    assert!(run.finished_at.is_some());
    // The service then runs what is stale (everything here), to completion.
    wait_for("the startup run to complete", || {
        let store = store.clone();
        async move {
            let runs = store.runs(10).await.ok()?;
            runs.into_iter().find(|r| r.state == RunState::Completed)
        }
    })
    .await;
    // Closed as interrupted, it is signed and chained like a finished run: the store verifies.
    let (manifest, _, _) = store.run_seal(&running.id).await.unwrap().expect("signed");
    assert!(manifest.contains("\"state\":\"interrupted\""), "{manifest}");
    let key = trellis::integrity::Signer::load(&dir.path().join(".trellis/signing.key"))
        .unwrap()
        .expect("the service made its key");
    let report = store.verify(&[key.public_key()]).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.runs_signed >= 2 && report.runs_legacy == 0);
    server.abort();
}
