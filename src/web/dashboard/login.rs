//! Signing in and out: password, then (for users who have one) the TOTP code or a recovery
//! code; throttled per account and per client address; every attempt recorded and audited.
//!
//! Each step reads top to bottom: open the attempt (recorded before any secret is checked, so
//! parallel guesses cannot slip under the limit), check the secret (argon2 on the blocking
//! pool), then one store transaction that writes the session change with its audit line. If
//! that line cannot be written, the step fails and nothing changes.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use chrono::{DateTime, Utc};

use super::auth::{PartialStaff, session_cookie};
use super::{Page, render};
use crate::auth::{dummy_hash, new_token, recovery, totp, verify_password};
use crate::store::{Actor, Gate, LoginLimits, NewSession, User};
use crate::web::{WebState, client_ip};

#[derive(Deserialize, Default)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Serialize)]
struct LoginPage {
    username: String,
    next: String,
    error: Option<String>,
}

/// Only local dashboard paths are followed after sign-in (no open redirect).
pub(super) fn safe_next(next: &str) -> String {
    let ok = next.starts_with("/dashboard")
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    if ok {
        next.to_string()
    } else {
        "/dashboard".to_string()
    }
}

pub async fn login_form(state: web::Data<WebState>, query: web::Query<NextQuery>) -> HttpResponse {
    let page = LoginPage {
        username: String::new(),
        next: safe_next(query.next.as_deref().unwrap_or("/dashboard")),
        error: None,
    };
    render(
        &state,
        "dashboard/login",
        &Page::anonymous("Sign in", page),
        StatusCode::OK,
    )
}

fn login_error(
    state: &WebState,
    form: &LoginForm,
    status: StatusCode,
    message: &str,
) -> HttpResponse {
    let page = LoginPage {
        username: form.username.clone(),
        next: safe_next(&form.next),
        error: Some(message.to_string()),
    };
    render(
        state,
        "dashboard/login",
        &Page::anonymous("Sign in", page),
        status,
    )
}

/// The same answer for an unknown user, a wrong password and a disabled account.
const BAD_LOGIN: &str = "The user name or password is not right.";
const UNAVAILABLE: &str = "Signing in is unavailable just now.";

/// The sign-in limits of the configuration, counted from `now`.
fn limits(state: &WebState, now: DateTime<Utc>) -> LoginLimits {
    let cfg = &state.dashboard;
    LoginLimits {
        per_user: cfg.max_failed_logins,
        per_ip: cfg.max_failed_logins_per_ip,
        since: now - cfg.lockout.get(),
    }
}

/// The answer to a throttled step: 429 with `Retry-After`.
fn throttled(mut resp: HttpResponse, state: &WebState) -> HttpResponse {
    resp.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from(state.dashboard.lockout.get().num_seconds().max(1)),
    );
    resp
}

/// Runs argon2 on the blocking pool (it takes tens of milliseconds of CPU: on an async
/// worker it would stall every other request on that worker). Unknown users are checked
/// against a dummy hash: the same work, the same time.
async fn password_matches(hash: Option<String>, password: &str) -> Result<bool, ()> {
    let password = password.to_string();
    web::block(move || verify_password(hash.as_deref().unwrap_or(dummy_hash()), &password))
        .await
        .map_err(|error| tracing::error!(%error, "sign-in: the password check did not run"))
}

