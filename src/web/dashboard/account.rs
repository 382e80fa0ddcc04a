//! A user's own account (second factor, API tokens) and, for admins, users and the MFA
//! requirement.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::auth::{AuthError, MFA_SETTING, MfaPolicy, PartialStaff, Staff, mfa_policy};
use super::pages::{Time, time};
use super::{Page, message, render, see_other, store_error};
use crate::auth::{API_TOKEN_PREFIX, Permission, Role, new_token, recovery, totp};
use crate::web::WebState;

#[derive(Serialize)]
struct EnrolPage {
    csrf: String,
    /// The QR code (an SVG document, inlined).
    qr_svg: String,
    secret: String,
    error: Option<String>,
    /// After confirmation: the recovery codes, shown once.
    recovery_codes: Vec<String>,
    required: bool,
}

fn issuer(state: &WebState) -> String {
    format!("Trellis ({})", state.site.inputs().trust.company)
}

/// The enrolment page: a new secret (kept unconfirmed until a code proves the app has it).
pub async fn mfa_form(
    state: web::Data<WebState>,
    staff: PartialStaff,
) -> Result<HttpResponse, AuthError> {
    if !staff.mfa_verified {
        return Err(AuthError::MfaPending);
    }
    if staff.user.mfa_enabled {
        return Ok(see_other("/dashboard/account"));
    }
    let Ok(secret) = totp::new_secret() else {
        return Ok(message(
            &state,
            None,
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "No randomness available; try again.",
        ));
    };
    if let Err(e) = state.store.set_totp_secret(staff.user.id, &secret).await {
        tracing::error!(error = %e, "mfa enrolment: store failed");
        return Ok(message(
            &state,
            None,
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "Try again in a moment.",
        ));
    }
    Ok(enrol_page(&state, &staff, &secret, None, Vec::new(), StatusCode::OK).await)
}

async fn enrol_page(
    state: &WebState,
    staff: &PartialStaff,
    secret: &str,
    error: Option<String>,
    recovery_codes: Vec<String>,
    status: StatusCode,
) -> HttpResponse {
    let url = totp::url(secret, &issuer(state), &staff.user.username).unwrap_or_default();
    let body = EnrolPage {
        csrf: staff.csrf.clone(),
        qr_svg: totp::qr_svg(&url).unwrap_or_default(),
        secret: secret.to_string(),
        error,
        required: mfa_policy(state).await.requires(staff.user.role),
        recovery_codes,
    };
    render(
        state,
        "dashboard/enrol",
        &Page::anonymous("Set up two-step verification", body),
        status,
    )
}

#[derive(Deserialize, Default)]
pub struct EnrolForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

