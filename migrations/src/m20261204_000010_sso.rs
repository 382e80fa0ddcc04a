//! Single sign-on (OpenID Connect): which identity-provider account is which user, sign-ins
//! under way (their `state`, single use), and which sessions had their second factor from
//! the identity provider.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum Sessions {
    Table,
    IdHash,
}

#[derive(DeriveIden, Clone, Copy)]
enum SsoIdentities {
    Table,
    Issuer,
    Subject,
    UserId,
    CreatedAt,
    LastLoginAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum SsoLogins {
    Table,
    StateHash,
    Nonce,
    PkceVerifier,
    RedirectUrl,
    Next,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum SsoSessions {
    Table,
    IdHash,
    IdpMfa,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SsoIdentities::Table)
                    .if_not_exists()
                    // The ID token's `iss` and `sub`: stable, unlike an email address.
                    .col(text(SsoIdentities::Issuer))
                    .col(text(SsoIdentities::Subject))
                    .col(big_integer(SsoIdentities::UserId).unique_key())
                    .col(timestamp_with_time_zone(SsoIdentities::CreatedAt))
                    .col(timestamp_with_time_zone(SsoIdentities::LastLoginAt))
                    .primary_key(
                        Index::create()
                            .col(SsoIdentities::Issuer)
                            .col(SsoIdentities::Subject),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sso_identities_user_id")
                            .from(SsoIdentities::Table, SsoIdentities::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SsoLogins::Table)
                    .if_not_exists()
                    // SHA-256 of the `state` sent to the identity provider; the row is deleted
                    // when the provider sends the browser back, so a state works once.
                    .col(text(SsoLogins::StateHash).primary_key())
                    .col(text(SsoLogins::Nonce))
                    .col(text(SsoLogins::PkceVerifier))
                    .col(text(SsoLogins::RedirectUrl))
                    .col(text(SsoLogins::Next))
                    .col(timestamp_with_time_zone(SsoLogins::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SsoSessions::Table)
                    .if_not_exists()
                    .col(text(SsoSessions::IdHash).primary_key())
                    // The identity provider's `amr`/`acr` counted as the second factor.
                    .col(boolean(SsoSessions::IdpMfa))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sso_sessions_id_hash")
                            .from(SsoSessions::Table, SsoSessions::IdHash)
                            .to(Sessions::Table, Sessions::IdHash)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            SsoSessions::Table.into_iden(),
            SsoLogins::Table.into_iden(),
            SsoIdentities::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
