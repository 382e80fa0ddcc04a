//! Persistence: runs, evidence, control results and findings, in SQLite or PostgreSQL.
//!
//! This module is the only one that talks to the database (through SeaORM). Everything it
//! returns is plain data from [`crate::model`] or the plain structs defined here, so no SeaORM
//! type leaks out.
//!
//! Conventions shared by both backends:
//! - timestamps are stored with **microsecond** precision (PostgreSQL's); finer input is
//!   truncated on write, so what is read back is exactly what was stored on either backend.
//!   On SQLite they are RFC 3339 text in UTC, which sorts chronologically as text;
//! - JSON documents (checks, finding counts, evidence content, finding `actual`) are stored as
//!   serialized text;
//! - every multi-row write is one transaction (on SQLite an `IMMEDIATE` one, so concurrent
//!   writers wait on the busy timeout instead of failing).

mod access;
mod dashboard;
mod entities;
mod export;
mod health;
mod integrity;
mod notify;
mod queue;
mod rollup;
mod signin;
mod sso;
mod staff;
mod subscribers;
#[doc(hidden)]
pub mod testing;
mod validators;
mod visitors;

pub use access::{ClientInfo, DecideError, MIN_ID_PREFIX};
pub use dashboard::{
    DatedFinding, EvidenceMeta, FindingChanges, FindingsAt, ManagedError, ManagedException,
    ManagedState, ResultDetail, finding_changes,
};
pub use export::{Evaluation, ExportResult, FindingRow, FindingsPage, PeriodResult, SealedRun};
pub use health::Readiness;
pub use integrity::{IntegrityProblem, IntegrityReport};
pub use notify::{Batch, BatchEnd, DeliveryRow, FailedDelivery, NotifyOverview};
pub use queue::{
    CancelOutcome, ClaimedUnit, Closable, Enqueued, Lease, MAX_ATTEMPTS, QueueStats, SlotClaim,
    UnitEnd, UnitRow,
};
pub use rollup::ControlDays;
pub use signin::{Attempt, Gate, LoginLimits, NewSession};
pub use sso::{NO_PASSWORD, SsoLogin, SsoOutcome, SsoSignIn};
pub use staff::{Actor, ApiToken, AuditEntry, Credentials, Session, User, UserError};
pub use subscribers::{Subscribed, Subscriber};
pub use visitors::VisitCount;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use migration::{Migrator, MigratorTrait};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    AccessMode,
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbErr, EntityTrait, FromQueryResult, IsolationLevel, QueryFilter,
    QueryOrder, QuerySelect, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait,
};
use serde::Serialize;

use crate::config::redact_url;
use crate::model::{
    ControlOutcome, Evidence, LatestResult, NewEvidence, RunState, Status, Trigger,
};

use entities::{control_results, evidence, findings, runs};

/// How long a SQLite connection waits for another writer's lock before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an operation waits for a pooled connection (and `connect` for the first one).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections in the pool for a SQLite file (WAL: many readers, one writer at a time).
const SQLITE_MAX_CONNECTIONS: u32 = 4;

/// Connections in the pool for PostgreSQL.
const POSTGRES_MAX_CONNECTIONS: u32 = 8;

/// Upper bound on bind parameters in one statement. SQLite's default limit
/// (`SQLITE_MAX_VARIABLE_NUMBER`, 32 766 since 3.32; SQLite is bundled) is the lower of the two
/// backends (PostgreSQL allows 65 535).
const MAX_BIND_PARAMS: usize = 32_766;

/// Columns bound per row when inserting findings (all but `id`).
const FINDING_COLUMNS: usize = 8;

/// Most findings inserted by one statement (a power of two, see [`findings_per_insert`]).
const FINDINGS_PER_INSERT: usize = 256;
const _: () = assert!(FINDINGS_PER_INSERT * FINDING_COLUMNS <= MAX_BIND_PARAMS);
const _: () = assert!(FINDINGS_PER_INSERT.is_power_of_two());

/// How many findings the next insert takes when `left` (> 0) are still to insert: as many as
/// a statement takes, then the largest power of two left. A statement's text depends on its
/// row count only, and each connection keeps the statements it prepared (SQLite's are large
/// for hundreds of bound parameters): so every run uses the same nine statements instead of
/// one more per control, which made a stored run of 10,000 people ~130 MiB larger.
fn findings_per_insert(left: usize) -> usize {
    if left >= FINDINGS_PER_INSERT {
        FINDINGS_PER_INSERT
    } else {
        1 << left.max(1).ilog2()
    }
}

/// A database error. Opaque on purpose: callers see its message, not the driver's types.
#[derive(Debug)]
pub struct DbError(DbErr);

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Errors of the store. Every message is complete on its own (it includes the underlying
/// error), so none of them report a `source()`: printing the chain (`{:#}`) would repeat it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is neither `sqlite:` nor `postgres://`. The URL is redacted.
    #[error(
        "unsupported database url {url}: expected sqlite://PATH, sqlite::memory: or postgres://"
    )]
    UnsupportedUrl { url: String },
    /// The URL is redacted, and so is the driver's message (which may quote the URL). The
    /// driver error is kept as text only, so no error chain can print the password.
    #[error("cannot connect to database {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("cannot migrate the database schema: {0}")]
    Migrate(DbError),
    /// A query failed; `op` says what the store was doing (`record result`, `list runs`, …).
    #[error("cannot {op}: {error}")]
    Query { op: &'static str, error: DbError },
    #[error("invalid database name {0:?}: expected [a-z0-9_]+")]
    InvalidDatabaseName(String),
    #[error("run {0} not found")]
    RunNotFound(String),
    /// A run is closed (and signed) once; nothing is added to it afterwards.
    #[error("run {run} is {state} already: nothing more is recorded in a closed run")]
    RunClosed { run: String, state: String },
    /// A queued run has this control's result already (stored by another instance).
    #[error("run {run} has a result of {control_id} already: a control is evaluated once per run")]
    DuplicateResult { run: String, control_id: String },
    #[error(
        "control {control_id}: check {check} refers to evidence index {index}, \
         but the run stored {available} evidence item(s)"
    )]
    EvidenceIndex {
        control_id: String,
        check: usize,
        index: usize,
        available: usize,
    },
    #[error("{what} is too large to store: {value}")]
    OutOfRange { what: &'static str, value: usize },
    #[error("cannot serialize {what}: {error}")]
    Serialize {
        what: &'static str,
        error: serde_json::Error,
    },
    /// A stored row cannot be read back (unknown status, malformed JSON, …).
    #[error("corrupt {table} row {id}: {detail}")]
    Corrupt {
        table: &'static str,
        id: String,
        detail: String,
    },
}