/// Confirms enrolment with a code from the app; shows the recovery codes once.
pub async fn mfa_enrol(
    req: HttpRequest,
    state: web::Data<WebState>,
    staff: PartialStaff,
    form: super::Form<EnrolForm>,
) -> Result<HttpResponse, AuthError> {
    staff.check_post(&req, &form.csrf)?;
    if !staff.mfa_verified {
        return Err(AuthError::MfaPending);
    }
    if staff.user.mfa_enabled {
        return Ok(see_other("/dashboard/account"));
    }
    let now = state.clock.now();
    let creds = state
        .store
        .user_credentials(&staff.user.username)
        .await
        .ok()
        .flatten();
    let Some(secret) = creds.and_then(|(_, c)| c.totp_secret) else {
        return Ok(see_other("/dashboard/account/mfa"));
    };
    let unix = u64::try_from(now.timestamp()).unwrap_or(0);
    let Some(step) = totp::verify(&secret, &form.code, unix) else {
        return Ok(enrol_page(
            &state,
            &staff,
            &secret,
            Some("That code is not right: check the app's clock and try the current code.".into()),
            Vec::new(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await);
    };
    let Ok((codes, hashes)) = recovery::generate() else {
        return Ok(message(
            &state,
            None,
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "No randomness available; try again.",
        ));
    };
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    if let Err(e) = state
        .store
        .enable_totp(staff.user.id, step, &hashes, &staff.actor(), now)
        .await
    {
        tracing::error!(error = %e, "mfa enrolment: store failed");
        return Ok(message(
            &state,
            None,
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "Try again in a moment.",
        ));
    }
    Ok(enrol_page(&state, &staff, &secret, None, codes, StatusCode::OK).await)
}

#[derive(Serialize)]
struct TokenRow {
    id: i64,
    name: String,
    prefix: String,
    created: Time,
    last_used: Option<Time>,
    revoked: Option<Time>,
}

#[derive(Serialize)]
struct AccountPage {
    username: String,
    display_name: String,
    role: Role,
    mfa_enabled: bool,
    recovery_codes_left: usize,
    tokens: Vec<TokenRow>,
    /// A token just created: shown once.
    new_token: Option<String>,
}

async fn account_page(
    state: &WebState,
    staff: &Staff,
    new: Option<String>,
    flash: Option<String>,
) -> HttpResponse {
    let tokens = match state.store.api_tokens(Some(staff.user.id)).await {
        Ok(t) => t,
        Err(e) => return store_error(state, staff, &e),
    };
    let body = AccountPage {
        username: staff.user.username.clone(),
        display_name: staff.user.display_name.clone(),
        role: staff.user.role,
        mfa_enabled: staff.user.mfa_enabled,
        recovery_codes_left: staff.user.recovery_codes_left,
        tokens: tokens
            .into_iter()
            .map(|t| TokenRow {
                id: t.id,
                name: t.name,
                prefix: t.prefix,
                created: time(t.created_at),
                last_used: t.last_used_at.map(time),
                revoked: t.revoked_at.map(time),
            })
            .collect(),
        new_token: new,
    };
    render(
        state,
        "dashboard/account",
        &Page::staff(staff, "account", "Account", body).flash(flash),
        StatusCode::OK,
    )
}

pub async fn account(state: web::Data<WebState>, staff: Staff) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Read)?;
    Ok(account_page(&state, &staff, None, None).await)
}

#[derive(Deserialize, Default)]
pub struct TokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

pub async fn create_token(
    req: HttpRequest,
    state: web::Data<WebState>,
    staff: Staff,
    form: super::Form<TokenForm>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Read)?;
    staff.check_post(&req, &form.csrf)?;
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Ok(account_page(
            &state,
            &staff,
            None,
            Some("Name the token (what will use it), in at most 100 characters.".into()),
        )
        .await);
    }
    let Ok((token, hash)) = new_token(API_TOKEN_PREFIX) else {
        return Ok(message(
            &state,
            Some(&staff),
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "No randomness available; try again.",
        ));
    };
    let prefix: String = token.chars().take(API_TOKEN_PREFIX.len() + 6).collect();
    match state
        .store
        .create_api_token(
            staff.user.id,
            name,
            &hash,
            &prefix,
            &staff.actor(),
            state.clock.now(),
        )
        .await
    {
        Ok(_) => Ok(account_page(&state, &staff, Some(token), None).await),
        Err(e) => Ok(store_error(&state, &staff, &e)),
    }
}

#[derive(Deserialize, Default)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub async fn revoke_token(
    req: HttpRequest,
    state: web::Data<WebState>,
    staff: Staff,
    path: web::Path<i64>,
    form: super::Form<CsrfOnly>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Read)?;
    staff.check_post(&req, &form.csrf)?;
    // Admins may revoke anyone's token; others only their own.
    let owner = (!staff.user.role.can(Permission::Administer)).then_some(staff.user.id);
    match state
        .store
        .revoke_api_token(*path, owner, &staff.actor(), state.clock.now())
        .await
    {
        Ok(true) => Ok(account_page(&state, &staff, None, Some("Token revoked.".into())).await),
        Ok(false) => Ok(message(
            &state,
            Some(&staff),
            StatusCode::NOT_FOUND,
            "No such token",
            "No active token of yours has that id.",
        )),
        Err(e) => Ok(store_error(&state, &staff, &e)),
    }
}

#[derive(Serialize)]
struct UserRow {
    username: String,
    display_name: String,
    role: Role,
    mfa_enabled: bool,
    disabled: bool,
    created: Time,
    is_me: bool,
}

pub async fn users(state: web::Data<WebState>, staff: Staff) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Administer)?;
    Ok(users_page(&state, &staff, None).await)
}

