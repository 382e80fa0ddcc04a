//! The store's single sign-on half (`src/store/sso.rs`) on SQLite and, when
//! `TRELLIS_TEST_POSTGRES_URL` is set, PostgreSQL: a `state` is taken once and expires; a
//! sign-in creates, finds, links or refuses the user and starts the session in one audited
//! transaction.

use chrono::{DateTime, Duration, TimeZone, Utc};
use trellis::auth::Role;
use trellis::store::{Actor, Gate, LoginLimits, SsoLogin, SsoOutcome, SsoSignIn, Store, testing};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 4, 9, 0, 0).unwrap()
}

fn login(at: DateTime<Utc>) -> SsoLogin {
    SsoLogin {
        nonce: "n".into(),
        pkce_verifier: "v".into(),
        redirect_url: "https://t.example/dashboard/login/oidc/callback".into(),
        next: "/dashboard/runs".into(),
        created_at: at,
    }
}

fn sign_in(subject: &str, email: &str, role: Role, session: &str) -> SsoSignIn {
    SsoSignIn {
        issuer: "https://idp.example".into(),
        subject: subject.into(),
        email: email.into(),
        display_name: "Someone".into(),
        role,
        email_verified: true,
        idp_mfa: false,
        session_hash: session.into(),
        csrf: "c".into(),
        client_ip: Some("127.0.0.1".into()),
        user_agent: None,
    }
}

