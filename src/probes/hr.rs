//! `hr.people`: the HR roster, one resource per person.
//!
//! Reads the CSV export configured at `sources.hr.path`. Default columns are
//! [`DEFAULT_COLUMNS`]; `sources.hr.columns` maps them to another HRIS's headers. Dates are ISO
//! `YYYY-MM-DD`; an empty cell is "none"; a set `end_date` on or before today means terminated.
//! A malformed row fails the whole collection with an error naming the line and column: a
//! roster that cannot be read completely is never evaluated as if it were complete. A date
//! recording something done ([`RECORDED`]) that lies after the run is unknown (the date rule,
//! [`super::dates`]); `start_date` and `end_date` may lie ahead.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Attribute, Collected, Probe, ProbeContext, ProbeError, Resource, dates};
use crate::diag::Diagnostic;

/// Trellis's names for the roster columns, in the default export order.
pub const DEFAULT_COLUMNS: &[&str] = &[
    "employee_id",
    "name",
    "email",
    "github_login",
    "aws_username",
    "department",
    "title",
    "manager_email",
    "start_date",
    "end_date",
    "background_check_date",
    "nda_signed_date",
    "security_training_date",
    "policy_ack_date",
    "last_review_date",
];

const REQUIRED: &[&str] = &["employee_id", "name", "email", "start_date"];
/// The date columns: the last seven of [`DEFAULT_COLUMNS`] (unit-tested).
const DATE_COLUMNS: &[&str] = DEFAULT_COLUMNS.split_at(8).1;

/// The date columns that record something done: one lying after the run is unknown.
pub const RECORDED: &[&str] = &[
    "background_check_date",
    "nda_signed_date",
    "security_training_date",
    "policy_ack_date",
    "last_review_date",
];

pub struct People;

/// Parameters of `hr.people`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PeopleParams {
    /// Include people whose `end_date` is on or before today (default: only current staff).
    #[serde(default)]
    pub include_terminated: bool,
    /// Only people who started on or after this date (`YYYY-MM-DD`), e.g. when a policy took
    /// effect.
    #[serde(default)]
    pub started_on_or_after: Option<NaiveDate>,
}

/// The roster's text columns: the first eight of [`DEFAULT_COLUMNS`].
const TEXT_COLUMNS: &[&str] = DEFAULT_COLUMNS.split_at(8).0;

/// One parsed roster row, shared through the fetch cache by every control reading the roster.
/// Its cells are kept by column position ([`TEXT_COLUMNS`], [`DATE_COLUMNS`]): a roster of
/// 10,000 people is held for as long as any collection may read it.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    /// The row's line in the file (the header is line 1).
    row: usize,
    texts: [Option<Box<str>>; TEXT_COLUMNS.len()],
    dates: [Option<NaiveDate>; DATE_COLUMNS.len()],
}

impl Person {
    /// A text column (`employee_id`, `email`, `github_login`…), `None` when empty.
    pub(crate) fn field(&self, name: &str) -> Option<&str> {
        let i = TEXT_COLUMNS.iter().position(|c| *c == name)?;
        self.texts[i].as_deref()
    }

    /// A date column (`start_date`, `end_date`…), `None` when empty.
    pub(crate) fn date(&self, name: &str) -> Option<NaiveDate> {
        let i = DATE_COLUMNS.iter().position(|c| *c == name)?;
        self.dates[i]
    }
}

/// The roster of the run (every row, terminated people included), read once.
pub(crate) async fn roster(ctx: &ProbeContext) -> Result<std::sync::Arc<Vec<Person>>, ProbeError> {
    let source = ctx
        .sources
        .hr
        .as_ref()
        .ok_or(ProbeError::NotConfigured("hr"))?;
    let path = ctx.resolve_path(&source.path);
    let columns = source.columns.to_map();
    ctx.cache
        .get_or_fetch(&format!("hr.roster:{}", path.display()), async {
            let bytes = tokio::fs::read(&path).await.map_err(|e| {
                ProbeError::Io(format!("cannot read HR roster {}: {e}", path.display()))
            })?;
            match parse_roster(&path, &bytes, &columns) {
                (people, problems) if problems.is_empty() => Ok(people),
                (_, problems) => Err(roster_error(&problems)),
            }
        })
        .await
}

