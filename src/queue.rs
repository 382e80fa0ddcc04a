//! The run queue's workers: every `serve` instance claims units of queued runs, works them
//! under a lease it renews, and closes the runs whose units have all ended.
//!
//! A run is queued by the scheduler of whichever instance claims its slot, or by "run now" on
//! any instance ([`crate::store::Store::enqueue_run`]). Its controls are split into units by
//! [`units_of`]: the controls that read the same collection (probe + parameters) are one
//! unit, and so are all the collections of one control, because a collection's resources live
//! only in the memory of the instance that collected them (the store keeps the raw evidence,
//! not the parsed resources) and a control's checks are combined there. Each unit is then
//! collected and evaluated by one instance with the streaming runner
//! ([`crate::runner::run_unit`]), so a run's units spread over the instances. One instance's
//! units share its `limits.concurrency` collection permits. Units do not share a fetch cache:
//! two units reading one listing (a GitHub organisation's repositories) each fetch it, and
//! GitHub answers the second with a `304` from the kept validators.
//!
//! Leases: a worker renews its unit's lease every third of [`QueueConfig::lease`]. If its
//! instance dies (`kill -9`), the lease expires and another instance claims the unit; the
//! controls the dead one already stored are not evaluated again (and the store refuses a
//! second result of a control in a queued run). A unit claimed [`crate::store::MAX_ATTEMPTS`] times is
//! failed and its run closed `interrupted`, naming why. A cancel request is seen at the next
//! renewal: the unit stops between collections and the run closes `cancelled`. On shutdown a
//! worker stops claiming, gives its unit [`QueueConfig::grace`] to finish, then releases it
//! to the queue for another instance.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Utc;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::catalog::{self, Catalog, Control};
use crate::config::Loaded;
use crate::scheduler::Clock;
use crate::store::{ClaimedUnit, Lease, Store, UnitEnd};

/// The controls of a run, split into units that can be worked on separately: two controls are
/// in one unit when they read the same collection (probe + parameters). Units keep the
/// catalog's order, as do the controls in each.
pub fn units_of(controls: &[&Control]) -> Vec<Vec<String>> {
    let n = controls.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    // The first control seen with each collection.
    let mut first: HashMap<String, usize> = HashMap::new();
    for (c, control) in controls.iter().enumerate() {
        for check in &control.checks {
            let key = format!("{}:{}", check.planned.probe(), check.planned.params_key());
            let other = *first.entry(key).or_insert(c);
            let (a, b) = (root(&mut parent, c), root(&mut parent, other));
            if a != b {
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut units: Vec<Vec<String>> = Vec::new();
    let mut unit_of_root: HashMap<usize, usize> = HashMap::new();
    for (c, control) in controls.iter().enumerate() {
        let r = root(&mut parent, c);
        let u = *unit_of_root.entry(r).or_insert_with(|| {
            units.push(Vec::new());
            units.len() - 1
        });
        units[u].push(control.id.clone());
    }
    units
}

/// How the workers of one instance behave.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// How long a claim holds without renewal (renewed every third of it).
    pub lease: StdDuration,
    /// How often an idle worker looks for work (it is also woken when this instance queues).
    pub poll: StdDuration,
    /// Units this instance works on at once.
    pub workers: usize,
    /// On shutdown, how long a unit in progress may take to finish before it is released.
    pub grace: StdDuration,
}

impl QueueConfig {
    pub fn from_loaded(loaded: &Loaded) -> QueueConfig {
        let limits = &loaded.config.limits;
        QueueConfig {
            lease: limits.lease.to_std(),
            poll: limits.queue_poll.to_std(),
            workers: limits.workers.max(1),
            grace: limits.shutdown_grace.to_std(),
        }
    }
}

/// This process's name in leases and slot claims: host, process id and a random suffix.
pub fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_string());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &suffix[..8])
}

/// One instance's workers.
pub struct Workers {
    pub store: Store,
    pub catalog: Arc<Catalog>,
    pub loaded: Arc<Loaded>,
    pub clock: Arc<dyn Clock>,
    pub signer: crate::integrity::Signer,
    pub instance: String,
    pub config: QueueConfig,
    /// Notified when this instance queues a run.
    pub wake: Arc<Notify>,
    /// Notified when these workers close a run.
    pub closed: Arc<Notify>,
    /// The collections this instance's units may hold at once (`limits.concurrency`).
    pub permits: Arc<tokio::sync::Semaphore>,
}

