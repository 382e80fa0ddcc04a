//! Staff access to the dashboards and the API: users, sessions, login attempts, API tokens,
//! settings and the audit log; and exceptions managed from the dashboard.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
    Username,
    DisplayName,
    Role,
    PasswordHash,
    CreatedAt,
    PasswordChangedAt,
    DisabledAt,
    TotpSecret,
    TotpEnabledAt,
    TotpLastStep,
    RecoveryCodes,
}

#[derive(DeriveIden, Clone, Copy)]
enum Sessions {
    Table,
    IdHash,
    UserId,
    CreatedAt,
    LastSeenAt,
    CsrfToken,
    MfaVerified,
    ClientIp,
    UserAgent,
}

#[derive(DeriveIden, Clone, Copy)]
enum LoginAttempts {
    Table,
    Id,
    Username,
    ClientIp,
    At,
    Success,
}

#[derive(DeriveIden, Clone, Copy)]
enum ApiTokens {
    Table,
    Id,
    UserId,
    Name,
    TokenHash,
    Prefix,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Settings {
    Table,
    Key,
    Value,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden, Clone, Copy)]
enum AuditLog {
    Table,
    Id,
    At,
    Actor,
    Action,
    Target,
    Detail,
    ClientIp,
}

#[derive(DeriveIden, Clone, Copy)]
enum ManagedExceptions {
    Table,
    Id,
    ControlId,
    Resources,
    Reason,
    Owner,
    Ticket,
    ExpiresOn,
    CreatedBy,
    CreatedAt,
    ApprovedBy,
    ApprovedAt,
    EndedBy,
    EndedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Users::Id))
                    .col(text(Users::Username).unique_key())
                    .col(text(Users::DisplayName))
                    .col(text(Users::Role))
                    .col(text(Users::PasswordHash))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::PasswordChangedAt))
                    .col(timestamp_with_time_zone_null(Users::DisabledAt))
                    .col(text_null(Users::TotpSecret))
                    .col(timestamp_with_time_zone_null(Users::TotpEnabledAt))
                    .col(big_integer_null(Users::TotpLastStep))
                    // JSON array of SHA-256 hashes of unused recovery codes.
                    .col(text(Users::RecoveryCodes).default("[]"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .if_not_exists()
                    // SHA-256 of the cookie's token: a database leak yields no usable session.
                    .col(text(Sessions::IdHash).primary_key())
                    .col(big_integer(Sessions::UserId))
                    .col(timestamp_with_time_zone(Sessions::CreatedAt))
                    .col(timestamp_with_time_zone(Sessions::LastSeenAt))
                    .col(text(Sessions::CsrfToken))
                    .col(boolean(Sessions::MfaVerified))
                    .col(text_null(Sessions::ClientIp))
                    .col(text_null(Sessions::UserAgent))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sessions_user_id")
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(LoginAttempts::Table)
                    .if_not_exists()
                    .col(big_pk_auto(LoginAttempts::Id))
                    .col(text(LoginAttempts::Username))
                    .col(text_null(LoginAttempts::ClientIp))
                    .col(timestamp_with_time_zone(LoginAttempts::At))
                    .col(boolean(LoginAttempts::Success))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ApiTokens::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ApiTokens::Id))
                    .col(big_integer(ApiTokens::UserId))
                    .col(text(ApiTokens::Name))
                    .col(text(ApiTokens::TokenHash).unique_key())
                    .col(text(ApiTokens::Prefix))
                    .col(timestamp_with_time_zone(ApiTokens::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiTokens::LastUsedAt))
                    .col(timestamp_with_time_zone_null(ApiTokens::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_api_tokens_user_id")
                            .from(ApiTokens::Table, ApiTokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Settings::Table)
                    .if_not_exists()
                    .col(text(Settings::Key).primary_key())
                    .col(text(Settings::Value))
                    .col(timestamp_with_time_zone(Settings::UpdatedAt))
                    .col(text(Settings::UpdatedBy))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AuditLog::Id))
                    .col(timestamp_with_time_zone(AuditLog::At))
                    .col(text(AuditLog::Actor))
                    .col(text(AuditLog::Action))
                    .col(text(AuditLog::Target))
                    // JSON object.
                    .col(text(AuditLog::Detail))
                    .col(text_null(AuditLog::ClientIp))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ManagedExceptions::Table)
                    .if_not_exists()
                    .col(text(ManagedExceptions::Id).primary_key())
                    .col(text(ManagedExceptions::ControlId))
                    // JSON array of resource patterns.
                    .col(text(ManagedExceptions::Resources))
                    .col(text(ManagedExceptions::Reason))
                    .col(text(ManagedExceptions::Owner))
                    .col(text(ManagedExceptions::Ticket))
                    .col(date(ManagedExceptions::ExpiresOn))
                    .col(text(ManagedExceptions::CreatedBy))
                    .col(timestamp_with_time_zone(ManagedExceptions::CreatedAt))
                    .col(text_null(ManagedExceptions::ApprovedBy))
                    .col(timestamp_with_time_zone_null(ManagedExceptions::ApprovedAt))
                    .col(text_null(ManagedExceptions::EndedBy))
                    .col(timestamp_with_time_zone_null(ManagedExceptions::EndedAt))
                    .to_owned(),
            )
            .await?;
        for (name, table, cols) in [
            (
                "idx_sessions_user_id",
                Sessions::Table.into_iden(),
                vec![Sessions::UserId.into_iden()],
            ),
            (
                "idx_login_attempts_username_at",
                LoginAttempts::Table.into_iden(),
                vec![
                    LoginAttempts::Username.into_iden(),
                    LoginAttempts::At.into_iden(),
                ],
            ),
            (
                "idx_login_attempts_client_ip_at",
                LoginAttempts::Table.into_iden(),
                vec![
                    LoginAttempts::ClientIp.into_iden(),
                    LoginAttempts::At.into_iden(),
                ],
            ),
            (
                "idx_audit_log_at",
                AuditLog::Table.into_iden(),
                vec![AuditLog::At.into_iden()],
            ),
            (
                "idx_managed_exceptions_control_id",
                ManagedExceptions::Table.into_iden(),
                vec![ManagedExceptions::ControlId.into_iden()],
            ),
        ] {
            let mut index = Index::create();
            index.if_not_exists().name(name).table(table);
            for col in cols {
                index.col(col);
            }
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ManagedExceptions::Table.into_iden(),
            AuditLog::Table.into_iden(),
            Settings::Table.into_iden(),
            ApiTokens::Table.into_iden(),
            LoginAttempts::Table.into_iden(),
            Sessions::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
