//! One run: collect the evidence the selected controls need (each distinct probe + parameters
//! once), evaluate every control, and hand results to a [`RunSink`] as they are ready.
//!
//! The runner never touches the database itself: the sink does (the store, or nothing for
//! `check --no-store`). Probes only see their [`ProbeContext`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::catalog::Control;
use crate::evaluate::{CheckInput, CheckVerdict, combine, evaluate_check};
use crate::model::{ControlOutcome, Evidence, NewEvidence, RawJson, Status, Trigger};
use crate::probes::{BoxFuture, Collected, PlannedProbe, ProbeContext, ProbeError};
use crate::store::Store;

/// Where a run's evidence and results go, as they are produced: the runner keeps neither.
pub trait RunSink: Send + Sync {
    /// Called once, before any collection, with how many the run will make.
    fn planned(&self, _collections: usize) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }
    /// Called once per collection as soon as it finishes (in completion order) with its place
    /// in the run's plan; returns the stored id. The evidence is the sink's to keep or drop
    /// (a store moves its text into the row it writes: no copy of a large collection).
    fn evidence(&self, index: usize, evidence: NewEvidence) -> BoxFuture<'_, anyhow::Result<i64>>;
    /// Called for each control as soon as it is evaluated. `evidence_ids[i]` is the id of the
    /// run's collection `i` (its place in the plan, not in completion order).
    fn result<'a>(
        &'a self,
        outcome: &'a ControlOutcome,
        evidence_ids: &'a [i64],
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// Keeps nothing (`check --no-store`); a collection's id is its place in the plan.
pub struct NoSink;

impl RunSink for NoSink {
    fn evidence(&self, index: usize, _: NewEvidence) -> BoxFuture<'_, anyhow::Result<i64>> {
        Box::pin(async move { Ok(index as i64) })
    }
    fn result<'a>(
        &'a self,
        _: &'a ControlOutcome,
        _: &'a [i64],
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// Writes into a store run: each piece of evidence in its own transaction as soon as it is
/// collected (then dropped), each control's result and findings in one.
pub struct StoreSink {
    pub store: Store,
    pub run_id: String,
}

impl RunSink for StoreSink {
    fn planned(&self, collections: usize) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move { Ok(self.store.plan_run(&self.run_id, collections).await?) })
    }
    fn evidence(&self, _: usize, evidence: NewEvidence) -> BoxFuture<'_, anyhow::Result<i64>> {
        Box::pin(async move {
            let ids = self
                .store
                .record_evidence(&self.run_id, vec![evidence])
                .await?;
            ids.first()
                .copied()
                .ok_or_else(|| anyhow::anyhow!("internal: evidence stored without an id"))
        })
    }
    fn result<'a>(
        &'a self,
        outcome: &'a ControlOutcome,
        evidence_ids: &'a [i64],
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            Ok(self
                .store
                .record_result(&self.run_id, outcome, evidence_ids)
                .await?)
        })
    }
}

/// What a run amounts to, without its findings and evidence (those went to the sink).
#[derive(Debug, Clone)]
pub struct RunTotals {
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Controls evaluated.
    pub controls: usize,
    /// Controls by status.
    pub by_status: HashMap<Status, usize>,
    /// How many distinct collections ran (probe + parameters).
    pub collections: usize,
}

impl RunTotals {
    /// Controls that ended with `status`.
    pub fn count(&self, status: Status) -> usize {
        self.by_status.get(&status).copied().unwrap_or(0)
    }

    /// True when any control failed or could not be verified.
    pub fn any_failing(&self) -> bool {
        self.count(Status::Fail) + self.count(Status::Error) > 0
    }
}

/// Everything a run produced, kept in memory: for tests and small runs. Large runs use
/// [`stream`], which keeps nothing.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcomes: Vec<ControlOutcome>,
    /// Every collection's evidence, in plan order.
    pub evidence: Vec<Evidence>,
    /// How many distinct collections ran (probe + parameters).
    pub collections: usize,
}

