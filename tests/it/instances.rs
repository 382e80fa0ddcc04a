//! Several `trellis serve` processes on one database (issue 19): real processes, a real
//! database. A scheduled slot runs once whichever instance claims it; the units of one run go
//! to different instances; an instance killed with SIGKILL mid-collection has its work
//! finished by another; a run is cancelled between collections; SIGTERM hands a unit in
//! progress back to the queue.
//!
//! Collections are held mid-way with a FIFO as the HR roster: the HR probe blocks opening it
//! until the test writes the roster into it.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use trellis::model::RunState;
use trellis::store::Store;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A database for one test: a fresh PostgreSQL database when `TRELLIS_TEST_POSTGRES_URL` is
/// set, else `None` (the test says so and passes without running).
async fn postgres(test: &str) -> Option<String> {
    let Some((_, url)) = crate::common::app::postgres_env(test).await else {
        eprintln!("{test}: TRELLIS_TEST_POSTGRES_URL is not set; skipped");
        return None;
    };
    Some(url)
}

/// A configuration with two controls: `background-checks` (HR roster, here a FIFO) and
/// `code-of-conduct` (policy documents), both scheduled by `schedule`.
struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    fifo: PathBuf,
    url: String,
}

impl Setup {
    fn new(url: &str, schedule: &str, extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let controls = dir.path().join("controls");
        std::fs::create_dir_all(&controls).unwrap();
        for (category, id) in [
            ("organizational-management", "background-checks"),
            ("organizational-management", "code-of-conduct"),
        ] {
            let text = std::fs::read_to_string(
                repo()
                    .join("controls")
                    .join(category)
                    .join(format!("{id}.yaml")),
            )
            .unwrap();
            let text: String = text
                .lines()
                .map(|l| {
                    if l.starts_with("schedule:") {
                        format!("schedule: \"{schedule}\"\n")
                    } else {
                        format!("{l}\n")
                    }
                })
                .collect();
            std::fs::write(controls.join(format!("{id}.yaml")), text).unwrap();
        }
        let fifo = dir.path().join("roster.csv");
        assert!(
            Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let config = dir.path().join("trellis.yaml");
        std::fs::write(
            &config,
            format!(
                "database_url: \"{url}\"\ncontrols_dir: {}\nlimits:\n  probe_timeout: 10m\n  lease: 2s\n  queue_poll: 200ms\n  shutdown_grace: 1s\n{extra}server:\n  bind: 127.0.0.1:0\nsources:\n  hr:\n    path: {}\n  policies:\n    path: {}\n",
                controls.display(),
                fifo.display(),
                repo().join("examples/policies").display(),
            ),
        )
        .unwrap();
        Setup {
            _dir: dir,
            config,
            fifo,
            url: url.to_string(),
        }
    }

    fn serve(&self) -> Instance {
        serve(&self.config)
    }

    /// Writes the example roster into the FIFO once a reader opens it (on a thread: opening a
    /// FIFO for writing blocks until then).
    fn release_roster(&self) -> std::thread::JoinHandle<()> {
        let fifo = self.fifo.clone();
        std::thread::spawn(move || {
            let roster = std::fs::read(repo().join("examples/roster.csv")).unwrap();
            std::fs::write(fifo, roster).unwrap();
        })
    }

    fn trellis(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_trellis"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env_remove("TRELLIS_CONFIG")
            .env("TRELLIS_USER", "casey")
            .output()
            .unwrap()
    }

    fn verify(&self) {
        let out = self.trellis(&["verify"]);
        assert!(
            out.status.success(),
            "trellis verify failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    async fn store(&self) -> Store {
        Store::connect(&self.url).await.unwrap()
    }
}

/// Starts `trellis serve --config CONFIG` and waits until it serves; its log is kept.
pub(crate) fn serve(config: &std::path::Path) -> Instance {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(["serve", "--config"])
        .arg(config)
        .env_remove("TRELLIS_CONFIG")
        .env("TRELLIS_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    let kept = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let mut log = kept.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let instance = Instance { child, log };
    instance.wait_for_log("trellis is serving");
    instance
}

pub(crate) struct Instance {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Instance {
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub(crate) fn wait_for_log(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.log().contains(what) {
            assert!(
                Instant::now() < deadline,
                "no `{what}` in the log within a minute:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits (at most a minute) for the process to exit; returns its status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) with a valid signal on a child of this process.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "did not exit within a minute of SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}

pub(crate) async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The run whose HR unit is claimed, and the claimer's instance name.
async fn hr_unit_claimed(store: &Store) -> (String, String) {
    wait_for("the HR unit to be claimed", || async {
        for run in store.runs(10).await.unwrap() {
            for unit in store.run_units(&run.id).await.unwrap() {
                if unit.controls.contains("background-checks") && unit.state == "claimed" {
                    return Some((run.id.clone(), unit.owner.clone().unwrap()));
                }
            }
        }
        None
    })
    .await
}

async fn closed(store: &Store, run: &str) -> trellis::store::RunSummary {
    wait_for("the run to close", || async {
        store
            .run(run)
            .await
            .unwrap()
            .filter(|r| r.state != RunState::Running)
    })
    .await
}

/// Waits until `control` has a result in `run`.
async fn result_stored(store: &Store, run: &str, control: &str) {
    wait_for(&format!("{control}'s result"), || async {
        let results = store.run_results(run).await.unwrap();
        results
            .iter()
            .any(|r| r.control_id == control)
            .then_some(())
    })
    .await;
}

/// Each control has exactly one result in `run`.
async fn one_result_each(store: &Store, run: &str, controls: &[&str]) {
    let results = store.run_results(run).await.unwrap();
    let mut ids: Vec<&str> = results.iter().map(|r| r.control_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, controls, "results of run {run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_run_each_scheduled_slot_exactly_once() {
    let Some(url) = postgres("three_instances").await else {
        return;
    };
    // Every 2 s; the roster is a plain file here (nothing blocks).
    let setup = Setup::new(&url, "*/2 * * * * *", "");
    std::fs::remove_file(&setup.fifo).unwrap();
    std::fs::copy(repo().join("examples/roster.csv"), &setup.fifo).unwrap();
    // The first creates the signing key; the others start together.
    let mut instances = vec![setup.serve()];
    let (b, c) = std::thread::scope(|s| {
        let b = s.spawn(|| setup.serve());
        let c = s.spawn(|| setup.serve());
        (b.join().unwrap(), c.join().unwrap())
    });
    instances.push(b);
    instances.push(c);
    tokio::time::sleep(Duration::from_secs(14)).await;
    for i in &mut instances {
        assert!(i.terminate().success(), "{}", i.log());
    }
    let store = setup.store().await;
    let claims = store.slot_claims().await.unwrap();
    for control in ["background-checks", "code-of-conduct"] {
        let mut times: Vec<chrono::DateTime<chrono::Utc>> = claims
            .iter()
            .filter(|c| c.control_id == control)
            .filter_map(|c| c.slot.strip_prefix("schedule:"))
            .map(|t| t.parse().unwrap())
            .collect();
        times.sort_unstable();
        // Several slots, every one claimed once: 2 s apart, none missing, none twice.
        assert!(times.len() >= 4, "{control}: {times:?}");
        for pair in times.windows(2) {
            assert_eq!(
                pair[1] - pair[0],
                chrono::Duration::seconds(2),
                "{control}: {times:?}"
            );
        }
    }
    // Each claimed slot that became a run has that control's one result; every run closed.
    let mut by_run: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for claim in &claims {
        if let Some(run) = &claim.run_id {
            by_run.entry(run).or_default().push(&claim.control_id);
        }
    }
    assert!(!by_run.is_empty());
    for (run, controls) in &by_run {
        let summary = store.run(run).await.unwrap().unwrap();
        assert_eq!(summary.state, RunState::Completed, "{summary:?}");
        let mut controls = controls.clone();
        controls.sort_unstable();
        one_result_each(&store, run, &controls).await;
    }
    for run in store.runs(1000).await.unwrap() {
        assert_ne!(run.state, RunState::Running, "{run:?}");
        assert_eq!(run.error, None, "{run:?}");
    }
    let mut winners: std::collections::BTreeMap<&str, usize> = Default::default();
    for claim in &claims {
        *winners.entry(claim.claimed_by.as_str()).or_default() += 1;
    }
    eprintln!(
        "{} slot claims over 14 s by {} instances: {winners:?}",
        claims.len(),
        instances.len()
    );
    // Every slot was contested: in any slot two instances lost, so at least two said so.
    let losers = instances
        .iter()
        .filter(|i| i.log().contains("slot claimed by another instance"))
        .count();
    assert!(losers >= 2, "{losers} instances lost a slot");
    setup.verify();
}

/// The instance holding the HR unit is killed with SIGKILL mid-collection: once its lease
/// expires another instance claims the unit and finishes the run, each control evaluated once.
async fn a_killed_instance_s_work_is_finished_by_another(url: &str) {
    let far = "0 0 1 1 *";
    let setup = Setup::new(url, far, "");
    let mut first = setup.serve();
    let store = setup.store().await;
    let (run, owner) = hr_unit_claimed(&store).await;
    assert!(owner.contains(&format!(":{}:", first.pid())), "{owner}");
    first.kill9();
    let killed = Instant::now();

    // On SQLite the second starts once the first is gone; on PostgreSQL it could run beside.
    let second = setup.serve();
    let writer = setup.release_roster();
    let summary = closed(&store, &run).await;
    writer.join().unwrap();
    eprintln!(
        "run {run}: closed {:?} after the instance holding its HR unit was killed (lease 2 s)",
        killed.elapsed()
    );
    assert_eq!(
        summary.state,
        RunState::Completed,
        "{summary:?}\n{}",
        second.log()
    );
    assert_eq!(summary.error, None);
    one_result_each(&store, &run, &["background-checks", "code-of-conduct"]).await;
    let units = store.run_units(&run).await.unwrap();
    let hr = units
        .iter()
        .find(|u| u.controls.contains("background-checks"))
        .unwrap();
    assert_eq!(hr.state, "done");
    assert_eq!(hr.attempts, 2, "{units:?}");
    assert!(
        hr.owner
            .as_deref()
            .is_some_and(|o| o.contains(&format!(":{}:", second.pid()))),
        "{units:?}"
    );
    // No second run was queued for the same startup slot.
    assert_eq!(store.runs(10).await.unwrap().len(), 1);
    drop(second);
    setup.verify();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_s_work_is_finished_by_another_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    a_killed_instance_s_work_is_finished_by_another(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_s_work_is_finished_by_another_on_postgres() {
    if let Some(url) = postgres("killed_instance").await {
        a_killed_instance_s_work_is_finished_by_another(&url).await;
    }
}

/// `trellis runs cancel` stops a run between collections: the unit held mid-collection stops,
/// the run closes `cancelled` naming who asked, the request is audited, and what was stored
/// stays.
async fn a_run_is_cancelled_between_collections(url: &str) {
    let setup = Setup::new(url, "0 0 1 1 *", "");
    let instance = setup.serve();
    let store = setup.store().await;
    let (run, _) = hr_unit_claimed(&store).await;
    // The policies unit finishes meanwhile.
    result_stored(&store, &run, "code-of-conduct").await;
    let out = setup.trellis(&["runs", "cancel", &run]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("cancel requested by casey"),
        "{out:?}"
    );
    let summary = closed(&store, &run).await;
    assert_eq!(summary.state, RunState::Cancelled, "{}", instance.log());
    assert_eq!(summary.error.as_deref(), Some("cancelled by casey"));
    one_result_each(&store, &run, &["code-of-conduct"]).await;
    let units = store.run_units(&run).await.unwrap();
    assert!(units.iter().any(|u| u.state == "cancelled"), "{units:?}");
    let audit = store.audit_log(Some("run.cancel"), 10, 0).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor, "casey");
    assert_eq!(audit[0].target, format!("run:{run}"));
    // Closed: a second cancel says so.
    let again = setup.trellis(&["runs", "cancel", &run]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("is not running (it is cancelled)"),
        "{again:?}"
    );
    let listed = setup.trellis(&["runs", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&format!("{run}  cancelled")));
    drop(instance);
    setup.verify();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_cancelled_between_collections_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    a_run_is_cancelled_between_collections(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_cancelled_between_collections_on_postgres() {
    if let Some(url) = postgres("cancelled_run").await {
        a_run_is_cancelled_between_collections(&url).await;
    }
}

/// SIGTERM: the instance stops claiming, gives its unit the shutdown grace, hands it back to
/// the queue at once (not waiting for the lease) and exits 0; the other instance finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_the_unit_back_and_another_instance_finishes_it() {
    let Some(url) = postgres("sigterm").await else {
        return;
    };
    let setup = Setup::new(&url, "0 0 1 1 *", "");
    let mut a = setup.serve();
    let store = setup.store().await;
    let (run, owner) = hr_unit_claimed(&store).await;
    assert!(owner.contains(&format!(":{}:", a.pid())), "{owner}");
    let mut b = setup.serve();
    let status = a.terminate();
    assert!(status.success(), "{status:?}\n{}", a.log());
    assert!(
        a.log()
            .contains("shutting down: unit released to the queue"),
        "{}",
        a.log()
    );
    let writer = setup.release_roster();
    let summary = closed(&store, &run).await;
    writer.join().unwrap();
    assert_eq!(summary.state, RunState::Completed, "{}", b.log());
    one_result_each(&store, &run, &["background-checks", "code-of-conduct"]).await;
    let hr = store
        .run_units(&run)
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.controls.contains("background-checks"))
        .unwrap();
    // Released, not expired: the first claim is not counted as an attempt.
    assert_eq!(hr.attempts, 1);
    assert!(hr.owner.unwrap().contains(&format!(":{}:", b.pid())));
    assert!(b.terminate().success());
    setup.verify();
}

/// Two instances asked to run the same control at the same moment start one run between them;
/// the other answers that it is already running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_racing_on_run_now_start_one_run() {
    let Some(url) = postgres("run_now_race").await else {
        return;
    };
    let setup = Setup::new(&url, "0 0 1 1 *", "");
    let store = setup.store().await;
    let build = || async {
        let loaded = trellis::config::load(Some(&setup.config)).unwrap();
        trellis::startup::Application::build(loaded, trellis::startup::BuildOptions::default())
            .await
            .unwrap()
    };
    let a = build().await;
    let b = build().await;
    // Each instance's startup run: one of them queues it, the other finds the slot taken.
    let (startup, _) = hr_unit_claimed(&store).await;
    let writer = setup.release_roster();
    closed(&store, &startup).await;
    writer.join().unwrap();
    assert_eq!(store.runs(10).await.unwrap().len(), 1);

    // background-checks waits on the roster FIFO, so the run that wins stays in flight.
    let (ha, hb) = (a.scheduler().unwrap(), b.scheduler().unwrap());
    let control = vec!["background-checks".to_string()];
    let (ra, rb) = tokio::join!(ha.run_now(control.clone()), hb.run_now(control.clone()));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let started: Vec<_> = [&ra, &rb].iter().filter_map(|r| r.run_id.clone()).collect();
    assert_eq!(started.len(), 1, "{ra:?} {rb:?}");
    let refused = if ra.run_id.is_some() { &rb } else { &ra };
    assert_eq!(refused.already_running, control, "{refused:?}");
    assert!(refused.queued.is_empty());
    let writer = setup.release_roster();
    let summary = closed(&store, &started[0]).await;
    writer.join().unwrap();
    assert_eq!(summary.state, RunState::Completed);
    one_result_each(&store, &started[0], &["background-checks"]).await;
    assert_eq!(store.runs(10).await.unwrap().len(), 2);
    drop((a, b));
}

/// The units of one run go to different instances: with one worker each, the first instance
/// is held by the HR unit (the roster FIFO), and the second takes the policies unit of the same
/// run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_s_units_are_worked_by_different_instances() {
    let Some(url) = postgres("units_shared").await else {
        return;
    };
    let setup = Setup::new(&url, "0 0 1 1 *", "  workers: 1\n");
    let a = setup.serve();
    let store = setup.store().await;
    let (run, owner) = hr_unit_claimed(&store).await;
    assert!(owner.contains(&format!(":{}:", a.pid())), "{owner}");
    let b = setup.serve();
    result_stored(&store, &run, "code-of-conduct").await;
    let writer = setup.release_roster();
    let summary = closed(&store, &run).await;
    writer.join().unwrap();
    assert_eq!(
        summary.state,
        RunState::Completed,
        "{}\n{}",
        a.log(),
        b.log()
    );
    one_result_each(&store, &run, &["background-checks", "code-of-conduct"]).await;
    let owners: Vec<(String, String)> = store
        .run_units(&run)
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.controls, u.owner.unwrap_or_default()))
        .collect();
    assert_eq!(owners.len(), 2, "{owners:?}");
    for (controls, owner) in &owners {
        let pid = if controls.contains("background-checks") {
            a.pid()
        } else {
            b.pid()
        };
        assert!(owner.contains(&format!(":{pid}:")), "{owners:?}");
    }
    assert_eq!(store.runs(10).await.unwrap().len(), 1);
    drop((a, b));
    setup.verify();
}
