//! Single sign-on against a real OpenID provider (`oidc-provider`, tests/oidc/provider.mjs)
//! on loopback: the authorization code flow through to a dashboard page, the first sign-in
//! creating the user with the mapped role, every refusal a clear page and an audit line —
//! tampered ID tokens (audience, expiry, signature), a replayed or foreign `state`, no mapped
//! role, a domain not allowed, a disabled user — key rotation, the provider's MFA counting or
//! not, and local passwords turned off but for break-glass users.

use crate::common::app;
use crate::common::idp::{Browser, TestIdp, spawn_app_with_idp};

use app::TestApp;
use trellis::auth::{Role, hash_password, totp};
use trellis::store::{Actor, AuditEntry};

async fn audit(app: &TestApp, action: &str) -> Vec<AuditEntry> {
    app.store.audit_log(Some(action), 100, 0).await.unwrap()
}

/// The failed sign-ins' reasons, newest first.
async fn failure_reasons(app: &TestApp) -> Vec<String> {
    audit(app, "login.failure")
        .await
        .iter()
        .map(|e| e.detail["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// `GET path` with the browser's cookies: the status and, for a redirect, where to.
async fn visit(browser: &mut Browser, app: &TestApp, path: &str) -> (u16, Option<String>) {
    let r = browser.get(&format!("{}{path}", app.address)).await;
    let to = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), to)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_sign_in_creates_the_user_with_the_mapped_role_and_lands_on_the_dashboard() {
    let idp = TestIdp::start().await;
    let app = spawn_app_with_idp(&idp, "", &[]).await;
    let login_page = app::get(&app, "/dashboard/login")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        login_page.contains("Sign in with Test IdP")
            && login_page.contains("href=\"/dashboard/login/oidc?next=/dashboard\""),
        "{login_page}"
    );

    let mut browser = Browser::new();
    let (status, refresh, page) = browser.sign_in(&app, "sam", "pwd").await;
    assert_eq!(
        status,
        200,
        "{page} {:?}",
        audit(&app, "login.failure").await
    );
    // The page moves on from this site (the Strict session cookie is sent), to `next`.
    assert_eq!(refresh.as_deref(), Some("/dashboard/runs"));
    assert!(page.contains("href=\"/dashboard/runs\""), "{page}");
    assert!(browser.cookie("trellis_session").is_some());
    assert!(
        browser.cookie("trellis_oidc").is_none(),
        "state cookie cleared"
    );
    let r = browser
        .get(&format!("{}/dashboard/runs", app.address))
        .await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("Sam Security"), "the layout names the user");

    // Created with the highest mapped role ([trellis-security, staff] → security), no
    // password, audited in the creation's transaction.
    let (user, creds) = app
        .store
        .user_credentials("sam@example.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.role, Role::Security);
    assert_eq!(user.display_name, "Sam Security");
    assert_eq!(creds.password_hash, trellis::store::NO_PASSWORD);
    let added = audit(&app, "user.add").await;
    assert_eq!(added.len(), 1);
    assert_eq!(added[0].target, "user:sam@example.test");
    assert_eq!(added[0].detail["via"], "oidc");
    assert_eq!(added[0].detail["role"], "security");
    let success = audit(&app, "login.success").await;
    assert_eq!(success.len(), 1);
    assert_eq!(success[0].actor, "sam@example.test");
    assert_eq!(success[0].detail, serde_json::json!({"via": "oidc"}));

    // No password signs in as an SSO-only user, not even the marker.
    let r = app::client()
        .post(format!("{}/dashboard/login", app.address))
        .form(&[
            ("username", "sam@example.test"),
            ("password", trellis::store::NO_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The second sign-in finds the same user (by issuer and subject); nothing is created.
    let mut again = Browser::new();
    let (status, _, _) = again.sign_in(&app, "sam", "pwd").await;
    assert_eq!(status, 200);
    assert_eq!(audit(&app, "user.add").await.len(), 1);
    assert_eq!(audit(&app, "login.success").await.len(), 2);
    assert_eq!(app.store.users().await.unwrap().len(), 1);

    // Another account: admin from trellis-admins.
    let (status, _, _) = Browser::new().sign_in(&app, "alice", "pwd").await;
    assert_eq!(status, 200);
    let (alice, _) = app
        .store
        .user_credentials("alice@example.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.role, Role::Admin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_works_once_and_only_in_the_browser_that_started_it() {
    let idp = TestIdp::start().await;
    let app = spawn_app_with_idp(&idp, "", &[]).await;
    let mut browser = Browser::new();
    let callback = browser.authorize(&app, "vic", "pwd").await;
    let (status, _, _) = browser.finish(&callback).await;
    assert_eq!(status, 200);

    // Replayed: the state was used.
    let mut replay = Browser::new();
    let (status, refresh, page) = replay.finish(&callback).await;
    assert_eq!(status, 400, "{page}");
    assert!(refresh.is_none());
    assert!(page.contains("expired or was already used"), "{page}");
    assert!(replay.cookie("trellis_session").is_none());
    // Even by the browser that used it.
    let (status, _, _) = browser.finish(&callback).await;
    assert_eq!(status, 400);
    assert_eq!(
        failure_reasons(&app).await,
        ["unknown or used state", "unknown or used state"]
    );

    // A fresh state finished in another browser (no state cookie): refused, and used up.
    let mut starter = Browser::new();
    let callback = starter.authorize(&app, "vic", "pwd").await;
    let mut other = Browser::new();
    let (status, _, page) = other.finish(&callback).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("another browser"), "{page}");
    assert!(other.cookie("trellis_session").is_none());
    assert_eq!(failure_reasons(&app).await[0], "state cookie mismatch");
    let (status, _, _) = starter.finish(&callback).await;
    assert_eq!(status, 400, "the state was taken by the first callback");

    // A made-up state.
    let (status, _, _) = Browser::new()
        .finish(&format!(
            "{}/dashboard/login/oidc/callback?code=x&state=made-up",
            app.address
        ))
        .await;
    assert_eq!(status, 400);
    assert_eq!(audit(&app, "login.success").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_id_tokens_are_refused() {
    let idp = TestIdp::start().await;
    let app = spawn_app_with_idp(&idp, "", &[]).await;
    for (mode, reason) in [
        ("aud", "audience"),
        ("exp", "expired"),
        ("sig", "signature"),
    ] {
        idp.set_mode(Some(mode)).await;
        let mut browser = Browser::new();
        let (status, refresh, page) = browser.sign_in(&app, "alice", "pwd").await;
        assert_eq!(status, 401, "{mode}: {page}");
        assert!(refresh.is_none(), "{mode}");
        assert!(page.contains("could not be verified"), "{mode}: {page}");
        // The page says nothing of the token.
        assert!(
            !page.contains("alice") && !page.contains("eyJ"),
            "{mode}: {page}"
        );
        assert!(browser.cookie("trellis_session").is_none(), "{mode}");
        assert_eq!(
            visit(&mut browser, &app, "/dashboard").await.0,
            303,
            "{mode}: not signed in"
        );
        assert_eq!(failure_reasons(&app).await[0], reason, "{mode}");
    }
    assert!(app.store.users().await.unwrap().is_empty());
    assert!(audit(&app, "login.success").await.is_empty());

    // The same provider, untampered: signs in.
    idp.set_mode(None).await;
    let (status, _, _) = Browser::new().sign_in(&app, "alice", "pwd").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_mapped_role_a_domain_not_allowed_and_a_disabled_user_are_refused() {
    let idp = TestIdp::start().await;
    let app = spawn_app_with_idp(&idp, "", &[]).await;

    let (status, _, page) = Browser::new().sign_in(&app, "nora", "pwd").await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("not in any group"), "{page}");
    assert!(!page.contains("marketing"), "no claim values on the page");
    let failures = audit(&app, "login.failure").await;
    assert_eq!(failures[0].detail["reason"], "no role");
    assert_eq!(failures[0].target, "user:nora@example.test");

    let (status, _, page) = Browser::new().sign_in(&app, "eve", "pwd").await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("email domain is not allowed"), "{page}");
    assert_eq!(failure_reasons(&app).await[0], "domain not allowed");
    assert!(
        app.store.users().await.unwrap().is_empty(),
        "nobody created"
    );

    // Disabled in Trellis: refused, whatever the provider says; the session ends too.
    let mut first = Browser::new();
    let (status, _, _) = first.sign_in(&app, "vic", "pwd").await;
    assert_eq!(status, 200);
    assert_eq!(visit(&mut first, &app, "/dashboard").await.0, 200);
    let admin = Actor::new("admin", None);
    app.store
        .set_disabled("vic@example.test", true, &admin, app.now)
        .await
        .unwrap();
    assert_eq!(visit(&mut first, &app, "/dashboard").await.0, 303);
    let mut browser = Browser::new();
    let (status, refresh, page) = browser.sign_in(&app, "vic", "pwd").await;
    assert_eq!(status, 403, "{page}");
    assert!(refresh.is_none());
    assert!(page.contains("account is disabled"), "{page}");
    assert!(browser.cookie("trellis_session").is_none());
    let failures = audit(&app, "login.failure").await;
    assert_eq!(failures[0].detail["reason"], "disabled");
    assert_eq!(failures[0].target, "user:vic@example.test");
    assert_eq!(audit(&app, "login.success").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_key_id_makes_trellis_fetch_the_jwks_again() {
    let idp = TestIdp::start().await;
    let app = spawn_app_with_idp(&idp, "", &[]).await;
    let (status, _, _) = Browser::new().sign_in(&app, "alice", "pwd").await;
    assert_eq!(status, 200);
    let (status, _, _) = Browser::new().sign_in(&app, "alice", "pwd").await;
    assert_eq!(status, 200);
    assert_eq!(idp.jwks_requests().await, 1, "the JWKS is cached");

    idp.rotate_keys().await;
    let (status, _, page) = Browser::new().sign_in(&app, "alice", "pwd").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        idp.jwks_requests().await,
        2,
        "fetched again for the new key id"
    );
    let (status, _, _) = Browser::new().sign_in(&app, "alice", "pwd").await;
    assert_eq!(status, 200);
    assert_eq!(idp.jwks_requests().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_mfa_counts_only_when_trusted_and_claimed() {
    let idp = TestIdp::start().await;
    let app = spawn_app_with_idp(&idp, "trust_idp_mfa: {amr: [otp, mfa, hwk]}", &[]).await;
    let admin = Actor::new("admin", None);
    app.store
        .set_setting(
            "mfa.required",
            &serde_json::json!({"all": true}),
            &admin,
            app.now,
        )
        .await
        .unwrap();

    // amr says otp: the session is complete, no enrolment asked.
    let mut browser = Browser::new();
    let (status, refresh, _) = browser.sign_in(&app, "alice", "pwd,otp").await;
    assert_eq!(status, 200);
    assert_eq!(refresh.as_deref(), Some("/dashboard/runs"));
    assert_eq!(visit(&mut browser, &app, "/dashboard").await.0, 200);
    let success = audit(&app, "login.success").await;
    assert_eq!(success[0].detail["second_factor"], "identity provider");

    // Password only at the provider: Trellis's policy applies — enrol first.
    let mut browser = Browser::new();
    let (status, refresh, _) = browser.sign_in(&app, "sam", "pwd").await;
    assert_eq!(status, 200);
    assert_eq!(refresh.as_deref(), Some("/dashboard/runs"));
    assert_eq!(
        visit(&mut browser, &app, "/dashboard").await,
        (303, Some("/dashboard/account/mfa".to_string()))
    );

    // With Trellis's TOTP enrolled and no MFA at the provider: the code step, then in.
    let (sam, _) = app
        .store
        .user_credentials("sam@example.test")
        .await
        .unwrap()
        .unwrap();
    let secret = totp::new_secret().unwrap();
    app.store.set_totp_secret(sam.id, &secret).await.unwrap();
    app.store
        .enable_totp(
            sam.id,
            1,
            &[],
            &Actor::new("sam@example.test", None),
            app.now,
        )
        .await
        .unwrap();
    let mut browser = Browser::new();
    let (status, refresh, _) = browser.sign_in(&app, "sam", "pwd").await;
    assert_eq!(status, 200);
    assert_eq!(
        refresh.as_deref(),
        Some("/dashboard/login/mfa?next=%2Fdashboard%2Fruns")
    );
    assert_eq!(
        visit(&mut browser, &app, "/dashboard").await,
        (303, Some("/dashboard/login/mfa".to_string()))
    );
    assert_eq!(audit(&app, "login.oidc").await.len(), 1);
    let form = browser
        .get(&format!("{}/dashboard/login/mfa", app.address))
        .await
        .text()
        .await
        .unwrap();
    let csrf = form
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let unix = u64::try_from(app.now.timestamp()).unwrap();
    let code = totp::code(&secret, unix).unwrap();
    let r = browser
        .post_form(
            &format!("{}/dashboard/login/mfa", app.address),
            &[("code", &code), ("csrf", &csrf), ("next", "/dashboard")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(visit(&mut browser, &app, "/dashboard").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_mfa_does_not_count_unless_the_admin_says_so() {
    let idp = TestIdp::start().await;
    let app = spawn_app_with_idp(&idp, "", &[]).await;
    app.store
        .set_setting(
            "mfa.required",
            &serde_json::json!({"all": true}),
            &Actor::new("admin", None),
            app.now,
        )
        .await
        .unwrap();
    let mut browser = Browser::new();
    let (status, _, _) = browser.sign_in(&app, "alice", "pwd,otp,mfa").await;
    assert_eq!(status, 200);
    assert_eq!(
        visit(&mut browser, &app, "/dashboard").await,
        (303, Some("/dashboard/account/mfa".to_string()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_passwords_off_leaves_only_break_glass_users() {
    let idp = TestIdp::start().await;
    let app = spawn_app_with_idp(
        &idp,
        "",
        &[(
            "TRELLIS__DASHBOARD__LOCAL_PASSWORDS",
            "{enabled: false, break_glass: [root]}",
        )],
    )
    .await;
    let password = "a long enough password";
    let setup = Actor::new("setup", None);
    for (name, role) in [("root", Role::Admin), ("sam", Role::Security)] {
        let hash = hash_password(name, password).unwrap();
        app.store
            .create_user(name, name, role, &hash, &setup, app.now)
            .await
            .unwrap();
    }
    let login = |user: &'static str| {
        app::client()
            .post(format!("{}/dashboard/login", app.address))
            .form(&[("username", user), ("password", password)])
            .send()
    };
    let r = login("sam").await.unwrap();
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(page.contains("use single sign-on"), "{page}");
    assert!(page.contains("Sign in with Test IdP"), "{page}");
    assert_eq!(failure_reasons(&app).await[0], "local passwords are off");
    let r = login("root").await.unwrap();
    assert_eq!(
        r.status(),
        303,
        "break-glass admin signs in with a password"
    );
    assert_eq!(audit(&app, "login.success").await[0].actor, "root");
    // Single sign-on still works for everyone else.
    let (status, _, _) = Browser::new().sign_in(&app, "vic", "pwd").await;
    assert_eq!(status, 200);
}

/// A person in Chromium: the sign-in page's button, the provider's form, the dashboard — and
/// axe-core finds no WCAG 2.1 A/AA violation on Trellis's pages on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_signs_in_through_the_provider_and_lands_on_the_dashboard() {
    let idp = TestIdp::start().await;
    let app = spawn_app_with_idp(&idp, "", &[]).await;
    let report = app::browser_script(
        "tests/oidc/browser.mjs",
        vec![app.address.clone(), "alice".into()],
    )
    .await;
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4, "{report:#}");
    assert_eq!(report["violations"], serde_json::json!([]), "{report:#}");
    assert_eq!(steps[3]["url"], format!("{}/dashboard", app.address));
    assert!(
        steps[3]["detail"]
            .as_str()
            .unwrap()
            .starts_with("Alice Admin"),
        "{report:#}"
    );
    let success = audit(&app, "login.success").await;
    assert_eq!(success.len(), 1);
    assert_eq!(success[0].actor, "alice@example.test");
    assert_eq!(success[0].detail["via"], "oidc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_user_is_linked_once_and_takes_the_role_of_the_claims() {
    let idp = TestIdp::start().await;
    let app = spawn_app_with_idp(&idp, "", &[]).await;
    let hash = hash_password("alice@example.test", "a long enough password").unwrap();
    app.store
        .create_user(
            "alice@example.test",
            "Alice",
            Role::Viewer,
            &hash,
            &Actor::new("setup", None),
            app.now,
        )
        .await
        .unwrap();
    let (status, _, page) = Browser::new().sign_in(&app, "alice", "pwd").await;
    assert_eq!(status, 200, "{page}");
    let users = app.store.users().await.unwrap();
    assert_eq!(users.len(), 1, "linked, not created");
    assert_eq!(users[0].role, Role::Admin, "the role follows the claims");
    assert_eq!(audit(&app, "user.sso.link").await.len(), 1);
    let role = audit(&app, "user.role").await;
    assert_eq!(role.len(), 1);
    assert_eq!(role[0].detail["from"], "viewer");
    assert_eq!(role[0].detail["via"], "oidc");

    // Another account with the same address does not take the user over.
    let mut browser = Browser::new();
    let (status, _, page) = browser.sign_in(&app, "mallory", "pwd").await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("tied to another"), "{page}");
    assert!(browser.cookie("trellis_session").is_none());
    assert_eq!(failure_reasons(&app).await[0], "user exists, not linkable");
    // The linked account still signs in.
    let (status, _, _) = Browser::new().sign_in(&app, "alice", "pwd").await;
    assert_eq!(status, 200);
}
