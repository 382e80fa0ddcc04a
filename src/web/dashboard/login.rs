//! Signing in and out: password, then (for users who have one) the TOTP code or a recovery
//! code; throttled per account and per client address; every attempt recorded and audited.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::auth::{PartialStaff, session_cookie};
use super::{Page, render};
use crate::auth::{dummy_hash, new_token, recovery, totp, verify_password};
use crate::store::Actor;
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

pub async fn login(
    req: HttpRequest,
    state: web::Data<WebState>,
    form: super::Form<LoginForm>,
) -> HttpResponse {
    let now = state.clock.now();
    let ip = client_ip(&req, &state.trusted_proxies).map(|a| a.to_string());
    let username = form.username.trim().to_ascii_lowercase();
    if !super::same_origin_or_none(&req) {
        return login_error(
            &state,
            &form,
            StatusCode::FORBIDDEN,
            "Sign in from this site's own page.",
        );
    }
    if super::oidc::local_password_refused(&state, &username, ip.as_deref()).await {
        let off = super::oidc::LOCAL_PASSWORDS_OFF;
        return login_error(&state, &form, StatusCode::FORBIDDEN, off);
    }
    let cfg = &state.dashboard;
    let since = now - cfg.lockout.get();
    let (by_user, by_ip) = match state
        .store
        .failed_logins(&username, ip.as_deref(), since)
        .await
    {
        Ok(c) => c,
        Err(error) => {
            tracing::error!(%error, "sign-in: store failed");
            return login_error(
                &state,
                &form,
                StatusCode::SERVICE_UNAVAILABLE,
                "Signing in is unavailable just now.",
            );
        }
    };
    if by_user >= u64::from(cfg.max_failed_logins)
        || by_ip >= u64::from(cfg.max_failed_logins_per_ip)
    {
        let _ = state
            .store
            .audit(
                &Actor::new(format!("anonymous:{username}"), ip.clone()),
                "login.throttled",
                &format!("user:{username}"),
                serde_json::json!({"failures_for_user": by_user, "failures_from_ip": by_ip}),
                now,
            )
            .await;
        let mut resp = login_error(
            &state,
            &form,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed attempts. Try again later.",
        );
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from(cfg.lockout.get().num_seconds().max(1)),
        );
        return resp;
    }
    let found = match state.store.user_credentials(&username).await {
        Ok(f) => f,
        Err(error) => {
            tracing::error!(%error, "sign-in: store failed");
            return login_error(
                &state,
                &form,
                StatusCode::SERVICE_UNAVAILABLE,
                "Signing in is unavailable just now.",
            );
        }
    };
    // Verify against a dummy hash for unknown users: the same work, the same time.
    let hash = found
        .as_ref()
        .map_or(dummy_hash(), |(_, c)| c.password_hash.as_str());
    let password_ok = verify_password(hash, &form.password);
    let user = found
        .filter(|(u, _)| password_ok && !u.is_disabled())
        .map(|(u, _)| u);
    let Some(user) = user else {
        let _ = state
            .store
            .record_login_attempt(&username, ip.as_deref(), false, now)
            .await;
        let _ = state
            .store
            .audit(
                &Actor::new(format!("anonymous:{username}"), ip.clone()),
                "login.failure",
                &format!("user:{username}"),
                serde_json::json!({}),
                now,
            )
            .await;
        return login_error(&state, &form, StatusCode::UNAUTHORIZED, BAD_LOGIN);
    };
    let (token, id_hash) = match new_token("") {
        Ok(t) => t,
        Err(error) => {
            tracing::error!(%error, "sign-in: no randomness");
            return login_error(
                &state,
                &form,
                StatusCode::SERVICE_UNAVAILABLE,
                "Signing in is unavailable just now.",
            );
        }
    };
    let Ok((csrf, _)) = new_token("") else {
        return login_error(
            &state,
            &form,
            StatusCode::SERVICE_UNAVAILABLE,
            "Signing in is unavailable just now.",
        );
    };
    // With a second factor, the session is partial until the code is given.
    let mfa_verified = !user.mfa_enabled;
    let ua = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let created = state
        .store
        .create_session(&id_hash, &user, &csrf, mfa_verified, ip.as_deref(), ua, now)
        .await;
    if let Err(error) = created {
        tracing::error!(%error, "sign-in: cannot create the session");
        return login_error(
            &state,
            &form,
            StatusCode::SERVICE_UNAVAILABLE,
            "Signing in is unavailable just now.",
        );
    }
    let _ = state
        .store
        .record_login_attempt(&username, ip.as_deref(), true, now)
        .await;
    let action = if mfa_verified {
        "login.success"
    } else {
        "login.password"
    };
    let _ = state
        .store
        .audit(
            &Actor::new(user.username.clone(), ip),
            action,
            &format!("user:{}", user.username),
            serde_json::json!({}),
            now,
        )
        .await;
    let to = if mfa_verified {
        safe_next(&form.next)
    } else {
        format!(
            "/dashboard/login/mfa?next={}",
            percent_encoding::utf8_percent_encode(
                &safe_next(&form.next),
                percent_encoding::NON_ALPHANUMERIC
            )
        )
    };
    HttpResponse::SeeOther()
        .cookie(session_cookie(&token, state.secure_cookies))
        .insert_header((header::LOCATION, to))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
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
    let cfg = &state.dashboard;
    let (by_user, _) = state
        .store
        .failed_logins(&username, None, now - cfg.lockout.get())
        .await
        .unwrap_or((u64::MAX, 0));
    if by_user >= u64::from(cfg.max_failed_logins) {
        let _ = state.store.delete_session(&staff.id_hash).await;
        return Ok(failed(
            "Too many failed attempts. Sign in again later.",
            StatusCode::TOO_MANY_REQUESTS,
        ));
    }
    let creds = state.store.user_credentials(&username).await.ok().flatten();
    let code = form.code.trim();
    let mut ok = false;
    let mut how = "totp";
    if let Some((_, c)) = &creds
        && let Some(secret) = &c.totp_secret
    {
        let unix = u64::try_from(now.timestamp()).unwrap_or(0);
        if let Some(step) = totp::verify(secret, code, unix) {
            // A code is accepted once: replaying it fails.
            ok = state
                .store
                .use_totp_step(staff.user.id, i64::try_from(step).unwrap_or(i64::MAX))
                .await
                .unwrap_or(false);
        } else if code.len() > 6 {
            how = "recovery code";
            ok = state
                .store
                .use_recovery_code(staff.user.id, &recovery::hash(code))
                .await
                .unwrap_or(false);
        }
    }
    if !ok {
        let _ = state
            .store
            .record_login_attempt(&username, staff.client_ip.as_deref(), false, now)
            .await;
        let _ = state
            .store
            .audit(
                &staff.actor(),
                "login.mfa_failure",
                &format!("user:{username}"),
                serde_json::json!({}),
                now,
            )
            .await;
        return Ok(failed(
            "That code is not right (or was already used).",
            StatusCode::UNAUTHORIZED,
        ));
    }
    if state
        .store
        .verify_session_mfa(&staff.id_hash, now)
        .await
        .is_err()
    {
        return Ok(failed(
            "Signing in is unavailable just now.",
            StatusCode::SERVICE_UNAVAILABLE,
        ));
    }
    let _ = state
        .store
        .audit(
            &staff.actor(),
            "login.success",
            &format!("user:{username}"),
            serde_json::json!({"second_factor": how}),
            now,
        )
        .await;
    Ok(super::see_other(&safe_next(&form.next)))
}

#[derive(Deserialize, Default)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    req: HttpRequest,
    state: web::Data<WebState>,
    staff: PartialStaff,
    form: super::Form<LogoutForm>,
) -> Result<HttpResponse, super::auth::AuthError> {
    staff.check_post(&req, &form.csrf)?;
    let _ = state.store.delete_session(&staff.id_hash).await;
    let _ = state
        .store
        .audit(
            &staff.actor(),
            "logout",
            &format!("user:{}", staff.user.username),
            serde_json::json!({}),
            state.clock.now(),
        )
        .await;
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
