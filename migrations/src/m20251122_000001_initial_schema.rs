//! The initial schema: runs, their evidence, control results and findings.
//!
//! Portable across SQLite and PostgreSQL:
//! - timestamps are `timestamp with time zone` (PostgreSQL, microsecond precision) and RFC 3339
//!   text in UTC on SQLite, which sorts chronologically as text;
//! - JSON documents are stored as text (serialized by the application), so they round-trip
//!   byte for byte on both backends;
//! - foreign keys are declared inside `CREATE TABLE` (SQLite cannot add them later).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Runs {
    Table,
    Id,
    Trigger,
    State,
    StartedAt,
    FinishedAt,
    ControlsTotal,
    ControlsDone,
    Error,
}

#[derive(DeriveIden, Clone, Copy)]
enum ControlResults {
    Table,
    Id,
    RunId,
    ControlId,
    Status,
    Summary,
    EvaluatedAt,
    DefinitionSha256,
    Checks,
    EvidenceIds,
    FindingCounts,
}

#[derive(DeriveIden, Clone, Copy)]
enum Findings {
    Table,
    Id,
    ControlResultId,
    RunId,
    ControlId,
    CheckIndex,
    Resource,
    Status,
    Message,
    Actual,
}

#[derive(DeriveIden, Clone, Copy)]
enum Evidence {
    Table,
    Id,
    RunId,
    Probe,
    Params,
    CollectedAt,
    Sha256,
    Content,
    Error,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Runs::Table)
                    .if_not_exists()
                    .col(text(Runs::Id).primary_key())
                    .col(text(Runs::Trigger))
                    .col(text(Runs::State))
                    .col(timestamp_with_time_zone(Runs::StartedAt))
                    .col(timestamp_with_time_zone_null(Runs::FinishedAt))
                    .col(integer(Runs::ControlsTotal))
                    .col(integer(Runs::ControlsDone).default(0))
                    .col(text_null(Runs::Error))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_runs_started_at",
                Runs::Table,
                &[Runs::StartedAt],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Evidence::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Evidence::Id))
                    .col(text(Evidence::RunId))
                    .col(text(Evidence::Probe))
                    .col(text(Evidence::Params))
                    .col(timestamp_with_time_zone(Evidence::CollectedAt))
                    .col(text(Evidence::Sha256))
                    .col(text_null(Evidence::Content))
                    .col(text_null(Evidence::Error))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_evidence_run_id")
                            .from(Evidence::Table, Evidence::RunId)
                            .to(Runs::Table, Runs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_evidence_run_id",
                Evidence::Table,
                &[Evidence::RunId],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ControlResults::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ControlResults::Id))
                    .col(text(ControlResults::RunId))
                    .col(text(ControlResults::ControlId))
                    .col(text(ControlResults::Status))
                    .col(text(ControlResults::Summary))
                    .col(timestamp_with_time_zone(ControlResults::EvaluatedAt))
                    .col(text(ControlResults::DefinitionSha256))
                    .col(text(ControlResults::Checks))
                    .col(text(ControlResults::EvidenceIds))
                    .col(text(ControlResults::FindingCounts))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_control_results_run_id")
                            .from(ControlResults::Table, ControlResults::RunId)
                            .to(Runs::Table, Runs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // (control_id, evaluated_at) also serves lookups by control_id alone.
        for (name, cols) in [
            (
                "idx_control_results_control_id_evaluated_at",
                &[ControlResults::ControlId, ControlResults::EvaluatedAt][..],
            ),
            ("idx_control_results_run_id", &[ControlResults::RunId][..]),
        ] {
            manager
                .create_index(index(name, ControlResults::Table, cols))
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Findings::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Findings::Id))
                    .col(big_integer(Findings::ControlResultId))
                    .col(text(Findings::RunId))
                    .col(text(Findings::ControlId))
                    .col(integer(Findings::CheckIndex))
                    .col(text(Findings::Resource))
                    .col(text(Findings::Status))
                    .col(text(Findings::Message))
                    .col(text(Findings::Actual))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_findings_control_result_id")
                            .from(Findings::Table, Findings::ControlResultId)
                            .to(ControlResults::Table, ControlResults::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_findings_control_result_id", Findings::ControlResultId),
            ("idx_findings_resource", Findings::Resource),
        ] {
            manager
                .create_index(index(name, Findings::Table, &[col]))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Children first; dropping a table drops its indexes and foreign keys.
        for table in [
            Findings::Table.into_iden(),
            ControlResults::Table.into_iden(),
            Evidence::Table.into_iden(),
            Runs::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

/// `CREATE INDEX IF NOT EXISTS name ON table (cols...)`.
fn index<T, C>(name: &str, table: T, cols: &[C]) -> IndexCreateStatement
where
    T: IntoIden,
    C: IntoIden + Copy,
{
    let mut index = Index::create();
    index.if_not_exists().name(name).table(table);
    for &col in cols {
        index.col(col);
    }
    index
}
