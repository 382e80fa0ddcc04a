//! What an export bundle reads: a period's runs, a control's results, their findings and
//! evidence — in pages, so a year of data is streamed, never held whole.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::entities::runs;
use super::{QueryContext, RunSummary, Store, StoreError, db_time, from_json};
use crate::model::Evidence;

/// A result as an export needs it (no checks, nothing parsed that is not used).
#[derive(Debug, Clone, PartialEq)]
pub struct ExportResult {
    pub id: i64,
    pub run_id: String,
    pub status: crate::model::Status,
    pub summary: String,
    pub evaluated_at: DateTime<Utc>,
    pub definition_sha256: String,
    pub evidence_ids: Vec<i64>,
    pub exceptions: Vec<crate::model::ExceptionUse>,
}

/// A result of any control, with its control, for the export's single pass.
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodResult {
    pub control_id: String,
    pub result: ExportResult,
}

/// A page of findings as the database returned it: one JSON text, read in place by
/// [`FindingsPage::rows`] (a year holds millions of findings; no field is copied).
#[derive(Debug, Clone, Default)]
pub struct FindingsPage {
    text: Option<String>,
}

/// A finding as an export writes it, borrowed from its page. `actual` is the stored JSON text.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct FindingRow<'a> {
    id: i64,
    pub result_id: i64,
    pub check: i32,
    #[serde(borrow)]
    pub resource: Cow<'a, str>,
    #[serde(borrow)]
    pub status: Cow<'a, str>,
    #[serde(borrow)]
    pub message: Cow<'a, str>,
    /// Embedded by the database as JSON, not as a string: read in place, never unescaped.
    #[serde(borrow)]
    pub actual: &'a serde_json::value::RawValue,
}

impl FindingsPage {
    /// The findings, by result, each result's in stored order.
    pub fn rows(&self) -> Result<Vec<FindingRow<'_>>, StoreError> {
        let Some(text) = &self.text else {
            return Ok(Vec::new());
        };
        let mut rows: Vec<FindingRow<'_>> =
            serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
                table: "findings",
                id: "range".into(),
                detail: format!("invalid json: {e}"),
            })?;
        // Ordered here: an aggregate's ORDER BY costs SQLite a sort through a temporary
        // b-tree, while the rows come nearly (in practice exactly) in order.
        rows.sort_by_key(|r| (r.result_id, r.id));
        Ok(rows)
    }
}

/// A timestamp as a JSON aggregate holds it (RFC 3339 text on both databases).
fn aggregate_time(
    table: &'static str,
    id: i64,
    column: &str,
    text: &str,
) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .map_err(|e| StoreError::Corrupt {
            table,
            id: id.to_string(),
            detail: format!("{column} {text:?}: {e}"),
        })
}

/// A run of a period, and the key that signed its manifest if it is signed (the manifest
/// itself is read with [`Store::run_seals`], a page at a time: a year holds thousands).
#[derive(Debug, Clone, PartialEq)]
pub struct SealedRun {
    pub run: RunSummary,
    pub signed_by: Option<String>,
}

