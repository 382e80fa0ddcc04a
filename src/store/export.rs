//! What an export bundle reads: a period's runs, a control's results, their findings and
//! evidence — in pages, so a year of data is streamed, never held whole.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::entities::{control_results, evidence, findings, runs};
use super::{QueryContext, RunSummary, Store, StoreError, StoredFinding, db_time, from_json};
use crate::model::Evidence;
use crate::store::dashboard::ResultDetail;

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
