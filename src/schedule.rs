//! Crontab schedules, evaluated in UTC.
//!
//! Users write standard crontab (`min hour dom mon dow`, Sunday = 0 or 7), optionally with a
//! leading seconds field, or a macro such as `@daily`. The `cron` crate speaks the Quartz
//! dialect instead (seconds first, Sunday = 1), so every field is parsed, validated and expanded
//! here, then handed to `cron` as explicit Quartz lists.
//!
//! Day-of-month and day-of-week follow Vixie cron (and cronie): when both fields are restricted
//! a time matches if EITHER matches; when either field starts with `*` (`*`, `*/2`) both must
//! match. The OR case is two Quartz schedules; the next fire time is the earlier of the two.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

/// A parsed crontab expression (UTC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronSchedule {
    source: String,
    /// One Quartz schedule, or two when day-of-month and day-of-week are both restricted
    /// (cron's OR rule).
    schedules: Vec<cron::Schedule>,
    /// [`CronSchedule::cadence`], counted once when parsed (pages ask for it on every render).
    cadence: String,
}

const MACROS: &[(&str, &str)] = &[
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
];

impl CronSchedule {
    /// Parses standard 5-field crontab (`min hour dom mon dow`), 6-field crontab with a leading
    /// seconds field, or one of the macros `@hourly @daily @midnight @weekly @monthly @yearly
    /// @annually`.
    ///
    /// Day of week: 0 or 7 = Sunday, 1 = Monday … 6 = Saturday (also in the 6-field form).
    /// Names `SUN`-`SAT` and `JAN`-`DEC` are accepted case-insensitively, also in ranges.
    /// Supported syntax per field: `*`, `N`, `A-B`, lists `A,B-C`, steps `*/N`, `A-B/N` and
    /// `A/N` (= `A-max/N`).
    pub fn parse(expr: &str) -> Result<CronSchedule, String> {
        let source = expr.trim();
        let fail = |msg: String| format!("invalid schedule `{source}`: {msg}");
        let body = if source.starts_with('@') {
            let lower = source.to_ascii_lowercase();
            if lower == "@reboot" {
                return Err(fail(
                    "@reboot is not supported; use a time-based schedule".into(),
                ));
            }
            match MACROS.iter().find(|(name, _)| *name == lower) {
                Some((_, expansion)) => *expansion,
                None => {
                    return Err(fail(format!(
                        "unknown macro `{source}` (expected @hourly, @daily, @midnight, \
                         @weekly, @monthly, @yearly or @annually)"
                    )));
                }
            }
        } else {
            source
        };
        let schedules = translate(body).map_err(fail)?;
        let mut parsed = CronSchedule {
            source: source.to_owned(),
            schedules,
            cadence: String::new(),
        };
        parsed.cadence = parsed.count_cadence();
        Ok(parsed)
    }

