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
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};

use super::entities::{control_days, control_results};
use super::{MAX_BIND_PARAMS, QueryContext, Store, StoreError, integrity, parse_status};
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
    /// the number of results stored. For every control (`only` is `None`: the overview), what
    /// was read is kept (see [`HistoryCache`]) and read again only when the stored results
    /// changed, which one read of the results' version tells; when the only results stored
    /// since are of today, just those are read.
    pub async fn history_days(
        &self,
        from: NaiveDate,
        now: DateTime<Utc>,
        only: Option<&str>,
    ) -> Result<Vec<ControlDays>, StoreError> {
        const OP: &str = "read history days";
        let today = now.date_naive();
        let from = from.min(today);
        if only.is_some() {
            let read = self.read_history(from, today, only, None, OP).await?;
            return Ok(read.up_to(now));
        }
        // The version first: whatever is read after it is at least as new.
        let version = self.history_version(OP).await?;
        let read = match self.history.get() {
            Some(kept) if kept.from == from && kept.today == today => {
                if kept.version == version {
                    kept
                } else if let Some(newer) = self.newer_today(&kept, version, OP).await? {
                    Arc::new(newer)
                } else {
                    Arc::new(self.read_all_history(from, today, version, OP).await?)
                }
            }
            _ => Arc::new(self.read_all_history(from, today, version, OP).await?),
        };
        self.history.keep(&read);
        Ok(read.up_to(now))
    }

    /// What tells whether the stored results changed: the newest result id (a result stored
    /// after another gets a greater id: writers take turns on the results chain's head, which
    /// they lock before inserting) and the newest sealed one (rows stored outside Trellis are
    /// rolled up, then sealed, by the next connection, which changes it).
    async fn history_version(&self, op: &'static str) -> Result<HistoryVersion, StoreError> {
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                self.db.get_database_backend(),
                "SELECT (SELECT MAX(id) FROM control_results), \
                   (SELECT last_id FROM chain_heads WHERE name = $1)",
                [integrity::RESULTS_CHAIN.into()],
            ))
            .await
            .during(op)?;
        let (newest, sealed) = match row {
            Some(r) => r
                .try_get_many_by_index::<(Option<i64>, Option<i64>)>()
                .during(op)?,
            None => (None, None),
        };
        Ok(HistoryVersion {
            newest: newest.unwrap_or(0),
            sealed: sealed.unwrap_or(0),
        })
    }

    /// Every control's history read at `version` (read before): today's results stored after
    /// it are left to the next read (see [`Store::newer_today`]).
    async fn read_all_history(
        &self,
        from: NaiveDate,
        today: NaiveDate,
        version: HistoryVersion,
        op: &'static str,
    ) -> Result<HistoryRead, StoreError> {
        let read = self
            .read_history(from, today, None, Some(version.newest), op)
            .await?;
        Ok(HistoryRead { version, ..read })
    }

    /// The days before `today` from the roll-up (the newest before `from`, then from `from`)
    /// and today's evaluations from the results (with ids up to `newest`, when given).
    async fn read_history(
        &self,
        from: NaiveDate,
        today: NaiveDate,
        only: Option<&str>,
        newest: Option<i64>,
        op: &'static str,
    ) -> Result<HistoryRead, StoreError> {
        let backend = self.db.get_database_backend();
        let (before, window) = match only {
            Some(id) => (
                Statement::from_sql_and_values(
                    backend,
                    format!(
                        "SELECT {DAY_COLUMN_LIST} FROM control_days \
                         WHERE control_id = $1 AND day < $2 ORDER BY day DESC LIMIT 1"
                    ),
                    [id.into(), from.into()],
                ),
                Statement::from_sql_and_values(
                    backend,
                    format!(
                        "SELECT {DAY_COLUMN_LIST} FROM control_days \
                         WHERE control_id = $1 AND day >= $2 AND day < $3"
                    ),
                    [id.into(), from.into(), today.into()],
                ),
            ),
            None => (
                // The newest day before the window, per control: an index lookup each.
                Statement::from_sql_and_values(backend, NEWEST_DAY_BEFORE, [from.into()]),
                Statement::from_sql_and_values(
                    backend,
                    format!(
                        "SELECT {DAY_COLUMN_LIST} FROM control_days WHERE day >= $1 AND day < $2"
                    ),
                    [from.into(), today.into()],
                ),
            ),
        };
        let mut days = self.read_days(before, op).await?;
        days.extend(self.read_days(window, op).await?);
        days.sort_by(|a, b| (&a.0, a.1.day).cmp(&(&b.0, b.1.day)));
        let mut by_control: Vec<ControlDays> = Vec::new();
        for (control_id, day) in days {
            match by_control.last_mut() {
                Some((id, list)) if *id == control_id => list.push(day),
                _ => by_control.push((control_id, vec![day])),
            }
        }
        // Today's evaluations, every one: those after `now` are left out by `up_to`.
        let start = today.and_time(NaiveTime::MIN).and_utc();
        let mut q = result_points().filter(control_results::Column::EvaluatedAt.gte(start));
        if let Some(id) = only {
            q = q.filter(control_results::Column::ControlId.eq(id));
        }
        if let Some(newest) = newest {
            q = q.filter(control_results::Column::Id.lte(newest));
        }
        let rows = q.into_tuple().all(&self.db).await.during(op)?;
        let mut today_points = BTreeMap::new();
        add_points(&mut today_points, rows)?;
        Ok(HistoryRead {
            version: HistoryVersion::default(),
            from,
            today,
            days: by_control,
            today_points,
        })
    }

    /// Roll-up rows, decoded by position (the columns of [`DAY_COLUMN_LIST`]).
    async fn read_days(
        &self,
        stmt: Statement,
        op: &'static str,
    ) -> Result<Vec<(String, DaySummary)>, StoreError> {
        self.db
            .query_all_raw(stmt)
            .await
            .during(op)?
            .iter()
            .map(|r| {
                let row = control_days::Model {
                    control_id: r.try_get_by_index(0).during(op)?,
                    day: r.try_get_by_index(1).during(op)?,
                    first_at: r.try_get_by_index(2).during(op)?,
                    last_at: r.try_get_by_index(3).during(op)?,
                    last_status: r.try_get_by_index(4).during(op)?,
                    longest_gap_us: r.try_get_by_index(5).during(op)?,
                    passed: r.try_get_by_index(6).during(op)?,
                    failed: r.try_get_by_index(7).during(op)?,
                    errored: r.try_get_by_index(8).during(op)?,
                    not_applicable: r.try_get_by_index(9).during(op)?,
                    waived: r.try_get_by_index(10).during(op)?,
                };
                let summary = summary_of(&row)?;
                Ok((row.control_id, summary))
            })
            .collect()
    }

    /// `kept` brought up to `version` when every result stored since it was read is of its
    /// day (`kept.today`): the days before are then as read, and only those results are
    /// read. `None` when one is of another day, or when rows stored outside Trellis may have
    /// changed the roll-up since (`kept` or `version` with unsealed rows).
    async fn newer_today(
        &self,
        kept: &HistoryRead,
        version: HistoryVersion,
        op: &'static str,
    ) -> Result<Option<HistoryRead>, StoreError> {
        if !(kept.version.all_sealed() && version.all_sealed() && version > kept.version) {
            return Ok(None);
        }
        let rows: Vec<ResultPoint> = result_points()
            .filter(control_results::Column::Id.gt(kept.version.newest))
            .filter(control_results::Column::Id.lte(version.newest))
            .into_tuple()
            .all(&self.db)
            .await
            .during(op)?;
        if rows.iter().any(|r| r.2.date_naive() != kept.today) {
            return Ok(None);
        }
        let mut today_points = kept.today_points.clone();
        add_points(&mut today_points, rows)?;
        Ok(Some(HistoryRead {
            version,
            from: kept.from,
            today: kept.today,
            days: kept.days.clone(),
            today_points,
        }))
    }
}

