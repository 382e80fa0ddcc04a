//! Visitor counts of the public site (see the migration `m20261207_000017_visitors`).
//!
//! Counts are added, never set, so instances flushing at once add up; the day's unique-visitor
//! hashes are counted into `visitors` and deleted in one transaction that deletes them first
//! (`DELETE … RETURNING`), so two instances closing the same day count it once.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use sea_orm::{ConnectionTrait, Statement, Value};

use super::{QueryContext, Store, StoreError};

/// One count.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VisitCount {
    pub day: NaiveDate,
    /// `page_view`, `visitors`, `json_fetch`, `feed_fetch`, `subscription`,
    /// `document_request`, `document_approval`, `document_download`.
    pub metric: String,
    /// A document's id, or empty.
    pub subject: String,
    pub bot: bool,
    pub count: u64,
}

/// Rows per multi-row insert.
const CHUNK: usize = 200;

fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

fn audience(bot: bool) -> &'static str {
    if bot { "bot" } else { "human" }
}

/// Adds one to `metric` of each subject on `day`, in the caller's transaction.
pub(super) async fn count_in(
    txn: &sea_orm::DatabaseTransaction,
    day: NaiveDate,
    metric: &str,
    subjects: &[String],
) -> Result<(), StoreError> {
    for subject in subjects {
        txn.execute_raw(Statement::from_sql_and_values(
            txn.get_database_backend(),
            "INSERT INTO visit_counts (day, metric, subject, audience, count) \
             VALUES ($1, $2, $3, 'human', 1) \
             ON CONFLICT (day, metric, subject, audience) \
             DO UPDATE SET count = visit_counts.count + excluded.count",
            vec![day_text(day).into(), metric.into(), subject.as_str().into()],
        ))
        .await
        .during("count visits")?;
    }
    Ok(())
}

impl Store {
    fn visit_stmt(&self, sql: &str, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(self.db.get_database_backend(), sql, values)
    }

