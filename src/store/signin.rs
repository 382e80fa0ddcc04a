//! Signing in without a race, and every session change audited in its own transaction.
//!
//! A sign-in step (password or second factor) first *opens an attempt*: in one transaction,
//! serialised per account and per client address, the recent failures are counted and, under
//! the limits, the attempt is written down as a failure. Only then is the secret checked. So
//! fifty parallel guesses cannot all pass under a limit of five: the sixth waits for the
//! fifth's row and sees it. A correct secret later turns the row into a success in the same
//! transaction that creates (or completes) the session and writes its audit line.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
};

use super::entities::{login_attempts, sessions};
use super::staff::{Actor, User, audit_in};
use super::{QueryContext, Store, StoreError, db_time};

/// How many failures are allowed, and since when they count.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Failures for one account (since its last successful sign-in).
    pub per_user: u32,
    /// Failures from one client address (any account).
    pub per_ip: u32,
    /// Failures before this no longer count.
    pub since: DateTime<Utc>,
}

/// A sign-in attempt, recorded as a failure until [`Store::sign_in`] or
/// [`Store::second_factor_given`] turns it into a success.
#[derive(Debug)]
#[must_use = "an attempt ends in sign_in, second_factor_given or attempt_failed"]
pub struct Attempt {
    id: i64,
}

/// Whether a sign-in step may check its secret.
#[derive(Debug)]
pub enum Gate {
    Open(Attempt),
    /// Too many failures: nothing is checked (the refusal is audited).
    Throttled {
        failures_for_user: u64,
        failures_from_ip: u64,
    },
}

/// A session to start.
#[derive(Debug)]
pub struct NewSession<'a> {
    /// SHA-256 of the cookie's token.
    pub id_hash: &'a str,
    pub user: &'a User,
    pub csrf_token: &'a str,
    /// False while the user still owes their second factor.
    pub mfa_verified: bool,
    pub user_agent: Option<&'a str>,
}

/// Serialises sign-in steps for `key` until the transaction ends (PostgreSQL; SQLite's
/// `BEGIN IMMEDIATE` already serialises every writer).
async fn lock(txn: &DatabaseTransaction, key: &str, op: &'static str) -> Result<(), StoreError> {
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            [format!("trellis-login:{key}").into()],
        ))
        .await
        .during(op)?;
    }
    Ok(())
}

/// Failures for `username` since `since` and after its last success, and from
/// `client_ip` since `since`.
async fn failures(
    txn: &DatabaseTransaction,
    username: &str,
    client_ip: Option<&str>,
    since: DateTime<Utc>,
    op: &'static str,
) -> Result<(u64, u64), StoreError> {
    // Ids, not times, order attempts: several can share a timestamp.
    let last_success = login_attempts::Entity::find()
        .select_only()
        .column(login_attempts::Column::Id)
        .filter(login_attempts::Column::Username.eq(username))
        .filter(login_attempts::Column::Success.eq(true))
        .order_by_desc(login_attempts::Column::Id)
        .into_tuple::<i64>()
        .one(txn)
        .await
        .during(op)?;
    let by_user = login_attempts::Entity::find()
        .filter(login_attempts::Column::Username.eq(username))
        .filter(login_attempts::Column::Success.eq(false))
        .filter(login_attempts::Column::Id.gt(last_success.unwrap_or(0)))
        .filter(login_attempts::Column::At.gt(db_time(since)))
        .count(txn)
        .await
        .during(op)?;
    let by_ip = match client_ip {
        Some(ip) => login_attempts::Entity::find()
            .filter(login_attempts::Column::ClientIp.eq(ip))
            .filter(login_attempts::Column::Success.eq(false))
            .filter(login_attempts::Column::At.gt(db_time(since)))
            .count(txn)
            .await
            .during(op)?,
        None => 0,
    };
    Ok((by_user, by_ip))
}

/// Marks the attempt a success.
async fn succeed(
    txn: &DatabaseTransaction,
    attempt: &Attempt,
    op: &'static str,
) -> Result<(), StoreError> {
    login_attempts::Entity::update_many()
        .col_expr(login_attempts::Column::Success, Expr::value(true))
        .filter(login_attempts::Column::Id.eq(attempt.id))
        .exec(txn)
        .await
        .during(op)?;
    Ok(())
}

