//! What `/readyz` and `/metrics` ask the database: whether it answers with every migration
//! applied, and the runs counted by state. Answers are plain types; no message names the
//! database (its URL may hold a password).

use migration::{Migrator, MigratorTrait};
use sea_orm::{FromQueryResult, Statement};

use super::{QueryContext, Store, StoreError};

/// Whether the store can serve: see [`Store::readiness`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// The database answers and its schema is this build's.
    Ready,
    /// The database does not answer (down, unreachable, the pool closed).
    Unreachable,
    /// The database answers but these migrations (by name) are not applied.
    PendingMigrations(Vec<String>),
    /// The database answers but its migration table could not be read or does not match this
    /// build (e.g. a migration applied that this build does not know).
    SchemaUnknown,
}

impl Readiness {
    /// A short reason, safe to show anyone: it never names the database.
    pub fn reason(&self) -> String {
        match self {
            Readiness::Ready => "ready".into(),
            Readiness::Unreachable => "database unreachable".into(),
            Readiness::PendingMigrations(names) => {
                format!("{} migration(s) not applied", names.len())
            }
            Readiness::SchemaUnknown => "database schema could not be checked".into(),
        }
    }
}

impl Store {
    /// Asks the database whether it answers and has every migration of this build applied
    /// (read only: nothing is created). Errors are logged here, without the URL, and
    /// summarised in the answer.
    pub async fn readiness(&self) -> Readiness {
        if let Err(error) = self.db.ping().await {
            tracing::warn!(%error, "readiness: the database does not answer");
            return Readiness::Unreachable;
        }
        match Migrator::get_pending_migrations_read_only(&self.db).await {
            Ok(pending) if pending.is_empty() => Readiness::Ready,
            Ok(pending) => {
                Readiness::PendingMigrations(pending.iter().map(|m| m.name().to_string()).collect())
            }
            Err(error) => {
                tracing::warn!(%error, "readiness: cannot read the applied migrations");
                Readiness::SchemaUnknown
            }
        }
    }

    /// How many runs are stored in each state (`running`, `completed`, `interrupted`…), in
    /// state order.
    pub async fn runs_by_state(&self) -> Result<Vec<(String, u64)>, StoreError> {
        #[derive(FromQueryResult)]
        struct Row {
            state: String,
            n: i64,
        }
        let sql = "SELECT state, COUNT(*) AS n FROM runs GROUP BY state ORDER BY state";
        let rows =
            Row::find_by_statement(Statement::from_string(self.db.get_database_backend(), sql))
                .all(&self.db)
                .await
                .during("count runs by state")?;
        Ok(rows
            .into_iter()
            .map(|r| (r.state, u64::try_from(r.n).unwrap_or(0)))
            .collect())
    }

    /// Closes the connection pool of this store and of every clone of it: later queries fail
    /// (as they would with the database down). For shutdown, and for tests of what a dead
    /// database looks like.
    pub async fn close(&self) {
        if let Err(error) = self.db.close_by_ref().await {
            tracing::warn!(%error, "cannot close the database connections");
        }
    }
}
