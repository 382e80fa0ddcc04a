//! Validators of HTTP answers kept across runs (see `crate::probes::conditional`): read whole
//! before a run, saved after it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use super::entities::http_validators;
use super::{QueryContext, Store, StoreError, db_time};
use crate::probes::conditional::Validator;

/// A kept answer no run has used for this long is dropped (a repository deleted, a listing no
/// control reads any more), so the table holds about what the runs read.
pub const VALIDATOR_RETENTION: chrono::Duration = chrono::Duration::days(7);

/// Rows written per statement (6 bind parameters each).
const ROWS_PER_INSERT: usize = 1000;

impl Store {
    /// Every kept answer, by key.
    pub async fn http_validators(&self) -> Result<Vec<(String, Validator)>, StoreError> {
        let rows = http_validators::Entity::find()
            .all(&self.db)
            .await
            .during("read the HTTP validators")?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r.key,
                    Validator {
                        etag: r.etag,
                        last_modified: r.last_modified,
                        link: r.link,
                        body: r.body,
                    },
                )
            })
            .collect())
    }

    /// Saves the answers a run used (`now` as their last use), and drops those no run has used
    /// within [`VALIDATOR_RETENTION`].
    pub async fn save_http_validators(
        &self,
        used: &[(String, Arc<Validator>)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const OP: &str = "save the HTTP validators";
        let txn = self.begin_write().await.during(OP)?;
        for chunk in used.chunks(ROWS_PER_INSERT) {
            let rows = chunk.iter().map(|(key, v)| http_validators::ActiveModel {
                key: Set(key.clone()),
                etag: Set(v.etag.clone()),
                last_modified: Set(v.last_modified.clone()),
                link: Set(v.link.clone()),
                body: Set(v.body.clone()),
                stored_at: Set(db_time(now)),
            });
            http_validators::Entity::insert_many(rows)
                .on_conflict(
                    OnConflict::column(http_validators::Column::Key)
                        .update_columns([
                            http_validators::Column::Etag,
                            http_validators::Column::LastModified,
                            http_validators::Column::Link,
                            http_validators::Column::Body,
                            http_validators::Column::StoredAt,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .during(OP)?;
        }
        http_validators::Entity::delete_many()
            .filter(http_validators::Column::StoredAt.lt(db_time(now - VALIDATOR_RETENTION)))
            .exec(&txn)
            .await
            .during(OP)?;
        txn.commit().await.during(OP)?;
        Ok(())
    }
}