impl Probe for People {
    const NAME: &'static str = "hr.people";
    const SOURCE: &'static str = "hr";
    const KIND: super::EvidenceKind = super::EvidenceKind::Record;
    const SUMMARY: &'static str =
        "People in the HR roster (CSV export of the HRIS), one resource per person.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("employee_id", String, "HRIS identifier"),
        attr!("name", String, "full name"),
        attr!("email", String, "work email"),
        attr!("github_login", String, "GitHub login, null if none"),
        attr!("aws_username", String, "AWS IAM user name, null if none"),
        attr!("department", String, "department, null if empty"),
        attr!("title", String, "job title, null if empty"),
        attr!("manager_email", String, "manager's email, null if empty"),
        attr!("start_date", Date, "first day of employment"),
        attr!(
            "end_date",
            Date,
            "last day of employment, null while employed"
        ),
        attr!(
            "background_check_date",
            Date,
            "background check completed, null if none"
        ),
        attr!(
            "nda_signed_date",
            Date,
            "confidentiality agreement signed, null if none"
        ),
        attr!(
            "security_training_date",
            Date,
            "latest security awareness training, null if none"
        ),
        attr!(
            "policy_ack_date",
            Date,
            "latest acknowledgement of security policies, null if none"
        ),
        attr!(
            "last_review_date",
            Date,
            "latest performance review, null if none"
        ),
        attr!("terminated", Bool, "end_date is set and on or before today"),
        attr!(
            "manager_in_roster",
            Bool,
            "manager_email is the work email of someone employed today"
        ),
        attr!(
            "days_employed",
            Int,
            "whole days from start_date to today (negative before start)"
        ),
    ];
    const EXAMPLE: &'static str = r#"probe: hr.people
with: {started_on_or_after: 2023-01-01}
where: days_employed >= 30
assert: security_training_date != null && days_since(security_training_date) <= 365
"#;

    type Params = PeopleParams;

    async fn collect(ctx: &ProbeContext, params: &PeopleParams) -> Result<Collected, ProbeError> {
        let people = roster(ctx).await?;
        let today = ctx.now.date_naive();
        // Work emails of the people employed today (for `manager_in_roster`).
        let current: std::collections::BTreeSet<String> = people
            .iter()
            .filter(|p| p.date("end_date").is_none_or(|end| end > today))
            .filter_map(|p| p.field("email").map(str::to_ascii_lowercase))
            .collect();
        let mut resources = Vec::new();
        // Each resource's row in the roster, for the raw evidence.
        let mut rows = Vec::new();
        for p in people.iter() {
            let end = p.date("end_date");
            let terminated = end.is_some_and(|e| e <= today);
            if terminated && !params.include_terminated {
                continue;
            }
            let start = p.date("start_date");
            if let (Some(min), Some(start)) = (params.started_on_or_after, start)
                && start < min
            {
                continue;
            }
            let manager_in_roster = p
                .field("manager_email")
                .is_some_and(|m| current.contains(&m.to_ascii_lowercase()));
            let days = start.map(|s| (today - s).num_days());
            let texts = TEXT_COLUMNS.iter().zip(&p.texts).map(|(k, v)| {
                (
                    *k,
                    v.as_deref()
                        .map_or(Value::Null, |v| Value::String(v.to_string())),
                )
            });
            let dates = DATE_COLUMNS
                .iter()
                .zip(&p.dates)
                .map(|(k, v)| (*k, v.map_or(Value::Null, |d| Value::String(d.to_string()))));
            let attributes: crate::probes::Attributes = texts
                .chain(dates)
                .chain([
                    ("terminated", Value::Bool(terminated)),
                    ("manager_in_roster", Value::Bool(manager_in_roster)),
                    ("days_employed", days.map_or(Value::Null, Value::from)),
                ])
                .collect();
            let id = p.field("employee_id").unwrap_or_default();
            let name = p.field("name").unwrap_or_default();
            let email = p.field("email").unwrap_or_default();
            rows.push(p.row);
            let mut resource = Resource {
                id: format!("hr:{id}"),
                name: format!("{name} <{email}> ({id})"),
                attributes,
                error: None,
                unknown: Default::default(),
                scope: false,
            };
            for &field in RECORDED {
                dates::apply(&mut resource, today, field, p.date(field), &[field]);
            }
            resources.push(resource);
        }
        // The raw evidence, `{"people": [{"attributes": {…}, "row": 7}, …], "source": "hr"}`,
        // written from the resources (dates ahead of the run only mark attributes unknown).
        #[derive(Serialize)]
        struct RawPerson<'a> {
            attributes: &'a crate::probes::Attributes,
            row: usize,
        }
        #[derive(Serialize)]
        struct Raw<'a> {
            people: Vec<RawPerson<'a>>,
            source: &'static str,
        }
        let raw = crate::probes::raw(&Raw {
            people: resources
                .iter()
                .zip(&rows)
                .map(|(r, &row)| RawPerson {
                    attributes: &r.attributes,
                    row,
                })
                .collect(),
            source: "hr",
        })?;
        Ok(Collected { resources, raw })
    }
}

