//! Tamper evidence: each evidence row and control result keeps the digest of its content and a
//! chain hash over the previous row of its table (`chain_heads` holds each chain's newest
//! row); runs keep their signed manifest; control definitions are kept by SHA-256, so an export
//! can show each control as it was at every run.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Evidence {
    Table,
    RowHash,
    ChainHash,
}

#[derive(DeriveIden, Clone, Copy)]
enum ControlResults {
    Table,
    RowHash,
    ChainHash,
}

#[derive(DeriveIden, Clone, Copy)]
enum Runs {
    Table,
    Manifest,
    Signature,
    KeyId,
}

#[derive(DeriveIden, Clone, Copy)]
enum ChainHeads {
    Table,
    Name,
    LastId,
    ChainHash,
}

#[derive(DeriveIden, Clone, Copy)]
enum Definitions {
    Table,
    Sha256,
    ControlId,
    Text,
    FirstSeenAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a table one column at a time.
        for col in [Evidence::RowHash, Evidence::ChainHash] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Evidence::Table)
                        .add_column(ColumnDef::new(col).text().not_null().default(""))
                        .to_owned(),
                )
                .await?;
        }
        for col in [ControlResults::RowHash, ControlResults::ChainHash] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ControlResults::Table)
                        .add_column(ColumnDef::new(col).text().not_null().default(""))
                        .to_owned(),
                )
                .await?;
        }
        for col in [Runs::Manifest, Runs::Signature, Runs::KeyId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Runs::Table)
                        .add_column(ColumnDef::new(col).text().null())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(ChainHeads::Table)
                    .if_not_exists()
                    .col(text(ChainHeads::Name).primary_key())
                    .col(big_integer(ChainHeads::LastId))
                    .col(text(ChainHeads::ChainHash))
                    .to_owned(),
            )
            .await?;
        // Both chains start at genesis; writers lock these rows, so they must exist first
        // (two first writers could not both create them).
        for name in ["evidence", "control_results"] {
            let insert = Query::insert()
                .into_table(ChainHeads::Table)
                .columns([ChainHeads::Name, ChainHeads::LastId, ChainHeads::ChainHash])
                .values([
                    name.into(),
                    0i64.into(),
                    "0000000000000000000000000000000000000000000000000000000000000000".into(),
                ])
                .map_err(|e| DbErr::Custom(e.to_string()))?
                .on_conflict(OnConflict::column(ChainHeads::Name).do_nothing().to_owned())
                .to_owned();
            manager.exec_stmt(insert).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Definitions::Table)
                    .if_not_exists()
                    .col(text(Definitions::Sha256).primary_key())
                    .col(text(Definitions::ControlId))
                    .col(text(Definitions::Text))
                    .col(timestamp_with_time_zone(Definitions::FirstSeenAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Definitions::Table.into_iden(),
            ChainHeads::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        for col in [Runs::Manifest, Runs::Signature, Runs::KeyId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Runs::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        for col in [ControlResults::RowHash, ControlResults::ChainHash] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ControlResults::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        for col in [Evidence::RowHash, Evidence::ChainHash] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Evidence::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
