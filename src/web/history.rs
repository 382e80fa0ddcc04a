//! The public history of a control: one cell per UTC day (the 90-day strip), the moments its
//! public status changed (the Atom feed), and since when it has been failing.
//!
//! Pure: from a control's stored evaluations `(evaluated_at, status)`, its freshness and
//! `now`. The status at any instant is the [`badge_for`] its newest evaluation at that instant,
//! so a day is green only if the control was freshly passing all day long (as far as it was
//! monitored); a day's cell is the worst status it had that day.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;

use super::view::{Badge, badge_for};
use crate::model::{DaySummary, Status};

/// What one day's cell shows: the worst [`Badge`] of the day, or no data (never evaluated).
pub type DayStatus = Option<Badge>;

/// Rank of a day's status: the worse, the higher.
fn severity(s: DayStatus) -> u8 {
    match s {
        None => 0,
        Some(Badge::Passing) => 1,
        Some(Badge::Stale) => 2,
        Some(Badge::NotVerified) => 3,
        Some(Badge::NeedsAttention | Badge::InRemediation) => 4,
    }
}

/// Consecutive days with the same status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DayRun {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// `null` when there is no data for these days.
    pub status: DayStatus,
}

impl DayRun {
    pub fn days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }
}

/// The statuses of the `days` UTC days ending with `now`'s day, oldest first.
///
/// `points` are the control's evaluations in time order, including its newest one before the
/// window (so the window's first day starts in a known state).
pub fn daily(
    points: &[(DateTime<Utc>, Status)],
    freshness: Duration,
    now: DateTime<Utc>,
    days: u32,
) -> Vec<(NaiveDate, DayStatus)> {
    // Evaluations dated after `now` are not believed (as on the page itself).
    let points: Vec<(DateTime<Utc>, Status)> =
        points.iter().copied().filter(|&(t, _)| t <= now).collect();
    daily_from(&DaySummary::of_evaluations(&points), freshness, now, days)
}

/// [`daily`] from the control's evaluations summed up per day (what the store's roll-up
/// keeps), oldest first: at least the newest day before the window (it carries the state the
/// window starts in) and every day of the window with evaluations, today's summing up only
/// those up to `now`.
///
/// A day's cell is the worst of: each evaluation's own badge that day, the badge of the
/// evaluation before the day from midnight until the day's first one (no data if there is
/// none), and stale whenever a result outlived its freshness before the next one (or before
/// the end of the day; today ends now). So a day is green only if the control was freshly
/// passing all day long.
pub fn daily_from(
    summaries: &[DaySummary],
    freshness: Duration,
    now: DateTime<Utc>,
    days: u32,
) -> Vec<(NaiveDate, DayStatus)> {
    let today = now.date_naive();
    let first = today - Duration::days(i64::from(days) - 1);
    let mut next = summaries.iter().peekable();
    // The newest evaluation before the day being looked at.
    let mut before = None;
    while let Some(s) = next.next_if(|s| s.day < first) {
        before = Some((s.last_at, s.last_status));
    }
    (0..days)
        .map(|k| {
            let date = first + Duration::days(i64::from(k));
            let start = date.and_time(chrono::NaiveTime::MIN).and_utc();
            // Today ends now, the evaluation at `now` included.
            let end = (start + Duration::days(1)).min(now + Duration::nanoseconds(1));
            let day = next.next_if(|s| s.day == date);
            let status = day_status(before, day, freshness, start, end);
            if let Some(d) = day {
                before = Some((d.last_at, d.last_status));
            }
            (date, status)
        })
        .collect()
}

