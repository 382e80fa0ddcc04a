//! `control_days`: the history roll-up, one row per control per UTC day it was evaluated
//! (see `store::rollup`). Derived from `control_results`, kept in step as results are stored.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "control_days")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub control_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub day: Date,
    /// The day's first and last evaluations, in `(evaluated_at, id)` order.
    pub first_at: DateTimeUtc,
    pub last_at: DateTimeUtc,
    /// The status of the last one.
    pub last_status: String,
    /// The longest time between two consecutive evaluations of the day, in microseconds.
    pub longest_gap_us: i64,
    /// Evaluations by status.
    pub passed: i32,
    pub failed: i32,
    pub errored: i32,
    pub not_applicable: i32,
    pub waived: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
