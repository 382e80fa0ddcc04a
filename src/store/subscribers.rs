//! Visitors' subscriptions (personal data) and the notifier's marks (see the migration
//! `m20261206_000016_subscribers`).
//!
//! A subscription is written with its confirmation email's event in one transaction; a
//! confirmation clears the client address it came from; unsubscribing deletes the row and
//! every message still waiting for it. What an admin does with them (`trellis subscribers`)
//! is audited; what a visitor does is not (the audit log would keep their address).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Statement, Value};

use super::notify::add_event_in;
use super::staff::{Actor, audit_in};
use super::{QueryContext, Store, StoreError, db_time};
use crate::notify::NewEvent;
use crate::notify::config::Topic;

/// A subscriber, as admins see them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Subscriber {
    pub id: String,
    pub email: String,
    pub topics: Vec<Topic>,
    /// `pending` (not confirmed yet) or `confirmed`.
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
}

/// What a subscription request did (the page says the same whatever it did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscribed {
    /// A new pending subscription; its confirmation email is queued.
    New { id: String },
    /// Still pending: topics updated, the confirmation email queued again.
    Resent { id: String },
    /// Pending, asked again within the hour: nothing sent.
    TooSoon,
    /// Already confirmed: nothing changed, nothing sent (a stranger cannot change someone's
    /// topics).
    AlreadyConfirmed,
}

fn stmt(store: &Store, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(store.db.get_database_backend(), sql, values)
}

fn topics_json(topics: &[Topic]) -> String {
    let names: Vec<&str> = topics.iter().map(|t| t.as_str()).collect();
    serde_json::to_string(&names).unwrap_or_else(|_| "[]".into())
}

fn parse_topics(id: &str, text: &str) -> Result<Vec<Topic>, StoreError> {
    let names: Vec<String> = serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        table: "subscribers",
        id: id.to_string(),
        detail: format!("topics: {e}"),
    })?;
    Ok(names.iter().filter_map(|n| Topic::parse(n)).collect())
}

