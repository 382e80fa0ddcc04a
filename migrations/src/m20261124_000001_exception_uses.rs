//! Control results keep the exceptions their evaluation used (applied or expired), as JSON.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ControlResults {
    Table,
    Exceptions,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ControlResults::Table)
                    .add_column(
                        ColumnDef::new(ControlResults::Exceptions)
                            .text()
                            .not_null()
                            .default("[]"),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ControlResults::Table)
                    .drop_column(ControlResults::Exceptions)
                    .to_owned(),
            )
            .await
    }
}
