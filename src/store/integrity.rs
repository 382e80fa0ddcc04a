//! The hash chains of evidence and results, run manifests, control definitions, and the
//! verification that walks it all (`trellis verify`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::Serialize;

use super::entities::{chain_heads, control_results, definitions, evidence, findings, runs};
use super::{QueryContext, Store, StoreError, db_time};
use crate::integrity::{
    self as rules, ChainHead, FindingFields, GENESIS, ManifestEvidence, ManifestResult,
    ResultFields, RunManifest,
};

pub(super) const EVIDENCE_CHAIN: &str = "evidence";
pub(super) const RESULTS_CHAIN: &str = "control_results";

/// Rows read per query while verifying (memory stays bounded).
const PAGE: u64 = 500;

/// The chain's head, locked for this transaction (PostgreSQL: `FOR UPDATE`; SQLite write
/// transactions are exclusive already). Created at genesis when missing.
pub(super) async fn lock_head(
    txn: &DatabaseTransaction,
    name: &str,
    op: &'static str,
) -> Result<ChainHead, StoreError> {
    let mut q = chain_heads::Entity::find_by_id(name.to_string());
    if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        q = q.lock_exclusive();
    }
    match q.one(txn).await.during(op)? {
        Some(row) => Ok(ChainHead {
            last_id: row.last_id,
            chain_hash: row.chain_hash,
        }),
        None => {
            chain_heads::Entity::insert(chain_heads::ActiveModel {
                name: Set(name.to_string()),
                last_id: Set(0),
                chain_hash: Set(GENESIS.to_string()),
            })
            .exec_without_returning(txn)
            .await
            .during(op)?;
            // Lock the row just made (a concurrent creator fails on the primary key).
            Ok(ChainHead {
                last_id: 0,
                chain_hash: GENESIS.to_string(),
            })
        }
    }
}

/// Writes a row's digest and chain hash; returns the new head.
pub(super) async fn append(
    txn: &DatabaseTransaction,
    head: &ChainHead,
    id: i64,
    digest: &str,
    chain: &str,
    op: &'static str,
) -> Result<ChainHead, StoreError> {
    let chain_hash = rules::chain(&head.chain_hash, digest);
    match chain {
        EVIDENCE_CHAIN => {
            evidence::Entity::update_many()
                .col_expr(evidence::Column::RowHash, Expr::value(digest))
                .col_expr(evidence::Column::ChainHash, Expr::value(chain_hash.clone()))
                .filter(evidence::Column::Id.eq(id))
                .exec(txn)
                .await
                .during(op)?;
        }
        _ => {
            control_results::Entity::update_many()
                .col_expr(control_results::Column::RowHash, Expr::value(digest))
                .col_expr(
                    control_results::Column::ChainHash,
                    Expr::value(chain_hash.clone()),
                )
                .filter(control_results::Column::Id.eq(id))
                .exec(txn)
                .await
                .during(op)?;
        }
    }
    Ok(ChainHead {
        last_id: id,
        chain_hash,
    })
}

pub(super) async fn save_head(
    txn: &DatabaseTransaction,
    name: &str,
    head: &ChainHead,
    op: &'static str,
) -> Result<(), StoreError> {
    chain_heads::Entity::update_many()
        .col_expr(chain_heads::Column::LastId, Expr::value(head.last_id))
        .col_expr(
            chain_heads::Column::ChainHash,
            Expr::value(head.chain_hash.clone()),
        )
        .filter(chain_heads::Column::Name.eq(name))
        .exec(txn)
        .await
        .during(op)?;
    Ok(())
}

fn evidence_row_digest(row: &evidence::Model) -> String {
    rules::evidence_digest(
        row.id,
        &row.run_id,
        &row.probe,
        &row.params,
        row.collected_at,
        &rules::sha256_hex(row.content.as_deref().unwrap_or_default().as_bytes()),
        row.error.as_deref(),
    )
}

