//! The notification outbox (issue 20): events written in the transaction of their cause,
//! routed into deliveries, and delivered in batches under leases (see [`crate::notify`]).
//!
//! - [`record_transitions`]: called by `Store::record_result` inside its transaction.
//! - [`Store::add_events`]: events found by sweeps, each under a unique key.
//! - [`Store::route_events`]: unrouted events become one delivery per channel.
//! - [`Store::claim_batch`] / [`Store::finish_batch`]: a channel's pending deliveries become
//!   one message; two instances never hold the same delivery (`FOR UPDATE SKIP LOCKED` on
//!   PostgreSQL; SQLite's `BEGIN IMMEDIATE` serialises its one instance).

use std::collections::BTreeSet;

use sea_orm::{ConnectionTrait, DatabaseTransaction, Statement, Value};

use super::{QueryContext, Store, StoreError};
use crate::model::ControlOutcome;
use crate::notify::{Event, FindingState, Known, NewEvent, REOPEN_WINDOW_DAYS};

/// Rows written per multi-row insert (5 bound values each: well under both backends' limits).
const ROWS_PER_INSERT: usize = 500;
/// Deliveries in one message at most (a larger burst is several digests).
const BATCH_LIMIT: i64 = 100;
/// Events routed per transaction.
const ROUTE_LIMIT: i64 = 200;

fn stmt(backend: sea_orm::DatabaseBackend, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(backend, sql, values)
}

fn corrupt(table: &'static str, id: impl ToString, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table,
        id: id.to_string(),
        detail: detail.to_string(),
    }
}

/// Inside the transaction storing `outcome`: compares it with the fingerprints known for its
/// control, writes the changes and their events (see [`crate::notify::transitions`]).
pub(super) async fn record_transitions(
    txn: &DatabaseTransaction,
    run_id: &str,
    outcome: &ControlOutcome,
    now_ms: i64,
    op: &'static str,
) -> Result<(), StoreError> {
    let backend = txn.get_database_backend();
    let control = outcome.control_id.as_str();
    let rows = txn
        .query_all_raw(stmt(
            backend,
            "SELECT fingerprint, check_index, state FROM notify_findings WHERE control_id = $1",
            vec![control.into()],
        ))
        .await
        .during(op)?;
    let mut known = Vec::with_capacity(rows.len());
    for r in rows {
        let fingerprint: String = r.try_get_by_index(0).during(op)?;
        let check: i32 = r.try_get_by_index(1).during(op)?;
        let state: String = r.try_get_by_index(2).during(op)?;
        let state = FindingState::parse(&state).ok_or_else(|| {
            corrupt(
                "notify_findings",
                format!("{control}/{fingerprint}"),
                format!("unknown state `{state}`"),
            )
        })?;
        known.push(Known {
            fingerprint,
            check: usize::try_from(check).unwrap_or(usize::MAX),
            state,
        });
    }
    let t = crate::notify::transitions(run_id, outcome, &known);
    for chunk in t.set.chunks(ROWS_PER_INSERT) {
        let mut sql = String::from(
            "INSERT INTO notify_findings (control_id, fingerprint, check_index, state, since_ms) VALUES ",
        );
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 5);
        sql.push_str(&super::values_clause(chunk.len(), 5));
        for (fp, check, state) in chunk {
            values.push(control.into());
            values.push(fp.as_str().into());
            values.push(i32::try_from(*check).unwrap_or(i32::MAX).into());
            values.push(state.as_str().into());
            values.push(now_ms.into());
        }
        sql.push_str(
            " ON CONFLICT (control_id, fingerprint) DO UPDATE SET \
               check_index = excluded.check_index, state = excluded.state, \
               since_ms = excluded.since_ms",
        );
        txn.execute_raw(stmt(backend, &sql, values))
            .await
            .during(op)?;
    }
    for chunk in t.forget.chunks(ROWS_PER_INSERT) {
        let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let mut values: Vec<Value> = vec![control.into()];
        values.extend(chunk.iter().map(|f| Value::from(f.as_str())));
        txn.execute_raw(stmt(
            backend,
            &format!(
                "DELETE FROM notify_findings WHERE control_id = $1 AND fingerprint IN ({})",
                marks.join(", ")
            ),
            values,
        ))
        .await
        .during(op)?;
    }
    // Fixes older than the reopen window are forgotten: failing again is simply failing.
    txn.execute_raw(stmt(
        backend,
        "DELETE FROM notify_findings WHERE control_id = $1 AND state = 'fixed' AND since_ms < $2",
        vec![
            control.into(),
            (now_ms - REOPEN_WINDOW_DAYS * 86_400_000).into(),
        ],
    ))
    .await
    .during(op)?;
    for event in t.events {
        let key = format!("{}:{control}:{run_id}", event.kind.as_str());
        add_event_in(txn, &NewEvent { key, event }, now_ms, op).await?;
    }
    Ok(())
}