/// Keeps copies of what passes through to `inner` (for [`execute`]).
struct Keeping<'a> {
    inner: &'a dyn RunSink,
    evidence: std::sync::Mutex<Vec<(usize, Evidence)>>,
}

impl RunSink for Keeping<'_> {
    fn planned(&self, collections: usize) -> BoxFuture<'_, anyhow::Result<()>> {
        self.inner.planned(collections)
    }
    fn evidence(&self, index: usize, evidence: NewEvidence) -> BoxFuture<'_, anyhow::Result<i64>> {
        Box::pin(async move {
            let kept = Evidence::from(&evidence);
            let id = self.inner.evidence(index, evidence).await?;
            self.evidence
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((index, kept));
            Ok(id)
        })
    }
    fn result<'a>(
        &'a self,
        outcome: &'a ControlOutcome,
        evidence_ids: &'a [i64],
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        self.inner.result(outcome, evidence_ids)
    }
}

/// A watcher that keeps every outcome (tests and small runs), passing progress on.
pub struct Outcomes<'a> {
    progress: &'a (dyn Fn(usize, usize) + Send + Sync),
    outcomes: std::sync::Mutex<Vec<ControlOutcome>>,
}

impl<'a> Outcomes<'a> {
    pub fn following(progress: &'a (dyn Fn(usize, usize) + Send + Sync)) -> Outcomes<'a> {
        Outcomes {
            progress,
            outcomes: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The outcomes, in the order the controls were evaluated.
    pub fn into_outcomes(self) -> Vec<ControlOutcome> {
        self.outcomes
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl RunWatcher for Outcomes<'_> {
    fn progress(&self, done: usize, total: usize) {
        (self.progress)(done, total);
    }
    fn outcome(&self, outcome: &ControlOutcome) {
        self.outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(outcome.clone());
    }
}

/// Runs `controls` like [`stream`] and also returns every outcome (in the order of
/// `controls`) and piece of evidence. `progress` is called after each control with (done,
/// total).
pub async fn execute(
    ctx: &ProbeContext,
    controls: &[&Control],
    concurrency: usize,
    sink: &dyn RunSink,
    progress: &(dyn Fn(usize, usize) + Send + Sync),
) -> anyhow::Result<RunReport> {
    let keeping = Keeping {
        inner: sink,
        evidence: std::sync::Mutex::new(Vec::new()),
    };
    let watcher = Outcomes::following(progress);
    let totals = stream(ctx, controls, concurrency, &keeping, &watcher).await?;
    let mut kept = keeping
        .evidence
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    kept.sort_by_key(|(index, _)| *index);
    // In the order of `controls` (they are evaluated as their collections come in).
    let order: HashMap<&str, usize> = controls
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    let mut outcomes = watcher.into_outcomes();
    outcomes.sort_by_key(|o| order.get(o.control_id.as_str()).copied());
    Ok(RunReport {
        started_at: totals.started_at,
        finished_at: totals.finished_at,
        outcomes,
        evidence: kept.into_iter().map(|(_, e)| e).collect(),
        collections: totals.collections,
    })
}

/// Runs `controls` with `ctx` (whose `now` is the run's clock), feeding `sink` and `watcher`
/// as it goes, and keeping nothing: each collection's raw evidence goes to the sink as soon
/// as it is collected and is dropped; every check that reads a collection is evaluated the
/// moment it arrives, and the collection's resources are dropped then. The controls a
/// collection completes are evaluated, go to the sink and the watcher and are dropped one at
/// a time (in catalog order); a control still waiting for another collection keeps its
/// checks' verdicts until then. So a run holds the resources of at most `concurrency`
/// collections, the findings of one control being stored, and the verdicts of the controls
/// waiting for a collection.
pub async fn stream(
    ctx: &ProbeContext,
    controls: &[&Control],
    concurrency: usize,
    sink: &dyn RunSink,
    watcher: &dyn RunWatcher,
) -> anyhow::Result<RunTotals> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    stream_with(ctx, controls, permits, sink, watcher).await
}

/// [`stream`] holding one of `permits` per collection in flight: several runs (the units of
/// queued runs one instance works on) sharing one semaphore hold at most its permits'
/// collections between them.
pub async fn stream_with(
    ctx: &ProbeContext,
    controls: &[&Control],
    permits: Arc<Semaphore>,
    sink: &dyn RunSink,
    watcher: &dyn RunWatcher,
) -> anyhow::Result<RunTotals> {
    let started_at = ctx.now;
    let elapsed = std::time::Instant::now();
    let plan = Plan::of(controls);
    let n = plan.keys.len();
    sink.planned(n).await?;
    let (mut set, tasks) = spawn_collections(ctx, &plan.keys, permits);
    let mut run = Progress::new(&plan, controls);
    let mut by_status = HashMap::new();
    let mut ids: Vec<i64> = vec![0; n];
    let mut evaluated = 0;
    let mut collected = 0;
    loop {
        // Controls that read no collection.
        while let Some(c) = run.ready.pop_first() {
            let outcome = run.combine(c, ctx.now);
            sink.result(&outcome, &ids).await?;
            watcher.outcome(&outcome);
            *by_status.entry(outcome.status).or_insert(0) += 1;
            drop(outcome);
            evaluated += 1;
            watcher.progress(evaluated, controls.len());
        }
        // `_permit` lets the next collection start once this one is evaluated and dropped.
        let (i, mut result, _permit) = match set.join_next().await {
            Some(Ok(done)) => done,
            // A task that panicked still gets its evidence row: an error naming what happened.
            Some(Err(e)) => match tasks.get(&e.id()) {
                Some(&i) => {
                    tracing::error!(error = %e, probe = plan.keys[i].probe(), "probe task failed");
                    (
                        i,
                        Err(ProbeError::Io(format!(
                            "internal: the collection failed: {e}"
                        ))),
                        None,
                    )
                }
                None => anyhow::bail!("internal: an unknown collection task failed: {e}"),
            },
            None => break,
        };
        let evidence = to_evidence(plan.keys[i].as_ref(), &mut result, ctx.now);
        // A sink that cannot keep evidence ends the run (the set's tasks are aborted when it is
        // dropped).
        ids[i] = sink.evidence(i, evidence).await?;
        let input = CheckInput {
            collected: result.map(Arc::new),
            evidence: Some(i),
        };
        let completed = run.arrived(i, &input, ctx.now);
        collected += 1;
        watcher.collected(collected, n);
        for c in completed {
            let outcome = run.finish(c, i, &input, ctx.now);
            sink.result(&outcome, &ids).await?;
            watcher.outcome(&outcome);
            *by_status.entry(outcome.status).or_insert(0) += 1;
            drop(outcome);
            evaluated += 1;
            watcher.progress(evaluated, controls.len());
        }
        drop(input);
        if collected == n {
            ctx.cache.clear();
        }
    }
    if evaluated != controls.len() {
        anyhow::bail!(
            "internal: {} of {} controls were not evaluated",
            controls.len() - evaluated,
            controls.len()
        );
    }
    Ok(RunTotals {
        started_at,
        // The run's clock plus the time it took (monotonic), so a run evaluated as of another
        // time (`check --as-of`) stays consistent.
        finished_at: started_at
            + chrono::Duration::from_std(elapsed.elapsed()).unwrap_or(chrono::Duration::zero()),
        controls: controls.len(),
        by_status,
        collections: n,
    })
}

/// The run's distinct collections (probe + parameters) in first-use order, and the
/// collection each check of each control reads.
struct Plan {
    keys: Vec<Arc<dyn PlannedProbe>>,
    /// `checks[c][k]`: the collection that check `k` of control `c` reads.
    checks: Vec<Vec<usize>>,
}

impl Plan {
    fn of(controls: &[&Control]) -> Plan {
        let mut keys: Vec<Arc<dyn PlannedProbe>> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut checks = Vec::with_capacity(controls.len());
        for control in controls {
            let mine: Vec<usize> = control
                .checks
                .iter()
                .map(|check| {
                    let key = format!("{}:{}", check.planned.probe(), check.planned.params_key());
                    *index.entry(key).or_insert_with(|| {
                        keys.push(check.planned.clone());
                        keys.len() - 1
                    })
                })
                .collect();
            checks.push(mine);
        }
        Plan { keys, checks }
    }
}

/// Where a run is: the verdicts of the checks evaluated so far and what each control still
/// waits for. A collection is evaluated for every check that reads it the moment it arrives
/// and is then let go of: the run never holds a collection's resources while it waits for
/// another one, nor the findings of a control it could already have stored.
struct Progress<'p> {
    plan: &'p Plan,
    controls: &'p [&'p Control],
    /// `verdicts[c][k]`: check `k` of control `c`, once evaluated.
    verdicts: Vec<Vec<Option<CheckVerdict>>>,
    /// Checks each control still waits for.
    missing: Vec<usize>,
    /// The (control, check) pairs that read each collection.
    readers: Vec<Vec<(usize, usize)>>,
    /// Controls that read no collection, to be combined.
    ready: std::collections::BTreeSet<usize>,
}

impl<'p> Progress<'p> {
    fn new(plan: &'p Plan, controls: &'p [&'p Control]) -> Progress<'p> {
        let mut readers: Vec<Vec<(usize, usize)>> = vec![Vec::new(); plan.keys.len()];
        for (c, checks) in plan.checks.iter().enumerate() {
            for (k, &i) in checks.iter().enumerate() {
                readers[i].push((c, k));
            }
        }
        let missing: Vec<usize> = plan.checks.iter().map(Vec::len).collect();
        let ready = missing
            .iter()
            .enumerate()
            .filter(|(_, m)| **m == 0)
            .map(|(c, _)| c)
            .collect();
        Progress {
            plan,
            controls,
            verdicts: plan.checks.iter().map(|k| vec![None; k.len()]).collect(),
            missing,
            readers,
            ready,
        }
    }

    /// Collection `i` is in. The checks reading it of controls that still wait for another
    /// collection are evaluated now (their findings wait, the collection does not); the
    /// controls it completes are returned in catalog order, to be finished one at a time with
    /// [`Progress::finish`] while the collection is at hand, so only one of them holds its
    /// findings at once.
    fn arrived(&mut self, i: usize, input: &CheckInput, now: DateTime<Utc>) -> Vec<usize> {
        let readers = std::mem::take(&mut self.readers[i]);
        let mut reading: HashMap<usize, usize> = HashMap::new();
        for &(c, _) in &readers {
            *reading.entry(c).or_default() += 1;
        }
        let mut completed: Vec<usize> = reading
            .into_iter()
            .filter(|&(c, n)| self.missing[c] == n)
            .map(|(c, _)| c)
            .collect();
        completed.sort_unstable();
        for (c, k) in readers {
            if completed.binary_search(&c).is_err() {
                self.verdicts[c][k] = Some(evaluate_check(self.controls[c], k, input, now));
                self.missing[c] -= 1;
            }
        }
        completed
    }

    /// Control `c`, which collection `i` completes ([`Progress::arrived`]): its checks that
    /// read `i` are evaluated, and its outcome made.
    fn finish(
        &mut self,
        c: usize,
        i: usize,
        input: &CheckInput,
        now: DateTime<Utc>,
    ) -> ControlOutcome {
        for (k, &reads) in self.plan.checks[c].iter().enumerate() {
            if reads == i && self.verdicts[c][k].is_none() {
                self.verdicts[c][k] = Some(evaluate_check(self.controls[c], k, input, now));
                self.missing[c] -= 1;
            }
        }
        debug_assert_eq!(self.missing[c], 0);
        self.combine(c, now)
    }

    /// Control `c`'s outcome (all its checks are evaluated); its verdicts are let go of.
    fn combine(&mut self, c: usize, now: DateTime<Utc>) -> ControlOutcome {
        let verdicts = std::mem::take(&mut self.verdicts[c]);
        debug_assert_eq!(verdicts.len(), self.plan.checks[c].len());
        combine(self.controls[c], verdicts.into_iter().flatten(), now)
    }
}

type Collections = JoinSet<(
    usize,
    Result<Collected, ProbeError>,
    Option<tokio::sync::OwnedSemaphorePermit>,
)>;

/// Starts every collection, each in its own task; returns them with each task's place in the
/// plan (to name a collection whose task failed). At most `concurrency` collections are held
/// at once: a task's permit comes back with its result and is let go of only once the
/// collection has been stored and evaluated, so finished collections never pile up while the
/// run is busy with another (their resources are most of a run's memory).
fn spawn_collections(
    ctx: &ProbeContext,
    keys: &[Arc<dyn PlannedProbe>],
    semaphore: Arc<Semaphore>,
) -> (Collections, HashMap<tokio::task::Id, usize>) {
    let mut set = JoinSet::new();
    let mut tasks = HashMap::new();
    let sources: Vec<Vec<&'static str>> = keys.iter().map(|k| k.sources()).collect();
    let readers = Arc::new(Readers::of(
        sources.iter().map(Vec::as_slice),
        ctx.cache.clone(),
    ));
    for ((i, planned), sources) in keys.iter().enumerate().zip(sources) {
        let planned = planned.clone();
        let ctx = ctx.clone();
        let semaphore = semaphore.clone();
        let reading = Reading(readers.clone(), sources);
        let handle = set.spawn(async move {
            // The semaphore is never closed; without a permit the collection still runs.
            let permit = semaphore.acquire_owned().await.ok();
            let collected =
                collect_one(&ctx, planned.as_ref(), ctx.timeout_for(planned.probe())).await;
            drop(reading);
            (i, collected, permit)
        });
        tasks.insert(handle.id(), i);
    }
    (set, tasks)
}

/// The collections not yet finished that may read each source's fetches. What a source's
/// probes fetched is in their resources and evidence once the last of them has finished, and is
/// dropped from the cache then, not when the run gets to that collection (while it evaluates
/// a large one, the others finish and wait with their resources).
struct Readers {
    left: std::sync::Mutex<HashMap<&'static str, usize>>,
    cache: crate::probes::FetchCache,
}

impl Readers {
    /// `collections`: the sources each collection of the run may read.
    fn of<'s>(
        collections: impl IntoIterator<Item = &'s [&'static str]>,
        cache: crate::probes::FetchCache,
    ) -> Readers {
        let mut left: HashMap<&'static str, usize> = HashMap::new();
        for sources in collections {
            for &source in sources {
                *left.entry(source).or_default() += 1;
            }
        }
        Readers {
            left: std::sync::Mutex::new(left),
            cache,
        }
    }
}

/// One collection's claim on its sources' fetches, given up when it is dropped: when the
/// collection finishes, fails, times out, or its task panics or is aborted.
struct Reading(Arc<Readers>, Vec<&'static str>);

impl Drop for Reading {
    fn drop(&mut self) {
        let Reading(readers, sources) = self;
        let mut left = readers.left.lock().unwrap_or_else(|p| p.into_inner());
        for source in sources.iter() {
            if let Some(n) = left.get_mut(source) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    readers.cache.release(source);
                }
            }
        }
    }
}

