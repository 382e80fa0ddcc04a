//! What visitors do, counted by the live server (issue 21): page views, JSON and feed fetches
//! and bots under concurrent requests, document requests, approvals and downloads, the
//! dashboard's Visitors page and `GET /api/v1/visitors`; and, in the database afterwards, no
//! address and no user agent.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use trellis::access::Decision;
use trellis::auth::Role;
use trellis::store::{Actor, VisitCount};

use crate::common::app::{TestApp, client, example_now, postgres_env, spawn_app_with};
use crate::common::staff::{add_user, api_token, session_cookie};

fn sum(rows: &[VisitCount], metric: &str, subject: &str, bot: bool) -> u64 {
    rows.iter()
        .filter(|r| r.metric == metric && r.subject == subject && r.bot == bot)
        .map(|r| r.count)
        .sum()
}

/// Waits (the counts are flushed every few seconds) until `page_view` by people reaches `want`.
async fn counted(app: &TestApp, want: u64) -> Vec<VisitCount> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let rows = app.store.visits(app.now.date_naive()).await.unwrap();
        if sum(&rows, "page_view", "", false) >= want {
            return rows;
        }
        assert!(Instant::now() < deadline, "not counted in time: {rows:#?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visits_are_counted_right_under_concurrent_requests_and_no_visitor_is_stored() {
    visits_are_counted(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visits_are_counted_right_on_postgres() {
    match postgres_env("visits_counted").await {
        Some(db) => visits_are_counted(Some(db)).await,
        None => eprintln!("TRELLIS_TEST_POSTGRES_URL not set: PostgreSQL variant skipped"),
    }
}

async fn visits_are_counted(db: Option<(&'static str, String)>) {
    let mut env = vec![(
        "TRELLIS__SERVER__TRUSTED_PROXIES",
        "[\"127.0.0.1\"]".to_string(),
    )];
    env.extend(db);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = spawn_app_with(&env, example_now()).await;
    let http = client();
    // 160 page views by 4 people (address behind the proxy, browser), 40 by a crawler,
    // 30 JSON and 20 feed fetches, and HEAD requests (not views), all at once.
    let mut requests = Vec::new();
    for i in 0..250 {
        let (path, method, ua, ip) = match i {
            0..160 => (
                "/",
                "GET",
                format!("Mozilla/5.0 zz-ua-marker-{}", i % 4),
                format!("203.0.113.{}", i % 4),
            ),
            160..200 => (
                "/",
                "GET",
                "Googlebot/2.1 (+http://www.google.com/bot.html)".into(),
                "192.0.2.1".into(),
            ),
            200..230 => (
                "/api/v1/trust",
                "GET",
                "Mozilla/5.0 zz-ua-marker-json".into(),
                "203.0.113.50".into(),
            ),
            230..240 => (
                "/feed.atom",
                "GET",
                "Feedly/1.0 zz-ua-marker-feed".into(),
                "203.0.113.51".into(),
            ),
            _ => (
                "/",
                "HEAD",
                "Mozilla/5.0 zz-ua-marker-head".into(),
                "203.0.113.52".into(),
            ),
        };
        let url = format!("{}{path}", app.address);
        let http = http.clone();
        requests.push(tokio::spawn(async move {
            let req = if method == "GET" {
                http.get(&url)
            } else {
                http.head(&url)
            };
            let resp = req
                .header("user-agent", ua)
                .header("x-forwarded-for", ip)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
        }));
    }
    for r in requests {
        r.await.unwrap();
    }
    let rows = counted(&app, 160).await;
    assert_eq!(sum(&rows, "page_view", "", false), 160, "{rows:#?}");
    assert_eq!(sum(&rows, "page_view", "", true), 40, "{rows:#?}");
    assert_eq!(sum(&rows, "visitors", "", false), 4, "{rows:#?}");
    assert_eq!(sum(&rows, "json_fetch", "", false), 30, "{rows:#?}");
    // "Feedly" is a reader, not a crawler: counted as a person's fetch.
    assert_eq!(sum(&rows, "feed_fetch", "", false), 10, "{rows:#?}");

    // A document request, its approval (by the store, whoever decides) and a download.
    let request = trellis::access::NewAccessRequest {
        name: "Ada Lovelace".into(),
        email: "ada@analytical.example".into(),
        company: "Analytical Engines".into(),
        documents: vec!["soc2-type-ii-report".into()],
        nda_sha256: "0".repeat(64),
    };
    let id = app
        .store
        .create_access_request(&request, &Default::default(), app.now)
        .await
        .unwrap();
    let expires = app.now + chrono::Duration::days(7);
    app.store
        .decide_access_request(
            &id,
            Decision::Approve {
                expires_at: expires,
            },
            &Actor::new("sam", None),
            None,
            app.now,
            None,
        )
        .await
        .unwrap();
    let docs = trellis::startup::documents(&app.loaded).unwrap().unwrap();
    let link = docs.link(&id, expires);
    let link = link.strip_prefix("https://trust.sprout.example").unwrap();
    let (page, query) = link.split_once('?').unwrap();
    let download = format!("{}{page}/soc2-type-ii-report?{query}", app.address);
    let resp = http
        .get(&download)
        .header("user-agent", "Mozilla/5.0 zz-ua-marker-dl")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{download}");

    // The dashboard and the API show the same counts.
    add_user(&app, "sam", Role::Security).await;
    let cookie = session_cookie(&app, "sam").await;
    let deadline = Instant::now() + Duration::from_secs(40);
    let html = loop {
        let html = http
            .get(format!("{}/dashboard/visitors", app.address))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if html.contains("<td>SOC 2 Type II Report <code>soc2-type-ii-report</code></td><td>0</td><td>1</td><td>1</td>") {
            break html;
        }
        assert!(
            Instant::now() < deadline,
            "the download was not counted:\n{html}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(html.contains("Page views, last 90 days"), "{html}");
    assert!(
        html.contains("<tr><td>160</td><td>4</td><td>30</td><td>10</td><td>0</td><td>40</td></tr>"),
        "{html}"
    );
    assert!(html.contains("class=\"dash-chart\""), "{html}");
    let token = api_token(&app, trellis_user(&app, "sam").await).await;
    let api: Value = http
        .get(format!("{}/api/v1/visitors?days=7", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(api["days"].as_array().unwrap().len(), 7);
    assert_eq!(api["to"], app.now.date_naive().to_string());
    assert_eq!(api["totals"]["page_views"], 160, "{api:#}");
    assert_eq!(api["totals"]["visitors"], 4);
    assert_eq!(api["totals"]["bot_requests"], 40);
    let soc2 = api["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "soc2-type-ii-report")
        .unwrap();
    assert_eq!(
        (soc2["approvals"].as_u64(), soc2["downloads"].as_u64()),
        (Some(1), Some(1))
    );
    let bad = http
        .get(format!("{}/api/v1/visitors?days=0", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // No visitor's address or browser is in the database: only the document request's own
    // record keeps who asked (its requester is known by name anyway).
    let dump = trellis::store::testing::dump_text(&app.store)
        .await
        .unwrap();
    for secret in ["zz-ua-marker", "203.0.113.", "192.0.2.1", "Googlebot"] {
        let leaks: Vec<&str> = dump.lines().filter(|l| l.contains(secret)).collect();
        assert!(
            leaks.is_empty(),
            "{secret} is stored:\n{}",
            leaks.join("\n")
        );
    }
}

async fn trellis_user(app: &TestApp, name: &str) -> i64 {
    crate::common::staff::user_id(&app.store, name).await
}
