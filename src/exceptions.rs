//! Exceptions as code: reviewed YAML files in `exceptions_dir` granting a time-boxed exception
//! to a control for some resources.
//!
//! ```yaml
//! exceptions:
//!   - id: EXC-2026-004
//!     control: endpoint-security
//!     resources: ["device:C02FK7FHMD6T"]     # glob patterns on finding resource ids
//!     reason: Replacement laptop ordered; the old one stays offline until it arrives.
//!     owner: mei-ling.chen@sprout.example
//!     ticket: SEC-471
//!     expires_on: 2026-12-15                  # mandatory, at most a year out
//!     approved_by: Daniel Okafor               # optional
//! ```
//!
//! A failing finding of `control` whose resource matches a pattern of an exception in force
//! becomes `waived`, naming the exception. Once `expires_on` has passed, the exception no
//! longer applies: the finding fails again, says which exception expired, and the control's
//! outcome lists the expired exception. Errors are never waived (what is unknown cannot be
//! excused).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diag::{self, Diagnostic};

/// Longest an exception may run, from the day it is validated.
pub const MAX_MONTHS: u32 = 12;

/// The file format.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Trellis exceptions file")]
pub struct ExceptionsFile {
    pub exceptions: Vec<ExceptionEntry>,
}

/// One exception, as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExceptionEntry {
    /// Unique reference, e.g. `EXC-2026-004`.
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// The control it applies to (its id).
    #[schemars(with = "String")]
    pub control: Spanned<String>,
    /// Glob patterns matched against the resource ids of the control's findings
    /// (`device:C02FK7FHMD6T`, `github:acme/legacy-*`).
    #[schemars(with = "Vec<String>")]
    pub resources: Spanned<Vec<String>>,
    /// Why the exception is acceptable, and what compensates.
    #[schemars(with = "String")]
    pub reason: Spanned<String>,
    /// Who is accountable for it.
    #[schemars(with = "String")]
    pub owner: Spanned<String>,
    /// Where it was decided (ticket key or URL).
    #[schemars(with = "String")]
    pub ticket: Spanned<String>,
    /// Last day it applies (mandatory; at most a year out).
    #[schemars(with = "NaiveDate")]
    pub expires_on: Spanned<NaiveDate>,
    /// Who approved it.
    pub approved_by: Option<String>,
}

/// A validated exception.
#[derive(Debug, Clone)]
pub struct Exception {
    pub id: String,
    pub control: String,
    pub resources: Vec<String>,
    patterns: globset::GlobSet,
    pub reason: String,
    pub owner: String,
    pub ticket: String,
    pub expires_on: NaiveDate,
    pub approved_by: Option<String>,
    /// The file it came from.
    pub path: PathBuf,
}

impl Exception {
    /// Whether it covers `resource`.
    pub fn covers(&self, resource: &str) -> bool {
        self.patterns.is_match(resource)
    }

    /// Whether it still applies on `day`.
    pub fn in_force(&self, day: NaiveDate) -> bool {
        day <= self.expires_on
    }

    /// `active` or `expired` on `day`, as the dashboard and the API show it.
    pub fn state_on(&self, day: NaiveDate) -> &'static str {
        if self.in_force(day) {
            "active"
        } else {
            "expired"
        }
    }
}

pub use crate::model::ExceptionUse;

impl ExceptionUse {
    /// A use of `e` with no resources yet.
    pub fn of(e: &Exception, status: &str) -> ExceptionUse {
        ExceptionUse {
            id: e.id.clone(),
            ticket: e.ticket.clone(),
            owner: e.owner.clone(),
            expires_on: e.expires_on,
            status: status.to_string(),
            resources: Vec::new(),
        }
    }
}

/// Reads every `*.yaml` file of `dir` (none: no exceptions), checking each exception against
/// the known control ids and `today`. Every problem of every file is reported.
pub fn load(
    dir: &Path,
    controls: &HashSet<String>,
    today: NaiveDate,
) -> Result<Vec<Exception>, Vec<Diagnostic>> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(vec![Diagnostic::file(
                dir,
                format!("cannot read exceptions folder: {e}"),
            )]);
        }
    };
    files.sort();
    let mut out = Vec::new();
    let mut diags = Vec::new();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for path in files {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                diags.push(Diagnostic::file(&path, format!("cannot read: {e}")));
                continue;
            }
        };
        parse_into(
            &path, &text, controls, today, &mut seen, &mut out, &mut diags,
        );
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

