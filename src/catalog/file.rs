//! The raw shape of a control file, exactly as written in YAML. Its doc comments are the
//! user documentation of the format (and go into `controls/schema.json`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

/// A control: one security promise, and how Trellis verifies it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Trellis control file")]
pub struct ControlFile {
    /// Unique kebab-case id; must equal the file name (`<id>.yaml`).
    #[schemars(with = "String", regex(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$"))]
    pub id: Spanned<String>,
    /// Title shown on the trust page.
    #[schemars(with = "String")]
    pub title: Spanned<String>,
    /// Category (section of the trust page), e.g. `Access Security`.
    #[schemars(with = "String")]
    pub category: Spanned<String>,
    /// Public description of the promise, shown on the trust page.
    #[schemars(with = "String")]
    pub description: Spanned<String>,
    /// What kind of promise this is, and so what must back a green result: `system` (a
    /// property of systems: at least one check must read the system itself — a document's
    /// wording is never enough), `procedure` (something people do, evidenced by what they
    /// record), or `document` (a document exists, is approved and current).
    #[schemars(with = "Claim")]
    pub claim: Spanned<Claim>,
    /// Whether the control appears on the public trust page (default: false, so nothing is
    /// published by omission).
    #[serde(default)]
    pub public: bool,
    /// Team or person accountable for the control.
    #[schemars(with = "String")]
    pub owner: Spanned<String>,
    pub severity: Severity,
    /// Framework criteria this control evidences.
    #[serde(default)]
    pub frameworks: Vec<FrameworkRef>,
    /// Crontab (5 fields, or 6 with seconds; UTC). Defaults to the configured `default_schedule`.
    #[schemars(with = "Option<String>")]
    pub schedule: Option<Spanned<String>>,
    /// How old the newest successful result may be before the control is stale (`36h`, `7d`).
    #[schemars(with = "Option<String>")]
    pub freshness: Option<Spanned<String>>,
    /// What to do when the control fails (internal).
    pub remediation: Option<String>,
    /// Position within its category on the trust page (ascending; controls without one follow,
    /// by title).
    pub order: Option<u32>,
    /// The checks; the control fails if any check fails and is `error` if any could not be
    /// evaluated.
    pub checks: Vec<CheckFile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// What a control claims (see `claim`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Claim {
    /// A property of systems ("data in transit is encrypted"): needs a `system` check.
    System,
    /// Something people do ("access is reviewed quarterly"): evidenced by records.
    Procedure,
    /// A document exists and is current ("an Incident Response Plan is in place").
    Document,
}

impl Claim {
    pub fn as_str(self) -> &'static str {
        match self {
            Claim::System => "system",
            Claim::Procedure => "procedure",
            Claim::Document => "document",
        }
    }
}

/// A framework criterion, e.g. `{framework: soc2, version: "2017", id: CC6.1}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FrameworkRef {
    pub framework: String,
    pub version: String,
    pub id: String,
}

/// One check: a probe collects a population of resources; `where` selects those the check
/// applies to (others are not_applicable); `assert` must hold for each; `expect` says how many
/// must pass.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckFile {
    /// Probe name, e.g. `hr.people` (see `trellis probes`).
    #[schemars(with = "String")]
    pub probe: Spanned<String>,
    /// The probe's parameters.
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub with: Option<Spanned<serde_json::Value>>,
    /// CEL expression over the resource's attributes; resources for which it is false are
    /// not_applicable.
    #[serde(rename = "where")]
    #[schemars(rename = "where", with = "Option<String>")]
    pub filter: Option<Spanned<String>>,
    /// CEL expression over the resource's attributes that must be true. `now` is the run's
    /// time; `days_since(t)` gives whole days from timestamp `t` to now.
    #[schemars(with = "String")]
    pub assert: Spanned<String>,
    /// How many applicable resources must satisfy `assert` (default: all).
    #[serde(default)]
    #[schemars(with = "Expect")]
    pub expect: Option<Spanned<Expect>>,
    /// When true, a population with no applicable resource fails instead of being
    /// not_applicable (e.g. "a policy document must exist").
    #[serde(default)]
    pub require_resources: bool,
    /// What this check verifies, in one sentence (internal).
    pub description: Option<String>,
}

/// The aggregate rule over the applicable population.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// Every applicable resource satisfies `assert`.
    #[default]
    All,
    /// At least one applicable resource satisfies `assert`.
    AtLeastOne,
    /// At least this percentage (0-100) of applicable resources satisfies `assert`.
    Percent(f64),
    /// At least this many applicable resources satisfy `assert`.
    AtLeast(u64),
    /// At most this many applicable resources may fail `assert`.
    AtMostFailing(u64),
}