/// See [`Store::history_version`]: ordered by the newest result id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct HistoryVersion {
    newest: i64,
    sealed: i64,
}

impl HistoryVersion {
    fn all_sealed(self) -> bool {
        self.newest == self.sealed
    }
}

/// A result's `(id, control id, evaluated at, status)`.
type ResultPoint = (i64, String, DateTime<Utc>, String);

fn result_points() -> sea_orm::Select<control_results::Entity> {
    control_results::Entity::find().select_only().columns([
        control_results::Column::Id,
        control_results::Column::ControlId,
        control_results::Column::EvaluatedAt,
        control_results::Column::Status,
    ])
}

/// Evaluations per control, in the order the history reads them: by time, then as stored
/// (by id).
type Points = BTreeMap<String, Vec<(DateTime<Utc>, i64, Status)>>;

fn add_points(points: &mut Points, rows: Vec<ResultPoint>) -> Result<(), StoreError> {
    let mut touched = Vec::new();
    for (id, control_id, at, status) in rows {
        let status = parse_status("control_results", id, &status)?;
        let list = points.entry(control_id.clone()).or_default();
        list.push((at, id, status));
        touched.push(control_id);
    }
    touched.sort();
    touched.dedup();
    for control_id in touched {
        if let Some(list) = points.get_mut(&control_id) {
            list.sort_by_key(|&(at, id, _)| (at, id));
        }
    }
    Ok(())
}