/// Parses one exceptions file's text (no I/O): the exceptions, or every problem located.
pub fn parse(
    path: &Path,
    text: &str,
    controls: &HashSet<String>,
    today: NaiveDate,
) -> Result<Vec<Exception>, Vec<Diagnostic>> {
    let (mut out, mut diags) = (Vec::new(), Vec::new());
    parse_into(
        path,
        text,
        controls,
        today,
        &mut HashMap::new(),
        &mut out,
        &mut diags,
    );
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

fn parse_into(
    path: &Path,
    text: &str,
    controls: &HashSet<String>,
    today: NaiveDate,
    seen: &mut HashMap<String, PathBuf>,
    out: &mut Vec<Exception>,
    diags: &mut Vec<Diagnostic>,
) {
    let file: ExceptionsFile = match diag::parse_yaml(path, text) {
        Ok(f) => f,
        Err(d) => {
            diags.push(d);
            return;
        }
    };
    for (i, e) in file.exceptions.into_iter().enumerate() {
        let at = |loc: &serde_saphyr::Location, msg: String| {
            Diagnostic::at(path, loc, format!("exceptions[{i}].{msg}"))
        };
        let mut ok = true;
        if let Some(first) = seen.insert(e.id.value.clone(), path.to_path_buf()) {
            diags.push(at(
                &e.id.referenced,
                format!(
                    "id: duplicate exception id `{}` (also in {})",
                    e.id.value,
                    first.display()
                ),
            ));
            ok = false;
        }
        if !controls.contains(&e.control.value) {
            diags.push(at(
                &e.control.referenced,
                format!("control: unknown control `{}`", e.control.value),
            ));
            ok = false;
        }
        let latest = today
            .checked_add_months(chrono::Months::new(MAX_MONTHS))
            .unwrap_or(NaiveDate::MAX);
        if e.expires_on.value > latest {
            diags.push(at(
                &e.expires_on.referenced,
                format!(
                    "expires_on: {} is more than a year out (latest allowed: {latest}); exceptions are time-boxed",
                    e.expires_on.value
                ),
            ));
            ok = false;
        }
        for (field, value) in [
            ("reason", &e.reason),
            ("owner", &e.owner),
            ("ticket", &e.ticket),
        ] {
            if value.value.trim().is_empty() {
                diags.push(at(
                    &value.referenced,
                    format!("{field}: must not be empty; an exception is accountable"),
                ));
                ok = false;
            }
        }
        if e.resources.value.is_empty() {
            diags.push(at(
                &e.resources.referenced,
                "resources: name at least one resource pattern".into(),
            ));
            ok = false;
        }
        let patterns = match patterns(&e.resources.value) {
            Ok(p) => p,
            Err(err) => {
                diags.push(at(&e.resources.referenced, format!("resources: {err}")));
                continue;
            }
        };
        if ok {
            out.push(Exception {
                id: e.id.value,
                control: e.control.value,
                resources: e.resources.value,
                patterns,
                reason: e.reason.value,
                owner: e.owner.value,
                ticket: e.ticket.value,
                expires_on: e.expires_on.value,
                approved_by: e.approved_by,
                path: path.to_path_buf(),
            });
        }
    }
}

/// The resource patterns of an exception, compiled: globs on resource ids, `*` not crossing
/// `/`, case ignored.
fn patterns(resources: &[String]) -> Result<globset::GlobSet, String> {
    let mut builder = globset::GlobSetBuilder::new();
    for p in resources {
        let glob = globset::GlobBuilder::new(p)
            .literal_separator(true)
            .case_insensitive(true)
            .build()
            .map_err(|err| format!("invalid pattern `{p}`: {err}"))?;
        builder.add(glob);
    }
    builder.build().map_err(|err| err.to_string())
}

/// An exception proposed in the dashboard or the API: the same rules as files.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Proposal {
    pub control: String,
    pub resources: Vec<String>,
    pub reason: String,
    pub owner: String,
    pub ticket: String,
    pub expires_on: NaiveDate,
}