/// Adds an event to the outbox inside `txn`, unless one with its key is there. Whether it was
/// added.
pub(super) async fn add_event_in(
    txn: &impl ConnectionTrait,
    new: &NewEvent,
    now_ms: i64,
    op: &'static str,
) -> Result<bool, StoreError> {
    let payload = serde_json::to_string(&new.event).map_err(|error| StoreError::Serialize {
        what: "notification event",
        error,
    })?;
    let added = txn
        .execute_raw(stmt(
            txn.get_database_backend(),
            "INSERT INTO notify_events (dedupe_key, kind, control_id, payload, created_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (dedupe_key) DO NOTHING",
            vec![
                new.key.as_str().into(),
                new.event.kind.as_str().into(),
                new.event.control_id.clone().into(),
                payload.into(),
                now_ms.into(),
            ],
        ))
        .await
        .during(op)?;
    Ok(added.rows_affected() == 1)
}

/// A channel's deliveries claimed as one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// A UUID: the message's identity on every attempt (`Message-ID`, `X-Trellis-Delivery`),
    /// so a receiver can tell a retry from a new message.
    pub id: String,
    pub channel: String,
    /// This attempt's number (1 for the first).
    pub attempts: i32,
    /// The events, oldest first.
    pub events: Vec<Event>,
}

/// How an attempt at a batch ended.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchEnd {
    Sent,
    /// Try again at `at_ms`.
    Retry {
        at_ms: i64,
        error: String,
    },
    /// Out of attempts.
    Failed {
        error: String,
    },
    /// Not to be sent at all: its recipient is gone (unsubscribed, a request revoked), or its
    /// channel is no longer configured. Not retried, not counted as failed.
    Dropped {
        reason: String,
    },
}

/// Deliveries by state, and the newest failed ones (the dashboard).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotifyOverview {
    pub pending: i64,
    pub sending: i64,
    pub sent: i64,
    pub failed: i64,
    pub failed_recent: Vec<FailedDelivery>,
}

/// A delivery that ran out of attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedDelivery {
    pub id: i64,
    pub channel: String,
    pub kind: String,
    pub control_id: Option<String>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_ms: i64,
}

/// One delivery with its event (tests, diagnosis).
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    pub id: i64,
    pub channel: String,
    pub state: String,
    pub batch: Option<String>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub event: Event,
}

impl Store {
    fn notify_stmt(&self, sql: &str, values: Vec<Value>) -> Statement {
        stmt(self.db.get_database_backend(), sql, values)
    }

