//! `runs`: one row per evaluation run.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "runs")]
pub struct Model {
    /// UUID v7, hyphenated.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub trigger: String,
    /// `running` | `completed` | `interrupted` | `cancelled`.
    pub state: String,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    pub controls_total: i32,
    pub controls_done: i32,
    pub error: Option<String>,
    /// The signed manifest (JSON), its ed25519 signature (hex) and the key's id.
    pub manifest: Option<String>,
    pub signature: Option<String>,
    pub key_id: Option<String>,
    /// The digest of the closed row and its runs chain hash (empty while `running`).
    pub row_hash: String,
    pub chain_hash: String,
    /// The run's place in the runs chain (1, 2, … in closing order); `None` while `running`.
    pub chain_seq: Option<i64>,
    /// Collections the run planned (set once planned) and those whose evidence is stored:
    /// progress only, not signed.
    pub collections_total: Option<i32>,
    pub collections_done: i32,
    /// A cancel asked for (CLI or dashboard) and by whom: seen by whichever instance works on
    /// the run. Coordination only, not signed (the closed state `cancelled` is).
    pub cancel_requested_at: Option<DateTimeUtc>,
    pub cancel_requested_by: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
