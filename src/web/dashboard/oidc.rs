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

use super::auth::{constant_time_eq, session_cookie};
use super::login::safe_next;
use super::{Page, render};
use crate::auth::{new_token, token_hash};
use crate::oidc::{Decision, Identity, OidcError, Refusal};
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

/// Why the callback signs no one in. Every refusal with a reason is audited as a
/// failed sign-in (`login.failure`, with the reason) and shown as a page saying why.
struct Refused {
    /// The user name it concerns, when known.
    who: String,
    reason: &'static str,
    status: StatusCode,
    text: &'static str,
}

impl Refused {
    fn new(reason: &'static str, status: StatusCode, text: &'static str) -> Refused {
        Refused {
            who: String::new(),
            reason,
            status,
            text,
        }
    }

    fn of(who: &str, reason: &'static str, text: &'static str) -> Refused {
        Refused {
            who: who.to_string(),
            reason,
            status: StatusCode::FORBIDDEN,
            text,
        }
    }

    /// The store or the randomness failed: nothing to audit (no reason), try again later.
    fn unavailable() -> Refused {
        Refused::new(
            "",
            StatusCode::SERVICE_UNAVAILABLE,
            "Signing in is unavailable just now.",
        )
    }
}

const START_AGAIN: &str =
    "This is not a sign-in this server started. Start again from the sign-in page.";

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
    let signed_in = async {
        let (pending, identity) = verified_identity(&req, &state, &oidc, &query, now).await?;
        let decision = oidc.decide(&identity).map_err(|refusal| {
            let who = identity.email.as_deref().unwrap_or_default();
            Refused::of(
                &who.to_ascii_lowercase(),
                refusal.reason(),
                refusal_text(&refusal),
            )
        })?;
        let (token, mfa_verified) =
            start_session(&req, &state, identity, decision, ip.clone(), now).await?;
        Ok::<_, Refused>((pending.next, token, mfa_verified))
    };
    match signed_in.await {
        Ok((next, token, mfa_verified)) => {
            let to = if mfa_verified {
                next
            } else {
                super::login::mfa_step_url(&next)
            };
            landing(&state, &token, &to)
        }
        Err(why) => refusal(&state, ip, why, now).await,
    }
}

/// The sign-in under way that this answer finishes (its `state` taken once, from the browser
/// that started it) and the identity in its verified ID token.
async fn verified_identity(
    req: &HttpRequest,
    state: &WebState,
    oidc: &crate::oidc::Oidc,
    query: &CallbackQuery,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(SsoLogin, Identity), Refused> {
    let bad = |reason, text| Refused::new(reason, StatusCode::BAD_REQUEST, text);
    let sent_state = query
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("no state", START_AGAIN))?;
    let pending = state
        .store
        .take_sso_login(&token_hash(sent_state), now, LOGIN_MAX_AGE)
        .await
        .map_err(|error| {
            tracing::error!(%error, "oidc: store failed");
            Refused::unavailable()
        })?
        .ok_or_else(|| {
            bad(
                "unknown or used state",
                "This sign-in has expired or was already used. Start again from the sign-in \
                 page.",
            )
        })?;
    let same_browser = req
        .cookie(STATE_COOKIE)
        .is_some_and(|c| constant_time_eq(c.value().as_bytes(), sent_state.as_bytes()));
    if !same_browser {
        return Err(bad(
            "state cookie mismatch",
            "This sign-in was started in another browser (or its cookie has expired). Start \
             again from the sign-in page.",
        ));
    }
    if query.error.is_some() {
        return Err(Refused::new(
            "identity provider refused",
            StatusCode::UNAUTHORIZED,
            "The identity provider did not sign you in.",
        ));
    }
    let code = query
        .code
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            bad(
                "no code",
                "The identity provider's answer was incomplete. Start again from the sign-in page.",
            )
        })?;
    let identity = oidc
        .finish(
            code,
            &pending.pkce_verifier,
            &pending.nonce,
            &pending.redirect_url,
        )
        .await
        .map_err(|error| {
            tracing::warn!(%error, "oidc: sign-in failed");
            match error {
                OidcError::Provider(_) => {
                    Refused::new(error.kind(), StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE)
                }
                _ => Refused::new(
                    error.kind(),
                    StatusCode::UNAUTHORIZED,
                    "The identity provider's answer could not be verified, so you are not \
                     signed in. If this keeps happening, tell your administrator.",
                ),
            }
        })?;
    Ok((pending, identity))
}

