//! The runner: one collection per distinct probe + parameters, one roster read per run,
//! timeouts as `error`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use trellis::catalog::{self, Control};
use trellis::config::{HrSource, SourcesConfig};
use trellis::model::Status;
use trellis::probes::{FetchCache, ProbeContext};
use trellis::runner::{self, NoSink};

const ROSTER: &str = "employee_id,name,email,start_date,end_date,background_check_date,security_training_date\n\
E1,Ann Lee,ann@x.io,2024-01-01,,2023-12-20,2026-05-01\n\
E2,Zed Unique-Marker,zed@x.io,2025-03-01,,,2023-01-01\n\
E3,Old Timer,old@x.io,2020-01-01,2025-01-31,,\n";

fn write_control(dir: &Path, id: &str, check: &str) {
    let text = format!(
        "id: {id}\ntitle: {id}\ncategory: Test\ndescription: d\nclaim: procedure\nowner: o\nseverity: low\nchecks:\n{check}"
    );
    std::fs::write(dir.join(format!("{id}.yaml")), text).unwrap();
}

fn context(dir: &Path, roster: &str, timeout: Duration) -> ProbeContext {
    ProbeContext {
        sources: Arc::new(SourcesConfig {
            hr: Some(HrSource {
                path: roster.into(),
                columns: Default::default(),
            }),
            ..Default::default()
        }),
        base_dir: dir.to_path_buf(),
        now: chrono::DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z")
            .unwrap()
            .to_utc(),
        timeout,
        cache: FetchCache::new(),
        previous: Default::default(),
        validators: Default::default(),
    }
}

#[tokio::test]
async fn shared_sources_are_fetched_once_per_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("roster.csv"), ROSTER).unwrap();
    let controls = dir.path().join("controls");
    std::fs::create_dir(&controls).unwrap();
    write_control(
        &controls,
        "bg",
        "  - probe: hr.people\n    assert: background_check_date != null\n",
    );
    write_control(
        &controls,
        "bg-again",
        "  - probe: hr.people\n    assert: background_check_date != null && days_employed >= 0\n",
    );
    write_control(
        &controls,
        "training",
        "  - probe: hr.people\n    with: {include_terminated: true}\n    assert: security_training_date != null && days_since(security_training_date) <= 365\n",
    );
    let catalog = catalog::load(&controls).unwrap();
    let selected: Vec<&Control> = catalog.controls().iter().collect();
    let ctx = context(dir.path(), "roster.csv", Duration::from_secs(10));
    let report = runner::execute(&ctx, &selected, 4, &NoSink, &|_, _| {})
        .await
        .unwrap();

    // Two distinct parameter sets → two collections and two evidence records…
    assert_eq!(report.collections, 2);
    assert_eq!(report.evidence.len(), 2);
    // …but the roster file itself was read once.
    assert_eq!(ctx.cache.fetch_count(), 1);

    let status = |id: &str| {
        report
            .outcomes
            .iter()
            .find(|o| o.control_id == id)
            .unwrap()
            .status
    };
    assert_eq!(status("bg"), Status::Fail);
    assert_eq!(status("bg-again"), Status::Fail);
    assert_eq!(status("training"), Status::Fail);
    let training = report
        .outcomes
        .iter()
        .find(|o| o.control_id == "training")
        .unwrap();
    // include_terminated brings the leaver in: 3 people evaluated.
    assert_eq!(training.findings.len(), 3);
    let failing: Vec<&str> = training
        .findings
        .iter()
        .filter(|f| f.status == Status::Fail)
        .map(|f| f.message.as_str())
        .collect();
    assert!(
        failing.iter().any(|m| m.contains("Zed Unique-Marker")),
        "{failing:?}"
    );
    for e in &report.evidence {
        assert_eq!(e.sha256.len(), 64);
        assert!(e.error.is_none());
    }
}