impl Store {
    /// Opens a sign-in step for `username` from `actor.client_ip`: under the limits, the
    /// attempt is recorded (as a failure, until it succeeds) before anything is checked;
    /// over them, the refusal is audited (`login.throttled`).
    pub async fn open_attempt(
        &self,
        username: &str,
        limits: LoginLimits,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Gate, StoreError> {
        const OP: &str = "open sign-in attempt";
        let txn = self.begin_write().await.during(OP)?;
        let ip = actor.client_ip.as_deref();
        lock(&txn, &format!("user:{username}"), OP).await?;
        if let Some(ip) = ip {
            lock(&txn, &format!("ip:{ip}"), OP).await?;
        }
        let (by_user, by_ip) = failures(&txn, username, ip, limits.since, OP).await?;
        if by_user >= u64::from(limits.per_user) || by_ip >= u64::from(limits.per_ip) {
            audit_in(
                &txn,
                actor,
                "login.throttled",
                &format!("user:{username}"),
                serde_json::json!({"failures_for_user": by_user, "failures_from_ip": by_ip}),
                now,
            )
            .await?;
            txn.commit().await.during(OP)?;
            return Ok(Gate::Throttled {
                failures_for_user: by_user,
                failures_from_ip: by_ip,
            });
        }
        let id = login_attempts::Entity::insert(login_attempts::ActiveModel {
            id: NotSet,
            username: Set(username.to_string()),
            client_ip: Set(ip.map(str::to_string)),
            at: Set(db_time(now)),
            success: Set(false),
        })
        .exec(&txn)
        .await
        .during(OP)?
        .last_insert_id;
        txn.commit().await.during(OP)?;
        Ok(Gate::Open(Attempt { id }))
    }

    /// The secret was wrong: the attempt stays a failure; `action` is audited.
    pub async fn attempt_failed(
        &self,
        attempt: Attempt,
        actor: &Actor,
        action: &str,
        target: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Attempt { id } = attempt;
        audit_in(
            &self.db,
            actor,
            action,
            target,
            serde_json::json!({"attempt": id}),
            now,
        )
        .await
    }

    /// The password was right: starts the session and audits it, in one transaction.
    /// Without a pending second factor this is a completed sign-in (`login.success`, the
    /// attempt a success); with one, the session is partial (`login.password`) and the attempt
    /// is dropped — a right password neither counts as a failure nor clears earlier ones.
    pub async fn sign_in(
        &self,
        attempt: Attempt,
        session: NewSession<'_>,
        actor: &Actor,
        detail: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const OP: &str = "sign in";
        let txn = self.begin_write().await.during(OP)?;
        if session.mfa_verified {
            succeed(&txn, &attempt, OP).await?;
        } else {
            login_attempts::Entity::delete_by_id(attempt.id)
                .exec(&txn)
                .await
                .during(OP)?;
        }
        insert_session(&txn, &session, actor.client_ip.as_deref(), now, OP).await?;
        let action = if session.mfa_verified {
            "login.success"
        } else {
            "login.password"
        };
        audit_in(
            &txn,
            actor,
            action,
            &format!("user:{}", session.user.username),
            detail,
            now,
        )
        .await?;
        txn.commit().await.during(OP)?;
        Ok(())
    }

    /// The second factor was right: the session is complete and the sign-in a success
    /// (audited, one transaction). False if the session is gone.
    pub async fn second_factor_given(
        &self,
        attempt: Attempt,
        id_hash: &str,
        actor: &Actor,
        detail: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "complete sign-in";
        let txn = self.begin_write().await.during(OP)?;
        let updated = sessions::Entity::update_many()
            .col_expr(sessions::Column::MfaVerified, Expr::value(true))
            .col_expr(sessions::Column::LastSeenAt, Expr::value(db_time(now)))
            .filter(sessions::Column::IdHash.eq(id_hash))
            .exec(&txn)
            .await
            .during(OP)?;
        if updated.rows_affected != 1 {
            return Ok(false);
        }
        succeed(&txn, &attempt, OP).await?;
        audit_in(
            &txn,
            actor,
            "login.success",
            &format!("user:{}", actor.name),
            detail,
            now,
        )
        .await?;
        txn.commit().await.during(OP)?;
        Ok(true)
    }

    /// Ends a session and audits why (`logout`, `session.expire`, `session.end`), in one
    /// transaction. False if there was no such session (nothing is audited then).
    pub async fn end_session(
        &self,
        id_hash: &str,
        actor: &Actor,
        action: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "end session";
        let txn = self.begin_write().await.during(OP)?;
        let deleted = sessions::Entity::delete_by_id(id_hash.to_string())
            .exec(&txn)
            .await
            .during(OP)?
            .rows_affected;
        if deleted == 0 {
            return Ok(false);
        }
        audit_in(
            &txn,
            actor,
            action,
            &format!("user:{}", actor.name),
            serde_json::json!({}),
            now,
        )
        .await?;
        txn.commit().await.during(OP)?;
        Ok(true)
    }
}

/// Writes a session row (inside the caller's transaction).
pub(super) async fn insert_session(
    txn: &impl ConnectionTrait,
    session: &NewSession<'_>,
    client_ip: Option<&str>,
    now: DateTime<Utc>,
    op: &'static str,
) -> Result<(), StoreError> {
    sessions::Entity::insert(sessions::ActiveModel {
        id_hash: Set(session.id_hash.to_string()),
        user_id: Set(session.user.id),
        created_at: Set(db_time(now)),
        last_seen_at: Set(db_time(now)),
        csrf_token: Set(session.csrf_token.to_string()),
        mfa_verified: Set(session.mfa_verified),
        client_ip: Set(client_ip.map(str::to_string)),
        user_agent: Set(session.user_agent.map(|u| u.chars().take(300).collect())),
    })
    .exec_without_returning(txn)
    .await
    .during(op)?;
    Ok(())
}
