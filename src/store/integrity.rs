//! The hash chains of evidence and results, run manifests, control definitions, and the
//! verification that walks it all (`trellis verify`).

use std::collections::{HashMap, HashSet, VecDeque};

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
    self as rules, ChainHead, ClosedRun, FindingFields, FindingsDigest, GENESIS, ManifestEvidence,
    ManifestResult, ResultFields, RunChainHead, RunFields, RunManifest, Signer,
};
use crate::model::RunState;

pub(super) const EVIDENCE_CHAIN: &str = "evidence";
pub(super) const RESULTS_CHAIN: &str = "control_results";
pub(super) const RUNS_CHAIN: &str = "runs";
/// The runs chained when runs chains began (`last_id` -1: not yet).
pub(super) const LEGACY_RUNS: &str = "runs_legacy";

/// Runs read per query while verifying (each holds its manifest: tens of KiB).
const RUNS_PAGE: u64 = 100;

/// Rows read per query while verifying (memory stays bounded).
const PAGE: u64 = 500;

/// Evidence content read per query while verifying, at most (one row at least, however big).
const EVIDENCE_PAGE_BYTES: i64 = 32 << 20;

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
                last_key: Set(None),
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

/// The runs chain's head, locked for this transaction (as [`lock_head`]).
async fn lock_runs_head(
    txn: &DatabaseTransaction,
    op: &'static str,
) -> Result<RunChainHead, StoreError> {
    let mut q = chain_heads::Entity::find_by_id(RUNS_CHAIN.to_string());
    if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        q = q.lock_exclusive();
    }
    match q.one(txn).await.during(op)? {
        Some(row) => Ok(run_head(row)),
        None => {
            chain_heads::Entity::insert(chain_heads::ActiveModel {
                name: Set(RUNS_CHAIN.to_string()),
                last_id: Set(0),
                chain_hash: Set(GENESIS.to_string()),
                last_key: Set(None),
            })
            .exec_without_returning(txn)
            .await
            .during(op)?;
            Ok(RunChainHead::genesis())
        }
    }
}

fn run_head(row: chain_heads::Model) -> RunChainHead {
    RunChainHead {
        seq: row.last_id,
        run_id: row.last_key.unwrap_or_default(),
        chain_hash: row.chain_hash,
    }
}

async fn save_runs_head(
    txn: &DatabaseTransaction,
    name: &str,
    head: &RunChainHead,
    op: &'static str,
) -> Result<(), StoreError> {
    chain_heads::Entity::update_many()
        .col_expr(chain_heads::Column::LastId, Expr::value(head.seq))
        .col_expr(
            chain_heads::Column::ChainHash,
            Expr::value(head.chain_hash.clone()),
        )
        .col_expr(
            chain_heads::Column::LastKey,
            Expr::value(Some(head.run_id.clone())),
        )
        .filter(chain_heads::Column::Name.eq(name))
        .exec(txn)
        .await
        .during(op)?;
    Ok(())
}

/// The boundary of the runs chained when runs chains began.
enum Legacy {
    /// Not chained yet (the migration's mark): done at the next connection.
    Pending,
    /// The row is gone.
    Missing,
    At(RunChainHead),
}

async fn legacy_boundary(
    db: &impl ConnectionTrait,
    op: &'static str,
) -> Result<Legacy, StoreError> {
    Ok(
        match chain_heads::Entity::find_by_id(LEGACY_RUNS.to_string())
            .one(db)
            .await
            .during(op)?
        {
            None => Legacy::Missing,
            Some(row) if row.last_id < 0 => Legacy::Pending,
            Some(row) => Legacy::At(run_head(row)),
        },
    )
}

/// A run's row as its digest covers it, at place `chain_seq` of the runs chain.
fn run_fields(row: &runs::Model, chain_seq: i64) -> RunFields<'_> {
    RunFields {
        id: &row.id,
        trigger: &row.trigger,
        state: &row.state,
        started_at: row.started_at,
        finished_at: row.finished_at,
        controls_total: row.controls_total,
        controls_done: row.controls_done,
        error: row.error.as_deref(),
        manifest: row.manifest.as_deref(),
        signature: row.signature.as_deref(),
        key_id: row.key_id.as_deref(),
        chain_seq,
    }
}