/// How many problems a collection error lists before pointing at `trellis validate`.
const LISTED_PROBLEMS: usize = 10;

/// The roster's problems as one collection error: a roster that cannot be read completely is
/// never evaluated as if it were complete.
fn roster_error(problems: &[Diagnostic]) -> ProbeError {
    let mut text: Vec<String> = problems
        .iter()
        .take(LISTED_PROBLEMS)
        .map(ToString::to_string)
        .collect();
    if problems.len() > LISTED_PROBLEMS {
        text.push(format!(
            "and {} more (`trellis validate` lists them all)",
            problems.len() - LISTED_PROBLEMS
        ));
    }
    ProbeError::BadBody(text.join("; "))
}

/// The header of Trellis field `field` in this export.
fn header<'a>(mapping: &'a BTreeMap<String, String>, field: &'a str) -> &'a str {
    mapping.get(field).map(String::as_str).unwrap_or(field)
}

/// Parses a roster export: the people of every good row, and every problem of every other
/// row, located as `path:line: column: problem` (lines as in the file: the header is line 1).
/// The one roster parser: `hr.people`, `identity.accounts` and `trellis validate` use it.
pub(crate) fn parse_roster(
    path: &Path,
    bytes: &[u8],
    mapping: &BTreeMap<String, String>,
) -> (Vec<Person>, Vec<Diagnostic>) {
    let mut problems = Vec::new();
    for key in mapping.keys() {
        if !DEFAULT_COLUMNS.contains(&key.as_str()) {
            problems.push(Diagnostic::file(
                path,
                format!(
                    "sources.hr.columns: unknown field `{key}` (expected one of {})",
                    DEFAULT_COLUMNS.join(", ")
                ),
            ));
        }
    }
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(bytes);
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            problems.push(Diagnostic::new(
                path,
                1,
                0,
                format!("cannot read the header row: {e}"),
            ));
            return (Vec::new(), problems);
        }
    };
    // For each Trellis field, the index of its column in this file (if present).
    let mut index: BTreeMap<&'static str, usize> = BTreeMap::new();
    for &field in DEFAULT_COLUMNS {
        let name = header(mapping, field);
        if let Some(i) = headers.iter().position(|h| h.eq_ignore_ascii_case(name)) {
            index.insert(field, i);
        } else if REQUIRED.contains(&field) || mapping.contains_key(field) {
            problems.push(Diagnostic::new(
                path,
                1,
                0,
                format!("missing column `{name}` (for {field})"),
            ));
        }
    }
    if !problems.is_empty() {
        return (Vec::new(), problems);
    }
    let mut people = Vec::new();
    let mut seen = BTreeMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                problems.push(Diagnostic::new(path, line, 0, e.to_string()));
                continue;
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        let problem = |message: String| Diagnostic::new(path, line, 0, message);
        if record.len() != headers.len() {
            problems.push(problem(format!(
                "expected {} fields, found {}",
                headers.len(),
                record.len()
            )));
            continue;
        }
        let cell = |field: &str| -> Option<String> {
            index
                .get(field)
                .and_then(|&i| record.get(i))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let mut texts: [Option<Box<str>>; TEXT_COLUMNS.len()] = Default::default();
        let mut dates = [None; DATE_COLUMNS.len()];
        let mut good = true;
        for &field in DEFAULT_COLUMNS {
            let value = cell(field);
            if REQUIRED.contains(&field) && value.is_none() {
                problems.push(problem(format!(
                    "{}: required value is empty",
                    header(mapping, field)
                )));
                good = false;
            }
            if let Some(i) = DATE_COLUMNS.iter().position(|c| *c == field) {
                dates[i] = match value {
                    None => None,
                    Some(v) => match NaiveDate::parse_from_str(&v, "%Y-%m-%d") {
                        Ok(d) => Some(d),
                        Err(_) => {
                            problems.push(problem(format!(
                                "{}: invalid date `{v}` (expected YYYY-MM-DD)",
                                header(mapping, field)
                            )));
                            good = false;
                            None
                        }
                    },
                };
            } else if let Some(i) = TEXT_COLUMNS.iter().position(|c| *c == field) {
                texts[i] = value.map(String::into_boxed_str);
            }
        }
        if let Some(id) = texts[0].as_deref() {
            if let Some(first) = seen.get(id) {
                problems.push(problem(format!(
                    "{}: duplicate id `{id}` (first on line {first})",
                    header(mapping, "employee_id")
                )));
                good = false;
            } else {
                seen.insert(id.to_string(), line);
            }
        }
        if good {
            people.push(Person {
                row: line as usize,
                texts,
                dates,
            });
        }
    }
    (people, problems)
}

