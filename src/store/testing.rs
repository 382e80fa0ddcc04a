//! Helpers for tests that need a throw-away PostgreSQL database. Not part of the stable API.
//!
//! They live here so that tests, like the rest of the crate, never touch SeaORM directly.

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};

use super::{QueryContext, StoreError, connect_error};

/// Creates database `name` on the PostgreSQL server of `server_url` (any database URL on that
/// server) and returns the URL of the new database. `name` must be `[a-z0-9_]+`.
pub async fn create_postgres_database(server_url: &str, name: &str) -> Result<String, StoreError> {
    let db = admin_connection(server_url).await?;
    let result = db
        .execute_unprepared(&format!("CREATE DATABASE \"{}\"", checked_name(name)?))
        .await
        .during("create database");
    let _ = db.close().await;
    result?;
    Ok(with_database(server_url, name))
}

/// Drops database `name` (if it exists), closing its remaining connections.
pub async fn drop_postgres_database(server_url: &str, name: &str) -> Result<(), StoreError> {
    let db = admin_connection(server_url).await?;
    let result = db
        .execute_unprepared(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            checked_name(name)?
        ))
        .await
        .during("drop database");
    let _ = db.close().await;
    result.map(|_| ())
}

async fn admin_connection(server_url: &str) -> Result<DatabaseConnection, StoreError> {
    let mut options = ConnectOptions::new(server_url);
    options
        .sqlx_logging(false)
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(10));
    Database::connect(options)
        .await
        .map_err(|e| connect_error(server_url, &e))
}

/// Runs raw SQL on a store's database, as someone with database access could: the tamper
/// tests edit, delete and reorder rows behind the store's back with it.
pub async fn execute_sql(store: &super::Store, sql: &str) -> Result<u64, StoreError> {
    store
        .db
        .execute_unprepared(sql)
        .await
        .during("execute raw sql")
        .map(|r| r.rows_affected())
}

/// Recomputes every digest, chain hash and chain head from the rows as they are, as someone
/// with database access but without the signing key could after editing them (closed runs
/// are numbered 1, 2, … again in their chain order): what is left to catch them is the
/// signatures.
pub async fn rewrite_chains(store: &super::Store) -> Result<(), StoreError> {
    store.rewrite_chains().await
}

/// Stores a manifest and signature on a run as they are, outside the closing transaction
/// (the export benchmark signs generated runs with it).
pub async fn seal_run(
    store: &super::Store,
    manifest: &crate::integrity::RunManifest,
    signature: &str,
    key_id: &str,
) -> Result<(), StoreError> {
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let text = String::from_utf8(manifest.to_bytes()).unwrap_or_default();
    super::entities::runs::Entity::update_many()
        .col_expr(super::entities::runs::Column::Manifest, Expr::value(text))
        .col_expr(
            super::entities::runs::Column::Signature,
            Expr::value(signature),
        )
        .col_expr(super::entities::runs::Column::KeyId, Expr::value(key_id))
        .filter(super::entities::runs::Column::Id.eq(manifest.run_id.as_str()))
        .exec(&store.db)
        .await
        .during("seal run")?;
    Ok(())
}

fn checked_name(name: &str) -> Result<&str, StoreError> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(name)
    } else {
        Err(StoreError::InvalidDatabaseName(name.to_string()))
    }
}

/// `server_url` with its database path replaced by `name` (query string kept).
fn with_database(server_url: &str, name: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server_url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// Every row of every table as text (SQLite: `quote()` of each column; PostgreSQL: the row's
/// text form): what someone reading the database would see, for tests that check what is not
/// stored.
pub async fn dump_text(store: &super::Store) -> Result<String, StoreError> {
    const OP: &str = "dump the database";
    let backend = store.db.get_database_backend();
    let postgres = store.backend == "postgres";
    let list = if postgres {
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
    } else {
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1"
    };
    let tables = store
        .db
        .query_all_raw(Statement::from_string(backend, list))
        .await
        .during(OP)?;
    let mut out = String::new();
    for t in tables {
        let table: String = t.try_get_by_index(0).during(OP)?;
        let select = if postgres {
            format!("SELECT t::text FROM \"{table}\" t")
        } else {
            let columns = store
                .db
                .query_all_raw(Statement::from_string(
                    backend,
                    format!("SELECT name FROM pragma_table_info('{table}')"),
                ))
                .await
                .during(OP)?;
            let mut parts = Vec::new();
            for c in columns {
                let name: String = c.try_get_by_index(0).during(OP)?;
                parts.push(format!("quote(\"{name}\")"));
            }
            if parts.is_empty() {
                continue;
            }
            format!("SELECT {} FROM \"{table}\"", parts.join(" || '|' || "))
        };
        let rows = store
            .db
            .query_all_raw(Statement::from_string(backend, select))
            .await
            .during(OP)?;
        for r in rows {
            let text: Option<String> = r.try_get_by_index(0).during(OP)?;
            out.push_str(&table);
            out.push_str(": ");
            out.push_str(&text.unwrap_or_default());
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_swapped_in_the_url() {
        for (url, expect) in [
            (
                "postgres://p@127.0.0.1:5432/test",
                "postgres://p@127.0.0.1:5432/t1",
            ),
            ("postgres://p@h", "postgres://p@h/t1"),
            (
                "postgres://p:x@h/db?sslmode=disable",
                "postgres://p:x@h/t1?sslmode=disable",
            ),
        ] {
            assert_eq!(with_database(url, "t1"), expect);
        }
        assert!(checked_name("trellis_t_0af3").is_ok());
        assert!(checked_name("x\"; DROP").is_err());
    }
}
