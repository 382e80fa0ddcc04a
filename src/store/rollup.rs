//! The history roll-up: `control_days`, one row per control per UTC day it was evaluated,
//! each a [`DaySummary`] of that day's results (first and last evaluation, the last one's
//! status, the longest gap between two, counts by status). The dashboards' 90-day strips
//! read these (`Store::history_days`) instead of every result of the window.
//!
//! The results stay the source of truth; the roll-up is derived from them and kept in step:
//! - [`record`]: in the transaction that stores a result (`Store::record_result`), the day's
//!   row gets the new evaluation added, or, for a result older than the day's last one, is
//!   summed up again from the day's results;
//! - [`Store::catch_up_rollup`]: at connection, an empty roll-up beside stored results (the
//!   first start after the migration that created it) is filled from every result, and the
//!   days of rows stored outside Trellis (waiting to be sealed: rows from before the hash
//!   chains, the benchmarks' seeded history) are summed up again.
//!
//! Every writer holds the results chain's head (locked), so they take turns.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};

use super::entities::{control_days, control_results};
use super::{MAX_BIND_PARAMS, QueryContext, Store, StoreError, db_time, integrity, parse_status};
use crate::model::{DaySummary, Status};

/// Columns bound per roll-up row inserted.
const DAY_COLUMNS: usize = 11;

/// A control's days, oldest first (see [`Store::history_days`]).
pub type ControlDays = (String, Vec<DaySummary>);

/// Adds a result just inserted in `txn` to its day's row.
pub(super) async fn record(
    txn: &DatabaseTransaction,
    control_id: &str,
    at: DateTime<Utc>,
    status: Status,
    op: &'static str,
) -> Result<(), StoreError> {
    let day = at.date_naive();
    let Some(row) = control_days::Entity::find_by_id((control_id.to_string(), day))
        .one(txn)
        .await
        .during(op)?
    else {
        return insert(txn, control_id, &[DaySummary::new(at, status)], op).await;
    };
    let mut summary = summary_of(&row)?;
    if !summary.push(at, status) {
        // Older than the day's last evaluation: the day is summed up again, in order.
        let points = evaluations(txn, control_id, day, Some(day), op).await?;
        let mut again = DaySummary::of_evaluations(&points);
        summary = match (again.pop(), again.is_empty()) {
            (Some(day_summary), true) => day_summary,
            _ => {
                return Err(corrupt(
                    control_id,
                    day,
                    "its results span more than the day",
                ));
            }
        };
    }
    control_days::Entity::update(active(control_id, &summary))
        .exec(txn)
        .await
        .during(op)?;
    Ok(())
}

impl Store {
    /// At connection, brings the roll-up up to date with rows stored outside Trellis: when it
    /// is empty beside stored results (the first connection after the migration that created
    /// it), it is filled from every result; when results are waiting to be sealed (rows from
    /// before the hash chains, the benchmarks' seeded history), their days are summed up again
    /// (before they are sealed, so a crash in between leaves them to the next connection).
    /// Returns whether anything was summed up.
    pub(super) async fn catch_up_rollup(&self) -> Result<bool, StoreError> {
        const OP: &str = "bring the history roll-up up to date";
        let txn = self.begin_write().await.during(OP)?;
        integrity::lock_head(&txn, integrity::RESULTS_CHAIN, OP).await?;
        let has_days = control_days::Entity::find()
            .select_only()
            .column(control_days::Column::ControlId)
            .limit(1)
            .into_tuple::<String>()
            .one(&txn)
            .await
            .during(OP)?
            .is_some();
        let first_result = |unsealed: bool| {
            let mut q = control_results::Entity::find()
                .select_only()
                .column_as(control_results::Column::EvaluatedAt.min(), "first");
            if unsealed {
                q = q.filter(control_results::Column::RowHash.eq(""));
            }
            q.into_tuple::<Option<DateTime<Utc>>>().one(&txn)
        };
        let from = if has_days {
            first_result(true).await.during(OP)?.flatten()
        } else {
            first_result(false).await.during(OP)?.flatten()
        };
        let Some(from) = from else {
            txn.commit().await.during(OP)?;
            return Ok(false);
        };
        rebuild(&txn, from.date_naive(), OP).await?;
        txn.commit().await.during(OP)?;
        Ok(true)
    }