fn result_row_digest(row: &control_results::Model, findings: &[findings::Model]) -> String {
    let findings_digest = rules::findings_digest(findings.iter().map(|f| FindingFields {
        check: f.check_index,
        resource: &f.resource,
        status: &f.status,
        message: &f.message,
        actual: &f.actual,
    }));
    rules::result_digest(&ResultFields {
        id: row.id,
        run_id: &row.run_id,
        control_id: &row.control_id,
        status: &row.status,
        summary: &row.summary,
        evaluated_at: row.evaluated_at,
        definition_sha256: &row.definition_sha256,
        checks: &row.checks,
        evidence_ids: &row.evidence_ids,
        finding_counts: &row.finding_counts,
        exceptions: &row.exceptions,
        findings_digest: &findings_digest,
    })
}

/// One problem `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntegrityProblem {
    /// `evidence`, `control_results`, `runs` or `chain_heads`.
    pub table: &'static str,
    /// The row (or run) concerned.
    pub id: String,
    pub message: String,
}

impl std::fmt::Display for IntegrityProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.table, self.id, self.message)
    }
}

/// What `verify` checked and found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IntegrityReport {
    pub evidence_rows: u64,
    pub result_rows: u64,
    pub runs_signed: u64,
    pub runs_unsigned: u64,
    pub problems: Vec<IntegrityProblem>,
}

impl Store {
    /// Chains rows stored before chains existed (their hashes empty), in id order, so the
    /// whole table is covered from now on. Returns how many rows were sealed.
    pub async fn seal_unchained_rows(&self) -> Result<u64, StoreError> {
        const OP: &str = "seal unchained rows";
        let mut sealed = 0;
        loop {
            let txn = self.begin_write().await.during(OP)?;
            let rows = evidence::Entity::find()
                .filter(evidence::Column::RowHash.eq(""))
                .order_by_asc(evidence::Column::Id)
                .limit(PAGE)
                .all(&txn)
                .await
                .during(OP)?;
            if rows.is_empty() {
                txn.commit().await.during(OP)?;
                break;
            }
            let mut head = lock_head(&txn, EVIDENCE_CHAIN, OP).await?;
            for row in &rows {
                head = append(
                    &txn,
                    &head,
                    row.id,
                    &evidence_row_digest(row),
                    EVIDENCE_CHAIN,
                    OP,
                )
                .await?;
            }
            save_head(&txn, EVIDENCE_CHAIN, &head, OP).await?;
            txn.commit().await.during(OP)?;
            sealed += rows.len() as u64;
        }
        loop {
            let txn = self.begin_write().await.during(OP)?;
            let rows = control_results::Entity::find()
                .filter(control_results::Column::RowHash.eq(""))
                .order_by_asc(control_results::Column::Id)
                .limit(PAGE)
                .all(&txn)
                .await
                .during(OP)?;
            if rows.is_empty() {
                txn.commit().await.during(OP)?;
                break;
            }
            let mut head = lock_head(&txn, RESULTS_CHAIN, OP).await?;
            for row in &rows {
                let f = findings::Entity::find()
                    .filter(findings::Column::ControlResultId.eq(row.id))
                    .order_by_asc(findings::Column::Id)
                    .all(&txn)
                    .await
                    .during(OP)?;
                head = append(
                    &txn,
                    &head,
                    row.id,
                    &result_row_digest(row, &f),
                    RESULTS_CHAIN,
                    OP,
                )
                .await?;
            }
            save_head(&txn, RESULTS_CHAIN, &head, OP).await?;
            txn.commit().await.during(OP)?;
            sealed += rows.len() as u64;
        }
        Ok(sealed)
    }

    /// Keeps a control definition's text by its SHA-256 (once).
    pub async fn record_definition(
        &self,
        sha256: &str,
        control_id: &str,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const OP: &str = "record definition";
        let exists = definitions::Entity::find_by_id(sha256.to_string())
            .count(&self.db)
            .await
            .during(OP)?
            > 0;
        if !exists {
            let inserted = definitions::Entity::insert(definitions::ActiveModel {
                sha256: Set(sha256.to_string()),
                control_id: Set(control_id.to_string()),
                text: Set(text.to_string()),
                first_seen_at: Set(db_time(now)),
            })
            .exec_without_returning(&self.db)
            .await;
            // Another writer may have stored it meanwhile: the same text, by definition.
            if let Err(e) = inserted {
                let now_exists = definitions::Entity::find_by_id(sha256.to_string())
                    .count(&self.db)
                    .await
                    .during(OP)?
                    > 0;
                if !now_exists {
                    return Err(e).during(OP);
                }
            }
        }
        Ok(())
    }

