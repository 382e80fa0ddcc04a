//! The history roll-up: one row per control per UTC day on which it was evaluated
//! (`control_days`), so the dashboards' 90-day strips read 90 rows per control instead of
//! every stored result. The results stay the source of truth: the roll-up is derived from
//! them and kept in step by the application in the transaction that records each result.
//!
//! A row sums up that day's evaluations in `(evaluated_at, id)` order: the first and last
//! evaluation times, the status of the last one (which governs the start of the next day), the
//! longest time between two consecutive evaluations of the day (in microseconds: with the
//! previous day's last evaluation it tells when a result went stale, whatever the freshness
//! configured), and how many evaluations had each status.
//!
//! This migration only creates the table: the rows are computed by the application (the same
//! code that maintains them as results are written, `store::rollup`), which fills the table
//! from `control_results` in one transaction at its first connection after this migration
//! (while the table is empty and results exist), as it seals rows from before the hash
//! chains.
//!
//! It also adds the indexes the dashboards' reads need: the window of days across controls
//! (`control_days (day)`), and each control's newest result that is not an `error` (a
//! partial index on `control_results (control_id, evaluated_at) WHERE status <> 'error'`, so
//! finding "last success" does not walk back through a year of errors).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum ControlDays {
    Table,
    ControlId,
    Day,
    FirstAt,
    LastAt,
    LastStatus,
    LongestGapUs,
    Passed,
    Failed,
    Errored,
    NotApplicable,
    Waived,
}

const DAY_INDEX: &str = "idx_control_days_day";
const VERIFIED_INDEX: &str = "idx_control_results_control_id_evaluated_at_not_error";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ControlDays::Table)
                    .if_not_exists()
                    .col(text(ControlDays::ControlId))
                    .col(date(ControlDays::Day))
                    .col(timestamp_with_time_zone(ControlDays::FirstAt))
                    .col(timestamp_with_time_zone(ControlDays::LastAt))
                    .col(text(ControlDays::LastStatus))
                    .col(big_integer(ControlDays::LongestGapUs))
                    .col(integer(ControlDays::Passed))
                    .col(integer(ControlDays::Failed))
                    .col(integer(ControlDays::Errored))
                    .col(integer(ControlDays::NotApplicable))
                    .col(integer(ControlDays::Waived))
                    .primary_key(
                        Index::create()
                            .col(ControlDays::ControlId)
                            .col(ControlDays::Day),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(DAY_INDEX)
                    .table(ControlDays::Table)
                    .col(ControlDays::Day)
                    .to_owned(),
            )
            .await?;
        // The same statement on both backends; the query must say `status <> 'error'` as a
        // literal for the planner to use it.
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {VERIFIED_INDEX} \
                 ON control_results (control_id, evaluated_at) WHERE status <> 'error'"
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(&format!("DROP INDEX IF EXISTS {VERIFIED_INDEX}"))
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(ControlDays::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
