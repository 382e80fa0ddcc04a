//! `hr.people`: the HR roster, one resource per person.
//!
//! Reads the CSV export configured at `sources.hr.path`. Default columns are
//! [`DEFAULT_COLUMNS`]; `sources.hr.columns` maps them to another HRIS's headers. Dates are ISO
//! `YYYY-MM-DD`; an empty cell is "none"; a set `end_date` on or before today means terminated.
//! A malformed row fails the whole collection with an error naming the row and column: a
//! roster that cannot be read completely is never evaluated as if it were complete.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Attribute, Collected, Probe, ProbeContext, ProbeError, Resource};

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
const DATE_COLUMNS: &[&str] = &[
    "start_date",
    "end_date",
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

/// One parsed roster row, shared through the fetch cache by every control reading the roster.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    row: usize,
    fields: BTreeMap<&'static str, Option<String>>,
    dates: BTreeMap<&'static str, Option<NaiveDate>>,
}

impl Person {
    /// A text column (`employee_id`, `email`, `github_login`…), `None` when empty.
    pub(crate) fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(|v| v.as_deref())
    }

    /// A date column (`start_date`, `end_date`…), `None` when empty.
    pub(crate) fn date(&self, name: &str) -> Option<NaiveDate> {
        self.dates.get(name).copied().flatten()
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
            let display = path.display().to_string();
            let bytes = tokio::fs::read(&path)
                .await
                .map_err(|e| ProbeError::Io(format!("cannot read HR roster {display}: {e}")))?;
            parse_roster(&display, &bytes, &columns)
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
        let mut raw = Vec::new();
        for p in people.iter() {
            let end = p.dates.get("end_date").copied().flatten();
            let terminated = end.is_some_and(|e| e <= today);
            if terminated && !params.include_terminated {
                continue;
            }
            let start = p.dates.get("start_date").copied().flatten();
            if let (Some(min), Some(start)) = (params.started_on_or_after, start)
                && start < min
            {
                continue;
            }
            let mut attributes = serde_json::Map::new();
            for (k, v) in &p.fields {
                attributes.insert(
                    (*k).to_string(),
                    v.clone().map_or(Value::Null, Value::String),
                );
            }
            for (k, v) in &p.dates {
                attributes.insert(
                    (*k).to_string(),
                    v.map_or(Value::Null, |d| Value::String(d.to_string())),
                );
            }
            attributes.insert("terminated".into(), Value::Bool(terminated));
            let manager_in_roster = p
                .field("manager_email")
                .is_some_and(|m| current.contains(&m.to_ascii_lowercase()));
            attributes.insert("manager_in_roster".into(), Value::Bool(manager_in_roster));
            let days = start.map(|s| (today - s).num_days());
            attributes.insert(
                "days_employed".into(),
                days.map_or(Value::Null, Value::from),
            );
            let id = p
                .fields
                .get("employee_id")
                .cloned()
                .flatten()
                .unwrap_or_default();
            let name = p.fields.get("name").cloned().flatten().unwrap_or_default();
            let email = p.fields.get("email").cloned().flatten().unwrap_or_default();
            raw.push(json!({"row": p.row, "attributes": attributes}));
            resources.push(Resource {
                id: format!("hr:{id}"),
                name: format!("{name} <{email}> ({id})"),
                attributes,
                error: None,
                unknown: Default::default(),
            });
        }
        Ok(Collected {
            resources,
            raw: json!({"source": "hr", "people": raw}),
        })
    }
}