async fn collect_one(
    ctx: &ProbeContext,
    planned: &dyn PlannedProbe,
    timeout: Duration,
) -> Result<Collected, ProbeError> {
    let started = std::time::Instant::now();
    let result = match tokio::time::timeout(timeout, planned.collect(ctx)).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Timeout(timeout)),
    };
    match &result {
        Ok(c) => tracing::info!(
            probe = planned.probe(),
            resources = c.resources.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "collected"
        ),
        Err(e) => tracing::warn!(probe = planned.probe(), error = %e, "collection failed"),
    }
    let source = planned.sources().first().copied().unwrap_or("unknown");
    crate::metrics::collection_finished(
        planned.probe(),
        source,
        started.elapsed(),
        result.as_ref().err(),
    );
    result
}

/// The evidence of one collection. The raw text is moved out of `result`, so the resources
/// stay and the text goes with the evidence; its hash is of that text, as stored.
fn to_evidence(
    planned: &dyn PlannedProbe,
    result: &mut Result<Collected, ProbeError>,
    now: DateTime<Utc>,
) -> NewEvidence {
    let (content, error) = match result {
        Ok(c) => (std::mem::replace(&mut c.raw, RawJson::null()), None),
        Err(e) => (RawJson::null(), Some(e.to_string())),
    };
    NewEvidence {
        probe: planned.probe().to_string(),
        params: planned.params_key().to_string(),
        collected_at: now,
        sha256: hex::encode(Sha256::digest(content.as_str().as_bytes())),
        content,
        error,
    }
}

