//! `evidence`: raw probe output collected during a run.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "evidence")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub run_id: String,
    pub probe: String,
    pub params: String,
    pub collected_at: DateTimeUtc,
    pub sha256: String,
    /// Serialized JSON; `NULL` when collection failed.
    pub content: Option<String>,
    pub error: Option<String>,
    /// Digest of the row (see `integrity::evidence_digest`).
    pub row_hash: String,
    /// Chain hash over the previous evidence row.
    pub chain_hash: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