pub async fn login(
    req: HttpRequest,
    state: web::Data<WebState>,
    form: super::Form<LoginForm>,
) -> HttpResponse {
    let now = state.clock.now();
    let ip = client_ip(&req, &state.trusted_proxies).map(|a| a.to_string());
    let username = form.username.trim().to_ascii_lowercase();
    let fail = |status, text: &str| login_error(&state, &form, status, text);
    if !super::same_origin_or_none(&req) {
        return fail(StatusCode::FORBIDDEN, "Sign in from this site's own page.");
    }
    if super::oidc::local_password_refused(&state, &username, ip.as_deref()).await {
        let off = super::oidc::LOCAL_PASSWORDS_OFF;
        return login_error(&state, &form, StatusCode::FORBIDDEN, off);
    }
    let anonymous = Actor::new(format!("anonymous:{username}"), ip.clone());
    // 1. The attempt is on record before the password is looked at.
    let attempt = match state
        .store
        .open_attempt(&username, limits(&state, now), &anonymous, now)
        .await
    {
        Ok(Gate::Open(attempt)) => attempt,
        Ok(Gate::Throttled { .. }) => {
            let resp = fail(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed attempts. Try again later.",
            );
            return throttled(resp, &state);
        }
        Err(error) => {
            tracing::error!(%error, "sign-in: store failed");
            return fail(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE);
        }
    };
    // 2. The password.
    let found = match state.store.user_credentials(&username).await {
        Ok(f) => f,
        Err(error) => {
            tracing::error!(%error, "sign-in: store failed");
            return fail(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE);
        }
    };
    let hash = found.as_ref().map(|(_, c)| c.password_hash.clone());
    let Ok(password_ok) = password_matches(hash, &form.password).await else {
        return fail(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE);
    };
    let user = found
        .filter(|(u, _)| password_ok && !u.is_disabled())
        .map(|(u, _)| u);
    let Some(user) = user else {
        let target = format!("user:{username}");
        return match state
            .store
            .attempt_failed(attempt, &anonymous, "login.failure", &target, now)
            .await
        {
            Ok(()) => fail(StatusCode::UNAUTHORIZED, BAD_LOGIN),
            Err(error) => {
                tracing::error!(%error, "sign-in: cannot audit a failed attempt");
                fail(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE)
            }
        };
    };
    // 3. The session, its audit line and the attempt's success: one transaction.
    let ua = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let actor = Actor::new(user.username.clone(), ip);
    match start_session(&state, attempt, &user, &actor, ua, now).await {
        Ok(token) => {
            let to = if user.mfa_enabled {
                mfa_step_url(&safe_next(&form.next))
            } else {
                safe_next(&form.next)
            };
            HttpResponse::SeeOther()
                .cookie(session_cookie(&token, state.secure_cookies))
                .insert_header((header::LOCATION, to))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish()
        }
        Err(()) => fail(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE),
    }
}

/// The second-factor step's address, keeping where to go afterwards.
pub(super) fn mfa_step_url(next: &str) -> String {
    format!(
        "/dashboard/login/mfa?next={}",
        percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
    )
}

/// Starts a session for a user whose password was right (partial when they have a second
/// factor to give); returns the cookie's token.
async fn start_session(
    state: &WebState,
    attempt: crate::store::Attempt,
    user: &User,
    actor: &Actor,
    user_agent: Option<&str>,
    now: DateTime<Utc>,
) -> Result<String, ()> {
    let tokens = new_token("").and_then(|(token, id_hash)| Ok((token, id_hash, new_token("")?.0)));
    let (token, id_hash, csrf) =
        tokens.map_err(|error| tracing::error!(%error, "sign-in: no randomness"))?;
    let session = NewSession {
        id_hash: &id_hash,
        user,
        csrf_token: &csrf,
        mfa_verified: !user.mfa_enabled,
        user_agent,
    };
    state
        .store
        .sign_in(
            attempt,
            session,
            actor,
            serde_json::json!({"via": "password"}),
            now,
        )
        .await
        .map_err(|error| tracing::error!(%error, "sign-in: cannot start the session"))?;
    Ok(token)
}

#[derive(Serialize)]
struct MfaPage {
    next: String,
    csrf: String,
    error: Option<String>,
}

pub async fn mfa_form(
    state: web::Data<WebState>,
    staff: PartialStaff,
    query: web::Query<NextQuery>,
) -> HttpResponse {
    if staff.mfa_verified {
        return super::see_other("/dashboard");
    }
    let page = MfaPage {
        next: safe_next(query.next.as_deref().unwrap_or("/dashboard")),
        csrf: staff.csrf.clone(),
        error: None,
    };
    render(
        &state,
        "dashboard/mfa",
        &Page::anonymous("Two-step verification", page),
        StatusCode::OK,
    )
}

#[derive(Deserialize, Default)]
pub struct MfaForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    csrf: String,
}

/// Which second factor a code was: `Some("totp" | "recovery code")` when it is right (and
/// now used up), `None` when not.
async fn check_second_factor(
    state: &WebState,
    user: &User,
    code: &str,
    now: DateTime<Utc>,
) -> Result<Option<&'static str>, crate::store::StoreError> {
    let Some((_, creds)) = state.store.user_credentials(&user.username).await? else {
        return Ok(None);
    };
    let Some(secret) = &creds.totp_secret else {
        return Ok(None);
    };
    let unix = u64::try_from(now.timestamp()).unwrap_or(0);
    if let Some(step) = totp::verify(secret, code, unix) {
        // A code is accepted once: replaying it fails.
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        return Ok(state
            .store
            .use_totp_step(user.id, step)
            .await?
            .then_some("totp"));
    }
    if code.len() > 6 {
        let used = state
            .store
            .use_recovery_code(user.id, &recovery::hash(code))
            .await?;
        return Ok(used.then_some("recovery code"));
    }
    Ok(None)
}