/// Who follows a run as it goes: told a stored run's id once it is recorded (before any probe
/// runs), `(done, total)` after each collection and after each control, and each control's
/// outcome (which the runner does not keep). Any `Fn(usize, usize)` is a watcher that only
/// follows the controls' progress.
pub trait RunWatcher: Send + Sync {
    fn begun(&self, _run_id: &str) {}
    fn collected(&self, _done: usize, _total: usize) {}
    fn progress(&self, _done: usize, _total: usize) {}
    fn outcome(&self, _outcome: &ControlOutcome) {}
}

impl<F: Fn(usize, usize) + Send + Sync> RunWatcher for F {
    fn progress(&self, done: usize, total: usize) {
        self(done, total);
    }
}

/// What a run's collections need from the store before they start: each control's definition
/// recorded by its hash (so any run's controls can be shown as they were), the evidence stored
/// before for probes that carry a value across runs, and the HTTP validators earlier runs kept.
async fn prepare(
    store: &Store,
    ctx: &ProbeContext,
    controls: &[&Control],
) -> anyhow::Result<ProbeContext> {
    // Each definition is kept by its hash, so any run's controls can be shown as they were.
    for c in controls {
        store
            .record_definition(&c.sha256, &c.id, &c.source, ctx.now)
            .await?;
    }
    // Probes that carry a value across runs read the evidence stored before this run.
    let mut readers: Vec<&str> = controls
        .iter()
        .flat_map(|c| &c.checks)
        .filter(|check| check.probe.reads_previous())
        .map(|check| check.probe.name())
        .collect();
    readers.sort_unstable();
    readers.dedup();
    let mut ctx = ctx.clone();
    if !readers.is_empty() {
        ctx.previous = Arc::new(crate::probes::PreviousEvidence::new(
            store.latest_evidence(&readers).await?,
        ));
    }
    // Conditional requests: the answers earlier runs kept, and this run's collector (read
    // only when one of the collections asks conditionally: a unit of a queued run without
    // one does not load them).
    let conditional = controls.iter().flat_map(|c| &c.checks).any(|check| {
        check
            .planned
            .sources()
            .iter()
            .any(|s| crate::probes::conditional::SOURCES.contains(s))
    });
    if conditional {
        ctx.validators = Arc::new(crate::probes::conditional::Validators::new(
            store.http_validators().await?,
        ));
    }
    Ok(ctx)
}

