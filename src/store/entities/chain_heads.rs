//! `chain_heads`: the newest row of each hash chain (`evidence`, `control_results`, `runs`),
//! and `runs_legacy`, the runs chained when runs chains began.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chain_heads")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub last_id: i64,
    pub chain_hash: String,
    /// The run at the head (`runs`, `runs_legacy`): runs are chained by `chain_seq`, not id.
    pub last_key: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
