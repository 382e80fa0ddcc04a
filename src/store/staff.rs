//! Staff: users, sessions, login attempts, API tokens, settings — and the audit log, written
//! in the same transaction as every change it records.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::Serialize;

use super::entities::{api_tokens, audit_log, sessions, settings, users};
use super::{QueryContext, Store, StoreError, db_time, from_json, to_json};
use crate::auth::Role;

/// Who does something, from where: what the audit log records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// A user name, `cli:<login>` for the command line, or `system`.
    pub name: String,
    pub client_ip: Option<String>,
}

impl Actor {
    pub fn new(name: impl Into<String>, client_ip: Option<String>) -> Actor {
        Actor {
            name: name.into(),
            client_ip,
        }
    }
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// `user.add`, `access.approve`, `exception.create`, `export`…
    pub action: String,
    /// What it was done to (`user:sam`, `access:…`, `control:…`).
    pub target: String,
    pub detail: serde_json::Value,
    pub client_ip: Option<String>,
}

/// Writes one audit line inside `txn`.
pub(super) async fn audit_in(
    txn: &impl ConnectionTrait,
    actor: &Actor,
    action: &str,
    target: &str,
    detail: serde_json::Value,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    audit_log::Entity::insert(audit_log::ActiveModel {
        id: NotSet,
        at: Set(db_time(at)),
        actor: Set(actor.name.clone()),
        action: Set(action.to_string()),
        target: Set(target.to_string()),
        detail: Set(to_json("audit detail", &detail)?),
        client_ip: Set(actor.client_ip.clone()),
    })
    .exec_without_returning(txn)
    .await
    .during("write audit log")?;
    Ok(())
}

/// A user, without secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub password_changed_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
    /// A confirmed TOTP second factor.
    pub mfa_enabled: bool,
    pub recovery_codes_left: usize,
}

impl User {
    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }
}

/// What signing in checks.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub password_hash: String,
    /// The TOTP secret, confirmed or not (see `User::mfa_enabled`).
    pub totp_secret: Option<String>,
    pub totp_last_step: Option<i64>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials([redacted])")
    }
}

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: User,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub csrf_token: String,
    pub mfa_verified: bool,
}

/// An API token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    pub username: String,
    pub name: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Why a user change failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user `{0}` already exists")]
    Exists(String),
    #[error("no user `{0}`")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn corrupt(table: &'static str, id: impl ToString, detail: String) -> StoreError {
    StoreError::Corrupt {
        table,
        id: id.to_string(),
        detail,
    }
}

pub(super) fn user(row: &users::Model) -> Result<User, StoreError> {
    let role = Role::parse(&row.role)
        .ok_or_else(|| corrupt("users", row.id, format!("unknown role {:?}", row.role)))?;
    let codes: Vec<String> = from_json("users", row.id, &row.recovery_codes)?;
    Ok(User {
        id: row.id,
        username: row.username.clone(),
        display_name: row.display_name.clone(),
        role,
        created_at: row.created_at,
        password_changed_at: row.password_changed_at,
        disabled_at: row.disabled_at,
        mfa_enabled: row.totp_enabled_at.is_some(),
        recovery_codes_left: codes.len(),
    })
}

/// Inserts a user row (inside the caller's transaction, which writes its audit line); its id.
pub(super) async fn insert_user(
    txn: &DatabaseTransaction,
    username: &str,
    display_name: &str,
    role: Role,
    password_hash: &str,
    now: DateTime<Utc>,
    op: &'static str,
) -> Result<i64, StoreError> {
    Ok(users::Entity::insert(users::ActiveModel {
        id: NotSet,
        username: Set(username.to_string()),
        display_name: Set(display_name.to_string()),
        role: Set(role.as_str().to_string()),
        password_hash: Set(password_hash.to_string()),
        created_at: Set(db_time(now)),
        password_changed_at: Set(db_time(now)),
        disabled_at: Set(None),
        totp_secret: Set(None),
        totp_enabled_at: Set(None),
        totp_last_step: Set(None),
        recovery_codes: Set("[]".into()),
    })
    .exec(txn)
    .await
    .during(op)?
    .last_insert_id)
}

