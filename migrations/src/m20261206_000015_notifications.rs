//! Notifications (issue 20): an outbox written in the transaction that stores what caused it.
//!
//! - `notify_findings`: per control, the fingerprints (control, check, resource) that fail or
//!   err now, and those fixed since (kept to tell `reopened` from `failing`). The result that
//!   changes them writes its events in the same transaction, so an event is once per
//!   transition, never once per run.
//! - `notify_events`: the outbox. `dedupe_key` is unique: an event found by a sweep (a control
//!   gone stale, an exception expiring) is written once however many instances sweep.
//!   `routed_ms` is set when the rules have turned it into deliveries.
//! - `notify_deliveries`: one row per event and channel. A sender claims a channel's pending
//!   rows as one batch (a digest) under a lease, sends, and marks them sent, or pending again
//!   with a later `next_ms`, or failed after too many attempts.
//!
//! Times used for coordination are Unix milliseconds of the instances' wall clocks.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum NotifyFindings {
    Table,
    ControlId,
    Fingerprint,
    CheckIndex,
    State,
    SinceMs,
}

#[derive(DeriveIden, Clone, Copy)]
enum NotifyEvents {
    Table,
    Id,
    DedupeKey,
    Kind,
    ControlId,
    Payload,
    CreatedMs,
    RoutedMs,
}

#[derive(DeriveIden, Clone, Copy)]
enum NotifyDeliveries {
    Table,
    Id,
    EventId,
    Channel,
    State,
    Batch,
    Attempts,
    CreatedMs,
    NextMs,
    LeaseUntilMs,
    Owner,
    LastError,
    SentMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(NotifyFindings::Table)
                    .if_not_exists()
                    .col(text(NotifyFindings::ControlId))
                    .col(text(NotifyFindings::Fingerprint))
                    .col(integer(NotifyFindings::CheckIndex))
                    // fail | error | fixed
                    .col(text(NotifyFindings::State))
                    .col(big_integer(NotifyFindings::SinceMs))
                    .primary_key(
                        Index::create()
                            .col(NotifyFindings::ControlId)
                            .col(NotifyFindings::Fingerprint),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(NotifyEvents::Table)
                    .if_not_exists()
                    .col(big_pk_auto(NotifyEvents::Id))
                    .col(text(NotifyEvents::DedupeKey).unique_key())
                    .col(text(NotifyEvents::Kind))
                    .col(text_null(NotifyEvents::ControlId))
                    // JSON: what changed (see `trellis::notify::Event`).
                    .col(text(NotifyEvents::Payload))
                    .col(big_integer(NotifyEvents::CreatedMs))
                    .col(big_integer_null(NotifyEvents::RoutedMs))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_notify_events_unrouted")
                    .table(NotifyEvents::Table)
                    .col(NotifyEvents::RoutedMs)
                    .col(NotifyEvents::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(NotifyDeliveries::Table)
                    .if_not_exists()
                    .col(big_pk_auto(NotifyDeliveries::Id))
                    .col(big_integer(NotifyDeliveries::EventId))
                    .col(text(NotifyDeliveries::Channel))
                    // pending | sending | sent | failed
                    .col(text(NotifyDeliveries::State))
                    .col(text_null(NotifyDeliveries::Batch))
                    .col(integer(NotifyDeliveries::Attempts).default(0))
                    .col(big_integer(NotifyDeliveries::CreatedMs))
                    .col(big_integer(NotifyDeliveries::NextMs))
                    .col(big_integer_null(NotifyDeliveries::LeaseUntilMs))
                    .col(text_null(NotifyDeliveries::Owner))
                    .col(text_null(NotifyDeliveries::LastError))
                    .col(big_integer_null(NotifyDeliveries::SentMs))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_notify_deliveries_due")
                    .table(NotifyDeliveries::Table)
                    .col(NotifyDeliveries::State)
                    .col(NotifyDeliveries::Channel)
                    .col(NotifyDeliveries::NextMs)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_notify_deliveries_batch")
                    .table(NotifyDeliveries::Table)
                    .col(NotifyDeliveries::Batch)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            NotifyDeliveries::Table.into_iden(),
            NotifyEvents::Table.into_iden(),
            NotifyFindings::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