impl Store {
    /// Runs started in `[start, end)`, oldest first.
    pub async fn runs_between(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<SealedRun>, StoreError> {
        use runs::Column as C;
        use sea_orm::QuerySelect;
        use sea_orm::sea_query::Expr;
        // Everything but the manifests and signatures; the key id only if the run is signed.
        let rows = runs::Entity::find()
            .select_only()
            .columns([
                C::Id,
                C::Trigger,
                C::State,
                C::StartedAt,
                C::FinishedAt,
                C::ControlsTotal,
                C::ControlsDone,
                C::Error,
                C::CollectionsTotal,
                C::CollectionsDone,
            ])
            .column_as(Expr::cust("CAST(NULL AS TEXT)"), "manifest")
            .column_as(Expr::cust("CAST(NULL AS TEXT)"), "signature")
            .column_as(
                Expr::cust(
                    "CASE WHEN manifest IS NOT NULL AND signature IS NOT NULL THEN key_id END",
                ),
                "key_id",
            )
            .column_as(Expr::cust("''"), "row_hash")
            .column_as(Expr::cust("''"), "chain_hash")
            .column_as(Expr::cust("CAST(NULL AS BIGINT)"), "chain_seq")
            .column_as(
                Expr::cust("CAST(NULL AS TIMESTAMPTZ)"),
                "cancel_requested_at",
            )
            .column_as(Expr::cust("CAST(NULL AS TEXT)"), "cancel_requested_by")
            .filter(C::StartedAt.gte(db_time(start)))
            .filter(C::StartedAt.lt(db_time(end)))
            .order_by_asc(C::StartedAt)
            .order_by_asc(C::Id)
            .into_model::<runs::Model>()
            .all(&self.db)
            .await
            .during("list runs of a period")?;
        rows.into_iter()
            .map(|mut r| {
                let signed_by = r.key_id.take();
                Ok(SealedRun {
                    run: super::run_summary(r)?,
                    signed_by,
                })
            })
            .collect()
    }

    /// The signed manifests and signatures of these runs (at most a few hundred at a time),
    /// in the order of `ids`; unsigned runs are left out.
    pub async fn run_seals(
        &self,
        ids: &[String],
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = runs::Entity::find()
            .filter(runs::Column::Id.is_in(ids.iter().cloned()))
            .all(&self.db)
            .await
            .during("read run seals")?;
        let mut by_id: std::collections::HashMap<String, (String, String)> = rows
            .into_iter()
            .filter_map(|r| Some((r.id, (r.manifest?, r.signature?))))
            .collect();
        Ok(ids
            .iter()
            .filter_map(|id| {
                let (manifest, signature) = by_id.remove(id)?;
                Some((id.clone(), manifest, signature))
            })
            .collect())
    }
}

/// An evaluation of a control: when, with which status (its result id breaks ties).
pub type Evaluation = (DateTime<Utc>, i64, crate::model::Status);

impl Store {
    /// Each control's newest evaluation before `before` (one index lookup each): what was
    /// known at a period's start.
    pub async fn evaluations_before(
        &self,
        control_ids: &[String],
        before: DateTime<Utc>,
    ) -> Result<std::collections::HashMap<String, Evaluation>, StoreError> {
        use super::entities::control_results::Column as C;
        use sea_orm::QuerySelect;
        const OP: &str = "read the evaluations before a period";
        let mut out = std::collections::HashMap::new();
        for id in control_ids {
            let row = super::entities::control_results::Entity::find()
                .select_only()
                .columns([C::EvaluatedAt, C::Id, C::Status])
                .filter(C::ControlId.eq(id.as_str()))
                .filter(C::EvaluatedAt.lt(db_time(before)))
                .order_by_desc(C::EvaluatedAt)
                .order_by_desc(C::Id)
                .into_tuple::<(DateTime<Utc>, i64, String)>()
                .one(&self.db)
                .await
                .during(OP)?;
            if let Some((at, rid, status)) = row {
                let status = super::parse_status("control_results", rid, &status)?;
                out.insert(id.clone(), (at, rid, status));
            }
        }
        Ok(out)
    }