impl Store {
    /// How many subscriptions were asked for from `ip` since `since`.
    pub async fn recent_subscriptions(
        &self,
        ip: &str,
        since: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let row = self
            .db
            .query_one_raw(stmt(
                self,
                "SELECT COUNT(*) FROM subscribers WHERE request_ip = $1 AND confirm_requested_at >= $2",
                vec![ip.into(), db_time(since).into()],
            ))
            .await
            .during("count recent subscriptions")?;
        let n: i64 = match row {
            Some(r) => r.try_get_by_index(0).during("count recent subscriptions")?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Records a request to subscribe `email` (lowercased) to `topics` and queues its
    /// confirmation email (`confirm(id)` makes the event), in one transaction.
    pub async fn subscribe(
        &self,
        email: &str,
        topics: &[Topic],
        ip: Option<&str>,
        now: DateTime<Utc>,
        confirm: impl FnOnce(&str) -> NewEvent,
    ) -> Result<Subscribed, StoreError> {
        const OP: &str = "subscribe";
        let email = email.trim().to_lowercase();
        let txn = self.begin_write().await.during(OP)?;
        let existing = txn
            .query_one_raw(stmt(
                self,
                "SELECT id, state, confirm_requested_at FROM subscribers WHERE email = $1",
                vec![email.as_str().into()],
            ))
            .await
            .during(OP)?;
        let outcome = match existing {
            Some(row) => {
                let id: String = row.try_get_by_index(0).during(OP)?;
                let state: String = row.try_get_by_index(1).during(OP)?;
                let asked: DateTime<Utc> = row.try_get_by_index(2).during(OP)?;
                if state == "confirmed" {
                    Subscribed::AlreadyConfirmed
                } else if now - asked < chrono::Duration::hours(1) {
                    Subscribed::TooSoon
                } else {
                    txn.execute_raw(stmt(
                        self,
                        "UPDATE subscribers SET topics = $1, request_ip = $2, \
                           confirm_requested_at = $3 WHERE id = $4",
                        vec![
                            topics_json(topics).into(),
                            ip.map(str::to_string).into(),
                            db_time(now).into(),
                            id.as_str().into(),
                        ],
                    ))
                    .await
                    .during(OP)?;
                    Subscribed::Resent { id }
                }
            }
            None => {
                let id = uuid::Uuid::now_v7().to_string();
                let inserted = txn
                    .execute_raw(stmt(
                        self,
                        "INSERT INTO subscribers \
                       (id, email, topics, state, request_ip, created_at, confirm_requested_at) \
                     VALUES ($1, $2, $3, 'pending', $4, $5, $5) ON CONFLICT (email) DO NOTHING",
                        vec![
                            id.as_str().into(),
                            email.as_str().into(),
                            topics_json(topics).into(),
                            ip.map(str::to_string).into(),
                            db_time(now).into(),
                        ],
                    ))
                    .await
                    .during(OP)?;
                if inserted.rows_affected() == 1 {
                    Subscribed::New { id }
                } else {
                    // Asked for at the same moment by another request: that one sends it.
                    Subscribed::TooSoon
                }
            }
        };
        if let Subscribed::New { id } | Subscribed::Resent { id } = &outcome {
            add_event_in(&txn, &confirm(id), Utc::now().timestamp_millis(), OP).await?;
        }
        txn.commit().await.during(OP)?;
        Ok(outcome)
    }

    /// Confirms a pending subscription (its link was followed); forgets the address it was
    /// asked from. False when there is no such subscriber (unsubscribed, deleted).
    pub async fn confirm_subscriber(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = self
            .db
            .execute_raw(stmt(
                self,
                "UPDATE subscribers SET state = 'confirmed', request_ip = NULL, \
                   confirmed_at = COALESCE(confirmed_at, $1) WHERE id = $2",
                vec![db_time(now).into(), id.into()],
            ))
            .await
            .during("confirm subscriber")?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a subscriber and every message still waiting for them, at once (the
    /// unsubscribe link). False when there was none.
    pub async fn unsubscribe(&self, id: &str) -> Result<bool, StoreError> {
        const OP: &str = "unsubscribe";
        let txn = self.begin_write().await.during(OP)?;
        let removed = delete_in(self, &txn, id, OP).await?;
        txn.commit().await.during(OP)?;
        Ok(removed)
    }

    /// Deletes the subscriptions still pending whose confirmation was last asked for before
    /// `before` (their link has expired), with any message waiting for them. How many.
    pub async fn expire_pending_subscriptions(
        &self,
        before: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        const OP: &str = "expire pending subscriptions";
        let rows = self
            .db
            .query_all_raw(stmt(
                self,
                "SELECT id FROM subscribers WHERE state = 'pending' AND confirm_requested_at < $1",
                vec![db_time(before).into()],
            ))
            .await
            .during(OP)?;
        let mut n = 0;
        for r in rows {
            let id: String = r.try_get_by_index(0).during(OP)?;
            let txn = self.begin_write().await.during(OP)?;
            if delete_in(self, &txn, &id, OP).await? {
                n += 1;
            }
            txn.commit().await.during(OP)?;
        }
        Ok(n)
    }

    /// One subscriber (the sender, to address a message).
    pub async fn subscriber(&self, id: &str) -> Result<Option<Subscriber>, StoreError> {
        Ok(self
            .read_subscribers("WHERE id = $1", vec![id.into()])
            .await?
            .pop())
    }

    /// The confirmed subscribers (routing: who gets a topic's events).
    pub async fn confirmed_subscribers(&self) -> Result<Vec<Subscriber>, StoreError> {
        self.read_subscribers("WHERE state = 'confirmed'", vec![])
            .await
    }

    /// Every subscriber, for an admin's export; audited as `subscribers.export`.
    pub async fn export_subscribers(
        &self,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Vec<Subscriber>, StoreError> {
        let all = self.read_subscribers("", vec![]).await?;
        audit_in(
            &self.db,
            actor,
            "subscribers.export",
            "subscribers",
            serde_json::json!({"count": all.len()}),
            now,
        )
        .await?;
        Ok(all)
    }

    /// Deletes the subscriber with `email` (an admin's erasure), audited as
    /// `subscriber.delete` in the same transaction. The audit line keeps the subscriber's id,
    /// not the address. False when there was none.
    pub async fn delete_subscriber(
        &self,
        email: &str,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "delete subscriber";
        let email = email.trim().to_lowercase();
        let txn = self.begin_write().await.during(OP)?;
        let row = txn
            .query_one_raw(stmt(
                self,
                "SELECT id FROM subscribers WHERE email = $1",
                vec![email.as_str().into()],
            ))
            .await
            .during(OP)?;
        let Some(row) = row else {
            return Ok(false);
        };
        let id: String = row.try_get_by_index(0).during(OP)?;
        delete_in(self, &txn, &id, OP).await?;
        audit_in(
            &txn,
            actor,
            "subscriber.delete",
            &id,
            serde_json::json!({}),
            now,
        )
        .await?;
        txn.commit().await.during(OP)?;
        Ok(true)
    }

    async fn read_subscribers(
        &self,
        filter: &str,
        values: Vec<Value>,
    ) -> Result<Vec<Subscriber>, StoreError> {
        const OP: &str = "read subscribers";
        let rows = self
            .db
            .query_all_raw(stmt(
                self,
                &format!(
                    "SELECT id, email, topics, state, created_at, confirmed_at FROM subscribers \
                     {filter} ORDER BY created_at, id"
                ),
                values,
            ))
            .await
            .during(OP)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get_by_index(0).during(OP)?;
            let topics: String = r.try_get_by_index(2).during(OP)?;
            out.push(Subscriber {
                topics: parse_topics(&id, &topics)?,
                email: r.try_get_by_index(1).during(OP)?,
                state: r.try_get_by_index(3).during(OP)?,
                created_at: r.try_get_by_index(4).during(OP)?,
                confirmed_at: r.try_get_by_index(5).during(OP)?,
                id,
            });
        }
        Ok(out)
    }

    /// The value last recorded under `key` (see [`Store::set_mark`]).
    pub async fn mark(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = self
            .db
            .query_one_raw(stmt(
                self,
                "SELECT value FROM notify_marks WHERE key = $1",
                vec![key.into()],
            ))
            .await
            .during("read notify mark")?;
        row.map(|r| r.try_get_by_index::<String>(0))
            .transpose()
            .during("read notify mark")
    }

    /// Every mark whose key starts with `prefix`, as (key, value).
    pub async fn marks(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        const OP: &str = "read notify marks";
        let rows = self
            .db
            .query_all_raw(stmt(
                self,
                "SELECT key, value FROM notify_marks WHERE key LIKE $1 ORDER BY key",
                vec![format!("{prefix}%").into()],
            ))
            .await
            .during(OP)?;
        rows.iter()
            .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)))
            .collect::<Result<Vec<_>, sea_orm::DbErr>>()
            .during(OP)
    }

    /// Records `value` under `key` if the mark still holds `expected` (`None`: absent), and
    /// with it `event` (if any), in one transaction. False when another instance changed the
    /// mark first: the change is then theirs to announce.
    pub async fn set_mark(
        &self,
        key: &str,
        expected: Option<&str>,
        value: Option<&str>,
        event: Option<&NewEvent>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        const OP: &str = "record notify mark";
        let txn = self.begin_write().await.during(OP)?;
        // The row is locked (PostgreSQL; SQLite's write transaction is exclusive already), so
        // two instances that read the same value cannot both replace it.
        let lock = if self.backend == "postgres" {
            " FOR UPDATE"
        } else {
            ""
        };
        let current = txn
            .query_one_raw(stmt(
                self,
                &format!("SELECT value FROM notify_marks WHERE key = $1{lock}"),
                vec![key.into()],
            ))
            .await
            .during(OP)?
            .map(|r| r.try_get_by_index::<String>(0))
            .transpose()
            .during(OP)?;
        if current.as_deref() != expected {
            return Ok(false);
        }
        let (sql, values): (&str, Vec<Value>) = match (current.is_some(), value) {
            // Absent rows cannot be locked: the key decides who inserts.
            (false, Some(v)) => (
                "INSERT INTO notify_marks (key, value, updated_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO NOTHING",
                vec![key.into(), v.into(), now_ms.into()],
            ),
            (true, Some(v)) => (
                "UPDATE notify_marks SET value = $2, updated_ms = $3 WHERE key = $1",
                vec![key.into(), v.into(), now_ms.into()],
            ),
            (true, None) => ("DELETE FROM notify_marks WHERE key = $1", vec![key.into()]),
            (false, None) => ("", vec![]),
        };
        if !sql.is_empty() {
            let done = txn.execute_raw(stmt(self, sql, values)).await.during(OP)?;
            if done.rows_affected() != 1 {
                // Another instance inserted it first: theirs to announce.
                return Ok(false);
            }
        }
        if let Some(e) = event {
            add_event_in(&txn, e, now_ms, OP).await?;
        }
        txn.commit().await.during(OP)?;
        Ok(true)
    }
}

async fn delete_in(
    store: &Store,
    txn: &impl ConnectionTrait,
    id: &str,
    op: &'static str,
) -> Result<bool, StoreError> {
    let removed = txn
        .execute_raw(stmt(
            store,
            "DELETE FROM subscribers WHERE id = $1",
            vec![id.into()],
        ))
        .await
        .during(op)?;
    for channel in [format!("subscriber:{id}"), format!("confirm:{id}")] {
        txn.execute_raw(stmt(
            store,
            "DELETE FROM notify_deliveries WHERE channel = $1 AND state IN ('pending', 'sending', 'failed')",
            vec![channel.into()],
        ))
        .await
        .during(op)?;
    }
    Ok(removed.rows_affected() == 1)
}
