//! Who is asking: the signed-in staff member behind a dashboard request (session cookie) or an
//! API request (bearer token), checked on every request.
//!
//! - Sessions: a random token in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` when
//!   configured); the store keeps its SHA-256. A session ends after the idle timeout, after the
//!   absolute timeout, at sign-out, and when the user is disabled or their password changes.
//! - A session whose user has a second factor is only *partial* until the code is given; a
//!   user who must have one (the admin's MFA setting) can only enrol until they do.
//! - State-changing requests carry the session's CSRF token and a same-origin `Origin` (or
//!   `Referer`).
//! - Unauthenticated: pages redirect to the sign-in page, the API answers 401. Forbidden by
//!   role: 403.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use chrono::{DateTime, Utc};

use crate::auth::{Permission, Role, token_hash};
use crate::store::{Session, User};
use crate::web::WebState;

/// The session cookie (`__Host-` prefixed when it is `Secure`).
pub const COOKIE: &str = "trellis_session";
pub const SECURE_COOKIE: &str = "__Host-trellis_session";

/// Settings key of the MFA requirement.
pub const MFA_SETTING: &str = "mfa.required";

/// How often `last_seen_at` is written for an active session.
const TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);

/// Who must have a second factor (the admin's setting).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MfaPolicy {
    /// Everyone.
    #[serde(default)]
    pub all: bool,
    /// These roles.
    #[serde(default)]
    pub roles: Vec<Role>,
}

impl MfaPolicy {
    pub fn requires(&self, role: Role) -> bool {
        self.all || self.roles.contains(&role)
    }
}

/// How the request was authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A browser session: its token's hash and CSRF token.
    Session { id_hash: String, csrf: String },
    /// An API token.
    Token,
}

/// A fully signed-in staff member (second factor given where needed).
#[derive(Debug, Clone)]
pub struct Staff {
    pub user: User,
    pub via: Via,
    pub client_ip: Option<String>,
}

impl Staff {
    /// Refuses (403) unless the user's role allows `action`.
    pub fn require(&self, action: Permission) -> Result<(), AuthError> {
        if self.user.role.can(action) {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                api: matches!(self.via, Via::Token),
            })
        }
    }

    /// The CSRF token of the session (empty for API tokens).
    pub fn csrf(&self) -> &str {
        match &self.via {
            Via::Session { csrf, .. } => csrf,
            Via::Token => "",
        }
    }

    /// The audit log's view of this user.
    pub fn actor(&self) -> crate::store::Actor {
        crate::store::Actor::new(self.user.username.clone(), self.client_ip.clone())
    }

    /// Checks a state-changing browser request: the form's CSRF token and a same-origin
    /// `Origin`/`Referer`. API tokens (no cookies, so no CSRF) pass.
    pub fn check_post(&self, req: &HttpRequest, form_csrf: &str) -> Result<(), AuthError> {
        let Via::Session { csrf, .. } = &self.via else {
            return Ok(());
        };
        if !constant_time_eq(csrf.as_bytes(), form_csrf.as_bytes()) || !same_origin(req) {
            return Err(AuthError::Csrf);
        }
        Ok(())
    }
}

pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `Origin` (or, without it, `Referer`) names this server.
pub fn same_origin(req: &HttpRequest) -> bool {
    let info = req.connection_info();
    let host = info.host().to_ascii_lowercase();
    let from = req
        .headers()
        .get(header::ORIGIN)
        .or_else(|| req.headers().get(header::REFERER))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| url::Url::parse(v).ok());
    let Some(from) = from else {
        return false;
    };
    let authority = match (from.host_str(), from.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => return false,
    };
    authority.eq_ignore_ascii_case(&host)
        || state_base_origin(req)
            .is_some_and(|o| o.eq_ignore_ascii_case(&from.origin().ascii_serialization()))
}

fn state_base_origin(req: &HttpRequest) -> Option<String> {
    let state = req.app_data::<web::Data<WebState>>()?;
    state
        .site
        .inputs()
        .trust
        .base_url
        .as_ref()
        .map(|b| b.origin())
}