    /// Up to `limit` evaluations of a control in `[start, end)`, in time order (ties in id
    /// order), after `after`: a period's evaluations read again in time order, a page at a
    /// time, when they were not stored in it.
    pub async fn control_evaluations(
        &self,
        control_id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        after: Option<(DateTime<Utc>, i64)>,
        limit: u64,
    ) -> Result<Vec<Evaluation>, StoreError> {
        use super::entities::control_results::Column as C;
        use sea_orm::{Condition, QuerySelect};
        let mut q = super::entities::control_results::Entity::find()
            .select_only()
            .columns([C::EvaluatedAt, C::Id, C::Status])
            .filter(C::ControlId.eq(control_id))
            .filter(C::EvaluatedAt.gte(db_time(start)))
            .filter(C::EvaluatedAt.lt(db_time(end)));
        if let Some((t, id)) = after {
            q = q.filter(
                Condition::any()
                    .add(C::EvaluatedAt.gt(t))
                    .add(Condition::all().add(C::EvaluatedAt.eq(t)).add(C::Id.gt(id))),
            );
        }
        let rows = q
            .order_by_asc(C::EvaluatedAt)
            .order_by_asc(C::Id)
            .limit(limit)
            .into_tuple::<(DateTime<Utc>, i64, String)>()
            .all(&self.db)
            .await
            .during("read a control's evaluations")?;
        rows.into_iter()
            .map(|(at, id, status)| {
                Ok((at, id, super::parse_status("control_results", id, &status)?))
            })
            .collect()
    }
}

impl Store {
    /// The first and last result ids evaluated in `[start, end)` (what the export walks).
    pub async fn period_result_ids(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        use sea_orm::{FromQueryResult, Statement};
        #[derive(FromQueryResult)]
        struct Bounds {
            lo: Option<i64>,
            hi: Option<i64>,
        }
        let b = Bounds::find_by_statement(Statement::from_sql_and_values(
            self.db.get_database_backend(),
            "SELECT MIN(id) AS lo, MAX(id) AS hi FROM control_results \
             WHERE evaluated_at >= $1 AND evaluated_at < $2",
            [db_time(start).into(), db_time(end).into()],
        ))
        .one(&self.db)
        .await
        .during("read the period's results")?;
        Ok(b.and_then(|b| Some((b.lo?, b.hi?))))
    }