/// Adds what the store was doing to a database error.
trait QueryContext<T> {
    fn during(self, op: &'static str) -> Result<T, StoreError>;
}

impl<T> QueryContext<T> for Result<T, DbErr> {
    fn during(self, op: &'static str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Query {
            op,
            error: DbError(e),
        })
    }
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub id: String,
    pub trigger: Trigger,
    pub state: RunState,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub controls_total: usize,
    pub controls_done: usize,
    /// Collections planned (once the run has planned them) and stored so far.
    pub collections_total: Option<usize>,
    pub collections_done: usize,
    pub error: Option<String>,
    /// Who asked for this running run to be cancelled, if anyone did.
    pub cancel_requested_by: Option<String>,
}

/// A finding as stored, with the keys tying it to its result, run and control.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredFinding {
    pub id: i64,
    pub control_result_id: i64,
    pub run_id: String,
    pub control_id: String,
    /// Index of the check (within its control) that produced this finding.
    pub check: usize,
    pub resource: String,
    pub status: Status,
    pub message: String,
    pub actual: crate::model::RawJson,
}

impl StoredFinding {
    /// The finding as the evaluator produced it.
    pub fn into_finding(self) -> crate::model::Finding {
        crate::model::Finding {
            check: self.check,
            resource: self.resource,
            status: self.status,
            message: self.message,
            actual: self.actual,
        }
    }
}

/// The evaluations of every control since some time: `(control id, [(evaluated_at, status)]
/// in time order)`, controls sorted by id.
pub type ResultHistory = Vec<crate::model::ControlHistory>;

/// Every control id with results, as a subquery: found by skipping through the index on
/// `control_results (control_id, evaluated_at)`, one seek per control (`SELECT DISTINCT`
/// would read every entry of the index: 644,000 for a year of hourly runs of 73 controls).
macro_rules! result_control_ids {
    () => {
        "(WITH RECURSIVE ids(control_id) AS ( \
           SELECT MIN(control_id) FROM control_results \
           UNION ALL \
           SELECT (SELECT MIN(m.control_id) FROM control_results m \
                   WHERE m.control_id > ids.control_id) \
           FROM ids WHERE ids.control_id IS NOT NULL) \
         SELECT control_id FROM ids WHERE control_id IS NOT NULL)"
    };
}

/// The id of every control's newest result (ties on `evaluated_at` go to the last stored): one
/// index lookup per control id on `control_results (control_id, evaluated_at)`.
const NEWEST_RESULT_IDS: &str = concat!(
    "SELECT (SELECT n.id FROM control_results n \
       WHERE n.control_id = c.control_id \
       ORDER BY n.evaluated_at DESC, n.id DESC LIMIT 1) \
     FROM ",
    result_control_ids!(),
    " c"
);

/// Per control id, what backed its newest result (see [`Store::latest_basis`]).
pub type ResultBasis = BTreeMap<String, Vec<crate::model::CheckBasis>>;

/// Handle on the database. Cheap to clone: clones share one connection pool, the in-process
/// change counter and the history kept for the overview.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    backend: &'static str,
    /// Bumped whenever this process stores a result, so readers (the live trust page) can
    /// tell without asking the database.
    changes: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    /// The newest history read for every control (see [`Store::history_days`]).
    history: std::sync::Arc<rollup::HistoryCache>,
}

impl fmt::Debug for Store {
    // The pool's own Debug output may include connection options (a password): keep it out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// How a process reads the database (see [`Store::connect_for_bulk_reads`]).
#[derive(Debug, Clone, Copy)]
enum Reads {
    Few,
    Bulk,
}

impl Store {
    /// Connects, creates the SQLite file if needed (URLs like `sqlite://trellis.db?mode=rwc`,
    /// `sqlite::memory:`), enables WAL + foreign keys + a busy timeout on SQLite, runs all
    /// migrations. `postgres://` URLs use PostgreSQL.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::connect_for(url, Reads::Few).await
    }

    /// [`Store::connect`] for a process that reads much of the database once and exits
    /// (`trellis export`): on SQLite, pages are read through a memory map and each connection
    /// keeps a larger cache. A long-lived process (`serve`, whose scheduler writes runs) and
    /// `check` use [`Store::connect`], whose connections keep SQLite's pages in a small cache
    /// (the operating system's file cache holds the rest, outside the process).
    pub async fn connect_for_bulk_reads(url: &str) -> Result<Store, StoreError> {
        Store::connect_for(url, Reads::Bulk).await
    }