    /// The next fire time strictly after `t`, or `None` if the schedule never fires again
    /// (the `cron` crate searches up to the year 2100).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedules
            .iter()
            .filter_map(|s| s.after(&t).next())
            .min()
    }

    /// How often the schedule fires, in words for visitors: `hourly`, `daily`, `weekly`,
    /// `every 15 minutes`, `4 times a day`, `5 times a week`, `monthly`, `yearly`. Counted over
    /// a fixed reference span (from Monday 1 January 2001), so the words never depend on when
    /// they are asked for.
    pub fn cadence(&self) -> &str {
        &self.cadence
    }

    fn count_cadence(&self) -> String {
        let start = chrono::NaiveDate::from_ymd_opt(2001, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        // Fires in [start, start + days), at most `cap` counted.
        let count = |days: i64, cap: u32| -> u32 {
            let end = start + chrono::Duration::days(days);
            let mut n = 0;
            let mut t = start - chrono::Duration::seconds(1);
            while n < cap {
                match self.next_after(t) {
                    Some(next) if next < end => {
                        n += 1;
                        t = next;
                    }
                    _ => break,
                }
            }
            n
        };
        const WEEKS: u32 = 4;
        let cap = WEEKS * 7 * 24 * 60 + 1;
        let n = count(i64::from(WEEKS) * 7, cap);
        let days = WEEKS * 7;
        match n {
            0..=3 => match count(365, 400) {
                0 => "never".into(),
                1 => "yearly".into(),
                2 => "twice a year".into(),
                4 => "quarterly".into(),
                12 => "monthly".into(),
                k => format!("{k} times a year"),
            },
            n if n == days * 24 => "hourly".into(),
            n if n == days => "daily".into(),
            n if n == WEEKS => "weekly".into(),
            n if n == days * 1440 => "every minute".into(),
            n if n > days * 24 && n % days == 0 && 1440 % (n / days) == 0 => {
                format!("every {} minutes", 1440 / (n / days))
            }
            n if n % days == 0 => format!("{} times a day", n / days),
            n if n % WEEKS == 0 => format!("{} times a week", n / WEEKS),
            n => format!("{n} times every {WEEKS} weeks"),
        }
    }

    /// The expression as written (trimmed).
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl serde::Serialize for CronSchedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

/// Parsed when the file is read, so a bad schedule is reported at its line and column.
impl<'de> serde::Deserialize<'de> for CronSchedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        CronSchedule::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl FromStr for CronSchedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CronSchedule::parse(s)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Second => "second",
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day of month",
            Field::Month => "month",
            Field::DayOfWeek => "day of week",
        }
    }

    /// Inclusive bounds of a written value (day of week accepts 7 for Sunday).
    fn bounds(self) -> (u32, u32) {
        match self {
            Field::Second | Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (0, 7),
        }
    }

    /// What `*` covers (day of week: 0-6, so `*/2` is Sun, Tue, Thu, Sat).
    fn star(self) -> (u32, u32) {
        match self {
            Field::DayOfWeek => (0, 6),
            other => other.bounds(),
        }
    }

    /// Number of distinct values after normalisation (7 → 0 for day of week).
    fn size(self) -> usize {
        let (lo, hi) = self.star();
        (hi - lo + 1) as usize
    }

    fn name_value(self, token: &str) -> Option<u32> {
        let lower = token.to_ascii_lowercase();
        let (names, offset) = match self {
            Field::Month => (&MONTH_NAMES[..], 1),
            Field::DayOfWeek => (&DAY_NAMES[..], 0),
            _ => return None,
        };
        names
            .iter()
            .position(|n| *n == lower)
            .and_then(|i| u32::try_from(i).ok())
            .map(|i| i + offset)
    }

    fn not_a_value(self, token: &str) -> String {
        let name = self.name();
        match self {
            Field::Month => format!("{name} `{token}` is not a number or a name (JAN-DEC)"),
            Field::DayOfWeek => format!("{name} `{token}` is not a number or a name (SUN-SAT)"),
            _ => format!("{name} `{token}` is not a number"),
        }
    }
}

/// One parsed field: the expanded set (crontab numbering, day of week 0-6) and whether the
/// text started with `*` (Vixie cron's rule for combining day of month and day of week).
struct Parsed {
    values: BTreeSet<u32>,
    starred: bool,
}

impl Parsed {
    fn is_full(&self, field: Field) -> bool {
        self.values.len() == field.size()
    }

    /// Quartz list; `offset` shifts values (day of week: crontab 0-6 → Quartz 1-7).
    fn quartz(&self, field: Field, offset: u32) -> String {
        if self.is_full(field) {
            return "*".into();
        }
        let items: Vec<String> = self
            .values
            .iter()
            .map(|v| (v + offset).to_string())
            .collect();
        items.join(",")
    }
}

fn translate(body: &str) -> Result<Vec<cron::Schedule>, String> {
    let fields: Vec<&str> = body.split_whitespace().collect();
    let (sec, rest) = match fields.len() {
        5 => (None, &fields[..]),
        6 => (Some(fields[0]), &fields[1..]),
        n => return Err(format!("expected 5 fields (or 6 with seconds), found {n}")),
    };
    let [min, hour, dom_text, mon_text, dow_text] = rest else {
        return Err(format!(
            "expected 5 fields (or 6 with seconds), found {}",
            fields.len()
        ));
    };
    let sec = match sec {
        Some(text) => parse_field(Field::Second, text)?.quartz(Field::Second, 0),
        None => "0".into(),
    };
    let min = parse_field(Field::Minute, min)?.quartz(Field::Minute, 0);
    let hour = parse_field(Field::Hour, hour)?.quartz(Field::Hour, 0);
    let dom = parse_field(Field::DayOfMonth, dom_text)?;
    let mon = parse_field(Field::Month, mon_text)?;
    let dow = parse_field(Field::DayOfWeek, dow_text)?;

    let dom_q = dom.quartz(Field::DayOfMonth, 0);
    let mon_q = mon.quartz(Field::Month, 0);
    let dow_q = dow.quartz(Field::DayOfWeek, 1);
    let prefix = format!("{sec} {min} {hour}");

    let quartz = if dom.starred || dow.starred {
        // Both must match (a `*` field matches every day).
        if !dom.is_full(Field::DayOfMonth) && !dom_fits_some_month(&dom.values, &mon.values) {
            return Err(format!(
                "never fires: day of month `{dom_text}` never occurs in month `{mon_text}`"
            ));
        }
        vec![format!("{prefix} {dom_q} {mon_q} {dow_q}")]
    } else {
        // Both restricted: either may match.
        vec![
            format!("{prefix} {dom_q} {mon_q} *"),
            format!("{prefix} * {mon_q} {dow_q}"),
        ]
    };
    quartz
        .iter()
        .map(|q| {
            cron::Schedule::from_str(q)
                .map_err(|e| format!("internal error translating to `{q}`: {e}"))
        })
        .collect()
}

