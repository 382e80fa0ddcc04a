//! Database schema migrations for Trellis, shared by SQLite and PostgreSQL.
//!
//! The application runs [`Migrator::up`] at connect time (see `trellis::store::Store::connect`),
//! so a database is always at the newest schema before it is used. Migrations are append-only:
//! never edit one that has shipped, add a new one instead.

pub use sea_orm_migration::prelude::*;

mod m20251122_000001_initial_schema;
mod m20261124_000001_exception_uses;
mod m20261201_000001_trust_page;
mod m20261202_000001_staff;
mod m20261203_000001_integrity;
mod m20261204_000001_run_chain;
mod m20261204_000010_sso;
mod m20261205_000011_history_rollup;
mod m20261205_000012_http_validators;
mod m20261205_000013_run_collections;
mod m20261205_000014_run_queue;
mod m20261206_000015_notifications;
mod m20261206_000016_subscribers;
mod m20261207_000017_visitors;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20251122_000001_initial_schema::Migration),
            Box::new(m20261124_000001_exception_uses::Migration),
            Box::new(m20261201_000001_trust_page::Migration),
            Box::new(m20261202_000001_staff::Migration),
            Box::new(m20261203_000001_integrity::Migration),
            Box::new(m20261204_000001_run_chain::Migration),
            Box::new(m20261204_000010_sso::Migration),
            Box::new(m20261205_000011_history_rollup::Migration),
            Box::new(m20261205_000012_http_validators::Migration),
            Box::new(m20261205_000013_run_collections::Migration),
            Box::new(m20261205_000014_run_queue::Migration),
            Box::new(m20261206_000015_notifications::Migration),
            Box::new(m20261206_000016_subscribers::Migration),
            Box::new(m20261207_000017_visitors::Migration),
        ]
    }
}