    async fn connect_for(url: &str, reads: Reads) -> Result<Store, StoreError> {
        let backend = backend_of(url).ok_or_else(|| StoreError::UnsupportedUrl {
            url: redact_url(url),
        })?;
        let mut options = ConnectOptions::new(url);
        // Also bounds the first connection: an unreachable server fails `connect` after it.
        options.sqlx_logging(false).acquire_timeout(ACQUIRE_TIMEOUT);
        if backend == "sqlite" {
            let in_memory = is_sqlite_memory(url);
            options.map_sqlx_sqlite_opts(move |o| {
                let o = o
                    .foreign_keys(true)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .create_if_missing(true);
                if in_memory {
                    return o;
                }
                let o = o
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal);
                match reads {
                    // 1 MiB of pages per connection (256 pages: the tables' and indexes'
                    // upper levels): a stored run's writes touch most pages once or twice and
                    // the operating system's file cache holds the rest, so a larger cache only
                    // grows the process (4 MiB a connection held 17 MB at the 4x benchmark's
                    // peak).
                    Reads::Few => o.pragma("cache_size", "-1024"),
                    // Reads of a year of results go through memory-mapped pages and a larger
                    // cache instead of a syscall per page.
                    Reads::Bulk => o
                        .pragma("mmap_size", "268435456")
                        .pragma("cache_size", "-32768"),
                }
            });
            if in_memory {
                // An in-memory database lives as long as its connection: keep exactly one,
                // forever.
                options
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
            } else {
                options.max_connections(SQLITE_MAX_CONNECTIONS);
            }
        } else {
            options.max_connections(POSTGRES_MAX_CONNECTIONS);
        }
        let db = Database::connect(options)
            .await
            .map_err(|e| connect_error(url, &e))?;
        Migrator::up(&db, None)
            .await
            .map_err(|e| StoreError::Migrate(DbError(e)))?;
        tracing::debug!(backend, url = %redact_url(url), "database ready");
        let store = Store {
            db,
            backend,
            changes: std::sync::Arc::new(tokio::sync::watch::Sender::new(0)),
            history: std::sync::Arc::default(),
        };
        if store.catch_up_rollup().await? {
            tracing::info!("history roll-up brought up to date with the stored results");
        }
        // Rows stored before the hash chains existed are chained once, in id order.
        let sealed = store.seal_unchained_rows().await?;
        if sealed > 0 {
            tracing::info!(
                rows = sealed,
                "sealed rows stored before hash chains existed"
            );
        }
        Ok(store)
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        self.backend
    }

    /// Starts a write transaction (`BEGIN IMMEDIATE` on SQLite, so the write lock is taken
    /// up front and waits on the busy timeout rather than failing mid-transaction).
    async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        self.db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
    }

    /// Starts a read transaction that sees one snapshot of the database throughout:
    /// `REPEATABLE READ`, read only, on PostgreSQL; on SQLite every transaction does (from its
    /// first read).
    async fn begin_snapshot(&self) -> Result<DatabaseTransaction, DbErr> {
        let options = if self.backend == "postgres" {
            TransactionOptions {
                isolation_level: Some(IsolationLevel::RepeatableRead),
                access_mode: Some(AccessMode::ReadOnly),
                ..TransactionOptions::default()
            }
        } else {
            TransactionOptions::default()
        };
        self.db.begin_with_options(options).await
    }

    /// Records the start of a run; returns its id (a UUID v7, so ids sort by creation time).
    pub async fn begin_run(
        &self,
        trigger: Trigger,
        controls_total: usize,
        started_at: DateTime<Utc>,
    ) -> Result<String, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let row = new_run_row(&id, trigger, controls_total, started_at)?;
        runs::Entity::insert(row)
            .exec_without_returning(&self.db)
            .await
            .during("begin run")?;
        Ok(id)
    }

    /// Records how many collections a running run planned (its progress while collecting).
    pub async fn plan_run(&self, run_id: &str, collections: usize) -> Result<(), StoreError> {
        const OP: &str = "plan run";
        runs::Entity::update_many()
            .col_expr(
                runs::Column::CollectionsTotal,
                Expr::value(to_i32("collections_total", collections)?),
            )
            .filter(runs::Column::Id.eq(run_id))
            .filter(runs::Column::State.eq(RunState::Running.as_str()))
            .exec(&self.db)
            .await
            .during(OP)?;
        Ok(())
    }

    /// Stores a run's evidence (one row each), returns their ids in the same order, and counts
    /// them in the run's `collections_done`. Computes nothing: `Evidence.sha256` is stored as
    /// given.
    pub async fn record_evidence(
        &self,
        run_id: &str,
        evidence: Vec<NewEvidence>,
    ) -> Result<Vec<i64>, StoreError> {
        if evidence.is_empty() {
            return Ok(Vec::new());
        }
        const OP: &str = "record evidence";
        let backend = self.db.get_database_backend();
        let txn = self.begin_write().await.during(OP)?;
        ensure_run_is_running(&txn, run_id, OP).await?;
        // The chain's head is locked first, so ids are allocated in chain order.
        let mut head = integrity::lock_head(&txn, integrity::EVIDENCE_CHAIN, OP).await?;
        // One row at a time: the only portable way to learn each generated id. A run's
        // evidence list is short (one item per distinct probe call).
        let mut ids = Vec::with_capacity(evidence.len());
        for item in evidence {
            // Stored as the text the probe wrote (and the runner hashed); `null` as no content.
            let content = (!item.content.is_null()).then(|| item.content.into_string());
            let content_sha256 =
                crate::integrity::sha256_hex(content.as_deref().unwrap_or_default().as_bytes());
            let collected_at = db_time(item.collected_at);
            // Written with the text moved into the statement: an entity insert would copy a
            // collection's evidence (tens of MB at scale) twice more on its way to the driver.
            // The row hashes are set by the chain below, as for every row.
            let row = txn
                .query_one_raw(Statement::from_sql_and_values(
                    backend,
                    "INSERT INTO evidence \
                       (run_id, probe, params, collected_at, sha256, content, error, row_hash, \
                        chain_hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, '', '') RETURNING id",
                    [
                        run_id.into(),
                        item.probe.as_str().into(),
                        item.params.as_str().into(),
                        collected_at.into(),
                        item.sha256.into(),
                        content.into(),
                        item.error.clone().into(),
                    ],
                ))
                .await
                .during(OP)?;
            let id = row
                .ok_or(DbErr::RecordNotInserted)
                .and_then(|row| row.try_get_by_index::<i64>(0))
                .during(OP)?;
            let digest = crate::integrity::evidence_digest(
                id,
                run_id,
                &item.probe,
                &item.params,
                collected_at,
                &content_sha256,
                item.error.as_deref(),
            );
            head =
                integrity::append(&txn, &head, id, &digest, integrity::EVIDENCE_CHAIN, OP).await?;
            ids.push(id);
        }
        integrity::save_head(&txn, integrity::EVIDENCE_CHAIN, &head, OP).await?;
        runs::Entity::update_many()
            .col_expr(
                runs::Column::CollectionsDone,
                Expr::col(runs::Column::CollectionsDone).add(to_i32("evidence", ids.len())?),
            )
            .filter(runs::Column::Id.eq(run_id))
            .exec(&txn)
            .await
            .during(OP)?;
        txn.commit().await.during(OP)?;
        Ok(ids)
    }

    /// Stores one control's outcome in one transaction: the `control_results` row, all its
    /// findings (batch inserts sized to the bind-parameter limit), and `runs.controls_done + 1`.
    ///
    /// `evidence_ids[i]` is the stored id of the run's evidence index `i` (as returned by
    /// [`Store::record_evidence`]); the result keeps the ids of the evidence its checks read,
    /// in evidence-index order.
    pub async fn record_result(
        &self,
        run_id: &str,
        outcome: &ControlOutcome,
        evidence_ids: &[i64],
    ) -> Result<(), StoreError> {
        // Everything that can fail without the database is done before the transaction.
        let mut used = BTreeSet::new();
        for (check, c) in outcome.checks.iter().enumerate() {
            if let Some(index) = c.evidence {
                if index >= evidence_ids.len() {
                    return Err(StoreError::EvidenceIndex {
                        control_id: outcome.control_id.clone(),
                        check,
                        index,
                        available: evidence_ids.len(),
                    });
                }
                used.insert(index);
            }
        }
        let used_ids: Vec<i64> = used.into_iter().map(|i| evidence_ids[i]).collect();
        let mut counts: BTreeMap<&str, usize> =
            Status::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        for f in &outcome.findings {
            *counts.entry(f.status.as_str()).or_default() += 1;
        }
        let result_row = control_results::ActiveModel {
            id: NotSet,
            run_id: Set(run_id.to_string()),
            control_id: Set(outcome.control_id.clone()),
            status: Set(outcome.status.as_str().to_string()),
            summary: Set(outcome.summary.clone()),
            evaluated_at: Set(db_time(outcome.evaluated_at)),
            definition_sha256: Set(outcome.definition_sha256.clone()),
            checks: Set(to_json("checks", &outcome.checks)?),
            evidence_ids: Set(to_json("evidence ids", &used_ids)?),
            finding_counts: Set(to_json("finding counts", &counts)?),
            exceptions: Set(to_json("exceptions", &outcome.exceptions)?),
            row_hash: Set(String::new()),
            chain_hash: Set(String::new()),
        };
        // Findings are written a chunk at a time once the result's id is known; their check
        // indexes are checked here, before the transaction.
        for f in &outcome.findings {
            to_i32("finding check index", f.check)?;
        }

        const OP: &str = "record result";
        let txn = self.begin_write().await.during(OP)?;
        // The chain's head is locked first, so ids are allocated in chain order.
        let head = integrity::lock_head(&txn, integrity::RESULTS_CHAIN, OP).await?;
        let updated = runs::Entity::update_many()
            .col_expr(
                runs::Column::ControlsDone,
                Expr::col(runs::Column::ControlsDone).add(1),
            )
            .filter(runs::Column::Id.eq(run_id))
            .filter(runs::Column::State.eq(RunState::Running.as_str()))
            .exec(&txn)
            .await
            .during(OP)?;
        if updated.rows_affected == 0 {
            ensure_run_is_running(&txn, run_id, OP).await?;
            return Err(StoreError::RunNotFound(run_id.to_string()));
        }
        // A queued run evaluates each control once, whichever instance evaluates it: an
        // instance that lost its lease without noticing cannot add a second result. (Checked
        // under the results chain's lock, which every result insert holds.)
        if queue::has_result(&txn, run_id, &outcome.control_id, OP).await? {
            return Err(StoreError::DuplicateResult {
                run: run_id.to_string(),
                control_id: outcome.control_id.clone(),
            });
        }
        let fields = result_row.clone();
        let result_id = control_results::Entity::insert(result_row)
            .exec(&txn)
            .await
            .during(OP)?
            .last_insert_id;
        // The findings, a chunk at a time (a control's findings are never all rows at once),
        // and the digest of the findings as they are stored.
        let mut findings_digest = crate::integrity::FindingsDigest::default();
        let mut left = outcome.findings.len();
        let mut findings = outcome.findings.iter();
        while left > 0 {
            let take = findings_per_insert(left);
            left -= take;
            let mut chunk = Vec::with_capacity(take);
            for f in findings.by_ref().take(take) {
                let row = findings::ActiveModel {
                    id: NotSet,
                    control_result_id: Set(result_id),
                    run_id: Set(run_id.to_string()),
                    control_id: Set(outcome.control_id.clone()),
                    check_index: Set(to_i32("finding check index", f.check)?),
                    resource: Set(f.resource.clone()),
                    status: Set(f.status.as_str().to_string()),
                    message: Set(f.message.clone()),
                    actual: Set(f.actual.as_str().to_owned()),
                };
                findings_digest.add(&crate::integrity::FindingFields {
                    check: *row.check_index.as_ref(),
                    resource: row.resource.as_ref(),
                    status: row.status.as_ref(),
                    message: row.message.as_ref(),
                    actual: row.actual.as_ref(),
                });
                chunk.push(row);
            }
            findings::Entity::insert_many(chunk)
                .exec_without_returning(&txn)
                .await
                .during(OP)?;
        }
        let findings_digest = findings_digest.finish();
        let digest = crate::integrity::result_digest(&crate::integrity::ResultFields {
            id: result_id,
            run_id,
            control_id: fields.control_id.as_ref(),
            status: fields.status.as_ref(),
            summary: fields.summary.as_ref(),
            evaluated_at: *fields.evaluated_at.as_ref(),
            definition_sha256: fields.definition_sha256.as_ref(),
            checks: fields.checks.as_ref(),
            evidence_ids: fields.evidence_ids.as_ref(),
            finding_counts: fields.finding_counts.as_ref(),
            exceptions: fields.exceptions.as_ref(),
            findings_digest: &findings_digest,
        });
        let head = integrity::append(
            &txn,
            &head,
            result_id,
            &digest,
            integrity::RESULTS_CHAIN,
            OP,
        )
        .await?;
        integrity::save_head(&txn, integrity::RESULTS_CHAIN, &head, OP).await?;
        rollup::record(
            &txn,
            &outcome.control_id,
            db_time(outcome.evaluated_at),
            outcome.status,
            OP,
        )
        .await?;
        // What changed since the control's last result, as notification events: written
        // with the result or not at all.
        notify::record_transitions(&txn, run_id, outcome, Utc::now().timestamp_millis(), OP)
            .await?;
        txn.commit().await.during(OP)?;
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Watches the results this process stores: the value changes after each one.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// A number that changes whenever any process stores a result (the newest result id).
    pub async fn data_version(&self) -> Result<i64, StoreError> {
        let newest = control_results::Entity::find()
            .select_only()
            .column_as(control_results::Column::Id.max(), "max_id")
            .into_tuple::<Option<i64>>()
            .one(&self.db)
            .await
            .during("read data version")?;
        Ok(newest.flatten().unwrap_or(0))
    }

    /// Every evaluation since `since` (inclusive), per control in time order, plus each
    /// control's newest evaluation before it (so the state at `since` is known).
    pub async fn result_history(&self, since: DateTime<Utc>) -> Result<ResultHistory, StoreError> {
        #[derive(FromQueryResult)]
        struct Row {
            id: i64,
            control_id: String,
            status: String,
            evaluated_at: DateTime<Utc>,
        }
        const OP: &str = "read result history";
        let backend = self.db.get_database_backend();
        let recent = control_results::Entity::find()
            .select_only()
            .column(control_results::Column::Id)
            .column(control_results::Column::ControlId)
            .column(control_results::Column::Status)
            .column(control_results::Column::EvaluatedAt)
            .filter(control_results::Column::EvaluatedAt.gte(db_time(since)))
            .into_model::<Row>()
            .all(&self.db)
            .await
            .during(OP)?;
        // The newest result before `since`, per control: one index lookup each.
        let before = Row::find_by_statement(Statement::from_sql_and_values(
            backend,
            concat!(
                "SELECT cr.id, cr.control_id, cr.status, cr.evaluated_at FROM control_results cr \
                 WHERE cr.id IN ( \
                   SELECT (SELECT n.id FROM control_results n \
                            WHERE n.control_id = c.control_id AND n.evaluated_at < $1 \
                            ORDER BY n.evaluated_at DESC, n.id DESC LIMIT 1) \
                   FROM ",
                result_control_ids!(),
                " c)"
            ),
            [db_time(since).into()],
        ))
        .all(&self.db)
        .await
        .during(OP)?;
        let mut by_control: BTreeMap<String, Vec<(DateTime<Utc>, i64, Status)>> = BTreeMap::new();
        for row in before.into_iter().chain(recent) {
            let status = parse_status("control_results", row.id, &row.status)?;
            by_control
                .entry(row.control_id)
                .or_default()
                .push((row.evaluated_at, row.id, status));
        }
        Ok(by_control
            .into_iter()
            .map(|(id, mut points)| {
                points.sort_by_key(|&(t, id, _)| (t, id));
                (id, points.into_iter().map(|(t, _, s)| (t, s)).collect())
            })
            .collect())
    }

    /// Marks a run `completed`, with its end time and the error that ended it early, if any;
    /// signs its manifest with `signer` and appends it to the runs chain, in the same
    /// transaction (a closed run is always signed).
    pub async fn finish_run(
        &self,
        run_id: &str,
        finished_at: DateTime<Utc>,
        error: Option<&str>,
        signer: &crate::integrity::Signer,
    ) -> Result<(), StoreError> {
        self.close_run(
            run_id,
            RunState::Completed,
            finished_at,
            error,
            signer,
            "finish run",
        )
        .await
    }

    /// At startup: every run still `running` that no queue rows carry (a `trellis check`
    /// that died mid-run, or a run from before the queue) becomes `interrupted`,
    /// `finished_at = now`, signed and chained as a finished run is (its manifest lists what
    /// it stored before it stopped). Returns how many. Queued runs are never touched here:
    /// another instance may be working on them; their leases and [`Store::reap`] close them.
    pub async fn mark_interrupted_runs(
        &self,
        now: DateTime<Utc>,
        signer: &crate::integrity::Signer,
    ) -> Result<u64, StoreError> {
        const OP: &str = "mark interrupted runs";
        let running: Vec<String> = runs::Entity::find()
            .select_only()
            .column(runs::Column::Id)
            .filter(runs::Column::State.eq(RunState::Running.as_str()))
            .order_by_asc(runs::Column::StartedAt)
            .order_by_asc(runs::Column::Id)
            .into_tuple()
            .all(&self.db)
            .await
            .during(OP)?;
        let mut marked = 0;
        for id in running {
            if self.is_queued(&id).await? {
                continue;
            }
            match self
                .close_run(&id, RunState::Interrupted, now, None, signer, OP)
                .await
            {
                Ok(()) => marked += 1,
                // Closed by its own process meanwhile.
                Err(StoreError::RunClosed { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(marked)
    }

    /// The newest result of every control (ties on `evaluated_at` go to the last stored), with
    /// `last_success_at`: the `evaluated_at` of its newest result whose status is not `error`.
    /// Sorted by control id.
    ///
    /// Runs in the database: one index lookup per control id on
    /// `control_results (control_id, evaluated_at)`, whatever the number of stored runs.
    pub async fn latest_results(&self) -> Result<Vec<LatestResult>, StoreError> {
        #[derive(FromQueryResult)]
        struct Row {
            id: i64,
            control_id: String,
            status: String,
            summary: String,
            evaluated_at: DateTime<Utc>,
            last_success_at: Option<DateTime<Utc>>,
        }
        let sql = format!(
            "SELECT cr.id, cr.control_id, cr.status, cr.summary, cr.evaluated_at, \
               (SELECT s.evaluated_at FROM control_results s \
                 WHERE s.control_id = cr.control_id AND s.status <> '{error}' \
                 ORDER BY s.evaluated_at DESC LIMIT 1) AS last_success_at \
             FROM control_results cr WHERE cr.id IN ({NEWEST_RESULT_IDS}) \
             ORDER BY cr.control_id",
            error = Status::Error.as_str(),
        );
        let rows =
            Row::find_by_statement(Statement::from_string(self.db.get_database_backend(), sql))
                .all(&self.db)
                .await
                .during("read latest results")?;
        rows.into_iter()
            .map(|r| {
                Ok(LatestResult {
                    status: parse_status("control_results", r.id, &r.status)?,
                    control_id: r.control_id,
                    summary: r.summary,
                    evaluated_at: r.evaluated_at,
                    last_success_at: r.last_success_at,
                })
            })
            .collect()
    }

    /// What backed each control's newest result, check by check (see
    /// [`crate::model::CheckBasis`]): the evidence kinds, and the dates of the records and
    /// documents read. Results stored before bases were recorded give empty lists.
    pub async fn latest_basis(&self) -> Result<ResultBasis, StoreError> {
        #[derive(FromQueryResult)]
        struct Row {
            id: i64,
            control_id: String,
            checks: String,
        }
        #[derive(serde::Deserialize)]
        struct CheckRow {
            #[serde(default)]
            basis: Option<crate::model::CheckBasis>,
        }
        let sql = format!(
            "SELECT cr.id, cr.control_id, cr.checks FROM control_results cr \
             WHERE cr.id IN ({NEWEST_RESULT_IDS})"
        );
        let rows =
            Row::find_by_statement(Statement::from_string(self.db.get_database_backend(), sql))
                .all(&self.db)
                .await
                .during("read latest basis")?;
        rows.into_iter()
            .map(|r| {
                let checks: Vec<CheckRow> = from_json("control_results", r.id, &r.checks)?;
                Ok((
                    r.control_id,
                    checks.into_iter().filter_map(|c| c.basis).collect(),
                ))
            })
            .collect()
    }

    /// Findings of the newest result of a control, in the order they were recorded. Empty
    /// when the control has no stored result.
    pub async fn latest_findings(
        &self,
        control_id: &str,
    ) -> Result<Vec<StoredFinding>, StoreError> {
        const OP: &str = "read latest findings";
        let newest = control_results::Entity::find()
            .select_only()
            .column(control_results::Column::Id)
            .filter(control_results::Column::ControlId.eq(control_id))
            .order_by_desc(control_results::Column::EvaluatedAt)
            .order_by_desc(control_results::Column::Id)
            .limit(1)
            .into_tuple::<i64>()
            .one(&self.db)
            .await
            .during(OP)?;
        let Some(result_id) = newest else {
            return Ok(Vec::new());
        };
        let rows = findings::Entity::find()
            .filter(findings::Column::ControlResultId.eq(result_id))
            .order_by_asc(findings::Column::Id)
            .all(&self.db)
            .await
            .during(OP)?;
        rows.into_iter().map(stored_finding).collect()
    }

    /// The newest `limit` runs, newest first.
    pub async fn runs(&self, limit: u64) -> Result<Vec<RunSummary>, StoreError> {
        let rows = runs::Entity::find()
            .order_by_desc(runs::Column::StartedAt)
            .order_by_desc(runs::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .during("list runs")?;
        rows.into_iter().map(run_summary).collect()
    }

    /// One run, if it exists.
    pub async fn run(&self, id: &str) -> Result<Option<RunSummary>, StoreError> {
        runs::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .during("read run")?
            .map(run_summary)
            .transpose()
    }

    /// One piece of evidence by its stored id. Failed collections come back with
    /// `content: null` and their `error`.
    pub async fn evidence(&self, id: i64) -> Result<Option<Evidence>, StoreError> {
        let Some(row) = evidence::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .during("read evidence")?
        else {
            return Ok(None);
        };
        let content = match &row.content {
            Some(text) => from_json("evidence", row.id, text)?,
            None => serde_json::Value::Null,
        };
        Ok(Some(Evidence {
            probe: row.probe,
            params: row.params,
            collected_at: row.collected_at,
            content,
            sha256: row.sha256,
            error: row.error,
        }))
    }

    /// The newest successful evidence of each of `probes`, one per parameter set (what a
    /// probe reading earlier runs sees: `probes::PreviousEvidence`).
    pub async fn latest_evidence(&self, probes: &[&str]) -> Result<Vec<Evidence>, StoreError> {
        if probes.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Option<i64>> = evidence::Entity::find()
            .select_only()
            .column_as(evidence::Column::Id.max(), "id")
            .filter(evidence::Column::Probe.is_in(probes.iter().copied()))
            .filter(evidence::Column::Content.is_not_null())
            .group_by(evidence::Column::Probe)
            .group_by(evidence::Column::Params)
            .into_tuple::<Option<i64>>()
            .all(&self.db)
            .await
            .during("find the latest evidence")?;
        let ids: Vec<i64> = ids.into_iter().flatten().collect();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_BIND_PARAMS / 2) {
            let rows = evidence::Entity::find()
                .filter(evidence::Column::Id.is_in(chunk.iter().copied()))
                .order_by_asc(evidence::Column::Id)
                .all(&self.db)
                .await
                .during("read the latest evidence")?;
            for row in rows {
                let content = match &row.content {
                    Some(text) => from_json("evidence", row.id, text)?,
                    None => serde_json::Value::Null,
                };
                out.push(Evidence {
                    probe: row.probe,
                    params: row.params,
                    collected_at: row.collected_at,
                    content,
                    sha256: row.sha256,
                    error: row.error,
                });
            }
        }
        Ok(out)
    }
}

/// A connection failure, with the URL's password removed from the URL and from the driver's
/// message.
fn connect_error(url: &str, error: &DbErr) -> StoreError {
    let redacted = redact_url(url);
    let mut detail = error.to_string().replace(url, &redacted);
    if let Some(password) = url_password(url) {
        detail = detail.replace(password, "***");
    }
    StoreError::Connect {
        url: redacted,
        detail,
    }
}

/// The password of a URL's userinfo, if any (`postgres://u:secret@h/db` → `secret`).
fn url_password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let (userinfo, _) = rest.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then_some(password)
}

/// `"sqlite"`, `"postgres"`, or `None` for any other URL.
fn backend_of(url: &str) -> Option<&'static str> {
    if url.starts_with("sqlite:") {
        Some("sqlite")
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some("postgres")
    } else {
        None
    }
}

/// The file of a SQLite database URL (`sqlite://PATH?…`, `sqlite:PATH`), as SQLite opens it
/// (a relative path from the working directory); `None` for an in-memory database or another
/// backend.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    if backend_of(url) != Some("sqlite") || is_sqlite_memory(url) {
        return None;
    }
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty()).then(|| std::path::PathBuf::from(path))
}