/// Why a request is refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("sign in required")]
    Unauthenticated { api: bool, next: String },
    #[error("the second factor is required")]
    MfaPending,
    #[error("a second factor must be set up first")]
    MfaEnrolment { api: bool },
    #[error("your role does not allow this")]
    Forbidden { api: bool },
    #[error("the form has expired or came from another site; reload the page and try again")]
    Csrf,
    #[error("temporarily unavailable")]
    Unavailable { api: bool },
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            AuthError::Unauthenticated { api: true, .. } => StatusCode::UNAUTHORIZED,
            AuthError::MfaEnrolment { api: true } => StatusCode::FORBIDDEN,
            AuthError::Unauthenticated { .. }
            | AuthError::MfaPending
            | AuthError::MfaEnrolment { .. } => StatusCode::SEE_OTHER,
            AuthError::Forbidden { .. } | AuthError::Csrf => StatusCode::FORBIDDEN,
            AuthError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let redirect = |to: String| {
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, to))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish()
        };
        let json = |status: StatusCode, error: &str| {
            let mut resp = HttpResponse::build(status)
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(serde_json::json!({"error": error}));
            if status == StatusCode::UNAUTHORIZED {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"trellis\""),
                );
            }
            resp
        };
        match self {
            AuthError::Unauthenticated { api: true, .. } => {
                json(StatusCode::UNAUTHORIZED, "authentication required")
            }
            AuthError::Unauthenticated { next, .. } => {
                let next =
                    percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC);
                redirect(format!("/dashboard/login?next={next}"))
            }
            AuthError::MfaPending => redirect("/dashboard/login/mfa".into()),
            AuthError::MfaEnrolment { api: true } => json(
                StatusCode::FORBIDDEN,
                "two-step verification must be set up in the dashboard before this account can \
                 use the API",
            ),
            AuthError::MfaEnrolment { .. } => redirect("/dashboard/account/mfa".into()),
            AuthError::Forbidden { api: true } => json(StatusCode::FORBIDDEN, "forbidden"),
            AuthError::Unavailable { api: true } => {
                json(StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            other => HttpResponse::build(other.status_code())
                .content_type(header::ContentType::plaintext())
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .body(match other {
                    AuthError::Forbidden { .. } => {
                        "Forbidden: your role does not allow this.".to_string()
                    }
                    AuthError::Csrf => {
                        "Forbidden: the form has expired or came from another site. Go back, \
                         reload the page and try again."
                            .to_string()
                    }
                    _ => "Temporarily unavailable.".to_string(),
                }),
        }
    }
}

/// A signed-in user who may still owe the second factor, or must enrol one: what the
/// sign-in and enrolment pages accept.
#[derive(Debug, Clone)]
pub struct PartialStaff {
    pub user: User,
    pub id_hash: String,
    pub csrf: String,
    pub mfa_verified: bool,
    pub client_ip: Option<String>,
}

impl PartialStaff {
    pub fn check_post(&self, req: &HttpRequest, form_csrf: &str) -> Result<(), AuthError> {
        Staff {
            user: self.user.clone(),
            via: Via::Session {
                id_hash: self.id_hash.clone(),
                csrf: self.csrf.clone(),
            },
            client_ip: self.client_ip.clone(),
        }
        .check_post(req, form_csrf)
    }

    pub fn actor(&self) -> crate::store::Actor {
        crate::store::Actor::new(self.user.username.clone(), self.client_ip.clone())
    }
}

fn is_api(req: &HttpRequest) -> bool {
    req.path().starts_with("/api/")
}

fn cookie_token(req: &HttpRequest) -> Option<String> {
    [SECURE_COOKIE, COOKIE]
        .iter()
        .find_map(|name| req.cookie(name))
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty() && v.len() <= 200)
}

fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty() && t.len() <= 200)
}

