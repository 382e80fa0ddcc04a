//! Single sign-on (OpenID Connect): sign-ins under way (single-use `state`), the identity
//! provider's accounts behind users, and sessions started through the identity provider.
//!
//! A sign-in is one transaction: the user is found by the ID token's (`iss`, `sub`) — or, the
//! first time, linked by email to an existing user or created — their role follows the
//! identity provider's claims, and the session is started, each change with its audit line.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, EntityTrait, QueryFilter,
};

use super::entities::{login_attempts, sso_identities, sso_logins, sso_sessions, users};
use super::signin::{NewSession, insert_session};
use super::staff::{Actor, User, audit_in, insert_user, user as user_from_row};
use super::{QueryContext, Store, StoreError, db_time};
use crate::auth::Role;

/// Stored in place of a password hash for users created by single sign-on: not a PHC
/// string, so no password ever verifies against it.
pub const NO_PASSWORD: &str = "!sso";

/// A single sign-on under way: what the callback needs to finish it.
#[derive(Clone, PartialEq, Eq)]
pub struct SsoLogin {
    pub nonce: String,
    pub pkce_verifier: String,
    /// The `redirect_uri` sent to the identity provider (the token request repeats it).
    pub redirect_url: String,
    /// Where to go after signing in.
    pub next: String,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for SsoLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoLogin")
            .field("redirect_url", &self.redirect_url)
            .field("next", &self.next)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// Who the identity provider says signed in, and the session to start for them.
#[derive(Debug, Clone)]
pub struct SsoSignIn {
    /// The ID token's `iss` and `sub`.
    pub issuer: String,
    pub subject: String,
    /// The (lower-cased) email address: the user name of a user created here.
    pub email: String,
    pub display_name: String,
    /// The role the claims map to.
    pub role: Role,
    /// The provider says the email address is verified (`email_verified: true`): only then
    /// is an existing user of that name linked to the account.
    pub email_verified: bool,
    /// The identity provider's authentication counts as the second factor.
    pub idp_mfa: bool,
    /// SHA-256 of the new session's token, and its CSRF token.
    pub session_hash: String,
    pub csrf: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// How a single sign-on ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsoOutcome {
    /// A session was started; it still owes Trellis's own second factor unless `mfa_verified`.
    SignedIn {
        user: User,
        mfa_verified: bool,
        /// The user was created by this sign-in.
        created: bool,
    },
    /// The user is disabled in Trellis: nothing was changed.
    Disabled(User),
    /// A user of this email exists but cannot be linked to this account: it is linked to
    /// another one already, or the provider did not say the email is verified.
    Conflict(User),
}

impl Store {
    /// Records a single sign-on under way, by the SHA-256 of its `state`; forgets those older
    /// than `max_age`.
    pub async fn begin_sso_login(
        &self,
        state_hash: &str,
        login: &SsoLogin,
        max_age: chrono::Duration,
    ) -> Result<(), StoreError> {
        const OP: &str = "begin single sign-on";
        sso_logins::Entity::delete_many()
            .filter(sso_logins::Column::CreatedAt.lt(db_time(login.created_at - max_age)))
            .exec(&self.db)
            .await
            .during(OP)?;
        sso_logins::Entity::insert(sso_logins::ActiveModel {
            state_hash: Set(state_hash.to_string()),
            nonce: Set(login.nonce.clone()),
            pkce_verifier: Set(login.pkce_verifier.clone()),
            redirect_url: Set(login.redirect_url.clone()),
            next: Set(login.next.clone()),
            created_at: Set(db_time(login.created_at)),
        })
        .exec_without_returning(&self.db)
        .await
        .during(OP)?;
        Ok(())
    }