async fn scenario(store: &Store) {
    let max = Duration::minutes(10);
    let now = t0();

    // A state is taken once, and not after max_age.
    store.begin_sso_login("s1", &login(now), max).await.unwrap();
    store.begin_sso_login("s2", &login(now), max).await.unwrap();
    let got = store.take_sso_login("s1", now, max).await.unwrap().unwrap();
    assert_eq!(got, login(now));
    assert!(
        store
            .take_sso_login("s1", now, max)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .take_sso_login("nope", now, max)
            .await
            .unwrap()
            .is_none()
    );
    let late = now + Duration::minutes(11);
    assert!(
        store
            .take_sso_login("s2", late, max)
            .await
            .unwrap()
            .is_none()
    );
    // Old ones are forgotten when a new one begins.
    store.begin_sso_login("s3", &login(now), max).await.unwrap();
    store
        .begin_sso_login("s4", &login(late), max)
        .await
        .unwrap();
    assert!(
        store
            .take_sso_login("s3", now, max)
            .await
            .unwrap()
            .is_none()
    );

    // First sign-in creates the user, audited, with the session.
    let first = store
        .sso_sign_in(&sign_in("u1", "ann@example.com", Role::Auditor, "h1"), now)
        .await
        .unwrap();
    let SsoOutcome::SignedIn {
        user,
        mfa_verified,
        created,
    } = first
    else {
        panic!("{first:?}")
    };
    assert!(created && mfa_verified);
    assert_eq!(
        (user.username.as_str(), user.role),
        ("ann@example.com", Role::Auditor)
    );
    assert!(store.session("h1").await.unwrap().unwrap().mfa_verified);
    assert!(!store.session_idp_mfa("h1").await.unwrap());
    let log = store.audit_log(None, 10, 0).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["login.success", "user.add"]);

    // Found again by subject, whatever the email now says; the role follows the claims.
    let mut again = sign_in("u1", "ann.other@example.com", Role::Security, "h2");
    again.idp_mfa = true;
    let SsoOutcome::SignedIn { user, created, .. } = store.sso_sign_in(&again, now).await.unwrap()
    else {
        panic!()
    };
    assert!(!created);
    assert_eq!(
        (user.username.as_str(), user.role),
        ("ann@example.com", Role::Security)
    );
    assert!(store.session_idp_mfa("h2").await.unwrap());
    assert_eq!(store.users().await.unwrap().len(), 1);
    assert_eq!(
        store.audit_log(Some("user.role"), 10, 0).await.unwrap()[0].detail["from"],
        "auditor"
    );

    // With Trellis's own second factor, the session is partial unless the provider's counts.
    store
        .set_totp_secret(user.id, "JBSWY3DPEHPK3PXP")
        .await
        .unwrap();
    store
        .enable_totp(user.id, 1, &[], &Actor::new("ann", None), now)
        .await
        .unwrap();
    let partial = store
        .sso_sign_in(&sign_in("u1", "ann@example.com", Role::Security, "h3"), now)
        .await
        .unwrap();
    assert!(matches!(
        partial,
        SsoOutcome::SignedIn {
            mfa_verified: false,
            ..
        }
    ));
    assert_eq!(
        store.audit_log(None, 1, 0).await.unwrap()[0].action,
        "login.oidc"
    );

    // Another subject with the same email: not linked.
    let other = store
        .sso_sign_in(&sign_in("u2", "ann@example.com", Role::Admin, "h4"), now)
        .await
        .unwrap();
    assert!(matches!(other, SsoOutcome::Conflict(_)), "{other:?}");
    assert!(store.session("h4").await.unwrap().is_none());

    // A password user is linked only on a verified email.
    let setup = Actor::new("setup", None);
    store
        .create_user("bo@example.com", "Bo", Role::Viewer, "x", &setup, now)
        .await
        .unwrap();
    let mut unverified = sign_in("u3", "bo@example.com", Role::Viewer, "h5");
    unverified.email_verified = false;
    let r = store.sso_sign_in(&unverified, now).await.unwrap();
    assert!(matches!(r, SsoOutcome::Conflict(_)), "{r:?}");
    let r = store
        .sso_sign_in(&sign_in("u3", "bo@example.com", Role::Viewer, "h6"), now)
        .await
        .unwrap();
    assert!(
        matches!(r, SsoOutcome::SignedIn { created: false, .. }),
        "{r:?}"
    );
    assert_eq!(
        store
            .audit_log(Some("user.sso.link"), 10, 0)
            .await
            .unwrap()
            .len(),
        1
    );

    // A sign-in that still owes Trellis's own second factor does not clear the account's
    // failures (as with a password): five wrong codes stay five after another SSO sign-in.
    let ann_id = store
        .user_credentials("ann@example.com")
        .await
        .unwrap()
        .unwrap()
        .0
        .id;
    store.set_totp_secret(ann_id, "SECRET").await.unwrap();
    store
        .enable_totp(ann_id, 1, &[], &setup, now)
        .await
        .unwrap();
    let limits = LoginLimits {
        per_user: 5,
        per_ip: 100,
        since: now - Duration::hours(1),
    };
    let from = Actor::new("ann@example.com", Some("127.0.0.1".into()));
    for _ in 0..5 {
        let Gate::Open(a) = store
            .open_attempt("ann@example.com", limits, &from, now)
            .await
            .unwrap()
        else {
            panic!("under the limit")
        };
        store
            .attempt_failed(a, &from, "login.mfa_failure", "user:ann@example.com", now)
            .await
            .unwrap();
    }
    let r = store
        .sso_sign_in(
            &sign_in("u1", "ann@example.com", Role::Security, "h-mfa"),
            now,
        )
        .await
        .unwrap();
    assert!(
        matches!(
            r,
            SsoOutcome::SignedIn {
                mfa_verified: false,
                ..
            }
        ),
        "{r:?}"
    );
    assert!(matches!(
        store
            .open_attempt("ann@example.com", limits, &from, now)
            .await
            .unwrap(),
        Gate::Throttled { .. }
    ));

    // Disabled: refused, nothing written.
    store
        .set_disabled("ann@example.com", true, &setup, now)
        .await
        .unwrap();
    let before = store.audit_log(None, 100, 0).await.unwrap().len();
    let r = store
        .sso_sign_in(&sign_in("u1", "ann@example.com", Role::Admin, "h7"), now)
        .await
        .unwrap();
    assert!(matches!(r, SsoOutcome::Disabled(_)), "{r:?}");
    assert!(store.session("h7").await.unwrap().is_none());
    assert_eq!(store.audit_log(None, 100, 0).await.unwrap().len(), before);
    let (ann, _) = store
        .user_credentials("ann@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ann.role,
        Role::Security,
        "a refused sign-in changes no role"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    scenario(&Store::connect(&url).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Ok(server) = std::env::var("TRELLIS_TEST_POSTGRES_URL") else {
        eprintln!("TRELLIS_TEST_POSTGRES_URL is not set: the PostgreSQL variant did not run");
        return;
    };
    let name = format!("trellis_t_{}", uuid::Uuid::new_v4().simple());
    let url = testing::create_postgres_database(&server, &name)
        .await
        .unwrap();
    let store = Store::connect(&url).await.unwrap();
    scenario(&store).await;
    drop(store);
    testing::drop_postgres_database(&server, &name)
        .await
        .unwrap();
}
