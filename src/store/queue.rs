//! The run queue shared by every instance on one database (issue 19).
//!
//! - A scheduled slot becomes at most one run: [`Store::enqueue_run`] claims
//!   `(control, slot)` in `run_slots` (its primary key is the claim) before it queues anything.
//! - A control already in a running run anywhere is not queued again (`run_controls`).
//! - A run's work is a few units ([`crate::queue::units_of`]); any instance claims the oldest
//!   claimable unit under a lease ([`Store::claim_unit`]: `FOR UPDATE SKIP LOCKED` on
//!   PostgreSQL; SQLite's `BEGIN IMMEDIATE` serialises its one instance's workers), renews it
//!   while it works ([`Store::renew_lease`]), and ends it ([`Store::end_unit`]). A lease that
//!   expires (its instance was killed) makes the unit claimable again, at most
//!   [`MAX_ATTEMPTS`] times; [`Store::reap`] then fails it, and closes every run whose units
//!   have all ended.
//!
//! Enqueueing takes a transaction-scoped advisory lock on PostgreSQL, so the slot claims and
//! the in-flight check of two instances never interleave.
//!
//! Lease deadlines are Unix milliseconds of the instances' wall clocks (never the evaluation
//! clock, which tests fix).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement, Value};

use super::staff::{Actor, audit_in};
use super::{QueryContext, Store, StoreError, db_time, new_run_row, to_json};
use crate::model::{RunState, Trigger};

/// How often a unit may be claimed before it is failed: a unit whose every claimer died.
pub const MAX_ATTEMPTS: i32 = 3;

/// The advisory lock key of enqueueing (PostgreSQL): "trellis" in ASCII.
const ENQUEUE_LOCK: i64 = 0x0074_7265_6c6c_6973;

/// What [`Store::enqueue_run`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enqueued {
    /// The run queued, if any control was.
    pub run_id: Option<String>,
    /// The controls the run evaluates.
    pub queued: Vec<String>,
    /// Not queued: a running run (of any instance) already evaluates them.
    pub in_flight: Vec<String>,
    /// Not queued: another instance claimed this slot for them first.
    pub slot_taken: Vec<String>,
}

/// A unit this instance holds a lease on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedUnit {
    pub run_id: String,
    pub unit: i32,
    /// The controls the unit evaluates.
    pub controls: Vec<String>,
    /// How many times it has been claimed, this claim included.
    pub attempts: i32,
    /// The run's trigger.
    pub trigger: String,
}

/// Whether a lease is still this instance's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// Renewed; `cancel`: someone asked for the run to be cancelled.
    Held { cancel: bool },
    /// Another instance took the unit over (this one did not renew in time), or the unit
    /// was ended.
    Lost,
}

/// How a unit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitEnd {
    Done,
    Failed,
    Cancelled,
}

impl UnitEnd {
    fn as_str(self) -> &'static str {
        match self {
            UnitEnd::Done => "done",
            UnitEnd::Failed => "failed",
            UnitEnd::Cancelled => "cancelled",
        }
    }
}

/// A run whose units have all ended, and how it is to be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closable {
    pub run_id: String,
    /// When the run started (by the evaluation clock).
    pub started_at: DateTime<Utc>,
    pub state: RunState,
    /// Why, when it did not complete.
    pub error: Option<String>,
}

/// What a cancel request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// Recorded (and audited): the run stops between collections and closes `cancelled`.
    Requested,
    /// Asked for before; nothing changed.
    AlreadyRequested,
    /// The run is closed already (`completed`, `interrupted`, `cancelled`).
    Closed(String),
    NotFound,
}

/// One claimed slot (see [`Store::slot_claims`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotClaim {
    pub control_id: String,
    pub slot: String,
    /// The run it became; `None` when the control was still running then (skipped).
    pub run_id: Option<String>,
    pub claimed_by: String,
}

/// One unit of a run as queued (see [`Store::run_units`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitRow {
    pub unit: i32,
    pub controls: String,
    /// `queued`, `claimed`, `done`, `failed`, `cancelled`.
    pub state: String,
    pub owner: Option<String>,
    pub attempts: i32,
    pub error: Option<String>,
}

/// The queue as it stands (for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Units waiting for an instance.
    pub queued: u64,
    /// Units under a lease that has not expired.
    pub leases_held: u64,
}

