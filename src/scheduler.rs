//! The cron loop: runs controls on their schedules.
//!
//! One task owns all scheduling state. It sleeps until the earliest next fire time, a
//! "run now" request (web handlers never call probes: they send a request over a channel
//! through [`SchedulerHandle`]), a finished run, or shutdown. Runs execute as spawned tasks so a
//! slow control never delays other controls' schedules.
//!
//! Invariants:
//! - never two overlapping runs of the same control: a control still running when it comes due
//!   (or is requested) is skipped and logged, not queued;
//! - controls due at the same instant share one run (one shared fetch cache);
//! - a run that fails (or panics) is logged; the loop carries on;
//! - missed fire times (suspend, clock jump, long startup) are coalesced into one run, never
//!   replayed in a burst.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::model::Trigger;
use crate::schedule::CronSchedule;

/// How long shutdown waits for in-flight runs before abandoning them (they are marked
/// interrupted at the next start).
pub const SHUTDOWN_GRACE: StdDuration = StdDuration::from_secs(30);

/// Longest single sleep: the loop re-reads the clock at least this often, so a wall-clock jump
/// (suspend/resume, NTP step) delays a fire time by at most this much.
const MAX_SLEEP: StdDuration = StdDuration::from_secs(60);

/// Pending "run now" requests; senders wait when it is full.
const COMMAND_BUFFER: usize = 64;

/// A control as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct ScheduledControl {
    pub id: String,
    pub schedule: CronSchedule,
    /// At start, a control whose newest successful evaluation is older than this (or missing)
    /// runs immediately.
    pub freshness: chrono::Duration,
}

/// A boxed, sendable future borrowing the executor.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What an executor began: the run it recorded (if any control was left to run) and the
/// controls it left out because a run elsewhere (another instance) has them or claimed their
/// slot first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Began {
    pub run_id: Option<String>,
    pub elsewhere: Vec<String>,
}

/// Where an executor says which run it began, once the run is recorded (so whoever asked for
/// it can show it). Dropping it unsent means the run never began.
#[derive(Debug, Default)]
pub struct Begun(Option<oneshot::Sender<Began>>);

impl Begun {
    /// Nobody is waiting (scheduled and startup runs).
    pub fn unwatched() -> Begun {
        Begun(None)
    }

    /// Reports the run's id; a requester that went away is no error.
    pub fn report(self, run_id: &str) {
        self.report_began(Began {
            run_id: Some(run_id.to_string()),
            elsewhere: Vec::new(),
        });
    }

    /// Reports what began.
    pub fn report_began(self, began: Began) {
        if let Some(tx) = self.0 {
            // The requester may have gone away; the run goes ahead regardless.
            let _ = tx.send(began);
        }
    }
}

/// What the scheduler drives; implemented elsewhere (runner + store). Object-safe.
pub trait Executor: Send + Sync + 'static {
    /// Runs these controls as one run; resolves when the run is closed. Calls `begun.report`
    /// as soon as the run is recorded, before any probe runs. `slots`: for scheduled and
    /// startup runs, the slot each control is due for (`schedule:<time>`,
    /// `startup:<last success>@<window>`); an executor shared by several instances runs a
    /// control once per slot, whichever instance asks first.
    fn run(
        &self,
        controls: Vec<String>,
        trigger: Trigger,
        slots: HashMap<String, String>,
        begun: Begun,
    ) -> BoxFuture<'_, anyhow::Result<()>>;
    /// Newest successful evaluation time per control (for "on start, run what is stale").
    fn last_success(&self) -> BoxFuture<'_, anyhow::Result<HashMap<String, DateTime<Utc>>>>;
    /// Marks runs cut off by a crash as interrupted; called once at start, before any run.
    /// Returns how many were marked.
    fn mark_interrupted(&self) -> BoxFuture<'_, anyhow::Result<u64>>;
}

/// How long instances starting together share one startup run of a stale control: their
/// startup slots fall in the same window.
const STARTUP_WINDOW_SECS: i64 = 15 * 60;

/// The startup slot of each stale control: its last success as this instance read it, and the
/// window of `now`. Instances that start together and read the same last success claim the same
/// slot, so only one runs the control; a restart in a later window runs it again if it is
/// still stale.
fn startup_slots(
    stale: &[String],
    last: &HashMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> HashMap<String, String> {
    let window = now.timestamp().div_euclid(STARTUP_WINDOW_SECS) * STARTUP_WINDOW_SECS;
    stale
        .iter()
        .map(|c| {
            let seen = last.get(c).map_or_else(
                || "never".to_string(),
                |t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            );
            (c.clone(), format!("startup:{seen}@{window}"))
        })
        .collect()
}

/// Wall-clock time, injectable for tests.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// A clock stopped at one instant (tests, and reproducing a day's page).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The answer to a "run now" request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunNowAccepted {
    /// Started as one run (trigger `Manual`).
    pub queued: Vec<String>,
    /// Skipped: a run of these is in flight.
    pub already_running: Vec<String>,
    /// Skipped: no such control.
    pub unknown: Vec<String>,
    /// The id of the run that was started, once it is recorded; `None` if nothing was queued
    /// or the run failed before it was recorded (the log says why).
    pub run_id: Option<String>,
}