    /// Each control's history from day `from` to `now`, summed up per day, for the day cells
    /// (`web::history::daily_from`): its newest day before `from` (the state the window
    /// starts in), the roll-up's days from `from` to yesterday, and today's evaluations up to
    /// `now` summed up from the results themselves (none after `now` is counted). Only the
    /// control `only`, when given. Controls sorted by id.
    ///
    /// Reads one roll-up row per control and day of the window plus today's results, whatever
    /// the number of results stored.
    pub async fn history_days(
        &self,
        from: NaiveDate,
        now: DateTime<Utc>,
        only: Option<&str>,
    ) -> Result<Vec<ControlDays>, StoreError> {
        const OP: &str = "read history days";
        let today = now.date_naive();
        let from = from.min(today);
        let mut by_control: BTreeMap<String, Vec<DaySummary>> = BTreeMap::new();
        // The newest day before the window, per control: an index lookup each.
        let before = match only {
            Some(id) => control_days::Entity::find()
                .filter(control_days::Column::ControlId.eq(id))
                .filter(control_days::Column::Day.lt(from))
                .order_by_desc(control_days::Column::Day)
                .limit(1)
                .all(&self.db)
                .await
                .during(OP)?,
            None => control_days::Model::find_by_statement(Statement::from_sql_and_values(
                self.db.get_database_backend(),
                NEWEST_DAY_BEFORE,
                [from.into()],
            ))
            .all(&self.db)
            .await
            .during(OP)?,
        };
        let mut window = control_days::Entity::find()
            .filter(control_days::Column::Day.gte(from))
            .filter(control_days::Column::Day.lt(today));
        if let Some(id) = only {
            window = window.filter(control_days::Column::ControlId.eq(id));
        }
        let mut days = before;
        days.extend(window.all(&self.db).await.during(OP)?);
        days.sort_by(|a, b| (&a.control_id, a.day).cmp(&(&b.control_id, b.day)));
        for row in &days {
            by_control
                .entry(row.control_id.clone())
                .or_default()
                .push(summary_of(row)?);
        }
        // Today, up to `now`, from the results.
        let start = today.and_time(NaiveTime::MIN).and_utc();
        let mut q = control_results::Entity::find()
            .select_only()
            .columns([
                control_results::Column::Id,
                control_results::Column::ControlId,
                control_results::Column::EvaluatedAt,
                control_results::Column::Status,
            ])
            .filter(control_results::Column::EvaluatedAt.gte(start))
            .filter(control_results::Column::EvaluatedAt.lte(db_time(now)));
        if let Some(id) = only {
            q = q.filter(control_results::Column::ControlId.eq(id));
        }
        let mut rows = q
            .into_tuple::<(i64, String, DateTime<Utc>, String)>()
            .all(&self.db)
            .await
            .during(OP)?;
        rows.sort_by(|a, b| (&a.1, a.2, a.0).cmp(&(&b.1, b.2, b.0)));
        let mut points: BTreeMap<String, Vec<(DateTime<Utc>, Status)>> = BTreeMap::new();
        for (id, control_id, at, status) in rows {
            let status = parse_status("control_results", id, &status)?;
            points.entry(control_id).or_default().push((at, status));
        }
        for (control_id, points) in points {
            by_control
                .entry(control_id)
                .or_default()
                .extend(DaySummary::of_evaluations(&points));
        }
        Ok(by_control.into_iter().collect())
    }
}

/// Each control's newest roll-up row before day `$1`: the control ids found by skipping
/// through the primary key (one index seek per control, not a scan of every day), then one
/// lookup each.
const NEWEST_DAY_BEFORE: &str = "WITH RECURSIVE ids(control_id) AS ( \
       SELECT MIN(control_id) FROM control_days \
       UNION ALL \
       SELECT (SELECT MIN(n.control_id) FROM control_days n WHERE n.control_id > ids.control_id) \
       FROM ids WHERE ids.control_id IS NOT NULL) \
     SELECT d.* FROM ids JOIN control_days d ON d.control_id = ids.control_id \
       AND d.day = (SELECT MAX(p.day) FROM control_days p \
                    WHERE p.control_id = ids.control_id AND p.day < $1)";

