//! The trust page as a product: document access requests (and the downloads they allow), and
//! an index on `control_results.evaluated_at` for the page's 90-day history and feed.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum ControlResults {
    Table,
    EvaluatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum AccessRequests {
    Table,
    Id,
    RequestedAt,
    Name,
    Email,
    Company,
    Documents,
    NdaSha256,
    ClientIp,
    UserAgent,
    Status,
    DecidedAt,
    DecidedBy,
    DecisionNote,
    ExpiresAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum AccessDownloads {
    Table,
    Id,
    RequestId,
    DocumentId,
    DownloadedAt,
    ClientIp,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_control_results_evaluated_at")
                    .table(ControlResults::Table)
                    .col(ControlResults::EvaluatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AccessRequests::Table)
                    .if_not_exists()
                    .col(text(AccessRequests::Id).primary_key())
                    .col(timestamp_with_time_zone(AccessRequests::RequestedAt))
                    .col(text(AccessRequests::Name))
                    .col(text(AccessRequests::Email))
                    .col(text(AccessRequests::Company))
                    // JSON array of document ids.
                    .col(text(AccessRequests::Documents))
                    // SHA-256 of the NDA text the requester accepted.
                    .col(text(AccessRequests::NdaSha256))
                    .col(text_null(AccessRequests::ClientIp))
                    .col(text_null(AccessRequests::UserAgent))
                    // pending | approved | denied | revoked
                    .col(text(AccessRequests::Status))
                    .col(timestamp_with_time_zone_null(AccessRequests::DecidedAt))
                    .col(text_null(AccessRequests::DecidedBy))
                    .col(text_null(AccessRequests::DecisionNote))
                    .col(timestamp_with_time_zone_null(AccessRequests::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            (
                "idx_access_requests_client_ip",
                &[AccessRequests::ClientIp, AccessRequests::RequestedAt][..],
            ),
            (
                "idx_access_requests_email",
                &[AccessRequests::Email, AccessRequests::RequestedAt][..],
            ),
            (
                "idx_access_requests_requested_at",
                &[AccessRequests::RequestedAt][..],
            ),
        ] {
            let mut index = Index::create();
            index
                .if_not_exists()
                .name(name)
                .table(AccessRequests::Table);
            for &col in cols {
                index.col(col);
            }
            manager.create_index(index).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(AccessDownloads::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AccessDownloads::Id))
                    .col(text(AccessDownloads::RequestId))
                    .col(text(AccessDownloads::DocumentId))
                    .col(timestamp_with_time_zone(AccessDownloads::DownloadedAt))
                    .col(text_null(AccessDownloads::ClientIp))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_access_downloads_request_id")
                            .from(AccessDownloads::Table, AccessDownloads::RequestId)
                            .to(AccessRequests::Table, AccessRequests::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_access_downloads_request_id")
                    .table(AccessDownloads::Table)
                    .col(AccessDownloads::RequestId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AccessDownloads::Table.into_iden(),
            AccessRequests::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .if_exists()
                    .name("idx_control_results_evaluated_at")
                    .table(ControlResults::Table)
                    .to_owned(),
            )
            .await
    }
}