/// How long "run now" waits for a started run to be recorded before answering without its id.
const BEGIN_WAIT: StdDuration = StdDuration::from_secs(10);

/// The scheduler has shut down (or is shutting down) and takes no more requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the scheduler has stopped")]
pub struct SchedulerStopped;

#[derive(Debug)]
enum Command {
    RunNow {
        controls: Vec<String>,
        reply: oneshot::Sender<RunNowAccepted>,
        begun: Begun,
    },
}

/// Cheap to clone; hand one to each web worker.
#[derive(Debug, Clone)]
pub struct SchedulerHandle {
    tx: mpsc::Sender<Command>,
}

impl SchedulerHandle {
    /// Asks for an immediate run of these controls (empty = all), as one run with trigger
    /// `Manual`. Controls already running are not started twice: the answer says which were
    /// queued, which were already running and which are unknown. Resolves once the run is
    /// recorded (its id in the answer, so it can be shown at once), not when it finishes.
    /// Err if the scheduler stopped.
    pub async fn run_now(&self, controls: Vec<String>) -> Result<RunNowAccepted, SchedulerStopped> {
        let (reply, answer) = oneshot::channel();
        let (begun, run_id) = oneshot::channel();
        self.tx
            .send(Command::RunNow {
                controls,
                reply,
                begun: Begun(Some(begun)),
            })
            .await
            .map_err(|_| SchedulerStopped)?;
        let mut accepted = answer.await.map_err(|_| SchedulerStopped)?;
        if !accepted.queued.is_empty() {
            // Otherwise it failed before it was recorded, or the store is slow: the run's own
            // log says.
            if let Ok(Ok(began)) = tokio::time::timeout(BEGIN_WAIT, run_id).await {
                accepted.run_id = began.run_id;
                // Running elsewhere (another instance): not queued here.
                accepted.queued.retain(|c| !began.elsewhere.contains(c));
                accepted.already_running.extend(began.elsewhere);
            }
        }
        Ok(accepted)
    }
}

/// Starts the scheduler with the default [`SHUTDOWN_GRACE`]. The returned `JoinHandle`
/// completes after `shutdown` is cancelled and in-flight runs finished (or the grace ran out).
pub fn spawn(
    controls: Vec<ScheduledControl>,
    executor: Arc<dyn Executor>,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) -> (SchedulerHandle, JoinHandle<()>) {
    spawn_with_grace(controls, executor, clock, shutdown, SHUTDOWN_GRACE)
}

/// [`spawn`] with an explicit shutdown grace period.
pub fn spawn_with_grace(
    controls: Vec<ScheduledControl>,
    executor: Arc<dyn Executor>,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
    grace: StdDuration,
) -> (SchedulerHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(COMMAND_BUFFER);
    let scheduler = Scheduler::new(controls, executor, clock);
    let task = tokio::spawn(scheduler.run(rx, shutdown, grace));
    (SchedulerHandle { tx }, task)
}

struct Entry {
    control: ScheduledControl,
    /// `None`: never fires again (or not yet computed).
    next: Option<DateTime<Utc>>,
}

struct Scheduler {
    entries: Vec<Entry>,
    executor: Arc<dyn Executor>,
    clock: Arc<dyn Clock>,
    /// Controls with a run in flight.
    running: HashSet<String>,
    tasks: JoinSet<()>,
    /// Which controls each in-flight task runs (also recovered when a task panics).
    task_controls: HashMap<tokio::task::Id, Vec<String>>,
}