fn parse_roster(
    display: &str,
    bytes: &[u8],
    mapping: &BTreeMap<String, String>,
) -> Result<Vec<Person>, ProbeError> {
    for key in mapping.keys() {
        if !DEFAULT_COLUMNS.contains(&key.as_str()) {
            return Err(ProbeError::BadBody(format!(
                "sources.hr.columns: unknown field `{key}` (expected one of {})",
                DEFAULT_COLUMNS.join(", ")
            )));
        }
    }
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| ProbeError::BadBody(format!("{display}: cannot read header row: {e}")))?
        .clone();
    // For each Trellis field, the index of its column in this file (if present).
    let mut index: BTreeMap<&'static str, usize> = BTreeMap::new();
    for &field in DEFAULT_COLUMNS {
        let header = mapping.get(field).map(String::as_str).unwrap_or(field);
        if let Some(i) = headers.iter().position(|h| h.eq_ignore_ascii_case(header)) {
            index.insert(field, i);
        } else if REQUIRED.contains(&field) || mapping.contains_key(field) {
            return Err(ProbeError::BadBody(format!(
                "{display}: missing column `{header}` (for {field})"
            )));
        }
    }
    let mut people = Vec::new();
    let mut seen = BTreeMap::new();
    for (n, record) in reader.records().enumerate() {
        // Row numbers as a spreadsheet shows them: the header is row 1.
        let row = n + 2;
        let record =
            record.map_err(|e| ProbeError::BadBody(format!("{display}: row {row}: {e}")))?;
        let cell = |field: &str| -> Option<String> {
            index
                .get(field)
                .and_then(|&i| record.get(i))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let mut fields = BTreeMap::new();
        let mut dates = BTreeMap::new();
        for &field in DEFAULT_COLUMNS {
            let value = cell(field);
            if REQUIRED.contains(&field) && value.is_none() {
                return Err(ProbeError::BadBody(format!(
                    "{display}: row {row}, column {}: required value is empty",
                    mapping.get(field).map(String::as_str).unwrap_or(field)
                )));
            }
            if DATE_COLUMNS.contains(&field) {
                let date = match value {
                    None => None,
                    Some(v) => Some(NaiveDate::parse_from_str(&v, "%Y-%m-%d").map_err(|_| {
                        ProbeError::BadBody(format!(
                            "{display}: row {row}, column {}: invalid date `{v}` (expected YYYY-MM-DD)",
                            mapping.get(field).map(String::as_str).unwrap_or(field)
                        ))
                    })?),
                };
                dates.insert(field, date);
            } else {
                fields.insert(field, value);
            }
        }
        if let Some(id) = fields.get("employee_id").cloned().flatten()
            && let Some(first) = seen.insert(id.clone(), row)
        {
            return Err(ProbeError::BadBody(format!(
                "{display}: row {row}, column employee_id: duplicate id `{id}` (first on row {first})"
            )));
        }
        people.push(Person { row, fields, dates });
    }
    Ok(people)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "employee_id,name,email,github_login,aws_username,department,title,manager_email,start_date,end_date,background_check_date,nda_signed_date,security_training_date,policy_ack_date,last_review_date";

    fn parse(text: &str) -> Result<Vec<Person>, ProbeError> {
        parse_roster("roster.csv", text.as_bytes(), &BTreeMap::new())
    }

    #[test]
    fn parses_default_columns_and_empty_cells() {
        let csv = format!("{HEADER}\nE1,Ann Lee,ann@x.io,,,,,,2024-01-02,,2024-01-01,,,,\n");
        let people = parse(&csv).unwrap();
        assert_eq!(people.len(), 1);
        assert_eq!(people[0].fields["github_login"], None);
        assert_eq!(
            people[0].dates["start_date"],
            NaiveDate::from_ymd_opt(2024, 1, 2)
        );
    }

    #[test]
    fn bad_rows_name_row_and_column() {
        let check = |body: &str, want: &str| {
            let err = parse(&format!("{HEADER}\n{body}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err}");
        };
        check(
            "E1,Ann,ann@x.io,,,,,,2024-13-01,,,,,,",
            "roster.csv: row 2, column start_date: invalid date `2024-13-01`",
        );
        check(
            "E1,,ann@x.io,,,,,,2024-01-01,,,,,,",
            "row 2, column name: required value is empty",
        );
        check("E1,Ann,ann@x.io", "row 2");
        check(
            "E1,Ann,a@x.io,,,,,,2024-01-01,,,,,,\nE1,Bo,b@x.io,,,,,,2024-01-01,,,,,,",
            "row 3, column employee_id: duplicate id `E1` (first on row 2)",
        );
    }

    #[test]
    fn column_mapping_reads_other_exports() {
        let csv = "Emp No,Full Name,Work Email,Hire Date\nA7,Bo Chen,bo@x.io,2023-05-01\n";
        let mapping: BTreeMap<String, String> = [
            ("employee_id", "Emp No"),
            ("name", "Full Name"),
            ("email", "Work Email"),
            ("start_date", "Hire Date"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let people = parse_roster("r.csv", csv.as_bytes(), &mapping).unwrap();
        assert_eq!(people[0].fields["employee_id"].as_deref(), Some("A7"));
        let err = parse_roster("r.csv", b"employee_id,name\n", &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing column `email`"), "{err}");
    }
}