/// True for `sqlite::memory:`, `sqlite://:memory:` and `sqlite://...?mode=memory`.
fn is_sqlite_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Fails inside a transaction when the run does not exist (rather than on a foreign key), or
/// is closed already; the run stays running until the transaction ends.
async fn ensure_run_is_running(
    txn: &DatabaseTransaction,
    run_id: &str,
    op: &'static str,
) -> Result<(), StoreError> {
    let mut q = runs::Entity::find_by_id(run_id.to_string())
        .select_only()
        .column(runs::Column::State);
    // Locked, so that the run cannot be closed before this transaction ends (SQLite write
    // transactions are exclusive already).
    if sea_orm::ConnectionTrait::get_database_backend(txn) == sea_orm::DatabaseBackend::Postgres {
        q = q.lock_exclusive();
    }
    let found = q.into_tuple::<String>().one(txn).await.during(op)?;
    match found {
        Some(state) if state == RunState::Running.as_str() => Ok(()),
        Some(state) => Err(StoreError::RunClosed {
            run: run_id.to_string(),
            state,
        }),
        None => Err(StoreError::RunNotFound(run_id.to_string())),
    }
}

/// A timestamp as stored: truncated to microseconds (PostgreSQL's precision) so both
/// backends keep exactly the same value.
/// A new `running` run row.
fn new_run_row(
    id: &str,
    trigger: Trigger,
    controls_total: usize,
    started_at: DateTime<Utc>,
) -> Result<runs::ActiveModel, StoreError> {
    Ok(runs::ActiveModel {
        id: Set(id.to_string()),
        trigger: Set(trigger.as_str().to_string()),
        state: Set(RunState::Running.as_str().to_string()),
        started_at: Set(db_time(started_at)),
        finished_at: Set(None),
        controls_total: Set(to_i32("controls_total", controls_total)?),
        controls_done: Set(0),
        error: Set(None),
        manifest: Set(None),
        signature: Set(None),
        key_id: Set(None),
        row_hash: Set(String::new()),
        chain_hash: Set(String::new()),
        chain_seq: Set(None),
        collections_total: Set(None),
        collections_done: Set(0),
        cancel_requested_at: Set(None),
        cancel_requested_by: Set(None),
    })
}

