//! Whether a control was freshly evaluated and passing through a whole period — what OSCAL's
//! *satisfied* claims for the period's objectives.
//!
//! The rule: at every moment of `[start, end)`, the control's newest evaluation passed and was
//! no older than its freshness. So the first evaluation is at or before `start` (a passing one
//! before the period counts while it is still fresh at `start`), no two consecutive
//! evaluations are further apart than the freshness, nor the last one and `end`, and every
//! evaluation passed. Anything else is *not satisfied*, with the first reason in time order.
//!
//! Evaluations are taken one at a time, in time order, keeping only the newest: the export
//! reads a year of results once, in id order, and feeds each control's here. Pure: no I/O.

use chrono::{DateTime, Duration, Utc};

use crate::model::Status;

/// Why a control was not freshly passing through the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Not evaluated in the period, and no evaluation before it was fresh at its start.
    NoData,
    /// Nothing fresh at the period's start: the first evaluation that counts is at `first`.
    LateStart { first: DateTime<Utc> },
    /// An evaluation that did not pass (or, before the period, was not passing at its start).
    Failure { at: DateTime<Utc>, status: Status },
    /// No evaluation between `from` and `to` (an evaluation, or the period's end): longer
    /// than the freshness.
    Gap {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
}

impl Problem {
    /// The reason as a token (OSCAL property value).
    pub fn token(&self) -> &'static str {
        match self {
            Problem::NoData => "no-data",
            Problem::LateStart { .. } => "late-start",
            Problem::Failure { .. } => "failure",
            Problem::Gap { .. } => "gap",
        }
    }
}

/// What a period amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Satisfied {
        evaluations: usize,
    },
    NotSatisfied {
        /// The first problem, in time order.
        first: Problem,
        /// Evaluations in the period that did not pass, and gaps longer than the freshness.
        failures: usize,
        gaps: usize,
        evaluations: usize,
    },
}

impl Verdict {
    pub fn satisfied(&self) -> bool {
        matches!(self, Verdict::Satisfied { .. })
    }

    /// One sentence for people (OSCAL remarks and descriptions).
    pub fn describe(&self, freshness: Duration) -> String {
        let fresh = human(freshness);
        match self {
            Verdict::Satisfied { evaluations } => format!(
                "evaluated and passing throughout the period ({evaluations} evaluations, none more than {fresh} apart)"
            ),
            Verdict::NotSatisfied {
                first,
                failures,
                gaps,
                evaluations,
            } => {
                let first = match first {
                    Problem::NoData => format!(
                        "no data: not evaluated in the period, and no evaluation before it was fresh (within {fresh}) at its start"
                    ),
                    Problem::LateStart { first } => format!(
                        "late start: nothing fresh (within {fresh}) at the period's start; first evaluated at {}",
                        time(*first)
                    ),
                    Problem::Failure { at, status } => {
                        format!("failure: evaluated {} at {}", status.as_str(), time(*at))
                    }
                    Problem::Gap { from, to } => format!(
                        "gap: not evaluated from {} to {} ({}, longer than its freshness of {fresh})",
                        time(*from),
                        time(*to),
                        human(*to - *from)
                    ),
                };
                format!(
                    "not satisfied, {first} ({evaluations} evaluations in the period, {failures} not passing, {gaps} gaps longer than {fresh})"
                )
            }
        }
    }
}

/// A control's evaluations, taken in time order.
#[derive(Debug, Clone)]
pub struct Coverage {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    freshness: Duration,
    /// The newest evaluation seen (at first: the newest before the period, if any).
    last: Option<(DateTime<Utc>, Status)>,
    first: Option<Problem>,
    failures: usize,
    gaps: usize,
    evaluations: usize,
    /// An evaluation came older than the one before it: the verdict must be made again from
    /// the evaluations in time order ([`Coverage::restart`]).
    unordered: bool,
}

impl Coverage {
    /// For the period `[start, end)`, given the newest evaluation before it.
    pub fn new(
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        freshness: Duration,
        before: Option<(DateTime<Utc>, Status)>,
    ) -> Coverage {
        let mut c = Coverage {
            start,
            end,
            freshness,
            last: None,
            first: None,
            failures: 0,
            gaps: 0,
            evaluations: 0,
            unordered: false,
        };
        if let Some((at, status)) = before {
            // Only an evaluation still fresh at the start speaks for the period.
            if start - at <= freshness {
                if status != Status::Pass {
                    c.problem(Problem::Failure { at, status });
                }
                c.last = Some((at, status));
            }
        }
        c
    }