/// The worst status over `[start, end)`, from the evaluation before it and the day's own.
fn day_status(
    before: Option<(DateTime<Utc>, Status)>,
    day: Option<&DaySummary>,
    freshness: Duration,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> DayStatus {
    let mut worst: Option<DayStatus> = None;
    let mut note = |s: DayStatus| {
        if worst.is_none_or(|w| severity(s) > severity(w)) {
            worst = Some(s);
        }
    };
    // Until the day's first evaluation (all day without one), the one before governs.
    let carried_until = match day {
        None => Some(end),
        Some(d) if d.first_at > start => Some(d.first_at),
        Some(_) => None,
    };
    if let Some(until) = carried_until {
        match before {
            None => note(None),
            Some((evaluated_at, status)) => {
                note(Some(badge_for(
                    Some((status, evaluated_at)),
                    freshness,
                    start,
                )));
                // It goes stale before the day's first evaluation.
                if evaluated_at + freshness < until {
                    note(Some(badge_for(
                        Some((status, evaluated_at)),
                        freshness,
                        until,
                    )));
                }
            }
        }
    }
    if let Some(d) = day {
        // Each evaluation's own badge, fresh when it is made.
        for status in Status::ALL {
            if d.count(status) > 0 {
                note(Some(badge_for(
                    Some((status, d.first_at)),
                    freshness,
                    d.first_at,
                )));
            }
        }
        // A result outlived its freshness before the next one, or before the day ended. (After
        // an `error`, whose own badge `not verified` outranks `stale`, this changes nothing.)
        if d.longest_gap > freshness || d.last_at + freshness < end {
            note(Some(Badge::Stale));
        }
    }
    worst.unwrap_or(None)
}

/// Consecutive equal days merged, oldest first.
pub fn runs(days: &[(NaiveDate, DayStatus)]) -> Vec<DayRun> {
    let mut out: Vec<DayRun> = Vec::new();
    for &(date, status) in days {
        match out.last_mut() {
            Some(run) if run.status == status && run.to.succ_opt() == Some(date) => run.to = date,
            _ => out.push(DayRun {
                from: date,
                to: date,
                status,
            }),
        }
    }
    out
}

/// A change of a control's public status, for the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub at: DateTime<Utc>,
    /// `None` for the control's first evaluation.
    pub from: Option<Badge>,
    pub to: Badge,
}