/// Keeps the HTTP validators this run used for the next (a cache: failing costs requests only).
async fn keep_validators(store: &Store, ctx: &ProbeContext) {
    if let Err(e) = store
        .save_http_validators(&ctx.validators.used(), Utc::now())
        .await
    {
        tracing::warn!(error = %e, "cannot keep the HTTP validators: the next run asks again in full");
    }
}

/// Writes one unit of a queued run into the run: like [`StoreSink`], but each unit adds its
/// collections to the run's plan.
struct UnitSink(StoreSink);

impl RunSink for UnitSink {
    fn planned(&self, collections: usize) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            Ok(self
                .0
                .store
                .add_planned(&self.0.run_id, collections)
                .await?)
        })
    }
    fn evidence(&self, index: usize, evidence: NewEvidence) -> BoxFuture<'_, anyhow::Result<i64>> {
        self.0.evidence(index, evidence)
    }
    fn result<'a>(
        &'a self,
        outcome: &'a ControlOutcome,
        evidence_ids: &'a [i64],
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        self.0.result(outcome, evidence_ids)
    }
}

/// Runs `controls` as one unit of the queued run `run_id` (see [`crate::queue`]): collects,
/// evaluates and stores them into that run, which stays open (the queue closes it once all
/// its units have ended).
pub async fn run_unit(
    store: &Store,
    ctx: &ProbeContext,
    controls: &[&Control],
    permits: Arc<Semaphore>,
    run_id: &str,
) -> anyhow::Result<RunTotals> {
    let ctx = prepare(store, ctx, controls).await?;
    let sink = UnitSink(StoreSink {
        store: store.clone(),
        run_id: run_id.to_string(),
    });
    let outcome = stream_with(&ctx, controls, permits, &sink, &NoWatcher).await;
    keep_validators(store, &ctx).await;
    outcome
}