fn refusal_text(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::NoEmail => {
            "The identity provider did not give a verified email address for your account, \
             so Trellis cannot tell who you are. Ask your administrator."
        }
        Refusal::Domain(_) => {
            "Your account's email domain is not allowed to sign in to this Trellis. Ask your \
             administrator."
        }
        Refusal::NoRole => {
            "Your account is not in any group that has access to this Trellis, so you are not \
             signed in. Ask your administrator for access."
        }
    }
}

/// Signs the user in (created or linked at the first sign-in): the session's token, and
/// whether it is complete or still owes Trellis's own second factor.
async fn start_session(
    req: &HttpRequest,
    state: &WebState,
    identity: Identity,
    decision: Decision,
    client_ip: Option<String>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(String, bool), Refused> {
    let (Ok((token, id_hash)), Ok((csrf, _))) = (new_token(""), new_token("")) else {
        return Err(Refused::unavailable());
    };
    let sign_in = SsoSignIn {
        issuer: identity.issuer,
        subject: identity.subject,
        email: decision.email,
        display_name: decision.display_name,
        role: decision.role,
        email_verified: identity.email_verified == Some(true),
        idp_mfa: decision.idp_mfa,
        session_hash: id_hash,
        csrf,
        client_ip,
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    match state.store.sso_sign_in(&sign_in, now).await {
        Ok(SsoOutcome::SignedIn { mfa_verified, .. }) => Ok((token, mfa_verified)),
        Ok(SsoOutcome::Disabled(user)) => Err(Refused::of(
            &user.username,
            "disabled",
            "Your Trellis account is disabled, so you are not signed in. Ask your \
             administrator.",
        )),
        Ok(SsoOutcome::Conflict(user)) => Err(Refused::of(
            &user.username,
            "user exists, not linkable",
            "A Trellis user with your email address exists but is tied to another account \
             (or your email address is not verified), so you are not signed in. Ask your \
             administrator.",
        )),
        Err(error) => {
            tracing::error!(%error, "oidc: cannot sign in");
            Err(Refused::unavailable())
        }
    }
}

/// The refusal page, after its audit line (a store failure is not audited).
async fn refusal(
    state: &WebState,
    ip: Option<String>,
    why: Refused,
    now: chrono::DateTime<chrono::Utc>,
) -> HttpResponse {
    if !why.reason.is_empty() {
        let target = if why.who.is_empty() {
            "oidc:unknown".to_string()
        } else {
            format!("user:{}", why.who)
        };
        let audited = state
            .store
            .audit(
                &Actor::new(format!("anonymous:{}", why.who), ip),
                "login.failure",
                &target,
                serde_json::json!({"via": "oidc", "reason": why.reason}),
                now,
            )
            .await;
        if let Err(error) = audited {
            tracing::error!(%error, "oidc: cannot audit a failed sign-in");
        }
    }
    refused(state, why.status, why.text)
}

/// Signed in: sets the session cookie and moves on from this site (`Refresh`), since the
/// `SameSite=Strict` cookie is not sent on a redirect chain that began at the provider.
fn landing(state: &WebState, token: &str, to: &str) -> HttpResponse {
    let mut resp = page(
        state,
        StatusCode::OK,
        "Signed in",
        SsoPage {
            text: "You are signed in.",
            href: to,
            link: "Continue",
            alert: false,
        },
    );
    let moved = resp
        .add_cookie(&session_cookie(token, state.secure_cookies))
        .and_then(|()| resp.add_removal_cookie(&state_cookie("", state.secure_cookies)));
    if let Err(error) = moved {
        tracing::error!(%error, "oidc: cannot set the session cookie");
        return refused(
            state,
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
