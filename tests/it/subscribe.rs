//! Visitors' subscriptions (issue 20) end to end: the form on the live server, the double
//! opt-in email through a real SMTP server (aiosmtpd, STARTTLS and authentication), public
//! status changes, subprocessor changes and public incidents announced by the running
//! notifier, RFC 8058 one-click unsubscribe without cookies, the limits and guards of the
//! form, the admin's export and erasure, and no address anywhere public.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use trellis::model::Status;

use crate::common::app::{TestApp, client, example_now, plant, repo, spawn_app_with};
use crate::notify::Smtp;

const ADA: &str = "ada@customer.example";

/// The example app with visitor email through `smtp`, the registers copied to `registers`
/// (so a test can change them), the notifier looking every 200 ms.
async fn app_with_mail(dir: &Path, smtp: &Smtp, extra: &[(&str, &str)]) -> TestApp {
    std::fs::write(dir.join("smtp.user"), "trellis").unwrap();
    std::fs::write(dir.join("smtp.pass"), "mail-pass-1").unwrap();
    let registers = dir.join("registers");
    std::fs::create_dir_all(&registers).unwrap();
    for entry in std::fs::read_dir(repo().join("examples/registers")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), registers.join(entry.file_name())).unwrap();
    }
    let visitors = format!(
        "{{from: \"Sprout Security <security@sprout.example>\", subscriptions_per_hour: 3, subprocessor_notice_days: 30, smtp: {{host: 127.0.0.1, port: {}, tls: starttls, username_file: {}, password_file: {}, ca_file: {}, timeout: 10s}}}}",
        smtp.port,
        dir.join("smtp.user").display(),
        dir.join("smtp.pass").display(),
        dir.join("ca.pem").display(),
    );
    let registers = registers.display().to_string();
    let mut env: Vec<(&str, &str)> = vec![
        ("TRELLIS__NOTIFICATIONS__VISITORS", &visitors),
        ("TRELLIS__NOTIFICATIONS__DIGEST_WINDOW", "1ms"),
        ("TRELLIS__NOTIFICATIONS__SWEEP_EVERY", "200ms"),
        ("TRELLIS__LIMITS__QUEUE_POLL", "100ms"),
        ("TRELLIS__SOURCES__REGISTERS__PATH", &registers),
    ];
    env.extend_from_slice(extra);
    spawn_app_with(&env, example_now()).await
}