/// Follows nothing.
struct NoWatcher;

impl RunWatcher for NoWatcher {}

/// Runs `controls` and stores everything in `store` as one run of `trigger`, closed with its
/// manifest signed by `signer` (in the transaction that closes it). A run that cannot be
/// closed stays `running` and is closed as `interrupted`, signed, at the next start.
pub async fn run_and_store(
    store: &Store,
    ctx: &ProbeContext,
    controls: &[&Control],
    concurrency: usize,
    trigger: Trigger,
    signer: &crate::integrity::Signer,
    watcher: &dyn RunWatcher,
) -> anyhow::Result<RunTotals> {
    let started = std::time::Instant::now();
    let ctx = prepare(store, ctx, controls).await?;
    let ctx = &ctx;
    let run_id = store.begin_run(trigger, controls.len(), ctx.now).await?;
    watcher.begun(&run_id);
    let sink = StoreSink {
        store: store.clone(),
        run_id: run_id.clone(),
    };
    let outcome = stream(ctx, controls, concurrency, &sink, watcher).await;
    keep_validators(store, ctx).await;
    let (finished_at, error) = match &outcome {
        Ok(report) => (report.finished_at, None),
        Err(e) => (Utc::now(), Some(format!("{e:#}"))),
    };
    crate::metrics::run_finished(started.elapsed(), outcome.is_ok());
    // Closed, signed and chained at once: the manifest lists the definitions, evidence and
    // verdict hashes, and the chains' heads.
    if let Err(e) = store
        .finish_run(&run_id, finished_at, error.as_deref(), signer)
        .await
    {
        tracing::error!(error = %e, run = %run_id, "cannot close the run");
        if outcome.is_ok() {
            return Err(e.into());
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::compile_file;
    use crate::evaluate::evaluate_control;
    use crate::probes::Resource;
    use serde_json::json;
    use std::path::Path;

    fn control(id: &str, checks: &str) -> Control {
        let text = format!(
            "id: {id}\ntitle: T\ncategory: C\ndescription: d\nclaim: procedure\nowner: o\nseverity: low\nchecks:\n{checks}"
        );
        compile_file(Path::new(&format!("{id}.yaml")), &text)
            .map_err(|d| format!("{d:?}"))
            .unwrap()
            .0
    }

    const PEOPLE: &str = "  - probe: hr.people\n    assert: security_training_date != null\n";
    const VENDORS: &str =
        "  - probe: registers.vendors\n    assert: soc2_report_reviewed_on != null\n";

    /// Collection `i` of the plan below: people (0) or vendors (1), one passing, one failing.
    fn collection(i: usize) -> Result<Collected, ProbeError> {
        let attr = ["security_training_date", "soc2_report_reviewed_on"][i];
        let resource = |n: usize, value: serde_json::Value| Resource {
            id: format!("r{i}:{n}"),
            name: format!("Resource {n} of collection {i}"),
            attributes: [(attr, value)].into_iter().collect(),
            error: None,
            unknown: Default::default(),
            scope: false,
        };
        Ok(Collected {
            resources: vec![resource(1, json!("2026-01-01")), resource(2, json!(null))],
            raw: RawJson::null(),
        })
    }

    #[tokio::test]
    async fn a_sources_fetches_are_dropped_when_the_last_collection_reading_them_ends() {
        let cache = crate::probes::FetchCache::new();
        let mut held = Vec::new();
        for key in ["aws:prod:iam", "hr.roster:/r.csv"] {
            let v: Arc<Vec<u8>> = cache
                .get_or_fetch(key, async { Ok::<_, ProbeError>(vec![0u8; 16]) })
                .await
                .expect("fetched");
            held.push(v);
        }
        let held_by_cache = |held: &[Arc<Vec<u8>>]| -> Vec<usize> {
            held.iter().map(|v| Arc::strong_count(v) - 1).collect()
        };
        // Two collections read aws (one of them also reads hr), one reads hr.
        let readers = Arc::new(Readers::of(
            [&["aws"][..], &["aws", "hr"][..], &["hr"][..]],
            cache.clone(),
        ));
        let aws_only = Reading(readers.clone(), vec!["aws"]);
        let both = Reading(readers.clone(), vec!["aws", "hr"]);
        let hr_only = Reading(readers.clone(), vec!["hr"]);
        drop(aws_only);
        assert_eq!(held_by_cache(&held), [1, 1], "aws is still read by one");
        drop(both);
        assert_eq!(held_by_cache(&held), [0, 1], "aws let go of; hr still read");
        // A collection whose task panics drops its claim all the same.
        let task = tokio::spawn(async move {
            let _claim = hr_only;
            panic!("a probe bug");
        });
        assert!(task.await.is_err());
        assert_eq!(held_by_cache(&held), [0, 0]);
    }

    #[test]
    fn checks_are_evaluated_as_their_collections_arrive_and_combined_once_all_are_in() {
        let now = Utc::now();
        let both = control("both", &format!("{PEOPLE}{VENDORS}"));
        let vendors = control("vendors", VENDORS);
        let people = control("people", PEOPLE);
        let controls = [&both, &vendors, &people];
        let plan = Plan::of(&controls);
        assert_eq!(plan.checks, [vec![0, 1], vec![1], vec![0]]);
        // What evaluating each control with every collection at hand gives.
        let expected: Vec<ControlOutcome> = controls
            .iter()
            .zip(&plan.checks)
            .map(|(c, checks)| {
                let inputs: Vec<CheckInput> = checks
                    .iter()
                    .map(|&i| CheckInput {
                        collected: collection(i).map(Arc::new),
                        evidence: Some(i),
                    })
                    .collect();
                evaluate_control(c, &inputs, now)
            })
            .collect();
        let input = |i: usize| CheckInput {
            collected: collection(i).map(Arc::new),
            evidence: Some(i),
        };
        for (first, then, ready_first) in [(0, 1, 2), (1, 0, 1)] {
            let mut run = Progress::new(&plan, &controls);
            assert!(run.ready.is_empty());
            let mut outcomes: Vec<Option<ControlOutcome>> = vec![None; controls.len()];
            let first_in = input(first);
            let done = run.arrived(first, &first_in, now);
            // The control that also reads the other collection waits for it, its check of
            // this one evaluated; the one this completes is evaluated only when finished.
            assert_eq!(done, [ready_first]);
            assert_eq!(run.missing[0], 1);
            assert!(run.verdicts[0].iter().flatten().count() == 1);
            assert!(run.verdicts[ready_first].iter().all(Option::is_none));
            for c in done {
                outcomes[c] = Some(run.finish(c, first, &first_in, now));
            }
            drop(first_in);
            let then_in = input(then);
            let done = run.arrived(then, &then_in, now);
            assert_eq!(done.len(), 2);
            for c in done {
                outcomes[c] = Some(run.finish(c, then, &then_in, now));
            }
            for (c, expected) in expected.iter().enumerate() {
                assert_eq!(outcomes[c].as_ref(), Some(expected), "control {c}");
            }
        }
        assert_eq!(expected[0].findings.len(), 4);
        assert_eq!(expected[0].status, Status::Fail);
    }
}
