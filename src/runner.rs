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
use crate::evaluate::{CheckInput, evaluate_control};
use crate::model::{ControlOutcome, Evidence, Trigger};
use crate::probes::{BoxFuture, Collected, PlannedProbe, ProbeContext, ProbeError};
use crate::store::Store;

/// Where a run's evidence and results go.
pub trait RunSink: Send + Sync {
    /// Called once, before results, with all of the run's evidence; returns stored ids.
    fn evidence<'a>(&'a self, evidence: &'a [Evidence]) -> BoxFuture<'a, anyhow::Result<Vec<i64>>>;
    /// Called for each control as soon as it is evaluated.
    fn result<'a>(
        &'a self,
        outcome: &'a ControlOutcome,
        evidence_ids: &'a [i64],
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// Keeps nothing (`check --no-store`).
pub struct NoSink;

impl RunSink for NoSink {
    fn evidence<'a>(&'a self, evidence: &'a [Evidence]) -> BoxFuture<'a, anyhow::Result<Vec<i64>>> {
        Box::pin(async move { Ok((0..evidence.len() as i64).collect()) })
    }
    fn result<'a>(
        &'a self,
        _: &'a ControlOutcome,
        _: &'a [i64],
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// Writes into a store run.
pub struct StoreSink {
    pub store: Store,
    pub run_id: String,
}

impl RunSink for StoreSink {
    fn evidence<'a>(&'a self, evidence: &'a [Evidence]) -> BoxFuture<'a, anyhow::Result<Vec<i64>>> {
        Box::pin(async move { Ok(self.store.record_evidence(&self.run_id, evidence).await?) })
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

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcomes: Vec<ControlOutcome>,
    pub evidence: Vec<Evidence>,
    /// How many distinct collections ran (probe + parameters).
    pub collections: usize,
}

/// Runs `controls` with `ctx` (whose `now` is the run's clock), feeding `sink`. `progress` is
/// called after each control with (done, total).
pub async fn execute(
    ctx: &ProbeContext,
    controls: &[&Control],
    concurrency: usize,
    sink: &dyn RunSink,
    progress: &(dyn Fn(usize, usize) + Send + Sync),
) -> anyhow::Result<RunReport> {
    let started_at = ctx.now;
    let elapsed = std::time::Instant::now();
    // Distinct collections, in first-use order.
    let mut keys: Vec<(String, Arc<dyn PlannedProbe>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for control in controls {
        for check in &control.checks {
            let key = format!("{}:{}", check.planned.probe(), check.planned.params_key());
            if !index.contains_key(&key) {
                index.insert(key.clone(), keys.len());
                keys.push((key, check.planned.clone()));
            }
        }
    }
    let results = collect_all(ctx, &keys, concurrency.max(1)).await;
    let evidence: Vec<Evidence> = keys
        .iter()
        .zip(&results)
        .map(|((_, planned), result)| to_evidence(planned.as_ref(), result, ctx.now))
        .collect();
    let evidence_ids = sink.evidence(&evidence).await?;
    let total = controls.len();
    let mut outcomes = Vec::with_capacity(total);
    for (done, control) in controls.iter().enumerate() {
        let inputs: Vec<CheckInput> = control
            .checks
            .iter()
            .map(|check| {
                let key = format!("{}:{}", check.planned.probe(), check.planned.params_key());
                let i = index.get(&key).copied();
                CheckInput {
                    collected: i.and_then(|i| results.get(i).cloned()).unwrap_or_else(|| {
                        Err(ProbeError::Io("internal: evidence missing".into()))
                    }),
                    evidence: i,
                }
            })
            .collect();
        let outcome = evaluate_control(control, &inputs, ctx.now);
        sink.result(&outcome, &evidence_ids).await?;
        outcomes.push(outcome);
        progress(done + 1, total);
    }
    Ok(RunReport {
        started_at,
        // The run's clock plus the time it took (monotonic), so a run evaluated as of another
        // time (`check --as-of`) stays consistent.
        finished_at: started_at
            + chrono::Duration::from_std(elapsed.elapsed()).unwrap_or(chrono::Duration::zero()),
        outcomes,
        evidence,
        collections: keys.len(),
    })
}

async fn collect_all(
    ctx: &ProbeContext,
    keys: &[(String, Arc<dyn PlannedProbe>)],
    concurrency: usize,
) -> Vec<Result<Arc<Collected>, ProbeError>> {
    let semaphore = Arc::new(Semaphore::new(concurrency));
    let mut set = JoinSet::new();
    for (i, (_, planned)) in keys.iter().enumerate() {
        let planned = planned.clone();
        let ctx = ctx.clone();
        let semaphore = semaphore.clone();
        set.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            (
                i,
                collect_one(&ctx, planned.as_ref(), ctx.timeout_for(planned.probe())).await,
            )
        });
    }
    let mut results: Vec<Result<Arc<Collected>, ProbeError>> = (0..keys.len())
        .map(|_| Err(ProbeError::Io("internal: collection did not finish".into())))
        .collect();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((i, r)) => results[i] = r.map(Arc::new),
            Err(e) => tracing::error!(error = %e, "probe task failed"),
        }
    }
    results
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
    result
}

fn to_evidence(
    planned: &dyn PlannedProbe,
    result: &Result<Arc<Collected>, ProbeError>,
    now: DateTime<Utc>,
) -> Evidence {
    let (content, error) = match result {
        Ok(c) => (c.raw.clone(), None),
        Err(e) => (serde_json::Value::Null, Some(e.to_string())),
    };
    let bytes = serde_json::to_vec(&content).unwrap_or_default();
    Evidence {
        probe: planned.probe().to_string(),
        params: planned.params_key().to_string(),
        collected_at: now,
        sha256: hex::encode(Sha256::digest(&bytes)),
        content,
        error,
    }
}

/// Who follows a stored run as it goes: told its id once it is recorded (before any probe
/// runs), then `(done, total)` after each control. Any `Fn(usize, usize)` is a watcher that only
/// follows progress.
pub trait RunWatcher: Send + Sync {
    fn begun(&self, _run_id: &str) {}
    fn progress(&self, _done: usize, _total: usize) {}
}

impl<F: Fn(usize, usize) + Send + Sync> RunWatcher for F {
    fn progress(&self, done: usize, total: usize) {
        self(done, total);
    }
}

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
) -> anyhow::Result<RunReport> {
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
    // Conditional requests: the answers earlier runs kept, and this run's collector.
    ctx.validators = Arc::new(crate::probes::conditional::Validators::new(
        store.http_validators().await?,
    ));
    let ctx = &ctx;
    let run_id = store.begin_run(trigger, controls.len(), ctx.now).await?;
    watcher.begun(&run_id);
    let sink = StoreSink {
        store: store.clone(),
        run_id: run_id.clone(),
    };
    let progress = |done, total| watcher.progress(done, total);
    let outcome = execute(ctx, controls, concurrency, &sink, &progress).await;
    if let Err(e) = store
        .save_http_validators(&ctx.validators.used(), Utc::now())
        .await
    {
        tracing::warn!(error = %e, "cannot keep the HTTP validators: the next run asks again in full");
    }
    let (finished_at, error) = match &outcome {
        Ok(report) => (report.finished_at, None),
        Err(e) => (Utc::now(), Some(format!("{e:#}"))),
    };
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
