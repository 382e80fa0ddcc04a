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
//! `schemas/registers/<name>.json` their JSON Schema for editors. A register with nothing in it
//! is written as an empty list (`incidents: []`); a file that is absent is *missing*, not
//! empty: the checks reading that register are errors naming the file (and `validate` reports
//! it), so a forgotten or misplaced file never reads as "no incidents". A file that does not
//! parse is reported as `path:line:col: field: problem`.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use schemars::JsonSchema;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, Visitor};
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
    /// When it starts processing data (a new subprocessor): subscribers are told
    /// `notifications.visitors.subprocessor_notice_days` ahead of it.
    #[serde(default)]
    pub starts_on: Option<NaiveDate>,
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
    /// Announce it to the trust page's subscribers (incident notices): once when listed,
    /// once when resolved. Only `public_title` (else `title`) and `public_summary` are sent.
    #[serde(default)]
    pub public: bool,
    /// The title subscribers see (default: `title`).
    #[serde(default)]
    pub public_title: Option<String>,
    /// What subscribers are told: impact, what was done, what they should do.
    #[serde(default)]
    pub public_summary: Option<String>,
}

impl Incident {
    /// The title subscribers see.
    pub fn public_title(&self) -> &str {
        self.public_title.as_deref().unwrap_or(&self.title)
    }
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
    /// The registers whose file is absent, with why it could not be read: not empty, unknown.
    #[serde(skip)]
    pub missing: std::collections::BTreeMap<&'static str, String>,
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
            let mut diags = strays(dir, &[$(stringify!($field)),*]);
            $(
                match read::<$ty>(dir, &[stringify!($field)]) {
                    Ok(Some(entries)) => out.$field = entries,
                    Ok(None) => {
                        out.missing.insert(stringify!($field), missing(dir, stringify!($field)));
                    }
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

/// What `validate` finds wrong with registers that parsed: records dated after today (a review
/// cannot be done in the future), impossible orders (resolved before opened, expiring before
/// starting), duplicate ids, risks naming unknown controls. Exercises and meetings dated after
/// today are warnings: planned, they count once held.
#[derive(Debug, Default)]
pub struct Review {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

pub fn review(
    dir: &Path,
    r: &Registers,
    today: NaiveDate,
    is_control: &dyn Fn(&str) -> bool,
) -> Review {
    let mut out = Review::default();
    let at = |name: &str, field: String, message: String| {
        let file = path(dir, name);
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        diag::YamlIndex::new(&text).at(&file, &field, message)
    };
    let done_later = |d: NaiveDate| {
        format!("{d} is after today ({today}): record what was done, when it was done")
    };
    let mut future = |name: &str, i: usize, fields: &[(&str, Option<NaiveDate>)]| {
        for (field, d) in fields {
            if let Some(d) = d.filter(|d| *d > today) {
                out.errors
                    .push(at(name, format!("{name}[{i}].{field}"), done_later(d)));
            }
        }
    };
    for (i, v) in r.vendors.iter().enumerate() {
        future(
            "vendors",
            i,
            &[
                ("soc2_report_reviewed_on", v.soc2_report_reviewed_on),
                ("assessed_on", v.assessed_on),
            ],
        );
    }
    for (i, k) in r.risks.iter().enumerate() {
        future("risks", i, &[("reviewed_on", Some(k.reviewed_on))]);
    }
    for (i, n) in r.incidents.iter().enumerate() {
        future(
            "incidents",
            i,
            &[
                ("opened", Some(n.opened)),
                ("resolved", n.resolved),
                ("lessons_learned_on", n.lessons_learned_on),
            ],
        );
    }
    for (i, a) in r.access_reviews.iter().enumerate() {
        future("access_reviews", i, &[("reviewed_on", Some(a.reviewed_on))]);
    }
    for (i, d) in r.devices.iter().enumerate() {
        future("devices", i, &[("last_check_in", Some(d.last_check_in))]);
    }
    for (i, n) in r.incidents.iter().enumerate() {
        for (field, d) in [
            ("resolved", n.resolved),
            ("lessons_learned_on", n.lessons_learned_on),
        ] {
            if let Some(d) = d.filter(|d| *d < n.opened) {
                out.errors.push(at(
                    "incidents",
                    format!("incidents[{i}].{field}"),
                    format!("{d} is before the incident was opened ({})", n.opened),
                ));
            }
        }
    }
    for (i, p) in r.insurance.iter().enumerate() {
        if p.expires < p.starts {
            out.errors.push(at(
                "insurance",
                format!("insurance[{i}].expires"),
                format!("{} is before the policy starts ({})", p.expires, p.starts),
            ));
        }
    }
    for (i, k) in r.risks.iter().enumerate() {
        for (j, id) in k.controls.iter().enumerate() {
            if !is_control(id) {
                out.errors.push(at(
                    "risks",
                    format!("risks[{i}].controls[{j}]"),
                    format!("unknown control `{id}` (risk {})", k.id),
                ));
            }
        }
    }
    let mut duplicates = |name: &str, field: &str, keys: Vec<String>| {
        let mut first = std::collections::HashMap::new();
        for (i, key) in keys.into_iter().enumerate() {
            if let Some(j) = first.get(&key.to_lowercase()) {
                out.errors.push(at(
                    name,
                    format!("{name}[{i}].{field}"),
                    format!("duplicate `{key}` (also {name}[{j}])"),
                ));
            } else {
                first.insert(key.to_lowercase(), i);
            }
        }
    };
    duplicates(
        "vendors",
        "name",
        r.vendors.iter().map(|v| v.name.clone()).collect(),
    );
    duplicates(
        "risks",
        "id",
        r.risks.iter().map(|k| k.id.clone()).collect(),
    );
    duplicates(
        "incidents",
        "id",
        r.incidents.iter().map(|n| n.id.clone()).collect(),
    );
    duplicates(
        "devices",
        "id",
        r.devices.iter().map(|d| d.id.clone()).collect(),
    );
    duplicates(
        "service_accounts",
        "name",
        r.service_accounts
            .iter()
            .map(|s| format!("{}/{}", s.system, s.name))
            .collect(),
    );
    let planned = |d: NaiveDate| format!("{d} is after today ({today}): it counts once held");
    for (i, e) in r
        .exercises
        .iter()
        .enumerate()
        .filter(|(_, e)| e.date > today)
    {
        out.warnings.push(at(
            "exercises",
            format!("exercises[{i}].date"),
            planned(e.date),
        ));
    }
    for (i, m) in r
        .meetings
        .iter()
        .enumerate()
        .filter(|(_, m)| m.date > today)
    {
        out.warnings.push(at(
            "meetings",
            format!("meetings[{i}].date"),
            planned(m.date),
        ));
    }
    out.errors.sort();
    out.warnings.sort();
    out
}

// The shape of a register file for its JSON Schema (`entries` is renamed by `schema_named`;
// files are read by `RegisterFile`). The doc comment is the schema's description.
/// A register file: `{<name>: [entries]}`.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct File<T> {
    entries: Vec<T>,
}

/// Reads a register file: a mapping whose one key is the register's name (`vendors:` in
/// `vendors.yaml`) holding the entries, so errors name `vendors[2].location`.
struct RegisterFile<T> {
    /// The register's name, as a one-element slice for serde's error constructors.
    name: &'static [&'static str; 1],
    entries: PhantomData<T>,
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for RegisterFile<T> {
    type Value = Vec<T>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<T>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for RegisterFile<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "a mapping with one key, `{}`, holding a list",
            self.name[0]
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<T>, A::Error> {
        let mut entries = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != self.name[0] {
                return Err(de::Error::unknown_field(&key, self.name));
            }
            if entries.is_some() {
                return Err(de::Error::duplicate_field(self.name[0]));
            }
            // `vendors:` with nothing under it is an empty register.
            entries = Some(map.next_value::<Option<Vec<T>>>()?.unwrap_or_default());
        }
        entries.ok_or_else(|| de::Error::missing_field(self.name[0]))
    }
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

/// Why register `name` of `dir` is missing, naming its file and how an empty one is written.
fn missing(dir: &Path, name: &str) -> String {
    format!(
        "register {} not found: a register with nothing in it is written `{name}: []`",
        path(dir, name).display()
    )
}

impl Registers {
    /// Register `name`'s entries are known: its file was read (empty or not). Otherwise why
    /// not, naming the file.
    pub fn require(&self, name: &str) -> Result<(), String> {
        match self.missing.get(name) {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }

    /// What `validate` reports for the missing registers: one problem per file.
    pub fn missing_files(&self, dir: &Path) -> Vec<Diagnostic> {
        self.missing
            .keys()
            .map(|name| {
                Diagnostic::file(
                    &path(dir, name),
                    format!(
                        "register file not found (the checks reading `{name}` are errors until it exists): a register with nothing in it is written `{name}: []`"
                    ),
                )
            })
            .collect()
    }
}

/// The path of register `name` in `dir`.
pub fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.yaml"))
}

/// Reads one register file: its entries, `None` when the file does not exist.
fn read<T: DeserializeOwned>(
    dir: &Path,
    name: &'static [&'static str; 1],
) -> Result<Option<Vec<T>>, Diagnostic> {
    let path = path(dir, name[0]);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Diagnostic::file(&path, format!("cannot read: {e}"))),
    };
    diag::parse_yaml_seed(
        &path,
        &text,
        RegisterFile::<T> {
            name,
            entries: PhantomData,
        },
    )
    .map_err(|mut d| {
        let one_of = format!("expected one of {}", name[0]);
        if d.message.ends_with(&one_of) {
            d.message = d
                .message
                .replace(&one_of, &format!("expected `{}`", name[0]));
        }
        d
    })
    .map(Some)
}