impl Proposal {
    /// Every problem, each naming its field: an unknown control, no or invalid patterns, an
    /// empty reason, owner or ticket, an expiry in the past or more than a year out.
    pub fn check(
        &self,
        is_control: &dyn Fn(&str) -> bool,
        today: NaiveDate,
    ) -> Result<(), Vec<(&'static str, String)>> {
        let mut problems = Vec::new();
        if !is_control(&self.control) {
            problems.push(("control", format!("unknown control `{}`", self.control)));
        }
        if self.resources.iter().all(|r| r.trim().is_empty()) {
            problems.push((
                "resources",
                "name at least one resource pattern".to_string(),
            ));
        } else if let Err(e) = patterns(&self.resources) {
            problems.push(("resources", e));
        }
        for (field, value) in [
            ("reason", &self.reason),
            ("owner", &self.owner),
            ("ticket", &self.ticket),
        ] {
            if value.trim().is_empty() {
                problems.push((
                    field,
                    "must not be empty; an exception is accountable".to_string(),
                ));
            }
        }
        let latest = today
            .checked_add_months(chrono::Months::new(MAX_MONTHS))
            .unwrap_or(NaiveDate::MAX);
        if self.expires_on < today {
            problems.push(("expires_on", format!("{} has passed", self.expires_on)));
        } else if self.expires_on > latest {
            problems.push((
                "expires_on",
                format!(
                    "{} is more than a year out (latest allowed: {latest}); exceptions are time-boxed",
                    self.expires_on
                ),
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The exception an approved proposal grants (`source` says where it came from).
    pub fn into_exception(
        self,
        id: String,
        approved_by: Option<String>,
        source: &str,
    ) -> Result<Exception, String> {
        Ok(Exception {
            patterns: patterns(&self.resources)?,
            id,
            control: self.control,
            resources: self.resources,
            reason: self.reason,
            owner: self.owner,
            ticket: self.ticket,
            expires_on: self.expires_on,
            approved_by,
            path: PathBuf::from(source),
        })
    }
}

/// The JSON Schema of exception files.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ExceptionsFile)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn exceptions_are_validated_with_locations() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "exceptions:\n  - id: EXC-1\n    control: endpoint-security\n    resources: [\"device:C0*\"]\n    reason: r\n    owner: o\n    ticket: T-1\n    expires_on: 2026-12-31\n  - id: EXC-2\n    control: no-such-control\n    resources: [x]\n    reason: r\n    owner: o\n    ticket: T-2\n    expires_on: 2028-01-01\n  - id: EXC-3\n    control: endpoint-security\n    resources: [x]\n    reason: r\n    owner: o\n    ticket: T-3\n",
        )
        .unwrap();
        let controls: HashSet<String> = ["endpoint-security".to_string()].into();
        let diags = load(dir.path(), &controls, day("2026-11-22")).unwrap_err();
        let text: Vec<String> = diags
            .iter()
            .map(|d| {
                d.to_string()
                    .replace(&format!("{}/", dir.path().display()), "")
            })
            .collect();
        assert_eq!(text.len(), 1, "{text:?}");
        // serde stops at the first problem of a file: the missing expiry.
        assert!(text[0].contains("missing field `expires_on`"), "{text:?}");

        std::fs::write(
            dir.path().join("a.yaml"),
            "exceptions:\n  - id: EXC-1\n    control: endpoint-security\n    resources: [\"device:C0*\"]\n    reason: r\n    owner: o\n    ticket: T-1\n    expires_on: 2026-12-31\n  - id: EXC-2\n    control: no-such-control\n    resources: [x]\n    reason: r\n    owner: o\n    ticket: T-2\n    expires_on: 2028-01-01\n",
        )
        .unwrap();
        let diags = load(dir.path(), &controls, day("2026-11-22")).unwrap_err();
        let text: Vec<String> = diags
            .iter()
            .map(|d| {
                d.to_string()
                    .replace(&format!("{}/", dir.path().display()), "")
            })
            .collect();
        assert_eq!(
            text,
            [
                "a.yaml:10:14: exceptions[1].control: unknown control `no-such-control`",
                "a.yaml:15:17: exceptions[1].expires_on: 2028-01-01 is more than a year out (latest allowed: 2027-11-22); exceptions are time-boxed",
            ]
        );
    }

    #[test]
    fn exceptions_are_accountable_and_at_most_a_year_out() {
        let text = |expires: &str, owner: &str| {
            format!(
                "exceptions:\n  - id: EXC-1\n    control: c\n    resources: [x]\n    reason: r\n    owner: \"{owner}\"\n    ticket: T\n    expires_on: {expires}\n"
            )
        };
        let check = |expires: &str, owner: &str, today: &str| {
            parse(
                Path::new("e.yaml"),
                &text(expires, owner),
                &["c".to_string()].into(),
                day(today),
            )
            .map(|_| ())
            .map_err(|d| d.iter().map(ToString::to_string).collect::<Vec<_>>())
        };
        // A year from today is the limit, leap day or not.
        assert_eq!(check("2027-11-23", "o", "2026-11-23"), Ok(()));
        assert!(check("2027-11-24", "o", "2026-11-23").is_err());
        assert_eq!(check("2029-02-28", "o", "2028-02-29"), Ok(()));
        assert!(check("2029-03-01", "o", "2028-02-29").is_err());
        assert_eq!(
            check("2026-12-01", "  ", "2026-11-23"),
            Err(vec![
                "e.yaml:6:12: exceptions[0].owner: must not be empty; an exception is accountable"
                    .to_string()
            ])
        );
    }

    #[test]
    fn patterns_match_resource_ids() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "exceptions:\n  - id: EXC-1\n    control: c\n    resources: [\"github:acme/legacy-*\", \"device:X1\"]\n    reason: r\n    owner: o\n    ticket: T\n    expires_on: 2026-12-31\n",
        )
        .unwrap();
        let e = &load(dir.path(), &["c".to_string()].into(), day("2026-11-22")).unwrap()[0];
        assert!(e.covers("github:acme/legacy-billing"));
        assert!(!e.covers("github:acme/legacy/x"));
        assert!(e.covers("device:X1"));
        assert!(
            e.covers("GitHub:Acme/Legacy-Billing"),
            "ids are matched ignoring case"
        );
        assert!(e.in_force(day("2026-12-31")));
        assert!(!e.in_force(day("2027-01-01")));
    }
}
