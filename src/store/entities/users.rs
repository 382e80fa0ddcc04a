//! `users`: staff who sign in to the dashboards.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub username: String,
    pub display_name: String,
    pub role: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub created_at: DateTimeUtc,
    pub password_changed_at: DateTimeUtc,
    pub disabled_at: Option<DateTimeUtc>,
    /// Base32 TOTP secret (set at enrolment, before it is confirmed).
    pub totp_secret: Option<String>,
    /// When TOTP was confirmed; `None`: no second factor yet.
    pub totp_enabled_at: Option<DateTimeUtc>,
    /// The last TOTP time step accepted (no code is accepted twice).
    pub totp_last_step: Option<i64>,
    /// JSON array of SHA-256 hashes of unused recovery codes.
    pub recovery_codes: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