async fn users_page(state: &WebState, staff: &Staff, flash: Option<String>) -> HttpResponse {
    let list = match state.store.users().await {
        Ok(l) => l,
        Err(e) => return store_error(state, staff, &e),
    };
    let tokens = match state.store.api_tokens(None).await {
        Ok(t) => t,
        Err(e) => return store_error(state, staff, &e),
    };
    let policy = mfa_policy(state).await;
    #[derive(Serialize)]
    struct Body {
        users: Vec<UserRow>,
        mfa_all: bool,
        roles: Vec<(Role, bool)>,
        tokens: Vec<(String, String, String, bool)>,
    }
    let body = Body {
        users: list
            .into_iter()
            .map(|u| UserRow {
                is_me: u.id == staff.user.id,
                username: u.username,
                display_name: u.display_name,
                role: u.role,
                mfa_enabled: u.mfa_enabled,
                disabled: u.disabled_at.is_some(),
                created: time(u.created_at),
            })
            .collect(),
        mfa_all: policy.all,
        roles: Role::ALL
            .iter()
            .map(|r| (*r, policy.roles.contains(r)))
            .collect(),
        tokens: tokens
            .into_iter()
            .map(|t| (t.username, t.name, t.prefix, t.revoked_at.is_none()))
            .collect(),
    };
    render(
        state,
        "dashboard/users",
        &Page::staff(staff, "users", "Users", body).flash(flash),
        StatusCode::OK,
    )
}

#[derive(Deserialize, Default)]
pub struct UserChangeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    role: String,
}

/// `disable`, `enable`, `role` (with `role=`), `reset-mfa`.
pub async fn change_user(
    req: HttpRequest,
    state: web::Data<WebState>,
    staff: Staff,
    path: web::Path<(String, String)>,
    form: super::Form<UserChangeForm>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Administer)?;
    staff.check_post(&req, &form.csrf)?;
    let (name, change) = path.into_inner();
    let now = state.clock.now();
    let actor = staff.actor();
    if name == staff.user.username && change != "reset-mfa" {
        return Ok(users_page(
            &state,
            &staff,
            Some("You cannot disable yourself or change your own role: ask another admin.".into()),
        )
        .await);
    }
    let result = match change.as_str() {
        "disable" => state.store.set_disabled(&name, true, &actor, now).await,
        "enable" => state.store.set_disabled(&name, false, &actor, now).await,
        "reset-mfa" => state.store.reset_totp(&name, &actor, now).await,
        "role" => match Role::parse(&form.role) {
            Some(role) => state.store.set_role(&name, role, &actor, now).await,
            None => return Ok(users_page(&state, &staff, Some("Choose a role.".into())).await),
        },
        _ => {
            return Ok(message(
                &state,
                Some(&staff),
                StatusCode::NOT_FOUND,
                "Unknown change",
                "Disable, enable, role or reset-mfa.",
            ));
        }
    };
    match result {
        Ok(()) => Ok(users_page(&state, &staff, Some(format!("{name}: {change} done."))).await),
        Err(crate::store::UserError::Store(e)) => Ok(store_error(&state, &staff, &e)),
        Err(e) => Ok(message(
            &state,
            Some(&staff),
            StatusCode::NOT_FOUND,
            "Not possible",
            &e.to_string(),
        )),
    }
}

#[derive(Deserialize, Default)]
pub struct MfaPolicyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    all: String,
    #[serde(default)]
    role: Vec<String>,
}

pub async fn set_mfa_policy(
    req: HttpRequest,
    state: web::Data<WebState>,
    staff: Staff,
    form: super::Form<MfaPolicyForm>,
) -> Result<HttpResponse, AuthError> {
    staff.require(Permission::Administer)?;
    staff.check_post(&req, &form.csrf)?;
    let policy = MfaPolicy {
        all: form.all == "yes",
        roles: form.role.iter().filter_map(|r| Role::parse(r)).collect(),
    };
    let value = serde_json::to_value(&policy).unwrap_or_default();
    match state
        .store
        .set_setting(MFA_SETTING, &value, &staff.actor(), state.clock.now())
        .await
    {
        Ok(()) => Ok(users_page(
            &state,
            &staff,
            Some("Second-factor requirement saved.".into()),
        )
        .await),
        Err(e) => Ok(store_error(&state, &staff, &e)),
    }
}
