#![allow(dead_code)] // each test module uses part of it
//! Staff for tests that call the dashboards or the API: users made through the store, API
//! tokens, signed-in browser sessions.

use trellis::auth::{API_TOKEN_PREFIX, Role, hash_password, new_token, token_hash};
use trellis::store::{Actor, Store};

use super::app::{TestApp, client};

pub const PASSWORD: &str = "correct horse battery staple";

/// Adds a user with [`PASSWORD`]; its id.
pub async fn add_user(app: &TestApp, name: &str, role: Role) -> i64 {
    let hash = hash_password(name, PASSWORD).unwrap();
    app.store
        .create_user(
            name,
            &format!("{name} (test)"),
            role,
            &hash,
            &Actor::new("test-setup", None),
            app.now,
        )
        .await
        .unwrap();
    user_id(&app.store, name).await
}

pub async fn user_id(store: &Store, name: &str) -> i64 {
    store
        .users()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.username == name)
        .map(|u| u.id)
        .unwrap()
}

/// A new API token of the user, made through the store as the account page makes it.
pub async fn api_token(app: &TestApp, user_id: i64) -> String {
    let (token, hash) = new_token(API_TOKEN_PREFIX).unwrap();
    assert_eq!(hash, token_hash(&token));
    app.store
        .create_api_token(
            user_id,
            "test token",
            &hash,
            &token[..12],
            &Actor::new("test-setup", None),
            app.now,
        )
        .await
        .unwrap();
    token
}

/// Signs in with the password (users without a second factor): the session cookie.
pub async fn session_cookie(app: &TestApp, name: &str) -> String {
    let resp = client()
        .post(format!("{}/dashboard/login", app.address))
        .header("origin", &app.address)
        .form(&[
            ("username", name),
            ("password", PASSWORD),
            ("next", "/dashboard"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        reqwest::StatusCode::SEE_OTHER,
        "{name} could not sign in"
    );
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("trellis_session=") && !c.contains("Max-Age=0"))
        .map(|c| c.split(';').next().unwrap().to_string())
        .expect("a session cookie")
}
