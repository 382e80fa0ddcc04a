#![allow(dead_code)] // each test module uses part of it
//! A real OpenID provider for the single sign-on tests: `tests/oidc/provider.mjs` (the
//! `oidc-provider` package, installed by `scripts/test`) on 127.0.0.1, and Trellis started with
//! `dashboard.oidc` pointing at it. [`Browser`] walks the authorization code flow with plain
//! HTTP requests and a cookie jar of its own.

use std::collections::BTreeMap;
use std::process::Stdio;

use tokio::io::AsyncBufReadExt;

use super::app::{TestApp, example_now, repo, spawn_app_with};

/// The test provider's client registration (tests/oidc/provider.mjs).
pub const CLIENT_ID: &str = "trellis";
pub const CLIENT_SECRET: &str = "trellis-test-secret";

/// `oidc-provider` running on loopback; ended when dropped.
pub struct TestIdp {
    pub issuer: String,
    _child: tokio::process::Child,
}

impl TestIdp {
    pub async fn start() -> TestIdp {
        assert!(
            repo()
                .join("tests/oidc/node_modules/oidc-provider")
                .exists(),
            "the test provider's packages are missing: run scripts/test (or `npm ci --prefix tests/oidc`)"
        );
        let mut child = tokio::process::Command::new("node")
            .arg(repo().join("tests/oidc/provider.mjs"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            stdout.read_line(&mut line),
        )
        .await
        .expect("the provider starts")
        .unwrap();
        // oidc-provider writes notices on stdout: keep reading, or it dies of EPIPE.
        tokio::spawn(async move {
            let mut sink = tokio::io::sink();
            let _ = tokio::io::copy(&mut stdout, &mut sink).await;
        });
        let hello: serde_json::Value = serde_json::from_str(&line).unwrap();
        TestIdp {
            issuer: hello["issuer"].as_str().unwrap().to_string(),
            _child: child,
        }
    }

    async fn control(&self, what: &str, body: serde_json::Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/__test/{what}", self.issuer))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{what}");
    }

    /// Registers Trellis's callback URL with the provider's client.
    pub async fn register(&self, app: &TestApp) {
        let redirect = format!("{}/dashboard/login/oidc/callback", app.address);
        self.control("client", serde_json::json!({ "redirect_uri": redirect }))
            .await;
    }

    /// `aud`, `exp` or `sig`: the next ID tokens are tampered with; `None`: they are not.
    pub async fn set_mode(&self, mode: Option<&str>) {
        self.control("mode", serde_json::json!({ "mode": mode }))
            .await;
    }

    /// A new signing key (new key id).
    pub async fn rotate_keys(&self) {
        self.control("rotate", serde_json::json!({})).await;
    }

    /// How many times the JWKS was requested.
    pub async fn jwks_requests(&self) -> u64 {
        let stats: serde_json::Value = reqwest::get(format!("{}/__test/stats", self.issuer))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["jwks"].as_u64().unwrap()
    }
}

/// Trellis with single sign-on through `idp` (`extra` is more of `dashboard.oidc`, as flow
/// YAML entries like `trust_idp_mfa: {amr: [otp]}`), and `env` overrides on top.
pub async fn spawn_app_with_idp(idp: &TestIdp, extra: &str, env: &[(&str, &str)]) -> TestApp {
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("client-secret");
    std::fs::write(&secret, CLIENT_SECRET).unwrap();
    let oidc = format!(
        "{{issuer: '{}', client_id: {CLIENT_ID}, client_secret_file: '{}', \
         scopes: [openid, email, profile, groups], role_claim: groups, \
         role_map: {{trellis-admins: admin, trellis-security: security, staff: viewer}}, \
         allowed_domains: [example.test], display_name: Test IdP{}{extra}}}",
        idp.issuer,
        secret.display(),
        if extra.is_empty() { "" } else { ", " },
    );
    let mut vars = vec![("TRELLIS__DASHBOARD__OIDC", oidc.as_str())];
    vars.extend_from_slice(env);
    let app = spawn_app_with(&vars, example_now()).await;
    // The secret was read at startup.
    drop(secret_dir);
    idp.register(&app).await;
    app
}

/// An HTTP client with a cookie jar that follows no redirect by itself.
pub struct Browser {
    client: reqwest::Client,
    jar: BTreeMap<String, String>,
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            client: super::app::client(),
            jar: BTreeMap::new(),
        }
    }

    fn remember(&mut self, r: &reqwest::Response) {
        for set in r.headers().get_all(reqwest::header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, attrs) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            let attrs = attrs.to_ascii_lowercase();
            if value.is_empty() || attrs.contains("max-age=0") {
                self.jar.remove(name.trim());
            } else {
                self.jar
                    .insert(name.trim().to_string(), value.trim().to_string());
            }
        }
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.jar.get(name).map(String::as_str)
    }

    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn get(&mut self, url: &str) -> reqwest::Response {
        let r = self
            .client
            .get(url)
            .header(reqwest::header::COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.remember(&r);
        r
    }

    /// A form post, with the `Origin` a browser sends.
    pub async fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let origin = reqwest::Url::parse(url)
            .unwrap()
            .origin()
            .ascii_serialization();
        let r = self
            .client
            .post(url)
            .header(reqwest::header::ORIGIN, origin)
            .header(reqwest::header::COOKIE, self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.remember(&r);
        r
    }

    /// The redirect's target, absolute.
    pub fn location(r: &reqwest::Response) -> String {
        assert!(r.status().is_redirection(), "{} at {}", r.status(), r.url());
        let to = r.headers()[reqwest::header::LOCATION].to_str().unwrap();
        r.url().join(to).unwrap().to_string()
    }

    /// Starts single sign-on at `app`, signs in at the provider as `login` (authenticated by
    /// `amr`, comma-separated), and returns the callback URL the provider sends the browser
    /// to — not yet visited.
    pub async fn authorize(&mut self, app: &TestApp, login: &str, amr: &str) -> String {
        let r = self
            .get(&format!(
                "{}/dashboard/login/oidc?next=/dashboard/runs",
                app.address
            ))
            .await;
        assert_eq!(r.status(), 303);
        let to_idp = Browser::location(&r);
        let r = self.get(&to_idp).await;
        let interaction = Browser::location(&r);
        let form = self.get(&interaction).await;
        assert_eq!(form.status(), 200);
        let r = self
            .post_form(
                &format!("{interaction}/login"),
                &[("login", login), ("amr", amr)],
            )
            .await;
        let resume = Browser::location(&r);
        let r = self.get(&resume).await;
        let callback = Browser::location(&r);
        assert!(
            callback.starts_with(&format!("{}/dashboard/login/oidc/callback?", app.address)),
            "{callback}"
        );
        callback
    }

    /// [`Browser::authorize`], then the callback; returns its response's status, where its
    /// `Refresh` goes on to (if it does) and its page.
    pub async fn sign_in(
        &mut self,
        app: &TestApp,
        login: &str,
        amr: &str,
    ) -> (u16, Option<String>, String) {
        let callback = self.authorize(app, login, amr).await;
        self.finish(&callback).await
    }

    /// Visits the callback URL.
    pub async fn finish(&mut self, callback: &str) -> (u16, Option<String>, String) {
        let r = self.get(callback).await;
        let status = r.status().as_u16();
        let refresh = r.headers().get("refresh").map(|v| {
            v.to_str()
                .unwrap()
                .trim_start_matches("0; url=")
                .to_string()
        });
        (status, refresh, r.text().await.unwrap())
    }
}