/// YAML files in the registers folder that are no register (`vendor.yaml`, `vendors.yml`):
/// their entries would silently not count, so they are reported.
fn strays(dir: &Path, names: &[&str]) -> Vec<Diagnostic> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Diagnostic> = read
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter_map(|p| {
            let stem = p.file_stem()?.to_str()?.to_string();
            let ext = p.extension()?.to_str()?.to_ascii_lowercase();
            if !matches!(ext.as_str(), "yaml" | "yml") || stem.starts_with('.') {
                return None;
            }
            if ext == "yaml" && names.contains(&stem.as_str()) {
                return None;
            }
            let message = if names.contains(&stem.as_str()) {
                format!("registers are read from `{stem}.yaml`: rename this file")
            } else {
                format!(
                    "not a register (registers are {}): rename or move this file",
                    names
                        .iter()
                        .map(|n| format!("{n}.yaml"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            Some(Diagnostic::file(&p, message))
        })
        .collect();
    out.sort();
    out
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
        // Fixed, it loads; absent files are missing registers, not empty ones.
        write(dir.path(), "insurance", "insurance: []\n");
        write(dir.path(), "risks", "risks: []\n");
        write(dir.path(), "devices", "devices: []\n");
        let r = load(dir.path()).unwrap();
        assert_eq!(r.vendors[0].name, "Mailgun");
        assert!(r.require("vendors").is_ok());
        assert!(r.require("risks").is_ok(), "empty, and written as such");
        let missing: Vec<&str> = r.missing.keys().copied().collect();
        assert_eq!(
            missing,
            [
                "access_reviews",
                "exercises",
                "incidents",
                "meetings",
                "service_accounts"
            ]
        );
        assert_eq!(
            r.require("incidents").unwrap_err(),
            format!(
                "register {} not found: a register with nothing in it is written `incidents: []`",
                path(dir.path(), "incidents").display()
            )
        );
        let files: Vec<String> = r
            .missing_files(dir.path())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(files.len(), 5);
        assert!(
            files[2].ends_with("incidents.yaml: register file not found (the checks reading `incidents` are errors until it exists): a register with nothing in it is written `incidents: []`"),
            "{files:?}"
        );

        // A byte-order mark (Windows editors) and an empty key are fine; notes are ignored.
        write(dir.path(), "risks", "\u{feff}risks:\n");
        std::fs::write(dir.path().join("README.md"), "notes").unwrap();
        assert!(load(dir.path()).unwrap().risks.is_empty());
        // Misnamed files would silently not count: reported.
        std::fs::write(dir.path().join("incidents.yml"), "incidents: []\n").unwrap();
        std::fs::write(dir.path().join("vendor.yaml"), "vendor: []\n").unwrap();
        let text: Vec<String> = load(dir.path())
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(
            text[0].ends_with(
                "incidents.yml: registers are read from `incidents.yaml`: rename this file"
            ),
            "{text:?}"
        );
        assert!(
            text[1].contains("vendor.yaml: not a register (registers are vendors.yaml, risks.yaml"),
            "{text:?}"
        );
    }

    #[test]
    fn register_keys_are_checked_where_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let problem = |text: &str| {
            write(dir.path(), "meetings", text);
            load(dir.path())
                .unwrap_err()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert!(
            problem("# board\nmeetings: []\nmeeting: []\n")
                .ends_with("meetings.yaml:3:1: unknown field `meeting`, expected `meetings`"),
            "{}",
            problem("# board\nmeetings: []\nmeeting: []\n")
        );
        assert!(problem("meetings: []\nmeetings: []\n").contains("meetings.yaml:2:1: duplicate"));
        assert!(problem("{}\n").contains("missing field `meetings`"));
        assert!(
            problem("meetings:\n  - kind: security_team\n    date: 2026-01-01\n    attendees: [a]\n    topic: t\n")
                .contains("meetings.yaml:5:5: meetings[0]: unknown field `topic`"),
            "{}",
            problem("meetings:\n  - kind: security_team\n    date: 2026-01-01\n    attendees: [a]\n    topic: t\n")
        );
    }

    #[test]
    fn review_finds_what_the_schema_cannot() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "incidents",
            "incidents:\n  - id: INC-1\n    title: t\n    severity: low\n    owner: o\n    opened: 2026-05-10\n    resolved: 2026-05-01\n  - id: inc-1\n    title: t\n    severity: low\n    owner: o\n    opened: 2026-12-01\n",
        );
        write(
            dir.path(),
            "insurance",
            "insurance:\n  - carrier: c\n    coverage: cyber\n    limit: l\n    starts: 2026-06-01\n    expires: 2025-06-01\n",
        );
        write(
            dir.path(),
            "risks",
            "risks:\n  - id: R-1\n    title: t\n    owner: o\n    likelihood: low\n    impact: low\n    treatment: mitigate\n    controls: [risk-register, no-such-control]\n    reviewed_on: 2026-01-01\n",
        );
        write(
            dir.path(),
            "exercises",
            "exercises:\n  - kind: ir_tabletop\n    date: 2027-02-01\n    outcome: passed\n    summary: planned\n",
        );
        let r = load(dir.path()).unwrap();
        let today = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let review = review(dir.path(), &r, today, &|id| id == "risk-register");
        let text = |d: &[Diagnostic]| -> Vec<String> {
            d.iter()
                .map(|d| {
                    let s = d.to_string();
                    s.rsplit_once('/').map(|(_, f)| f.to_string()).unwrap_or(s)
                })
                .collect()
        };
        assert_eq!(
            text(&review.errors),
            [
                "incidents.yaml:7:15: incidents[0].resolved: 2026-05-01 is before the incident was opened (2026-05-10)",
                "incidents.yaml:8:9: incidents[1].id: duplicate `inc-1` (also incidents[0])",
                "incidents.yaml:12:13: incidents[1].opened: 2026-12-01 is after today (2026-11-23): record what was done, when it was done",
                "insurance.yaml:6:14: insurance[0].expires: 2025-06-01 is before the policy starts (2026-06-01)",
                "risks.yaml:8:31: risks[0].controls[1]: unknown control `no-such-control` (risk R-1)",
            ]
        );
        assert_eq!(
            text(&review.warnings),
            [
                "exercises.yaml:3:11: exercises[0].date: 2027-02-01 is after today (2026-11-23): it counts once held"
            ]
        );
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