    /// The salt of `day`: made (random) by the first instance to ask, read by the others.
    pub async fn visitor_salt(&self, day: NaiveDate) -> Result<[u8; 32], StoreError> {
        const OP: &str = "read the visitor salt";
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| StoreError::Corrupt {
            table: "visitor_salts",
            id: day_text(day),
            detail: format!("no randomness: {e}"),
        })?;
        self.db
            .execute_raw(self.visit_stmt(
                "INSERT INTO visitor_salts (day, salt) VALUES ($1, $2) ON CONFLICT (day) DO NOTHING",
                vec![day_text(day).into(), hex::encode(fresh).into()],
            ))
            .await
            .during(OP)?;
        let row = self
            .db
            .query_one_raw(self.visit_stmt(
                "SELECT salt FROM visitor_salts WHERE day = $1",
                vec![day_text(day).into()],
            ))
            .await
            .during(OP)?;
        let corrupt = |detail: String| StoreError::Corrupt {
            table: "visitor_salts",
            id: day_text(day),
            detail,
        };
        let text: String = match row {
            Some(r) => r.try_get_by_index(0).during(OP)?,
            None => return Err(corrupt("the salt vanished while it was read".into())),
        };
        let bytes = hex::decode(&text).map_err(|e| corrupt(e.to_string()))?;
        bytes
            .try_into()
            .map_err(|_| corrupt("a salt is 32 bytes".into()))
    }

    /// Adds counts and the day's visitor hashes (hex), in one transaction.
    pub async fn add_visits(
        &self,
        counts: &[VisitCount],
        hashes: &[(NaiveDate, String)],
    ) -> Result<(), StoreError> {
        const OP: &str = "record visits";
        if counts.is_empty() && hashes.is_empty() {
            return Ok(());
        }
        let txn = self.begin_write().await.during(OP)?;
        for chunk in counts.chunks(CHUNK) {
            let mut sql = String::from(
                "INSERT INTO visit_counts (day, metric, subject, audience, count) VALUES ",
            );
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 5);
            sql.push_str(&super::values_clause(chunk.len(), 5));
            for c in chunk {
                values.push(day_text(c.day).into());
                values.push(c.metric.as_str().into());
                values.push(c.subject.as_str().into());
                values.push(audience(c.bot).into());
                values.push(i64::try_from(c.count).unwrap_or(i64::MAX).into());
            }
            sql.push_str(
                " ON CONFLICT (day, metric, subject, audience) \
                 DO UPDATE SET count = visit_counts.count + excluded.count",
            );
            txn.execute_raw(self.visit_stmt(&sql, values))
                .await
                .during(OP)?;
        }
        for chunk in hashes.chunks(CHUNK) {
            let mut sql = String::from("INSERT INTO visitor_hashes (day, hash) VALUES ");
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 2);
            sql.push_str(&super::values_clause(chunk.len(), 2));
            for (day, hash) in chunk {
                values.push(day_text(*day).into());
                values.push(hash.as_str().into());
            }
            sql.push_str(" ON CONFLICT (day, hash) DO NOTHING");
            txn.execute_raw(self.visit_stmt(&sql, values))
                .await
                .during(OP)?;
        }
        txn.commit().await.during(OP)
    }

    /// Closes the days before `today`: their visitor hashes become a `visitors` count and are
    /// deleted, with their salts. Returns the days closed.
    pub async fn close_visitor_days(&self, today: NaiveDate) -> Result<usize, StoreError> {
        const OP: &str = "close visitor days";
        let txn = self.begin_write().await.during(OP)?;
        let rows = txn
            .query_all_raw(self.visit_stmt(
                "DELETE FROM visitor_hashes WHERE day < $1 RETURNING day",
                vec![day_text(today).into()],
            ))
            .await
            .during(OP)?;
        let mut per_day: BTreeMap<String, i64> = BTreeMap::new();
        for r in rows {
            let day: String = r.try_get_by_index(0).during(OP)?;
            *per_day.entry(day).or_default() += 1;
        }
        for (day, n) in &per_day {
            txn.execute_raw(self.visit_stmt(
                "INSERT INTO visit_counts (day, metric, subject, audience, count) \
                 VALUES ($1, 'visitors', '', 'human', $2) \
                 ON CONFLICT (day, metric, subject, audience) \
                 DO UPDATE SET count = visit_counts.count + excluded.count",
                vec![day.as_str().into(), (*n).into()],
            ))
            .await
            .during(OP)?;
        }
        txn.execute_raw(self.visit_stmt(
            "DELETE FROM visitor_salts WHERE day < $1",
            vec![day_text(today).into()],
        ))
        .await
        .during(OP)?;
        txn.commit().await.during(OP)?;
        Ok(per_day.len())
    }

    /// Deletes the counts of days before `before`. Returns the rows deleted.
    pub async fn prune_visits(&self, before: NaiveDate) -> Result<u64, StoreError> {
        let done = self
            .db
            .execute_raw(self.visit_stmt(
                "DELETE FROM visit_counts WHERE day < $1",
                vec![day_text(before).into()],
            ))
            .await
            .during("prune visit counts")?;
        Ok(done.rows_affected())
    }

    /// The counts of days from `since`, in day order, with the open days' unique visitors
    /// counted from their hashes.
    pub async fn visits(&self, since: NaiveDate) -> Result<Vec<VisitCount>, StoreError> {
        const OP: &str = "read visit counts";
        let parse_day = |text: &str| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|e| StoreError::Corrupt {
                table: "visit_counts",
                id: text.to_string(),
                detail: e.to_string(),
            })
        };
        let rows = self
            .db
            .query_all_raw(self.visit_stmt(
                "SELECT day, metric, subject, audience, count FROM visit_counts WHERE day >= $1 \
                 UNION ALL \
                 SELECT day, 'visitors', '', 'human', COUNT(*) FROM visitor_hashes \
                   WHERE day >= $1 GROUP BY day \
                 ORDER BY 1, 2, 3, 4",
                vec![day_text(since).into()],
            ))
            .await
            .during(OP)?;
        let mut out: Vec<VisitCount> = Vec::with_capacity(rows.len());
        for r in rows {
            let day: String = r.try_get_by_index(0).during(OP)?;
            let count: i64 = r.try_get_by_index(4).during(OP)?;
            let row = VisitCount {
                day: parse_day(&day)?,
                metric: r.try_get_by_index(1).during(OP)?,
                subject: r.try_get_by_index(2).during(OP)?,
                bot: r.try_get_by_index::<String>(3).during(OP)? == "bot",
                count: u64::try_from(count).unwrap_or(0),
            };
            // A day closed while an instance still flushed its last hashes has both a count
            // and hashes (closed at the next sweep): they add up.
            match out.last_mut() {
                Some(last)
                    if last.day == row.day
                        && last.metric == row.metric
                        && last.subject == row.subject
                        && last.bot == row.bot =>
                {
                    last.count += row.count;
                }
                _ => out.push(row),
            }
        }
        Ok(out)
    }
}