/// Every change of public status within `(since, now]`: at evaluations whose badge differs
/// from the one before, and when a result went stale without a newer one.
pub fn changes(
    points: &[(DateTime<Utc>, Status)],
    freshness: Duration,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<Change> {
    let mut out = Vec::new();
    let mut current: Option<Badge> = None;
    let mut note = |at: DateTime<Utc>, badge: Badge, current: &mut Option<Badge>| {
        if *current != Some(badge) {
            if at > since && at <= now {
                out.push(Change {
                    at,
                    from: *current,
                    to: badge,
                });
            }
            *current = Some(badge);
        }
    };
    let points: Vec<&(DateTime<Utc>, Status)> = points.iter().filter(|(t, _)| *t <= now).collect();
    for (i, &&(t, status)) in points.iter().enumerate() {
        note(t, badge_for(Some((status, t)), freshness, t), &mut current);
        let next = points.get(i + 1).map_or(now, |p| p.0);
        let stale_at = t + freshness + Duration::seconds(1);
        if stale_at <= next {
            note(
                stale_at,
                badge_for(Some((status, t)), freshness, stale_at),
                &mut current,
            );
        }
    }
    out
}

/// Since when the control has had its current (non-passing) status: the first of the
/// newest run of evaluations with the same status, and whether that run reaches back to the
/// oldest evaluation known (so it may have begun earlier still).
pub fn failing_since(points: &[(DateTime<Utc>, Status)]) -> Option<(DateTime<Utc>, bool)> {
    let &(_, last) = points.last()?;
    if last == Status::Pass {
        return None;
    }
    let mut since = points.len() - 1;
    while since > 0 && points[since - 1].1 == last {
        since -= 1;
    }
    Some((points[since].0, since == 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Badge::*;
    use Status::{Error, Fail, Pass};
    use chrono::{DurationRound, TimeZone};

    fn t(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
    }

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
    }

    /// `check(points, now, expect)`: the last `expect.len()` days, freshness one day.
    fn check(points: &[(DateTime<Utc>, Status)], now: DateTime<Utc>, expect: &[DayStatus]) {
        let got: Vec<DayStatus> = daily(points, Duration::days(1), now, expect.len() as u32)
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert_eq!(got, expect, "{points:?}");
    }

    #[test]
    fn a_day_is_green_only_if_freshly_passing_all_day() {
        // Never evaluated: no data.
        check(&[], t(10, 12), &[None, None]);
        // Passing every day at 06:00.
        let daily_pass: Vec<_> = (5..=10).map(|d| (t(d, 6), Pass)).collect();
        check(&daily_pass, t(10, 12), &[Some(Passing); 3]);
        // First evaluated today: no data before it, then passing — the day shows passing,
        // the days before show nothing.
        check(&[(t(10, 6), Pass)], t(10, 12), &[None, Some(Passing)]);
        // A failure at 09:00 on the 9th, fixed at 06:00 on the 10th.
        check(
            &[(t(8, 6), Pass), (t(9, 9), Fail), (t(10, 6), Pass)],
            t(10, 12),
            &[Some(Passing), Some(NeedsAttention), Some(NeedsAttention)],
        );
        // An error in the middle of a passing day makes the day "not verified".
        check(
            &[(t(9, 6), Pass), (t(9, 12), Error), (t(9, 13), Pass)],
            t(10, 0),
            &[Some(NotVerified), Some(Passing)],
        );
        // Monitoring stops: the pass of the 5th goes stale at 06:00 on the 6th.
        check(
            &[(t(5, 6), Pass)],
            t(8, 12),
            &[Some(Passing), Some(Stale), Some(Stale), Some(Stale)],
        );
        // Results from the future are ignored.
        check(&[(t(11, 6), Pass)], t(10, 12), &[None]);
    }

    /// The cells as they were computed from every evaluation before the roll-up: segment by
    /// segment, each governed by the newest evaluation at its start.
    fn reference_daily(
        points: &[(DateTime<Utc>, Status)],
        freshness: Duration,
        now: DateTime<Utc>,
        days: u32,
    ) -> Vec<(NaiveDate, DayStatus)> {
        let today = now.date_naive();
        let points: Vec<(DateTime<Utc>, Status)> =
            points.iter().copied().filter(|&(t, _)| t <= now).collect();
        (0..days)
            .rev()
            .map(|back| {
                let date = today - Duration::days(i64::from(back));
                let start = date.and_time(chrono::NaiveTime::MIN).and_utc();
                let end = (start + Duration::days(1)).min(now + Duration::nanoseconds(1));
                let mut worst: Option<DayStatus> = None;
                let mut note = |s: DayStatus| {
                    if worst.is_none_or(|w| severity(s) > severity(w)) {
                        worst = Some(s);
                    }
                };
                let first_inside = points.partition_point(|&(t, _)| t <= start);
                let mut segment_starts = vec![(start, first_inside.checked_sub(1))];
                for (i, &(t, _)) in points.iter().enumerate().skip(first_inside) {
                    if t >= end {
                        break;
                    }
                    segment_starts.push((t, Some(i)));
                }
                for (k, &(seg_start, governing)) in segment_starts.iter().enumerate() {
                    let seg_end = segment_starts.get(k + 1).map_or(end, |&(t, _)| t);
                    let Some(i) = governing else {
                        note(None);
                        continue;
                    };
                    let (evaluated_at, status) = points[i];
                    note(Some(badge_for(
                        Some((status, evaluated_at)),
                        freshness,
                        seg_start,
                    )));
                    if evaluated_at + freshness < seg_end {
                        note(Some(badge_for(
                            Some((status, evaluated_at)),
                            freshness,
                            seg_end,
                        )));
                    }
                }
                (date, worst.unwrap_or(None))
            })
            .collect()
    }

    /// The cells from day summaries are the cells from every evaluation: random histories
    /// (several evaluations a day, changing statuses, gaps of days, results going stale,
    /// evaluations exactly at midnight and at `now`, some after it), several freshnesses.
    #[test]
    fn day_summaries_give_the_cells_every_evaluation_gives() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let base = t(1, 0);
        for case in 0..3000 {
            let mut points = Vec::new();
            let mut at = base;
            for _ in 0..next(40) {
                // Mostly within hours, sometimes days apart, sometimes simultaneous; on whole
                // hours now and then, so midnight itself comes up.
                at += match next(10) {
                    0 => Duration::zero(),
                    1 => Duration::days(1 + next(4) as i64),
                    2 => Duration::hours(1 + next(30) as i64),
                    _ => Duration::minutes(next(600) as i64),
                };
                if next(4) == 0 {
                    // The next whole hour (time order is kept).
                    at = (at + Duration::hours(1) - Duration::minutes(1))
                        .duration_trunc(Duration::hours(1))
                        .unwrap();
                }
                let status = Status::ALL[next(5) as usize];
                points.push((at, status));
            }
            // Two evaluations at the very same instant, exactly at midnight, are the one
            // case the two differ in: the reference notes only the later of them for that
            // day (the earlier one governs no segment), the summaries both.
            let midnight_twice = points.windows(2).any(|w| {
                w[0].0 == w[1].0 && w[0].0 == w[0].0.duration_trunc(Duration::days(1)).unwrap()
            });
            if midnight_twice {
                continue;
            }
            let now = match next(3) {
                0 => at,
                1 => at + Duration::minutes(next(3000) as i64),
                _ => base + Duration::minutes(next(20_000) as i64),
            };
            for freshness in [Duration::hours(1), Duration::hours(25), Duration::days(7)] {
                let days = 1 + next(20) as u32;
                assert_eq!(
                    daily(&points, freshness, now, days),
                    reference_daily(&points, freshness, now, days),
                    "case {case}: {points:?}, now {now}, freshness {freshness}, {days} days"
                );
            }
        }
    }

    #[test]
    fn runs_merge_equal_days() {
        let days = vec![
            (d(1), None),
            (d(2), Some(Passing)),
            (d(3), Some(Passing)),
            (d(4), Some(NeedsAttention)),
        ];
        let r = runs(&days);
        assert_eq!(r.len(), 3);
        assert_eq!((r[1].from, r[1].to, r[1].days()), (d(2), d(3), 2));
        assert_eq!(r[2].status, Some(NeedsAttention));
    }

    #[test]
    fn changes_are_status_transitions_including_going_stale() {
        let points = [
            (t(1, 6), Pass),
            (t(2, 6), Pass),
            (t(3, 6), Fail),
            (t(4, 6), Pass),
        ];
        let c = changes(&points, Duration::days(1), t(1, 0), t(7, 0));
        let got: Vec<(DateTime<Utc>, Option<Badge>, Badge)> =
            c.iter().map(|c| (c.at, c.from, c.to)).collect();
        assert_eq!(
            got,
            vec![
                (t(1, 6), None, Passing),
                (t(3, 6), Some(Passing), NeedsAttention),
                (t(4, 6), Some(NeedsAttention), Passing),
                (t(5, 6) + Duration::seconds(1), Some(Passing), Stale),
            ]
        );
        // Only changes after `since` are reported, but the state before it is known.
        let c = changes(&points, Duration::days(1), t(3, 0), t(4, 12));
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].from, Some(Passing));
    }

    #[test]
    fn failing_since_finds_the_start_of_the_streak() {
        assert_eq!(failing_since(&[]), None);
        assert_eq!(failing_since(&[(t(1, 0), Pass)]), None);
        assert_eq!(
            failing_since(&[(t(1, 0), Pass), (t(2, 0), Fail), (t(3, 0), Fail)]),
            Some((t(2, 0), false))
        );
        assert_eq!(
            failing_since(&[(t(2, 0), Fail), (t(3, 0), Fail)]),
            Some((t(2, 0), true))
        );
    }
}