/// How a unit's work stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Cancelled,
    LeaseLost,
}

impl Workers {
    /// Starts `config.workers` claim loops and one reaper; the handle completes once
    /// `shutdown` is cancelled and every unit in progress finished or was released.
    pub fn spawn(self: Arc<Self>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut set = JoinSet::new();
            for _ in 0..self.config.workers {
                set.spawn(Arc::clone(&self).claim_loop(shutdown.clone()));
            }
            set.spawn(Arc::clone(&self).reap_loop(shutdown.clone()));
            while let Some(done) = set.join_next().await {
                if let Err(e) = done {
                    error!(error = %e, "a queue worker task failed");
                }
            }
            info!(instance = %self.instance, "queue workers stopped");
        })
    }

    async fn claim_loop(self: Arc<Self>, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let now = Utc::now();
            let lease_until = now + lease_delta(self.config.lease);
            match self
                .store
                .claim_unit(&self.instance, now, lease_until)
                .await
            {
                Ok(Some(unit)) => self.work(unit, &shutdown).await,
                Ok(None) => {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(self.config.poll) => {}
                    }
                }
                Err(e) => {
                    error!(error = %e, "cannot claim work from the run queue");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(self.config.poll) => {}
                    }
                }
            }
        }
    }

    async fn reap_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let every = (self.config.lease / 2).max(StdDuration::from_millis(500));
        loop {
            self.close_ready().await;
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Closes every run whose units have all ended (any instance may; the first wins).
    pub async fn close_ready(&self) {
        let closable = match self.store.reap(Utc::now()).await {
            Ok(c) => c,
            Err(e) => {
                error!(error = %e, "cannot reap the run queue");
                return;
            }
        };
        for run in closable {
            match self
                .store
                .close_run_as(&run, self.clock.now(), &self.signer)
                .await
            {
                Ok(()) => {
                    let now = self.clock.now();
                    crate::metrics::run_closed(
                        (now - run.started_at).to_std().unwrap_or_default(),
                        run.state.as_str(),
                    );
                    info!(
                        run = %run.run_id,
                        state = run.state.as_str(),
                        error = run.error.as_deref().unwrap_or(""),
                        "run closed"
                    );
                    self.closed.notify_waiters();
                }
                Err(crate::store::StoreError::RunClosed { .. }) => {}
                Err(e) => error!(run = %run.run_id, error = %e, "cannot close the run"),
            }
        }
    }

    /// Works one claimed unit to its end, renewing the lease meanwhile.
    async fn work(&self, unit: ClaimedUnit, shutdown: &CancellationToken) {
        info!(
            run = %unit.run_id,
            unit = unit.unit,
            attempt = unit.attempts,
            controls = unit.controls.len(),
            "unit claimed"
        );
        let stop = CancellationToken::new();
        let why = Arc::new(std::sync::Mutex::new(None::<Stop>));
        let renewal = tokio::spawn(renew(
            self.store.clone(),
            unit.clone(),
            self.instance.clone(),
            self.config.lease,
            stop.clone(),
            Arc::clone(&why),
        ));
        let grace_over = async {
            shutdown.cancelled().await;
            tokio::time::sleep(self.config.grace).await;
        };
        let finished = tokio::select! {
            r = self.execute(&unit) => Some(r),
            () = stop.cancelled() => None,
            () = grace_over => {
                renewal.abort();
                match self.store.release_unit(&unit.run_id, unit.unit, &self.instance).await {
                    Ok(_) => warn!(run = %unit.run_id, unit = unit.unit, "shutting down: unit released to the queue"),
                    Err(e) => error!(run = %unit.run_id, unit = unit.unit, error = %e, "cannot release the unit: its lease expires instead"),
                }
                return;
            }
        };
        renewal.abort();
        let stopped = *why.lock().unwrap_or_else(|p| p.into_inner());
        let (end, error) = match (finished, stopped) {
            (Some(Ok(())), _) => (UnitEnd::Done, None),
            (Some(Err(e)), _) => (UnitEnd::Failed, Some(format!("{e:#}"))),
            (None, Some(Stop::Cancelled)) => (UnitEnd::Cancelled, None),
            (None, _) => {
                warn!(run = %unit.run_id, unit = unit.unit, "lease lost: another instance took the unit over; stopped");
                return;
            }
        };
        match self
            .store
            .end_unit(
                &unit.run_id,
                unit.unit,
                &self.instance,
                end,
                error.as_deref(),
            )
            .await
        {
            Ok(true) => {
                info!(run = %unit.run_id, unit = unit.unit, end = ?end, error = error.as_deref().unwrap_or(""), "unit ended")
            }
            Ok(false) => {
                warn!(run = %unit.run_id, unit = unit.unit, "unit ended after another instance took it over")
            }
            Err(e) => {
                error!(run = %unit.run_id, unit = unit.unit, error = %e, "cannot end the unit: its lease expires and another instance takes it")
            }
        }
        self.close_ready().await;
    }

    /// Collects and evaluates the unit's controls that have no result in the run yet.
    async fn execute(&self, unit: &ClaimedUnit) -> anyhow::Result<()> {
        let done = self.store.evaluated_controls(&unit.run_id).await?;
        let mut selected: Vec<&Control> = Vec::with_capacity(unit.controls.len());
        for id in unit.controls.iter().filter(|id| !done.contains(*id)) {
            let control = self.catalog.get(id).ok_or_else(|| {
                anyhow::anyhow!(
                    "control `{id}` is not in this instance's catalog (instances must share one configuration)"
                )
            })?;
            selected.push(control);
        }
        if selected.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let ctx = crate::probes::ProbeContext::for_run(&self.loaded, now);
        let managed = catalog::managed_exceptions(&self.store, now.date_naive()).await?;
        let controls = catalog::with_exceptions(&selected, &managed);
        let selected: Vec<&Control> = controls.iter().collect();
        let totals = crate::runner::run_unit(
            &self.store,
            &ctx,
            &selected,
            Arc::clone(&self.permits),
            &unit.run_id,
        )
        .await?;
        info!(
            run = %unit.run_id,
            unit = unit.unit,
            controls = totals.controls,
            collections = totals.collections,
            "unit evaluated"
        );
        Ok(())
    }
}