impl Scheduler {
    fn new(
        controls: Vec<ScheduledControl>,
        executor: Arc<dyn Executor>,
        clock: Arc<dyn Clock>,
    ) -> Scheduler {
        let mut seen = HashSet::new();
        let mut entries = Vec::with_capacity(controls.len());
        for control in controls {
            if !seen.insert(control.id.clone()) {
                warn!(control = %control.id, "duplicate control id given to the scheduler; keeping the first");
                continue;
            }
            entries.push(Entry {
                control,
                next: None,
            });
        }
        Scheduler {
            entries,
            executor,
            clock,
            running: HashSet::new(),
            tasks: JoinSet::new(),
            task_controls: HashMap::new(),
        }
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        shutdown: CancellationToken,
        grace: StdDuration,
    ) {
        info!(controls = self.entries.len(), "scheduler starting");
        if self.startup(&shutdown).await {
            let now = self.clock.now();
            for entry in &mut self.entries {
                entry.next = entry.control.schedule.next_after(now);
                if entry.next.is_none() {
                    warn!(control = %entry.control.id, schedule = %entry.control.schedule, "schedule never fires");
                }
            }
            let mut commands_open = true;
            loop {
                let now = self.clock.now();
                self.fire_due(now);
                let sleep_for = self.time_until_next(now);
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                        self.finished(done);
                    }
                    command = rx.recv(), if commands_open => match command {
                        Some(command) => self.handle(command),
                        // Every handle dropped: keep scheduling.
                        None => commands_open = false,
                    },
                    () = tokio::time::sleep(sleep_for) => {}
                }
            }
        }
        // Refuse further requests; queued ones get `SchedulerStopped`.
        rx.close();
        drop(rx);
        self.drain(grace).await;
    }

    /// Marks interrupted runs, then runs what is stale. False if shutdown came first.
    async fn startup(&mut self, shutdown: &CancellationToken) -> bool {
        let executor = Arc::clone(&self.executor);
        let marked = tokio::select! {
            () = shutdown.cancelled() => return false,
            marked = executor.mark_interrupted() => marked,
        };
        match marked {
            Ok(0) => {}
            Ok(n) => warn!(
                runs = n,
                "marked runs cut off by the previous stop as interrupted"
            ),
            Err(e) => error!(error = format!("{e:#}"), "could not mark interrupted runs"),
        }
        let last = tokio::select! {
            () = shutdown.cancelled() => return false,
            last = executor.last_success() => last,
        };
        let now = self.clock.now();
        let last_seen = last.as_ref().ok().cloned().unwrap_or_default();
        let stale: Vec<String> = match last {
            Ok(last) => self
                .entries
                .iter()
                .filter(|e| {
                    last.get(&e.control.id)
                        .is_none_or(|&t| now - t > e.control.freshness)
                })
                .map(|e| e.control.id.clone())
                .collect(),
            Err(e) => {
                error!(
                    error = format!("{e:#}"),
                    "could not read last successful evaluations; running every control"
                );
                self.entries.iter().map(|e| e.control.id.clone()).collect()
            }
        };
        if stale.is_empty() {
            info!("startup: every control is fresh");
        } else {
            info!(controls = ?stale, "startup: running stale or never-evaluated controls");
            let slots = startup_slots(&stale, &last_seen, now);
            self.start_run(stale, Trigger::Startup, slots, Begun::unwatched());
        }
        true
    }

    /// Starts one run of every control due at or before `now` and computes their next times.
    fn fire_due(&mut self, now: DateTime<Utc>) {
        let mut due = Vec::new();
        let mut slots = HashMap::new();
        for entry in &mut self.entries {
            let Some(next) = entry.next else { continue };
            if next > now {
                continue;
            }
            let late = now - next;
            if late > chrono::Duration::minutes(1) {
                warn!(control = %entry.control.id, due = %next, late_secs = late.num_seconds(), "firing late; missed times are not replayed");
            }
            due.push(entry.control.id.clone());
            slots.insert(
                entry.control.id.clone(),
                format!(
                    "schedule:{}",
                    next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            );
            // From `now`, not `next`: missed times coalesce into this one run.
            entry.next = entry.control.schedule.next_after(now);
        }
        if !due.is_empty() {
            self.start_run(due, Trigger::Schedule, slots, Begun::unwatched());
        }
    }

    fn time_until_next(&self, now: DateTime<Utc>) -> StdDuration {
        self.entries
            .iter()
            .filter_map(|e| e.next)
            .min()
            .map_or(MAX_SLEEP, |next| {
                (next - now)
                    .to_std()
                    .unwrap_or(StdDuration::ZERO)
                    .min(MAX_SLEEP)
            })
    }

    /// Starts one run of `controls` minus those already running; returns (started, skipped).
    fn start_run(
        &mut self,
        controls: Vec<String>,
        trigger: Trigger,
        slots: HashMap<String, String>,
        begun: Begun,
    ) -> (Vec<String>, Vec<String>) {
        let (busy, free): (Vec<String>, Vec<String>) =
            controls.into_iter().partition(|c| self.running.contains(c));
        for control in &busy {
            warn!(control = %control, trigger = trigger.as_str(), "control is still running; not starting it again");
        }
        if free.is_empty() {
            return (free, busy);
        }
        self.running.extend(free.iter().cloned());
        let executor = Arc::clone(&self.executor);
        let controls = free.clone();
        let abort = self.tasks.spawn(async move {
            info!(controls = ?controls, trigger = trigger.as_str(), "run starting");
            let started = tokio::time::Instant::now();
            match executor.run(controls.clone(), trigger, slots, begun).await {
                Ok(()) => info!(
                    controls = ?controls,
                    trigger = trigger.as_str(),
                    elapsed_ms = started.elapsed().as_millis(),
                    "run finished"
                ),
                Err(e) => error!(
                    controls = ?controls,
                    trigger = trigger.as_str(),
                    error = format!("{e:#}"),
                    "run failed"
                ),
            }
        });
        self.task_controls.insert(abort.id(), free.clone());
        (free, busy)
    }

    fn finished(&mut self, done: Result<(tokio::task::Id, ()), JoinError>) {
        let id = match &done {
            Ok((id, ())) => *id,
            Err(e) => e.id(),
        };
        let controls = self.task_controls.remove(&id).unwrap_or_default();
        if let Err(e) = &done {
            if e.is_panic() {
                error!(controls = ?controls, "run panicked");
            } else {
                warn!(controls = ?controls, "run was cancelled");
            }
        }
        for control in &controls {
            self.running.remove(control);
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::RunNow {
                controls,
                reply,
                begun,
            } => {
                let requested: Vec<String> = if controls.is_empty() {
                    self.entries.iter().map(|e| e.control.id.clone()).collect()
                } else {
                    let mut seen = HashSet::new();
                    controls
                        .into_iter()
                        .filter(|c| seen.insert(c.clone()))
                        .collect()
                };
                let (known, unknown): (Vec<String>, Vec<String>) = requested
                    .into_iter()
                    .partition(|c| self.entries.iter().any(|e| &e.control.id == c));
                if !unknown.is_empty() {
                    debug!(controls = ?unknown, "run now: unknown controls");
                }
                let (queued, already_running) = if known.is_empty() {
                    (Vec::new(), Vec::new())
                } else {
                    self.start_run(known, Trigger::Manual, HashMap::new(), begun)
                };
                // The requester may have gone away; the run goes ahead regardless.
                let _ = reply.send(RunNowAccepted {
                    queued,
                    already_running,
                    unknown,
                    run_id: None,
                });
            }
        }
    }

    /// Waits for in-flight runs, up to `grace`; then abandons the rest.
    async fn drain(mut self, grace: StdDuration) {
        if !self.tasks.is_empty() {
            info!(running = ?self.running, grace_secs = grace.as_secs(), "scheduler stopping; waiting for in-flight runs");
            let waited = tokio::time::timeout(grace, async {
                while let Some(done) = self.tasks.join_next_with_id().await {
                    self.finished(done);
                }
            })
            .await;
            if waited.is_err() {
                warn!(running = ?self.running, "grace period over; abandoning in-flight runs (marked interrupted at next start)");
                self.tasks.shutdown().await;
            }
        }
        info!("scheduler stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Semaphore;
    use tokio::time::Instant;

    /// Wall clock tied to tokio's (paused) time.
    #[derive(Debug)]
    struct TokioClock {
        base: DateTime<Utc>,
        start: Instant,
    }

    impl Clock for TokioClock {
        fn now(&self) -> DateTime<Utc> {
            self.base + chrono::Duration::from_std(self.start.elapsed()).unwrap()
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[derive(Debug, Clone, PartialEq)]
    struct Call {
        controls: Vec<String>,
        trigger: Trigger,
        at: DateTime<Utc>,
    }

    #[derive(Default)]
    struct Behaviour {
        last_success: HashMap<String, DateTime<Utc>>,
        last_success_fails: bool,
        /// Runs containing any of these wait for a `gate` permit before finishing.
        blocking: HashSet<String>,
        fail: bool,
        panic: bool,
        /// Runs fail before they are recorded (`begun` dropped unsent).
        never_begin: bool,
        /// Controls another instance is running.
        elsewhere: HashSet<String>,
    }

    struct FakeExecutor {
        clock: Arc<TokioClock>,
        behaviour: Behaviour,
        gate: Semaphore,
        calls: mpsc::UnboundedSender<Call>,
        /// "mark", "last", "run" in call order.
        log: Mutex<Vec<&'static str>>,
        /// The slots of every run, in call order.
        slots: Mutex<Vec<HashMap<String, String>>>,
        finished: AtomicUsize,
    }

    impl Executor for FakeExecutor {
        fn run(
            &self,
            controls: Vec<String>,
            trigger: Trigger,
            slots: HashMap<String, String>,
            begun: Begun,
        ) -> BoxFuture<'_, anyhow::Result<()>> {
            Box::pin(async move {
                self.log.lock().unwrap().push("run");
                self.slots.lock().unwrap().push(slots);
                if self.behaviour.never_begin {
                    anyhow::bail!("store is down");
                }
                let elsewhere: Vec<String> = controls
                    .iter()
                    .filter(|c| self.behaviour.elsewhere.contains(*c))
                    .cloned()
                    .collect();
                let controls: Vec<String> = controls
                    .into_iter()
                    .filter(|c| !elsewhere.contains(c))
                    .collect();
                begun.report_began(Began {
                    run_id: (!controls.is_empty()).then(|| format!("run-{}", controls.join("+"))),
                    elsewhere,
                });
                let blocks = controls.iter().any(|c| self.behaviour.blocking.contains(c));
                let call = Call {
                    controls,
                    trigger,
                    at: self.clock.now(),
                };
                let _ = self.calls.send(call);
                if blocks {
                    self.gate.acquire().await.unwrap().forget();
                }
                if self.behaviour.panic {
                    panic!("executor panicked (on purpose)");
                }
                self.finished.fetch_add(1, Ordering::SeqCst);
                if self.behaviour.fail {
                    anyhow::bail!("probe exploded");
                }
                Ok(())
            })
        }

        fn last_success(&self) -> BoxFuture<'_, anyhow::Result<HashMap<String, DateTime<Utc>>>> {
            Box::pin(async move {
                self.log.lock().unwrap().push("last");
                if self.behaviour.last_success_fails {
                    anyhow::bail!("database is down");
                }
                Ok(self.behaviour.last_success.clone())
            })
        }

        fn mark_interrupted(&self) -> BoxFuture<'_, anyhow::Result<u64>> {
            Box::pin(async move {
                self.log.lock().unwrap().push("mark");
                Ok(2)
            })
        }
    }

    /// Monday 2026-11-23, 30 s before 09:00 (no ties with whole minutes).
    const BASE: &str = "2026-11-23T08:59:30Z";

    struct Harness {
        executor: Arc<FakeExecutor>,
        handle: SchedulerHandle,
        join: JoinHandle<()>,
        shutdown: CancellationToken,
        calls: mpsc::UnboundedReceiver<Call>,
        start: Instant,
    }

    fn control(id: &str, schedule: &str) -> ScheduledControl {
        ScheduledControl {
            id: id.into(),
            schedule: CronSchedule::parse(schedule).unwrap(),
            freshness: chrono::Duration::days(1),
        }
    }

    /// Every control fresh unless `behaviour` says otherwise.
    fn fresh(controls: &[ScheduledControl]) -> HashMap<String, DateTime<Utc>> {
        controls.iter().map(|c| (c.id.clone(), at(BASE))).collect()
    }

    fn start(controls: Vec<ScheduledControl>, behaviour: Behaviour) -> Harness {
        start_with(controls, behaviour, None)
    }

    fn start_with(
        controls: Vec<ScheduledControl>,
        behaviour: Behaviour,
        grace: Option<StdDuration>,
    ) -> Harness {
        let now = Instant::now();
        let clock = Arc::new(TokioClock {
            base: at(BASE),
            start: now,
        });
        let (tx, calls) = mpsc::unbounded_channel();
        let executor = Arc::new(FakeExecutor {
            clock: Arc::clone(&clock),
            behaviour,
            gate: Semaphore::new(0),
            calls: tx,
            log: Mutex::new(Vec::new()),
            slots: Mutex::new(Vec::new()),
            finished: AtomicUsize::new(0),
        });
        let shutdown = CancellationToken::new();
        let exec: Arc<dyn Executor> = executor.clone();
        let (handle, join) = match grace {
            Some(g) => spawn_with_grace(controls, exec, clock, shutdown.clone(), g),
            None => spawn(controls, exec, clock, shutdown.clone()),
        };
        Harness {
            executor,
            handle,
            join,
            shutdown,
            calls,
            start: now,
        }
    }

    impl Harness {
        /// The next executor call; fails after an hour of (paused) silence.
        async fn next_call(&mut self) -> Call {
            tokio::time::timeout(StdDuration::from_secs(3600), self.calls.recv())
                .await
                .expect("no executor call within an hour")
                .expect("executor dropped")
        }

        /// Stops the scheduler and returns the calls it made that were not yet consumed.
        async fn stop(mut self) -> Vec<Call> {
            self.shutdown.cancel();
            self.executor.gate.add_permits(1000);
            tokio::time::timeout(StdDuration::from_secs(60), self.join)
                .await
                .expect("scheduler did not stop")
                .unwrap();
            let mut rest = Vec::new();
            while let Ok(call) = self.calls.try_recv() {
                rest.push(call);
            }
            rest
        }
    }

    fn call(controls: &[&str], trigger: Trigger, t: &str) -> Call {
        Call {
            controls: controls.iter().map(|c| c.to_string()).collect(),
            trigger,
            at: at(t),
        }
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|c| c.to_string()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn startup_runs_exactly_the_stale_and_missing_controls() {
        let far = "0 0 1 1 *";
        let controls = vec![
            control("fresh", far),
            control("stale", far),
            control("missing", far),
            control("almost", far),
        ];
        let base = at(BASE);
        let last = HashMap::from([
            ("fresh".to_string(), base - chrono::Duration::hours(1)),
            ("stale".to_string(), base - chrono::Duration::days(2)),
            (
                "almost".to_string(),
                base - chrono::Duration::days(1) + chrono::Duration::seconds(1),
            ),
        ]);
        let mut h = start(
            controls,
            Behaviour {
                last_success: last,
                ..Behaviour::default()
            },
        );
        assert_eq!(
            h.next_call().await,
            call(&["stale", "missing"], Trigger::Startup, BASE)
        );
        assert_eq!(*h.executor.log.lock().unwrap(), ["mark", "last", "run"]);
        tokio::time::sleep(StdDuration::from_secs(3 * 3600)).await;
        assert_eq!(h.stop().await, []);
    }

    #[tokio::test(start_paused = true)]
    async fn startup_runs_everything_when_last_success_is_unreadable() {
        let controls = vec![control("a", "0 0 1 1 *"), control("b", "0 0 1 1 *")];
        let mut h = start(
            controls,
            Behaviour {
                last_success_fails: true,
                ..Behaviour::default()
            },
        );
        assert_eq!(
            h.next_call().await,
            call(&["a", "b"], Trigger::Startup, BASE)
        );
        assert_eq!(h.stop().await, []);
    }

    #[tokio::test(start_paused = true)]
    async fn schedules_fire_at_the_expected_instants_and_share_runs() {
        let controls = vec![control("a", "*/15 * * * *"), control("b", "0,30 * * * *")];
        let last_success = fresh(&controls);
        let mut h = start(
            controls,
            Behaviour {
                last_success,
                ..Behaviour::default()
            },
        );
        assert_eq!(
            h.next_call().await,
            call(&["a", "b"], Trigger::Schedule, "2026-11-23T09:00:00Z")
        );
        assert_eq!(
            h.next_call().await,
            call(&["a"], Trigger::Schedule, "2026-11-23T09:15:00Z")
        );
        assert_eq!(
            h.next_call().await,
            call(&["a", "b"], Trigger::Schedule, "2026-11-23T09:30:00Z")
        );
        assert_eq!(h.stop().await, []);
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_control_is_not_started_again_when_due() {
        let controls = vec![control("a", "* * * * *")];
        let last_success = fresh(&controls);
        let mut h = start(
            controls,
            Behaviour {
                last_success,
                blocking: HashSet::from(["a".to_string()]),
                ..Behaviour::default()
            },
        );
        assert_eq!(
            h.next_call().await,
            call(&["a"], Trigger::Schedule, "2026-11-23T09:00:00Z")
        );
        // Due again at 09:01 and 09:02 while still running: skipped.
        tokio::time::sleep_until(h.start + StdDuration::from_secs(180)).await; // 09:02:30
        assert!(h.calls.try_recv().is_err());
        let answer = h.handle.run_now(vec![]).await.unwrap();
        assert_eq!(
            answer,
            RunNowAccepted {
                already_running: ids(&["a"]),
                ..RunNowAccepted::default()
            }
        );
        // Released: the next due time starts it again.
        h.executor.gate.add_permits(1);
        assert_eq!(
            h.next_call().await,
            call(&["a"], Trigger::Schedule, "2026-11-23T09:03:00Z")
        );
        assert_eq!(h.executor.finished.load(Ordering::SeqCst), 1);
        assert_eq!(h.stop().await, []);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_run_does_not_delay_other_schedules() {
        let controls = vec![
            control("slow", "0 9 * * *"),
            control("fast", "30 * * * * *"),
        ];
        let last_success = fresh(&controls);
        let mut h = start(
            controls,
            Behaviour {
                last_success,
                blocking: HashSet::from(["slow".to_string()]),
                ..Behaviour::default()
            },
        );
        assert_eq!(
            h.next_call().await,
            call(&["slow"], Trigger::Schedule, "2026-11-23T09:00:00Z")
        );
        assert_eq!(
            h.next_call().await,
            call(&["fast"], Trigger::Schedule, "2026-11-23T09:00:30Z")
        );
        assert_eq!(
            h.next_call().await,
            call(&["fast"], Trigger::Schedule, "2026-11-23T09:01:30Z")
        );
        assert_eq!(h.stop().await, []);
    }

    #[tokio::test(start_paused = true)]
    async fn run_now_reaches_the_executor_and_reports_running_and_unknown() {
        let far = "0 0 1 1 *";
        let controls = vec![control("a", far), control("b", far)];
        let last_success = fresh(&controls);
        let mut h = start(
            controls,
            Behaviour {
                last_success,
                blocking: HashSet::from(["a".to_string()]),
                ..Behaviour::default()
            },
        );
        let answer = h.handle.run_now(ids(&["a"])).await.unwrap();
        assert_eq!(answer.queued, ids(&["a"]));
        assert_eq!(answer.run_id.as_deref(), Some("run-a"));
        assert_eq!(h.next_call().await, call(&["a"], Trigger::Manual, BASE));

        let answer = h.handle.run_now(vec![]).await.unwrap();
        assert_eq!(
            answer,
            RunNowAccepted {
                queued: ids(&["b"]),
                already_running: ids(&["a"]),
                unknown: vec![],
                run_id: Some("run-b".into()),
            }
        );
        assert_eq!(h.next_call().await, call(&["b"], Trigger::Manual, BASE));

        let answer = h.handle.run_now(ids(&["nope", "a", "a"])).await.unwrap();
        assert_eq!(
            answer,
            RunNowAccepted {
                queued: vec![],
                already_running: ids(&["a"]),
                unknown: ids(&["nope"]),
                run_id: None,
            }
        );
        assert_eq!(h.stop().await, []);
    }

    #[tokio::test(start_paused = true)]
    async fn run_now_answers_without_an_id_when_the_run_fails_before_it_is_recorded() {
        let controls = vec![control("a", "0 0 1 1 *")];
        let last_success = fresh(&controls);
        let h = start(
            controls,
            Behaviour {
                last_success,
                never_begin: true,
                ..Behaviour::default()
            },
        );
        let answer = h.handle.run_now(ids(&["a"])).await.unwrap();
        assert_eq!(answer.queued, ids(&["a"]));
        assert_eq!(answer.run_id, None);
        // Answered as soon as the run gave up, not after the wait for a slow store.
        assert!(h.start.elapsed() < BEGIN_WAIT);
        assert_eq!(h.stop().await, []);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_waits_for_an_in_flight_run() {
        let controls = vec![control("a", "0 0 1 1 *")];
        let last_success = fresh(&controls);
        let mut h = start(
            controls,
            Behaviour {
                last_success,
                blocking: HashSet::from(["a".to_string()]),
                ..Behaviour::default()
            },
        );
        h.handle.run_now(ids(&["a"])).await.unwrap();
        h.next_call().await;
        h.shutdown.cancel();
        tokio::time::sleep(StdDuration::from_secs(5)).await;
        assert!(!h.join.is_finished(), "stopped before the run finished");
        assert_eq!(h.handle.run_now(vec![]).await, Err(SchedulerStopped));

        h.executor.gate.add_permits(1);
        tokio::time::timeout(StdDuration::from_secs(1), &mut h.join)
            .await
            .expect("scheduler did not stop after the run finished")
            .unwrap();
        assert_eq!(h.executor.finished.load(Ordering::SeqCst), 1);
        assert!(h.start.elapsed() < StdDuration::from_secs(6));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_gives_up_after_the_grace_period() {
        let controls = vec![control("a", "0 0 1 1 *")];
        let last_success = fresh(&controls);
        let mut h = start(
            controls,
            Behaviour {
                last_success,
                blocking: HashSet::from(["a".to_string()]),
                ..Behaviour::default()
            },
        );
        h.handle.run_now(ids(&["a"])).await.unwrap();
        h.next_call().await;
        let cancelled_at = Instant::now();
        h.shutdown.cancel();
        (&mut h.join).await.unwrap();
        let waited = cancelled_at.elapsed();
        assert!(
            waited >= SHUTDOWN_GRACE && waited < SHUTDOWN_GRACE + StdDuration::from_secs(1),
            "{waited:?}"
        );
        assert_eq!(h.executor.finished.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_with_nothing_running_is_immediate() {
        let h = start_with(
            vec![control("a", "* * * * *")],
            Behaviour::default(),
            Some(StdDuration::from_secs(5)),
        );
        let handle = h.handle.clone();
        let start = h.start;
        // The startup run (a never succeeded) finishes immediately.
        let rest = h.stop().await;
        assert!(start.elapsed() < StdDuration::from_secs(1));
        assert!(rest.iter().all(|c| c.trigger == Trigger::Startup));
        assert_eq!(handle.run_now(vec![]).await, Err(SchedulerStopped));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_run_does_not_stop_the_scheduler() {
        let controls = vec![control("a", "*/15 * * * *")];
        let last_success = fresh(&controls);
        let mut h = start(
            controls,
            Behaviour {
                last_success,
                fail: true,
                ..Behaviour::default()
            },
        );
        assert_eq!(
            h.next_call().await,
            call(&["a"], Trigger::Schedule, "2026-11-23T09:00:00Z")
        );
        assert_eq!(
            h.next_call().await,
            call(&["a"], Trigger::Schedule, "2026-11-23T09:15:00Z")
        );
        tokio::time::sleep(StdDuration::from_secs(1)).await;
        let answer = h.handle.run_now(vec![]).await.unwrap();
        assert_eq!(answer.queued, ids(&["a"]));
        assert_eq!(
            h.next_call().await,
            call(&["a"], Trigger::Manual, "2026-11-23T09:15:01Z")
        );
        assert_eq!(h.stop().await, []);
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_run_frees_its_controls() {
        let controls = vec![control("a", "*/15 * * * *")];
        let last_success = fresh(&controls);
        let mut h = start(
            controls,
            Behaviour {
                last_success,
                panic: true,
                ..Behaviour::default()
            },
        );
        assert_eq!(
            h.next_call().await,
            call(&["a"], Trigger::Schedule, "2026-11-23T09:00:00Z")
        );
        assert_eq!(
            h.next_call().await,
            call(&["a"], Trigger::Schedule, "2026-11-23T09:15:00Z")
        );
        assert_eq!(h.stop().await, []);
    }
    #[tokio::test(start_paused = true)]
    async fn scheduled_and_startup_runs_name_their_slots_and_manual_runs_none() {
        let controls = vec![
            control("a", "*/15 * * * *"),
            control("b", "0 0 1 1 *"),
            control("c", "0 0 1 1 *"),
        ];
        let base = at(BASE);
        let mut h = start(
            controls,
            Behaviour {
                last_success: HashMap::from([
                    ("a".to_string(), base),
                    ("b".to_string(), base - chrono::Duration::days(3)),
                ]),
                ..Behaviour::default()
            },
        );
        assert_eq!(
            h.next_call().await,
            call(&["b", "c"], Trigger::Startup, BASE)
        );
        assert_eq!(
            h.next_call().await,
            call(&["a"], Trigger::Schedule, "2026-11-23T09:00:00Z")
        );
        h.handle.run_now(ids(&["a"])).await.unwrap();
        h.next_call().await;
        let slots = h.executor.slots.lock().unwrap().clone();
        // 08:59:30 falls in the 15-minute window that began at 08:45.
        let window = at("2026-11-23T08:45:00Z").timestamp();
        assert_eq!(
            slots,
            vec![
                HashMap::from([
                    (
                        "b".to_string(),
                        format!("startup:2026-11-20T08:59:30.000000Z@{window}")
                    ),
                    ("c".to_string(), format!("startup:never@{window}")),
                ]),
                HashMap::from([("a".to_string(), "schedule:2026-11-23T09:00:00Z".to_string())]),
                HashMap::new(),
            ]
        );
        assert_eq!(h.stop().await, []);
    }

    #[tokio::test(start_paused = true)]
    async fn run_now_reports_controls_running_on_another_instance() {
        let far = "0 0 1 1 *";
        let controls = vec![control("a", far), control("b", far)];
        let last_success = fresh(&controls);
        let mut h = start(
            controls,
            Behaviour {
                last_success,
                elsewhere: HashSet::from(["a".to_string()]),
                ..Behaviour::default()
            },
        );
        let answer = h.handle.run_now(vec![]).await.unwrap();
        assert_eq!(
            answer,
            RunNowAccepted {
                queued: ids(&["b"]),
                already_running: ids(&["a"]),
                unknown: vec![],
                run_id: Some("run-b".into()),
            }
        );
        h.next_call().await;
        let answer = h.handle.run_now(ids(&["a"])).await.unwrap();
        assert_eq!(
            answer,
            RunNowAccepted {
                queued: vec![],
                already_running: ids(&["a"]),
                unknown: vec![],
                run_id: None,
            }
        );
        h.next_call().await;
        assert_eq!(h.stop().await, []);
    }
}