/// Revokes every active API token of a user (inside the caller's transaction): a password
/// reset, a second-factor reset, disabling and a role change all end them.
async fn revoke_tokens_of(
    txn: &DatabaseTransaction,
    user_id: i64,
    now: DateTime<Utc>,
    op: &'static str,
) -> Result<u64, StoreError> {
    Ok(api_tokens::Entity::update_many()
        .col_expr(api_tokens::Column::RevokedAt, Expr::value(db_time(now)))
        .filter(api_tokens::Column::UserId.eq(user_id))
        .filter(api_tokens::Column::RevokedAt.is_null())
        .exec(txn)
        .await
        .during(op)?
        .rows_affected)
}

/// Ends every session of a user (inside the caller's transaction).
async fn end_sessions_of(
    txn: &DatabaseTransaction,
    user_id: i64,
    op: &'static str,
) -> Result<u64, StoreError> {
    Ok(sessions::Entity::delete_many()
        .filter(sessions::Column::UserId.eq(user_id))
        .exec(txn)
        .await
        .during(op)?
        .rows_affected)
}

impl Store {
    async fn begin(&self, op: &'static str) -> Result<DatabaseTransaction, StoreError> {
        self.begin_write().await.during(op)
    }

    /// Writes one audit line on its own (for events that change nothing else: an export, a
    /// failed sign-in).
    pub async fn audit(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        detail: serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        audit_in(&self.db, actor, action, target, detail, at).await
    }

    /// The audit log, newest first, optionally only lines whose action starts with `action`.
    pub async fn audit_log(
        &self,
        action: Option<&str>,
        limit: u64,
        offset: u64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut q = audit_log::Entity::find()
            .order_by_desc(audit_log::Column::Id)
            .limit(limit)
            .offset(offset);
        if let Some(a) = action.filter(|a| !a.is_empty()) {
            q = q.filter(audit_log::Column::Action.starts_with(a));
        }
        let rows = q.all(&self.db).await.during("read audit log")?;
        rows.into_iter()
            .map(|r| {
                Ok(AuditEntry {
                    detail: from_json("audit_log", r.id, &r.detail)?,
                    id: r.id,
                    at: r.at,
                    actor: r.actor,
                    action: r.action,
                    target: r.target,
                    client_ip: r.client_ip,
                })
            })
            .collect()
    }

    /// Adds a user (audited).
    pub async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        role: Role,
        password_hash: &str,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<User, UserError> {
        const OP: &str = "create user";
        let txn = self.begin(OP).await?;
        let exists = users::Entity::find()
            .filter(users::Column::Username.eq(username))
            .count(&txn)
            .await
            .during(OP)?;
        if exists > 0 {
            return Err(UserError::Exists(username.to_string()));
        }
        let id = insert_user(&txn, username, display_name, role, password_hash, now, OP).await?;
        audit_in(
            &txn,
            actor,
            "user.add",
            &format!("user:{username}"),
            serde_json::json!({"role": role, "display_name": display_name}),
            now,
        )
        .await?;
        txn.commit().await.during(OP)?;
        self.user(id)
            .await?
            .ok_or_else(|| UserError::NotFound(username.into()))
    }

    pub async fn user(&self, id: i64) -> Result<Option<User>, StoreError> {
        users::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .during("read user")?
            .as_ref()
            .map(user)
            .transpose()
    }

