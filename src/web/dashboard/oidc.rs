//! Single sign-on (OpenID Connect): `GET /dashboard/login/oidc` sends the browser to the
//! identity provider, `GET /dashboard/login/oidc/callback` brings it back and signs in.
//!
//! - The sign-in under way is kept in the store by the SHA-256 of its `state` (with the nonce,
//!   the PKCE verifier and where to go next) and taken — deleted — by the callback, so a
//!   `state` works once and for ten minutes. The `state` is also set in a `SameSite=Lax`
//!   cookie, so only the browser that started a sign-in can finish it.
//! - The ID token is verified by [`crate::oidc::Oidc`]; the configured rules give the role;
//!   the store signs in (creating the user at the first sign-in) in one transaction, audited
//!   (`login.success` with `{"via": "oidc"}`). A refusal is a page saying why — never the
//!   token's contents — and a `login.failure` line.
//! - The session cookie is `SameSite=Strict`, which a browser does not send on the redirect
//!   that follows the identity provider's (cross-site) redirect: the callback answers with a
//!   page that moves on by itself (`Refresh`) from this site instead.
//! - [`local_password_refused`] is how the password sign-in honours
//!   `dashboard.local_passwords`.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::auth::session_cookie;
use super::login::safe_next;
use super::{Page, render};
use crate::auth::{new_token, token_hash};
use crate::oidc::{OidcError, Refusal};
use crate::store::{Actor, SsoLogin, SsoOutcome, SsoSignIn};
use crate::web::{WebState, client_ip};

/// The cookie binding a sign-in under way to the browser that started it.
const STATE_COOKIE: &str = "trellis_oidc";

/// How long a sign-in may take at the identity provider.
const LOGIN_MAX_AGE: chrono::Duration = chrono::Duration::minutes(10);

#[derive(Deserialize)]
pub struct StartQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

#[derive(Serialize)]
struct SsoPage<'a> {
    text: &'a str,
    href: &'a str,
    link: &'a str,
    alert: bool,
}

/// A page of the sign-in flow: a message and one link on.
fn page(state: &WebState, status: StatusCode, title: &str, body: SsoPage<'_>) -> HttpResponse {
    render(
        state,
        "dashboard/sso",
        &Page::anonymous(title, body),
        status,
    )
}

/// Single sign-on did not sign anyone in: why, and a way back to the sign-in page.
fn refused(state: &WebState, status: StatusCode, text: &str) -> HttpResponse {
    let mut resp = page(
        state,
        status,
        "Not signed in",
        SsoPage {
            text,
            href: "/dashboard/login",
            link: "Back to sign-in",
            alert: true,
        },
    );
    resp.add_removal_cookie(&state_cookie("", state.secure_cookies))
        .unwrap_or_else(|error| tracing::warn!(%error, "oidc: cannot clear the state cookie"));
    resp
}

fn state_cookie(value: &str, secure: bool) -> actix_web::cookie::Cookie<'static> {
    actix_web::cookie::Cookie::build(STATE_COOKIE, value.to_string())
        .path("/dashboard/login/oidc")
        .http_only(true)
        .secure(secure)
        // Lax: the identity provider's redirect back is a cross-site top-level GET.
        .same_site(actix_web::cookie::SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::seconds(
            LOGIN_MAX_AGE.num_seconds(),
        ))
        .finish()
}