/// What `trellis validate` says about a roster that parsed: dates recording something done
/// that lie after `today` (the date rule, [`super::dates`]), located by line and column name.
pub(crate) fn warnings(
    path: &Path,
    people: &[Person],
    mapping: &BTreeMap<String, String>,
    today: NaiveDate,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for p in people {
        for &field in RECORDED {
            if let Some(message) = dates::warning(header(mapping, field), p.date(field), today) {
                out.push(Diagnostic::new(path, p.row as u64, 0, message));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "employee_id,name,email,github_login,aws_username,department,title,manager_email,start_date,end_date,background_check_date,nda_signed_date,security_training_date,policy_ack_date,last_review_date";

    /// The people and the problems (as text) of a roster.
    fn parse(text: &str) -> (Vec<Person>, Vec<String>) {
        let (people, problems) =
            parse_roster(Path::new("roster.csv"), text.as_bytes(), &BTreeMap::new());
        (people, problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn parses_default_columns_and_empty_cells() {
        let csv = format!("{HEADER}\nE1,Ann Lee,ann@x.io,,,,,,2024-01-02,,2024-01-01,,,,\n");
        let (people, problems) = parse(&csv);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(people.len(), 1);
        assert_eq!(people[0].row, 2);
        assert_eq!(people[0].field("github_login"), None);
        assert_eq!(
            people[0].date("start_date"),
            NaiveDate::from_ymd_opt(2024, 1, 2)
        );
        assert_eq!(
            people[0].date("background_check_date"),
            NaiveDate::from_ymd_opt(2024, 1, 1)
        );
        assert_eq!(people[0].field("email"), Some("ann@x.io"));
        assert_eq!(people[0].date("end_date"), None);
    }

    /// The split of the columns into texts and dates is where the dates begin.
    #[test]
    fn date_columns_are_the_dates() {
        assert!(
            DATE_COLUMNS.iter().all(|c| c.ends_with("_date")),
            "{DATE_COLUMNS:?}"
        );
        assert!(
            !TEXT_COLUMNS.iter().any(|c| c.ends_with("_date")),
            "{TEXT_COLUMNS:?}"
        );
        assert_eq!(
            TEXT_COLUMNS.len() + DATE_COLUMNS.len(),
            DEFAULT_COLUMNS.len()
        );
    }

    /// Every problem of every row, located by line, naming the column; good rows still parse.
    #[test]
    fn every_bad_row_is_reported_with_its_line_and_column() {
        let check = |body: &str, want: &[&str]| {
            let (people, problems) = parse(&format!("{HEADER}\n{body}\n"));
            assert_eq!(problems, want, "{body}");
            people.len()
        };
        check(
            "E1,Ann,ann@x.io,,,,,,2024-13-01,,,,,,",
            &["roster.csv:2: start_date: invalid date `2024-13-01` (expected YYYY-MM-DD)"],
        );
        check(
            "E1,,ann@x.io,,,,,,2024-01-01,,,,,,",
            &["roster.csv:2: name: required value is empty"],
        );
        check(
            "E1,Ann,ann@x.io",
            &["roster.csv:2: expected 15 fields, found 3"],
        );
        check(
            "E1,Ann,a@x.io,,,,,,2024-01-01,,,,,,\nE1,Bo,b@x.io,,,,,,2024-01-01,,,,,,\nE1,Cy,c@x.io,,,,,,2024-01-01,,,,,,",
            &[
                "roster.csv:3: employee_id: duplicate id `E1` (first on line 2)",
                "roster.csv:4: employee_id: duplicate id `E1` (first on line 2)",
            ],
        );
        // All of them, not the first; the good rows are still read.
        let good = check(
            "E1,Ann,a@x.io,,,,,,2024-01-01,,,,,,\nE2,Bo\nE3,,c@x.io,,,,,,2024-01-01,,soon,,,,\nE4,Di,d@x.io,,,,,,2024-01-01,,,,,,",
            &[
                "roster.csv:3: expected 15 fields, found 2",
                "roster.csv:4: name: required value is empty",
                "roster.csv:4: background_check_date: invalid date `soon` (expected YYYY-MM-DD)",
            ],
        );
        assert_eq!(good, 2);
        // A quoted cell spanning lines: the next row is located by its own line.
        check(
            "E1,\"Ann\nLee\",a@x.io,,,,,,2024-01-01,,,,,,\nE2,Bo,b@x.io,,,,,,2024-99-01,,,,,,",
            &["roster.csv:4: start_date: invalid date `2024-99-01` (expected YYYY-MM-DD)"],
        );
    }

    #[test]
    fn the_probe_error_lists_the_problems_then_points_at_validate() {
        let problems: Vec<Diagnostic> = (2..20)
            .map(|line| Diagnostic::new(Path::new("r.csv"), line, 0, "expected 15 fields, found 2"))
            .collect();
        let text = roster_error(&problems).to_string();
        assert!(
            text.starts_with("malformed data: r.csv:2: expected 15 fields, found 2; r.csv:3:"),
            "{text}"
        );
        assert!(
            text.ends_with("r.csv:11: expected 15 fields, found 2; and 8 more (`trellis validate` lists them all)"),
            "{text}"
        );
        assert!(
            roster_error(&problems[..1])
                .to_string()
                .ends_with("r.csv:2: expected 15 fields, found 2")
        );
    }

    #[test]
    fn validate_warns_about_recorded_dates_after_today_only() {
        let csv = format!(
            "{HEADER}\nE1,Ann,a@x.io,,,,,,2027-01-04,2027-06-30,2026-01-05,2027-01-05,2026-12-03,,\n"
        );
        let (people, problems) = parse(&csv);
        assert!(problems.is_empty(), "{problems:?}");
        let today = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        let text: Vec<String> = warnings(Path::new("roster.csv"), &people, &BTreeMap::new(), today)
            .iter()
            .map(ToString::to_string)
            .collect();
        // A start and an end ahead are schedules, not records: no warning.
        assert_eq!(
            text,
            [
                "roster.csv:2: nda_signed_date: 2027-01-05 is after today (2026-12-03): until then it is unknown, and the checks reading it are errors"
            ]
        );
    }

    #[test]
    fn column_mapping_reads_other_exports() {
        let csv =
            "Emp No,Full Name,Work Email,Hire Date,Training\nA7,Bo Chen,bo@x.io,2023-05-01,x\n";
        let mapping: BTreeMap<String, String> = [
            ("employee_id", "Emp No"),
            ("name", "Full Name"),
            ("email", "Work Email"),
            ("start_date", "Hire Date"),
            ("security_training_date", "Training"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let (people, problems) = parse_roster(Path::new("r.csv"), csv.as_bytes(), &mapping);
        assert_eq!(people.len(), 0);
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            ["r.csv:2: Training: invalid date `x` (expected YYYY-MM-DD)"]
        );
        let csv = "Emp No,Full Name,Work Email,Hire Date\nA7,Bo Chen,bo@x.io,2023-05-01\n";
        let mapping: BTreeMap<String, String> = mapping
            .into_iter()
            .filter(|(k, _)| k != "security_training_date")
            .collect();
        let (people, problems) = parse_roster(Path::new("r.csv"), csv.as_bytes(), &mapping);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(people[0].field("employee_id"), Some("A7"));
        let (_, problems) =
            parse_roster(Path::new("r.csv"), b"employee_id,name\n", &BTreeMap::new());
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "r.csv:1: missing column `email` (for email)",
                "r.csv:1: missing column `start_date` (for start_date)"
            ]
        );
    }
}
