//! What the dashboards read (results in detail, findings across results, a resource across
//! controls, runs), and exceptions managed from the dashboard.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};
use serde::Serialize;

use super::entities::{control_results, evidence, findings, managed_exceptions};
use super::staff::{Actor, audit_in};
use super::{
    NEWEST_RESULT_IDS, QueryContext, Store, StoreError, StoredFinding, db_time, from_json,
    parse_status, stored_finding, to_json,
};
use crate::exceptions::Proposal;
use crate::model::{CheckOutcome, ExceptionUse, Status};

/// One stored result of a control, in full.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultDetail {
    pub id: i64,
    pub run_id: String,
    pub control_id: String,
    pub status: Status,
    pub summary: String,
    pub evaluated_at: DateTime<Utc>,
    pub definition_sha256: String,
    pub checks: Vec<CheckOutcome>,
    pub evidence_ids: Vec<i64>,
    pub exceptions: Vec<ExceptionUse>,
    /// Findings by status.
    pub finding_counts: BTreeMap<String, usize>,
}

/// A piece of evidence's metadata (without its content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceMeta {
    pub id: i64,
    pub run_id: String,
    pub probe: String,
    pub params: String,
    pub collected_at: DateTime<Utc>,
    pub sha256: String,
    pub error: Option<String>,
}

/// One result's findings in brief: when, and each resource's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingsAt {
    pub result_id: i64,
    pub run_id: String,
    pub evaluated_at: DateTime<Utc>,
    pub findings: Vec<(String, Status)>,
}

/// A finding with when its result was evaluated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatedFinding {
    #[serde(flatten)]
    pub finding: StoredFinding,
    pub evaluated_at: DateTime<Utc>,
}

/// An exception created in the dashboard or the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManagedException {
    pub id: String,
    #[serde(flatten)]
    pub proposal: Proposal,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
    pub ended_by: Option<String>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// Where a managed exception stands on a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ManagedState {
    /// Waiting for a second person's approval: not applied yet.
    Pending,
    Active,
    /// Past its `expires_on`.
    Expired,
    /// Ended early by someone.
    Ended,
}

impl ManagedException {
    pub fn state(&self, today: NaiveDate) -> ManagedState {
        if self.ended_at.is_some() {
            ManagedState::Ended
        } else if self.proposal.expires_on < today {
            ManagedState::Expired
        } else if self.approved_at.is_some() {
            ManagedState::Active
        } else {
            ManagedState::Pending
        }
    }
}

