//! The notification outbox and the notifier's marks on both backends: several claimers of one
//! channel get each delivery once; a lease that expired is taken over and the former owner can
//! no longer finish the batch; a mark changed by several instances at once is changed, and
//! its event written, once; a subscription lives and dies with its waiting messages.

use std::collections::BTreeSet;

use trellis::notify::{Event, EventKind, NewEvent};
use trellis::store::BatchEnd;

use super::*;

backends! {
    outbox_deliveries_are_claimed_once_across_claimers(url);
    a_mark_changed_by_racing_instances_is_announced_once(url);
    unsubscribing_drops_the_messages_waiting_for_the_address();
    settled_outbox_rows_are_pruned_after_the_retention();
    undeliverable_messages_are_dropped_not_failed();
}

fn event(key: &str) -> NewEvent {
    NewEvent {
        key: key.into(),
        event: Event {
            control_id: Some("mfa".into()),
            count: 1,
            ..Event::new(EventKind::Failing, Utc::now())
        },
    }
}

async fn outbox_deliveries_are_claimed_once_across_claimers(store: &Store, url: &str) {
    let now = Utc::now().timestamp_millis();
    // More than one message's worth (100 deliveries), so the claimers race for several.
    let events: Vec<NewEvent> = (0..250).map(|i| event(&format!("e{i}"))).collect();
    assert_eq!(store.add_events(&events, now).await.unwrap(), 250);
    // The same keys again: nothing added.
    assert_eq!(store.add_events(&events, now).await.unwrap(), 0);
    let routed = store
        .route_events(now, &|_| BTreeSet::from(["a".to_string(), "b".to_string()]))
        .await
        .unwrap();
    assert_eq!(routed, 250);
    assert_eq!(
        store.route_events(now, &|_| BTreeSet::new()).await.unwrap(),
        0
    );

    // Four instances claim both channels at once, each with its own connections.
    let mut tasks = Vec::new();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(4));
    for i in 0..4 {
        let store = Store::connect(url).await.unwrap();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let mut got = Vec::new();
            for channel in ["a", "b"] {
                while let Some(batch) = store
                    .claim_batch(channel, &format!("i{i}"), now, 0, now + 60_000, 5)
                    .await
                    .unwrap()
                {
                    let sent = store
                        .finish_batch(&batch.id, &format!("i{i}"), &BatchEnd::Sent, now)
                        .await
                        .unwrap();
                    assert!(sent);
                    got.push((channel, batch.events.len()));
                }
            }
            got
        }));
    }
    let mut per_channel = std::collections::BTreeMap::new();
    for t in tasks {
        for (channel, n) in t.await.unwrap() {
            *per_channel.entry(channel).or_insert(0) += n;
        }
    }
    assert_eq!(per_channel[&"a"], 250, "each event once on channel a");
    assert_eq!(per_channel[&"b"], 250, "each event once on channel b");
    let rows = store.notify_deliveries().await.unwrap();
    assert_eq!(rows.len(), 500);
    assert!(rows.iter().all(|d| d.state == "sent" && d.attempts == 1));

    // A lease that expires (its instance died mid-send) is taken over; the former owner can
    // no longer finish the batch.
    store.add_events(&[event("late")], now).await.unwrap();
    store
        .route_events(now, &|_| BTreeSet::from(["a".to_string()]))
        .await
        .unwrap();
    let first = store
        .claim_batch("a", "dead", now, 0, now + 1_000, 5)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .claim_batch("a", "alive", now + 500, 0, now + 60_000, 5)
            .await
            .unwrap()
            .is_none(),
        "held while its lease runs"
    );
    let again = store
        .claim_batch("a", "alive", now + 2_000, 0, now + 60_000, 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.id, first.id,
        "the same message id on the second attempt"
    );
    assert_eq!(again.attempts, 2);
    assert!(
        !store
            .finish_batch(&first.id, "dead", &BatchEnd::Sent, now)
            .await
            .unwrap()
    );
    let end = BatchEnd::Retry {
        at_ms: now + 10_000,
        error: "HTTP 500".into(),
    };
    assert!(
        store
            .finish_batch(&again.id, "alive", &end, now)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_batch("a", "alive", now + 5_000, 0, now + 60_000, 5)
            .await
            .unwrap()
            .is_none(),
        "not before its retry time"
    );
    let third = store
        .claim_batch("a", "alive", now + 10_000, 0, now + 60_000, 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(third.attempts, 3);
}

async fn a_mark_changed_by_racing_instances_is_announced_once(store: &Store, url: &str) {
    let now = Utc::now().timestamp_millis();
    // Six instances, connected before they race.
    let mut stores = Vec::new();
    for _ in 0..6 {
        stores.push(Store::connect(url).await.unwrap());
    }
    for (before, after) in [(None, "passing"), (Some("passing"), "needs_attention")] {
        let mut tasks = Vec::new();
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(stores.len()));
        for (i, store) in stores.iter().enumerate() {
            let store = store.clone();
            let start = start.clone();
            let before = before.map(str::to_string);
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                store
                    .set_mark(
                        "status:mfa",
                        before.as_deref(),
                        Some(after),
                        Some(&event(&format!("public_status:mfa:{after}:{i}"))),
                        now,
                    )
                    .await
                    .unwrap()
            }));
        }
        let mut won = 0;
        for t in tasks {
            won += usize::from(t.await.unwrap());
        }
        assert_eq!(won, 1, "one instance records {after}");
        assert_eq!(
            store.mark("status:mfa").await.unwrap().as_deref(),
            Some(after)
        );
    }
    let events = store.notify_events().await.unwrap();
    assert_eq!(events.len(), 2, "one event per change: {events:?}");
    // Removing a mark.
    assert!(
        store
            .set_mark("status:mfa", Some("needs_attention"), None, None, now)
            .await
            .unwrap()
    );
    assert_eq!(store.mark("status:mfa").await.unwrap(), None);
}