/// The version 1 part of a run's manifest, from its stored rows: its results and evidence
/// with their digests, and the evidence and results chains' heads.
async fn manifest_of(
    db: &impl ConnectionTrait,
    run: &runs::Model,
    op: &'static str,
) -> Result<RunManifest, StoreError> {
    let results = control_results::Entity::find()
        .select_only()
        .columns([
            control_results::Column::Id,
            control_results::Column::ControlId,
            control_results::Column::DefinitionSha256,
            control_results::Column::Status,
            control_results::Column::RowHash,
        ])
        .filter(control_results::Column::RunId.eq(run.id.as_str()))
        .order_by_asc(control_results::Column::Id)
        .into_tuple::<(i64, String, String, String, String)>()
        .all(db)
        .await
        .during(op)?;
    let evidence = evidence::Entity::find()
        .select_only()
        .columns([
            evidence::Column::Id,
            evidence::Column::Probe,
            evidence::Column::Sha256,
            evidence::Column::RowHash,
        ])
        .filter(evidence::Column::RunId.eq(run.id.as_str()))
        .order_by_asc(evidence::Column::Id)
        .into_tuple::<(i64, String, String, String)>()
        .all(db)
        .await
        .during(op)?;
    let mut heads = HashMap::new();
    for h in chain_heads::Entity::find()
        .filter(chain_heads::Column::Name.is_in([EVIDENCE_CHAIN, RESULTS_CHAIN]))
        .all(db)
        .await
        .during(op)?
    {
        heads.insert(
            h.name,
            ChainHead {
                last_id: h.last_id,
                chain_hash: h.chain_hash,
            },
        );
    }
    let mut head = |name: &str| {
        heads.remove(name).unwrap_or_else(|| ChainHead {
            last_id: 0,
            chain_hash: GENESIS.to_string(),
        })
    };
    Ok(RunManifest {
        version: 1,
        run_id: run.id.clone(),
        trigger: run.trigger.clone(),
        started_at: rules::time_text(run.started_at),
        finished_at: run.finished_at.map(rules::time_text).unwrap_or_default(),
        controls: results
            .into_iter()
            .map(
                |(result_id, control_id, definition_sha256, status, row_hash)| ManifestResult {
                    result_id,
                    control_id,
                    definition_sha256,
                    status,
                    row_hash,
                },
            )
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
        evidence_chain: head(EVIDENCE_CHAIN),
        results_chain: head(RESULTS_CHAIN),
        closed: None,
    })
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
    let mut digest = FindingsDigest::default();
    for f in findings {
        digest.add(&finding_fields(f));
    }
    result_digest_with(row, &digest.finish())
}

fn finding_fields(f: &findings::Model) -> FindingFields<'_> {
    FindingFields {
        check: f.check_index,
        resource: &f.resource,
        status: &f.status,
        message: &f.message,
        actual: &f.actual,
    }
}

/// A result row's digest, its findings' digest given.
fn result_digest_with(row: &control_results::Model, findings_digest: &str) -> String {
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
        findings_digest,
    })
}

/// The findings of the results being verified, read in pages in `(result, id)` order
/// alongside the results (in id order), so a result's findings are never all held at once.
struct FindingsPages {
    page: u64,
    /// Every finding up to this `(result id, finding id)` has been read (`i64::MAX` as the
    /// finding id: all of that result's, and of those before it).
    after: (i64, i64),
    buf: VecDeque<findings::Model>,
}

impl FindingsPages {
    fn new(page: u64) -> FindingsPages {
        FindingsPages {
            page: page.max(1),
            after: (i64::MIN, i64::MAX),
            buf: VecDeque::new(),
        }
    }

    /// The next finding of result `id`, in stored order; results are asked for in increasing
    /// id order, and `upto` (at least `id`) bounds the results read ahead. Findings of
    /// results never asked for (gone) are skipped.
    async fn next_of(
        &mut self,
        db: &DatabaseTransaction,
        id: i64,
        upto: i64,
        op: &'static str,
    ) -> Result<Option<findings::Model>, StoreError> {
        loop {
            while let Some(f) = self.buf.front() {
                match f.control_result_id.cmp(&id) {
                    std::cmp::Ordering::Less => {
                        self.buf.pop_front();
                    }
                    std::cmp::Ordering::Equal => return Ok(self.buf.pop_front()),
                    std::cmp::Ordering::Greater => return Ok(None),
                }
            }
            if self.after.0 > id || (self.after.0 == id && self.after.1 == i64::MAX) {
                return Ok(None);
            }
            self.read(db, upto, op).await?;
        }
    }

