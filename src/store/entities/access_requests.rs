//! `access_requests`: a visitor's request for gated trust-page documents.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "access_requests")]
pub struct Model {
    /// UUID v4, hyphenated.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub requested_at: DateTimeUtc,
    pub name: String,
    pub email: String,
    pub company: String,
    /// JSON array of document ids.
    pub documents: String,
    pub nda_sha256: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// `pending` | `approved` | `denied` | `revoked`.
    pub status: String,
    pub decided_at: Option<DateTimeUtc>,
    pub decided_by: Option<String>,
    pub decision_note: Option<String>,
    pub expires_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