async fn unsubscribing_drops_the_messages_waiting_for_the_address(store: &Store) {
    let now = Utc::now();
    let topics = [trellis::notify::config::Topic::Status];
    let confirm = |id: &str| event(&format!("confirm:{id}"));
    let id = match store
        .subscribe(
            "Ada@Customer.example",
            &topics,
            Some("10.0.0.1"),
            now,
            confirm,
        )
        .await
        .unwrap()
    {
        trellis::store::Subscribed::New { id } => id,
        other => panic!("{other:?}"),
    };
    // Asked again at once: nothing sent; confirmed: nothing changes.
    assert_eq!(
        store
            .subscribe("ada@customer.example", &topics, None, now, confirm)
            .await
            .unwrap(),
        trellis::store::Subscribed::TooSoon
    );
    assert_eq!(
        store
            .recent_subscriptions("10.0.0.1", now - chrono::Duration::hours(1))
            .await
            .unwrap(),
        1
    );
    assert!(store.confirm_subscriber(&id, now).await.unwrap());
    assert_eq!(
        store
            .recent_subscriptions("10.0.0.1", now - chrono::Duration::hours(1))
            .await
            .unwrap(),
        0,
        "the address is forgotten at confirmation"
    );
    assert_eq!(
        store
            .subscribe("ada@customer.example", &topics, None, now, confirm)
            .await
            .unwrap(),
        trellis::store::Subscribed::AlreadyConfirmed
    );
    let ms = now.timestamp_millis();
    store.add_events(&[event("update")], ms).await.unwrap();
    store
        .route_events(ms, &|_| BTreeSet::from([format!("subscriber:{id}")]))
        .await
        .unwrap();
    // The confirmation and the update, both waiting for this subscriber.
    assert_eq!(store.notify_deliveries().await.unwrap().len(), 2);
    assert!(store.unsubscribe(&id).await.unwrap());
    assert!(store.subscriber(&id).await.unwrap().is_none());
    assert!(
        store.notify_deliveries().await.unwrap().is_empty(),
        "its waiting message is gone"
    );
    assert!(!store.unsubscribe(&id).await.unwrap(), "once");
}

async fn settled_outbox_rows_are_pruned_after_the_retention(store: &Store) {
    let old = Utc::now().timestamp_millis() - 100 * 86_400_000;
    let new = Utc::now().timestamp_millis();
    store
        .add_events(&[event("old"), event("old-failed")], old)
        .await
        .unwrap();
    store
        .route_events(old, &|e| BTreeSet::from([e.count.to_string()]))
        .await
        .unwrap();
    let batch = store
        .claim_batch("1", "me", old, 0, old + 1000, 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(batch.events.len(), 2);
    store
        .finish_batch(&batch.id, "me", &BatchEnd::Sent, old)
        .await
        .unwrap();
    store
        .add_events(&[event("new"), event("waiting")], new)
        .await
        .unwrap();
    store
        .route_events(new, &|_| BTreeSet::from(["x".to_string()]))
        .await
        .unwrap();
    let pruned = store.prune_outbox(new - 90 * 86_400_000).await.unwrap();
    assert_eq!(pruned, 4, "two deliveries and their two events");
    let keys: Vec<String> = store
        .notify_events()
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _, _)| k)
        .collect();
    assert_eq!(keys, ["new", "waiting"]);
}

async fn undeliverable_messages_are_dropped_not_failed(store: &Store) {
    let now = Utc::now();
    let ms = now.timestamp_millis();
    store.add_events(&[event("x")], ms).await.unwrap();
    store
        .route_events(ms, &|_| {
            BTreeSet::from([
                "kept".to_string(),
                "removed".to_string(),
                "subscriber:0193".to_string(),
            ])
        })
        .await
        .unwrap();
    // Channel `removed` is gone from the config, and so is visitor mail.
    assert_eq!(
        store
            .drop_orphans(&["kept".to_string()], false, ms)
            .await
            .unwrap(),
        2
    );
    let states: Vec<(String, String)> = store
        .notify_deliveries()
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.channel, d.state))
        .collect();
    assert_eq!(
        states,
        [
            ("kept".to_string(), "pending".to_string()),
            ("removed".to_string(), "dropped".to_string()),
            ("subscriber:0193".to_string(), "dropped".to_string()),
        ]
    );
    let overview = store.notify_overview().await.unwrap();
    assert_eq!(
        (overview.pending, overview.failed),
        (1, 0),
        "dropped is not failed"
    );

    // A subscription nobody confirmed is deleted once its link has expired.
    let topics = [trellis::notify::config::Topic::Status];
    let old = now - chrono::Duration::days(3);
    store
        .subscribe(
            "old@customer.example",
            &topics,
            Some("10.0.0.2"),
            old,
            |id| event(&format!("confirm:{id}")),
        )
        .await
        .unwrap();
    store
        .subscribe(
            "new@customer.example",
            &topics,
            Some("10.0.0.2"),
            now,
            |id| event(&format!("confirm:{id}")),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .expire_pending_subscriptions(now - chrono::Duration::days(2))
            .await
            .unwrap(),
        1
    );
    let left: Vec<String> = store
        .export_subscribers(&trellis::store::Actor::new("t", None), now)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.email)
        .collect();
    assert_eq!(left, ["new@customer.example"]);
}
