//! Document access requests and their downloads.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entities::{access_downloads, access_requests};
use super::staff::{Actor, audit_in};
use super::{QueryContext, Store, StoreError, db_time, from_json, to_json};
use crate::access::{AccessRequest, AccessStatus, Decision, NewAccessRequest};

/// Where a request came from, as recorded with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Why a decision could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("no access request matches `{0}`")]
    NotFound(String),
    #[error("`{prefix}` matches {count} access requests: give more of the id")]
    Ambiguous { prefix: String, count: usize },
    #[error("cannot {verb} request {id}: it is {status} (only {expected} requests can be)")]
    WrongState {
        verb: &'static str,
        id: String,
        status: AccessStatus,
        expected: AccessStatus,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Shortest id prefix `trellis access` accepts.
pub const MIN_ID_PREFIX: usize = 6;

impl Store {
    /// Records a new request (pending); returns its id.
    pub async fn create_access_request(
        &self,
        request: &NewAccessRequest,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<String, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let row = access_requests::ActiveModel {
            id: Set(id.clone()),
            requested_at: Set(db_time(now)),
            name: Set(request.name.clone()),
            email: Set(request.email.clone()),
            company: Set(request.company.clone()),
            documents: Set(to_json("requested documents", &request.documents)?),
            nda_sha256: Set(request.nda_sha256.clone()),
            client_ip: Set(client.ip.clone()),
            user_agent: Set(client.user_agent.clone()),
            status: Set(AccessStatus::Pending.as_str().to_string()),
            decided_at: Set(None),
            decided_by: Set(None),
            decision_note: Set(None),
            expires_at: Set(None),
        };
        access_requests::Entity::insert(row)
            .exec_without_returning(&self.db)
            .await
            .during("record access request")?;
        Ok(id)
    }

    /// How many requests came from `ip` and from `email` since `since` (for rate limits).
    pub async fn recent_access_requests(
        &self,
        ip: Option<&str>,
        email: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<(u64, u64), StoreError> {
        const OP: &str = "count recent access requests";
        let count = |column: access_requests::Column, value: Option<&str>| {
            let value = value.map(str::to_string);
            async move {
                let Some(value) = value else {
                    return Ok(0);
                };
                access_requests::Entity::find()
                    .filter(column.eq(value))
                    .filter(access_requests::Column::RequestedAt.gte(db_time(since)))
                    .count(&self.db)
                    .await
                    .during(OP)
            }
        };
        let by_ip = count(access_requests::Column::ClientIp, ip).await?;
        let by_email = count(access_requests::Column::Email, email).await?;
        Ok((by_ip, by_email))
    }

    /// One request by its full id.
    pub async fn access_request(&self, id: &str) -> Result<Option<AccessRequest>, StoreError> {
        let Some(row) = access_requests::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .during("read access request")?
        else {
            return Ok(None);
        };
        let downloads = self.download_count(&row.id).await?;
        access_request(row, downloads).map(Some)
    }

    /// Requests, newest first, optionally only those in `status`.
    pub async fn access_requests(
        &self,
        status: Option<AccessStatus>,
        limit: u64,
    ) -> Result<Vec<AccessRequest>, StoreError> {
        let mut query = access_requests::Entity::find()
            .order_by_desc(access_requests::Column::RequestedAt)
            .order_by_desc(access_requests::Column::Id)
            .limit(limit);
        if let Some(s) = status {
            query = query.filter(access_requests::Column::Status.eq(s.as_str()));
        }
        let rows = query.all(&self.db).await.during("list access requests")?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let downloads = self.download_count(&row.id).await?;
            out.push(access_request(row, downloads)?);
        }
        Ok(out)
    }

    /// The one request whose id starts with `prefix` (at least [`MIN_ID_PREFIX`] characters).
    pub async fn find_access_request(&self, prefix: &str) -> Result<AccessRequest, DecideError> {
        let prefix = prefix.trim().to_ascii_lowercase();
        let valid = prefix.len() >= MIN_ID_PREFIX
            && prefix.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        if !valid {
            return Err(DecideError::NotFound(prefix));
        }
        let rows = access_requests::Entity::find()
            .filter(access_requests::Column::Id.starts_with(&prefix))
            .limit(2)
            .all(&self.db)
            .await
            .during("find access request")?;
        match rows.len() {
            0 => Err(DecideError::NotFound(prefix)),
            1 => {
                let row = rows
                    .into_iter()
                    .next()
                    .ok_or_else(|| DecideError::NotFound(prefix))?;
                let downloads = self.download_count(&row.id).await?;
                Ok(access_request(row, downloads)?)
            }
            count => Err(DecideError::Ambiguous { prefix, count }),
        }
    }

    /// Records a decision on the request `id`, if it is in the state the decision needs (the
    /// check and the change are one statement, so two deciders cannot both win). Returns the
    /// request as decided.
    pub async fn decide_access_request(
        &self,
        id: &str,
        decision: Decision,
        actor: &Actor,
        note: Option<&str>,
        now: DateTime<Utc>,
        email: Option<&crate::notify::NewEvent>,
    ) -> Result<AccessRequest, DecideError> {
        const OP: &str = "decide access request";
        let (from, to) = decision.transition();
        let by = actor.name.as_str();
        let mut update = access_requests::Entity::update_many()
            .col_expr(access_requests::Column::Status, Expr::value(to.as_str()))
            .col_expr(
                access_requests::Column::DecidedAt,
                Expr::value(db_time(now)),
            )
            .col_expr(
                access_requests::Column::DecidedBy,
                Expr::value(by.to_string()),
            )
            .col_expr(
                access_requests::Column::DecisionNote,
                Expr::value(note.map(str::to_string)),
            );
        if let Decision::Approve { expires_at } = decision {
            update = update.col_expr(
                access_requests::Column::ExpiresAt,
                Expr::value(db_time(expires_at)),
            );
        }
        let txn = self.begin_write().await.during(OP)?;
        let updated = update
            .filter(access_requests::Column::Id.eq(id))
            .filter(access_requests::Column::Status.eq(from.as_str()))
            .exec(&txn)
            .await
            .during(OP)?;
        if updated.rows_affected == 1 {
            let mut detail = serde_json::json!({"note": note});
            if let Decision::Approve { expires_at } = decision {
                detail["expires_at"] = serde_json::json!(expires_at);
            }
            audit_in(
                &txn,
                actor,
                &format!("access.{}", decision.verb()),
                &format!("access:{id}"),
                detail,
                now,
            )
            .await?;
            if let Some(event) = email {
                super::notify::add_event_in(&txn, event, Utc::now().timestamp_millis(), OP).await?;
            }
        }
        txn.commit().await.during(OP)?;
        let current = self
            .access_request(id)
            .await?
            .ok_or_else(|| DecideError::NotFound(id.to_string()))?;
        if updated.rows_affected == 0 {
            return Err(DecideError::WrongState {
                verb: decision.verb(),
                id: id.to_string(),
                status: current.status,
                expected: from,
            });
        }
        Ok(current)
    }

    /// Records one download through an approved request's link, in the downloads and the
    /// audit log (the requester as actor).
    pub async fn record_download(
        &self,
        request_id: &str,
        document_id: &str,
        client_ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const OP: &str = "record download";
        let email = access_requests::Entity::find_by_id(request_id.to_string())
            .select_only()
            .column(access_requests::Column::Email)
            .into_tuple::<String>()
            .one(&self.db)
            .await
            .during(OP)?
            .unwrap_or_default();
        let txn = self.begin_write().await.during(OP)?;
        access_downloads::Entity::insert(access_downloads::ActiveModel {
            id: NotSet,
            request_id: Set(request_id.to_string()),
            document_id: Set(document_id.to_string()),
            downloaded_at: Set(db_time(now)),
            client_ip: Set(client_ip.map(str::to_string)),
        })
        .exec_without_returning(&txn)
        .await
        .during(OP)?;
        let actor = Actor::new(format!("visitor:{email}"), client_ip.map(str::to_string));
        audit_in(
            &txn,
            &actor,
            "document.download",
            &format!("access:{request_id}"),
            serde_json::json!({"document": document_id}),
            now,
        )
        .await?;
        txn.commit().await.during(OP)?;
        Ok(())
    }

    async fn download_count(&self, request_id: &str) -> Result<usize, StoreError> {
        let n = access_downloads::Entity::find()
            .filter(access_downloads::Column::RequestId.eq(request_id))
            .count(&self.db)
            .await
            .during("count downloads")?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

fn access_request(
    row: access_requests::Model,
    downloads: usize,
) -> Result<AccessRequest, StoreError> {
    let status = AccessStatus::parse(&row.status).ok_or_else(|| StoreError::Corrupt {
        table: "access_requests",
        id: row.id.clone(),
        detail: format!("unknown status {:?}", row.status),
    })?;
    Ok(AccessRequest {
        documents: from_json("access_requests", &row.id, &row.documents)?,
        id: row.id,
        requested_at: row.requested_at,
        name: row.name,
        email: row.email,
        company: row.company,
        nda_sha256: row.nda_sha256,
        client_ip: row.client_ip,
        user_agent: row.user_agent,
        status,
        decided_at: row.decided_at,
        decided_by: row.decided_by,
        decision_note: row.decision_note,
        expires_at: row.expires_at,
        downloads,
    })
}