    /// Up to `limit` results with ids in `(after, last]`, every control, in id order (a
    /// sequential read of the table); the caller filters the period.
    pub async fn period_results_page(
        &self,
        after: i64,
        last: i64,
        limit: u64,
    ) -> Result<Vec<PeriodResult>, StoreError> {
        type Row = (
            i64,
            String,
            String,
            String,
            String,
            String,
            String,
            String,
            String,
        );
        let agg = match self.db.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                "COALESCE(json_agg(json_build_array(id, run_id, control_id, status, summary, \
                   to_char(evaluated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
                   definition_sha256, evidence_ids, exceptions))::text, '[]')"
            }
            _ => {
                "COALESCE(json_group_array(json_array(id, run_id, control_id, status, summary, \
                   evaluated_at, definition_sha256, evidence_ids, exceptions)), '[]')"
            }
        };
        let sql = format!(
            "SELECT {agg} AS rows FROM (SELECT * FROM control_results \
             WHERE id > {after} AND id <= {last} ORDER BY id LIMIT {limit}) page"
        );
        let text = self
            .aggregate(&sql, Vec::new(), "read results of a period")
            .await?;
        let mut rows: Vec<Row> = from_json("control_results", "page", &text)?;
        // Ordered here: an aggregate's ORDER BY costs SQLite a sort through a temporary
        // b-tree, while the rows come nearly (in practice exactly) in order.
        rows.sort_by_key(|r| r.0);
        rows.into_iter()
            .map(
                |(
                    id,
                    run_id,
                    control_id,
                    status,
                    summary,
                    evaluated_at,
                    sha,
                    evidence_ids,
                    exceptions,
                )| {
                    let evaluated_at =
                        aggregate_time("control_results", id, "evaluated_at", &evaluated_at)?;
                    Ok(PeriodResult {
                        control_id,
                        result: ExportResult {
                            status: super::parse_status("control_results", id, &status)?,
                            evidence_ids: from_json("control_results", id, &evidence_ids)?,
                            exceptions: if exceptions == "[]" {
                                Vec::new()
                            } else {
                                from_json("control_results", id, &exceptions)?
                            },
                            id,
                            run_id,
                            summary,
                            evaluated_at,
                            definition_sha256: sha,
                        },
                    })
                },
            )
            .collect()
    }

    /// The findings of the results with ids in `[lo, hi]`, read as one range of the findings
    /// table (findings are stored right after their result).
    pub async fn findings_of_result_range(
        &self,
        lo: i64,
        hi: i64,
    ) -> Result<FindingsPage, StoreError> {
        use sea_orm::{FromQueryResult, Statement};
        #[derive(FromQueryResult)]
        struct Bounds {
            lo: Option<i64>,
            hi: Option<i64>,
        }
        let b = Bounds::find_by_statement(Statement::from_string(
            self.db.get_database_backend(),
            format!(
                "SELECT MIN(id) AS lo, MAX(id) AS hi FROM findings \
                 WHERE control_result_id >= {lo} AND control_result_id <= {hi}"
            ),
        ))
        .one(&self.db)
        .await
        .during("read findings")?;
        let Some((flo, fhi)) = b.and_then(|b| Some((b.lo?, b.hi?))) else {
            return Ok(FindingsPage::default());
        };
        let agg = match self.db.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                "COALESCE(json_agg(json_build_array(id, control_result_id, check_index, \
                   resource, status, message, actual::json))::text, '[]')"
            }
            _ => {
                "COALESCE(json_group_array(json_array(id, control_result_id, check_index, \
                   resource, status, message, json(actual))), '[]')"
            }
        };
        // By id: a sequential read of the table, not an index lookup per row.
        let sql = format!(
            "SELECT {agg} AS rows FROM findings WHERE id >= {flo} AND id <= {fhi} \
             AND control_result_id >= {lo} AND control_result_id <= {hi}"
        );
        let text = self.aggregate(&sql, Vec::new(), "read findings").await?;
        Ok(FindingsPage { text: Some(text) })
    }

    /// Runs an aggregate query returning one text column `rows`.
    async fn aggregate(
        &self,
        sql: &str,
        values: Vec<sea_orm::Value>,
        op: &'static str,
    ) -> Result<String, StoreError> {
        use sea_orm::{FromQueryResult, Statement};
        #[derive(FromQueryResult)]
        struct Aggregate {
            rows: Option<String>,
        }
        let row = Aggregate::find_by_statement(Statement::from_sql_and_values(
            self.db.get_database_backend(),
            sql,
            values,
        ))
        .one(&self.db)
        .await
        .during(op)?;
        Ok(row.and_then(|r| r.rows).unwrap_or_else(|| "[]".to_string()))
    }

    /// These evidence rows (at most a few hundred at a time), by id: one JSON aggregate, the
    /// content embedded as JSON (a year's export reads tens of thousands of them, and a row at
    /// a time through the ORM was most of the evidence's share of it).
    pub async fn evidence_rows(&self, ids: &[i64]) -> Result<Vec<(i64, Evidence)>, StoreError> {
        type Row = (
            i64,
            String,
            String,
            String,
            String,
            serde_json::Value,
            Option<String>,
        );
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let agg = match self.db.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                "COALESCE(json_agg(json_build_array(id, probe, params, \
                   to_char(collected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
                   sha256, content::json, error))::text, '[]')"
            }
            _ => {
                "COALESCE(json_group_array(json_array(id, probe, params, collected_at, sha256, \
                   json(content), error)), '[]')"
            }
        };
        let sql = format!("SELECT {agg} AS rows FROM evidence WHERE id IN ({list})");
        let text = self.aggregate(&sql, Vec::new(), "read evidence").await?;
        let mut rows: Vec<Row> = from_json("evidence", "page", &text)?;
        rows.sort_by_key(|r| r.0);
        rows.into_iter()
            .map(
                |(id, probe, params, collected_at, sha256, content, error)| {
                    let collected_at =
                        aggregate_time("evidence", id, "collected_at", &collected_at)?;
                    Ok((
                        id,
                        Evidence {
                            probe,
                            params,
                            collected_at,
                            content,
                            sha256,
                            error,
                        },
                    ))
                },
            )
            .collect()
    }
}