/// Whether `run_id` is a queued run that already has a result of `control_id`.
pub(super) async fn has_result(
    txn: &impl ConnectionTrait,
    run_id: &str,
    control_id: &str,
    op: &'static str,
) -> Result<bool, StoreError> {
    Ok(txn
        .query_one_raw(Statement::from_sql_and_values(
            txn.get_database_backend(),
            "SELECT 1 FROM control_results c WHERE c.run_id = $1 AND c.control_id = $2 \
               AND EXISTS (SELECT 1 FROM run_units u WHERE u.run_id = $1) LIMIT 1",
            [run_id.into(), control_id.into()],
        ))
        .await
        .during(op)?
        .is_some())
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

impl Store {
    /// A statement in this store's SQL dialect (the store's modules share it).
    pub(super) fn stmt(&self, sql: &str, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(self.db.get_database_backend(), sql, values)
    }

    /// Queues one run of `controls` (trigger `trigger`, started at `started_at`), split into
    /// the units `units` makes of the controls that are queued.
    ///
    /// A control with a slot in `slots` (`schedule:<time>`, `startup:<last success>@<window>`)
    /// is first claimed for that slot: a control another instance claimed it for is left out
    /// (`slot_taken`). Controls due for different slots still make one run. Controls in a running run are left out (`in_flight`). Nothing is queued
    /// when nothing is left. One transaction, under an advisory lock on PostgreSQL.
    pub async fn enqueue_run(
        &self,
        trigger: Trigger,
        controls: &[String],
        slots: &HashMap<String, String>,
        instance: &str,
        started_at: DateTime<Utc>,
        units: &(dyn Fn(&[String]) -> Vec<Vec<String>> + Send + Sync),
    ) -> Result<Enqueued, StoreError> {
        const OP: &str = "enqueue run";
        let txn = self.begin_write().await.during(OP)?;
        if self.backend == "postgres" {
            txn.execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1)",
                [ENQUEUE_LOCK.into()],
            ))
            .await
            .during(OP)?;
        }
        let mut out = Enqueued::default();
        let mut seen = HashSet::new();
        let mut won = Vec::new();
        for control in controls {
            if !seen.insert(control.as_str()) {
                continue;
            }
            match slots.get(control) {
                None => won.push(control.clone()),
                Some(slot) => {
                    let claimed = txn
                        .execute_raw(self.stmt(
                            "INSERT INTO run_slots (control_id, slot, run_id, claimed_by, claimed_at) \
                             VALUES ($1, $2, NULL, $3, $4) ON CONFLICT DO NOTHING",
                            vec![
                                control.as_str().into(),
                                slot.as_str().into(),
                                instance.into(),
                                db_time(Utc::now()).into(),
                            ],
                        ))
                        .await
                        .during(OP)?;
                    if claimed.rows_affected() == 1 {
                        won.push(control.clone());
                    } else {
                        out.slot_taken.push(control.clone());
                    }
                }
            }
        }
        let running: HashSet<String> = txn
            .query_all_raw(self.stmt(
                "SELECT rc.control_id FROM run_controls rc JOIN runs r ON r.id = rc.run_id \
                 WHERE r.state = 'running'",
                vec![],
            ))
            .await
            .during(OP)?
            .iter()
            .map(|r| r.try_get_by_index::<String>(0))
            .collect::<Result<_, _>>()
            .during(OP)?;
        let (busy, free): (Vec<String>, Vec<String>) =
            won.into_iter().partition(|c| running.contains(c));
        out.in_flight = busy;
        if free.is_empty() {
            txn.commit().await.during(OP)?;
            return Ok(out);
        }
        let run_id = uuid::Uuid::now_v7().to_string();
        let row = new_run_row(&run_id, trigger, free.len(), started_at)?;
        sea_orm::EntityTrait::insert(row)
            .exec_without_returning(&txn)
            .await
            .during(OP)?;
        for (unit, members) in units(&free).iter().enumerate() {
            let unit = i32::try_from(unit).unwrap_or(i32::MAX);
            txn.execute_raw(self.stmt(
                "INSERT INTO run_units (run_id, unit, controls, state, owner, lease_until_ms, attempts, error) \
                 VALUES ($1, $2, $3, 'queued', NULL, NULL, 0, NULL)",
                vec![
                    run_id.as_str().into(),
                    unit.into(),
                    to_json("unit controls", members)?.into(),
                ],
            ))
            .await
            .during(OP)?;
            for control in members {
                txn.execute_raw(self.stmt(
                    "INSERT INTO run_controls (run_id, control_id, unit) VALUES ($1, $2, $3)",
                    vec![run_id.as_str().into(), control.as_str().into(), unit.into()],
                ))
                .await
                .during(OP)?;
                if let Some(slot) = slots.get(control) {
                    txn.execute_raw(self.stmt(
                        "UPDATE run_slots SET run_id = $1 WHERE control_id = $2 AND slot = $3",
                        vec![
                            run_id.as_str().into(),
                            control.as_str().into(),
                            slot.as_str().into(),
                        ],
                    ))
                    .await
                    .during(OP)?;
                }
            }
        }
        txn.commit().await.during(OP)?;
        out.queued = free;
        out.run_id = Some(run_id);
        Ok(out)
    }

    /// Claims the oldest claimable unit for `owner` until `lease_until`: a queued one, or one
    /// whose lease expired before `now` (its instance stopped renewing) and that has been
    /// claimed fewer than [`MAX_ATTEMPTS`] times. Units of runs asked to cancel are not
    /// claimed. `None` when there is nothing to do.
    pub async fn claim_unit(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<ClaimedUnit>, StoreError> {
        const OP: &str = "claim unit";
        let skip_locked = if self.backend == "postgres" {
            " FOR UPDATE OF u SKIP LOCKED"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE run_units SET state = 'claimed', owner = $1, lease_until_ms = $2, \
               attempts = attempts + 1 \
             WHERE (run_id, unit) = ( \
               SELECT u.run_id, u.unit FROM run_units u JOIN runs r ON r.id = u.run_id \
               WHERE r.state = 'running' AND r.cancel_requested_at IS NULL \
                 AND (u.state = 'queued' \
                      OR (u.state = 'claimed' AND u.lease_until_ms < $3 AND u.attempts < $4)) \
               ORDER BY u.run_id, u.unit LIMIT 1{skip_locked}) \
             RETURNING run_id, unit, controls, attempts"
        );
        let txn = self.begin_write().await.during(OP)?;
        let row = txn
            .query_one_raw(self.stmt(
                &sql,
                vec![
                    owner.into(),
                    millis(lease_until).into(),
                    millis(now).into(),
                    MAX_ATTEMPTS.into(),
                ],
            ))
            .await
            .during(OP)?;
        let Some(row) = row else {
            txn.commit().await.during(OP)?;
            return Ok(None);
        };
        let run_id: String = row.try_get_by_index(0).during(OP)?;
        let unit: i32 = row.try_get_by_index(1).during(OP)?;
        let controls: String = row.try_get_by_index(2).during(OP)?;
        let attempts: i32 = row.try_get_by_index(3).during(OP)?;
        let trigger = txn
            .query_one_raw(self.stmt(
                "SELECT trigger FROM runs WHERE id = $1",
                vec![run_id.as_str().into()],
            ))
            .await
            .during(OP)?
            .map(|r| r.try_get_by_index::<String>(0))
            .transpose()
            .during(OP)?
            .unwrap_or_default();
        txn.commit().await.during(OP)?;
        let controls: Vec<String> =
            serde_json::from_str(&controls).map_err(|e| StoreError::Corrupt {
                table: "run_units",
                id: format!("{run_id}/{unit}"),
                detail: format!("controls are not a JSON list of ids: {e}"),
            })?;
        Ok(Some(ClaimedUnit {
            run_id,
            unit,
            controls,
            attempts,
            trigger,
        }))
    }

    /// Extends `owner`'s lease on a unit to `until`, and says whether the run was asked to
    /// cancel. [`Lease::Lost`] when the unit is no longer this owner's.
    pub async fn renew_lease(
        &self,
        run_id: &str,
        unit: i32,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<Lease, StoreError> {
        const OP: &str = "renew lease";
        let renewed = self
            .db
            .execute_raw(self.stmt(
                "UPDATE run_units SET lease_until_ms = $1 \
                 WHERE run_id = $2 AND unit = $3 AND owner = $4 AND state = 'claimed'",
                vec![
                    millis(until).into(),
                    run_id.into(),
                    unit.into(),
                    owner.into(),
                ],
            ))
            .await
            .during(OP)?;
        if renewed.rows_affected() != 1 {
            return Ok(Lease::Lost);
        }
        let cancel = self
            .db
            .query_one_raw(self.stmt(
                "SELECT cancel_requested_by FROM runs WHERE id = $1 AND cancel_requested_at IS NOT NULL",
                vec![run_id.into()],
            ))
            .await
            .during(OP)?
            .is_some();
        Ok(Lease::Held { cancel })
    }

    /// Ends `owner`'s unit as `end` (with why, for a failure). False when the unit is no longer
    /// this owner's (its lease was taken over): what this owner did stays stored, the unit's
    /// state is the other instance's to set.
    pub async fn end_unit(
        &self,
        run_id: &str,
        unit: i32,
        owner: &str,
        end: UnitEnd,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let ended = self
            .db
            .execute_raw(self.stmt(
                "UPDATE run_units SET state = $1, error = $2, lease_until_ms = NULL \
                 WHERE run_id = $3 AND unit = $4 AND owner = $5 AND state = 'claimed'",
                vec![
                    end.as_str().into(),
                    error.map(str::to_string).into(),
                    run_id.into(),
                    unit.into(),
                    owner.into(),
                ],
            ))
            .await
            .during("end unit")?;
        Ok(ended.rows_affected() == 1)
    }

    /// Gives a unit back to the queue at once (shutdown): another instance claims it without
    /// waiting for the lease to expire, and this claim is not counted as an attempt.
    pub async fn release_unit(
        &self,
        run_id: &str,
        unit: i32,
        owner: &str,
    ) -> Result<bool, StoreError> {
        let released = self
            .db
            .execute_raw(self.stmt(
                "UPDATE run_units SET state = 'queued', owner = NULL, lease_until_ms = NULL, \
                   attempts = attempts - 1 \
                 WHERE run_id = $1 AND unit = $2 AND owner = $3 AND state = 'claimed'",
                vec![run_id.into(), unit.into(), owner.into()],
            ))
            .await
            .during("release unit")?;
        Ok(released.rows_affected() == 1)
    }

    /// The controls of `run_id` that have a stored result (a unit taken over from an instance
    /// that died evaluates only the others).
    pub async fn evaluated_controls(&self, run_id: &str) -> Result<HashSet<String>, StoreError> {
        const OP: &str = "read evaluated controls";
        self.db
            .query_all_raw(self.stmt(
                "SELECT control_id FROM control_results WHERE run_id = $1",
                vec![run_id.into()],
            ))
            .await
            .during(OP)?
            .iter()
            .map(|r| r.try_get_by_index::<String>(0).during(OP))
            .collect()
    }

    /// Adds `collections` to a running run's planned collections (each unit plans its own).
    pub async fn add_planned(&self, run_id: &str, collections: usize) -> Result<(), StoreError> {
        let n = super::to_i32("collections", collections)?;
        self.db
            .execute_raw(self.stmt(
                "UPDATE runs SET collections_total = COALESCE(collections_total, 0) + $1 \
                 WHERE id = $2 AND state = 'running'",
                vec![n.into(), run_id.into()],
            ))
            .await
            .during("plan unit")?;
        Ok(())
    }

    /// Asks for a running run to stop between collections, by `actor` (audited in the same
    /// transaction). Its queued units are cancelled at once; an instance working on one sees
    /// the request when it renews its lease.
    pub async fn request_cancel(
        &self,
        run_id: &str,
        actor: &Actor,
        via: &str,
        now: DateTime<Utc>,
    ) -> Result<CancelOutcome, StoreError> {
        const OP: &str = "cancel run";
        let txn = self.begin_write().await.during(OP)?;
        let found = txn
            .query_one_raw(self.stmt(
                &format!(
                    "SELECT state, cancel_requested_by FROM runs WHERE id = $1{}",
                    if self.backend == "postgres" {
                        " FOR UPDATE"
                    } else {
                        ""
                    }
                ),
                vec![run_id.into()],
            ))
            .await
            .during(OP)?;
        let Some(row) = found else {
            return Ok(CancelOutcome::NotFound);
        };
        let state: String = row.try_get_by_index(0).during(OP)?;
        let by: Option<String> = row.try_get_by_index(1).during(OP)?;
        if state != RunState::Running.as_str() {
            return Ok(CancelOutcome::Closed(state));
        }
        if by.is_some() {
            return Ok(CancelOutcome::AlreadyRequested);
        }
        txn.execute_raw(self.stmt(
            "UPDATE runs SET cancel_requested_at = $1, cancel_requested_by = $2 WHERE id = $3",
            vec![
                db_time(now).into(),
                actor.name.as_str().into(),
                run_id.into(),
            ],
        ))
        .await
        .during(OP)?;
        let units = txn
            .execute_raw(self.stmt(
                "UPDATE run_units SET state = 'cancelled' WHERE run_id = $1 AND state = 'queued'",
                vec![run_id.into()],
            ))
            .await
            .during(OP)?;
        audit_in(
            &txn,
            actor,
            "run.cancel",
            &format!("run:{run_id}"),
            serde_json::json!({ "via": via, "queued_units_cancelled": units.rows_affected() }),
            now,
        )
        .await?;
        txn.commit().await.during(OP)?;
        Ok(CancelOutcome::Requested)
    }

    /// The queue's housekeeping, safe to run on every instance at once: fails units whose
    /// lease expired [`MAX_ATTEMPTS`] times, cancels units of cancelled runs whose worker
    /// died, and returns the running runs whose units have all ended, with the state to close
    /// them in (see [`Store::close_run_as`]).
    pub async fn reap(&self, now: DateTime<Utc>) -> Result<Vec<Closable>, StoreError> {
        const OP: &str = "reap the run queue";
        let now_ms = millis(now);
        self.db
            .execute_raw(self.stmt(
                "UPDATE run_units SET state = 'failed', lease_until_ms = NULL, \
                   error = 'claimed ' || CAST(attempts AS TEXT) || ' times; each time the instance working on it stopped renewing its lease (killed, crashed or cut off from the database)' \
                 WHERE state = 'claimed' AND lease_until_ms < $1 AND attempts >= $2",
                vec![now_ms.into(), MAX_ATTEMPTS.into()],
            ))
            .await
            .during(OP)?;
        self.db
            .execute_raw(self.stmt(
                "UPDATE run_units SET state = 'cancelled', lease_until_ms = NULL \
                 WHERE state = 'claimed' AND lease_until_ms < $1 \
                   AND run_id IN (SELECT id FROM runs WHERE cancel_requested_at IS NOT NULL)",
                vec![now_ms.into()],
            ))
            .await
            .during(OP)?;
        let rows = self
            .db
            .query_all_raw(self.stmt(
                "SELECT u.run_id, u.unit, u.state, u.error, r.cancel_requested_by, r.started_at \
                 FROM run_units u JOIN runs r ON r.id = u.run_id \
                 WHERE r.state = 'running' AND NOT EXISTS ( \
                   SELECT 1 FROM run_units o WHERE o.run_id = u.run_id \
                     AND o.state IN ('queued', 'claimed')) \
                 ORDER BY u.run_id, u.unit",
                vec![],
            ))
            .await
            .during(OP)?;
        type Seen = (Vec<String>, bool, Option<String>, Option<DateTime<Utc>>);
        let mut runs: BTreeMap<String, Seen> = BTreeMap::new();
        for r in &rows {
            let run_id: String = r.try_get_by_index(0).during(OP)?;
            let unit: i32 = r.try_get_by_index(1).during(OP)?;
            let state: String = r.try_get_by_index(2).during(OP)?;
            let error: Option<String> = r.try_get_by_index(3).during(OP)?;
            let cancel_by: Option<String> = r.try_get_by_index(4).during(OP)?;
            let started_at: DateTime<Utc> = r.try_get_by_index(5).during(OP)?;
            let entry = runs.entry(run_id).or_default();
            entry.2 = cancel_by;
            entry.3 = Some(started_at);
            match state.as_str() {
                "failed" => entry.0.push(format!(
                    "unit {unit}: {}",
                    error.as_deref().unwrap_or("failed")
                )),
                "cancelled" => entry.1 = true,
                _ => {}
            }
        }
        Ok(runs
            .into_iter()
            .map(|(run_id, (failures, cancelled, cancel_by, started_at))| {
                let (state, error) = if let Some(by) = cancel_by.filter(|_| failures.is_empty()) {
                    (RunState::Cancelled, Some(format!("cancelled by {by}")))
                } else if !failures.is_empty() {
                    (RunState::Interrupted, Some(failures.join("; ")))
                } else if cancelled {
                    (RunState::Cancelled, Some("cancelled".to_string()))
                } else {
                    (RunState::Completed, None)
                };
                Closable {
                    run_id,
                    started_at: started_at.unwrap_or(now),
                    state,
                    error,
                }
            })
            .collect())
    }

    /// Closes a running run in `state` (signed and chained as every closed run is).
    pub async fn close_run_as(
        &self,
        closable: &Closable,
        finished_at: DateTime<Utc>,
        signer: &crate::integrity::Signer,
    ) -> Result<(), StoreError> {
        self.close_run(
            &closable.run_id,
            closable.state,
            finished_at,
            closable.error.as_deref(),
            signer,
            "close run",
        )
        .await
    }

    /// Every slot claim, by control and slot (diagnosis, tests).
    pub async fn slot_claims(&self) -> Result<Vec<SlotClaim>, StoreError> {
        const OP: &str = "read slot claims";
        self.db
            .query_all_raw(self.stmt(
                "SELECT control_id, slot, run_id, claimed_by FROM run_slots ORDER BY control_id, slot",
                vec![],
            ))
            .await
            .during(OP)?
            .iter()
            .map(|r| {
                Ok(SlotClaim {
                    control_id: r.try_get_by_index(0).during(OP)?,
                    slot: r.try_get_by_index(1).during(OP)?,
                    run_id: r.try_get_by_index(2).during(OP)?,
                    claimed_by: r.try_get_by_index(3).during(OP)?,
                })
            })
            .collect()
    }

    /// A run's units (the run page, diagnosis, tests).
    pub async fn run_units(&self, run_id: &str) -> Result<Vec<UnitRow>, StoreError> {
        const OP: &str = "read run units";
        self.db
            .query_all_raw(self.stmt(
                "SELECT unit, controls, state, owner, attempts, error FROM run_units \
                 WHERE run_id = $1 ORDER BY unit",
                vec![run_id.into()],
            ))
            .await
            .during(OP)?
            .iter()
            .map(|r| {
                Ok(UnitRow {
                    unit: r.try_get_by_index(0).during(OP)?,
                    controls: r.try_get_by_index(1).during(OP)?,
                    state: r.try_get_by_index(2).during(OP)?,
                    owner: r.try_get_by_index(3).during(OP)?,
                    attempts: r.try_get_by_index(4).during(OP)?,
                    error: r.try_get_by_index(5).during(OP)?,
                })
            })
            .collect()
    }

    /// Queued units and live leases.
    pub async fn queue_stats(&self, now: DateTime<Utc>) -> Result<QueueStats, StoreError> {
        const OP: &str = "read queue stats";
        let row = self
            .db
            .query_one_raw(self.stmt(
                "SELECT \
                   CAST(COALESCE(SUM(CASE WHEN state = 'queued' THEN 1 ELSE 0 END), 0) AS BIGINT), \
                   CAST(COALESCE(SUM(CASE WHEN state = 'claimed' AND lease_until_ms >= $1 THEN 1 ELSE 0 END), 0) AS BIGINT) \
                 FROM run_units",
                vec![millis(now).into()],
            ))
            .await
            .during(OP)?;
        let Some(row) = row else {
            return Ok(QueueStats::default());
        };
        let queued: i64 = row.try_get_by_index(0).during(OP)?;
        let held: i64 = row.try_get_by_index(1).during(OP)?;
        Ok(QueueStats {
            queued: u64::try_from(queued).unwrap_or(0),
            leases_held: u64::try_from(held).unwrap_or(0),
        })
    }

    /// Whether `run_id` has queue rows (a run of `serve`); the others are `check` runs or
    /// older.
    pub(super) async fn is_queued(&self, run_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .db
            .query_one_raw(self.stmt(
                "SELECT 1 FROM run_units WHERE run_id = $1 LIMIT 1",
                vec![run_id.into()],
            ))
            .await
            .during("read queued runs")?
            .is_some())
    }
}
