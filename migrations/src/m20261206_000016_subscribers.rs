//! Visitors' subscriptions (issue 20).
//!
//! - `subscribers`: personal data. An address is stored once a visitor asks to subscribe,
//!   `pending` until they follow the signed confirmation link, then `confirmed`; unsubscribing
//!   deletes the row (and any message still waiting for it). The client address a request
//!   came from is kept only while pending (the hourly limit per address), and cleared at
//!   confirmation.
//! - `notify_marks`: what the notifier last announced, by key (a public control's status, a
//!   subprocessor's listing), so that a change is announced once whichever instance sees it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Subscribers {
    Table,
    Id,
    Email,
    Topics,
    State,
    RequestIp,
    CreatedAt,
    ConfirmRequestedAt,
    ConfirmedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum NotifyMarks {
    Table,
    Key,
    Value,
    UpdatedMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Subscribers::Table)
                    .if_not_exists()
                    .col(text(Subscribers::Id).primary_key())
                    // Lowercased.
                    .col(text(Subscribers::Email).unique_key())
                    // JSON array of topics.
                    .col(text(Subscribers::Topics))
                    // pending | confirmed
                    .col(text(Subscribers::State))
                    .col(text_null(Subscribers::RequestIp))
                    .col(timestamp_with_time_zone(Subscribers::CreatedAt))
                    .col(timestamp_with_time_zone(Subscribers::ConfirmRequestedAt))
                    .col(timestamp_with_time_zone_null(Subscribers::ConfirmedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_subscribers_request_ip")
                    .table(Subscribers::Table)
                    .col(Subscribers::RequestIp)
                    .col(Subscribers::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(NotifyMarks::Table)
                    .if_not_exists()
                    .col(text(NotifyMarks::Key).primary_key())
                    .col(text(NotifyMarks::Value))
                    .col(big_integer(NotifyMarks::UpdatedMs))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            NotifyMarks::Table.into_iden(),
            Subscribers::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
