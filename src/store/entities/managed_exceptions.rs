//! `managed_exceptions`: exceptions created in the dashboard (approved by a second person).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "managed_exceptions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub control_id: String,
    /// JSON array of resource patterns.
    pub resources: String,
    pub reason: String,
    pub owner: String,
    pub ticket: String,
    pub expires_on: Date,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTimeUtc>,
    pub ended_by: Option<String>,
    pub ended_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