/// Deletes the roll-up from day `from` on and sums those days up again from the results,
/// control by control.
async fn rebuild(
    txn: &DatabaseTransaction,
    from: NaiveDate,
    op: &'static str,
) -> Result<(), StoreError> {
    control_days::Entity::delete_many()
        .filter(control_days::Column::Day.gte(from))
        .exec(txn)
        .await
        .during(op)?;
    let controls: Vec<String> = control_results::Entity::find()
        .select_only()
        .column(control_results::Column::ControlId)
        .distinct()
        .into_tuple()
        .all(txn)
        .await
        .during(op)?;
    for control_id in controls {
        let points = evaluations(txn, &control_id, from, None, op).await?;
        insert(txn, &control_id, &DaySummary::of_evaluations(&points), op).await?;
    }
    Ok(())
}

/// A control's evaluations from day `from` through day `to` (unbounded: `None`), in the
/// order the history reads them: by time, then as stored.
async fn evaluations(
    txn: &DatabaseTransaction,
    control_id: &str,
    from: NaiveDate,
    to: Option<NaiveDate>,
    op: &'static str,
) -> Result<Vec<(DateTime<Utc>, Status)>, StoreError> {
    let midnight = |d: NaiveDate| d.and_time(NaiveTime::MIN).and_utc();
    let mut q = control_results::Entity::find()
        .select_only()
        .columns([
            control_results::Column::Id,
            control_results::Column::EvaluatedAt,
            control_results::Column::Status,
        ])
        .filter(control_results::Column::ControlId.eq(control_id))
        .filter(control_results::Column::EvaluatedAt.gte(midnight(from)));
    if let Some(d) = to {
        q = q.filter(control_results::Column::EvaluatedAt.lt(midnight(d) + TimeDelta::days(1)));
    }
    q.order_by_asc(control_results::Column::EvaluatedAt)
        .order_by_asc(control_results::Column::Id)
        .into_tuple::<(i64, DateTime<Utc>, String)>()
        .all(txn)
        .await
        .during(op)?
        .into_iter()
        .map(|(id, at, status)| Ok((at, parse_status("control_results", id, &status)?)))
        .collect()
}

/// Inserts new roll-up rows (batches sized to the bind-parameter limit).
async fn insert(
    txn: &DatabaseTransaction,
    control_id: &str,
    days: &[DaySummary],
    op: &'static str,
) -> Result<(), StoreError> {
    for chunk in days.chunks(MAX_BIND_PARAMS / DAY_COLUMNS) {
        control_days::Entity::insert_many(chunk.iter().map(|d| active(control_id, d)))
            .exec_without_returning(txn)
            .await
            .during(op)?;
    }
    Ok(())
}

fn active(control_id: &str, d: &DaySummary) -> control_days::ActiveModel {
    let count = |s: Status| i32::try_from(d.count(s)).unwrap_or(i32::MAX);
    control_days::ActiveModel {
        control_id: Set(control_id.to_string()),
        day: Set(d.day),
        first_at: Set(d.first_at),
        last_at: Set(d.last_at),
        last_status: Set(d.last_status.as_str().to_string()),
        longest_gap_us: Set(d.longest_gap.num_microseconds().unwrap_or(i64::MAX)),
        passed: Set(count(Status::Pass)),
        failed: Set(count(Status::Fail)),
        errored: Set(count(Status::Error)),
        not_applicable: Set(count(Status::NotApplicable)),
        waived: Set(count(Status::Waived)),
    }
}

fn summary_of(row: &control_days::Model) -> Result<DaySummary, StoreError> {
    let bad = |detail: String| corrupt(&row.control_id, row.day, &detail);
    let count = |what: &str, n: i32| u32::try_from(n).map_err(|_| bad(format!("negative {what}")));
    let last_status = Status::parse(&row.last_status)
        .ok_or_else(|| bad(format!("unknown status {:?}", row.last_status)))?;
    let stored = |s: Status| match s {
        Status::Pass => row.passed,
        Status::Fail => row.failed,
        Status::Error => row.errored,
        Status::NotApplicable => row.not_applicable,
        Status::Waived => row.waived,
    };
    let mut counts = [0; 5];
    for (slot, status) in counts.iter_mut().zip(Status::ALL) {
        *slot = count(status.as_str(), stored(status))?;
    }
    Ok(DaySummary {
        day: row.day,
        first_at: row.first_at,
        last_at: row.last_at,
        last_status,
        longest_gap: TimeDelta::microseconds(row.longest_gap_us),
        counts,
    })
}

fn corrupt(control_id: &str, day: NaiveDate, detail: &str) -> StoreError {
    StoreError::Corrupt {
        table: "control_days",
        id: format!("{control_id} {day}"),
        detail: detail.to_string(),
    }
}