/// `($1, $2), ($3, $4), …`: the VALUES of a multi-row insert of `rows` rows of `columns`
/// bound values each.
pub(crate) fn values_clause(rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..columns {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(r * columns + c + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

fn db_time(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

fn to_i32(what: &'static str, value: usize) -> Result<i32, StoreError> {
    i32::try_from(value).map_err(|_| StoreError::OutOfRange { what, value })
}

fn to_json<T: Serialize + ?Sized>(what: &'static str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::Serialize { what, error })
}

fn from_json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    id: impl ToString,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        table,
        id: id.to_string(),
        detail: format!("invalid json: {e}"),
    })
}

fn parse_status(table: &'static str, id: impl ToString, s: &str) -> Result<Status, StoreError> {
    Status::parse(s).ok_or_else(|| StoreError::Corrupt {
        table,
        id: id.to_string(),
        detail: format!("unknown status {s:?}"),
    })
}

fn parse_trigger(s: &str) -> Option<Trigger> {
    [
        Trigger::Schedule,
        Trigger::Startup,
        Trigger::Manual,
        Trigger::Cli,
    ]
    .into_iter()
    .find(|t| t.as_str() == s)
}

fn to_usize(table: &'static str, id: &str, what: &str, value: i32) -> Result<usize, StoreError> {
    usize::try_from(value).map_err(|_| StoreError::Corrupt {
        table,
        id: id.to_string(),
        detail: format!("negative {what}: {value}"),
    })
}

pub(crate) fn run_summary(row: runs::Model) -> Result<RunSummary, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        table: "runs",
        id: row.id.clone(),
        detail,
    };
    let trigger = parse_trigger(&row.trigger)
        .ok_or_else(|| corrupt(format!("unknown trigger {:?}", row.trigger)))?;
    let state = RunState::parse(&row.state)
        .ok_or_else(|| corrupt(format!("unknown state {:?}", row.state)))?;
    let controls_total = to_usize("runs", &row.id, "controls_total", row.controls_total)?;
    let controls_done = to_usize("runs", &row.id, "controls_done", row.controls_done)?;
    let collections_total = row
        .collections_total
        .map(|n| to_usize("runs", &row.id, "collections_total", n))
        .transpose()?;
    let collections_done = to_usize("runs", &row.id, "collections_done", row.collections_done)?;
    Ok(RunSummary {
        id: row.id,
        trigger,
        state,
        started_at: row.started_at,
        finished_at: row.finished_at,
        controls_total,
        controls_done,
        collections_total,
        collections_done,
        error: row.error,
        cancel_requested_by: row.cancel_requested_by,
    })
}