    /// Reads the next page: the rest of the last result read from, then the results after
    /// it up to `upto`.
    async fn read(
        &mut self,
        db: &DatabaseTransaction,
        upto: i64,
        op: &'static str,
    ) -> Result<(), StoreError> {
        let (result, finding) = self.after;
        let mut rows = Vec::new();
        if finding != i64::MAX {
            rows = findings::Entity::find()
                .filter(findings::Column::ControlResultId.eq(result))
                .filter(findings::Column::Id.gt(finding))
                .order_by_asc(findings::Column::Id)
                .limit(self.page)
                .all(db)
                .await
                .during(op)?;
        }
        let wanted = self.page - rows.len() as u64;
        if wanted > 0 {
            rows.extend(
                findings::Entity::find()
                    .filter(findings::Column::ControlResultId.gt(result))
                    .filter(findings::Column::ControlResultId.lte(upto))
                    .order_by_asc(findings::Column::ControlResultId)
                    .order_by_asc(findings::Column::Id)
                    .limit(wanted)
                    .all(db)
                    .await
                    .during(op)?,
            );
        }
        self.after = match rows.last() {
            Some(last) if rows.len() as u64 == self.page => (last.control_result_id, last.id),
            // A short page: nothing more up to `upto`.
            _ => (upto, i64::MAX),
        };
        self.buf.extend(rows);
        Ok(())
    }
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
    /// Runs in the runs chain (closed: completed or interrupted).
    pub runs_closed: u64,
    /// Closed runs with a signed manifest.
    pub runs_signed: u64,
    /// Closed runs without one, closed before runs were chained (within the legacy
    /// boundary): covered by the chain and the boundary every later signature carries.
    pub runs_legacy: u64,
    /// Runs still running (unsigned, not chained yet).
    pub runs_running: u64,
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
        sealed += self.chain_legacy_runs().await?;
        Ok(sealed)
    }

    /// Once, after the migration that began the runs chain: chains the runs closed before
    /// it, in the order they were closed (as they are: some were never signed), and records
    /// where they end (`runs_legacy`), which every run signed later carries in its manifest.
    /// Later, a closed run outside the chain is not chained here: `verify` names it.
    async fn chain_legacy_runs(&self) -> Result<u64, StoreError> {
        const OP: &str = "chain runs closed before runs chains";
        if !matches!(legacy_boundary(&self.db, OP).await?, Legacy::Pending) {
            return Ok(0);
        }
        let mut chained = 0;
        loop {
            let txn = self.begin_write().await.during(OP)?;
            let mut head = lock_runs_head(&txn, OP).await?;
            // Another process may have done it meanwhile.
            if !matches!(legacy_boundary(&txn, OP).await?, Legacy::Pending) {
                txn.commit().await.during(OP)?;
                return Ok(chained);
            }
            let rows = runs::Entity::find()
                .filter(runs::Column::ChainSeq.is_null())
                .filter(runs::Column::State.ne(RunState::Running.as_str()))
                .order_by_asc(runs::Column::FinishedAt)
                .order_by_asc(runs::Column::StartedAt)
                .order_by_asc(runs::Column::Id)
                .limit(RUNS_PAGE)
                .all(&txn)
                .await
                .during(OP)?;
            for row in &rows {
                let seq = head.seq + 1;
                let digest = rules::run_digest(&run_fields(row, seq));
                let chain_hash = rules::chain(&head.chain_hash, &digest);
                runs::Entity::update_many()
                    .col_expr(runs::Column::RowHash, Expr::value(digest))
                    .col_expr(runs::Column::ChainHash, Expr::value(chain_hash.clone()))
                    .col_expr(runs::Column::ChainSeq, Expr::value(seq))
                    .filter(runs::Column::Id.eq(row.id.as_str()))
                    .exec(&txn)
                    .await
                    .during(OP)?;
                head = RunChainHead {
                    seq,
                    run_id: row.id.clone(),
                    chain_hash,
                };
            }
            save_runs_head(&txn, RUNS_CHAIN, &head, OP).await?;
            let last_page = (rows.len() as u64) < RUNS_PAGE;
            if last_page {
                save_runs_head(&txn, LEGACY_RUNS, &head, OP).await?;
            }
            txn.commit().await.during(OP)?;
            chained += rows.len() as u64;
            if last_page {
                if head.seq > 0 {
                    tracing::info!(
                        runs = head.seq,
                        last = %head.run_id,
                        "chained the runs closed before runs were chained (the legacy boundary)"
                    );
                }
                return Ok(chained);
            }
        }
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

    /// Closes a running run as `state` (`completed`, or `interrupted` when the process died
    /// during it), in one transaction: its end and error are written, its manifest is built
    /// from its stored rows and signed, and the run is appended to the runs chain (its head
    /// locked first). Nothing else closes a run: a closed run is always signed and chained.
    pub(super) async fn close_run(
        &self,
        run_id: &str,
        state: RunState,
        finished_at: DateTime<Utc>,
        error: Option<&str>,
        signer: &Signer,
        op: &'static str,
    ) -> Result<(), StoreError> {
        let txn = self.begin_write().await.during(op)?;
        let head = lock_runs_head(&txn, op).await?;
        let run = runs::Entity::find_by_id(run_id.to_string())
            .one(&txn)
            .await
            .during(op)?
            .ok_or_else(|| StoreError::RunNotFound(run_id.to_string()))?;
        if run.state != RunState::Running.as_str() {
            return Err(StoreError::RunClosed {
                run: run_id.to_string(),
                state: run.state,
            });
        }
        let Legacy::At(legacy) = legacy_boundary(&txn, op).await? else {
            return Err(StoreError::Corrupt {
                table: "chain_heads",
                id: LEGACY_RUNS.to_string(),
                detail: "the runs chained when runs chains began are not recorded (they are \
                         when the store connects): the run is left running"
                    .into(),
            });
        };
        let finished_at = db_time(finished_at);
        let mut manifest = manifest_of(&txn, &run, op).await?;
        manifest.version = rules::MANIFEST_VERSION;
        manifest.finished_at = rules::time_text(finished_at);
        manifest.closed = Some(ClosedRun {
            state: state.as_str().to_string(),
            error: error.map(str::to_string),
            controls_total: run.controls_total,
            controls_done: run.controls_done,
            runs_chain: head.clone(),
            legacy,
        });
        let text = serde_json::to_string(&manifest).map_err(|error| StoreError::Serialize {
            what: "run manifest",
            error,
        })?;
        let signature = signer.sign(text.as_bytes());
        let key_id = signer.key_id();
        let seq = head.seq + 1;
        let digest = rules::run_digest(&RunFields {
            id: &run.id,
            trigger: &run.trigger,
            state: state.as_str(),
            started_at: run.started_at,
            finished_at: Some(finished_at),
            controls_total: run.controls_total,
            controls_done: run.controls_done,
            error,
            manifest: Some(&text),
            signature: Some(&signature),
            key_id: Some(&key_id),
            chain_seq: seq,
        });
        let chain_hash = rules::chain(&head.chain_hash, &digest);
        let updated = runs::Entity::update_many()
            .col_expr(runs::Column::State, Expr::value(state.as_str()))
            .col_expr(runs::Column::FinishedAt, Expr::value(finished_at))
            .col_expr(runs::Column::Error, Expr::value(error.map(str::to_string)))
            .col_expr(runs::Column::Manifest, Expr::value(text))
            .col_expr(runs::Column::Signature, Expr::value(signature))
            .col_expr(runs::Column::KeyId, Expr::value(key_id))
            .col_expr(runs::Column::RowHash, Expr::value(digest))
            .col_expr(runs::Column::ChainHash, Expr::value(chain_hash.clone()))
            .col_expr(runs::Column::ChainSeq, Expr::value(seq))
            .filter(runs::Column::Id.eq(run_id))
            .filter(runs::Column::State.eq(RunState::Running.as_str()))
            .exec(&txn)
            .await
            .during(op)?;
        if updated.rows_affected != 1 {
            return Err(StoreError::RunNotFound(run_id.to_string()));
        }
        save_runs_head(
            &txn,
            RUNS_CHAIN,
            &RunChainHead {
                seq,
                run_id: run.id.clone(),
                chain_hash,
            },
            op,
        )
        .await?;
        if state == RunState::Interrupted {
            let event = crate::notify::Event {
                count: usize::try_from(run.controls_total - run.controls_done).unwrap_or(0),
                run_id: Some(run.id.clone()),
                detail: error
                    .unwrap_or("its process stopped before the run ended")
                    .to_string(),
                ..crate::notify::Event::new(crate::notify::EventKind::RunInterrupted, finished_at)
            };
            let key = format!("run_interrupted:{}", run.id);
            super::notify::add_event_in(
                &txn,
                &crate::notify::NewEvent { key, event },
                chrono::Utc::now().timestamp_millis(),
                op,
            )
            .await?;
        }
        txn.commit().await.during(op)?;
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
    /// with (current and former). Reads one snapshot of the database (writes meanwhile do not
    /// move the walk), a page of rows at a time: its memory does not grow with the number of
    /// rows.
    pub async fn verify(&self, keys: &[rules::PublicKey]) -> Result<IntegrityReport, StoreError> {
        self.verify_in_pages(keys, PAGE, EVIDENCE_PAGE_BYTES).await
    }

    /// [`Store::verify`] reading at most `page` rows (evidence, results, findings, runs) per
    /// query, and evidence content of at most `evidence_bytes` (but one row at least).
    pub async fn verify_in_pages(
        &self,
        keys: &[rules::PublicKey],
        page: u64,
        evidence_bytes: i64,
    ) -> Result<IntegrityReport, StoreError> {
        const OP: &str = "verify";
        let page = page.max(1);
        // One snapshot throughout: rows stored meanwhile are not half seen.
        let snapshot = self.begin_snapshot().await.during(OP)?;
        let txn = &snapshot;
        let mut report = IntegrityReport::default();
        // Evidence chain.
        let mut prev = GENESIS.to_string();
        let mut prev_id: Option<i64> = None;
        let mut after = i64::MIN;
        let mut chains: HashMap<&'static str, (i64, String)> = HashMap::new();
        let mut broken = false;
        loop {
            // The next rows' sizes, then as many of them as fit in `evidence_bytes`.
            let sizes: Vec<(i64, Option<i64>)> = evidence::Entity::find()
                .select_only()
                .column(evidence::Column::Id)
                .column_as(Expr::cust("CAST(LENGTH(content) AS BIGINT)"), "size")
                .filter(evidence::Column::Id.gt(after))
                .order_by_asc(evidence::Column::Id)
                .limit(page)
                .into_tuple()
                .all(txn)
                .await
                .during(OP)?;
            let Some(&(first, _)) = sizes.first() else {
                break;
            };
            let mut upto = first;
            let mut total: i64 = 0;
            for &(id, size) in &sizes {
                total = total.saturating_add(size.unwrap_or(0));
                if id != first && total > evidence_bytes {
                    break;
                }
                upto = id;
            }
            let rows = evidence::Entity::find()
                .filter(evidence::Column::Id.gt(after))
                .filter(evidence::Column::Id.lte(upto))
                .order_by_asc(evidence::Column::Id)
                .all(txn)
                .await
                .during(OP)?;
            after = upto;
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
        // Results chain, each result's findings read alongside.
        let mut prev = GENESIS.to_string();
        let mut prev_id: Option<i64> = None;
        let mut after = i64::MIN;
        let mut broken = false;
        let mut findings = FindingsPages::new(page);
        loop {
            let rows = control_results::Entity::find()
                .filter(control_results::Column::Id.gt(after))
                .order_by_asc(control_results::Column::Id)
                .limit(page)
                .all(txn)
                .await
                .during(OP)?;
            let Some(last) = rows.last() else { break };
            after = last.id;
            for row in &rows {
                report.result_rows += 1;
                if broken {
                    continue;
                }
                let mut digest = FindingsDigest::default();
                while let Some(f) = findings.next_of(txn, row.id, after, OP).await? {
                    digest.add(&finding_fields(&f));
                }
                if let Some(p) = chain_problem(
                    RESULTS_CHAIN,
                    row.id,
                    prev_id,
                    &prev,
                    &result_digest_with(row, &digest.finish()),
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
        let heads = chain_heads::Entity::find()
            .filter(chain_heads::Column::Name.is_in([EVIDENCE_CHAIN, RESULTS_CHAIN]))
            .all(txn)
            .await
            .during(OP)?;
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
        // Runs: the chain of closed runs, each signed, each manifest matching its rows.
        self.verify_runs(txn, keys, page.min(RUNS_PAGE), &mut report)
            .await?;
        snapshot.commit().await.during(OP)?;
        Ok(report)
    }

    /// Walks the runs chain in order: every closed run is in it and signed (but those before
    /// the legacy boundary, which may be unsigned), its row as signed, its manifest covering
    /// the chain before it; only a `running` run is outside it and unsigned.
    async fn verify_runs(
        &self,
        txn: &DatabaseTransaction,
        keys: &[rules::PublicKey],
        page: u64,
        report: &mut IntegrityReport,
    ) -> Result<(), StoreError> {
        const OP: &str = "verify";
        let boundary = match legacy_boundary(txn, OP).await? {
            Legacy::At(b) => Some(b),
            Legacy::Pending | Legacy::Missing => {
                report.problems.push(IntegrityProblem {
                    table: "chain_heads",
                    id: LEGACY_RUNS.to_string(),
                    message: "the boundary of the runs chained when runs chains began is not \
                              recorded: it was deleted or reset"
                        .into(),
                });
                None
            }
        };
        let rows_by_run = RowsByRun {
            results: self.count_by_run(txn, RESULTS_CHAIN).await?,
            evidence: self.count_by_run(txn, EVIDENCE_CHAIN).await?,
        };
        let mut all_runs: HashSet<String> = HashSet::new();
        // The chain as computed from the rows (`walked`), and the previous row as stored.
        let mut walked = RunChainHead::genesis();
        let mut previous = RunChainHead::genesis();
        let mut broken = false;
        let mut boundary_found = boundary.as_ref().is_none_or(|b| b.seq == 0);
        let mut after = i64::MIN;
        loop {
            let rows = runs::Entity::find()
                .filter(runs::Column::ChainSeq.gt(after))
                .order_by_asc(runs::Column::ChainSeq)
                .limit(page)
                .all(txn)
                .await
                .during(OP)?;
            let Some(last) = rows.last() else { break };
            after = last.chain_seq.unwrap_or(i64::MAX);
            for run in &rows {
                let seq = run.chain_seq.unwrap_or_default();
                all_runs.insert(run.id.clone());
                report.runs_closed += 1;
                let problem = |message: String| IntegrityProblem {
                    table: "runs",
                    id: run.id.clone(),
                    message,
                };
                if !broken {
                    if let Some(message) = run_chain_problem(run, seq, &walked) {
                        report.problems.push(problem(message));
                        broken = true;
                    } else {
                        walked = RunChainHead {
                            seq,
                            run_id: run.id.clone(),
                            chain_hash: run.chain_hash.clone(),
                        };
                    }
                }
                if run.state == RunState::Running.as_str() {
                    report.problems.push(problem(format!(
                        "it is marked running, but it was closed: it is number {seq} of the runs chain"
                    )));
                }
                if let Some(b) = &boundary
                    && b.seq == seq
                {
                    boundary_found = true;
                    if b.run_id != run.id || b.chain_hash != run.chain_hash {
                        report.problems.push(problem(format!(
                            "the legacy boundary records run {} (number {}) but the chain holds this run there, or holds it changed",
                            b.run_id, b.seq
                        )));
                    }
                }
                self.verify_run_seal(
                    txn,
                    run,
                    seq,
                    keys,
                    &previous,
                    boundary.as_ref(),
                    &rows_by_run,
                    report,
                )
                .await?;
                previous = RunChainHead {
                    seq,
                    run_id: run.id.clone(),
                    chain_hash: run.chain_hash.clone(),
                };
            }
        }
        if let Some(b) = &boundary
            && !boundary_found
        {
            report.problems.push(IntegrityProblem {
                table: "runs",
                id: b.run_id.clone(),
                message: format!(
                    "the legacy boundary is run number {} of the runs chain, which is not there: it was deleted",
                    b.seq
                ),
            });
        }
        // The head: the newest closed runs are still there.
        let head = chain_heads::Entity::find_by_id(RUNS_CHAIN.to_string())
            .one(txn)
            .await
            .during(OP)?
            .map(run_head);
        match head {
            None => report.problems.push(IntegrityProblem {
                table: "chain_heads",
                id: RUNS_CHAIN.to_string(),
                message: "the runs chain's head is missing: it was deleted".into(),
            }),
            Some(h) if !broken && (h.seq != walked.seq || h.chain_hash != walked.chain_hash) => {
                report.problems.push(IntegrityProblem {
                    table: "runs",
                    id: h.run_id.clone(),
                    message: format!(
                        "the runs chain ends at number {}, but its head records this run as number {}: the newest closed runs were deleted",
                        walked.seq, h.seq
                    ),
                });
            }
            Some(_) => {}
        }
        // Outside the chain: only runs still running, unsigned.
        let unchained = runs::Entity::find()
            .select_only()
            .columns([runs::Column::Id, runs::Column::State])
            .column_as(
                Expr::cust("manifest IS NOT NULL OR signature IS NOT NULL"),
                "signed",
            )
            .column_as(Expr::cust("finished_at IS NOT NULL"), "finished")
            .filter(runs::Column::ChainSeq.is_null())
            .order_by_asc(runs::Column::StartedAt)
            .order_by_asc(runs::Column::Id)
            .into_tuple::<(String, String, bool, bool)>()
            .all(txn)
            .await
            .during(OP)?;
        for (id, state, signed, finished) in unchained {
            all_runs.insert(id.clone());
            let message = if state != RunState::Running.as_str() {
                format!(
                    "it is {state} but not in the runs chain{}: a run is chained and signed when it is closed, so it was taken out of the chain (its signature stripped) or inserted outside Trellis",
                    if signed {
                        ""
                    } else {
                        " and has no signed manifest"
                    }
                )
            } else if signed || finished {
                "it is marked running but has an end or a manifest: it was closed, then reopened"
                    .to_string()
            } else {
                report.runs_running += 1;
                continue;
            };
            report.problems.push(IntegrityProblem {
                table: "runs",
                id,
                message,
            });
        }
        // Rows of runs that are gone.
        for (what, counts) in [
            ("result", &rows_by_run.results),
            ("evidence", &rows_by_run.evidence),
        ] {
            let mut gone: Vec<(&String, &u64)> = counts
                .iter()
                .filter(|(run, _)| !all_runs.contains(*run))
                .collect();
            gone.sort();
            for (run, n) in gone {
                report.problems.push(IntegrityProblem {
                    table: "runs",
                    id: run.clone(),
                    message: format!("the run was deleted: {n} {what} row(s) still name it"),
                });
            }
        }
        Ok(())
    }

    /// How many rows of `table` (evidence or results) each run has.
    async fn count_by_run(
        &self,
        txn: &DatabaseTransaction,
        table: &'static str,
    ) -> Result<HashMap<String, u64>, StoreError> {
        const OP: &str = "verify";
        let rows: Vec<(String, i64)> = if table == EVIDENCE_CHAIN {
            evidence::Entity::find()
                .select_only()
                .column(evidence::Column::RunId)
                .column_as(evidence::Column::Id.count(), "n")
                .group_by(evidence::Column::RunId)
                .into_tuple()
                .all(txn)
                .await
                .during(OP)?
        } else {
            control_results::Entity::find()
                .select_only()
                .column(control_results::Column::RunId)
                .column_as(control_results::Column::Id.count(), "n")
                .group_by(control_results::Column::RunId)
                .into_tuple()
                .all(txn)
                .await
                .during(OP)?
        };
        Ok(rows
            .into_iter()
            .map(|(run, n)| (run, u64::try_from(n).unwrap_or_default()))
            .collect())
    }

    /// A chained run's signature: present unless the run is within the legacy boundary,
    /// by a known key, over a manifest that matches the row, the chain before it (`previous`,
    /// as stored), the legacy boundary and the rows it lists.
    #[allow(clippy::too_many_arguments)]
    async fn verify_run_seal(
        &self,
        txn: &DatabaseTransaction,
        run: &runs::Model,
        seq: i64,
        keys: &[rules::PublicKey],
        previous: &RunChainHead,
        boundary: Option<&RunChainHead>,
        rows_by_run: &RowsByRun,
        report: &mut IntegrityReport,
    ) -> Result<(), StoreError> {
        const OP: &str = "verify";
        let problem = |message: String| IntegrityProblem {
            table: "runs",
            id: run.id.clone(),
            message,
        };
        let legacy_seq = boundary.map_or(0, |b| b.seq);
        let (Some(text), Some(sig)) = (&run.manifest, &run.signature) else {
            if seq <= legacy_seq {
                // Closed before runs were signed when closed (e.g. interrupted), and chained
                // with the legacy runs: covered by the chain and the signed boundary only.
                report.runs_legacy += 1;
            } else {
                report.problems.push(problem(format!(
                    "it is {} without a signed manifest: only a running run may lack one (its signature was stripped)",
                    run.state
                )));
            }
            return Ok(());
        };
        report.runs_signed += 1;
        if !keys.iter().any(|k| k.verify(text.as_bytes(), sig)) {
            report.problems.push(problem(format!(
                "the manifest's signature does not verify with any known key (signed by {})",
                run.key_id.as_deref().unwrap_or("an unknown key")
            )));
            return Ok(());
        }
        let Ok(manifest) = serde_json::from_str::<RunManifest>(text) else {
            report
                .problems
                .push(problem("the manifest is not readable".into()));
            return Ok(());
        };
        let differences = rules::run_differences(&manifest, &run_fields(run, seq));
        if !differences.is_empty() {
            report.problems.push(problem(format!(
                "the run differs from its signed manifest: {}",
                differences.join("; ")
            )));
        }
        match &manifest.closed {
            Some(closed) => {
                let signed = &closed.runs_chain;
                if signed != previous {
                    let name = |h: &RunChainHead| {
                        if h.seq == 0 {
                            "the start of the chain".to_string()
                        } else {
                            format!("run {} (number {})", h.run_id, h.seq)
                        }
                    };
                    let message = if signed.run_id == previous.run_id && signed.seq == previous.seq
                    {
                        format!(
                            "the runs chain before it differs from what its manifest signed: {} was changed, or a run before it was",
                            name(previous)
                        )
                    } else {
                        format!(
                            "its manifest signs {} as the run before it in the runs chain, but the chain holds {} there: {} was deleted or taken out of the chain",
                            name(signed),
                            name(previous),
                            if signed.seq == 0 {
                                "a run".to_string()
                            } else {
                                format!("run {}", signed.run_id)
                            }
                        )
                    };
                    report.problems.push(problem(message));
                }
                if let Some(b) = boundary
                    && closed.legacy != *b
                {
                    report.problems.push(problem(format!(
                        "its manifest signs the legacy boundary as number {} of the runs chain, but the store records number {}: the boundary was moved",
                        closed.legacy.seq, b.seq
                    )));
                }
            }
            None if seq > legacy_seq => report.problems.push(problem(
                "it was signed before runs were chained (manifest version 1), but it is chained after the legacy boundary".into(),
            )),
            None => {}
        }
        // The rows it lists are there, as signed, and no other row names the run.
        for (what, listed, stored) in [
            (
                "result",
                manifest.controls.len() as u64,
                rows_by_run.results.get(&run.id).copied().unwrap_or(0),
            ),
            (
                "evidence",
                manifest.evidence.len() as u64,
                rows_by_run.evidence.get(&run.id).copied().unwrap_or(0),
            ),
        ] {
            if stored > listed {
                report.problems.push(problem(format!(
                    "{stored} {what} row(s) name this run, but its manifest lists {listed}: rows were added to it after it was signed"
                )));
            }
        }
        for r in &manifest.controls {
            let row = control_results::Entity::find_by_id(r.result_id)
                .select_only()
                .column(control_results::Column::RowHash)
                .into_tuple::<String>()
                .one(txn)
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
                .one(txn)
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
                    .one(txn)
                    .await
                    .during(OP)?
            } else {
                control_results::Entity::find_by_id(head.last_id)
                    .select_only()
                    .column(control_results::Column::ChainHash)
                    .into_tuple()
                    .one(txn)
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
        Ok(())
    }
}

impl Store {
    /// What someone with database access but without the signing key can do after editing
    /// rows: recompute every digest and chain hash (evidence, results, then the closed runs
    /// in chain order, numbered 1, 2, … again) and the heads. Tests only
    /// ([`super::testing::rewrite_chains`]); signatures cannot be redone this way.
    pub(super) async fn rewrite_chains(&self) -> Result<(), StoreError> {
        const OP: &str = "rewrite chains";
        let txn = self.begin_write().await.during(OP)?;
        let mut head = ChainHead {
            last_id: 0,
            chain_hash: GENESIS.to_string(),
        };
        for row in evidence::Entity::find()
            .order_by_asc(evidence::Column::Id)
            .all(&txn)
            .await
            .during(OP)?
        {
            head = append(
                &txn,
                &head,
                row.id,
                &evidence_row_digest(&row),
                EVIDENCE_CHAIN,
                OP,
            )
            .await?;
        }
        save_head(&txn, EVIDENCE_CHAIN, &head, OP).await?;
        let mut head = ChainHead {
            last_id: 0,
            chain_hash: GENESIS.to_string(),
        };
        for row in control_results::Entity::find()
            .order_by_asc(control_results::Column::Id)
            .all(&txn)
            .await
            .during(OP)?
        {
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
                &result_row_digest(&row, &f),
                RESULTS_CHAIN,
                OP,
            )
            .await?;
        }
        save_head(&txn, RESULTS_CHAIN, &head, OP).await?;
        let mut head = RunChainHead::genesis();
        for row in runs::Entity::find()
            .filter(runs::Column::ChainSeq.is_not_null())
            .order_by_asc(runs::Column::ChainSeq)
            .all(&txn)
            .await
            .during(OP)?
        {
            let seq = head.seq + 1;
            let digest = rules::run_digest(&run_fields(&row, seq));
            let chain_hash = rules::chain(&head.chain_hash, &digest);
            runs::Entity::update_many()
                .col_expr(runs::Column::RowHash, Expr::value(digest))
                .col_expr(runs::Column::ChainHash, Expr::value(chain_hash.clone()))
                .col_expr(runs::Column::ChainSeq, Expr::value(seq))
                .filter(runs::Column::Id.eq(row.id.as_str()))
                .exec(&txn)
                .await
                .during(OP)?;
            head = RunChainHead {
                seq,
                run_id: row.id,
                chain_hash,
            };
        }
        save_runs_head(&txn, RUNS_CHAIN, &head, OP).await?;
        txn.commit().await.during(OP)?;
        Ok(())
    }
}

/// How many result and evidence rows name each run.
struct RowsByRun {
    results: HashMap<String, u64>,
    evidence: HashMap<String, u64>,
}

/// The first thing wrong with a closed run's place in the runs chain, after `walked` (the
/// chain as computed up to the run before it), if any.
fn run_chain_problem(run: &runs::Model, seq: i64, walked: &RunChainHead) -> Option<String> {
    if run.row_hash.is_empty() {
        return Some("the run is not sealed (no digest): it was inserted outside Trellis".into());
    }
    if rules::run_digest(&run_fields(run, seq)) != run.row_hash {
        return Some("the run was edited: its row does not match its digest".into());
    }
    let after = if walked.seq == 0 {
        "the start of the chain".to_string()
    } else {
        format!("run {} (number {})", walked.run_id, walked.seq)
    };
    if seq != walked.seq + 1 {
        return Some(format!(
            "the runs chain goes from {after} to this run, number {seq}: a closed run between them was deleted"
        ));
    }
    if rules::chain(&walked.chain_hash, &run.row_hash) != run.chain_hash {
        return Some(format!(
            "the runs chain breaks between {after} and this run: a run between them was deleted, or runs were reordered"
        ));
    }
    None
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
