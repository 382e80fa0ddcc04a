//! Registers as code: the security team's records, kept as reviewed YAML files in one folder
//! (`sources.registers.path`), one file per register:
//!
//! | file | register |
//! | --- | --- |
//! | `vendors.yaml` | vendors and subprocessors, their due diligence and risk assessment |
//! | `risks.yaml` | the risk register |
//! | `incidents.yaml` | security incidents and their lessons learned |
//! | `exercises.yaml` | BC/DR tests, incident-response tabletops, backup restore tests |
//! | `meetings.yaml` | board / advisor and security-team meetings on security |
//! | `insurance.yaml` | cybersecurity insurance policies |
//! | `access_reviews.yaml` | user access reviews, per system |
//! | `devices.yaml` | company endpoints (an MDM export): encryption, anti-virus, screen lock |
//! | `service_accounts.yaml` | declared non-human accounts, per system |
//!
//! Each file is a mapping with one key, the register's name, holding a list of entries; the
//! structs below (with `deny_unknown_fields`) are the documented schema, and
//! `schemas/registers/<name>.json` their JSON Schema for editors. A file that is absent is an
//! empty register (controls that need entries say so with `require_resources`); a file that
//! does not parse is reported as `path:line:col: field: problem`.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::diag::{self, Diagnostic};

/// Low / medium / high, as used for vendor tiers, likelihood and impact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Low,
    Medium,
    High,
}

/// A vendor (supplier or service provider). Subprocessors are listed on the trust page.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Vendor {
    /// Name as shown publicly, e.g. `Amazon Web Services`.
    pub name: String,
    /// What the vendor does for the company (shown publicly for subprocessors).
    pub purpose: String,
    /// Kinds of data shared with the vendor, e.g. `[customer data, employee data]`.
    #[serde(default)]
    pub data_shared: Vec<String>,
    /// Where the vendor processes the data, e.g. `United States`.
    pub location: String,
    /// The vendor processes customer data on the company's behalf (a subprocessor).
    pub subprocessor: bool,
    /// Risk tier of the relationship.
    pub risk_tier: Level,
    /// When the vendor's SOC 2 report (or equivalent) was last collected and reviewed.
    pub soc2_report_reviewed_on: Option<NaiveDate>,
    /// When the vendor was last risk-assessed.
    pub assessed_on: Option<NaiveDate>,
    /// Internal owner of the relationship.
    pub owner: Option<String>,
    /// Public website.
    pub website: Option<String>,
}

/// How a risk is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Treatment {
    Mitigate,
    Accept,
    Transfer,
    Avoid,
}

/// One risk of the risk register.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Risk {
    /// Stable identifier, e.g. `R-007`.
    pub id: String,
    pub title: String,
    pub owner: String,
    pub likelihood: Level,
    pub impact: Level,
    pub treatment: Treatment,
    /// How the treatment is carried out (for `mitigate`: the mitigating measures).
    pub treatment_plan: Option<String>,
    /// Ids of the controls that mitigate the risk (checked against the catalog).
    #[serde(default)]
    pub controls: Vec<String>,
    /// When the risk was last assessed in a risk assessment.
    pub reviewed_on: NaiveDate,
    /// `true` once the risk no longer applies.
    #[serde(default)]
    pub closed: bool,
}

/// Severity of an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

/// One security incident.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Incident {
    /// Stable identifier, e.g. `INC-2026-004`.
    pub id: String,
    pub title: String,
    pub severity: Severity,
    pub owner: String,
    /// Where it is tracked (ticket URL or key).
    pub ticket: Option<String>,
    pub opened: NaiveDate,
    /// When it was resolved; absent while open.
    pub resolved: Option<NaiveDate>,
    /// Where the lessons-learned document is.
    pub lessons_learned_link: Option<String>,
    /// When the lessons-learned document was shared with the team.
    pub lessons_learned_on: Option<NaiveDate>,
}

/// Kind of exercise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExerciseKind {
    /// A test of the business continuity and disaster recovery plan.
    BcdrTest,
    /// An incident-response tabletop exercise.
    IrTabletop,
    /// A restore of backed-up data into a non-production environment.
    BackupRestore,
}