/// The session behind the cookie, if it is still valid at `now` (an expired one is deleted).
async fn live_session(
    state: &WebState,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<(String, Session)>, AuthError> {
    let api = false;
    let id_hash = token_hash(token);
    let session = state
        .store
        .session(&id_hash)
        .await
        .map_err(|e| unavailable(api, &e))?;
    let Some(session) = session else {
        return Ok(None);
    };
    let cfg = &state.dashboard;
    let idle = now - session.last_seen_at > cfg.session_idle_timeout.get();
    let old = now - session.created_at > cfg.session_absolute_timeout.get();
    if idle || old || session.user.is_disabled() {
        // Ended with its audit line; if that cannot be written the request fails (the
        // session stays refused either way, being expired).
        let actor = crate::store::Actor::new(session.user.username.clone(), None);
        state
            .store
            .end_session(&id_hash, &actor, "session.expire", now)
            .await
            .map_err(|e| unavailable(api, &e))?;
        return Ok(None);
    }
    if now - session.last_seen_at > TOUCH_EVERY {
        state
            .store
            .touch_session(&id_hash, now)
            .await
            .map_err(|e| unavailable(api, &e))?;
    }
    Ok(Some((id_hash, session)))
}

/// The identity provider's MFA counted for this single sign-on session.
async fn idp_mfa(state: &WebState, id_hash: &str, api: bool) -> Result<bool, AuthError> {
    (state.store.session_idp_mfa(id_hash).await).map_err(|e| unavailable(api, &e))
}

fn unavailable(api: bool, error: &crate::store::StoreError) -> AuthError {
    tracing::error!(%error, "authentication: store failed");
    AuthError::Unavailable { api }
}

/// The admin's MFA policy (none set: not required). Fails closed: a policy that cannot be
/// read, or is not one, requires a second factor of everyone.
pub async fn mfa_policy(state: &WebState) -> MfaPolicy {
    let everyone = MfaPolicy {
        all: true,
        roles: Vec::new(),
    };
    match state.store.setting(MFA_SETTING).await {
        Ok(Some(v)) => serde_json::from_value(v).unwrap_or_else(|error| {
            tracing::error!(%error, "the mfa policy setting is malformed; requiring mfa of everyone");
            everyone
        }),
        Ok(None) => MfaPolicy::default(),
        Err(error) => {
            tracing::error!(%error, "cannot read the mfa policy; requiring mfa of everyone");
            everyone
        }
    }
}

async fn authenticate(req: HttpRequest) -> Result<Staff, AuthError> {
    let api = is_api(&req);
    let state = req
        .app_data::<web::Data<WebState>>()
        .cloned()
        .ok_or(AuthError::Unavailable { api })?;
    let now = state.clock.now();
    let client_ip = crate::web::client_ip(&req, &state.trusted_proxies).map(|a| a.to_string());
    let next = req
        .uri()
        .path_and_query()
        .map_or("/dashboard", |p| p.as_str())
        .to_string();
    if api && let Some(token) = bearer_token(&req) {
        let user = state
            .store
            .api_token_user(&token_hash(&token), now)
            .await
            .map_err(|e| unavailable(api, &e))?
            .ok_or(AuthError::Unauthenticated {
                api,
                next: next.clone(),
            })?;
        // A token acts for its user as they are now: one who must set up two-step
        // verification first cannot act through a token either.
        if !user.mfa_enabled && mfa_policy(&state).await.requires(user.role) {
            return Err(AuthError::MfaEnrolment { api });
        }
        return Ok(Staff {
            user,
            via: Via::Token,
            client_ip,
        });
    }
    let Some(token) = cookie_token(&req) else {
        return Err(AuthError::Unauthenticated { api, next });
    };
    let Some((id_hash, session)) = live_session(&state, &token, now).await? else {
        return Err(AuthError::Unauthenticated { api, next });
    };
    if !session.mfa_verified {
        return Err(if api {
            AuthError::Unauthenticated { api, next }
        } else {
            AuthError::MfaPending
        });
    }
    if !session.user.mfa_enabled
        && mfa_policy(&state).await.requires(session.user.role)
        && !idp_mfa(&state, &id_hash, api).await?
    {
        return Err(AuthError::MfaEnrolment { api });
    }
    Ok(Staff {
        user: session.user,
        via: Via::Session {
            id_hash,
            csrf: session.csrf_token,
        },
        client_ip,
    })
}

async fn authenticate_partial(req: HttpRequest) -> Result<PartialStaff, AuthError> {
    let state = req
        .app_data::<web::Data<WebState>>()
        .cloned()
        .ok_or(AuthError::Unavailable { api: false })?;
    let now = state.clock.now();
    let next = "/dashboard".to_string();
    let Some(token) = cookie_token(&req) else {
        return Err(AuthError::Unauthenticated { api: false, next });
    };
    let Some((id_hash, session)) = live_session(&state, &token, now).await? else {
        return Err(AuthError::Unauthenticated { api: false, next });
    };
    Ok(PartialStaff {
        user: session.user,
        id_hash,
        csrf: session.csrf_token,
        mfa_verified: session.mfa_verified,
        client_ip: crate::web::client_ip(&req, &state.trusted_proxies).map(|a| a.to_string()),
    })
}

impl FromRequest for Staff {
    type Error = AuthError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        Box::pin(authenticate(req.clone()))
    }
}

impl FromRequest for PartialStaff {
    type Error = AuthError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        Box::pin(authenticate_partial(req.clone()))
    }
}

/// The `Set-Cookie` of a new session (or, with an empty token, of its removal).
pub fn session_cookie(token: &str, secure: bool) -> actix_web::cookie::Cookie<'static> {
    let mut cookie = actix_web::cookie::Cookie::build(
        if secure { SECURE_COOKIE } else { COOKIE },
        token.to_string(),
    )
    .path("/")
    .http_only(true)
    .secure(secure)
    .same_site(actix_web::cookie::SameSite::Strict)
    .finish();
    if token.is_empty() {
        cookie.make_removal();
    }
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mfa_policy_by_role() {
        let p = MfaPolicy {
            all: false,
            roles: vec![Role::Admin, Role::Security],
        };
        assert!(p.requires(Role::Admin) && p.requires(Role::Security));
        assert!(!p.requires(Role::Viewer));
        assert!(
            MfaPolicy {
                all: true,
                roles: vec![]
            }
            .requires(Role::Viewer)
        );
        assert!(!MfaPolicy::default().requires(Role::Admin));
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_when_asked() {
        let c = session_cookie("tok", true).to_string();
        assert!(c.starts_with("__Host-trellis_session=tok"), "{c}");
        for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
            assert!(c.contains(attr), "{attr}: {c}");
        }
        let c = session_cookie("tok", false).to_string();
        assert!(
            c.starts_with("trellis_session=tok") && !c.contains("Secure"),
            "{c}"
        );
        let gone = session_cookie("", false).to_string();
        assert!(gone.contains("Max-Age=0"), "{gone}");
    }
}
