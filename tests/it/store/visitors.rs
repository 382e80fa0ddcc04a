//! Visitor counts on both backends: instances counting at once add up, a day's unique
//! visitors are counted once however many instances close it, nothing stored names an
//! address or a user agent, and counts past the retention are deleted.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::http::header::USER_AGENT;
use chrono::NaiveDate;
use trellis::scheduler::FixedClock;
use trellis::web::analytics::{Analytics, Metric};

use super::*;

backends! {
    visit_counts_add_up_across_instances_and_days_close_once(url);
    nothing_stored_names_a_visitor();
    visit_counts_past_the_retention_are_deleted();
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 5).unwrap()
}

async fn counter(store: Store) -> Arc<Analytics> {
    let now = day().and_hms_opt(15, 0, 0).unwrap().and_utc();
    Arc::new(
        Analytics::start(store, Arc::new(FixedClock(now)), TimeDelta::days(395), &[])
            .await
            .unwrap(),
    )
}

fn request(ip: &str, ua: &str) -> actix_web::HttpRequest {
    let peer: SocketAddr = format!("{ip}:40000").parse().unwrap();
    actix_web::test::TestRequest::default()
        .insert_header((USER_AGENT, ua))
        .peer_addr(peer)
        .to_http_request()
}

fn count(rows: &[trellis::store::VisitCount], metric: &str, bot: bool) -> u64 {
    rows.iter()
        .filter(|r| r.metric == metric && r.bot == bot)
        .map(|r| r.count)
        .sum()
}

async fn visit_counts_add_up_across_instances_and_days_close_once(store: &Store, url: &str) {
    // Four instances, each with its own connection, starting (and making the day's salt) at once.
    let mut starts = Vec::new();
    for _ in 0..4 {
        let url = url.to_string();
        starts.push(tokio::spawn(async move {
            counter(Store::connect(&url).await.unwrap()).await
        }));
    }
    let mut counters = Vec::new();
    for s in starts {
        counters.push(s.await.unwrap());
    }
    // Each counts 250 page views from 8 threads, by the same 10 people, plus 25 by a bot.
    let mut tasks = Vec::new();
    for c in &counters {
        for t in 0..8 {
            let c = c.clone();
            tasks.push(tokio::task::spawn_blocking(move || {
                for i in 0..250 {
                    if i % 8 != t {
                        continue;
                    }
                    let person = i % 10;
                    let req = request(
                        &format!("198.51.100.{person}"),
                        &format!("Firefox/{person}"),
                    );
                    c.request(&req, Metric::PageView);
                    if i % 10 == 0 {
                        c.request(&request("198.51.100.200", "curl/8.5.0"), Metric::PageView);
                    }
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let flushes: Vec<_> = counters
        .iter()
        .map(|c| {
            let c = c.clone();
            tokio::spawn(async move { c.flush().await })
        })
        .collect();
    for f in flushes {
        f.await.unwrap().unwrap();
    }
    let rows = store.visits(day()).await.unwrap();
    assert_eq!(count(&rows, "page_view", false), 1000, "{rows:#?}");
    assert_eq!(count(&rows, "page_view", true), 100, "{rows:#?}");
    assert_eq!(
        count(&rows, "visitors", false),
        10,
        "the same ten people everywhere: {rows:#?}"
    );

    // An instance that still counts the day when it is closed (its salt in memory).
    let late = counter(store.clone()).await;
    // The day ends; every instance closes it at once: counted once, hashes and salt gone.
    let tomorrow = day().succ_opt().unwrap();
    let mut closes = Vec::new();
    for _ in 0..4 {
        let url = url.to_string();
        closes.push(tokio::spawn(async move {
            Store::connect(&url)
                .await
                .unwrap()
                .close_visitor_days(tomorrow)
                .await
        }));
    }
    let mut closed = 0;
    for c in closes {
        closed += c.await.unwrap().unwrap();
    }
    assert_eq!(closed, 1, "one instance closed the day");
    let rows = store.visits(day()).await.unwrap();
    assert_eq!(count(&rows, "visitors", false), 10, "{rows:#?}");
    let dump = testing::dump_text(store).await.unwrap();
    assert!(
        !dump.contains("visitor_hashes: "),
        "hashes outlived their day:\n{dump}"
    );
    assert!(
        !dump.contains("visitor_salts: '2026-12-05'")
            && !dump.contains("visitor_salts: (2026-12-05"),
        "the salt outlived its day:\n{dump}"
    );
    // The late instance's visitor of the closed day: the view counts, the visitor does not
    // count twice; nor does an instance whose clock still says that day start the day again.
    late.request(&request("198.51.100.77", "Safari/1"), Metric::PageView);
    late.flush().await.unwrap();
    let lagging = counter(store.clone()).await;
    lagging.request(&request("198.51.100.78", "Safari/2"), Metric::PageView);
    lagging.flush().await.unwrap();
    let rows = store.visits(day()).await.unwrap();
    assert_eq!(count(&rows, "page_view", false), 1002, "{rows:#?}");
    assert_eq!(count(&rows, "visitors", false), 10, "{rows:#?}");
    let dump = testing::dump_text(store).await.unwrap();
    assert!(
        !dump.contains("visitor_hashes: "),
        "a closed day got hashes:\n{dump}"
    );
}

async fn nothing_stored_names_a_visitor(store: &Store) {
    let c = counter(store.clone()).await;
    let ua = "Mozilla/5.0 (X11; Linux x86_64) zz-visitor-marker/1.0";
    for metric in Metric::ALL {
        c.event(&request("203.0.113.77", ua), metric, "soc2-type-ii-report");
    }
    c.request(
        &request("203.0.113.78", "Googlebot/2.1 zz-bot-marker"),
        Metric::PageView,
    );
    c.flush().await.unwrap();
    let dump = testing::dump_text(store).await.unwrap();
    assert!(dump.contains("visit_counts: "), "{dump}");
    assert!(dump.contains("visitor_hashes: "), "{dump}");
    for secret in [
        "zz-visitor-marker",
        "zz-bot-marker",
        "203.0.113.77",
        "203.0.113.78",
        "Mozilla",
        "Googlebot",
    ] {
        assert!(!dump.contains(secret), "{secret} is stored:\n{dump}");
    }
}

async fn visit_counts_past_the_retention_are_deleted(store: &Store) {
    let row = |day: NaiveDate| trellis::store::VisitCount {
        day,
        metric: "page_view".into(),
        subject: String::new(),
        bot: false,
        count: 3,
    };
    let old = day() - TimeDelta::days(400);
    let kept = day() - TimeDelta::days(10);
    store.add_visits(&[row(old), row(kept)], &[]).await.unwrap();
    assert_eq!(store.visits(old).await.unwrap().len(), 2);
    // Adding to a day adds, never replaces.
    store.add_visits(&[row(kept)], &[]).await.unwrap();
    let deleted = store
        .prune_visits(day() - TimeDelta::days(395))
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let rows = store.visits(old).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].day, rows[0].count), (kept, 6));
    // The sweep does the same with the configured retention.
    let c = Analytics::start(
        store.clone(),
        Arc::new(FixedClock(day().and_hms_opt(1, 0, 0).unwrap().and_utc())),
        TimeDelta::days(5),
        &[],
    )
    .await
    .unwrap();
    c.sweep().await.unwrap();
    assert!(store.visits(old).await.unwrap().is_empty());
}