    /// A control definition's text, by SHA-256.
    pub async fn definition(&self, sha256: &str) -> Result<Option<String>, StoreError> {
        Ok(definitions::Entity::find_by_id(sha256.to_string())
            .one(&self.db)
            .await
            .during("read definition")?
            .map(|d| d.text))
    }

    /// The manifest of a finished run, from its stored rows (to sign).
    pub async fn run_manifest(&self, run_id: &str) -> Result<RunManifest, StoreError> {
        const OP: &str = "build run manifest";
        let run = runs::Entity::find_by_id(run_id.to_string())
            .one(&self.db)
            .await
            .during(OP)?
            .ok_or_else(|| StoreError::RunNotFound(run_id.to_string()))?;
        let results = control_results::Entity::find()
            .filter(control_results::Column::RunId.eq(run_id))
            .order_by_asc(control_results::Column::Id)
            .all(&self.db)
            .await
            .during(OP)?;
        let evidence = evidence::Entity::find()
            .select_only()
            .columns([
                evidence::Column::Id,
                evidence::Column::Probe,
                evidence::Column::Sha256,
                evidence::Column::RowHash,
            ])
            .filter(evidence::Column::RunId.eq(run_id))
            .order_by_asc(evidence::Column::Id)
            .into_tuple::<(i64, String, String, String)>()
            .all(&self.db)
            .await
            .during(OP)?;
        let head = |name: &'static str| async move {
            Ok::<_, StoreError>(
                chain_heads::Entity::find_by_id(name.to_string())
                    .one(&self.db)
                    .await
                    .during(OP)?
                    .map_or(
                        ChainHead {
                            last_id: 0,
                            chain_hash: GENESIS.to_string(),
                        },
                        |h| ChainHead {
                            last_id: h.last_id,
                            chain_hash: h.chain_hash,
                        },
                    ),
            )
        };
        Ok(RunManifest {
            version: 1,
            run_id: run.id.clone(),
            trigger: run.trigger.clone(),
            started_at: rules::time_text(run.started_at),
            finished_at: run.finished_at.map(rules::time_text).unwrap_or_default(),
            controls: results
                .into_iter()
                .map(|r| ManifestResult {
                    result_id: r.id,
                    control_id: r.control_id,
                    definition_sha256: r.definition_sha256,
                    status: r.status,
                    row_hash: r.row_hash,
                })
                .collect(),
            evidence: evidence
                .into_iter()
                .map(|(id, probe, sha256, row_hash)| ManifestEvidence {
                    evidence_id: id,
                    probe,
                    sha256,
                    row_hash,
                })
                .collect(),
            evidence_chain: head(EVIDENCE_CHAIN).await?,
            results_chain: head(RESULTS_CHAIN).await?,
        })
    }

    /// Stores a run's signed manifest.
    pub async fn seal_run(
        &self,
        run_id: &str,
        manifest: &RunManifest,
        signature: &str,
        key_id: &str,
    ) -> Result<(), StoreError> {
        let text = String::from_utf8(manifest.to_bytes()).unwrap_or_default();
        runs::Entity::update_many()
            .col_expr(runs::Column::Manifest, Expr::value(text))
            .col_expr(runs::Column::Signature, Expr::value(signature))
            .col_expr(runs::Column::KeyId, Expr::value(key_id))
            .filter(runs::Column::Id.eq(run_id))
            .exec(&self.db)
            .await
            .during("seal run")?;
        Ok(())
    }

    /// A run's manifest as signed, with its signature and key id.
    pub async fn run_seal(
        &self,
        run_id: &str,
    ) -> Result<Option<(String, String, String)>, StoreError> {
        let row = runs::Entity::find_by_id(run_id.to_string())
            .one(&self.db)
            .await
            .during("read run seal")?;
        Ok(row.and_then(|r| Some((r.manifest?, r.signature?, r.key_id?))))
    }

    /// Walks both chains and every run manifest; reports every problem, the first of each
    /// chain naming the row where it breaks. `keys`: the public keys manifests may be signed
    /// with (current and former).
    pub async fn verify(&self, keys: &[rules::PublicKey]) -> Result<IntegrityReport, StoreError> {
        const OP: &str = "verify";
        let mut report = IntegrityReport::default();
        // Evidence chain.
        let mut prev = GENESIS.to_string();
        let mut prev_id: Option<i64> = None;
        let mut after = i64::MIN;
        let mut chains: HashMap<&'static str, (i64, String)> = HashMap::new();
        let mut broken = false;
        loop {
            let rows = evidence::Entity::find()
                .filter(evidence::Column::Id.gt(after))
                .order_by_asc(evidence::Column::Id)
                .limit(PAGE)
                .all(&self.db)
                .await
                .during(OP)?;
            let Some(last) = rows.last() else { break };
            after = last.id;
            for row in &rows {
                report.evidence_rows += 1;
                if broken {
                    continue;
                }
                if let Some(p) = chain_problem(
                    EVIDENCE_CHAIN,
                    row.id,
                    prev_id,
                    &prev,
                    &evidence_row_digest(row),
                    &row.row_hash,
                    &row.chain_hash,
                ) {
                    report.problems.push(p);
                    broken = true;
                    continue;
                }
                let content_sha =
                    rules::sha256_hex(row.content.as_deref().unwrap_or("null").as_bytes());
                if row.content.is_some() && content_sha != row.sha256 {
                    report.problems.push(IntegrityProblem {
                        table: EVIDENCE_CHAIN,
                        id: row.id.to_string(),
                        message: "the content does not match its recorded SHA-256".into(),
                    });
                    broken = true;
                    continue;
                }
                prev = row.chain_hash.clone();
                prev_id = Some(row.id);
            }
        }
        chains.insert(EVIDENCE_CHAIN, (prev_id.unwrap_or(0), prev.clone()));
        // Results chain.
        let mut prev = GENESIS.to_string();
        let mut prev_id: Option<i64> = None;
        let mut after = i64::MIN;
        let mut broken = false;
        loop {
            let rows = control_results::Entity::find()
                .filter(control_results::Column::Id.gt(after))
                .order_by_asc(control_results::Column::Id)
                .limit(PAGE)
                .all(&self.db)
                .await
                .during(OP)?;
            let Some(last) = rows.last() else { break };
            after = last.id;
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            let all_findings = findings::Entity::find()
                .filter(findings::Column::ControlResultId.is_in(ids))
                .order_by_asc(findings::Column::Id)
                .all(&self.db)
                .await
                .during(OP)?;
            let mut by_result: HashMap<i64, Vec<findings::Model>> = HashMap::new();
            for f in all_findings {
                by_result.entry(f.control_result_id).or_default().push(f);
            }
            for row in &rows {
                report.result_rows += 1;
                if broken {
                    continue;
                }
                let f = by_result.remove(&row.id).unwrap_or_default();
                if let Some(p) = chain_problem(
                    RESULTS_CHAIN,
                    row.id,
                    prev_id,
                    &prev,
                    &result_row_digest(row, &f),
                    &row.row_hash,
                    &row.chain_hash,
                ) {
                    report.problems.push(p);
                    broken = true;
                    continue;
                }
                prev = row.chain_hash.clone();
                prev_id = Some(row.id);
            }
        }
        chains.insert(RESULTS_CHAIN, (prev_id.unwrap_or(0), prev.clone()));
        // The heads: the newest rows are still there.
        let heads = chain_heads::Entity::find().all(&self.db).await.during(OP)?;
        for h in heads {
            let name: &'static str = if h.name == EVIDENCE_CHAIN {
                EVIDENCE_CHAIN
            } else {
                RESULTS_CHAIN
            };
            if let Some((last_id, hash)) = chains.get(name)
                && report.problems.iter().all(|p| p.table != name)
                && (h.last_id != *last_id || &h.chain_hash != hash)
            {
                report.problems.push(IntegrityProblem {
                    table: name,
                    id: h.last_id.to_string(),
                    message: format!(
                        "the chain ends at row {last_id}, but its head records row {}: the newest rows were deleted",
                        h.last_id
                    ),
                });
            }
        }
        // Manifests: signed by a known key, matching the rows they name.
        let runs = runs::Entity::find()
            .order_by_asc(runs::Column::StartedAt)
            .all(&self.db)
            .await
            .during(OP)?;
        for run in runs {
            let (Some(text), Some(sig)) = (&run.manifest, &run.signature) else {
                report.runs_unsigned += 1;
                continue;
            };
            report.runs_signed += 1;
            let problem = |message: String| IntegrityProblem {
                table: "runs",
                id: run.id.clone(),
                message,
            };
            if !keys.iter().any(|k| k.verify(text.as_bytes(), sig)) {
                report.problems.push(problem(format!(
                    "the manifest's signature does not verify with any known key (signed by {})",
                    run.key_id.as_deref().unwrap_or("an unknown key")
                )));
                continue;
            }
            let Ok(manifest) = serde_json::from_str::<RunManifest>(text) else {
                report
                    .problems
                    .push(problem("the manifest is not readable".into()));
                continue;
            };
            for r in &manifest.controls {
                let row = control_results::Entity::find_by_id(r.result_id)
                    .select_only()
                    .column(control_results::Column::RowHash)
                    .into_tuple::<String>()
                    .one(&self.db)
                    .await
                    .during(OP)?;
                match row {
                    None => report.problems.push(problem(format!(
                        "result row {} of {} was deleted",
                        r.result_id, r.control_id
                    ))),
                    Some(h) if h != r.row_hash => report.problems.push(problem(format!(
                        "result row {} of {} differs from what was signed",
                        r.result_id, r.control_id
                    ))),
                    Some(_) => {}
                }
            }
            for e in &manifest.evidence {
                let row = evidence::Entity::find_by_id(e.evidence_id)
                    .select_only()
                    .column(evidence::Column::RowHash)
                    .into_tuple::<String>()
                    .one(&self.db)
                    .await
                    .during(OP)?;
                match row {
                    None => report.problems.push(problem(format!(
                        "evidence row {} ({}) was deleted",
                        e.evidence_id, e.probe
                    ))),
                    Some(h) if h != e.row_hash => report.problems.push(problem(format!(
                        "evidence row {} ({}) differs from what was signed",
                        e.evidence_id, e.probe
                    ))),
                    Some(_) => {}
                }
            }
            for (name, head) in [
                (EVIDENCE_CHAIN, &manifest.evidence_chain),
                (RESULTS_CHAIN, &manifest.results_chain),
            ] {
                if head.last_id == 0 {
                    continue;
                }
                let stored: Option<String> = if name == EVIDENCE_CHAIN {
                    evidence::Entity::find_by_id(head.last_id)
                        .select_only()
                        .column(evidence::Column::ChainHash)
                        .into_tuple()
                        .one(&self.db)
                        .await
                        .during(OP)?
                } else {
                    control_results::Entity::find_by_id(head.last_id)
                        .select_only()
                        .column(control_results::Column::ChainHash)
                        .into_tuple()
                        .one(&self.db)
                        .await
                        .during(OP)?
                };
                if stored.as_deref() != Some(head.chain_hash.as_str()) {
                    report.problems.push(problem(format!(
                        "{name} row {} was part of the signed chain and is gone or changed",
                        head.last_id
                    )));
                }
            }
        }
        Ok(report)
    }
}

/// The first thing wrong with a row of a chain, if any.
fn chain_problem(
    table: &'static str,
    id: i64,
    prev_id: Option<i64>,
    prev_chain: &str,
    digest: &str,
    row_hash: &str,
    chain_hash: &str,
) -> Option<IntegrityProblem> {
    let problem = |message: String| {
        Some(IntegrityProblem {
            table,
            id: id.to_string(),
            message,
        })
    };
    if row_hash.is_empty() {
        return problem(
            "the row is not sealed (no digest): it was inserted outside Trellis".into(),
        );
    }
    if digest != row_hash {
        return problem("the row was edited: its content does not match its digest".into());
    }
    if rules::chain(prev_chain, row_hash) != chain_hash {
        let after = prev_id.map_or_else(
            || "the start of the chain".to_string(),
            |p| format!("row {p}"),
        );
        return problem(format!(
            "the chain breaks between {after} and this row: a row between them was deleted, or rows were reordered"
        ));
    }
    None
}