/// How an exercise went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    PassedWithFindings,
    Failed,
}

/// One exercise or test.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Exercise {
    pub kind: ExerciseKind,
    pub date: NaiveDate,
    pub outcome: Outcome,
    pub summary: String,
    /// Changes made to the plan or systems as a result.
    pub follow_up: Option<String>,
    /// Where the report is.
    pub report_link: Option<String>,
}

/// Kind of meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MeetingKind {
    /// Senior management / board (with advisors) reviewing security among business matters.
    BoardSecurityReview,
    /// The information security team's meeting on risks, controls, audits.
    SecurityTeam,
}

/// One meeting on security.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Meeting {
    pub kind: MeetingKind,
    pub date: NaiveDate,
    /// Who attended (names or roles).
    pub attendees: Vec<String>,
    /// How many attendees are independent of the company's operations (external advisors).
    #[serde(default)]
    pub independent_attendees: u32,
    /// Topics covered.
    #[serde(default)]
    pub topics: Vec<String>,
    /// Where the minutes are.
    pub minutes_link: Option<String>,
}

/// One insurance policy.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Insurance {
    pub carrier: String,
    /// What it covers, e.g. `cyber liability, first and third party`.
    pub coverage: String,
    /// Limit of liability, e.g. `USD 3,000,000`.
    pub limit: String,
    pub starts: NaiveDate,
    pub expires: NaiveDate,
    pub policy_number: Option<String>,
}

/// One user access review of one system.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessReview {
    /// The system reviewed: `aws:<account>` and `github:<org>` for configured sources, or any
    /// name (`google-workspace`, `production-database`).
    pub system: String,
    pub reviewed_on: NaiveDate,
    pub reviewer: String,
    /// Accounts removed or changed as a result.
    pub changes: Option<String>,
    /// Where the evidence is.
    pub evidence_link: Option<String>,
}

/// One company endpoint, as the MDM reports it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Serial number or MDM id.
    pub id: String,
    /// The assigned person's work email.
    pub owner: String,
    /// `macOS 26.1`, `Windows 11 24H2`…
    pub os: String,
    pub disk_encrypted: bool,
    pub antivirus: bool,
    /// A password with screen lock is enforced.
    pub screen_lock: bool,
    /// When the device last reported to the MDM.
    pub last_check_in: NaiveDate,
}

/// A declared non-human account: not a person's, and not an orphan.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccount {
    /// `aws:<account>` or `github:<org>`; `aws` or `github` alone for every account / org.
    pub system: String,
    /// IAM user name or GitHub login.
    pub name: String,
    /// The person accountable for it (work email).
    pub owner: String,
    pub purpose: String,
}

/// Every register of a folder.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Registers {
    pub vendors: Vec<Vendor>,
    pub risks: Vec<Risk>,
    pub incidents: Vec<Incident>,
    pub exercises: Vec<Exercise>,
    pub meetings: Vec<Meeting>,
    pub insurance: Vec<Insurance>,
    pub access_reviews: Vec<AccessReview>,
    pub devices: Vec<Device>,
    pub service_accounts: Vec<ServiceAccount>,
}

macro_rules! registers {
    ($($field:ident: $ty:ty),* $(,)?) => {
        /// The file name and JSON Schema of each register.
        pub fn schemas() -> Vec<(&'static str, serde_json::Value)> {
            vec![$((
                stringify!($field),
                schema_named(
                    stringify!($field),
                    serde_json::to_value(schemars::schema_for!(File<$ty>)).unwrap_or_default(),
                ),
            )),*]
        }

        /// Reads every register file of `dir`, reporting every problem of every file.
        pub fn load(dir: &Path) -> Result<Registers, Vec<Diagnostic>> {
            if !dir.is_dir() {
                return Err(vec![Diagnostic::file(dir, "registers folder not found")]);
            }
            let mut out = Registers::default();
            let mut diags = Vec::new();
            $(
                match read::<$ty>(dir, stringify!($field)) {
                    Ok(entries) => out.$field = entries,
                    Err(d) => diags.push(d),
                }
            )*
            if diags.is_empty() { Ok(out) } else { Err(diags) }
        }
    };
}

