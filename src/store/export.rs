//! What an export bundle reads: a period's runs, a control's results, their findings and
//! evidence — in pages, so a year of data is streamed, never held whole.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::entities::{control_results, evidence, findings, runs};
use super::{QueryContext, RunSummary, Store, StoreError, StoredFinding, db_time, from_json};
use crate::model::Evidence;
use crate::store::dashboard::ResultDetail;

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

/// A finding as an export writes it: `actual` stays the stored JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFinding {
    pub check: i32,
    pub resource: String,
    pub status: String,
    pub message: String,
    pub actual: String,
}

/// A run with its seal (manifest, signature, key id), if signed.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedRun {
    pub run: RunSummary,
    pub seal: Option<(String, String, String)>,
}

impl Store {
    /// Runs started in `[start, end)`, oldest first.
    pub async fn runs_between(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<SealedRun>, StoreError> {
        let rows = runs::Entity::find()
            .filter(runs::Column::StartedAt.gte(db_time(start)))
            .filter(runs::Column::StartedAt.lt(db_time(end)))
            .order_by_asc(runs::Column::StartedAt)
            .order_by_asc(runs::Column::Id)
            .all(&self.db)
            .await
            .during("list runs of a period")?;
        rows.into_iter()
            .map(|r| {
                let seal = match (&r.manifest, &r.signature, &r.key_id) {
                    (Some(m), Some(s), Some(k)) => Some((m.clone(), s.clone(), k.clone())),
                    _ => None,
                };
                Ok(SealedRun {
                    run: super::run_summary(r)?,
                    seal,
                })
            })
            .collect()
    }

    /// A control's results evaluated in `[start, end)`, oldest first.
    pub async fn results_between(
        &self,
        control_id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<ResultDetail>, StoreError> {
        control_results::Entity::find()
            .filter(control_results::Column::ControlId.eq(control_id))
            .filter(control_results::Column::EvaluatedAt.gte(db_time(start)))
            .filter(control_results::Column::EvaluatedAt.lt(db_time(end)))
            .order_by_asc(control_results::Column::EvaluatedAt)
            .order_by_asc(control_results::Column::Id)
            .all(&self.db)
            .await
            .during("read results of a period")?
            .into_iter()
            .map(super::dashboard::result_detail)
            .collect()
    }

    /// A control's results evaluated in `[start, end)`, oldest first, as an export needs them.
    ///
    /// One row comes back: the results aggregated as a JSON array in the database, which is
    /// several times faster than a row each (per-row driver overhead dominates otherwise).
    pub async fn export_results(
        &self,
        control_id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<ExportResult>, StoreError> {
        type Row = (i64, String, String, String, String, String, String, String);
        let sql = match self.db.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                "SELECT COALESCE(json_agg(json_build_array(id, run_id, status, summary, \
                   to_char(evaluated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
                   definition_sha256, evidence_ids, exceptions) ORDER BY evaluated_at, id)::text, '[]') AS rows \
                 FROM control_results WHERE control_id = $1 AND evaluated_at >= $2 AND evaluated_at < $3"
            }
            _ => {
                "SELECT COALESCE(json_group_array(json_array(id, run_id, status, summary, evaluated_at, \
                   definition_sha256, evidence_ids, exceptions) ORDER BY evaluated_at, id), '[]') AS rows \
                 FROM control_results WHERE control_id = $1 AND evaluated_at >= $2 AND evaluated_at < $3"
            }
        };
        let text = self
            .aggregate(
                sql,
                vec![
                    control_id.into(),
                    db_time(start).into(),
                    db_time(end).into(),
                ],
                "read results of a period",
            )
            .await?;
        let rows: Vec<Row> = from_json("control_results", control_id, &text)?;
        rows.into_iter()
            .map(
                |(
                    id,
                    run_id,
                    status,
                    summary,
                    evaluated_at,
                    definition_sha256,
                    evidence_ids,
                    exceptions,
                )| {
                    let evaluated_at = DateTime::parse_from_rfc3339(&evaluated_at)
                        .map_err(|e| StoreError::Corrupt {
                            table: "control_results",
                            id: id.to_string(),
                            detail: format!("evaluated_at {evaluated_at:?}: {e}"),
                        })?
                        .to_utc();
                    Ok(ExportResult {
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
                        definition_sha256,
                    })
                },
            )
            .collect()
    }

    /// The findings of these results, lean, by result id, in stored order (aggregated as JSON
    /// in the database, like [`Store::export_results`]).
    pub async fn export_findings(
        &self,
        result_ids: &[i64],
    ) -> Result<BTreeMap<i64, Vec<ExportFinding>>, StoreError> {
        type Row = (i64, i32, String, String, String, String);
        let mut out: BTreeMap<i64, Vec<ExportFinding>> = BTreeMap::new();
        for chunk in result_ids.chunks(500) {
            // Integers only: safe to inline, and no bind-parameter limit.
            let ids = chunk
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let sql = match self.db.get_database_backend() {
                sea_orm::DatabaseBackend::Postgres => format!(
                    "SELECT COALESCE(json_agg(json_build_array(control_result_id, check_index, resource, \
                       status, message, actual) ORDER BY id)::text, '[]') AS rows \
                     FROM findings WHERE control_result_id IN ({ids})"
                ),
                _ => format!(
                    "SELECT COALESCE(json_group_array(json_array(control_result_id, check_index, resource, \
                       status, message, actual) ORDER BY id), '[]') AS rows \
                     FROM findings WHERE control_result_id IN ({ids})"
                ),
            };
            let text = self.aggregate(&sql, Vec::new(), "read findings").await?;
            let rows: Vec<Row> = from_json("findings", "page", &text)?;
            for (result_id, check, resource, status, message, actual) in rows {
                out.entry(result_id).or_default().push(ExportFinding {
                    check,
                    resource,
                    status,
                    message,
                    actual,
                });
            }
        }
        Ok(out)
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

    /// The findings of these results, by result id, in stored order.
    pub async fn findings_of(
        &self,
        result_ids: &[i64],
    ) -> Result<BTreeMap<i64, Vec<StoredFinding>>, StoreError> {
        let mut out: BTreeMap<i64, Vec<StoredFinding>> = BTreeMap::new();
        for chunk in result_ids.chunks(500) {
            let rows = findings::Entity::find()
                .filter(findings::Column::ControlResultId.is_in(chunk.to_vec()))
                .order_by_asc(findings::Column::Id)
                .all(&self.db)
                .await
                .during("read findings")?;
            for row in rows {
                let f = super::stored_finding(row)?;
                out.entry(f.control_result_id).or_default().push(f);
            }
        }
        Ok(out)
    }

    /// These evidence rows (at most a few hundred at a time), by id.
    pub async fn evidence_rows(&self, ids: &[i64]) -> Result<Vec<(i64, Evidence)>, StoreError> {
        let rows = evidence::Entity::find()
            .filter(evidence::Column::Id.is_in(ids.to_vec()))
            .order_by_asc(evidence::Column::Id)
            .all(&self.db)
            .await
            .during("read evidence")?;
        rows.into_iter()
            .map(|row| {
                let content = match &row.content {
                    Some(text) => from_json("evidence", row.id, text)?,
                    None => serde_json::Value::Null,
                };
                Ok((
                    row.id,
                    Evidence {
                        probe: row.probe,
                        params: row.params,
                        collected_at: row.collected_at,
                        content,
                        sha256: row.sha256,
                        error: row.error,
                    },
                ))
            })
            .collect()
    }
}