pub async fn mfa(
    req: HttpRequest,
    state: web::Data<WebState>,
    staff: PartialStaff,
    form: super::Form<MfaForm>,
) -> Result<HttpResponse, super::auth::AuthError> {
    staff.check_post(&req, &form.csrf)?;
    if staff.mfa_verified {
        return Ok(super::see_other("/dashboard"));
    }
    let now = state.clock.now();
    let username = staff.user.username.clone();
    let actor = staff.actor();
    let failed = |message: &str, status: StatusCode| {
        let page = MfaPage {
            next: safe_next(&form.next),
            csrf: staff.csrf.clone(),
            error: Some(message.to_string()),
        };
        render(
            &state,
            "dashboard/mfa",
            &Page::anonymous("Two-step verification", page),
            status,
        )
    };
    let attempt = match state
        .store
        .open_attempt(&username, limits(&state, now), &actor, now)
        .await
    {
        Ok(Gate::Open(attempt)) => attempt,
        Ok(Gate::Throttled { .. }) => {
            // The half-signed-in session ends too: the password must be given again.
            return Ok(
                match state
                    .store
                    .end_session(&staff.id_hash, &actor, "session.end", now)
                    .await
                {
                    Ok(_) => throttled(
                        failed(
                            "Too many failed attempts. Sign in again later.",
                            StatusCode::TOO_MANY_REQUESTS,
                        ),
                        &state,
                    ),
                    Err(error) => {
                        tracing::error!(%error, "second factor: cannot end the session");
                        failed(UNAVAILABLE, StatusCode::SERVICE_UNAVAILABLE)
                    }
                },
            );
        }
        Err(error) => {
            tracing::error!(%error, "second factor: store failed");
            return Ok(failed(UNAVAILABLE, StatusCode::SERVICE_UNAVAILABLE));
        }
    };
    let how = match check_second_factor(&state, &staff.user, form.code.trim(), now).await {
        Ok(how) => how,
        Err(error) => {
            tracing::error!(%error, "second factor: store failed");
            return Ok(failed(UNAVAILABLE, StatusCode::SERVICE_UNAVAILABLE));
        }
    };
    let target = format!("user:{username}");
    let Some(how) = how else {
        return Ok(
            match state
                .store
                .attempt_failed(attempt, &actor, "login.mfa_failure", &target, now)
                .await
            {
                Ok(()) => failed(
                    "That code is not right (or was already used).",
                    StatusCode::UNAUTHORIZED,
                ),
                Err(error) => {
                    tracing::error!(%error, "second factor: cannot audit a failed attempt");
                    failed(UNAVAILABLE, StatusCode::SERVICE_UNAVAILABLE)
                }
            },
        );
    };
    let detail = serde_json::json!({"second_factor": how});
    match state
        .store
        .second_factor_given(attempt, &staff.id_hash, &actor, detail, now)
        .await
    {
        Ok(true) => Ok(super::see_other(&safe_next(&form.next))),
        Ok(false) => Ok(super::see_other("/dashboard/login")),
        Err(error) => {
            tracing::error!(%error, "second factor: cannot complete the sign-in");
            Ok(failed(UNAVAILABLE, StatusCode::SERVICE_UNAVAILABLE))
        }
    }
}

#[derive(Deserialize, Default)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// Signs out: the session row goes, with its audit line, or the user is told it did not.
pub async fn logout(
    req: HttpRequest,
    state: web::Data<WebState>,
    staff: PartialStaff,
    form: super::Form<LogoutForm>,
) -> Result<HttpResponse, super::auth::AuthError> {
    staff.check_post(&req, &form.csrf)?;
    let ended = state
        .store
        .end_session(&staff.id_hash, &staff.actor(), "logout", state.clock.now())
        .await;
    if let Err(error) = ended {
        tracing::error!(%error, "sign-out: cannot end the session");
        return Ok(super::message(
            &state,
            None,
            StatusCode::SERVICE_UNAVAILABLE,
            "Not signed out",
            "Your session could not be ended just now, so you are still signed in. Try again \
             in a moment; close the browser if you are on a shared computer.",
        ));
    }
    Ok(HttpResponse::SeeOther()
        .cookie(session_cookie("", state.secure_cookies))
        .insert_header((header::LOCATION, "/dashboard/login"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_dashboard_paths_are_followed() {
        for (next, expect) in [
            ("/dashboard/controls/x", "/dashboard/controls/x"),
            ("/dashboard?x=1", "/dashboard?x=1"),
            ("https://evil.example/", "/dashboard"),
            ("//evil.example/dashboard", "/dashboard"),
            ("/dashboard\\..\\evil", "/dashboard"),
            ("/api/v1/runs", "/dashboard"),
            ("", "/dashboard"),
        ] {
            assert_eq!(safe_next(next), expect, "{next}");
        }
    }
}
