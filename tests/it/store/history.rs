//! The history roll-up (`control_days`) against the results it is derived from, on both
//! backends: what `Store::history_days` reads must be what summing up the stored results
//! gives (`DaySummary::of_evaluations` over `result_history`), however the results came in.

use chrono::{NaiveDate, TimeDelta};
use trellis::model::DaySummary;

use super::*;

backends! {
    roll_up_agrees_with_the_results(url);
    rows_stored_outside_are_rolled_up_at_connection(url);
    every_controls_history_follows_new_results(url);
}

/// Midnight (UTC) of day `d` after the base day, plus `minutes`.
fn at(d: i64, minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
        + TimeDelta::days(d)
        + TimeDelta::minutes(minutes)
}

fn day(d: i64) -> NaiveDate {
    at(d, 0).date_naive()
}

/// What the roll-up must say: every control's days summed up from all its stored results,
/// trimmed as `history_days(from, now, only)` trims them (the newest day before `from`, the
/// days from `from` to yesterday, today up to `now`).
async fn recomputed(
    store: &Store,
    from: NaiveDate,
    now: DateTime<Utc>,
    only: Option<&str>,
) -> Vec<(String, Vec<DaySummary>)> {
    let today = now.date_naive();
    let from = from.min(today);
    let all = store
        .result_history(at(-1000, 0))
        .await
        .expect("every result");
    all.into_iter()
        .filter(|(id, _)| only.is_none_or(|o| o == id))
        .filter_map(|(id, points)| {
            let points: Vec<_> = points.into_iter().filter(|&(t, _)| t <= now).collect();
            let days = DaySummary::of_evaluations(&points);
            let before = days.iter().rposition(|d| d.day < from);
            let kept: Vec<DaySummary> = days
                .iter()
                .enumerate()
                .filter(|&(i, d)| Some(i) == before || (d.day >= from && d.day <= today))
                .map(|(_, d)| d.clone())
                .collect();
            (!kept.is_empty()).then_some((id, kept))
        })
        .collect()
}

async fn assert_agrees(store: &Store, from: NaiveDate, now: DateTime<Utc>) {
    let expected = recomputed(store, from, now, None).await;
    let got = store
        .history_days(from, now, None)
        .await
        .expect("history days");
    assert_eq!(got, expected, "from {from}, now {now}");
    for (id, _) in &expected {
        let one = store
            .history_days(from, now, Some(id))
            .await
            .expect("one control's days");
        assert_eq!(one, recomputed(store, from, now, Some(id)).await, "{id}");
    }
}

async fn roll_up_agrees_with_the_results(store: &Store, url: &str) {
    use Status::*;
    // (control, status, day, minutes after midnight), recorded in this order, a run each line.
    let runs: &[&[(&str, Status, i64, i64)]] = &[
        // Days -40 and -39: a control evaluated once a day, one hourly, one with one result.
        &[
            ("a", Pass, -40, 60),
            ("b", Pass, -40, 0),
            ("c", Fail, -40, 600),
        ],
        &[("a", Pass, -39, 60), ("b", Pass, -40, 60)],
        // Day -2: b several times in one run, its status changing within the day: passing,
        // failing for an hour, an error, passing again; a at exactly midnight.
        &[
            ("a", Pass, -2, 0),
            ("b", Pass, -2, 30),
            ("b", Fail, -2, 90),
            ("b", Pass, -2, 150),
        ],
        &[
            ("b", Error, -2, 700),
            ("b", Pass, -2, 701),
            ("a", Waived, -2, 1439),
        ],
        // Stored out of time order: an earlier result of day -2 after its later ones, one
        // inside the day's longest gap, and two at the same instant (the later stored wins).
        &[("b", Fail, -2, 400), ("b", NotApplicable, -2, 10)],
        &[("a", Fail, -2, 1439)],
        // Yesterday and today: today's results around `now`, one after it.
        &[("a", Pass, -1, 1380), ("c", Error, -1, 5)],
        &[("a", Pass, 0, 60), ("b", Fail, 0, 61), ("c", Pass, 0, 120)],
        &[("a", Fail, 0, 600), ("b", Pass, 0, 600)],
    ];
    for results in runs {
        let outcomes: Vec<ControlOutcome> = results
            .iter()
            .map(|&(id, status, d, m)| outcome(id, status, at(d, m)))
            .collect();
        run_with_results(store, &outcomes).await;
    }
    let now = at(0, 300);
    // The day b changed most: the roll-up's row, summed up again after the late results.
    let days = store
        .history_days(day(-2), now, Some("b"))
        .await
        .expect("b's days");
    let (_, b) = &days[0];
    let d2 = b.iter().find(|d| d.day == day(-2)).expect("day -2");
    assert_eq!((d2.first_at, d2.last_at), (at(-2, 10), at(-2, 701)));
    assert_eq!(d2.last_status, Pass);
    assert_eq!(d2.longest_gap, TimeDelta::minutes(700 - 400));
    assert_eq!(
        Status::ALL.map(|s| d2.count(s)),
        [3, 2, 1, 1, 0],
        "pass, fail, error, not applicable, waived"
    );
    // a's two results at the same instant: the one stored later is the day's last.
    let days = store
        .history_days(day(-2), now, Some("a"))
        .await
        .expect("a");
    let a2 = days[0].1.iter().find(|d| d.day == day(-2)).expect("day -2");
    assert_eq!((a2.last_at, a2.last_status), (at(-2, 1439), Fail));
    // Today counts only what is not after `now`.
    let today = days[0].1.last().expect("today");
    assert_eq!((today.day, today.count(Fail)), (day(0), 0));

    for (from, now) in [
        (day(-89), now),
        (day(-2), now),
        (day(-1), now),
        (day(-39), at(-39, 30)),
        (day(0), at(0, 600)),
        (day(5), at(0, 600)),
    ] {
        assert_agrees(store, from, now).await;
    }
    // Another connection finds nothing to catch up with: the same rows.
    let again = Store::connect(url).await.expect("reconnect");
    assert_agrees(&again, day(-89), at(0, 600)).await;
}

