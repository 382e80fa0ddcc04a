//! `findings`: one verdict about one resource, belonging to a control result.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "findings")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub control_result_id: i64,
    pub run_id: String,
    pub control_id: String,
    pub check_index: i32,
    pub resource: String,
    pub status: String,
    pub message: String,
    /// Serialized JSON object.
    pub actual: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