/// What [`Store::history_days`] read: the days before `today`, and today's evaluations.
#[derive(Debug, Clone)]
struct HistoryRead {
    /// The results' version read before the rest (for every control only).
    version: HistoryVersion,
    from: NaiveDate,
    today: NaiveDate,
    /// Each control's days before `today`, oldest first; controls sorted by id.
    days: Vec<ControlDays>,
    /// Today's evaluations, also those after any `now` of today.
    today_points: Points,
}

impl HistoryRead {
    /// The history as of `now` (of the day `today`): today's evaluations up to `now` summed
    /// up after each control's days.
    fn up_to(&self, now: DateTime<Utc>) -> Vec<ControlDays> {
        let mut by_control: BTreeMap<&str, Vec<DaySummary>> = self
            .days
            .iter()
            .map(|(id, days)| (id.as_str(), days.clone()))
            .collect();
        for (control_id, points) in &self.today_points {
            let points: Vec<(DateTime<Utc>, Status)> = points
                .iter()
                .filter(|&&(at, _, _)| at <= now)
                .map(|&(at, _, status)| (at, status))
                .collect();
            if !points.is_empty() {
                by_control
                    .entry(control_id)
                    .or_default()
                    .extend(DaySummary::of_evaluations(&points));
            }
        }
        by_control
            .into_iter()
            .map(|(id, days)| (id.to_string(), days))
            .collect()
    }
}

/// The newest history read for every control, kept by [`Store::history_days`] with the
/// results' version it was read at. Shared by the clones of a [`Store`].
#[derive(Debug, Default)]
pub(super) struct HistoryCache(Mutex<Option<Arc<HistoryRead>>>);

impl HistoryCache {
    fn get(&self) -> Option<Arc<HistoryRead>> {
        self.0.lock().ok().and_then(|kept| kept.clone())
    }

    /// Keeps `read` unless what is kept is of a newer version (a slower concurrent reader
    /// must not put an older read back).
    fn keep(&self, read: &Arc<HistoryRead>) {
        if let Ok(mut kept) = self.0.lock() {
            let newer_kept = kept
                .as_ref()
                .is_some_and(|k| (k.today, k.version) > (read.today, read.version));
            if !newer_kept {
                *kept = Some(Arc::clone(read));
            }
        }
    }
}

/// The roll-up's columns, in the order [`Store::read_days`] decodes them.
const DAY_COLUMN_LIST: &str = "control_id, day, first_at, last_at, last_status, longest_gap_us, \
     passed, failed, errored, not_applicable, waived";

/// Each control's newest roll-up row before day `$1`: the control ids found by skipping
/// through the primary key (one index seek per control, not a scan of every day), then one
/// lookup each. Columns as [`DAY_COLUMN_LIST`].
const NEWEST_DAY_BEFORE: &str = "WITH RECURSIVE ids(control_id) AS ( \
       SELECT MIN(control_id) FROM control_days \
       UNION ALL \
       SELECT (SELECT MIN(n.control_id) FROM control_days n WHERE n.control_id > ids.control_id) \
       FROM ids WHERE ids.control_id IS NOT NULL) \
     SELECT d.control_id, d.day, d.first_at, d.last_at, d.last_status, d.longest_gap_us, \
       d.passed, d.failed, d.errored, d.not_applicable, d.waived \
     FROM ids JOIN control_days d ON d.control_id = ids.control_id \
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
