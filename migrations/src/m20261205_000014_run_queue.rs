//! Several instances on one database (issue 19).
//!
//! - `run_slots`: a scheduled slot (control × the reason it is due) becomes at most one run,
//!   whichever instance claims it first: the primary key is the claim.
//! - `run_controls`: which controls a run evaluates, so any instance can tell a control that is
//!   in flight anywhere and not start it twice.
//! - `run_units`: the queue. A run's work is split into units (the controls that share
//!   collections or a source's fetches, see `trellis::queue`); any instance claims a unit under
//!   a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL) and renews it while it works. Lease
//!   deadlines are Unix milliseconds, compared the same way on both backends.
//! - `runs.cancel_requested_at` / `_by`: a cancel asked for from the CLI or the dashboard,
//!   seen by whichever instance works on the run.
//!
//! Queue rows are coordination only: none of them is part of a run's signed manifest.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum RunSlots {
    Table,
    ControlId,
    Slot,
    RunId,
    ClaimedBy,
    ClaimedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum RunControls {
    Table,
    RunId,
    ControlId,
    Unit,
}

#[derive(DeriveIden, Clone, Copy)]
enum RunUnits {
    Table,
    RunId,
    Unit,
    Controls,
    State,
    Owner,
    LeaseUntilMs,
    Attempts,
    Error,
}

#[derive(DeriveIden, Clone, Copy)]
enum Runs {
    Table,
    CancelRequestedAt,
    CancelRequestedBy,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RunSlots::Table)
                    .if_not_exists()
                    .col(text(RunSlots::ControlId))
                    // `schedule:2026-11-23T09:00:00Z`, `startup:<last success>|never`.
                    .col(text(RunSlots::Slot))
                    .col(text_null(RunSlots::RunId))
                    .col(text(RunSlots::ClaimedBy))
                    .col(timestamp_with_time_zone(RunSlots::ClaimedAt))
                    .primary_key(Index::create().col(RunSlots::ControlId).col(RunSlots::Slot))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RunControls::Table)
                    .if_not_exists()
                    .col(text(RunControls::RunId))
                    .col(text(RunControls::ControlId))
                    .col(integer(RunControls::Unit))
                    .primary_key(
                        Index::create()
                            .col(RunControls::RunId)
                            .col(RunControls::ControlId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_run_controls_control")
                    .table(RunControls::Table)
                    .col(RunControls::ControlId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RunUnits::Table)
                    .if_not_exists()
                    .col(text(RunUnits::RunId))
                    .col(integer(RunUnits::Unit))
                    // JSON array of control ids.
                    .col(text(RunUnits::Controls))
                    // queued | claimed | done | failed | cancelled
                    .col(text(RunUnits::State))
                    .col(text_null(RunUnits::Owner))
                    .col(big_integer_null(RunUnits::LeaseUntilMs))
                    .col(integer(RunUnits::Attempts).default(0))
                    .col(text_null(RunUnits::Error))
                    .primary_key(Index::create().col(RunUnits::RunId).col(RunUnits::Unit))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_run_units_state")
                    .table(RunUnits::Table)
                    .col(RunUnits::State)
                    .col(RunUnits::LeaseUntilMs)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Runs::Table)
                    .add_column(
                        ColumnDef::new(Runs::CancelRequestedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Runs::Table)
                    .add_column(ColumnDef::new(Runs::CancelRequestedBy).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in [Runs::CancelRequestedBy, Runs::CancelRequestedAt] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Runs::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        for table in [
            RunUnits::Table.into_iden(),
            RunControls::Table.into_iden(),
            RunSlots::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
