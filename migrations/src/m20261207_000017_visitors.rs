//! Visitor counts of the public site (issue 21). No cookie, no address, no user agent.
//!
//! - `visit_counts`: per UTC day (`YYYY-MM-DD`), metric (`page_view`, `visitors`, `json_fetch`,
//!   `feed_fetch`, `subscription`, `document_request`, `document_approval`,
//!   `document_download`), subject (a document's id, or empty) and audience (`human` or
//!   `bot`): a count. Deleted after `trust_page.analytics.retention`.
//! - `visitor_hashes`: the current day's estimated unique visitors: a truncated SHA-256 of the
//!   day's salt, address and user agent. When the day is over its rows are counted into
//!   `visit_counts` (`visitors`) and deleted.
//! - `visitor_salts`: the salt of the current (and next) day, random, kept apart from the
//!   counts so instances hash alike; deleted when its day is over, after which a day's hashes
//!   cannot be recomputed from an address.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum VisitCounts {
    Table,
    Day,
    Metric,
    Subject,
    Audience,
    Count,
}

#[derive(DeriveIden, Clone, Copy)]
enum VisitorHashes {
    Table,
    Day,
    Hash,
}

#[derive(DeriveIden, Clone, Copy)]
enum VisitorSalts {
    Table,
    Day,
    Salt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(VisitCounts::Table)
                    .if_not_exists()
                    .col(text(VisitCounts::Day))
                    .col(text(VisitCounts::Metric))
                    .col(text(VisitCounts::Subject))
                    .col(text(VisitCounts::Audience))
                    .col(big_integer(VisitCounts::Count))
                    .primary_key(
                        Index::create()
                            .col(VisitCounts::Day)
                            .col(VisitCounts::Metric)
                            .col(VisitCounts::Subject)
                            .col(VisitCounts::Audience),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(VisitorHashes::Table)
                    .if_not_exists()
                    .col(text(VisitorHashes::Day))
                    .col(text(VisitorHashes::Hash))
                    .primary_key(
                        Index::create()
                            .col(VisitorHashes::Day)
                            .col(VisitorHashes::Hash),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(VisitorSalts::Table)
                    .if_not_exists()
                    .col(text(VisitorSalts::Day).primary_key())
                    .col(text(VisitorSalts::Salt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            VisitorSalts::Table.into_iden(),
            VisitorHashes::Table.into_iden(),
            VisitCounts::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