    /// The same period and freshness, from the start again (for evaluations read again in
    /// time order).
    pub fn restart(&self, before: Option<(DateTime<Utc>, Status)>) -> Coverage {
        Coverage::new(self.start, self.end, self.freshness, before)
    }

    fn problem(&mut self, p: Problem) {
        if self.first.is_none() {
            self.first = Some(p);
        }
    }

    /// Takes an evaluation of the period (`start <= at < end`), not older than the previous.
    pub fn see(&mut self, at: DateTime<Utc>, status: Status) {
        if self.unordered {
            return;
        }
        match self.last {
            Some((previous, _)) if at < previous => {
                self.unordered = true;
                return;
            }
            Some((previous, _)) if at - previous > self.freshness => {
                self.gaps += 1;
                self.problem(Problem::Gap {
                    from: previous,
                    to: at,
                });
            }
            Some(_) => {}
            None if at > self.start => self.problem(Problem::LateStart { first: at }),
            None => {}
        }
        if status != Status::Pass {
            self.failures += 1;
            self.problem(Problem::Failure { at, status });
        }
        self.evaluations += 1;
        self.last = Some((at, status));
    }

    /// Whether the evaluations came out of time order (see [`Coverage::restart`]).
    pub fn unordered(&self) -> bool {
        self.unordered
    }