/// Waits (at most 30 s) until the SMTP server has `n` messages; returns them.
async fn mail(smtp: &Smtp, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = smtp.received();
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} emails arrived: {got:#?}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn header<'a>(m: &'a serde_json::Value, name: &str) -> &'a str {
    m["headers"][name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} header in {m:#}"))
}

/// The first `https://trust.sprout.example/…` link after `after` in `text`, as a path on the
/// test server.
fn link_path(text: &str, after: &str) -> String {
    let from = text
        .find(after)
        .unwrap_or_else(|| panic!("no `{after}` in {text}"));
    let rest = &text[from..];
    let start = rest.find("https://trust.sprout.example/").unwrap();
    let link: String = rest[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    link.trim_start_matches("https://trust.sprout.example")
        .to_string()
}

/// The body of `GET path` on the test server.
async fn text(app: &TestApp, path: &str) -> String {
    client()
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn form_token(html: &str) -> String {
    let at = html.find("name=\"token\" value=\"").unwrap() + "name=\"token\" value=\"".len();
    html[at..].split('"').next().unwrap().to_string()
}

async fn subscribe(
    app: &TestApp,
    email: &str,
    topics: &[&str],
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let page = text(app, "/subscribe").await;
    let token = form_token(&page);
    let mut form: Vec<(&str, &str)> = vec![("email", email), ("token", &token)];
    if !extra.iter().any(|(k, _)| *k == "website") {
        form.push(("website", ""));
    }
    for t in topics {
        form.push(("topic", t));
    }
    form.extend_from_slice(extra);
    client()
        .post(format!("{}/subscribe", app.address))
        .header("origin", &app.address)
        .form(&form)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_opt_in_status_notices_and_one_click_unsubscribe() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(dir.path(), "trellis", "mail-pass-1").await;
    let app = app_with_mail(dir.path(), &smtp, &[]).await;

    // The trust page offers it.
    let home = text(&app, "/").await;
    assert!(home.contains("href=\"https://trust.sprout.example/subscribe\""));

    let resp = subscribe(&app, ADA, &["status", "incidents"], &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/subscribe/sent");

    // The confirmation email.
    let m = mail(&smtp, 1).await.remove(0);
    assert_eq!(m["tls"], true);
    assert_eq!(m["authenticated"], true);
    assert_eq!(m["rcpt_tos"], serde_json::json!([ADA]));
    assert_eq!(
        header(&m, "Subject"),
        "Confirm your subscription to Sprout's security updates"
    );
    assert!(header(&m, "Message-ID").ends_with("@sprout.example>"));
    assert!(!header(&m, "Date").is_empty());
    let unsubscribe = header(&m, "List-Unsubscribe");
    assert!(
        unsubscribe.starts_with("<https://trust.sprout.example/unsubscribe?s="),
        "{unsubscribe}"
    );
    assert_eq!(
        header(&m, "List-Unsubscribe-Post"),
        "List-Unsubscribe=One-Click"
    );
    let body = m["body"].as_str().unwrap();
    assert!(body.contains("Status changes of the controls on this page"));
    assert!(body.contains("Security incident notices"));
    assert!(!body.contains("Subprocessor changes"));
    // The visible unsubscribe link is the header's.
    assert!(body.contains(unsubscribe.trim_matches(['<', '>'])));

    // Not confirmed: not a recipient of anything.
    let store = &app.store;
    assert!(store.confirmed_subscribers().await.unwrap().is_empty());
    // The link opens a page with a button (a mail scanner opening it confirms nothing).
    let confirm = link_path(body, "open this link");
    let page = client()
        .get(format!("{}{confirm}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains("Confirm subscription"));
    assert!(store.confirmed_subscribers().await.unwrap().is_empty());
    // A changed signature is refused.
    let forged = confirm.replace("signature=", "signature=00");
    let resp = client()
        .get(format!("{}{forged}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // The button posts the link's fields.
    let query: Vec<(String, String)> = url::Url::parse(&format!("https://x{confirm}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let resp = client()
        .post(format!("{}/subscribe/confirm", app.address))
        .form(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("You are subscribed"));
    let confirmed = store.confirmed_subscribers().await.unwrap();
    assert_eq!(confirmed.len(), 1);
    assert_eq!(confirmed[0].email, ADA);

    // A public control that passes starts failing: subscribers to status hear of it.
    let passing = store
        .latest_results()
        .await
        .unwrap()
        .into_iter()
        .find(|r| {
            r.status == Status::Pass && app.catalog.get(&r.control_id).is_some_and(|c| c.public)
        })
        .unwrap();
    let title = app.catalog.get(&passing.control_id).unwrap().title.clone();
    plant(&app, &passing.control_id, Status::Fail, example_now()).await;
    let m = mail(&smtp, 2).await.remove(1);
    assert_eq!(
        header(&m, "Subject"),
        format!("Sprout security update: {title}: Needs attention")
    );
    assert_eq!(
        header(&m, "List-Unsubscribe-Post"),
        "List-Unsubscribe=One-Click"
    );
    let body = m["body"].as_str().unwrap();
    assert!(
        body.contains("changed from Passing to Needs attention"),
        "{body}"
    );
    assert!(body.contains("Unsubscribe (one click, no sign-in)"));

    // One click: a POST to the header's address, no cookie, no origin, no token.
    let one_click = unsubscribe
        .trim_matches(['<', '>'])
        .trim_start_matches("https://trust.sprout.example");
    let resp = reqwest::Client::new()
        .post(format!("{}{one_click}", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        store
            .export_subscribers(
                &trellis::store::Actor::new("test", None),
                chrono::Utc::now()
            )
            .await
            .unwrap()
            .is_empty(),
        "unsubscribing deletes the address at once"
    );

    // Fixed again: nobody is told (no subscriber left).
    plant(&app, &passing.control_id, Status::Pass, example_now()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.received().len(), 2);

    // No address in anything public.
    for path in [
        "/",
        "/api/v1/trust",
        "/feed.atom",
        "/.well-known/security.txt",
        "/subscribe",
    ] {
        let body = text(&app, path).await;
        assert!(
            !body.contains("customer.example"),
            "{path} shows a subscriber address"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_is_guarded_and_says_the_same_whatever_happened() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(dir.path(), "trellis", "mail-pass-1").await;
    let app = app_with_mail(dir.path(), &smtp, &[]).await;
    let store = &app.store;
    let admin = trellis::store::Actor::new("test", None);

    // Errors are named by field.
    let resp = subscribe(&app, "not an address", &[], &[]).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Enter an email address like name@example.com."));
    assert!(html.contains("Choose at least one kind of update."));
    let resp = subscribe(&app, "x@customer.example", &["everything"], &[]).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // A bare address only: display text would make one inbox many subscribers.
    let resp = subscribe(&app, "Mallory <x@customer.example>", &["status"], &[]).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // The honeypot: told the same as a person, nothing stored.
    let resp = subscribe(
        &app,
        "bot@customer.example",
        &["status"],
        &[("website", "http://spam")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);

    // Another site's form.
    let page = text(&app, "/subscribe").await;
    let resp = client()
        .post(format!("{}/subscribe", app.address))
        .header("origin", "https://evil.example")
        .form(&[
            ("email", "x@customer.example"),
            ("topic", "status"),
            ("token", &form_token(&page)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // A forged token.
    let resp = client()
        .post(format!("{}/subscribe", app.address))
        .header("origin", &app.address)
        .form(&[
            ("email", "x@customer.example"),
            ("topic", "status"),
            ("token", "1.00"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(
        store
            .export_subscribers(&admin, chrono::Utc::now())
            .await
            .unwrap()
            .is_empty()
    );

    // Three per address per hour; the same address twice is one subscription, one email.
    for email in [
        "a@customer.example",
        "b@customer.example",
        "a@customer.example",
    ] {
        let resp = subscribe(&app, email, &["status"], &[]).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{email}");
    }
    let resp = subscribe(&app, "c@customer.example", &["status"], &[]).await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "the third request of the hour"
    );
    let resp = subscribe(&app, "d@customer.example", &["status"], &[]).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "3600");
    let all = store
        .export_subscribers(&admin, chrono::Utc::now())
        .await
        .unwrap();
    let emails: Vec<&str> = all.iter().map(|s| s.email.as_str()).collect();
    assert_eq!(
        emails,
        [
            "a@customer.example",
            "b@customer.example",
            "c@customer.example"
        ]
    );
    let got = mail(&smtp, 3).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        smtp.received().len(),
        3,
        "one confirmation per address: {got:#?}"
    );

    // The admin's erasure and export, audited; the CLI says the same.
    assert!(
        store
            .delete_subscriber("B@customer.example", &admin, chrono::Utc::now())
            .await
            .unwrap()
    );
    let audit = store.audit_log(None, 50, 0).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "subscriber.delete" && !a.target.contains('@'))
    );
    assert!(audit.iter().any(|a| a.action == "subscribers.export"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_subprocessors_and_public_incidents_are_announced_once() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(dir.path(), "trellis", "mail-pass-1").await;
    let app = app_with_mail(dir.path(), &smtp, &[]).await;
    let resp = subscribe(&app, ADA, &["subprocessors", "incidents"], &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    mail(&smtp, 1).await;
    let id = app
        .store
        .export_subscribers(&trellis::store::Actor::new("t", None), chrono::Utc::now())
        .await
        .unwrap()[0]
        .id
        .clone();
    assert!(
        app.store
            .confirm_subscriber(&id, example_now())
            .await
            .unwrap()
    );

    // A subprocessor starting in 10 days (within the 30 days' notice), one in 90 (not yet),
    // and a public incident.
    let registers = dir.path().join("registers");
    let mut vendors = std::fs::read_to_string(registers.join("vendors.yaml")).unwrap();
    vendors.push_str("  - name: Postmark\n    purpose: Transactional email delivery\n    data_shared: [customer contact data]\n    location: European Union\n    subprocessor: true\n    risk_tier: medium\n    soc2_report_reviewed_on: 2026-10-01\n    assessed_on: 2026-10-01\n    owner: Engineering\n    website: https://www.mailgun.com\n    starts_on: 2026-12-02\n");
    vendors.push_str("  - name: Later Analytics\n    purpose: Product analytics\n    location: United States\n    subprocessor: true\n    risk_tier: low\n    soc2_report_reviewed_on: 2026-10-01\n    assessed_on: 2026-10-01\n    starts_on: 2027-02-20\n");
    std::fs::write(registers.join("vendors.yaml"), vendors).unwrap();
    let mut incidents = std::fs::read_to_string(registers.join("incidents.yaml")).unwrap();
    incidents.push_str("  - id: INC-2026-099\n    title: Internal codename Falcon credential leak\n    severity: high\n    owner: Security\n    opened: 2026-11-20\n    public: true\n    public_title: Exposure of a support tool credential\n    public_summary: A credential of a support tool was exposed for 2 hours; no customer data was accessed. Nothing for you to do.\n");
    std::fs::write(registers.join("incidents.yaml"), incidents).unwrap();

    let got = mail(&smtp, 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got_after = smtp.received();
    assert_eq!(got_after.len(), got.len(), "announced once: {got_after:#?}");
    let text: String = got_after[1..]
        .iter()
        .map(|m| {
            format!(
                "{}\n{}\n",
                header(m, "Subject"),
                m["body"].as_str().unwrap()
            )
        })
        .collect();
    assert!(text.contains("New subprocessor: Postmark"), "{text}");
    assert!(text.contains("Transactional email delivery"), "{text}");
    assert!(text.contains("European Union"), "{text}");
    assert!(
        text.contains("starts processing data on 2026-12-02"),
        "{text}"
    );
    assert!(
        !text.contains("Later Analytics"),
        "announced 30 days before it starts: {text}"
    );
    assert!(
        text.contains("Security incident: Exposure of a support tool credential"),
        "{text}"
    );
    assert!(text.contains("no customer data was accessed"), "{text}");
    assert!(
        !text.contains("Falcon"),
        "the internal title stays internal: {text}"
    );
    // The subprocessors already listed when the notifier first read the register were not news.
    assert!(!text.contains("Amazon Web Services"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_request_s_link_is_emailed_to_the_requester() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(dir.path(), "trellis", "mail-pass-1").await;
    let app = app_with_mail(dir.path(), &smtp, &[]).await;
    let new = trellis::access::NewAccessRequest {
        name: "Grace Hopper".into(),
        email: "grace@customer.example".into(),
        company: "Customer".into(),
        documents: vec![app.loaded.config.trust_page.documents.items[0].id.clone()],
        nda_sha256: "0".repeat(64),
    };
    let id = app
        .store
        .create_access_request(
            &new,
            &trellis::store::ClientInfo {
                ip: None,
                user_agent: None,
            },
            example_now(),
        )
        .await
        .unwrap();
    let visitors = trellis::startup::visitors(&app.loaded).unwrap().unwrap();
    let decided = trellis::actions::decide_access(
        &app.store,
        &trellis::store::Actor::new("sam", None),
        &id,
        trellis::actions::AccessVerdict::Approve {
            valid_for: chrono::Duration::days(7),
        },
        None,
        example_now(),
        Some(&visitors),
    )
    .await
    .unwrap();
    let m = mail(&smtp, 1).await.remove(0);
    assert_eq!(m["rcpt_tos"], serde_json::json!(["grace@customer.example"]));
    assert_eq!(
        header(&m, "Subject"),
        "Your requested documents from Sprout"
    );
    assert!(m["headers"].get("List-Unsubscribe").is_none(), "not a list");
    let body = m["body"].as_str().unwrap();
    let link = link_path(body, "Download them here");
    assert!(link.starts_with(&format!("/access/{}", decided.id)));
    let page = client()
        .get(format!("{}{link}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK, "the emailed link works");
}