pub(crate) fn stored_finding(row: findings::Model) -> Result<StoredFinding, StoreError> {
    let id = row.id.to_string();
    Ok(StoredFinding {
        check: to_usize("findings", &id, "check_index", row.check_index)?,
        status: parse_status("findings", &id, &row.status)?,
        actual: from_json("findings", &id, &row.actual)?,
        id: row.id,
        control_result_id: row.control_result_id,
        run_id: row.run_id,
        control_id: row.control_id,
        resource: row.resource,
        message: row.message,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_clause_numbers_every_bound_value() {
        assert_eq!(super::values_clause(1, 2), "($1, $2)");
        assert_eq!(super::values_clause(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(super::values_clause(0, 3), "");
    }

    #[test]
    fn findings_are_inserted_in_few_statement_sizes() {
        let mut sizes = std::collections::BTreeSet::new();
        for n in 0..3_000 {
            let (mut left, mut inserted) = (n, 0);
            while left > 0 {
                let take = super::findings_per_insert(left);
                assert!(take >= 1 && take <= left, "{n}: {take} of {left}");
                sizes.insert(take);
                left -= take;
                inserted += take;
            }
            assert_eq!(inserted, n);
        }
        assert_eq!(sizes.len(), 9, "{sizes:?}");
    }

    use super::*;

    #[test]
    fn urls_select_the_backend() {
        for (url, expect) in [
            ("sqlite://trellis.db?mode=rwc", Some("sqlite")),
            ("sqlite::memory:", Some("sqlite")),
            ("postgres://u@h/db", Some("postgres")),
            ("postgresql://u@h/db", Some("postgres")),
            ("mysql://u@h/db", None),
            ("trellis.db", None),
        ] {
            assert_eq!(backend_of(url), expect, "{url}");
        }
        assert_eq!(
            sqlite_file("sqlite:///var/lib/trellis/t.db?mode=rwc"),
            Some("/var/lib/trellis/t.db".into())
        );
        assert_eq!(sqlite_file("sqlite://t.db"), Some("t.db".into()));
        assert_eq!(sqlite_file("sqlite:t.db?mode=rwc"), Some("t.db".into()));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("sqlite://t.db?mode=memory"), None);
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
        assert!(is_sqlite_memory("sqlite::memory:"));
        assert!(is_sqlite_memory("sqlite://?mode=memory"));
        assert!(!is_sqlite_memory("sqlite://trellis.db?mode=rwc"));
    }

    #[test]
    fn connect_errors_hide_the_password() {
        let url = "postgres://u:s3cret@h:5432/db";
        let err = DbErr::Conn(sea_orm::RuntimeErr::Internal(format!(
            "cannot parse '{url}' (password s3cret)"
        )));
        let msg = connect_error(url, &err).to_string();
        assert_eq!(
            msg,
            "cannot connect to database postgres://u:***@h:5432/db: Connection Error: \
             cannot parse 'postgres://u:***@h:5432/db' (password ***)"
        );
        assert_eq!(url_password("postgres://u@h/db"), None);
        assert_eq!(url_password("postgres://u:@h/db"), None);
    }

    #[test]
    fn stored_times_keep_microseconds() {
        let t = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(db_time(t).timestamp_subsec_nanos(), 123_456_000);
    }
}