    pub fn finish(mut self) -> Verdict {
        match self.last {
            None => self.problem(Problem::NoData),
            Some((at, _)) if self.end - at > self.freshness => {
                self.gaps += 1;
                self.problem(Problem::Gap {
                    from: at,
                    to: self.end,
                });
            }
            Some(_) => {}
        }
        match self.first {
            None => Verdict::Satisfied {
                evaluations: self.evaluations,
            },
            Some(first) => Verdict::NotSatisfied {
                first,
                failures: self.failures,
                gaps: self.gaps,
                evaluations: self.evaluations,
            },
        }
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `3d 4h`, `26h 5m`, `45m`, `30s`.
fn human(d: Duration) -> String {
    let s = d.num_seconds().max(0);
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let parts: Vec<String> = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if parts.is_empty() {
        "0s".into()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 1)
            .and_then(|d| d.checked_add_days(chrono::Days::new(u64::from(day) - 1)))
            .and_then(|d| d.and_hms_opt(hour, 0, 0))
            .unwrap()
            .and_utc()
    }

    /// Every 12 hours from `from` (inclusive) to `to` (exclusive), passing.
    fn every_12h(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(DateTime<Utc>, Status)> {
        let mut out = Vec::new();
        let mut t = from;
        while t < to {
            out.push((t, Pass));
            t += Duration::hours(12);
        }
        out
    }

    /// The period is November 2026, freshness one day.
    fn check(
        name: &str,
        before: Option<(DateTime<Utc>, Status)>,
        evaluations: &[(DateTime<Utc>, Status)],
        expect: Result<(), (Problem, usize, usize)>,
    ) {
        let (start, end) = (at(1, 0), at(31, 0));
        let mut c = Coverage::new(start, end, Duration::days(1), before);
        for &(t, s) in evaluations {
            c.see(t, s);
        }
        assert!(!c.unordered(), "{name}");
        let verdict = c.finish();
        match expect {
            Ok(()) => assert_eq!(
                verdict,
                Verdict::Satisfied {
                    evaluations: evaluations.len()
                },
                "{name}"
            ),
            Err((first, failures, gaps)) => assert_eq!(
                verdict,
                Verdict::NotSatisfied {
                    first,
                    failures,
                    gaps,
                    evaluations: evaluations.len()
                },
                "{name}"
            ),
        }
    }

    #[test]
    fn satisfied_only_when_fresh_and_passing_throughout() {
        let (start, end) = (at(1, 0), at(31, 0));
        let healthy = every_12h(start, end);
        check("a healthy period", None, &healthy, Ok(()));
        check(
            "a fresh pass before the period counts",
            Some((at(1, 0) - Duration::hours(6), Pass)),
            &every_12h(at(1, 4), end),
            Ok(()),
        );
        check(
            "the only evaluation on the first day",
            None,
            &[(start, Pass)],
            Err((
                Problem::Gap {
                    from: start,
                    to: end,
                },
                0,
                1,
            )),
        );
        check("no data", None, &[], Err((Problem::NoData, 0, 0)));
        check(
            "no data: the evaluation before the period is stale at its start",
            Some((at(1, 0) - Duration::days(3), Pass)),
            &[],
            Err((Problem::NoData, 0, 0)),
        );
        check(
            "late start",
            None,
            &every_12h(at(3, 0), end),
            Err((Problem::LateStart { first: at(3, 0) }, 0, 0)),
        );
        check(
            "late start: the evaluation before the period is stale at its start",
            Some((at(1, 0) - Duration::hours(25), Pass)),
            &every_12h(at(1, 6), end),
            Err((Problem::LateStart { first: at(1, 6) }, 0, 0)),
        );
        let mut gap = every_12h(start, at(10, 0));
        gap.extend(every_12h(at(13, 0), end));
        check(
            "a gap of three days",
            None,
            &gap,
            Err((
                Problem::Gap {
                    from: at(9, 12),
                    to: at(13, 0),
                },
                0,
                1,
            )),
        );
        check(
            "stops before the end",
            None,
            &every_12h(start, at(29, 0)),
            Err((
                Problem::Gap {
                    from: at(28, 12),
                    to: end,
                },
                0,
                1,
            )),
        );
        let mut failure = healthy.clone();
        failure[20].1 = Fail;
        failure[40].1 = Error;
        check(
            "a failure",
            None,
            &failure,
            Err((
                Problem::Failure {
                    at: at(11, 0),
                    status: Fail,
                },
                2,
                0,
            )),
        );
        check(
            "failing at the start",
            Some((at(1, 0) - Duration::hours(1), Fail)),
            &every_12h(at(1, 6), end),
            Err((
                Problem::Failure {
                    at: at(1, 0) - Duration::hours(1),
                    status: Fail,
                },
                0,
                0,
            )),
        );
        let mut waived = healthy.clone();
        waived[3].1 = Waived;
        check(
            "a waived evaluation is not a pass",
            None,
            &waived,
            Err((
                Problem::Failure {
                    at: at(2, 12),
                    status: Waived,
                },
                1,
                0,
            )),
        );
        // A gap exactly as long as the freshness is still fresh.
        let exact: Vec<_> = (0..30)
            .map(|d| (at(1, 0) + Duration::days(d), Pass))
            .collect();
        check(
            "evaluations exactly a freshness apart",
            None,
            &exact,
            Ok(()),
        );
    }

    #[test]
    fn out_of_order_evaluations_are_noticed_and_made_again() {
        let mut c = Coverage::new(at(1, 0), at(31, 0), Duration::days(1), None);
        c.see(at(1, 0), Pass);
        c.see(at(2, 0), Pass);
        c.see(at(1, 12), Fail);
        assert!(c.unordered());
        let mut again = c.restart(None);
        for (t, s) in [(at(1, 0), Pass), (at(1, 12), Fail), (at(2, 0), Pass)] {
            again.see(t, s);
        }
        assert!(!again.unordered());
        assert!(matches!(
            again.finish(),
            Verdict::NotSatisfied {
                first: Problem::Failure { .. },
                ..
            }
        ));
    }

    #[test]
    fn reasons_name_when() {
        let v = Verdict::NotSatisfied {
            first: Problem::Gap {
                from: at(9, 12),
                to: at(13, 0),
            },
            failures: 0,
            gaps: 1,
            evaluations: 40,
        };
        assert_eq!(
            v.describe(Duration::days(1)),
            "not satisfied, gap: not evaluated from 2026-11-09T12:00:00Z to 2026-11-13T00:00:00Z (3d 12h, longer than its freshness of 1d) (40 evaluations in the period, 0 not passing, 1 gaps longer than 1d)"
        );
        assert_eq!(human(Duration::minutes(90)), "1h 30m");
        assert_eq!(human(Duration::zero()), "0s");
    }
}
