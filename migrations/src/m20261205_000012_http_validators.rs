//! Validators of HTTP answers kept across runs (issue 18): for each URL a probe read, the
//! `ETag` / `Last-Modified` GitHub sent and the body (with its `Link` header), so the next run
//! asks conditionally and an unchanged answer (`304 Not Modified`) costs nothing of GitHub's
//! rate limit. A cache only: losing it costs requests, never correctness.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum HttpValidators {
    Table,
    Key,
    Etag,
    LastModified,
    Link,
    Body,
    StoredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(HttpValidators::Table)
                    .if_not_exists()
                    // The source and URL (`github:https://api.github.com/orgs/acme/repos?…`).
                    .col(text(HttpValidators::Key).primary_key())
                    .col(text_null(HttpValidators::Etag))
                    .col(text_null(HttpValidators::LastModified))
                    .col(text_null(HttpValidators::Link))
                    .col(text(HttpValidators::Body))
                    // When a run last used it (answered 200 or 304): old rows are dropped.
                    .col(timestamp_with_time_zone(HttpValidators::StoredAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(HttpValidators::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
