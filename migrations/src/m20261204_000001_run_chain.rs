//! Runs are chained like evidence and results: each closed run keeps the digest of its row
//! (manifest and signature included), its place in the runs chain (`chain_seq`, 1, 2, … in
//! the order runs were closed) and its chain hash. A run is appended when it is closed, in
//! the transaction that closes and signs it; a run still `running` is not in the chain.
//!
//! Runs closed before this migration cannot be chained here (the digest is SHA-256, computed
//! by the application): the `runs_legacy` head is left pending (`last_id = -1`), and the
//! application chains them once, at its next connection, in the order they were closed, then
//! records that boundary in `runs_legacy`. Every run signed afterwards carries the boundary
//! in its signed manifest, so the legacy runs (some of them unsigned: interrupted ones, or
//! closed before runs were signed) cannot be added to, edited or moved past it unseen.
//! `chain_heads.last_key` names the run at a runs chain head.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Runs {
    Table,
    RowHash,
    ChainHash,
    ChainSeq,
}

#[derive(DeriveIden, Clone, Copy)]
enum ChainHeads {
    Table,
    Name,
    LastId,
    ChainHash,
    LastKey,
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a table one column at a time.
        for col in [Runs::RowHash, Runs::ChainHash] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Runs::Table)
                        .add_column(ColumnDef::new(col).text().not_null().default(""))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Runs::Table)
                    .add_column(ColumnDef::new(Runs::ChainSeq).big_integer().null())
                    .to_owned(),
            )
            .await?;
        // One run per place in the chain; `verify` walks it in this order.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("runs_chain_seq")
                    .table(Runs::Table)
                    .col(Runs::ChainSeq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ChainHeads::Table)
                    .add_column(ColumnDef::new(ChainHeads::LastKey).text().null())
                    .to_owned(),
            )
            .await?;
        // The runs chain starts at genesis; the legacy boundary is pending until the
        // application has chained the runs closed before now.
        for (name, last_id) in [("runs", 0i64), ("runs_legacy", -1i64)] {
            let insert = Query::insert()
                .into_table(ChainHeads::Table)
                .columns([ChainHeads::Name, ChainHeads::LastId, ChainHeads::ChainHash])
                .values([name.into(), last_id.into(), GENESIS.into()])
                .map_err(|e| DbErr::Custom(e.to_string()))?
                .on_conflict(OnConflict::column(ChainHeads::Name).do_nothing().to_owned())
                .to_owned();
            manager.exec_stmt(insert).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let delete = Query::delete()
            .from_table(ChainHeads::Table)
            .and_where(Expr::col(ChainHeads::Name).is_in(["runs", "runs_legacy"]))
            .to_owned();
        manager.exec_stmt(delete).await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ChainHeads::Table)
                    .drop_column(ChainHeads::LastKey)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .if_exists()
                    .name("runs_chain_seq")
                    .table(Runs::Table)
                    .to_owned(),
            )
            .await?;
        for col in [Runs::ChainSeq, Runs::ChainHash, Runs::RowHash] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Runs::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
