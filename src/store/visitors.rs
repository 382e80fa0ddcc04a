//! Visitor counts of the public site (see the migration `m20261207_000017_visitors`).
//!
//! Counts are added, never set, so instances flushing at once add up; the day's unique-visitor
//! hashes are counted into `visitors` and deleted in one transaction that deletes them first
//! (`DELETE … RETURNING`), so two instances closing the same day count it once.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use sea_orm::{ConnectionTrait, Value};

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

impl Store {
    /// The salt of `day`: made (random) by the first instance to ask, read by the others.
    /// `None` once the day is closed (its salt deleted, its visitors counted): an instance
    /// whose clock lags cannot start counting a closed day's visitors again.
    pub async fn visitor_salt(&self, day: NaiveDate) -> Result<Option<[u8; 32]>, StoreError> {
        const OP: &str = "read the visitor salt";
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| StoreError::Corrupt {
            table: "visitor_salts",
            id: day_text(day),
            detail: format!("no randomness: {e}"),
        })?;
        self.db
            .execute_raw(self.stmt(
                "INSERT INTO visitor_salts (day, salt) SELECT $1, $2 \
                 WHERE NOT EXISTS (SELECT 1 FROM visit_counts \
                   WHERE day = $1 AND metric = 'visitors') \
                 ON CONFLICT (day) DO NOTHING",
                vec![day_text(day).into(), hex::encode(fresh).into()],
            ))
            .await
            .during(OP)?;
        let row = self
            .db
            .query_one_raw(self.stmt(
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
        let Some(row) = row else {
            return Ok(None);
        };
        let text: String = row.try_get_by_index(0).during(OP)?;
        let bytes = hex::decode(&text).map_err(|e| corrupt(e.to_string()))?;
        bytes
            .try_into()
            .map(Some)
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
        // In one order on every instance, so two upserting the same rows cannot deadlock.
        let mut counts = counts.to_vec();
        counts.sort_by(|a, b| {
            (a.day, &a.metric, &a.subject, a.bot).cmp(&(b.day, &b.metric, &b.subject, b.bot))
        });
        let mut hashes = hashes.to_vec();
        hashes.sort();
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
            txn.execute_raw(self.stmt(&sql, values)).await.during(OP)?;
        }
        for chunk in hashes.chunks(CHUNK) {
            // Only for days still open (their salt is there): a day another instance closed
            // is counted already.
            let mut sql = String::from("WITH v (day, hash) AS (VALUES ");
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 2);
            sql.push_str(&super::values_clause(chunk.len(), 2));
            for (day, hash) in chunk {
                values.push(day_text(*day).into());
                values.push(hash.as_str().into());
            }
            sql.push_str(
                ") INSERT INTO visitor_hashes (day, hash) SELECT v.day, v.hash FROM v \
                 WHERE EXISTS (SELECT 1 FROM visitor_salts s WHERE s.day = v.day) \
                 ON CONFLICT (day, hash) DO NOTHING",
            );
            txn.execute_raw(self.stmt(&sql, values)).await.during(OP)?;
        }
        txn.commit().await.during(OP)
    }

    /// Closes the days before `today`: their visitor hashes become a `visitors` count and are
    /// deleted, with their salts. Returns the days closed.
    pub async fn close_visitor_days(&self, today: NaiveDate) -> Result<usize, StoreError> {
        const OP: &str = "close visitor days";
        let txn = self.begin_write().await.during(OP)?;
        let rows = txn
            .query_all_raw(self.stmt(
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
            txn.execute_raw(self.stmt(
                "INSERT INTO visit_counts (day, metric, subject, audience, count) \
                 VALUES ($1, 'visitors', '', 'human', $2) \
                 ON CONFLICT (day, metric, subject, audience) \
                 DO UPDATE SET count = visit_counts.count + excluded.count",
                vec![day.as_str().into(), (*n).into()],
            ))
            .await
            .during(OP)?;
        }
        txn.execute_raw(self.stmt(
            "DELETE FROM visitor_salts WHERE day < $1",
            vec![day_text(today).into()],
        ))
        .await
        .during(OP)?;
        txn.commit().await.during(OP)?;
        Ok(per_day.len())
    }

    /// Approvals of document requests since `since`, per document: from the audit log, so
    /// every approval counts whoever made it (dashboard, API, `trellis access`) and whether or
    /// not visits are counted.
    pub async fn approvals_by_document(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        const OP: &str = "count approvals";
        let rows = self
            .db
            .query_all_raw(self.stmt(
                "SELECT r.id, r.documents FROM audit_log a \
                 JOIN access_requests r ON a.target = 'access:' || r.id \
                 WHERE a.action = 'access.approve' AND a.at >= $1",
                vec![super::db_time(since).into()],
            ))
            .await
            .during(OP)?;
        let mut out = BTreeMap::new();
        for r in rows {
            let id: String = r.try_get_by_index(0).during(OP)?;
            let documents: String = r.try_get_by_index(1).during(OP)?;
            let documents: Vec<String> =
                serde_json::from_str(&documents).map_err(|e| StoreError::Corrupt {
                    table: "access_requests",
                    id,
                    detail: format!("documents: {e}"),
                })?;
            for d in documents {
                *out.entry(d).or_default() += 1;
            }
        }
        Ok(out)
    }

    /// Deletes the counts of days before `before`. Returns the rows deleted.
    pub async fn prune_visits(&self, before: NaiveDate) -> Result<u64, StoreError> {
        let done = self
            .db
            .execute_raw(self.stmt(
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
            .query_all_raw(self.stmt(
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
            // A day's hashes and its count are never both there (hashes are only added while
            // its salt is, and closing deletes both); should they be, they add up.
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
