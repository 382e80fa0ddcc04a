//! `control_results`: the outcome of one control in one run.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "control_results")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub run_id: String,
    pub control_id: String,
    pub status: String,
    pub summary: String,
    pub evaluated_at: DateTimeUtc,
    pub definition_sha256: String,
    /// JSON array of `CheckOutcome`.
    pub checks: String,
    /// JSON array of `evidence.id`.
    pub evidence_ids: String,
    /// JSON object: status → number of findings.
    pub finding_counts: String,
    /// JSON array of `ExceptionUse`.
    pub exceptions: String,
    /// Digest of the row and its findings (see `integrity::result_digest`).
    pub row_hash: String,
    /// Chain hash over the previous result row.
    pub chain_hash: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