/// Whether some selected day of month exists in some selected month (February has 29 days in
/// leap years).
fn dom_fits_some_month(days: &BTreeSet<u32>, months: &BTreeSet<u32>) -> bool {
    let Some(&first_day) = days.first() else {
        return false;
    };
    months.iter().any(|m| {
        let len = match m {
            2 => 29,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        first_day <= len
    })
}

fn parse_field(field: Field, text: &str) -> Result<Parsed, String> {
    let name = field.name();
    let mut values = BTreeSet::new();
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("{name} list `{text}` has an empty element"));
        }
        values.extend(parse_item(field, item)?);
    }
    Ok(Parsed {
        values,
        starred: text.starts_with('*'),
    })
}

/// Expands one list element (`*`, `N`, `A-B`, each optionally `/step`) into crontab values,
/// day of week normalised to 0-6.
fn parse_item(field: Field, item: &str) -> Result<Vec<u32>, String> {
    let name = field.name();
    if item == "?" {
        return Err(format!("{name} `?` is Quartz syntax; use `*`"));
    }
    let malformed = || format!("{name} `{item}` is malformed");
    let (base, step) = match item.split_once('/') {
        Some((base, step_text)) => {
            if base.is_empty() || step_text.contains('/') {
                return Err(malformed());
            }
            if !is_number(step_text) {
                return Err(format!("{name} step `{step_text}` is not a number"));
            }
            // Steps beyond the field's width select only the start; clamp huge numbers.
            let step = step_text.parse::<u32>().unwrap_or(u32::MAX);
            if step == 0 {
                return Err(format!("{name} `{item}`: step must be at least 1"));
            }
            (base, Some(step))
        }
        None => (item, None),
    };
    let (lo, hi) = if base == "*" {
        field.star()
    } else if let Some((a, b)) = base.split_once('-') {
        if a.is_empty() || b.is_empty() || b.contains('-') {
            return Err(malformed());
        }
        let lo = value(field, a)?;
        let mut hi = value(field, b)?;
        if field == Field::DayOfWeek && hi == 0 && lo > 0 {
            // `FRI-SUN`, `5-0`: Sunday as the end of a range is day 7.
            hi = 7;
        }
        if lo > hi {
            return Err(format!("{name} range `{base}` starts after it ends"));
        }
        (lo, hi)
    } else {
        let v = value(field, base)?;
        match step {
            // `A/N` means `A-max/N`.
            Some(_) => (v, field.star().1.max(v)),
            None => (v, v),
        }
    };
    let step = step.unwrap_or(1) as usize;
    let mut out: Vec<u32> = (lo..=hi).step_by(step).collect();
    if field == Field::DayOfWeek {
        for v in &mut out {
            if *v == 7 {
                *v = 0;
            }
        }
    }
    Ok(out)
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// One value: a number within the field's bounds, or a month / day name.
fn value(field: Field, token: &str) -> Result<u32, String> {
    if let Some(v) = field.name_value(token) {
        return Ok(v);
    }
    if !is_number(token) {
        return Err(field.not_a_value(token));
    }
    let (lo, hi) = field.bounds();
    match token.parse::<u32>() {
        Ok(v) if (lo..=hi).contains(&v) => Ok(v),
        _ => Err(format!(
            "{} {token} is out of range {lo}-{hi}",
            field.name()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cadence_in_words() {
        let check = |expr: &str, expect: &str| {
            let s = CronSchedule::parse(expr).unwrap();
            assert_eq!(s.cadence(), expect, "{expr}");
        };
        check("0 * * * *", "hourly");
        check("@hourly", "hourly");
        check("0 7 * * *", "daily");
        check("15 5 * * *", "daily");
        check("0 7 * * 1", "weekly");
        check("*/15 * * * *", "every 15 minutes");
        check("* * * * *", "every minute");
        check("0 */6 * * *", "4 times a day");
        check("0 9 * * 1-5", "5 times a week");
        check("0 0 1 * *", "monthly");
        check("0 0 1 1,4,7,10 *", "quarterly");
        check("@yearly", "yearly");
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("bad test instant {s}: {e}"))
            .with_timezone(&Utc)
    }

    /// `expr`'s next fire time strictly after `after` is `expected`.
    fn check(cases: &[(&str, &str, &str)]) {
        let mut failures = Vec::new();
        for &(expr, after, expected) in cases {
            let schedule = match CronSchedule::parse(expr) {
                Ok(s) => s,
                Err(e) => {
                    failures.push(format!("{expr}: {e}"));
                    continue;
                }
            };
            let got = schedule.next_after(at(after));
            if got != Some(at(expected)) {
                failures.push(format!(
                    "`{expr}` after {after}: expected {expected}, got {got:?}"
                ));
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    fn check_errors(cases: &[(&str, &str)]) {
        let mut failures = Vec::new();
        for &(expr, expected) in cases {
            match CronSchedule::parse(expr) {
                Ok(_) => failures.push(format!("`{expr}` parsed; expected error {expected}")),
                Err(e) if e != expected => {
                    failures.push(format!("`{expr}`:\n  expected {expected}\n  got      {e}"))
                }
                Err(_) => {}
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    // Calendar used below: 2026-11-22 is a Sunday, so 23 Mon … 28 Sat, 29 Sun, 30 Mon;
    // 2026-12-04 Fri, 12-11 Fri, 12-13 Sun.

    #[test]
    fn basic_times_and_strictly_after() {
        check(&[
            (
                "0 9 * * *",
                "2026-11-22T08:59:59.999Z",
                "2026-11-22T09:00:00Z",
            ),
            ("0 9 * * *", "2026-11-22T09:00:00Z", "2026-11-23T09:00:00Z"),
            (
                "0 9 * * *",
                "2026-11-22T09:00:00.5Z",
                "2026-11-23T09:00:00Z",
            ),
            ("* * * * *", "2026-11-22T10:07:00Z", "2026-11-22T10:08:00Z"),
            (
                "30 23 * * *",
                "2026-12-31T23:30:00Z",
                "2027-01-01T23:30:00Z",
            ),
            (
                "  0\t9  * * * ",
                "2026-11-22T00:00:00Z",
                "2026-11-22T09:00:00Z",
            ),
            ("0 0 31 * *", "2026-11-22T00:00:00Z", "2026-12-31T00:00:00Z"),
            ("0 0 29 2 *", "2026-11-22T00:00:00Z", "2028-02-29T00:00:00Z"),
        ]);
    }

    #[test]
    fn day_of_week_uses_crontab_numbering() {
        check(&[
            ("0 9 * * 1", "2026-11-22T00:00:00Z", "2026-11-23T09:00:00Z"),
            ("0 9 * * 0", "2026-11-22T00:00:00Z", "2026-11-22T09:00:00Z"),
            ("0 9 * * 7", "2026-11-22T00:00:00Z", "2026-11-22T09:00:00Z"),
            ("0 9 * * 0", "2026-11-22T09:00:00Z", "2026-11-29T09:00:00Z"),
            ("0 9 * * 6", "2026-11-22T00:00:00Z", "2026-11-28T09:00:00Z"),
            (
                "0 9 * * SUN",
                "2026-11-23T00:00:00Z",
                "2026-11-29T09:00:00Z",
            ),
            (
                "0 9 * * sat",
                "2026-11-22T00:00:00Z",
                "2026-11-28T09:00:00Z",
            ),
            // Weekdays.
            (
                "0 9 * * MON-FRI",
                "2026-11-22T00:00:00Z",
                "2026-11-23T09:00:00Z",
            ),
            (
                "0 9 * * mon-fri",
                "2026-11-27T10:00:00Z",
                "2026-11-30T09:00:00Z",
            ),
            (
                "0 9 * * 1-5",
                "2026-11-27T10:00:00Z",
                "2026-11-30T09:00:00Z",
            ),
            (
                "0 9 * * 1-5",
                "2026-11-28T10:00:00Z",
                "2026-11-30T09:00:00Z",
            ),
            // 5-7 = Fri, Sat, Sun.
            (
                "0 9 * * 5-7",
                "2026-11-23T00:00:00Z",
                "2026-11-27T09:00:00Z",
            ),
            (
                "0 9 * * 5-7",
                "2026-11-27T10:00:00Z",
                "2026-11-28T09:00:00Z",
            ),
            (
                "0 9 * * 5-7",
                "2026-11-28T10:00:00Z",
                "2026-11-29T09:00:00Z",
            ),
            (
                "0 9 * * 5-7",
                "2026-11-29T10:00:00Z",
                "2026-12-04T09:00:00Z",
            ),
            (
                "0 9 * * FRI-SUN",
                "2026-11-28T10:00:00Z",
                "2026-11-29T09:00:00Z",
            ),
            (
                "0 9 * * 6,0",
                "2026-11-23T00:00:00Z",
                "2026-11-28T09:00:00Z",
            ),
            (
                "0 9 * * 6,7",
                "2026-11-28T10:00:00Z",
                "2026-11-29T09:00:00Z",
            ),
            // */2 = Sun, Tue, Thu, Sat.
            (
                "0 9 * * */2",
                "2026-11-22T00:00:00Z",
                "2026-11-22T09:00:00Z",
            ),
            (
                "0 9 * * */2",
                "2026-11-22T10:00:00Z",
                "2026-11-24T09:00:00Z",
            ),
            (
                "0 9 * * */2",
                "2026-11-24T10:00:00Z",
                "2026-11-26T09:00:00Z",
            ),
            (
                "0 9 * * */2",
                "2026-11-26T10:00:00Z",
                "2026-11-28T09:00:00Z",
            ),
            (
                "0 9 * * */2",
                "2026-11-28T10:00:00Z",
                "2026-11-29T09:00:00Z",
            ),
            // 1-5/2 = Mon, Wed, Fri; 1-7/2 adds Sunday.
            (
                "0 9 * * 1-5/2",
                "2026-11-23T10:00:00Z",
                "2026-11-25T09:00:00Z",
            ),
            (
                "0 9 * * 1-5/2",
                "2026-11-27T10:00:00Z",
                "2026-11-30T09:00:00Z",
            ),
            (
                "0 9 * * 1-7/2",
                "2026-11-27T10:00:00Z",
                "2026-11-29T09:00:00Z",
            ),
        ]);
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        check(&[
            // Both restricted: the 13th OR any Friday.
            ("0 9 13 * 5", "2026-11-22T00:00:00Z", "2026-11-27T09:00:00Z"),
            ("0 9 13 * 5", "2026-11-27T10:00:00Z", "2026-12-04T09:00:00Z"),
            ("0 9 13 * 5", "2026-12-11T10:00:00Z", "2026-12-13T09:00:00Z"),
            ("0 0 1 * 1", "2026-11-22T00:00:00Z", "2026-11-23T00:00:00Z"),
            ("0 0 1 * 1", "2026-11-30T00:00:00Z", "2026-12-01T00:00:00Z"),
            // Either restricted to a day, still OR within the month filter.
            (
                "0 0 1 dec mon",
                "2026-11-22T00:00:00Z",
                "2026-12-01T00:00:00Z",
            ),
            (
                "0 0 1 dec mon",
                "2026-12-01T00:00:00Z",
                "2026-12-07T00:00:00Z",
            ),
            // A field starting with `*` means AND (Vixie cron): odd days that are Mondays.
            (
                "0 9 */2 * 1",
                "2026-11-22T00:00:00Z",
                "2026-11-23T09:00:00Z",
            ),
            (
                "0 9 */2 * 1",
                "2026-11-23T10:00:00Z",
                "2026-12-07T09:00:00Z",
            ),
            // Day of month alone.
            ("0 9 13 * *", "2026-11-22T00:00:00Z", "2026-12-13T09:00:00Z"),
        ]);
    }

    #[test]
    fn months_and_steps() {
        check(&[
            (
                "0 0 1 jan,JUL *",
                "2026-11-22T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
            (
                "0 0 1 jan,JUL *",
                "2027-01-01T00:00:00Z",
                "2027-07-01T00:00:00Z",
            ),
            // 2027-03-01 is a Monday.
            (
                "30 6 * mar-may mon",
                "2026-11-22T00:00:00Z",
                "2027-03-01T06:30:00Z",
            ),
            (
                "0 0 1 */3 *",
                "2026-11-22T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
            (
                "0 0 1 2-12/3 *",
                "2026-11-22T00:00:00Z",
                "2027-02-01T00:00:00Z",
            ),
            (
                "*/15 * * * *",
                "2026-11-22T10:07:00Z",
                "2026-11-22T10:15:00Z",
            ),
            (
                "*/15 * * * *",
                "2026-11-22T10:45:00Z",
                "2026-11-22T11:00:00Z",
            ),
            (
                "10-50/20 * * * *",
                "2026-11-22T10:31:00Z",
                "2026-11-22T10:50:00Z",
            ),
            (
                "10-50/20 * * * *",
                "2026-11-22T10:50:00Z",
                "2026-11-22T11:10:00Z",
            ),
            (
                "5/20 * * * *",
                "2026-11-22T10:26:00Z",
                "2026-11-22T10:45:00Z",
            ),
            (
                "0 */6 * * *",
                "2026-11-22T10:00:00Z",
                "2026-11-22T12:00:00Z",
            ),
            (
                "0 */6 * * *",
                "2026-11-22T18:00:00Z",
                "2026-11-23T00:00:00Z",
            ),
            (
                "0 8-18/4,22 * * *",
                "2026-11-22T16:30:00Z",
                "2026-11-22T22:00:00Z",
            ),
            (
                "0 0 */10 * *",
                "2026-11-22T00:00:00Z",
                "2026-12-01T00:00:00Z",
            ),
        ]);
    }

    #[test]
    fn six_fields_with_seconds() {
        check(&[
            (
                "30 0 9 * * 1",
                "2026-11-22T00:00:00Z",
                "2026-11-23T09:00:30Z",
            ),
            (
                "*/10 * * * * *",
                "2026-11-22T10:00:05Z",
                "2026-11-22T10:00:10Z",
            ),
            (
                "0 0 0 * * 0",
                "2026-11-22T00:00:00Z",
                "2026-11-29T00:00:00Z",
            ),
            (
                "0 0 9 * * 7",
                "2026-11-23T00:00:00Z",
                "2026-11-29T09:00:00Z",
            ),
            (
                "0 0 9 * * MON-FRI",
                "2026-11-27T10:00:00Z",
                "2026-11-30T09:00:00Z",
            ),
            (
                "15,45 * * * * *",
                "2026-11-22T10:00:15Z",
                "2026-11-22T10:00:45Z",
            ),
        ]);
    }

    #[test]
    fn macros() {
        check(&[
            ("@hourly", "2026-11-22T10:07:00Z", "2026-11-22T11:00:00Z"),
            ("@daily", "2026-11-22T10:07:00Z", "2026-11-23T00:00:00Z"),
            ("@midnight", "2026-11-22T10:07:00Z", "2026-11-23T00:00:00Z"),
            ("@DAILY", "2026-11-22T10:07:00Z", "2026-11-23T00:00:00Z"),
            // Weekly = Sunday midnight; 2026-11-22 00:00 itself is excluded.
            ("@weekly", "2026-11-22T00:00:00Z", "2026-11-29T00:00:00Z"),
            ("@weekly", "2026-11-23T00:00:00Z", "2026-11-29T00:00:00Z"),
            ("@monthly", "2026-11-22T10:07:00Z", "2026-12-01T00:00:00Z"),
            ("@yearly", "2026-11-22T10:07:00Z", "2027-01-01T00:00:00Z"),
            ("@annually", "2026-11-22T10:07:00Z", "2027-01-01T00:00:00Z"),
        ]);
    }

    #[test]
    fn source_is_kept() {
        let s = CronSchedule::parse("  @daily ").unwrap();
        assert_eq!(s.source(), "@daily");
        assert_eq!(s.to_string(), "@daily");
        let s: CronSchedule = "0 9 * * 1".parse().unwrap();
        assert_eq!(s.source(), "0 9 * * 1");
    }

    #[test]
    fn rejects_with_specific_messages() {
        check_errors(&[
            (
                "0 25 * * *",
                "invalid schedule `0 25 * * *`: hour 25 is out of range 0-23",
            ),
            (
                "* * * *",
                "invalid schedule `* * * *`: expected 5 fields (or 6 with seconds), found 4",
            ),
            (
                "",
                "invalid schedule ``: expected 5 fields (or 6 with seconds), found 0",
            ),
            (
                "0 0 0 * * * 2026",
                "invalid schedule `0 0 0 * * * 2026`: expected 5 fields (or 6 with seconds), found 7",
            ),
            (
                "60 * * * *",
                "invalid schedule `60 * * * *`: minute 60 is out of range 0-59",
            ),
            (
                "60 * * * * *",
                "invalid schedule `60 * * * * *`: second 60 is out of range 0-59",
            ),
            (
                "0 0 0 * *",
                "invalid schedule `0 0 0 * *`: day of month 0 is out of range 1-31",
            ),
            (
                "0 0 * 13 *",
                "invalid schedule `0 0 * 13 *`: month 13 is out of range 1-12",
            ),
            (
                "0 0 * * 8",
                "invalid schedule `0 0 * * 8`: day of week 8 is out of range 0-7",
            ),
            (
                "0 0 * * 1-9",
                "invalid schedule `0 0 * * 1-9`: day of week 9 is out of range 0-7",
            ),
            (
                "0 99999999999999 * * *",
                "invalid schedule `0 99999999999999 * * *`: hour 99999999999999 is out of range 0-23",
            ),
            (
                "0 0 * foo *",
                "invalid schedule `0 0 * foo *`: month `foo` is not a number or a name (JAN-DEC)",
            ),
            (
                "0 0 * * funday",
                "invalid schedule `0 0 * * funday`: day of week `funday` is not a number or a name (SUN-SAT)",
            ),
            (
                "0 0 * * 1#2",
                "invalid schedule `0 0 * * 1#2`: day of week `1#2` is not a number or a name (SUN-SAT)",
            ),
            (
                "0 mon * * *",
                "invalid schedule `0 mon * * *`: hour `mon` is not a number",
            ),
            (
                "0 0 L * *",
                "invalid schedule `0 0 L * *`: day of month `L` is not a number",
            ),
            (
                "0 0 ? * MON",
                "invalid schedule `0 0 ? * MON`: day of month `?` is Quartz syntax; use `*`",
            ),
            (
                "*/0 * * * *",
                "invalid schedule `*/0 * * * *`: minute `*/0`: step must be at least 1",
            ),
            (
                "*/x * * * *",
                "invalid schedule `*/x * * * *`: minute step `x` is not a number",
            ),
            (
                "5-1 * * * *",
                "invalid schedule `5-1 * * * *`: minute range `5-1` starts after it ends",
            ),
            (
                "0 0 * * SAT-MON",
                "invalid schedule `0 0 * * SAT-MON`: day of week range `SAT-MON` starts after it ends",
            ),
            (
                "1,,2 * * * *",
                "invalid schedule `1,,2 * * * *`: minute list `1,,2` has an empty element",
            ),
            (
                "-5 * * * *",
                "invalid schedule `-5 * * * *`: minute `-5` is malformed",
            ),
            (
                "1-2-3 * * * *",
                "invalid schedule `1-2-3 * * * *`: minute `1-2-3` is malformed",
            ),
            (
                "1/2/3 * * * *",
                "invalid schedule `1/2/3 * * * *`: minute `1/2/3` is malformed",
            ),
            (
                "0 0 30 2 *",
                "invalid schedule `0 0 30 2 *`: never fires: day of month `30` never occurs in month `2`",
            ),
            (
                "0 0 31 apr,jun *",
                "invalid schedule `0 0 31 apr,jun *`: never fires: day of month `31` never occurs in month `apr,jun`",
            ),
            (
                "@reboot",
                "invalid schedule `@reboot`: @reboot is not supported; use a time-based schedule",
            ),
            (
                "@fortnightly",
                "invalid schedule `@fortnightly`: unknown macro `@fortnightly` (expected @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually)",
            ),
        ]);
    }

    #[test]
    fn impossible_day_of_month_is_fine_when_day_of_week_can_match() {
        // OR semantics: Feb 30 never happens, but every Monday in February does.
        check(&[("0 0 30 2 1", "2026-11-22T00:00:00Z", "2027-02-01T00:00:00Z")]);
    }
}