/// Why a change to a managed exception was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManagedError {
    #[error("no exception `{0}`")]
    NotFound(String),
    #[error("exception {0} is {1:?}: only pending exceptions can be approved")]
    NotPending(String, ManagedState),
    #[error("exception {0} was created by {1}: someone else must approve it")]
    SelfApproval(String, String),
    #[error("exception {0} has already ended")]
    AlreadyEnded(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(super) fn result_detail(row: control_results::Model) -> Result<ResultDetail, StoreError> {
    Ok(ResultDetail {
        status: parse_status("control_results", row.id, &row.status)?,
        checks: from_json("control_results", row.id, &row.checks)?,
        evidence_ids: from_json("control_results", row.id, &row.evidence_ids)?,
        exceptions: from_json("control_results", row.id, &row.exceptions)?,
        finding_counts: from_json("control_results", row.id, &row.finding_counts)?,
        id: row.id,
        run_id: row.run_id,
        control_id: row.control_id,
        summary: row.summary,
        evaluated_at: row.evaluated_at,
        definition_sha256: row.definition_sha256,
    })
}

fn managed(row: managed_exceptions::Model) -> Result<ManagedException, StoreError> {
    Ok(ManagedException {
        proposal: Proposal {
            control: row.control_id,
            resources: from_json("managed_exceptions", &row.id, &row.resources)?,
            reason: row.reason,
            owner: row.owner,
            ticket: row.ticket,
            expires_on: row.expires_on,
        },
        id: row.id,
        created_by: row.created_by,
        created_at: row.created_at,
        approved_by: row.approved_by,
        approved_at: row.approved_at,
        ended_by: row.ended_by,
        ended_at: row.ended_at,
    })
}

impl Store {
    /// The newest result of a control, in full.
    pub async fn latest_result(
        &self,
        control_id: &str,
    ) -> Result<Option<ResultDetail>, StoreError> {
        control_results::Entity::find()
            .filter(control_results::Column::ControlId.eq(control_id))
            .order_by_desc(control_results::Column::EvaluatedAt)
            .order_by_desc(control_results::Column::Id)
            .one(&self.db)
            .await
            .during("read latest result")?
            .map(result_detail)
            .transpose()
    }

    /// Every result of one run, by control id.
    pub async fn run_results(&self, run_id: &str) -> Result<Vec<ResultDetail>, StoreError> {
        control_results::Entity::find()
            .filter(control_results::Column::RunId.eq(run_id))
            .order_by_asc(control_results::Column::ControlId)
            .all(&self.db)
            .await
            .during("read run results")?
            .into_iter()
            .map(result_detail)
            .collect()
    }

    /// The evidence of a run, without content.
    pub async fn run_evidence(&self, run_id: &str) -> Result<Vec<EvidenceMeta>, StoreError> {
        let rows = evidence::Entity::find()
            .select_only()
            .columns([
                evidence::Column::Id,
                evidence::Column::RunId,
                evidence::Column::Probe,
                evidence::Column::Params,
                evidence::Column::CollectedAt,
                evidence::Column::Sha256,
                evidence::Column::Error,
            ])
            .filter(evidence::Column::RunId.eq(run_id))
            .order_by_asc(evidence::Column::Id)
            .into_tuple::<(
                i64,
                String,
                String,
                String,
                DateTime<Utc>,
                String,
                Option<String>,
            )>()
            .all(&self.db)
            .await
            .during("read run evidence")?;
        Ok(rows
            .into_iter()
            .map(
                |(id, run_id, probe, params, collected_at, sha256, error)| EvidenceMeta {
                    id,
                    run_id,
                    probe,
                    params,
                    collected_at,
                    sha256,
                    error,
                },
            )
            .collect())
    }

    /// The metadata of one piece of evidence.
    pub async fn evidence_meta(&self, id: i64) -> Result<Option<EvidenceMeta>, StoreError> {
        let row = evidence::Entity::find_by_id(id)
            .select_only()
            .columns([
                evidence::Column::Id,
                evidence::Column::RunId,
                evidence::Column::Probe,
                evidence::Column::Params,
                evidence::Column::CollectedAt,
                evidence::Column::Sha256,
                evidence::Column::Error,
            ])
            .into_tuple::<(
                i64,
                String,
                String,
                String,
                DateTime<Utc>,
                String,
                Option<String>,
            )>()
            .one(&self.db)
            .await
            .during("read evidence")?;
        Ok(row.map(
            |(id, run_id, probe, params, collected_at, sha256, error)| EvidenceMeta {
                id,
                run_id,
                probe,
                params,
                collected_at,
                sha256,
                error,
            },
        ))
    }

    /// The findings of a control's newest `results` results (or before `before`, when
    /// given), newest first: what "since when" and run-to-run changes are computed from.
    pub async fn findings_history(
        &self,
        control_id: &str,
        results: u64,
        before: Option<DateTime<Utc>>,
    ) -> Result<Vec<FindingsAt>, StoreError> {
        const OP: &str = "read findings history";
        let mut q = control_results::Entity::find()
            .select_only()
            .columns([
                control_results::Column::Id,
                control_results::Column::RunId,
                control_results::Column::EvaluatedAt,
            ])
            .filter(control_results::Column::ControlId.eq(control_id))
            .order_by_desc(control_results::Column::EvaluatedAt)
            .order_by_desc(control_results::Column::Id)
            .limit(results);
        if let Some(t) = before {
            q = q.filter(control_results::Column::EvaluatedAt.lte(db_time(t)));
        }
        let heads = q
            .into_tuple::<(i64, String, DateTime<Utc>)>()
            .all(&self.db)
            .await
            .during(OP)?;
        let ids: Vec<i64> = heads.iter().map(|(id, _, _)| *id).collect();
        let mut by_result: BTreeMap<i64, Vec<(String, Status)>> = BTreeMap::new();
        for chunk in ids.chunks(500) {
            let rows = findings::Entity::find()
                .select_only()
                .columns([
                    findings::Column::Id,
                    findings::Column::ControlResultId,
                    findings::Column::Resource,
                    findings::Column::Status,
                ])
                .filter(findings::Column::ControlResultId.is_in(chunk.to_vec()))
                .order_by_asc(findings::Column::Id)
                .into_tuple::<(i64, i64, String, String)>()
                .all(&self.db)
                .await
                .during(OP)?;
            for (id, result_id, resource, status) in rows {
                by_result
                    .entry(result_id)
                    .or_default()
                    .push((resource, parse_status("findings", id, &status)?));
            }
        }
        Ok(heads
            .into_iter()
            .map(|(result_id, run_id, evaluated_at)| FindingsAt {
                findings: by_result.remove(&result_id).unwrap_or_default(),
                result_id,
                run_id,
                evaluated_at,
            })
            .collect())
    }

    /// Every finding about `resource` in the newest result of each control.
    pub async fn resource_findings(&self, resource: &str) -> Result<Vec<DatedFinding>, StoreError> {
        #[derive(FromQueryResult)]
        struct Row {
            id: i64,
            evaluated_at: DateTime<Utc>,
        }
        let latest = Row::find_by_statement(Statement::from_sql_and_values(
            self.db.get_database_backend(),
            format!(
                "SELECT f.id, cr.evaluated_at FROM findings f \
                 JOIN control_results cr ON cr.id = f.control_result_id \
                 WHERE f.resource = $1 AND cr.id IN ({NEWEST_RESULT_IDS}) \
                 ORDER BY f.control_id, f.id"
            ),
            [resource.into()],
        ))
        .all(&self.db)
        .await
        .during("read resource findings")?;
        let mut out = Vec::with_capacity(latest.len());
        for r in latest {
            if let Some(row) = findings::Entity::find_by_id(r.id)
                .one(&self.db)
                .await
                .during("read resource findings")?
            {
                out.push(DatedFinding {
                    finding: stored_finding(row)?,
                    evaluated_at: r.evaluated_at,
                });
            }
        }
        Ok(out)
    }

    /// Resources whose id contains `text` (for the resource search), at most `limit`.
    pub async fn search_resources(
        &self,
        text: &str,
        limit: u64,
    ) -> Result<Vec<String>, StoreError> {
        findings::Entity::find()
            .select_only()
            .column(findings::Column::Resource)
            .distinct()
            .filter(findings::Column::Resource.contains(text))
            .order_by_asc(findings::Column::Resource)
            .limit(limit)
            .into_tuple::<String>()
            .all(&self.db)
            .await
            .during("search resources")
    }

    /// Proposes an exception (pending until someone else approves it; audited).
    pub async fn create_managed_exception(
        &self,
        proposal: &Proposal,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<String, StoreError> {
        const OP: &str = "create exception";
        let id = format!("MX-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]).to_uppercase();
        let txn = self.begin_write().await.during(OP)?;
        managed_exceptions::Entity::insert(managed_exceptions::ActiveModel {
            id: Set(id.clone()),
            control_id: Set(proposal.control.clone()),
            resources: Set(to_json("exception resources", &proposal.resources)?),
            reason: Set(proposal.reason.clone()),
            owner: Set(proposal.owner.clone()),
            ticket: Set(proposal.ticket.clone()),
            expires_on: Set(proposal.expires_on),
            created_by: Set(actor.name.clone()),
            created_at: Set(db_time(now)),
            approved_by: Set(None),
            approved_at: Set(None),
            ended_by: Set(None),
            ended_at: Set(None),
        })
        .exec_without_returning(&txn)
        .await
        .during(OP)?;
        audit_in(
            &txn,
            actor,
            "exception.create",
            &format!("exception:{id}"),
            serde_json::to_value(proposal).unwrap_or_default(),
            now,
        )
        .await?;
        txn.commit().await.during(OP)?;
        Ok(id)
    }

    /// Every managed exception, newest first.
    pub async fn managed_exceptions(&self) -> Result<Vec<ManagedException>, StoreError> {
        managed_exceptions::Entity::find()
            .order_by_desc(managed_exceptions::Column::CreatedAt)
            .all(&self.db)
            .await
            .during("list exceptions")?
            .into_iter()
            .map(managed)
            .collect()
    }

    /// The managed exceptions that apply on `today` (approved, not ended, not expired).
    pub async fn active_managed_exceptions(
        &self,
        today: NaiveDate,
    ) -> Result<Vec<ManagedException>, StoreError> {
        Ok(self
            .managed_exceptions()
            .await?
            .into_iter()
            .filter(|e| e.state(today) == ManagedState::Active)
            .collect())
    }

    async fn managed_exception(&self, id: &str) -> Result<ManagedException, ManagedError> {
        managed_exceptions::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .during("read exception")?
            .map(managed)
            .transpose()?
            .ok_or_else(|| ManagedError::NotFound(id.to_string()))
    }

    /// Approves a pending exception: by someone other than its creator (audited).
    pub async fn approve_managed_exception(
        &self,
        id: &str,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<ManagedException, ManagedError> {
        const OP: &str = "approve exception";
        let current = self.managed_exception(id).await?;
        let state = current.state(now.date_naive());
        if state != ManagedState::Pending {
            return Err(ManagedError::NotPending(id.to_string(), state));
        }
        if current.created_by == actor.name {
            return Err(ManagedError::SelfApproval(
                id.to_string(),
                current.created_by,
            ));
        }
        let txn = self.begin_write().await.during(OP)?;
        let updated = managed_exceptions::Entity::update_many()
            .col_expr(
                managed_exceptions::Column::ApprovedBy,
                Expr::value(actor.name.clone()),
            )
            .col_expr(
                managed_exceptions::Column::ApprovedAt,
                Expr::value(db_time(now)),
            )
            .filter(managed_exceptions::Column::Id.eq(id))
            .filter(managed_exceptions::Column::ApprovedAt.is_null())
            .filter(managed_exceptions::Column::EndedAt.is_null())
            .exec(&txn)
            .await
            .during(OP)?;
        if updated.rows_affected != 1 {
            return Err(ManagedError::NotPending(
                id.to_string(),
                ManagedState::Active,
            ));
        }
        audit_in(
            &txn,
            actor,
            "exception.approve",
            &format!("exception:{id}"),
            serde_json::json!({}),
            now,
        )
        .await?;
        txn.commit().await.during(OP)?;
        self.managed_exception(id).await
    }

    /// Ends an exception early (pending or active; audited).
    pub async fn end_managed_exception(
        &self,
        id: &str,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<ManagedException, ManagedError> {
        const OP: &str = "end exception";
        let current = self.managed_exception(id).await?;
        if current.ended_at.is_some() {
            return Err(ManagedError::AlreadyEnded(id.to_string()));
        }
        let txn = self.begin_write().await.during(OP)?;
        managed_exceptions::Entity::update_many()
            .col_expr(
                managed_exceptions::Column::EndedBy,
                Expr::value(actor.name.clone()),
            )
            .col_expr(
                managed_exceptions::Column::EndedAt,
                Expr::value(db_time(now)),
            )
            .filter(managed_exceptions::Column::Id.eq(id))
            .filter(managed_exceptions::Column::EndedAt.is_null())
            .exec(&txn)
            .await
            .during(OP)?;
        audit_in(
            &txn,
            actor,
            "exception.end",
            &format!("exception:{id}"),
            serde_json::json!({}),
            now,
        )
        .await?;
        txn.commit().await.during(OP)?;
        self.managed_exception(id).await
    }

    /// How many results are stored (for the overview).
    pub async fn result_count(&self) -> Result<u64, StoreError> {
        control_results::Entity::find()
            .count(&self.db)
            .await
            .during("count results")
    }
}

/// What changed between a control's previous result and this one, per resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FindingChanges {
    /// Failing now, never failing in the results looked at before.
    pub new_failures: Vec<String>,
    /// Failing now, not in the previous result, but failing in an earlier one.
    pub reopened: Vec<String>,
    /// Failing in the previous result, not now.
    pub fixed: Vec<String>,
}

/// Compares a result's failing resources with the ones before it (`history`: newest first,
/// the result itself first).
pub fn finding_changes(history: &[FindingsAt]) -> FindingChanges {
    let failing = |f: &FindingsAt| -> std::collections::BTreeSet<String> {
        f.findings
            .iter()
            .filter(|(_, s)| *s == Status::Fail)
            .map(|(r, _)| r.clone())
            .collect()
    };
    let Some(current) = history.first() else {
        return FindingChanges::default();
    };
    let now = failing(current);
    let previous = history.get(1).map(failing).unwrap_or_default();
    let earlier: std::collections::BTreeSet<String> =
        history.iter().skip(2).flat_map(failing).collect();
    let mut out = FindingChanges::default();
    for r in now.difference(&previous) {
        if earlier.contains(r) {
            out.reopened.push(r.clone());
        } else {
            out.new_failures.push(r.clone());
        }
    }
    out.fixed = previous.difference(&now).cloned().collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(results: &[&[(&str, Status)]]) -> Vec<FindingsAt> {
        results
            .iter()
            .enumerate()
            .map(|(i, f)| FindingsAt {
                result_id: i as i64,
                run_id: String::new(),
                evaluated_at: DateTime::UNIX_EPOCH,
                findings: f.iter().map(|(r, s)| (r.to_string(), *s)).collect(),
            })
            .collect()
    }

    #[test]
    fn changes_between_results() {
        use Status::*;
        let h = at(&[
            // now
            &[("a", Fail), ("b", Fail), ("c", Pass), ("d", Fail)],
            // previous
            &[("a", Fail), ("b", Pass), ("c", Fail), ("d", Pass)],
            // earlier
            &[("b", Fail)],
        ]);
        let c = finding_changes(&h);
        assert_eq!(c.new_failures, ["d"]);
        assert_eq!(c.reopened, ["b"]);
        assert_eq!(c.fixed, ["c"]);
        assert_eq!(finding_changes(&[]), FindingChanges::default());
        // The first result ever: everything failing is new.
        let c = finding_changes(&at(&[&[("x", Fail)]]));
        assert_eq!(c.new_failures, ["x"]);
    }
}