fn lease_delta(lease: StdDuration) -> chrono::Duration {
    chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(30))
}

/// Renews the lease every third of its length until stopped; cancels `stop` (saying why)
/// when the run is to be cancelled or the lease was lost.
async fn renew(
    store: Store,
    unit: ClaimedUnit,
    owner: String,
    lease: StdDuration,
    stop: CancellationToken,
    why: Arc<std::sync::Mutex<Option<Stop>>>,
) {
    let every = (lease / 3).max(StdDuration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let until = Utc::now() + lease_delta(lease);
        let reason = match store
            .renew_lease(&unit.run_id, unit.unit, &owner, until)
            .await
        {
            Ok(Lease::Held { cancel: false }) => continue,
            Ok(Lease::Held { cancel: true }) => Stop::Cancelled,
            Ok(Lease::Lost) => Stop::LeaseLost,
            Err(e) => {
                // The lease may still hold; if the database stays away it expires and another
                // instance takes the unit.
                warn!(run = %unit.run_id, unit = unit.unit, error = %e, "cannot renew the lease");
                continue;
            }
        };
        *why.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        stop.cancel();
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::compile_file;
    use std::path::Path;

    fn control(id: &str, checks: &str) -> Control {
        let text = format!(
            "id: {id}\ntitle: T\ncategory: C\ndescription: d\nclaim: procedure\nowner: o\nseverity: low\nchecks:\n{checks}"
        );
        compile_file(Path::new(&format!("{id}.yaml")), &text)
            .unwrap()
            .0
    }

    #[test]
    fn controls_sharing_a_collection_are_one_unit() {
        let iam = "  - probe: aws.iam.users\n    assert: user != ''\n";
        let iam2 = "  - probe: aws.iam.password_policy\n    assert: present\n";
        let vendors = "  - probe: registers.vendors\n    assert: name != ''\n";
        let policies = "  - probe: documents.policies\n    assert: title != ''\n";
        let both = format!("{vendors}{policies}");
        let a = control("a", iam);
        let b = control("b", vendors);
        let c = control("c", iam2);
        let d = control("d", policies);
        // a and c read different collections of one source: apart.
        let a2 = control("a2", iam);
        let units = units_of(&[&a, &b, &c, &d, &a2]);
        assert_eq!(
            units,
            vec![vec!["a", "a2"], vec!["b"], vec!["c"], vec!["d"]]
        );
        // A control reading two collections joins their units.
        let e = control("e", &both);
        let units = units_of(&[&a, &b, &c, &d, &e]);
        assert_eq!(units, vec![vec!["a"], vec!["b", "d", "e"], vec!["c"]]);
        assert!(units_of(&[]).is_empty());
    }
}