async fn rows_stored_outside_are_rolled_up_at_connection(store: &Store, url: &str) {
    use Status::*;
    let signer = sealed_fixture(store).await;
    let run = run_with_results(
        store,
        &[
            outcome("a.one", Pass, at(-3, 0)),
            outcome("z", Fail, at(-1, 30)),
        ],
    )
    .await;
    // A database from before the roll-up: its rows are gone, so the next connection fills it.
    sql(store, "DELETE FROM control_days").await;
    let again = Store::connect(url).await.expect("reconnect");
    assert_agrees(&again, day(-89), at(0, 0)).await;
    // Rows stored outside Trellis (as the benchmarks' seeder does, unsealed): their days are
    // summed up again when they are sealed, at the next connection.
    sql(
        store,
        &format!(
            "INSERT INTO control_results (run_id, control_id, status, summary, evaluated_at, \
             definition_sha256, checks, evidence_ids, finding_counts, exceptions, row_hash, \
             chain_hash) SELECT run_id, 'z', 'error', summary, evaluated_at, definition_sha256, \
             checks, evidence_ids, finding_counts, exceptions, '', '' FROM control_results \
             WHERE run_id = '{run}' AND control_id = 'a.one'"
        ),
    )
    .await;
    let before = store
        .history_days(day(-89), at(0, 0), Some("z"))
        .await
        .expect("z");
    // Read for every control meanwhile (kept, with the roll-up not yet caught up) …
    let kept = store
        .history_days(day(-89), at(0, 0), None)
        .await
        .expect("every control");
    let again = Store::connect(url).await.expect("reconnect");
    let after = again
        .history_days(day(-89), at(0, 0), Some("z"))
        .await
        .expect("z");
    assert_ne!(before, after, "the new rows are counted");
    assert_agrees(&again, day(-89), at(0, 0)).await;
    // … and read again once the other connection has rolled them up and sealed them.
    assert_agrees(store, day(-89), at(0, 0)).await;
    assert_ne!(
        kept,
        store
            .history_days(day(-89), at(0, 0), None)
            .await
            .expect("every control")
    );
    let p = problems(&again, &signer).await;
    assert!(p.is_empty(), "{p:?}");
}

/// The history of every control (the overview's, kept between reads) after each kind of new
/// result: of today (read alone), of an earlier day, stored by another connection (another
/// instance), dated after `now`; and on the next day.
async fn every_controls_history_follows_new_results(store: &Store, url: &str) {
    use Status::*;
    run_with_results(
        store,
        &[
            outcome("a", Pass, at(-5, 0)),
            outcome("b", Pass, at(-1, 60)),
            outcome("a", Pass, at(0, 30)),
        ],
    )
    .await;
    let now = at(0, 300);
    let every = |now| async move {
        store
            .history_days(day(-89), now, None)
            .await
            .expect("every control")
    };
    assert_agrees(store, day(-89), now).await;
    let first = every(now).await;
    assert_eq!(every(now).await, first, "read again, unchanged");

    // Of today, by this connection.
    run_with_results(store, &[outcome("a", Fail, at(0, 120))]).await;
    let days = every(now).await;
    let a_today = days[0].1.last().expect("a today");
    assert_eq!((a_today.day, a_today.count(Fail)), (day(0), 1));
    assert_agrees(store, day(-89), now).await;

    // Of an earlier day: the days before today change.
    run_with_results(store, &[outcome("b", Error, at(-3, 0))]).await;
    assert_agrees(store, day(-89), now).await;

    // By another connection to the same database, of today and of an earlier day.
    let other = Store::connect(url).await.expect("another connection");
    run_with_results(&other, &[outcome("c", Fail, at(0, 200))]).await;
    let days = every(now).await;
    assert_eq!(
        days.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert_agrees(store, day(-89), now).await;
    run_with_results(&other, &[outcome("b", Fail, at(-2, 0))]).await;
    assert_agrees(store, day(-89), now).await;

    // Dated after `now`: counted once `now` has passed it; several before a read.
    run_with_results(
        store,
        &[
            outcome("a", Pass, at(0, 400)),
            outcome("d", Pass, at(0, 250)),
        ],
    )
    .await;
    assert_agrees(store, day(-89), now).await;
    assert_agrees(store, day(-89), at(0, 500)).await;
    assert_agrees(store, day(-89), now).await;

    // The next day: yesterday's evaluations come from the roll-up.
    assert_agrees(store, day(-88), at(1, 10)).await;
    run_with_results(store, &[outcome("b", Pass, at(1, 5))]).await;
    assert_agrees(store, day(-88), at(1, 10)).await;
}