registers! {
    vendors: Vendor,
    risks: Risk,
    incidents: Incident,
    exercises: Exercise,
    meetings: Meeting,
    insurance: Insurance,
    access_reviews: AccessReview,
    devices: Device,
    service_accounts: ServiceAccount,
}

/// A register file: `{<name>: [entries]}` (read as `entries` by [`read`]).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct File<T> {
    entries: Vec<T>,
}

/// The JSON Schema of register `name`, its one key named as in the file.
fn schema_named(name: &str, mut schema: serde_json::Value) -> serde_json::Value {
    if let Some(props) = schema.get_mut("properties").and_then(|p| p.as_object_mut())
        && let Some(entries) = props.remove("entries")
    {
        props.insert(name.to_string(), entries);
    }
    if let Some(required) = schema.get_mut("required").and_then(|r| r.as_array_mut()) {
        for r in required.iter_mut() {
            if r == "entries" {
                *r = serde_json::Value::String(name.to_string());
            }
        }
    }
    schema["title"] = serde_json::Value::String(format!("Trellis register: {name}"));
    schema
}

/// The path of register `name` in `dir`.
pub fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.yaml"))
}

fn read<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<Vec<T>, Diagnostic> {
    let path = path(dir, name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Diagnostic::file(&path, format!("cannot read: {e}"))),
    };
    // The file's one key must be the register's name (`vendors:` in vendors.yaml).
    let renamed = rename_top_key(&text, name);
    let file: File<T> = diag::parse_yaml(&path, &renamed).map_err(|mut d| {
        d.message = d.message.replace("entries", name);
        d
    })?;
    Ok(file.entries)
}

/// Rewrites the top-level `<name>:` key to `entries:` so every register shares one file type;
/// any other top-level key is left as it is (and reported as unknown).
fn rename_top_key(text: &str, name: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix(name) {
            Some(rest) if rest.starts_with(':') => format!("entries{rest}"),
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(path(dir, name), text).unwrap();
    }

    #[test]
    fn registers_parse_and_report_located_problems() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "vendors",
            "vendors:\n  - name: Mailgun\n    purpose: Transactional email\n    location: United States\n    subprocessor: true\n    risk_tier: medium\n    soc2_report_reviewed_on: 2026-02-10\n    assessed_on: 2026-02-10\n",
        );
        write(
            dir.path(),
            "insurance",
            "insurance:\n  - carrier: Coalition\n    coverage: cyber\n    limit: USD 1,000,000\n    starts: 2026-01-01\n    expires: 2026-13-01\n",
        );
        write(
            dir.path(),
            "risks",
            "risks:\n  - id: R-1\n    title: t\n    owner: o\n    likelihood: hgh\n    impact: low\n    treatment: accept\n    reviewed_on: 2026-01-01\n",
        );
        write(dir.path(), "devices", "device:\n  - id: x\n");
        let diags = load(dir.path()).unwrap_err();
        let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
        let mine = |name: &str| {
            text.iter()
                .find(|t| t.contains(&format!("{name}.yaml")))
                .cloned()
                .unwrap_or_default()
        };
        assert!(
            mine("insurance").contains("insurance.yaml:6:14: insurance[0].expires:"),
            "{text:?}"
        );
        assert!(
            mine("risks").contains("risks.yaml:5:17: risks[0].likelihood: unknown variant `hgh`"),
            "{text:?}"
        );
        assert!(
            mine("devices").contains("devices.yaml:1:1: unknown field `device`"),
            "{text:?}"
        );
        assert_eq!(diags.len(), 3, "{text:?}");
        // Fixed, it loads; absent files are empty registers.
        write(dir.path(), "insurance", "insurance: []\n");
        write(dir.path(), "risks", "risks: []\n");
        write(dir.path(), "devices", "devices: []\n");
        let r = load(dir.path()).unwrap();
        assert_eq!(r.vendors[0].name, "Mailgun");
        assert!(r.incidents.is_empty());
    }

    #[test]
    fn every_register_has_a_schema() {
        let names: Vec<&str> = schemas().iter().map(|(n, _)| *n).collect();
        assert_eq!(names.len(), 9);
        for (name, schema) in schemas() {
            assert!(schema["properties"][name].is_object(), "{name}");
        }
    }
}