    /// Takes the single sign-on with this `state` hash: it is deleted, so a replayed `state`
    /// finds nothing. `None` if unknown, already taken, or older than `max_age` at `now`.
    pub async fn take_sso_login(
        &self,
        state_hash: &str,
        now: DateTime<Utc>,
        max_age: chrono::Duration,
    ) -> Result<Option<SsoLogin>, StoreError> {
        const OP: &str = "finish single sign-on";
        let txn = self.begin_write().await.during(OP)?;
        let Some(row) = sso_logins::Entity::find_by_id(state_hash.to_string())
            .one(&txn)
            .await
            .during(OP)?
        else {
            return Ok(None);
        };
        let deleted = sso_logins::Entity::delete_by_id(state_hash.to_string())
            .exec(&txn)
            .await
            .during(OP)?
            .rows_affected;
        txn.commit().await.during(OP)?;
        // Two callbacks racing for one state: only the one that deleted the row goes on.
        if deleted != 1 || now - row.created_at > max_age {
            return Ok(None);
        }
        Ok(Some(SsoLogin {
            nonce: row.nonce,
            pkce_verifier: row.pkce_verifier,
            redirect_url: row.redirect_url,
            next: row.next,
            created_at: row.created_at,
        }))
    }

    /// Signs in the identity provider's account: finds its user (or links the user named by
    /// its email, or creates one), brings the role in line with the claims, and starts the
    /// session — one transaction, every change audited. A disabled user changes nothing.
    pub async fn sso_sign_in(
        &self,
        sign_in: &SsoSignIn,
        now: DateTime<Utc>,
    ) -> Result<SsoOutcome, StoreError> {
        const OP: &str = "single sign-on";
        let txn = self.begin_write().await.during(OP)?;
        let actor = Actor::new(sign_in.email.clone(), sign_in.client_ip.clone());
        let target = format!("user:{}", sign_in.email);
        let identity =
            sso_identities::Entity::find_by_id((sign_in.issuer.clone(), sign_in.subject.clone()))
                .one(&txn)
                .await
                .during(OP)?;
        let mut created = false;
        let row = match identity {
            Some(identity) => users::Entity::find_by_id(identity.user_id)
                .one(&txn)
                .await
                .during(OP)?,
            None => None,
        };
        let row = match row {
            Some(row) => row,
            None => {
                let existing = users::Entity::find()
                    .filter(users::Column::Username.eq(sign_in.email.as_str()))
                    .one(&txn)
                    .await
                    .during(OP)?;
                let row = match existing {
                    Some(row) => row,
                    None => {
                        created = true;
                        let id = insert_user(
                            &txn,
                            &sign_in.email,
                            &sign_in.display_name,
                            sign_in.role,
                            NO_PASSWORD,
                            now,
                            OP,
                        )
                        .await?;
                        audit_in(
                            &txn,
                            &actor,
                            "user.add",
                            &target,
                            serde_json::json!({
                                "role": sign_in.role,
                                "display_name": sign_in.display_name,
                                "via": "oidc",
                            }),
                            now,
                        )
                        .await?;
                        users::Entity::find_by_id(id)
                            .one(&txn)
                            .await
                            .during(OP)?
                            .ok_or_else(|| StoreError::Corrupt {
                                table: "users",
                                id: id.to_string(),
                                detail: "the new user cannot be read back".into(),
                            })?
                    }
                };
                let found = user_from_row(&row)?;
                if found.is_disabled() {
                    return Ok(SsoOutcome::Disabled(found));
                }
                if !created {
                    // Never take over a user linked to another account, nor link on an
                    // email address the provider does not vouch for.
                    let linked = sso_identities::Entity::find()
                        .filter(sso_identities::Column::UserId.eq(row.id))
                        .one(&txn)
                        .await
                        .during(OP)?;
                    if linked.is_some() || !sign_in.email_verified {
                        return Ok(SsoOutcome::Conflict(found));
                    }
                }
                sso_identities::Entity::insert(sso_identities::ActiveModel {
                    issuer: Set(sign_in.issuer.clone()),
                    subject: Set(sign_in.subject.clone()),
                    user_id: Set(row.id),
                    created_at: Set(db_time(now)),
                    last_login_at: Set(db_time(now)),
                })
                .exec_without_returning(&txn)
                .await
                .during(OP)?;
                if !created {
                    audit_in(
                        &txn,
                        &actor,
                        "user.sso.link",
                        &format!("user:{}", row.username),
                        serde_json::json!({"issuer": sign_in.issuer}),
                        now,
                    )
                    .await?;
                }
                row
            }
        };
        let mut user = user_from_row(&row)?;
        if user.is_disabled() {
            return Ok(SsoOutcome::Disabled(user));
        }
        let target = format!("user:{}", user.username);
        let actor = Actor::new(user.username.clone(), sign_in.client_ip.clone());
        if user.role != sign_in.role {
            users::Entity::update_many()
                .col_expr(users::Column::Role, Expr::value(sign_in.role.as_str()))
                .filter(users::Column::Id.eq(user.id))
                .exec(&txn)
                .await
                .during(OP)?;
            audit_in(
                &txn,
                &actor,
                "user.role",
                &target,
                serde_json::json!({"role": sign_in.role, "from": user.role, "via": "oidc"}),
                now,
            )
            .await?;
            user.role = sign_in.role;
        }
        sso_identities::Entity::update_many()
            .col_expr(
                sso_identities::Column::LastLoginAt,
                Expr::value(db_time(now)),
            )
            .filter(sso_identities::Column::UserId.eq(user.id))
            .exec(&txn)
            .await
            .during(OP)?;
        // The same rule as a password sign-in: with Trellis's own second factor, the session
        // is partial until the code is given — unless the identity provider's counts.
        let mfa_verified = sign_in.idp_mfa || !user.mfa_enabled;
        let session = NewSession {
            id_hash: &sign_in.session_hash,
            user: &user,
            csrf_token: &sign_in.csrf,
            mfa_verified,
            user_agent: sign_in.user_agent.as_deref(),
        };
        insert_session(&txn, &session, sign_in.client_ip.as_deref(), now, OP).await?;
        sso_sessions::Entity::insert(sso_sessions::ActiveModel {
            id_hash: Set(sign_in.session_hash.clone()),
            idp_mfa: Set(sign_in.idp_mfa),
        })
        .exec_without_returning(&txn)
        .await
        .during(OP)?;
        // A completed sign-in clears the account's failure count; one that still owes
        // Trellis's own second factor does not (as with a password), or each SSO sign-in
        // would buy another round of code guesses.
        if mfa_verified {
            login_attempts::Entity::insert(login_attempts::ActiveModel {
                id: NotSet,
                username: Set(user.username.clone()),
                client_ip: Set(sign_in.client_ip.clone()),
                at: Set(db_time(now)),
                success: Set(true),
            })
            .exec_without_returning(&txn)
            .await
            .during(OP)?;
        }
        let (action, detail) = if mfa_verified {
            let detail = if sign_in.idp_mfa {
                serde_json::json!({"via": "oidc", "second_factor": "identity provider"})
            } else {
                serde_json::json!({"via": "oidc"})
            };
            ("login.success", detail)
        } else {
            ("login.oidc", serde_json::json!({"via": "oidc"}))
        };
        audit_in(&txn, &actor, action, &target, detail, now).await?;
        txn.commit().await.during(OP)?;
        Ok(SsoOutcome::SignedIn {
            user,
            mfa_verified,
            created,
        })
    }

    /// Whether this session's second factor came from the identity provider (so the user
    /// need not enrol Trellis's own).
    pub async fn session_idp_mfa(&self, id_hash: &str) -> Result<bool, StoreError> {
        Ok(sso_sessions::Entity::find_by_id(id_hash.to_string())
            .one(&self.db)
            .await
            .during("read session")?
            .is_some_and(|s| s.idp_mfa))
    }
}
