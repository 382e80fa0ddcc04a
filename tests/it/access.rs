//! Gated documents end to end: a visitor requests them through the form (checked, stored,
//! rate-limited), the security team approves with `trellis access`, and the signed link opens
//! the documents until it expires or is revoked.

use crate::common::app;

use app::{TestApp, client, example_now, get, repo, spawn_app, spawn_app_with};
use chrono::Duration;
use reqwest::StatusCode;
use trellis::access::{AccessStatus, Decision};

/// The form page's hidden fields (token and NDA hash).
async fn form_fields(app: &TestApp) -> (String, String) {
    let page = client()
        .get(format!(
            "{}/request-access?document=soc2-type-ii-report",
            app.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    let hidden = |name: &str| {
        html.split(&format!("name=\"{name}\" value=\""))
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_else(|| panic!("no {name} in the form"))
            .to_string()
    };
    assert!(
        html.contains("value=\"soc2-type-ii-report\" checked"),
        "the document asked for is ticked"
    );
    assert!(
        html.contains("By requesting these documents you agree"),
        "the NDA is shown"
    );
    (hidden("token"), hidden("nda_sha256"))
}

/// A complete, valid submission (plus `extra` fields), as a browser of this site sends it.
async fn submit(app: &TestApp, email: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let (token, nda) = form_fields(app).await;
    let mut form: Vec<(&str, &str)> = vec![
        ("name", "Ada Lovelace"),
        ("email", email),
        ("company", "Analytical Engines"),
        ("document", "soc2-type-ii-report"),
        ("document", "penetration-test-letter"),
        ("nda", "yes"),
        ("nda_sha256", &nda),
        ("token", &token),
        ("website", ""),
    ];
    for (k, v) in extra {
        form.retain(|(name, _)| name != k);
        form.push((k, v));
    }
    client()
        .post(format!("{}/request-access", app.address))
        .header("origin", &app.address)
        .form(&form)
        .send()
        .await
        .unwrap()
}

fn documents(app: &TestApp) -> trellis::web::Documents {
    trellis::startup::documents(&app.loaded).unwrap().unwrap()
}

/// `path?query` of a link, for requests to the test server.
fn local(link: &str) -> &str {
    link.strip_prefix("https://trust.sprout.example").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_checked_stored_approved_and_its_link_works_until_revoked() {
    let app = spawn_app().await;
    // The public page lists the documents and links to the form.
    // (Handlebars escapes `=` in attributes as `&#x3D;`, which browsers decode.)
    let page = get(&app, "/")
        .await
        .text()
        .await
        .unwrap()
        .replace("&#x3D;", "=");
    assert!(page.contains(">SOC 2 Type II Report</h3>"));
    assert!(page.contains(
        "href=\"https://trust.sprout.example/request-access?document=soc2-type-ii-report\""
    ));
    assert!(
        !page.contains(".pdf"),
        "the files are never linked publicly"
    );

    // An incomplete form comes back with every problem next to its field.
    let resp = submit(
        &app,
        "ada@gmail.com",
        &[("name", " "), ("nda", ""), ("company", "")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.unwrap();
    for (field, message) in [
        ("name", "Enter your name."),
        ("email", "Use your work email address"),
        ("company", "Enter your company."),
        ("nda", "Accept the non-disclosure terms"),
    ] {
        assert!(
            html.contains(&format!("href=\"#field-{field}\">{message}")),
            "{field}: {html}"
        );
    }
    assert!(
        html.contains("value=\"ada@gmail.com\""),
        "what was typed is kept"
    );
    assert!(
        app.store
            .access_requests(None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A valid request: stored as pending, the visitor sent to a confirmation.
    let resp = submit(&app, "Ada@Analytical.example", &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/request-access/received");
    let received = get(&app, "/request-access/received").await;
    assert!(received.text().await.unwrap().contains("Request received"));
    let requests = app.store.access_requests(None, 10).await.unwrap();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.status, AccessStatus::Pending);
    assert_eq!(request.email, "ada@analytical.example");
    assert_eq!(
        request.documents,
        ["soc2-type-ii-report", "penetration-test-letter"]
    );
    assert_eq!(request.client_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        request.nda_sha256,
        trellis::access::nda_sha256(
            app.loaded
                .config
                .trust_page
                .documents
                .nda
                .as_deref()
                .unwrap()
        )
    );

    // Before approval, no link made for it works.
    let docs = documents(&app);
    let early = docs.link(&request.id, app.now + Duration::days(7));
    assert_eq!(
        get(&app, local(&early)).await.status(),
        StatusCode::NOT_FOUND
    );

    // Approved: the link opens a page listing the documents, and each downloads.
    let expires = app.now + Duration::days(7);
    app.store
        .decide_access_request(
            &request.id,
            Decision::Approve {
                expires_at: expires,
            },
            &trellis::store::Actor::new("sam", None),
            None,
            app.now,
            None,
        )
        .await
        .unwrap();
    let link = docs.link(&request.id, expires);
    let grant = get(&app, local(&link)).await;
    assert_eq!(grant.status(), StatusCode::OK);
    assert_eq!(grant.headers()["cache-control"], "no-store");
    assert_eq!(grant.headers()["x-robots-tag"], "noindex, nofollow");
    let html = grant.text().await.unwrap();
    assert!(html.contains("Shared with Ada Lovelace"));
    assert!(html.contains("2026-11-29 12:00 UTC"), "says until when");
    let href = html
        .split("href=\"/access/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .replace("&amp;", "&")
        .replace("&#x3D;", "=");
    let download = get(&app, &format!("/access/{href}")).await;
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.headers()["content-type"], "application/pdf");
    assert_eq!(
        download.headers()["content-disposition"],
        "attachment; filename=\"soc2-type-ii-report.pdf\""
    );
    let bytes = download.bytes().await.unwrap();
    let file = std::fs::read(repo().join("examples/documents/soc2-type-ii-report.pdf")).unwrap();
    assert!(bytes.as_ref() == file.as_slice());
    assert_eq!(
        app.store
            .access_request(&request.id)
            .await
            .unwrap()
            .unwrap()
            .downloads,
        1,
        "every download is recorded"
    );
    let audit = app.store.audit_log(Some("document."), 10, 0).await.unwrap();
    assert_eq!(audit.len(), 1, "and audited");
    assert_eq!(audit[0].actor, "visitor:ada@analytical.example");
    assert_eq!(audit[0].client_ip.as_deref(), Some("127.0.0.1"));

    // Tampered links do not work: another expiry, another signature, another request, a
    // document the request did not name.
    let (path, query) = local(&link).split_once('?').unwrap();
    let later = (expires + Duration::days(30)).timestamp();
    let signature = query.split("signature=").nth(1).unwrap();
    for bad in [
        format!("{path}?expires={later}&signature={signature}"),
        format!(
            "{path}?expires={}&signature={}",
            expires.timestamp(),
            "0".repeat(64)
        ),
        format!("/access/{}?{query}", uuid::Uuid::new_v4()),
        format!("{path}/terms-of-service?{query}"),
    ] {
        let status = get(&app, &bad).await.status();
        assert!(status == StatusCode::NOT_FOUND, "{bad}: {status}");
    }
    app.store
        .decide_access_request(
            &request.id,
            Decision::Revoke,
            &trellis::store::Actor::new("sam", None),
            Some("test"),
            app.now,
            None,
        )
        .await
        .unwrap();
    let revoked = get(&app, local(&link)).await;
    assert_eq!(revoked.status(), StatusCode::GONE);
    assert!(
        revoked
            .text()
            .await
            .unwrap()
            .contains("This link has been withdrawn")
    );
    assert_eq!(
        get(&app, &format!("/access/{href}")).await.status(),
        StatusCode::GONE,
        "downloads stop too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_expire() {
    let app = spawn_app().await;
    assert_eq!(
        submit(&app, "grace@hopper.example", &[]).await.status(),
        StatusCode::SEE_OTHER
    );
    let request = app.store.access_requests(None, 1).await.unwrap().remove(0);
    // Approved with an expiry that has passed by the app's clock.
    let expires = app.now - Duration::minutes(1);
    app.store
        .decide_access_request(
            &request.id,
            Decision::Approve {
                expires_at: expires,
            },
            &trellis::store::Actor::new("sam", None),
            None,
            app.now - Duration::days(7),
            None,
        )
        .await
        .unwrap();
    let link = documents(&app).link(&request.id, expires);
    let resp = get(&app, local(&link)).await;
    assert_eq!(resp.status(), StatusCode::GONE);
    assert!(resp.text().await.unwrap().contains("This link has expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_rate_limited_and_protected() {
    let app = spawn_app_with(
        &[("TRELLIS__TRUST_PAGE__DOCUMENTS__REQUESTS_PER_HOUR", "2")],
        example_now(),
    )
    .await;
    // Another site's form, or a post without a token from this server: refused.
    let (_, nda) = form_fields(&app).await;
    let forged = client()
        .post(format!("{}/request-access", app.address))
        .header("origin", "https://evil.example")
        .form(&[
            ("name", "x"),
            ("email", "x@corp.example"),
            ("company", "x"),
            ("document", "soc2-type-ii-report"),
            ("nda", "yes"),
            ("nda_sha256", nda.as_str()),
            ("token", "1.00"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let no_token = submit(&app, "x@corp.example", &[("token", "")]).await;
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    // A bot filling the hidden field is told "received", and nothing is stored.
    let bot = submit(
        &app,
        "bot@corp.example",
        &[("website", "http://spam.example")],
    )
    .await;
    assert_eq!(bot.status(), StatusCode::SEE_OTHER);
    assert!(
        app.store
            .access_requests(None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Two requests an hour from one address; the third is refused with Retry-After.
    for email in ["a@corp.example", "b@corp.example"] {
        assert_eq!(
            submit(&app, email, &[]).await.status(),
            StatusCode::SEE_OTHER
        );
    }
    let third = submit(&app, "c@corp.example", &[]).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.headers()["retry-after"], "3600");
    assert_eq!(app.store.access_requests(None, 10).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_security_team_decides_with_the_cli() {
    let app = spawn_app().await;
    assert_eq!(
        submit(&app, "ada@analytical.example", &[]).await.status(),
        StatusCode::SEE_OTHER
    );
    let id = app
        .store
        .access_requests(None, 1)
        .await
        .unwrap()
        .remove(0)
        .id;
    let trellis = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_trellis"))
            .current_dir(repo())
            .env("TRELLIS__DATABASE_URL", &app.loaded.config.database_url)
            .env(
                "TRELLIS__TRUST_PAGE__DOCUMENTS__LINK_KEY_FILE",
                app.dir.path().join("link.key"),
            )
            .env("TRELLIS_USER", "sam")
            .env(
                "TRELLIS__SIGNING__KEY_FILE",
                app.dir.path().join("signing.key"),
            )
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, list, _) = trellis(&["access", "list"]);
    assert_eq!(code, Some(0));
    assert!(
        list.contains(&id[..8]) && list.contains("ada@analytical.example"),
        "{list}"
    );

    let (code, out, err) = trellis(&["access", "approve", &id[..8], "--valid-for", "2d"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("status:    approved"), "{out}");
    assert!(out.contains("by sam"), "{out}");
    let link = out
        .lines()
        .find_map(|l| l.strip_prefix("link:      "))
        .unwrap()
        .to_string();
    assert!(link.starts_with(&format!(
        "https://trust.sprout.example/access/{id}?expires="
    )));
    // The server checks links against the same key and database.
    // (The CLI approves with the real clock; the app's clock is the example's day, earlier.)
    assert_eq!(get(&app, local(&link)).await.status(), StatusCode::OK);

    // Deciding twice is refused, naming the state.
    let (code, _, err) = trellis(&["access", "deny", &id]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("it is approved (only pending requests can be)"),
        "{err}"
    );
    let (code, _, err) = trellis(&["access", "approve", "zz"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no access request matches"), "{err}");

    let (code, out, _) = trellis(&["access", "revoke", &id, "--note", "contract ended"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("status:    revoked") && out.contains("(contract ended)"),
        "{out}"
    );
    assert_eq!(get(&app, local(&link)).await.status(), StatusCode::GONE);
}