/// `scheme://host` of this request, for the default redirect URI.
fn request_origin(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

fn not_configured(state: &WebState) -> HttpResponse {
    refused(
        state,
        StatusCode::NOT_FOUND,
        "Single sign-on is not set up on this server. Sign in with your user name and password.",
    )
}

const UNAVAILABLE: &str = "Single sign-on is unavailable just now: the identity provider \
     could not be reached. Try again in a moment.";

/// `GET /dashboard/login/oidc`: to the identity provider.
pub async fn start(
    req: HttpRequest,
    state: web::Data<WebState>,
    query: web::Query<StartQuery>,
) -> HttpResponse {
    let Some(oidc) = state.oidc.clone() else {
        return not_configured(&state);
    };
    let redirect_url = oidc.redirect_url(&request_origin(&req));
    let started = match oidc.start(&redirect_url).await {
        Ok(s) => s,
        Err(error) => {
            tracing::error!(%error, "oidc: cannot start a sign-in");
            return refused(&state, StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE);
        }
    };
    let login = SsoLogin {
        nonce: started.nonce,
        pkce_verifier: started.pkce_verifier,
        redirect_url,
        next: safe_next(query.next.as_deref().unwrap_or("/dashboard")),
        created_at: state.clock.now(),
    };
    if let Err(error) = state
        .store
        .begin_sso_login(&token_hash(&started.state), &login, LOGIN_MAX_AGE)
        .await
    {
        tracing::error!(%error, "oidc: store failed");
        return refused(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            "Signing in is unavailable just now.",
        );
    }
    HttpResponse::SeeOther()
        .cookie(state_cookie(&started.state, state.secure_cookies))
        .insert_header((header::LOCATION, started.url.to_string()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /dashboard/login/oidc/callback`: the identity provider's answer.
pub async fn callback(
    req: HttpRequest,
    state: web::Data<WebState>,
    query: web::Query<CallbackQuery>,
) -> HttpResponse {
    let Some(oidc) = state.oidc.clone() else {
        return not_configured(&state);
    };
    let now = state.clock.now();
    let ip = client_ip(&req, &state.trusted_proxies).map(|a| a.to_string());
    let fail = async |target: &str, reason: &str, status: StatusCode, text: &str| {
        let audited = state
            .store
            .audit(
                &Actor::new(format!("anonymous:{target}"), ip.clone()),
                "login.failure",
                &if target.is_empty() {
                    "oidc:unknown".to_string()
                } else {
                    format!("user:{target}")
                },
                serde_json::json!({"via": "oidc", "reason": reason}),
                now,
            )
            .await;
        if let Err(error) = audited {
            tracing::error!(%error, "oidc: cannot audit a failed sign-in");
        }
        refused(&state, status, text)
    };
    let Some(sent_state) = query.state.as_deref().filter(|s| !s.is_empty()) else {
        return fail(
            "",
            "no state",
            StatusCode::BAD_REQUEST,
            "This is not a sign-in this server started. Start again from the sign-in page.",
        )
        .await;
    };
    let pending = match state
        .store
        .take_sso_login(&token_hash(sent_state), now, LOGIN_MAX_AGE)
        .await
    {
        Ok(p) => p,
        Err(error) => {
            tracing::error!(%error, "oidc: store failed");
            return refused(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                "Signing in is unavailable just now.",
            );
        }
    };
    let Some(pending) = pending else {
        return fail(
            "",
            "unknown or used state",
            StatusCode::BAD_REQUEST,
            "This sign-in has expired or was already used. Start again from the sign-in page.",
        )
        .await;
    };
    let same_browser = req
        .cookie(STATE_COOKIE)
        .is_some_and(|c| constant_time_eq(c.value().as_bytes(), sent_state.as_bytes()));
    if !same_browser {
        return fail(
            "",
            "state cookie mismatch",
            StatusCode::BAD_REQUEST,
            "This sign-in was started in another browser (or its cookie has expired). Start \
             again from the sign-in page.",
        )
        .await;
    }
    if query.error.is_some() {
        return fail(
            "",
            "identity provider refused",
            StatusCode::UNAUTHORIZED,
            "The identity provider did not sign you in.",
        )
        .await;
    }
    let Some(code) = query.code.as_deref().filter(|c| !c.is_empty()) else {
        return fail(
            "",
            "no code",
            StatusCode::BAD_REQUEST,
            "The identity provider's answer was incomplete. Start again from the sign-in page.",
        )
        .await;
    };
    let identity = match oidc
        .finish(
            code,
            &pending.pkce_verifier,
            &pending.nonce,
            &pending.redirect_url,
        )
        .await
    {
        Ok(i) => i,
        Err(error) => {
            tracing::warn!(%error, "oidc: sign-in failed");
            let (status, text) = match error {
                OidcError::Provider(_) => (StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE),
                _ => (
                    StatusCode::UNAUTHORIZED,
                    "The identity provider's answer could not be verified, so you are not \
                     signed in. If this keeps happening, tell your administrator.",
                ),
            };
            return fail("", error.kind(), status, text).await;
        }
    };
    let decision = match oidc.decide(&identity) {
        Ok(d) => d,
        Err(refusal) => {
            let who = identity
                .email
                .as_deref()
                .unwrap_or_default()
                .to_ascii_lowercase();
            let text = match refusal {
                Refusal::NoEmail => {
                    "The identity provider did not give a verified email address for your \
                     account, so Trellis cannot tell who you are. Ask your administrator."
                }
                Refusal::Domain(_) => {
                    "Your account's email domain is not allowed to sign in to this Trellis. \
                     Ask your administrator."
                }
                Refusal::NoRole => {
                    "Your account is not in any group that has access to this Trellis, so \
                     you are not signed in. Ask your administrator for access."
                }
            };
            return fail(&who, refusal.reason(), StatusCode::FORBIDDEN, text).await;
        }
    };
    let (Ok((token, id_hash)), Ok((csrf, _))) = (new_token(""), new_token("")) else {
        return refused(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            "Signing in is unavailable just now.",
        );
    };
    let sign_in = SsoSignIn {
        issuer: identity.issuer,
        subject: identity.subject,
        email: decision.email.clone(),
        display_name: decision.display_name,
        role: decision.role,
        email_verified: identity.email_verified == Some(true),
        idp_mfa: decision.idp_mfa,
        session_hash: id_hash,
        csrf,
        client_ip: ip.clone(),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    let mfa_verified = match state.store.sso_sign_in(&sign_in, now).await {
        Ok(SsoOutcome::SignedIn { mfa_verified, .. }) => mfa_verified,
        Ok(SsoOutcome::Disabled(user)) => {
            return fail(
                &user.username,
                "disabled",
                StatusCode::FORBIDDEN,
                "Your Trellis account is disabled, so you are not signed in. Ask your \
                 administrator.",
            )
            .await;
        }
        Ok(SsoOutcome::Conflict(user)) => {
            return fail(
                &user.username,
                "user exists, not linkable",
                StatusCode::FORBIDDEN,
                "A Trellis user with your email address exists but is tied to another \
                 account (or your email address is not verified), so you are not signed in. \
                 Ask your administrator.",
            )
            .await;
        }
        Err(error) => {
            tracing::error!(%error, "oidc: cannot sign in");
            return refused(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                "Signing in is unavailable just now.",
            );
        }
    };
    let to = if mfa_verified {
        pending.next
    } else {
        format!(
            "/dashboard/login/mfa?next={}",
            percent_encoding::utf8_percent_encode(
                &pending.next,
                percent_encoding::NON_ALPHANUMERIC
            )
        )
    };
    let mut resp = page(
        &state,
        StatusCode::OK,
        "Signed in",
        SsoPage {
            text: "You are signed in.",
            href: &to,
            link: "Continue",
            alert: false,
        },
    );
    let moved = resp
        .add_cookie(&session_cookie(&token, state.secure_cookies))
        .and_then(|()| resp.add_removal_cookie(&state_cookie("", state.secure_cookies)));
    if let Err(error) = moved {
        tracing::error!(%error, "oidc: cannot set the session cookie");
        return refused(
            &state,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Signing in failed. Try again.",
        );
    }
    if let Ok(v) = header::HeaderValue::from_str(&format!("0; url={to}")) {
        resp.headers_mut()
            .insert(header::HeaderName::from_static("refresh"), v);
    }
    resp
}

/// Whether a password sign-in for `username` must be refused because local passwords are
/// off (`dashboard.local_passwords`) and the user is not a break-glass one; a refusal is
/// audited as a failed sign-in.
pub async fn local_password_refused(
    state: &WebState,
    username: &str,
    client_ip: Option<&str>,
) -> bool {
    if state.dashboard.local_passwords.allows(username) {
        return false;
    }
    let audited = state
        .store
        .audit(
            &Actor::new(
                format!("anonymous:{username}"),
                client_ip.map(str::to_string),
            ),
            "login.failure",
            &format!("user:{username}"),
            serde_json::json!({"reason": "local passwords are off"}),
            state.clock.now(),
        )
        .await;
    if let Err(error) = audited {
        tracing::error!(%error, "sign-in: cannot audit a refused password");
    }
    true
}

/// What the login page says when a password is refused because local passwords are off.
pub const LOCAL_PASSWORDS_OFF: &str =
    "Sign-in with a password is turned off here: use single sign-on.";