#[tokio::test]
async fn a_probe_that_hangs_times_out_as_error() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("roster.csv");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let controls = dir.path().join("controls");
    std::fs::create_dir(&controls).unwrap();
    write_control(
        &controls,
        "bg",
        "  - probe: hr.people\n    assert: background_check_date != null\n",
    );
    let catalog = catalog::load(&controls).unwrap();
    let selected: Vec<&Control> = catalog.controls().iter().collect();
    let ctx = context(dir.path(), "roster.csv", Duration::from_millis(300));
    let report = runner::execute(&ctx, &selected, 1, &NoSink, &|_, _| {})
        .await
        .unwrap();
    let o = &report.outcomes[0];
    assert_eq!(o.status, Status::Error);
    assert!(o.summary.contains("timed out after"), "{}", o.summary);
    assert!(
        report.evidence[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("timed out")
    );
    // Unblock the reader thread so the test process can exit promptly.
    let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
}

/// Controls are evaluated as soon as their own sources are in, not after every collection: a
/// control reading the policies folder is out while the roster (a FIFO here, which the test
/// fills only once that control's outcome is out) is still being read. A runner that waited
/// for every collection would never see the roster (its read times out: `error`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controls_are_evaluated_as_their_sources_come_in() {
    use std::sync::Mutex;
    use trellis::model::ControlOutcome;
    use trellis::runner::RunWatcher;

    struct Watch {
        events: Mutex<Vec<String>>,
        statuses: Mutex<Vec<(String, Status)>>,
        roster: std::path::PathBuf,
    }
    impl RunWatcher for Watch {
        fn collected(&self, done: usize, total: usize) {
            self.events
                .lock()
                .unwrap()
                .push(format!("collected {done}/{total}"));
        }
        fn outcome(&self, outcome: &ControlOutcome) {
            self.events
                .lock()
                .unwrap()
                .push(format!("evaluated {}", outcome.control_id));
            self.statuses
                .lock()
                .unwrap()
                .push((outcome.control_id.clone(), outcome.status));
            if outcome.control_id == "policy" {
                let roster = self.roster.clone();
                // Opening a FIFO for writing waits for its reader: the probe, already waiting.
                std::thread::spawn(move || std::fs::write(roster, ROSTER).unwrap());
            }
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("roster.csv");
    let made = std::process::Command::new("mkfifo")
        .arg(&roster)
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    let controls = dir.path().join("controls");
    std::fs::create_dir(&controls).unwrap();
    write_control(
        &controls,
        "policy",
        "  - probe: documents.policies\n    with: {title: Information Security Policy}\n    assert: approved_by != null\n",
    );
    write_control(
        &controls,
        "training",
        "  - probe: hr.people\n    assert: security_training_date != null\n",
    );
    let catalog = catalog::load(&controls).unwrap();
    // The roster's control first: catalog order does not hold the other back.
    let mut selected: Vec<&Control> = catalog.controls().iter().collect();
    selected.sort_by_key(|c| c.id != "training");
    let mut ctx = context(dir.path(), "roster.csv", Duration::from_secs(20));
    let mut sources = (*ctx.sources).clone();
    sources.policies = Some(trellis::config::PoliciesSource {
        path: "policies".into(),
    });
    ctx.sources = Arc::new(sources);
    let watch = Watch {
        events: Mutex::new(Vec::new()),
        statuses: Mutex::new(Vec::new()),
        roster,
    };
    let totals = runner::stream(&ctx, &selected, 4, &NoSink, &watch)
        .await
        .unwrap();
    assert_eq!(
        *watch.events.lock().unwrap(),
        [
            "collected 1/2",
            "evaluated policy",
            "collected 2/2",
            "evaluated training"
        ]
    );
    // The roster was read (everyone employed has a training date), not timed out.
    let statuses = watch.statuses.lock().unwrap();
    assert_eq!(
        statuses[1],
        ("training".to_string(), Status::Pass),
        "{statuses:?}"
    );
    assert_eq!(totals.controls, 2);
}