    /// A user by name, with what signing in checks.
    pub async fn user_credentials(
        &self,
        username: &str,
    ) -> Result<Option<(User, Credentials)>, StoreError> {
        let Some(row) = users::Entity::find()
            .filter(users::Column::Username.eq(username))
            .one(&self.db)
            .await
            .during("read user")?
        else {
            return Ok(None);
        };
        let u = user(&row)?;
        Ok(Some((
            u,
            Credentials {
                password_hash: row.password_hash,
                totp_secret: row.totp_secret,
                totp_last_step: row.totp_last_step,
            },
        )))
    }

    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        users::Entity::find()
            .order_by_asc(users::Column::Username)
            .all(&self.db)
            .await
            .during("list users")?
            .iter()
            .map(user)
            .collect()
    }

    async fn user_id(&self, txn: &DatabaseTransaction, username: &str) -> Result<i64, UserError> {
        users::Entity::find()
            .select_only()
            .column(users::Column::Id)
            .filter(users::Column::Username.eq(username))
            .into_tuple::<i64>()
            .one(txn)
            .await
            .during("find user")?
            .ok_or_else(|| UserError::NotFound(username.to_string()))
    }

    /// Sets a new password; every session and API token of the user ends (audited).
    pub async fn set_password(
        &self,
        username: &str,
        password_hash: &str,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<(), UserError> {
        const OP: &str = "set password";
        let txn = self.begin(OP).await?;
        let id = self.user_id(&txn, username).await?;
        users::Entity::update_many()
            .col_expr(users::Column::PasswordHash, Expr::value(password_hash))
            .col_expr(users::Column::PasswordChangedAt, Expr::value(db_time(now)))
            .filter(users::Column::Id.eq(id))
            .exec(&txn)
            .await
            .during(OP)?;
        let sessions_ended = end_sessions_of(&txn, id, OP).await?;
        let tokens_revoked = revoke_tokens_of(&txn, id, now, OP).await?;
        audit_in(
            &txn,
            actor,
            "user.password",
            &format!("user:{username}"),
            serde_json::json!({"sessions_ended": sessions_ended, "tokens_revoked": tokens_revoked}),
            now,
        )
        .await?;
        txn.commit().await.during(OP)?;
        Ok(())
    }

    /// Disables (or re-enables) a user; disabling ends every session and API token (audited).
    pub async fn set_disabled(
        &self,
        username: &str,
        disabled: bool,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<(), UserError> {
        const OP: &str = "disable user";
        let txn = self.begin(OP).await?;
        let id = self.user_id(&txn, username).await?;
        let value = disabled.then(|| db_time(now));
        let (mut sessions_ended, mut tokens_revoked) = (0, 0);
        users::Entity::update_many()
            .col_expr(users::Column::DisabledAt, Expr::value(value))
            .filter(users::Column::Id.eq(id))
            .exec(&txn)
            .await
            .during(OP)?;
        if disabled {
            sessions_ended = end_sessions_of(&txn, id, OP).await?;
            tokens_revoked = revoke_tokens_of(&txn, id, now, OP).await?;
        }
        let action = if disabled {
            "user.disable"
        } else {
            "user.enable"
        };
        audit_in(
            &txn,
            actor,
            action,
            &format!("user:{username}"),
            serde_json::json!({"sessions_ended": sessions_ended, "tokens_revoked": tokens_revoked}),
            now,
        )
        .await?;
        txn.commit().await.during(OP)?;
        Ok(())
    }

    /// Changes a user's role; their API tokens are revoked (audited).
    pub async fn set_role(
        &self,
        username: &str,
        role: Role,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<(), UserError> {
        const OP: &str = "set role";
        let txn = self.begin(OP).await?;
        let id = self.user_id(&txn, username).await?;
        users::Entity::update_many()
            .col_expr(users::Column::Role, Expr::value(role.as_str()))
            .filter(users::Column::Id.eq(id))
            .exec(&txn)
            .await
            .during(OP)?;
        // A token never keeps more (or other) rights than its owner was given when it was
        // made: a new role means new tokens.
        let tokens_revoked = revoke_tokens_of(&txn, id, now, OP).await?;
        audit_in(
            &txn,
            actor,
            "user.role",
            &format!("user:{username}"),
            serde_json::json!({"role": role, "tokens_revoked": tokens_revoked}),
            now,
        )
        .await?;
        txn.commit().await.during(OP)?;
        Ok(())
    }

    /// Starts TOTP enrolment: stores a new, unconfirmed secret.
    pub async fn set_totp_secret(&self, user_id: i64, secret: &str) -> Result<(), StoreError> {
        users::Entity::update_many()
            .col_expr(users::Column::TotpSecret, Expr::value(secret))
            .filter(users::Column::Id.eq(user_id))
            .filter(users::Column::TotpEnabledAt.is_null())
            .exec(&self.db)
            .await
            .during("start totp enrolment")?;
        Ok(())
    }

    /// Confirms TOTP (the user typed a code for step `step`) and stores the recovery codes'
    /// hashes (audited).
    pub async fn enable_totp(
        &self,
        user_id: i64,
        step: i64,
        recovery_hashes: &[String],
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const OP: &str = "enable totp";
        let txn = self.begin(OP).await?;
        users::Entity::update_many()
            .col_expr(users::Column::TotpEnabledAt, Expr::value(db_time(now)))
            .col_expr(users::Column::TotpLastStep, Expr::value(step))
            .col_expr(
                users::Column::RecoveryCodes,
                Expr::value(to_json("recovery codes", recovery_hashes)?),
            )
            .filter(users::Column::Id.eq(user_id))
            .exec(&txn)
            .await
            .during(OP)?;
        audit_in(
            &txn,
            actor,
            "user.mfa.enable",
            &format!("user-id:{user_id}"),
            serde_json::json!({}),
            now,
        )
        .await?;
        txn.commit().await.during(OP)?;
        Ok(())
    }

    /// Removes a user's second factor (an admin's reset); every session and API token of the
    /// user ends (audited).
    pub async fn reset_totp(
        &self,
        username: &str,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<(), UserError> {
        const OP: &str = "reset totp";
        let txn = self.begin(OP).await?;
        let id = self.user_id(&txn, username).await?;
        users::Entity::update_many()
            .col_expr(
                users::Column::TotpSecret,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                users::Column::TotpEnabledAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                users::Column::TotpLastStep,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(users::Column::RecoveryCodes, Expr::value("[]"))
            .filter(users::Column::Id.eq(id))
            .exec(&txn)
            .await
            .during(OP)?;
        let sessions_ended = end_sessions_of(&txn, id, OP).await?;
        let tokens_revoked = revoke_tokens_of(&txn, id, now, OP).await?;
        audit_in(
            &txn,
            actor,
            "user.mfa.reset",
            &format!("user:{username}"),
            serde_json::json!({"sessions_ended": sessions_ended, "tokens_revoked": tokens_revoked}),
            now,
        )
        .await?;
        txn.commit().await.during(OP)?;
        Ok(())
    }

    /// Records the use of TOTP step `step` if it is newer than the last one used; false if it
    /// was already used (a replayed code). One statement, so two logins cannot both use it.
    pub async fn use_totp_step(&self, user_id: i64, step: i64) -> Result<bool, StoreError> {
        let updated = users::Entity::update_many()
            .col_expr(users::Column::TotpLastStep, Expr::value(step))
            .filter(users::Column::Id.eq(user_id))
            .filter(
                users::Column::TotpLastStep
                    .is_null()
                    .or(users::Column::TotpLastStep.lt(step)),
            )
            .exec(&self.db)
            .await
            .during("use totp code")?;
        Ok(updated.rows_affected == 1)
    }

    /// Uses up a recovery code (by its hash); false if it is not one of the user's unused codes.
    pub async fn use_recovery_code(&self, user_id: i64, hash: &str) -> Result<bool, StoreError> {
        const OP: &str = "use recovery code";
        let txn = self.begin(OP).await?;
        let Some(row) = users::Entity::find_by_id(user_id)
            .one(&txn)
            .await
            .during(OP)?
        else {
            return Ok(false);
        };
        let mut codes: Vec<String> = from_json("users", row.id, &row.recovery_codes)?;
        let Some(pos) = codes.iter().position(|c| c == hash) else {
            return Ok(false);
        };
        codes.remove(pos);
        users::Entity::update_many()
            .col_expr(
                users::Column::RecoveryCodes,
                Expr::value(to_json("recovery codes", &codes)?),
            )
            .filter(users::Column::Id.eq(user_id))
            .exec(&txn)
            .await
            .during(OP)?;
        txn.commit().await.during(OP)?;
        Ok(true)
    }

    /// The session with this token hash, with its user.
    pub async fn session(&self, id_hash: &str) -> Result<Option<Session>, StoreError> {
        const OP: &str = "read session";
        let Some(row) = sessions::Entity::find_by_id(id_hash.to_string())
            .one(&self.db)
            .await
            .during(OP)?
        else {
            return Ok(None);
        };
        let Some(u) = self.user(row.user_id).await? else {
            return Ok(None);
        };
        Ok(Some(Session {
            user: u,
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            csrf_token: row.csrf_token,
            mfa_verified: row.mfa_verified,
        }))
    }

    /// Marks a session active at `now`.
    pub async fn touch_session(&self, id_hash: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        sessions::Entity::update_many()
            .col_expr(sessions::Column::LastSeenAt, Expr::value(db_time(now)))
            .filter(sessions::Column::IdHash.eq(id_hash))
            .exec(&self.db)
            .await
            .during("touch session")?;
        Ok(())
    }

    /// Creates an API token for a user (audited); the token itself is never stored.
    pub async fn create_api_token(
        &self,
        user_id: i64,
        name: &str,
        token_hash: &str,
        prefix: &str,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        const OP: &str = "create api token";
        let txn = self.begin(OP).await?;
        let id = api_tokens::Entity::insert(api_tokens::ActiveModel {
            id: NotSet,
            user_id: Set(user_id),
            name: Set(name.to_string()),
            token_hash: Set(token_hash.to_string()),
            prefix: Set(prefix.to_string()),
            created_at: Set(db_time(now)),
            last_used_at: Set(None),
            revoked_at: Set(None),
        })
        .exec(&txn)
        .await
        .during(OP)?
        .last_insert_id;
        audit_in(
            &txn,
            actor,
            "token.create",
            &format!("token:{id}"),
            serde_json::json!({"name": name, "user_id": user_id}),
            now,
        )
        .await?;
        txn.commit().await.during(OP)?;
        Ok(id)
    }

    /// API tokens, of one user or all.
    pub async fn api_tokens(&self, user_id: Option<i64>) -> Result<Vec<ApiToken>, StoreError> {
        let mut q = api_tokens::Entity::find().order_by_desc(api_tokens::Column::Id);
        if let Some(id) = user_id {
            q = q.filter(api_tokens::Column::UserId.eq(id));
        }
        let rows = q.all(&self.db).await.during("list api tokens")?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let username = self
                .user(r.user_id)
                .await?
                .map(|u| u.username)
                .unwrap_or_default();
            out.push(ApiToken {
                id: r.id,
                user_id: r.user_id,
                username,
                name: r.name,
                prefix: r.prefix,
                created_at: r.created_at,
                last_used_at: r.last_used_at,
                revoked_at: r.revoked_at,
            });
        }
        Ok(out)
    }

    /// Revokes a token (audited); false if it was not active (or is not `user_id`'s, when
    /// given).
    pub async fn revoke_api_token(
        &self,
        id: i64,
        user_id: Option<i64>,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "revoke api token";
        let txn = self.begin(OP).await?;
        let mut update = api_tokens::Entity::update_many()
            .col_expr(api_tokens::Column::RevokedAt, Expr::value(db_time(now)))
            .filter(api_tokens::Column::Id.eq(id))
            .filter(api_tokens::Column::RevokedAt.is_null());
        if let Some(u) = user_id {
            update = update.filter(api_tokens::Column::UserId.eq(u));
        }
        let done = update.exec(&txn).await.during(OP)?.rows_affected == 1;
        if done {
            audit_in(
                &txn,
                actor,
                "token.revoke",
                &format!("token:{id}"),
                serde_json::json!({}),
                now,
            )
            .await?;
        }
        txn.commit().await.during(OP)?;
        Ok(done)
    }

    /// The active token with this hash and its (enabled) user; marks it used.
    pub async fn api_token_user(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        const OP: &str = "check api token";
        let Some(row) = api_tokens::Entity::find()
            .filter(api_tokens::Column::TokenHash.eq(token_hash))
            .filter(api_tokens::Column::RevokedAt.is_null())
            .one(&self.db)
            .await
            .during(OP)?
        else {
            return Ok(None);
        };
        let Some(u) = self.user(row.user_id).await?.filter(|u| !u.is_disabled()) else {
            return Ok(None);
        };
        api_tokens::Entity::update_many()
            .col_expr(api_tokens::Column::LastUsedAt, Expr::value(db_time(now)))
            .filter(api_tokens::Column::Id.eq(row.id))
            .exec(&self.db)
            .await
            .during(OP)?;
        Ok(Some(u))
    }

    /// A setting's value, if set.
    pub async fn setting(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        settings::Entity::find_by_id(key.to_string())
            .one(&self.db)
            .await
            .during("read setting")?
            .map(|r| from_json("settings", &r.key, &r.value))
            .transpose()
    }

    /// Sets a setting (audited).
    pub async fn set_setting(
        &self,
        key: &str,
        value: &serde_json::Value,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const OP: &str = "set setting";
        let txn = self.begin(OP).await?;
        let text = to_json("setting", value)?;
        let exists = settings::Entity::find_by_id(key.to_string())
            .count(&txn)
            .await
            .during(OP)?
            > 0;
        if exists {
            settings::Entity::update_many()
                .col_expr(settings::Column::Value, Expr::value(text))
                .col_expr(settings::Column::UpdatedAt, Expr::value(db_time(now)))
                .col_expr(settings::Column::UpdatedBy, Expr::value(actor.name.clone()))
                .filter(settings::Column::Key.eq(key))
                .exec(&txn)
                .await
                .during(OP)?;
        } else {
            settings::Entity::insert(settings::ActiveModel {
                key: Set(key.to_string()),
                value: Set(text),
                updated_at: Set(db_time(now)),
                updated_by: Set(actor.name.clone()),
            })
            .exec_without_returning(&txn)
            .await
            .during(OP)?;
        }
        audit_in(
            &txn,
            actor,
            "settings.change",
            &format!("setting:{key}"),
            serde_json::json!({"value": value}),
            now,
        )
        .await?;
        txn.commit().await.during(OP)?;
        Ok(())
    }
}
