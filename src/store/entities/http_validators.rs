//! `http_validators`: validators and bodies of HTTP answers kept across runs (conditional
//! requests; see `crate::probes::conditional`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "http_validators")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub link: Option<String>,
    pub body: String,
    pub stored_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