    fn skip_locked(&self) -> &'static str {
        if self.backend == "postgres" {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        }
    }

    /// Adds events found by a sweep, each unless its key is already in the outbox. How many
    /// were added.
    pub async fn add_events(&self, events: &[NewEvent], now_ms: i64) -> Result<usize, StoreError> {
        const OP: &str = "add notification events";
        let mut added = 0;
        for e in events {
            if add_event_in(&self.db, e, now_ms, OP).await? {
                added += 1;
            }
        }
        Ok(added)
    }

    /// Whether any event waits to be routed.
    pub async fn has_unrouted_events(&self) -> Result<bool, StoreError> {
        Ok(self
            .db
            .query_one_raw(self.notify_stmt(
                "SELECT id FROM notify_events WHERE routed_ms IS NULL LIMIT 1",
                vec![],
            ))
            .await
            .during("look for unrouted notification events")?
            .is_some())
    }

    /// Turns unrouted events into deliveries: one per channel `route` names (none: the event is
    /// routed nowhere). Each batch of events in one transaction, so an event is routed once
    /// whichever instance routes it. How many events were routed.
    pub async fn route_events(
        &self,
        now_ms: i64,
        route: &(dyn Fn(&Event) -> BTreeSet<String> + Sync),
    ) -> Result<usize, StoreError> {
        const OP: &str = "route notification events";
        let mut total = 0;
        loop {
            let txn = self.begin_write().await.during(OP)?;
            let rows = txn
                .query_all_raw(self.notify_stmt(
                    &format!(
                        "SELECT id, payload, created_ms FROM notify_events WHERE routed_ms IS NULL \
                         ORDER BY id LIMIT {ROUTE_LIMIT}{}",
                        self.skip_locked()
                    ),
                    vec![],
                ))
                .await
                .during(OP)?;
            let n = rows.len();
            for r in rows {
                let id: i64 = r.try_get_by_index(0).during(OP)?;
                let payload: String = r.try_get_by_index(1).during(OP)?;
                let created_ms: i64 = r.try_get_by_index(2).during(OP)?;
                let channels = match serde_json::from_str::<Event>(&payload) {
                    Ok(event) => route(&event),
                    Err(e) => {
                        // An event this version cannot read (written by a newer one during a
                        // rolling upgrade, or damaged): routed nowhere rather than blocking
                        // every event after it.
                        tracing::error!(event = id, error = %e, "notification event unreadable: not routed");
                        BTreeSet::new()
                    }
                };
                for channel in channels {
                    txn.execute_raw(self.notify_stmt(
                        "INSERT INTO notify_deliveries \
                           (event_id, channel, state, attempts, created_ms, next_ms) \
                         VALUES ($1, $2, 'pending', 0, $3, $3)",
                        vec![id.into(), channel.into(), created_ms.into()],
                    ))
                    .await
                    .during(OP)?;
                }
                txn.execute_raw(self.notify_stmt(
                    "UPDATE notify_events SET routed_ms = $1 WHERE id = $2",
                    vec![now_ms.into(), id.into()],
                ))
                .await
                .during(OP)?;
            }
            txn.commit().await.during(OP)?;
            total += n;
            if n < ROUTE_LIMIT as usize {
                return Ok(total);
            }
        }
    }

    /// Claims `channel`'s next message for `owner` until `lease_until_ms`: a batch due for a
    /// retry (or whose sender stopped renewing: killed mid-send), else, once the oldest
    /// pending delivery has waited `window_ms` (the digest window), every pending delivery of
    /// the channel (at most 100) as a new batch. A batch whose sender died `max_attempts`
    /// times is marked failed here. `None`: nothing to send now.
    pub async fn claim_batch(
        &self,
        channel: &str,
        owner: &str,
        now_ms: i64,
        window_ms: i64,
        lease_until_ms: i64,
        max_attempts: i32,
    ) -> Result<Option<Batch>, StoreError> {
        const OP: &str = "claim notification batch";
        let txn = self.begin_write().await.during(OP)?;
        if self.backend == "postgres" {
            // One claimer per channel at a time: a retry batch's rows are updated together,
            // and two claimers that each locked one of its rows would deadlock. Claims are
            // short (sending happens after the commit).
            txn.execute_raw(self.notify_stmt(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 7))",
                vec![format!("trellis-notify:{channel}").into()],
            ))
            .await
            .during(OP)?;
        }
        txn.execute_raw(self.notify_stmt(
            "UPDATE notify_deliveries SET state = 'failed', lease_until_ms = NULL, \
               last_error = 'the sender stopped (killed or crashed) while sending, ' \
                 || CAST(attempts AS TEXT) || ' times' \
             WHERE channel = $1 AND state = 'sending' AND lease_until_ms < $2 AND attempts >= $3",
            vec![channel.into(), now_ms.into(), max_attempts.into()],
        ))
        .await
        .during(OP)?;
        let due = "((state = 'pending' AND next_ms <= $2) OR (state = 'sending' AND lease_until_ms < $2))";
        let retry = txn
            .query_one_raw(self.notify_stmt(
                &format!(
                    "SELECT batch FROM notify_deliveries WHERE channel = $1 AND batch IS NOT NULL \
                       AND {due} ORDER BY id LIMIT 1{}",
                    self.skip_locked()
                ),
                vec![channel.into(), now_ms.into()],
            ))
            .await
            .during(OP)?;
        let batch = if let Some(row) = retry {
            let batch: String = row.try_get_by_index(0).during(OP)?;
            let claimed = txn
                .execute_raw(self.notify_stmt(
                    &format!(
                        "UPDATE notify_deliveries SET state = 'sending', owner = $3, \
                           lease_until_ms = $4, attempts = attempts + 1 \
                         WHERE channel = $1 AND batch = $5 AND {due}"
                    ),
                    vec![
                        channel.into(),
                        now_ms.into(),
                        owner.into(),
                        lease_until_ms.into(),
                        batch.as_str().into(),
                    ],
                ))
                .await
                .during(OP)?;
            (claimed.rows_affected() > 0).then_some(batch)
        } else {
            let oldest = txn
                .query_one_raw(self.notify_stmt(
                    "SELECT MIN(created_ms) FROM notify_deliveries \
                     WHERE channel = $1 AND state = 'pending' AND batch IS NULL",
                    vec![channel.into()],
                ))
                .await
                .during(OP)?
                .map(|r| r.try_get_by_index::<Option<i64>>(0))
                .transpose()
                .during(OP)?
                .flatten();
            match oldest {
                Some(oldest) if oldest <= now_ms - window_ms => {
                    let batch = uuid::Uuid::now_v7().to_string();
                    let claimed = txn
                        .execute_raw(self.notify_stmt(
                            &format!(
                                "UPDATE notify_deliveries SET batch = $1, state = 'sending', \
                                   owner = $2, lease_until_ms = $3, attempts = 1 \
                                 WHERE id IN (SELECT id FROM notify_deliveries \
                                   WHERE channel = $4 AND state = 'pending' AND batch IS NULL \
                                   ORDER BY id LIMIT {BATCH_LIMIT}{})",
                                self.skip_locked()
                            ),
                            vec![
                                batch.as_str().into(),
                                owner.into(),
                                lease_until_ms.into(),
                                channel.into(),
                            ],
                        ))
                        .await
                        .during(OP)?;
                    (claimed.rows_affected() > 0).then_some(batch)
                }
                _ => None,
            }
        };
        let Some(batch) = batch else {
            txn.commit().await.during(OP)?;
            return Ok(None);
        };
        let rows = txn
            .query_all_raw(self.notify_stmt(
                "SELECT d.id, d.attempts, e.payload FROM notify_deliveries d \
                 JOIN notify_events e ON e.id = d.event_id \
                 WHERE d.batch = $1 AND d.owner = $2 AND d.state = 'sending' ORDER BY d.id",
                vec![batch.as_str().into(), owner.into()],
            ))
            .await
            .during(OP)?;
        txn.commit().await.during(OP)?;
        let mut attempts = 0;
        let mut events = Vec::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.try_get_by_index(0).during(OP)?;
            attempts = attempts.max(r.try_get_by_index::<i32>(1).during(OP)?);
            let payload: String = r.try_get_by_index(2).during(OP)?;
            events.push(
                serde_json::from_str(&payload)
                    .map_err(|e| corrupt("notify_events", id, format!("payload: {e}")))?,
            );
        }
        if events.is_empty() {
            return Ok(None);
        }
        Ok(Some(Batch {
            id: batch,
            channel: channel.to_string(),
            attempts,
            events,
        }))
    }

    /// Records how `owner`'s attempt at `batch` ended. False when the batch is no longer this
    /// owner's (its lease expired and another instance took it).
    pub async fn finish_batch(
        &self,
        batch: &str,
        owner: &str,
        end: &BatchEnd,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        const OP: &str = "finish notification batch";
        let (sql, values): (&str, Vec<Value>) = match end {
            BatchEnd::Sent => (
                "UPDATE notify_deliveries SET state = 'sent', sent_ms = $3, owner = NULL, \
                   lease_until_ms = NULL, last_error = NULL \
                 WHERE batch = $1 AND owner = $2 AND state = 'sending'",
                vec![batch.into(), owner.into(), now_ms.into()],
            ),
            BatchEnd::Retry { at_ms, error } => (
                "UPDATE notify_deliveries SET state = 'pending', next_ms = $3, owner = NULL, \
                   lease_until_ms = NULL, last_error = $4 \
                 WHERE batch = $1 AND owner = $2 AND state = 'sending'",
                vec![
                    batch.into(),
                    owner.into(),
                    (*at_ms).into(),
                    error.as_str().into(),
                ],
            ),
            BatchEnd::Failed { error } => (
                "UPDATE notify_deliveries SET state = 'failed', owner = NULL, \
                   lease_until_ms = NULL, last_error = $3 \
                 WHERE batch = $1 AND owner = $2 AND state = 'sending'",
                vec![batch.into(), owner.into(), error.as_str().into()],
            ),
            BatchEnd::Dropped { reason } => (
                "UPDATE notify_deliveries SET state = 'dropped', owner = NULL, \
                   lease_until_ms = NULL, last_error = $3 \
                 WHERE batch = $1 AND owner = $2 AND state = 'sending'",
                vec![batch.into(), owner.into(), reason.as_str().into()],
            ),
        };
        let done = self
            .db
            .execute_raw(self.notify_stmt(sql, values))
            .await
            .during(OP)?;
        Ok(done.rows_affected() > 0)
    }

    /// The channels with a message waiting (pending or being sent) whose names start with one
    /// of `prefixes` (visitor channels: `confirm:`, `subscriber:`, `requester:`).
    pub async fn waiting_channels(&self, prefixes: &[&str]) -> Result<Vec<String>, StoreError> {
        const OP: &str = "read waiting notification channels";
        let mut out = Vec::new();
        for prefix in prefixes {
            let rows = self
                .db
                .query_all_raw(self.notify_stmt(
                    "SELECT DISTINCT channel FROM notify_deliveries \
                     WHERE state IN ('pending', 'sending') AND channel LIKE $1 ORDER BY channel",
                    vec![format!("{prefix}%").into()],
                ))
                .await
                .during(OP)?;
            for r in rows {
                out.push(r.try_get_by_index(0).during(OP)?);
            }
        }
        Ok(out)
    }

    /// Drops the pending deliveries of channels no longer configured (`configured` by name;
    /// visitor channels count as configured only when `visitors` is set): never sent, not
    /// retried, with why. How many.
    pub async fn drop_orphans(
        &self,
        configured: &[String],
        visitors: bool,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut sql = String::from(
            "UPDATE notify_deliveries SET state = 'dropped', \
               last_error = 'its channel is no longer configured', lease_until_ms = NULL \
             WHERE state = 'pending' AND next_ms <= $1",
        );
        let mut values: Vec<Value> = vec![now_ms.into()];
        for name in configured {
            values.push(name.as_str().into());
            sql.push_str(&format!(" AND channel <> ${}", values.len()));
        }
        if visitors {
            sql.push_str(
                " AND channel NOT LIKE 'confirm:%' AND channel NOT LIKE 'subscriber:%' \
                 AND channel NOT LIKE 'requester:%'",
            );
        }
        let done = self
            .db
            .execute_raw(self.notify_stmt(&sql, values))
            .await
            .during("drop deliveries of removed channels")?;
        Ok(done.rows_affected())
    }

    /// Forgets what was settled before `before_ms`: sent and failed deliveries, and routed
    /// events none of whose deliveries are left. How many rows went.
    pub async fn prune_outbox(&self, before_ms: i64) -> Result<u64, StoreError> {
        const OP: &str = "prune the notification outbox";
        let txn = self.begin_write().await.during(OP)?;
        let deliveries = txn
            .execute_raw(self.notify_stmt(
                "DELETE FROM notify_deliveries WHERE (state = 'sent' AND sent_ms < $1) \
                   OR (state IN ('failed', 'dropped') AND created_ms < $1)",
                vec![before_ms.into()],
            ))
            .await
            .during(OP)?;
        let events = txn
            .execute_raw(self.notify_stmt(
                "DELETE FROM notify_events WHERE routed_ms IS NOT NULL AND created_ms < $1 \
                   AND NOT EXISTS (SELECT 1 FROM notify_deliveries d \
                                   WHERE d.event_id = notify_events.id)",
                vec![before_ms.into()],
            ))
            .await
            .during(OP)?;
        txn.commit().await.during(OP)?;
        Ok(deliveries.rows_affected() + events.rows_affected())
    }

    /// Deliveries by state and the 20 newest failed ones.
    pub async fn notify_overview(&self) -> Result<NotifyOverview, StoreError> {
        const OP: &str = "read notification overview";
        let mut out = NotifyOverview::default();
        let rows = self
            .db
            .query_all_raw(self.notify_stmt(
                "SELECT state, COUNT(*) FROM notify_deliveries GROUP BY state",
                vec![],
            ))
            .await
            .during(OP)?;
        for r in rows {
            let state: String = r.try_get_by_index(0).during(OP)?;
            let n: i64 = r.try_get_by_index(1).during(OP)?;
            match state.as_str() {
                "pending" => out.pending = n,
                "sending" => out.sending = n,
                "sent" => out.sent = n,
                "failed" => out.failed = n,
                _ => {}
            }
        }
        let rows = self
            .db
            .query_all_raw(self.notify_stmt(
                "SELECT d.id, d.channel, e.kind, e.control_id, d.attempts, d.last_error, \
                   d.created_ms \
                 FROM notify_deliveries d JOIN notify_events e ON e.id = d.event_id \
                 WHERE d.state = 'failed' ORDER BY d.id DESC LIMIT 20",
                vec![],
            ))
            .await
            .during(OP)?;
        for r in rows {
            out.failed_recent.push(FailedDelivery {
                id: r.try_get_by_index(0).during(OP)?,
                channel: r.try_get_by_index(1).during(OP)?,
                kind: r.try_get_by_index(2).during(OP)?,
                control_id: r.try_get_by_index(3).during(OP)?,
                attempts: r.try_get_by_index(4).during(OP)?,
                last_error: r.try_get_by_index(5).during(OP)?,
                created_ms: r.try_get_by_index(6).during(OP)?,
            });
        }
        Ok(out)
    }

    /// Every event in the outbox, oldest first, with whether it was routed (tests, diagnosis).
    pub async fn notify_events(&self) -> Result<Vec<(String, Event, bool)>, StoreError> {
        const OP: &str = "read notification events";
        let rows = self
            .db
            .query_all_raw(self.notify_stmt(
                "SELECT id, dedupe_key, payload, routed_ms FROM notify_events ORDER BY id",
                vec![],
            ))
            .await
            .during(OP)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.try_get_by_index(0).during(OP)?;
            let key: String = r.try_get_by_index(1).during(OP)?;
            let payload: String = r.try_get_by_index(2).during(OP)?;
            let routed: Option<i64> = r.try_get_by_index(3).during(OP)?;
            let event = serde_json::from_str(&payload)
                .map_err(|e| corrupt("notify_events", id, format!("payload: {e}")))?;
            out.push((key, event, routed.is_some()));
        }
        Ok(out)
    }

    /// Every delivery with its event, oldest first (tests, diagnosis).
    pub async fn notify_deliveries(&self) -> Result<Vec<DeliveryRow>, StoreError> {
        const OP: &str = "read notification deliveries";
        let rows = self
            .db
            .query_all_raw(self.notify_stmt(
                "SELECT d.id, d.channel, d.state, d.batch, d.attempts, d.last_error, e.payload \
                 FROM notify_deliveries d JOIN notify_events e ON e.id = d.event_id ORDER BY d.id",
                vec![],
            ))
            .await
            .during(OP)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.try_get_by_index(0).during(OP)?;
            let payload: String = r.try_get_by_index(6).during(OP)?;
            out.push(DeliveryRow {
                id,
                channel: r.try_get_by_index(1).during(OP)?,
                state: r.try_get_by_index(2).during(OP)?,
                batch: r.try_get_by_index(3).during(OP)?,
                attempts: r.try_get_by_index(4).during(OP)?,
                last_error: r.try_get_by_index(5).during(OP)?,
                event: serde_json::from_str(&payload)
                    .map_err(|e| corrupt("notify_events", id, format!("payload: {e}")))?,
            });
        }
        Ok(out)
    }
}
